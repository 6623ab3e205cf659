"""Reviewed false matches of the dedup tool: pairs of customers a person said are different.

A dismissal is a fact about two customers, not about a cluster: the scan (which
recomputes clusters every time, and later stores them, issue 12) consults this table and
drops the edge between the two, so a rescan, an edit of either customer or an import
that would find the pair again does not bring it back. The pair is stored ordered
(``customer_low_id < customer_high_id``) so that (a, b) and (b, a) are one row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, delete, event, or_
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from app.clock import utc_now
from app.models.base import UtcDateTime
from app.models.customers import Customer, CustomerAlias


class DismissedPair(Model):
    """Two customers marked "not duplicates" (who, when, why). Deleted with either customer
    (``ON DELETE CASCADE``) and when either is merged away (``app.services.dedup``)."""

    __tablename__ = "dismissed_duplicate_pair"
    __table_args__ = (
        UniqueConstraint("customer_low_id", "customer_high_id", name="uq_dismissed_duplicate_pair"),
        CheckConstraint("customer_low_id < customer_high_id", name="ck_dismissed_duplicate_pair_order"),
        # the unique index serves lookups by the low id; this one by the high id
        Index("ix_dismissed_duplicate_pair_high", "customer_high_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_low_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    customer_high_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    dismissed_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    dismissed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    reason: Mapped[str | None] = mapped_column(String(255))

    customer_low = relationship("Customer", foreign_keys=[customer_low_id])
    customer_high = relationship("Customer", foreign_keys=[customer_high_id])
    dismissed_by = relationship("CrmUser", foreign_keys=[dismissed_by_id])

    @property
    def pair(self) -> tuple[int, int]:
        """The two customer ids, low first."""
        return self.customer_low_id, self.customer_high_id

    def __repr__(self) -> str:
        return f"{self.customer_low_id}/{self.customer_high_id}"


def _gone_customers(session: Session) -> set[int]:
    """Customers this flush deleted or merged away (a merge leaves a ``CustomerAlias`` with
    ``merged_from``; ``app.services.merge``)."""
    gone = {obj.id for obj in session.deleted if isinstance(obj, Customer)}
    gone |= {obj.merged_from_id for obj in session.new if isinstance(obj, CustomerAlias)}
    gone.discard(None)
    return gone


@event.listens_for(Session, "after_flush")
def _drop_pairs_of_gone_customers(session: Session, flush_context: Any) -> None:
    """The cascade, done by the ORM too: SQLite does not enforce foreign keys here, and a
    merge archives (never deletes) the customers it merges away. A dismissal of a customer
    that no longer stands on its own means nothing; if it is restored it is reviewed again."""
    gone = _gone_customers(session)
    if gone:
        table = DismissedPair.__table__
        session.connection().execute(delete(table).where(
            or_(table.c.customer_low_id.in_(sorted(gone)), table.c.customer_high_id.in_(sorted(gone)))))
