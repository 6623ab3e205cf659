"""Customer master data (客户基本信息), follow-ups (跟进记录) and status history."""

from __future__ import annotations

from datetime import date, datetime

from flask_appbuilder import Model
from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utc_now
from app.models.base import CustomValuesMixin, StampMixin, UtcDateTime, VersionMixin, referrer_index


class Customer(StampMixin, VersionMixin, CustomValuesMixin, Model):
    __tablename__ = "customer"
    __table_args__ = (
        # PostgreSQL: the id too, so a scope's customers are read from the index alone
        # (SQLite's indexes hold the row id already); the creation time for the dashboards'
        # counts of a scope's customers created before a day or per month.
        Index("ix_customer_owner_archived", "owner_id", "archived_at", "created_on", postgresql_include=["id"]),
        Index("ix_customer_credit_code", "credit_code"),
        Index("ix_customer_contact_phone", "contact_phone"),
        Index("ix_customer_created_owner", "created_on", "owner_id", "archived_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    credit_code: Mapped[str | None] = mapped_column(String(18))
    type_id: Mapped[int | None] = mapped_column(ForeignKey("dict_customer_type.id"))
    industry_id: Mapped[int | None] = mapped_column(ForeignKey("dict_industry.id"))
    contact_name: Mapped[str | None] = mapped_column(String(64))
    contact_phone: Mapped[str] = mapped_column(String(32), nullable=False)
    email: Mapped[str | None] = mapped_column(String(120))
    address: Mapped[str | None] = mapped_column(String(255))
    level_id: Mapped[int | None] = mapped_column(ForeignKey("dict_customer_level.id"))
    source_id: Mapped[int | None] = mapped_column(ForeignKey("dict_customer_source.id"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    type = relationship("CustomerType")
    industry = relationship("Industry")
    level = relationship("CustomerLevel")
    source = relationship("CustomerSource")
    owner = relationship("CrmUser", foreign_keys=[owner_id])
    follow_ups = relationship("FollowUp", back_populates="customer")
    status_changes = relationship(
        "CustomerStatusChange", back_populates="customer", order_by="CustomerStatusChange.id"
    )
    aliases = relationship("CustomerAlias", back_populates="customer",
                           foreign_keys="CustomerAlias.customer_id")

    #: Optional reason for a type change, set by forms/API before flush (not a column).
    status_reason = None
    #: Shown masked everywhere (app/security/masking.py); never orderable or filterable.
    masked_columns = ("contact_phone",)
    #: People's personal data (issue 19 erasure, ``app.services.erasure``); the name is a
    #: company's, not a person's, unless the admin ticks it for an individual customer.
    personal_columns = ("contact_name", "contact_phone", "email", "address")

    def __repr__(self) -> str:
        return f"{self.code} {self.name}"


class FollowUp(StampMixin, VersionMixin, CustomValuesMixin, Model):
    __tablename__ = "follow_up"
    __table_args__ = (
        Index("ix_follow_up_customer", "customer_id", "followed_at"),
        # the follow-up list's default order (newest first), a page without sorting them all
        Index("ix_follow_up_followed_at", "followed_at", "id"),
        # dated next steps still to do: the home page's "due" figure reads these only, not the
        # history of done ones nor follow-ups without a next step (issue 12); the predicate as
        # ``follow_ups.next_steps_open`` renders it
        Index("ix_follow_up_next_step_open", "next_step_date",
              sqlite_where=text("next_step_closed = 0 AND next_step_date IS NOT NULL"),
              postgresql_where=text("next_step_closed = false AND next_step_date IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), nullable=False)
    followed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    method_id: Mapped[int | None] = mapped_column(ForeignKey("dict_follow_up_method.id"))
    content: Mapped[str] = mapped_column(Text, nullable=False)
    next_step: Mapped[str | None] = mapped_column(String(255))
    next_step_date: Mapped[date | None] = mapped_column(Date)
    #: The activity this follow-up planned for its next step was done or cancelled: kept by
    #: ``activities`` whenever such an activity changes (``follow_ups.next_step_open``).
    next_step_closed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    owner_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)

    customer = relationship("Customer", back_populates="follow_ups")
    method = relationship("FollowUpMethod")
    owner = relationship("CrmUser", foreign_keys=[owner_id])

    def __repr__(self) -> str:
        return self.code


class CustomerStatusChange(Model):
    """Every change of a customer's type: from, to, when, who, why."""

    __tablename__ = "customer_status_change"
    __table_args__ = (Index("ix_customer_status_change_to", "to_type_id", "changed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"), nullable=False, index=True
    )
    from_type_id: Mapped[int | None] = mapped_column(ForeignKey("dict_customer_type.id"))
    to_type_id: Mapped[int | None] = mapped_column(ForeignKey("dict_customer_type.id"))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    reason: Mapped[str | None] = mapped_column(String(255))

    customer = relationship("Customer", back_populates="status_changes")
    from_type = relationship("CustomerType", foreign_keys=[from_type_id])
    to_type = relationship("CustomerType", foreign_keys=[to_type_id])
    changed_by = relationship("CrmUser", foreign_keys=[changed_by_id])


class CustomerAlias(Model):
    """A code that now means another customer: kept when duplicates are merged.

    Imports and the sync look codes up here too, so an old spreadsheet that still says
    the merged-away code updates the survivor instead of failing or creating a copy.
    """

    __tablename__ = "customer_alias"
    __table_args__ = (referrer_index("customer_alias", "merged_from_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), nullable=False, index=True)
    merged_from_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    merged_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    merged_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))

    customer = relationship("Customer", foreign_keys=[customer_id], back_populates="aliases")
    merged_from = relationship("Customer", foreign_keys=[merged_from_id])


class CodeSequence(Model):
    """Daily counters behind record codes (C20240501001); one row per prefix and day."""

    __tablename__ = "code_sequence"

    prefix: Mapped[str] = mapped_column(String(4), primary_key=True)
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
