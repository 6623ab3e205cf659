"""Activities (待办 / 活动), task templates (任务模板) and CRM settings (issue 14).

Rules from the manuals: 000 跟进记录必填字段 and 下一步计划, 001 (follow-up within 24 hours
of the contact), 003 第三步 3 (任务提醒规则, 任务模板 with preset follow-up scripts).
"""

from __future__ import annotations

from datetime import datetime

from flask_appbuilder import Model
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import CustomValuesMixin, StampMixin, UtcDateTime, VersionMixin, now, referrer_index


class Activity(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """A planned call, visit, meeting, e-mail or task on a record, due at an instant.

    It belongs to at most one record: a customer, a contact (``customer_id`` is its
    customer's), a lead or an opportunity (``customer_id`` is its customer's); an activity
    on no record is the assignee's own task. Done with an outcome, it creates the
    follow-up record (``follow_up_id``); a follow-up's 下一步计划 with a date creates one
    (``from_follow_up_id``, once).
    """

    __tablename__ = "activity"
    __table_args__ = (
        # "my activities": an assignee's open ones by due time; with the record columns the
        # scope rule reads, a count of someone's overdue ones needs no table row (issue 12)
        Index("ix_activity_assignee_due", "assignee_id", "status", "due_at", "customer_id", "lead_id"),
        # the calendar's range and the minute reminder over everyone's activities
        Index("ix_activity_due", "due_at"),
        Index("ix_activity_customer", "customer_id"),
        Index("ix_activity_lead", "lead_id"),
        referrer_index("activity", "follow_up_id"),
        referrer_index("activity", "contact_id"),
        referrer_index("activity", "opportunity_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="call")
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    assignee_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"))
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunity.id", ondelete="SET NULL"))
    template_id: Mapped[int | None] = mapped_column(ForeignKey("activity_template.id", ondelete="SET NULL"))
    #: open | done | cancelled
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)
    follow_up_id: Mapped[int | None] = mapped_column(ForeignKey("follow_up.id", ondelete="SET NULL"))
    from_follow_up_id: Mapped[int | None] = mapped_column(
        ForeignKey("follow_up.id", ondelete="SET NULL"), unique=True)

    assignee = relationship("CrmUser", foreign_keys=[assignee_id])
    customer = relationship("Customer", foreign_keys=[customer_id])
    contact = relationship("Contact", foreign_keys=[contact_id])
    lead = relationship("Lead", foreign_keys=[lead_id])
    opportunity = relationship("Opportunity", foreign_keys=[opportunity_id])
    template = relationship("ActivityTemplate", foreign_keys=[template_id])
    follow_up = relationship("FollowUp", foreign_keys=[follow_up_id])
    from_follow_up = relationship("FollowUp", foreign_keys=[from_follow_up_id])

    def __repr__(self) -> str:
        return self.code


class ActivityTemplate(StampMixin, Model):
    """任务模板 (003): an admin's preset follow-up script (初次电话沟通, 产品介绍 …) that
    pre-fills an activity's subject and a follow-up's content and next step."""

    __tablename__ = "activity_template"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="call")
    content: Mapped[str | None] = mapped_column(Text)
    next_step: Mapped[str | None] = mapped_column(String(255))
    #: the next step's date, this many days after the follow-up (None: no date)
    next_step_days: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return self.name


class CrmSetting(Model):
    """One admin setting (``app.services.settings`` declares each: key, kind, default)."""

    __tablename__ = "crm_setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: JSON text of the value
    value: Mapped[str] = mapped_column(Text, nullable=False)
    changed_on: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now, onupdate=now)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
