"""Approvals (审批): policies saying which change needs whose approval, and the requests
that hold a proposed change until the last step approves.

Rules: 000 §三(一) (no manual delete of won customers: a 数据变更申请 approved by the
department head, then carried out), 001 使用规范二 (key contact data changes confirmed by
the owner or an admin), 002 §三(二)2, §四(二)2 (订单审批), §五 (活动审批), 003 第四步
(删除客户需销售经理审批, 修改客户等级需部门负责人审批).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import Role
from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import StampMixin, UtcDateTime, VersionMixin, now
from app.models.sales import Money


class ApprovalPolicy(StampMixin, Model):
    """Which change (``kind``, e.g. ``customer.archive``) needs approval, under which
    condition (amounts in the order's currency, discount in %), and its steps in order.
    The first active policy (lowest ``position``) of a kind whose condition holds applies."""

    __tablename__ = "approval_policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    #: condition: applies only at or above this amount (orders, campaigns' budget); empty = always
    min_amount: Mapped[Decimal | None] = mapped_column(Money)
    #: condition: applies only when a line's discount is at or above this % (orders)
    min_discount: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    note: Mapped[str | None] = mapped_column(Text)

    steps = relationship("ApprovalStep", back_populates="policy", cascade="all, delete-orphan",
                         order_by="ApprovalStep.position")

    def __repr__(self) -> str:
        return self.name


class ApprovalStep(Model):
    """One step of a policy: who approves (``approver``: ``manager`` = the requester's
    department manager, walking up the tree when the requester is that manager; ``role``;
    ``user``)."""

    __tablename__ = "approval_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("approval_policy.id", ondelete="CASCADE"), nullable=False,
                                           index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    approver: Mapped[str] = mapped_column(String(16), nullable=False, default="manager")
    role_id: Mapped[int | None] = mapped_column(ForeignKey("ab_role.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    policy = relationship("ApprovalPolicy", back_populates="steps")
    role = relationship(Role)
    user = relationship("CrmUser", foreign_keys=[user_id])


class ApprovalRequest(StampMixin, VersionMixin, Model):
    """A proposed change waiting for approval (code AP + date + sequence).

    ``record_type`` / ``record_id``: the record (a declared record type's name, or
    ``customer``); ``change``: JSON of the proposed values; ``before``: JSON of the values
    when asked (a record changed meanwhile is a conflict); ``steps``: JSON snapshot of the
    policy's steps (a policy edited later does not move requests in flight); ``step``: the
    index of the current step. Status: pending → approved (applied) | rejected | withdrawn
    | conflict.
    """

    __tablename__ = "approval_request"
    __table_args__ = (
        Index("ix_approval_request_record", "record_type", "record_id"),
        Index("ix_approval_request_requester", "requester_id", "status"),
        Index("ix_approval_request_status", "status", "requested_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("approval_policy.id", ondelete="SET NULL"))
    record_type: Mapped[str] = mapped_column(String(32), nullable=False)
    record_id: Mapped[int | None] = mapped_column(Integer)
    #: the record's code and name when asked (shown to approvers who cannot open the record)
    record_label: Mapped[str | None] = mapped_column(String(255))
    requester_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
    reason: Mapped[str | None] = mapped_column(Text)
    change: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    before: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    steps: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    step: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)

    policy = relationship("ApprovalPolicy")
    requester = relationship("CrmUser", foreign_keys=[requester_id])
    approvers = relationship("ApprovalApprover", cascade="all, delete-orphan")
    actions = relationship("ApprovalAction", back_populates="request", cascade="all, delete-orphan",
                           order_by="ApprovalAction.id")

    def __repr__(self) -> str:
        return self.code


class ApprovalApprover(Model):
    """Who may decide a request's current step (resolved when the step starts): the
    "Waiting for me" inbox reads this table."""

    __tablename__ = "approval_approver"
    __table_args__ = (Index("ix_approval_approver_user", "user_id", "request_id"),)

    request_id: Mapped[int] = mapped_column(ForeignKey("approval_request.id", ondelete="CASCADE"),
                                            primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True)

    user = relationship("CrmUser", foreign_keys=[user_id])


class ApprovalAction(Model):
    """One step of a request's history: submitted, approved, rejected (comment required),
    withdrawn, conflict, applied — who, when, at which step, why."""

    __tablename__ = "approval_action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_request.id", ondelete="CASCADE"), nullable=False,
                                            index=True)
    step: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
    comment: Mapped[str | None] = mapped_column(Text)

    request = relationship("ApprovalRequest", back_populates="actions")
    user = relationship("CrmUser", foreign_keys=[user_id])
