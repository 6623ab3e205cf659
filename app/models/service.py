"""Service desk (issue 16): tickets (工单) with business-hours SLAs, transfer rules, the
working calendar, demand analysis (客户需求分析) and service feedback (客户服务反馈), and
file attachments.

Rules from the manuals: 000 §二(二) 服务工单流程 (types 咨询 / 投诉 / 售后支持, priority
高 / 中 / 低, deadlines such as "high priority answered within 24 hours", transfer rules
such as technical problems to technical support), 000 附录3 (问题反馈: admins answer within
15 minutes), 001 tables 3 and 4 (field by field), 002 §六 (客服管理).
"""

from __future__ import annotations

from datetime import date, datetime, time

from flask_appbuilder import Model
from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import CustomValuesMixin, StampMixin, UtcDateTime, VersionMixin, now, referrer_index

# The service desk's dictionaries live with the others (one list of dictionaries: screens,
# audit, seeds); imported here too for the service modules.
from app.models.dictionaries import (  # noqa: F401
    DemandStatus,
    DemandType,
    FeedbackType,
    Priority,
    TicketType,
)


class WorkCalendar(StampMixin, Model):
    """A working calendar: working weekdays, daily hours with a lunch break, in the CRM's
    time zone; public holidays and make-up working days (调休) are its ``days``."""

    __tablename__ = "work_calendar"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    #: ISO weekdays that are working days unless a day says otherwise ("12345": Mon-Fri)
    weekdays: Mapped[str] = mapped_column(String(7), nullable=False, default="12345")
    day_start: Mapped[time] = mapped_column(Time, nullable=False, default=time(9, 0))
    lunch_start: Mapped[time | None] = mapped_column(Time, default=time(12, 0))
    lunch_end: Mapped[time | None] = mapped_column(Time, default=time(13, 0))
    day_end: Mapped[time] = mapped_column(Time, nullable=False, default=time(18, 0))
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    days = relationship("CalendarDay", back_populates="calendar", cascade="all, delete-orphan",
                        order_by="CalendarDay.day")

    def __repr__(self) -> str:
        return self.name


class CalendarDay(Model):
    """One exception to a calendar's week: a public holiday (no work) or a make-up
    working day (调休: a Saturday or Sunday worked)."""

    __tablename__ = "calendar_day"
    __table_args__ = (UniqueConstraint("calendar_id", "day", name="uq_calendar_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("work_calendar.id", ondelete="CASCADE"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    #: holiday | workday
    kind: Mapped[str] = mapped_column(String(8), nullable=False, default="holiday")
    name: Mapped[str | None] = mapped_column(String(100))

    calendar = relationship("WorkCalendar", back_populates="days")

    def __repr__(self) -> str:
        return f"{self.day} {self.name or self.kind}"


class SlaPolicy(StampMixin, Model):
    """Deadlines per ticket type x priority, in business minutes of a calendar. A blank type
    or priority matches any; the most specific active policy wins."""

    __tablename__ = "sla_policy"
    __table_args__ = (UniqueConstraint("ticket_type_id", "priority_id", name="uq_sla_policy_type_priority"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    ticket_type_id: Mapped[int | None] = mapped_column(ForeignKey("dict_ticket_type.id"))
    priority_id: Mapped[int | None] = mapped_column(ForeignKey("dict_priority.id"))
    #: a new policy's form starts at one working day to answer, five to resolve
    first_response_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=480)
    resolution_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=2400)
    #: business hours (True) or round the clock (False)
    business_hours: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("work_calendar.id", ondelete="SET NULL"))
    #: warn this many business minutes before a deadline
    warn_before_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=60)
    #: on breach, tell the team lead's manager too
    escalate: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    ticket_type = relationship("TicketType")
    priority = relationship("Priority")
    calendar = relationship("WorkCalendar")

    def __repr__(self) -> str:
        return self.name


class TransferRule(StampMixin, Model):
    """转派规则 (000): tickets of a type / category / with a keyword go to a team, then to
    one of its members in turn (round robin) or to the least loaded."""

    __tablename__ = "transfer_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    ticket_type_id: Mapped[int | None] = mapped_column(ForeignKey("dict_ticket_type.id"))
    category: Mapped[str | None] = mapped_column(String(64))
    #: one keyword a line; any of them in the subject or description matches
    keywords: Mapped[str | None] = mapped_column(Text)
    team_id: Mapped[int] = mapped_column(ForeignKey("department.id"), nullable=False)
    #: round_robin | least_loaded | none (the team's queue)
    strategy: Mapped[str] = mapped_column(String(16), nullable=False, default="round_robin")
    #: the member who got the last ticket (round robin)
    cursor_user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    ticket_type = relationship("TicketType")
    team = relationship("Department")

    def __repr__(self) -> str:
        return self.name


class Ticket(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """工单: a customer's question, complaint or after-sales case (or a user's problem with
    the CRM itself: no customer, type 系统问题), worked by an assignee in a team, timed by
    an SLA policy. Deadlines are instants (UTC); the business-hours clock lives in
    ``app.services.sla``."""

    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_assignee_status", "assignee_id", "status"),
        Index("ix_ticket_team_status", "team_id", "status"),
        Index("ix_ticket_customer", "customer_id"),
        Index("ix_ticket_status_due", "status", "resolve_due_at"),
        referrer_index("ticket", "contact_id"),
        referrer_index("ticket", "feedback_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    #: phone | email | online | in_person | internal
    channel: Mapped[str] = mapped_column(String(16), nullable=False, default="phone")
    type_id: Mapped[int] = mapped_column(ForeignKey("dict_ticket_type.id"), nullable=False)
    priority_id: Mapped[int] = mapped_column(ForeignKey("dict_priority.id"), nullable=False)
    category: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    #: the problem's steps to reproduce (问题反馈: 操作步骤)
    steps: Mapped[str | None] = mapped_column(Text)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    #: new | assigned | in_progress | waiting | resolved | closed
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="new")
    resolution: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    satisfaction_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reopen_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: the service feedback (complaint) that opened it
    feedback_id: Mapped[int | None] = mapped_column(ForeignKey("service_feedback.id", ondelete="SET NULL"))
    transfer_rule_id: Mapped[int | None] = mapped_column(ForeignKey("transfer_rule.id", ondelete="SET NULL"))
    # --- SLA (app.services.sla) ---
    sla_policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policy.id", ondelete="SET NULL"))
    response_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolve_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: waiting for the customer since (the clock is paused)
    paused_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: business minutes spent paused so far
    paused_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: when to warn (the deadline minus the policy's warning, in business time): the minute
    #: job selects by these instead of computing every open ticket's clock
    response_warn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolve_warn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    response_warned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    resolve_warned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    response_breached: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    resolve_breached: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    customer = relationship("Customer", foreign_keys=[customer_id])
    contact = relationship("Contact", foreign_keys=[contact_id])
    ticket_type = relationship("TicketType", foreign_keys=[type_id])
    priority = relationship("Priority", foreign_keys=[priority_id])
    assignee = relationship("CrmUser", foreign_keys=[assignee_id])
    team = relationship("Department", foreign_keys=[team_id])
    feedback = relationship("ServiceFeedback", foreign_keys=[feedback_id])
    transfer_rule = relationship("TransferRule", foreign_keys=[transfer_rule_id])
    sla_policy = relationship("SlaPolicy", foreign_keys=[sla_policy_id])
    log = relationship("TicketLog", back_populates="ticket", order_by="TicketLog.id",
                       cascade="all, delete-orphan", passive_deletes=True)

    def __repr__(self) -> str:
        return self.code


class TicketLog(Model):
    """记录处理过程: one step of a ticket (created, assigned, transferred with a reason, a
    status change, a note, resolved, rated, reopened, SLA warning / breach / escalation)."""

    __tablename__ = "ticket_log"
    __table_args__ = (Index("ix_ticket_log_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"), nullable=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    #: a transfer's previous and new assignee / team
    from_user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    to_user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    to_team_id: Mapped[int | None] = mapped_column(ForeignKey("department.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)

    ticket = relationship("Ticket", back_populates="log")
    user = relationship("CrmUser", foreign_keys=[user_id])
    from_user = relationship("CrmUser", foreign_keys=[from_user_id])
    to_user = relationship("CrmUser", foreign_keys=[to_user_id])
    to_team = relationship("Department", foreign_keys=[to_team_id])


class Demand(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """客户需求分析 (001 表3): 需求编号 D…, 客户编号, 需求类型, 需求描述, 优先级, 解决方案,
    负责人, 完成状态 — required as the table says."""

    __tablename__ = "demand"
    __table_args__ = (Index("ix_demand_customer", "customer_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    type_id: Mapped[int] = mapped_column(ForeignKey("dict_demand_type.id"), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    priority_id: Mapped[int] = mapped_column(ForeignKey("dict_priority.id"), nullable=False)
    solution: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    status_id: Mapped[int] = mapped_column(ForeignKey("dict_demand_status.id"), nullable=False)

    customer = relationship("Customer")
    demand_type = relationship("DemandType")
    priority = relationship("Priority")
    owner = relationship("CrmUser", foreign_keys=[owner_id])
    status = relationship("DemandStatus")

    def __repr__(self) -> str:
        return self.code


class ServiceFeedback(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """客户服务反馈 (001 表4): 反馈编号 F…, 客户编号, 反馈类型, 问题描述, 处理过程, 处理结果,
    满意度评分 (1-5), 反馈时间 — required as the table says. A complaint can open a ticket."""

    __tablename__ = "service_feedback"
    __table_args__ = (Index("ix_service_feedback_customer", "customer_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    type_id: Mapped[int] = mapped_column(ForeignKey("dict_feedback_type.id"), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    process: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)

    customer = relationship("Customer")
    feedback_type = relationship("FeedbackType")

    def __repr__(self) -> str:
        return self.code


class Attachment(Model):
    """A file uploaded to a record (a ticket's screenshot; later a contract's scan): stored
    under the files root by content hash, served as a download, never inline as HTML."""

    __tablename__ = "attachment"
    __table_args__ = (Index("ix_attachment_record", "record_type", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_type: Mapped[str] = mapped_column(String(32), nullable=False)
    record_id: Mapped[int] = mapped_column(Integer, nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    #: path under the files root's attachments folder
    path: Mapped[str] = mapped_column(String(255), nullable=False)
    uploaded_on: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    def __repr__(self) -> str:
        return self.filename
