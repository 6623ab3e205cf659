"""Sales targets and saved reports (自定义报表).

Rules: 002 §七 and §十(二) (target attainment), 003 第三步 4 (月度销售业绩报表 against
targets), 001 §四 (自定义报表: saved, exported, sent on a schedule).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask_appbuilder import Model
from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import StampMixin, UtcDateTime, VersionMixin
from app.models.sales import Money


class SalesTarget(StampMixin, Model):
    """One rep's sales target for one month (admin-set): ``month`` is the first day of the
    month in the CRM's zone, ``amount`` in yuan (Decimal, 2 places)."""

    __tablename__ = "sales_target"
    __table_args__ = (UniqueConstraint("user_id", "month", name="uq_sales_target_user_month"),
                      Index("ix_sales_target_month", "month"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False)
    month: Mapped[date] = mapped_column(Date, nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False, default=0)

    user = relationship("CrmUser", foreign_keys=[user_id])


class SavedReport(StampMixin, VersionMixin, Model):
    """A report built in the report builder: ``record_type`` (a source's key) and
    ``definition`` (JSON: dimensions, measures, filters, chart). Private to its owner unless
    shared with roles; ``schedule`` ("weekly" or None) e-mails it to ``recipients`` on
    ``schedule_weekday`` (0 = Monday), each computed in that recipient's own data scope."""

    __tablename__ = "saved_report"
    __table_args__ = (Index("ix_saved_report_owner", "owner_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    owner_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False)
    record_type: Mapped[str] = mapped_column(String(32), nullable=False)
    definition: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    schedule: Mapped[str | None] = mapped_column(String(16))
    schedule_weekday: Mapped[int | None] = mapped_column(Integer)
    last_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    owner = relationship("CrmUser", foreign_keys=[owner_id])
    roles = relationship("Role", secondary="saved_report_role", order_by="Role.name")
    recipients = relationship("CrmUser", secondary="saved_report_recipient", order_by="CrmUser.id")

    def __repr__(self) -> str:
        return self.name


class SavedReportRole(Model):
    """A role a saved report is shared with (its users may open and export it)."""

    __tablename__ = "saved_report_role"

    report_id: Mapped[int] = mapped_column(ForeignKey("saved_report.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("ab_role.id", ondelete="CASCADE"), primary_key=True)


class SavedReportRecipient(Model):
    """A user who receives a scheduled report by e-mail."""

    __tablename__ = "saved_report_recipient"

    report_id: Mapped[int] = mapped_column(ForeignKey("saved_report.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True)
