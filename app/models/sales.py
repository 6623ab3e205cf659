"""Sales pipeline (销售漏斗): contacts, leads, opportunities, stages, products.

Rules come from the manuals: 000 §二(二) (lead flow 新线索 → 初步跟进 → 意向客户 /
无效线索, assignment by region and industry; opportunity stages with required fields),
002 §四 (opportunities, competitors, forecasts), 003 第二步–第三步 (stages with weights,
assignment rules, expected amount = unit price × quantity, stale reminder after 7 days).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask_appbuilder import Model
from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import CustomValuesMixin, StampMixin, UtcDateTime, VersionMixin, now, referrer_index
from app.models.dictionaries import DictionaryMixin

#: Money: 16 digits, 2 decimals (yuan and fen), exact on SQLite and PostgreSQL.
Money = Numeric(16, 2)


class Contact(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """A person at a customer (联系人). The primary contact mirrors the customer's
    联系人姓名/联系方式 columns, so the manual's one-contact template keeps working."""

    __tablename__ = "contact"
    __table_args__ = (
        Index("ix_contact_customer", "customer_id", "is_primary"),
        Index("ix_contact_phone", "phone"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: P + date + sequence; contacts migrated from a customer: P + the customer's code.
    code: Mapped[str] = mapped_column(String(24), unique=True, nullable=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    title: Mapped[str | None] = mapped_column(String(64))
    is_decision_maker: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(120))
    birthday: Mapped[date | None] = mapped_column(Date)
    is_primary: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    note: Mapped[str | None] = mapped_column(Text)

    customer = relationship("Customer", backref="contacts")

    masked_columns = ("phone",)
    #: People's personal data (issue 19 erasure, ``app.services.erasure``).
    personal_columns = ("name", "phone", "email", "birthday")

    def __repr__(self) -> str:
        return self.name


class Stage(DictionaryMixin, Model):
    """An opportunity stage (销售阶段): order, weight % and what entering it requires.

    ``required_fields``: opportunity field names, one a line (需求描述 → ``demand``,
    方案版本 → ``proposal_version``, 预计成交日期 → ``expected_close``).
    ``stale_days``: an opportunity in this stage with no update for that many days is
    stale (003: 方案提交 超7天未更新); empty = never.
    """

    __tablename__ = "dict_stage"

    weight: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    is_won: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_lost: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    required_fields: Mapped[str | None] = mapped_column(Text)
    stale_days: Mapped[int | None] = mapped_column(Integer)

    @property
    def required_list(self) -> list[str]:
        return [line.strip() for line in (self.required_fields or "").splitlines() if line.strip()]


class Lead(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """A lead (线索, code L + date + sequence) before it becomes a customer."""

    __tablename__ = "lead"
    __table_args__ = (
        Index("ix_lead_owner_status", "owner_id", "status"),
        Index("ix_lead_phone", "phone"),
        referrer_index("lead", "customer_id"),
        referrer_index("lead", "contact_id"),
        referrer_index("lead", "opportunity_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    company: Mapped[str] = mapped_column(String(200), nullable=False)
    contact_name: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(120))
    province: Mapped[str | None] = mapped_column(String(32))
    city: Mapped[str | None] = mapped_column(String(32))
    industry_id: Mapped[int | None] = mapped_column(ForeignKey("dict_industry.id"))
    source_id: Mapped[int | None] = mapped_column(ForeignKey("dict_customer_source.id"))
    campaign_id: Mapped[int | None] = mapped_column(Integer, index=True)  # campaign.id (no FK: kept by use cases)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="new")
    invalid_reason: Mapped[str | None] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)
    assigned_by_rule_id: Mapped[int | None] = mapped_column(ForeignKey("assignment_rule.id", ondelete="SET NULL"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunity.id", ondelete="SET NULL"))
    converted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    industry = relationship("Industry")
    source = relationship("CustomerSource")
    owner = relationship("CrmUser", foreign_keys=[owner_id])
    assigned_by_rule = relationship("AssignmentRule")
    customer = relationship("Customer", foreign_keys=[customer_id], backref="leads")
    contact = relationship("Contact", foreign_keys=[contact_id])
    opportunity = relationship("Opportunity", foreign_keys=[opportunity_id])
    campaign = relationship("Campaign", primaryjoin="foreign(Lead.campaign_id) == Campaign.id")
    #: the lead's own history goes with it (the audit log keeps the fact)
    status_changes = relationship("LeadStatusChange", back_populates="lead", order_by="LeadStatusChange.id",
                                  cascade="all, delete-orphan")

    masked_columns = ("phone",)
    #: People's personal data (issue 19 erasure); ``company`` is an organisation's name.
    personal_columns = ("contact_name", "phone", "email")
    status_reason = None

    def __repr__(self) -> str:
        return f"{self.code} {self.company}"


class LeadStatusChange(Model):
    """Every change of a lead's status: from, to, when, who, why."""

    __tablename__ = "lead_status_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"), nullable=False, index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    reason: Mapped[str | None] = mapped_column(String(255))

    lead = relationship("Lead", back_populates="status_changes")
    changed_by = relationship("CrmUser", foreign_keys=[changed_by_id])


class AssignmentRule(StampMixin, Model):
    """Who gets a new lead (分配规则): the first active rule (lowest ``position``) whose
    set conditions all match; its users (or a department's active members) in turn."""

    __tablename__ = "assignment_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    province: Mapped[str | None] = mapped_column(String(32))
    city: Mapped[str | None] = mapped_column(String(32))
    industry_id: Mapped[int | None] = mapped_column(ForeignKey("dict_industry.id"))
    source_id: Mapped[int | None] = mapped_column(ForeignKey("dict_customer_source.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    #: Round-robin cursor: the user id who got the last lead from this rule.
    last_user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))

    industry = relationship("Industry")
    source = relationship("CustomerSource")
    department = relationship("Department")
    last_user = relationship("CrmUser", foreign_keys=[last_user_id])
    users = relationship("CrmUser", secondary="assignment_rule_user", order_by="CrmUser.id")

    def __repr__(self) -> str:
        return self.name


class AssignmentRuleUser(Model):
    __tablename__ = "assignment_rule_user"

    rule_id: Mapped[int] = mapped_column(ForeignKey("assignment_rule.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True)


class Product(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """A product or service sold (产品)."""

    __tablename__ = "product"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    unit: Mapped[str | None] = mapped_column(String(16))
    list_price: Mapped[Decimal | None] = mapped_column(Money)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return f"{self.code} {self.name}"


class Opportunity(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """A sales opportunity (商机/销售机会, code O + date + sequence)."""

    __tablename__ = "opportunity"
    __table_args__ = (
        # Kanban cards (newest changed first, LIMIT per column) in own/department and all scope,
        # column totals and the forecast's month range read from covering indexes.
        Index("ix_opportunity_owner_stage", "owner_id", "stage_id", "changed_on"),
        Index("ix_opportunity_stage_changed", "stage_id", "changed_on"),
        Index("ix_opportunity_stage_totals", "stage_id", "probability_override", "amount"),
        Index("ix_opportunity_close_forecast", "expected_close", "owner_id", "stage_id", "probability_override",
              "amount"),
        Index("ix_opportunity_stage_close", "stage_id", "expected_close"),
        Index("ix_opportunity_customer", "customer_id"),
        Index("ix_opportunity_stage_owner", "stage_id", "owner_id", "probability_override", "amount"),
        Index("ix_opportunity_created", "created_on", "owner_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    stage_id: Mapped[int] = mapped_column(ForeignKey("dict_stage.id"), nullable=False)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    unit_price: Mapped[Decimal | None] = mapped_column(Money)
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    expected_close: Mapped[date | None] = mapped_column(Date)
    #: Manual probability override (%); None = the stage's weight.
    probability_override: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    lost_reason: Mapped[str | None] = mapped_column(String(255))
    demand: Mapped[str | None] = mapped_column(Text)
    proposal_version: Mapped[str | None] = mapped_column(String(64))
    stage_entered_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)

    customer = relationship("Customer", backref="opportunities")
    stage = relationship("Stage")
    owner = relationship("CrmUser", foreign_keys=[owner_id])
    competitors = relationship("Competitor", back_populates="opportunity", cascade="all, delete-orphan",
                               order_by="Competitor.id")
    lines = relationship("OpportunityLine", back_populates="opportunity", cascade="all, delete-orphan",
                         order_by="OpportunityLine.id")
    stage_changes = relationship("OpportunityStageChange", back_populates="opportunity",
                                 order_by="OpportunityStageChange.id", cascade="all, delete-orphan")

    @property
    def probability(self) -> int:
        """The manual override, else the stage's weight (%)."""
        if self.probability_override is not None:
            return self.probability_override
        return self.stage.weight if self.stage is not None else 0

    def __repr__(self) -> str:
        return f"{self.code} {self.title}"


class OpportunityStageChange(Model):
    """Stage history: from, to, who, when, and the days spent in the stage left."""

    __tablename__ = "opportunity_stage_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunity.id", ondelete="CASCADE"),
                                                nullable=False, index=True)
    from_stage_id: Mapped[int | None] = mapped_column(ForeignKey("dict_stage.id"))
    to_stage_id: Mapped[int] = mapped_column(ForeignKey("dict_stage.id"), nullable=False)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    days_in_stage: Mapped[int | None] = mapped_column(Integer)

    opportunity = relationship("Opportunity", back_populates="stage_changes")
    from_stage = relationship("Stage", foreign_keys=[from_stage_id])
    to_stage = relationship("Stage", foreign_keys=[to_stage_id])
    changed_by = relationship("CrmUser", foreign_keys=[changed_by_id])


class Competitor(Model):
    """竞争分析: a competitor on one opportunity (name, strengths, weaknesses)."""

    __tablename__ = "competitor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunity.id", ondelete="CASCADE"),
                                                nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    strengths: Mapped[str | None] = mapped_column(Text)
    weaknesses: Mapped[str | None] = mapped_column(Text)

    opportunity = relationship("Opportunity", back_populates="competitors")


class OpportunityLine(Model):
    """A product line on an opportunity; amount = quantity × unit price × (1 − discount %)."""

    __tablename__ = "opportunity_line"
    __table_args__ = (UniqueConstraint("opportunity_id", "position", name="uq_opportunity_line_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunity.id", ondelete="CASCADE"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False)
    unit_price: Mapped[Decimal] = mapped_column(Money, nullable=False)
    discount: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, default=0)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)

    opportunity = relationship("Opportunity", back_populates="lines")
    product = relationship("Product")
