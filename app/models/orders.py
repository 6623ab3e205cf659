"""Sales orders (订单) with deliveries and payments, and contracts (合同).

Rules: 002 §四(二) (订单创建: products, quantity, price, delivery date; 订单审批; 订单跟踪:
production, delivery and payment progress), 001 使用规范二 (a won customer needs a
contract number), 003 第三步 3 (合同到期前30天提醒续签). Money is Decimal with 2 places.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal

from flask_appbuilder import Model
from sqlalchemy import Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import CustomValuesMixin, StampMixin, UtcDateTime, VersionMixin, now, referrer_index
from app.models.sales import Money

Quantity = Numeric(12, 2)
_HUNDRED, _TENTH = Decimal(100), Decimal("0.1")


def _percent_of(part: Decimal, whole: Decimal) -> Decimal:
    """part / whole as a percentage with 1 decimal, rounded down (99.96 % is not 100 %)."""
    if whole <= 0:
        return Decimal("0.0")
    return min((part * _HUNDRED / whole).quantize(_TENTH, rounding=ROUND_DOWN), _HUNDRED.quantize(_TENTH))


class SalesOrder(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """A sales order (code SO + date + sequence). Status: draft → waiting (approval) →
    approved → in_production / delivering → delivered → closed, or cancelled. Totals are
    kept from the lines; ``delivered_amount`` and ``paid_amount`` from deliveries and payments."""

    __tablename__ = "sales_order"
    __table_args__ = (
        Index("ix_sales_order_owner_status", "owner_id", "status"),
        Index("ix_sales_order_customer", "customer_id"),
        Index("ix_sales_order_delivery_date", "status", "delivery_date"),
        Index("ix_sales_order_payment_due", "status", "payment_due"),
        referrer_index("sales_order", "contact_id"),
        referrer_index("sales_order", "opportunity_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), nullable=False)
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunity.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    title: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="draft")
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="CNY")
    order_date: Mapped[date | None] = mapped_column(Date)
    delivery_date: Mapped[date | None] = mapped_column(Date)
    payment_due: Mapped[date | None] = mapped_column(Date)
    #: sum of the lines' amounts (after their discounts)
    total: Mapped[Decimal] = mapped_column(Money, nullable=False, default=0)
    delivered_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, default=0)
    paid_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, default=0)
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)

    customer = relationship("Customer", backref="orders")
    opportunity = relationship("Opportunity", backref="orders")
    contact = relationship("Contact")
    owner = relationship("CrmUser", foreign_keys=[owner_id])
    lines = relationship("OrderLine", back_populates="order", cascade="all, delete-orphan",
                         order_by="OrderLine.position")
    deliveries = relationship("Delivery", back_populates="order", cascade="all, delete-orphan",
                              order_by="Delivery.id")
    payments = relationship("Payment", back_populates="order", cascade="all, delete-orphan",
                            order_by="Payment.id")

    @property
    def delivered_percent(self) -> Decimal:
        """Delivered share of the total (delivered amount / total × 100), 1 decimal, rounded
        down; an order of value 0 counts its quantities instead."""
        if self.total and self.total > 0:
            return _percent_of(self.delivered_amount or Decimal(0), self.total)
        ordered = sum((line.quantity for line in self.lines), Decimal(0))
        return _percent_of(sum((line.delivered_quantity for line in self.lines), Decimal(0)), ordered)

    @property
    def paid_percent(self) -> Decimal:
        """Paid share of the total (paid amount / total × 100), 1 decimal, rounded down."""
        return _percent_of(self.paid_amount or Decimal(0), self.total or Decimal(0))

    def __repr__(self) -> str:
        return f"{self.code} {self.title or ''}".strip()


class OrderLine(Model):
    """A product line; amount = quantity × unit price × (1 − discount %), 2 places
    (``opportunities.line_amount``). ``delivered_quantity``: the sum of its deliveries."""

    __tablename__ = "sales_order_line"
    __table_args__ = (UniqueConstraint("order_id", "position", name="uq_sales_order_line_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_order.id", ondelete="CASCADE"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Quantity, nullable=False)
    unit_price: Mapped[Decimal] = mapped_column(Money, nullable=False)
    discount: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, default=0)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    delivered_quantity: Mapped[Decimal] = mapped_column(Quantity, nullable=False, default=0)

    order = relationship("SalesOrder", back_populates="lines")
    product = relationship("Product")


class Delivery(Model):
    """One shipment (发货) of an order: partial quantities per line."""

    __tablename__ = "order_delivery"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_order.id", ondelete="CASCADE"), nullable=False,
                                          index=True)
    delivered_on: Mapped[date] = mapped_column(Date, nullable=False)
    note: Mapped[str | None] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    order = relationship("SalesOrder", back_populates="deliveries")
    lines = relationship("DeliveryLine", back_populates="delivery", cascade="all, delete-orphan")
    recorded_by = relationship("CrmUser", foreign_keys=[recorded_by_id])


class DeliveryLine(Model):
    __tablename__ = "order_delivery_line"
    __table_args__ = (referrer_index("order_delivery_line", "line_id", optional=False),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("order_delivery.id", ondelete="CASCADE"), nullable=False,
                                             index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("sales_order_line.id", ondelete="CASCADE"), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Quantity, nullable=False)

    delivery = relationship("Delivery", back_populates="lines")
    line = relationship("OrderLine")


class Payment(Model):
    """One payment received (收款) against an order: partial amounts, date, method."""

    __tablename__ = "order_payment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_order.id", ondelete="CASCADE"), nullable=False,
                                          index=True)
    paid_on: Mapped[date] = mapped_column(Date, nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    method_id: Mapped[int | None] = mapped_column(ForeignKey("dict_payment_method.id"))
    reference: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    order = relationship("SalesOrder", back_populates="payments")
    method = relationship("PaymentMethod")
    recorded_by = relationship("CrmUser", foreign_keys=[recorded_by_id])


#: Contract statuses the customer signed (a draft is no basis for 成交客户, 001).
SIGNED_STATUSES = ("active", "expired")


class Contract(StampMixin, VersionMixin, CustomValuesMixin, Model):
    """A contract (合同, code HT + date + sequence) with its own ``number`` (the contract
    number the customer signed; 001: a won customer needs one). Status: draft → active →
    expired (by date) | terminated. ``renewal_of``: the contract this one renews."""

    __tablename__ = "contract"
    __table_args__ = (
        Index("ix_contract_owner_status", "owner_id", "status"),
        Index("ix_contract_customer", "customer_id"),
        Index("ix_contract_ends_on", "status", "ends_on"),
        referrer_index("contract", "renewal_of_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    number: Mapped[str | None] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), nullable=False)
    owner_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="CNY")
    signed_on: Mapped[date | None] = mapped_column(Date)
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="draft")
    renewal_of_id: Mapped[int | None] = mapped_column(ForeignKey("contract.id", ondelete="SET NULL"))
    terminated_reason: Mapped[str | None] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)

    customer = relationship("Customer", backref="contracts")
    owner = relationship("CrmUser", foreign_keys=[owner_id])
    renewal_of = relationship("Contract", remote_side=[id], backref="renewals")
    orders = relationship("SalesOrder", secondary="contract_order", backref="contracts")

    def __repr__(self) -> str:
        return f"{self.code} {self.title}"


class ContractOrder(Model):
    __tablename__ = "contract_order"
    __table_args__ = (referrer_index("contract_order", "order_id", optional=False),)

    contract_id: Mapped[int] = mapped_column(ForeignKey("contract.id", ondelete="CASCADE"), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_order.id", ondelete="CASCADE"), primary_key=True)
