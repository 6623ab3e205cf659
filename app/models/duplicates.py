"""Reviewed false matches of the dedup tool: pairs of customers a person said are different.

A dismissal is a fact about two customers, not about a cluster: the scan and the
incremental updates (``app.services.dedup``) consult this table and drop the edge between
the two, so a rescan, an edit of either customer or an import
that would find the pair again does not bring it back. The pair is stored ordered
(``customer_low_id < customer_high_id``) so that (a, b) and (b, a) are one row.

Stored clusters (issue 12): ``DuplicateCluster`` + ``DuplicateMember`` hold the result of
the last scan over ALL live customers, kept current by incremental updates; pages read them
filtered to the viewer's scope. ``DuplicateKey`` indexes each live customer's blocking keys
(name + contact, fuzzy-name segments) so an update finds a customer's candidates by index.
``DuplicateDirty`` lists customers changed since (written in the same transaction as the
change); ``DuplicateScan`` is one background scan (progress, outcome); ``DuplicateState``
is one row: the scan running, the highest customer id indexed, and the writers' lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    event,
    or_,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from app.clock import utc_now
from app.models.base import UtcDateTime
from app.models.customers import CustomerAlias


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


class DuplicateCluster(Model):
    """A group of likely duplicates, identified by its lowest member's customer id (a
    customer is in one cluster at most, so no sequence is needed). The list's order is
    more exact rules (``rank``) first, then the best ``score``, then ``id``: stored as one
    ascending ``order_key`` so an index walks it."""

    __tablename__ = "duplicate_cluster"
    __table_args__ = (Index("ix_duplicate_cluster_order", "order_key", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    score: Mapped[int] = mapped_column(Integer, nullable=False)
    order_key: Mapped[int] = mapped_column(Integer, nullable=False)
    #: comma-separated rule names (``app.services.dedup.RULE_LABELS``), sorted
    rules: Mapped[str] = mapped_column(String(80), nullable=False)


class DuplicateMember(Model):
    """One customer of a cluster, with the rules of its own edges (comma-separated) and its
    owner (copied, updated with the customer: pages count members in scope without a join)."""

    __tablename__ = "duplicate_member"
    __table_args__ = (Index("ix_duplicate_member_cluster", "cluster_id", "customer_id"),
                      Index("ix_duplicate_member_owner", "owner_id", "cluster_id"))

    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("duplicate_cluster.id", ondelete="CASCADE"), nullable=False)
    rules: Mapped[str] = mapped_column(String(80), nullable=False)
    owner_id: Mapped[int] = mapped_column(Integer, nullable=False)


class DuplicateKey(Model):
    """A blocking key of a live customer: a 64-bit hash of (kind, value). Two customers
    sharing one are candidates; the rule itself is decided on their values."""

    __tablename__ = "duplicate_key"
    __table_args__ = (Index("ix_duplicate_key_customer", "customer_id"),)

    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True,
                                             autoincrement=False)


class DuplicateDirty(Model):
    """A customer whose matching values (or contacts, or dismissals) changed and whose
    clusters are not updated yet. No foreign key: the customer may be gone by then."""

    __tablename__ = "duplicate_dirty"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, nullable=False)


#: DuplicateScan.status
SCAN_RUNNING, SCAN_DONE, SCAN_FAILED = "running", "done", "failed"


class DuplicateScan(Model):
    """One full scan (background): who asked, progress (``processed`` of ``total`` steps),
    outcome. At most one runs at a time (``DuplicateState.scan_id``)."""

    __tablename__ = "duplicate_scan"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default=SCAN_RUNNING)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    processed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    customers: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    clusters: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    requested_by = relationship("CrmUser", foreign_keys=[requested_by_id])


class DuplicateState(Model):
    """The one row (id 1): the scan running (None: none), the last finished scan, the
    highest customer id the stored clusters include. Writers of the stored clusters update
    it first, which serialises them (row lock on PostgreSQL, write lock on SQLite)."""

    __tablename__ = "duplicate_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    scan_id: Mapped[int | None] = mapped_column(Integer)
    last_scan_id: Mapped[int | None] = mapped_column(Integer)
    indexed_upto: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


def _merged_away(session: Session) -> set[int]:
    """Customers this flush merged away (a merge leaves a ``CustomerAlias`` with
    ``merged_from``; ``app.services.merge``)."""
    gone = {obj.merged_from_id for obj in session.new if isinstance(obj, CustomerAlias)}
    gone.discard(None)
    return gone


@event.listens_for(Session, "after_flush")
def _drop_pairs_of_merged_customers(session: Session, flush_context: Any) -> None:
    """A merge archives (never deletes) the customers it merges away: a dismissal of a
    customer that no longer stands on its own means nothing; if it is restored it is
    reviewed again. (A deleted customer's pairs go by the foreign keys' cascade,
    ``app.models.on_delete`` on SQLite.)"""
    gone = _merged_away(session)
    if gone:
        table = DismissedPair.__table__
        session.connection().execute(delete(table).where(
            or_(table.c.customer_low_id.in_(sorted(gone)), table.c.customer_high_id.in_(sorted(gone)))))
