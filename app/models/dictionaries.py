"""Admin-editable data dictionaries (数据字典) behind the customer and follow-up forms."""

from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import get_locale
from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship


class DictionaryMixin:
    """Code, English and Chinese label, sort order, active flag, aliases.

    Inactive entries stay valid on old records but cannot be picked for new ones.
    ``aliases``: other names people write for the entry (信息技术, IT ...), one a line,
    normalised and unique across the dictionary (``app.services.dictionaries.check_entry``).
    """

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    label_en: Mapped[str] = mapped_column(String(100), nullable=False)
    label_zh: Mapped[str] = mapped_column(String(100), nullable=False)
    sort_order: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    aliases: Mapped[str | None] = mapped_column(Text)

    @property
    def alias_list(self) -> list[str]:
        """The aliases, one per stored line (blank lines ignored)."""
        return [line.strip() for line in (self.aliases or "").splitlines() if line.strip()]

    @property
    def label(self) -> str:
        try:
            lang = str(get_locale() or "en")
        except Exception:  # outside a request: English
            lang = "en"
        return self.label_zh if lang.startswith("zh") else self.label_en

    def __repr__(self) -> str:
        return self.label


class CustomerType(DictionaryMixin, Model):
    """Potential / won / lost; changes are kept in the customer's status history."""

    __tablename__ = "dict_customer_type"


class Industry(DictionaryMixin, Model):
    """Two levels: GB/T 4754 sections and their divisions (制造业 > 汽车制造业), or an admin's own."""

    __tablename__ = "dict_industry"
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dict_industry.id"))
    parent = relationship("Industry", remote_side="Industry.id", backref="children")

    @property
    def label(self) -> str:
        own = DictionaryMixin.label.fget(self)
        return f"{self.parent.label} > {own}" if self.parent is not None else own


class CustomerSource(DictionaryMixin, Model):
    __tablename__ = "dict_customer_source"


class FollowUpMethod(DictionaryMixin, Model):
    __tablename__ = "dict_follow_up_method"


class CustomerLevel(DictionaryMixin, Model):
    __tablename__ = "dict_customer_level"


class TicketType(DictionaryMixin, Model):
    """工单类型 (000): 咨询 / 投诉 / 售后支持, and 系统问题 for the CRM's own 问题反馈."""

    __tablename__ = "dict_ticket_type"


class Priority(DictionaryMixin, Model):
    """优先级 高 / 中 / 低 (000 工单, 001 表3 需求分析): shared by tickets and demands."""

    __tablename__ = "dict_priority"


class DemandType(DictionaryMixin, Model):
    """需求类型 (001 表3): 产品咨询 / 技术支持 / 合作定制."""

    __tablename__ = "dict_demand_type"


class DemandStatus(DictionaryMixin, Model):
    """完成状态 (001 表3): 待处理 / 处理中 / 已完成 / 已关闭."""

    __tablename__ = "dict_demand_status"


class FeedbackType(DictionaryMixin, Model):
    """反馈类型 (001 表4): 产品投诉 / 服务建议 / 表扬."""

    __tablename__ = "dict_feedback_type"


DICTIONARIES = (CustomerType, Industry, CustomerSource, FollowUpMethod, CustomerLevel,
                TicketType, Priority, DemandType, DemandStatus, FeedbackType)


class PaymentMethod(DictionaryMixin, Model):
    """收款方式 (002 §四(二)3 订单跟踪 收款情况): 银行转账 / 现金 / 支票 / 支付宝 / 微信支付."""

    __tablename__ = "dict_payment_method"


class CampaignType(DictionaryMixin, Model):
    """市场活动类型 (002 §五(一)): 展会 / 研讨会 / 线上推广 / 邮件营销 / 客户答谢会."""

    __tablename__ = "dict_campaign_type"


DICTIONARIES = (*DICTIONARIES, PaymentMethod, CampaignType)
