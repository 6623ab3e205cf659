"""Marketing campaigns (市场活动): plan, budget, approval, execution, evaluation.

Rules: 002 §五 (一) 活动策划: 目标, 主题, 时间, 地点, 形式, 内容, 预算; (二) 活动执行;
(三) 效果评估: 参与人数, 线索数量, 转化率, 投入产出 (ROI).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from flask_appbuilder import Model
from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import CustomValuesMixin, StampMixin, VersionMixin
from app.models.sales import Money


class Campaign(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """A campaign (code MC + date + sequence). Status: planning → waiting (approval) →
    approved → running → done, or cancelled. Leads carry it (``Lead.campaign_id``)."""

    __tablename__ = "campaign"
    __table_args__ = (Index("ix_campaign_owner_status", "owner_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)  # 主题
    goal: Mapped[str | None] = mapped_column(Text)
    type_id: Mapped[int | None] = mapped_column(ForeignKey("dict_campaign_type.id"))
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    place: Mapped[str | None] = mapped_column(String(200))
    form: Mapped[str | None] = mapped_column(String(16))  # online / offline / hybrid
    content: Mapped[str | None] = mapped_column(Text)
    budget: Mapped[Decimal | None] = mapped_column(Money)
    expected_cost: Mapped[Decimal | None] = mapped_column(Money)
    actual_cost: Mapped[Decimal | None] = mapped_column(Money)
    participants: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="planning")
    owner_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)

    type = relationship("CampaignType")
    owner = relationship("CrmUser", foreign_keys=[owner_id])
    leads = relationship("Lead", primaryjoin="foreign(Lead.campaign_id) == Campaign.id", viewonly=True)

    def __repr__(self) -> str:
        return f"{self.code} {self.name}"
