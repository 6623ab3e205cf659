"""Sales orders (订单, code SO + date + sequence; issue 15): the record type, its rules and
use cases — lines, approval, deliveries (发货) and payments (收款).

Rules: 002 §四(二) (订单创建: customer, products, quantity, price, delivery date; 订单审批
by policy; 订单跟踪: production, delivery and payment progress). Status:
draft → waiting (approval) → approved → in_production / delivering → delivered → closed,
or cancelled (with a reason; never once delivered).

- Lines are changed only while the order is a draft: an approved order's lines are locked.
  A change goes through a new approval: ``reopen_for_change`` puts an approved order that
  nothing was delivered or paid against back to draft (with a reason; the approval time is
  cleared), and ``submit`` asks the policies again — so whenever a policy applies the
  changed order is approved again by a person, and when none applies it is approved at once
  as before. An order with deliveries or payments is not reopened: cancel it (if not
  delivered) or record the difference on a new order.
- Money is ``Decimal``, 2 places, ROUND_HALF_UP (``opportunities.line_amount``); delivered
  and paid percentages are computed from Decimals.
- Every use case loads in the caller's scope (``NotFound`` otherwise), checks the version
  when given (``StaleRecord``), applies its rules (``RuleViolation`` field -> message) and
  flushes; the caller commits. Field changes are audited by the declaration; lines,
  deliveries and payments by ``audit.audited``.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from app import clock, scheduler
from app.extensions import db
from app.models.customers import Customer
from app.models.dictionaries import PaymentMethod
from app.models.orders import Delivery, DeliveryLine, OrderLine, Payment, SalesOrder
from app.models.org import CrmUser
from app.models.sales import Contact, Opportunity, Stage
from app.record_types import OWNER, RecordType, declare
from app.security.data_scope import scope_clause
from app.security.request_bounds import db_int
from app.services import approvals, audit, company, notifications, records, validation
from app.services.errors import RuleViolation
from app.services.follow_ups import customer_problem
from app.services.importing.columns import CUSTOMER, DATE, USER, ImportField
from app.services.opportunities import line_amount, percent_value, product_value, quantity_value
from app.services.products import MAX_MONEY, money

PREFIX = "SO"
KIND = "order.confirm"
DRAFT, WAITING, APPROVED, IN_PRODUCTION, DELIVERING, DELIVERED, CLOSED, CANCELLED = (
    "draft", "waiting", "approved", "in_production", "delivering", "delivered", "closed", "cancelled")
STATUSES = {DRAFT: _l("Draft"), WAITING: _l("Waiting for approval"), APPROVED: _l("Approved"),
            IN_PRODUCTION: _l("In production"), DELIVERING: _l("Delivering"), DELIVERED: _l("Delivered"),
            CLOSED: _l("Closed"), CANCELLED: _l("Cancelled")}
#: statuses a delivery or a payment may be recorded in
TRACKING = (APPROVED, IN_PRODUCTION, DELIVERING)
PAYABLE = (*TRACKING, DELIVERED)
#: manual moves (``change_status``): status -> statuses it may go to. Delivering and delivered
#: also follow from the deliveries recorded; cancel needs a reason and is refused once delivered.
TRANSITIONS = {
    DRAFT: (CANCELLED,),
    APPROVED: (IN_PRODUCTION, DELIVERING, CLOSED, CANCELLED),
    IN_PRODUCTION: (DELIVERING, CLOSED, CANCELLED),
    DELIVERING: (DELIVERED, CLOSED, CANCELLED),
    DELIVERED: (CLOSED,),
}
#: header fields a save may set; customer, contact, opportunity and currency only in a draft
EDITABLE = ("customer", "contact", "opportunity", "title", "currency", "order_date", "delivery_date",
            "payment_due", "owner", "note")
DRAFT_ONLY = ("customer", "contact", "opportunity", "currency")
TITLE_LIMIT, NOTE_LIMIT, REASON_LIMIT, REFERENCE_LIMIT = 200, 10000, 255, 64
#: The currencies and the company currency setting live on Organisation → Company profile (issue 19).
CURRENCIES = company.CURRENCIES
_CENT = Decimal("0.01")
CURRENCY = company.CURRENCY

LABELS = {
    "customer": _l("Customer"), "contact": _l("Contact"), "opportunity": _l("Opportunity"),
    "title": _l("Order title"), "status": _l("Status"), "currency": _l("Currency"), "order_date": _l("Order date"),
    "delivery_date": _l("Delivery date"), "payment_due": _l("Payment due"), "total": _l("Total"),
    "delivered_amount": _l("Delivered amount"), "paid_amount": _l("Paid amount"),
    "delivered_percent": _l("Delivered (%)"), "paid_percent": _l("Paid (%)"), "approved_at": _l("Approved at"),
    "closed_at": _l("Closed at"), "cancel_reason": _l("Cancel reason"), "note": _l("Note"), "owner": _l("Owner"),
}
LOCKED = _l("Approved orders' lines are locked; cancel or ask for a change.")


# --- figures -------------------------------------------------------------------------



def open_amount(order: SalesOrder) -> Decimal:
    """What is still to be paid: total − paid (never below 0)."""
    return max(Decimal(0), (order.total or Decimal(0)) - (order.paid_amount or Decimal(0)))


def fully_delivered(order: SalesOrder) -> bool:
    """Every line delivered in full (an order without lines is not)."""
    return bool(order.lines) and all(line.delivered_quantity >= line.quantity for line in order.lines)


def company_currency() -> str:
    """The company currency (``company.currency``; CNY by default)."""
    return company.currency()


# --- the order header ----------------------------------------------------------------

def _text(item: SalesOrder, errors: dict[str, str]) -> None:
    title = validation.clean_line(item.title) or None
    if title and len(title) > TITLE_LIMIT:
        errors["title"] = str(_l("At most %(n)d characters.", n=TITLE_LIMIT))
    item.title = title
    note = validation.clean_block(item.note) or None
    if note and len(note) > NOTE_LIMIT:
        errors["note"] = str(_l("At most %(n)d characters.", n=NOTE_LIMIT))
    item.note = note


def _currency(item: SalesOrder, errors: dict[str, str]) -> None:
    code = validation.clean_line(item.currency).upper() if item.currency else company_currency()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        errors["currency"] = str(_l("Enter a 3-letter currency code such as CNY."))
    item.currency = code


def _dates(item: SalesOrder, errors: dict[str, str]) -> None:
    item.order_date = validation.day_value(item.order_date, "order_date", errors) or (
        None if "order_date" in errors else clock.local_today())
    for name in ("delivery_date", "payment_due"):
        value = validation.day_value(getattr(item, name), name, errors)
        setattr(item, name, value)
        if value is not None and item.order_date is not None and value < item.order_date:
            errors[name] = str(_l("This date cannot be before the order date."))


def _belongs(item: SalesOrder, errors: dict[str, str], user: Any) -> None:
    """Customer live and in scope; contact and opportunity of that customer (opportunity in scope)."""
    customer_id = records.related_id(item, "customer")
    if customer_id != records.previous(item, "customer_id") or item.id is None:
        problem = customer_problem(customer_id, user)
        if problem:
            errors["customer"] = problem
            return
    contact_id = records.related_id(item, "contact")
    if contact_id is not None:
        owner = db.session.scalar(select(Contact.customer_id).where(Contact.id == contact_id))
        if owner != customer_id:
            errors["contact"] = str(_l("Pick a contact of this customer."))
    opportunity_id = records.related_id(item, "opportunity")
    if opportunity_id is not None and opportunity_id != records.previous(item, "opportunity_id"):
        found = db.session.scalar(select(Opportunity.customer_id).where(
            Opportunity.id == opportunity_id, scope_clause(user, Opportunity)))
        if found != customer_id:
            errors["opportunity"] = str(_l("Pick an opportunity of this customer."))


def _check_header_change(item: SalesOrder, values: dict[str, Any]) -> None:
    if item.id is None:
        return
    if item.status in (CLOSED, CANCELLED):
        raise RuleViolation(str(_l("A closed or cancelled order cannot be changed.")))
    if item.status != DRAFT:
        fixed = [name for name in DRAFT_ONLY if name in values and _differs(item, name, values[name])]
        if fixed:
            raise RuleViolation({name: str(_l("Only a draft order's %(field)s can be changed.",
                                               field=LABELS[name])) for name in fixed})


def _differs(item: SalesOrder, name: str, value: Any) -> bool:
    if name == "currency":
        return (validation.clean_line(value).upper() if value else item.currency) != item.currency
    current = getattr(item, f"{name}_id")
    given = getattr(value, "id", None) if value is not None and not isinstance(value, (int, str)) else db_int(value)
    return given != current


_RELATED = {"customer": Customer, "contact": Contact, "opportunity": Opportunity, "owner": CrmUser}


def _related_values(values: dict[str, Any]) -> dict[str, Any]:
    """Related ids (scripts, tests, rows) as records; an unknown id is refused by name."""
    result, errors = dict(values), {}
    for name, model in _RELATED.items():
        raw = values.get(name)
        if raw is None or isinstance(raw, model):
            continue
        found = db.session.get(model, db_int(raw)) if db_int(raw) is not None else None
        if found is None:
            errors[name] = str(_l("Record not found."))
        result[name] = found
    if errors:
        raise RuleViolation(errors)
    return result


def save_order(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> SalesOrder:
    """Add (``pk`` None) or change an order's header.

    ``values``: ``EDITABLE`` fields — related records or their ids (customer, contact,
    opportunity, owner), dates (``date`` or text), text. Rules: the customer exists, is live
    and in ``user``'s scope; the contact and the opportunity (in scope) are that customer's;
    currency a 3-letter code, default the company setting ``currency`` (CNY); order date
    defaults to today in the CRM zone; delivery date and payment due not before it; owner
    active and in scope (default: the creator). Customer, contact, opportunity and currency
    change only in a draft; a closed or cancelled order does not change. Raises
    ``NotFound``, ``StaleRecord``, ``RuleViolation``; flushes; the caller commits.
    """
    item = SalesOrder(status=DRAFT) if pk is None else records.load(SalesOrder, pk, user)
    if pk is not None:
        records.check_version(item, version)
    _check_header_change(item, values)
    values = _related_values(values)
    try:
        with db.session.no_autoflush:
            records.assign(item, values, EDITABLE)
            errors: dict[str, str] = {}
            _text(item, errors)
            _currency(item, errors)
            _dates(item, errors)
            _belongs(item, errors, user)
            try:
                records.settle_owner(item, user)
            except RuleViolation as exc:
                if not errors:
                    raise
                errors.update(exc.errors)
            if errors:
                raise RuleViolation(errors)
    except RuleViolation:
        if item.id is not None:
            db.session.expire(item)
        else:  # out of the related records' collections (backrefs), so nothing flushes it
            with db.session.no_autoflush:
                for relation in ("customer", "opportunity", "contact", "owner"):
                    setattr(item, relation, None)
            if item in db.session:
                db.session.expunge(item)
        raise
    if item.id is None:
        db.session.add(item)
    _flush_order(item)
    return item


def delete_order(pk: Any, user: Any) -> None:
    """Delete a draft order in scope with its lines (the audit log keeps it); any other
    order is cancelled instead (``RuleViolation``)."""
    item = records.load(SalesOrder, pk, user)
    if item.status != DRAFT:
        raise RuleViolation(str(_l("Only a draft order can be deleted; cancel it instead.")))
    db.session.delete(item)
    db.session.flush()


# --- lines ---------------------------------------------------------------------------

def _editable_lines(order: SalesOrder) -> None:
    if order.status == WAITING:
        raise RuleViolation({"lines": str(_l("The order is waiting for approval: its lines are locked. "
                                             "Withdraw the request to change them."))})
    if order.status != DRAFT:
        raise RuleViolation({"lines": str(LOCKED)}, status=409)


def _line_of(order: SalesOrder, pk: Any) -> OrderLine:
    number = db_int(pk)
    line = db.session.get(OrderLine, number) if number is not None else None
    if line is None or line.order_id != order.id:
        raise records.not_found()
    return line


def _retotal(order: SalesOrder) -> None:
    total = sum((line.amount for line in order.lines), Decimal(0))
    if total > MAX_MONEY:
        raise RuleViolation({"total": str(_l("The order total is too large."))})
    order.total = total


def save_line(order_pk: Any, values: dict[str, Any], user: Any, *, pk: Any = None) -> OrderLine:
    """Add or change a product line of a draft order in ``user``'s scope.

    ``values``: ``product`` (record or id; active when newly picked), ``quantity`` (> 0, 2
    decimals), ``unit_price`` (>= 0 yuan; default the product's list price), ``discount``
    (0–100 %, 2 decimals). amount = quantity × unit price × (1 − discount/100), 2 places
    half up (``opportunities.line_amount``); the order's total is the sum of its lines.
    Refused (409) once the order is approved: its lines are locked. Flushes."""
    order = records.load(SalesOrder, order_pk, user)
    _editable_lines(order)
    line = None if pk is None else _line_of(order, pk)
    unknown = sorted(set(values) - {"product", "quantity", "unit_price", "discount"})
    if unknown:
        raise RuleViolation({name: str(_l("This field cannot be set.")) for name in unknown})
    errors: dict[str, str] = {}
    with db.session.no_autoflush:
        product = product_value(values.get("product", getattr(line, "product", None)),
                           getattr(line, "product_id", None), errors)
        quantity = quantity_value(values.get("quantity", getattr(line, "quantity", None)), "quantity", errors)
        if quantity is None and "quantity" not in errors:
            errors["quantity"] = str(_l("A quantity is required."))
        price = money(values.get("unit_price", getattr(line, "unit_price", None)), "unit_price", errors)
        if price is None and "unit_price" not in errors and product is not None:
            price = product.list_price
            if price is None:
                errors["unit_price"] = str(_l("A unit price is required (the product has no list price)."))
        discount = percent_value(values.get("discount", getattr(line, "discount", None)), "discount", errors,
                            whole=False) or Decimal(0)
        if errors:
            raise RuleViolation(errors)
        amount = line_amount(quantity, price, discount)
        others = sum((other.amount for other in order.lines if other is not line), Decimal(0))
        if others + amount > MAX_MONEY:
            raise RuleViolation({"total": str(_l("The order total is too large."))})
        if line is None:
            position = 1 + max((other.position for other in order.lines), default=0)
            line = OrderLine(order=order, position=position, delivered_quantity=Decimal(0))
        line.product, line.quantity, line.unit_price, line.discount = product, quantity, price, discount
        line.amount = amount
        _retotal(order)
    db.session.add(line)
    _flush_order(order)
    return line


def delete_line(order_pk: Any, pk: Any, user: Any) -> None:
    """Remove a line of a draft order; the total is the sum of the rest."""
    order = records.load(SalesOrder, order_pk, user)
    _editable_lines(order)
    line = _line_of(order, pk)
    order.lines.remove(line)
    db.session.delete(line)
    _retotal(order)
    _flush_order(order)


# --- from a won opportunity -----------------------------------------------------------

def orders_of_opportunity(opportunity_id: int) -> int:
    """How many orders (any status but cancelled) an opportunity already has."""
    return db.session.scalar(select(func.count(SalesOrder.id)).where(
        SalesOrder.opportunity_id == opportunity_id, SalesOrder.status != CANCELLED)) or 0


def order_from_opportunity(opportunity_pk: Any, user: Any) -> tuple[SalesOrder, str | None]:
    """A won opportunity in ``user``'s scope → a draft order for its customer with its
    product lines copied (product, quantity, unit price, discount, amount), titled after it,
    owned by the opportunity's owner (or ``user`` when that owner cannot be assigned).

    Returns ``(order, warning)``: ``warning`` says how many orders the opportunity already
    had (a second order is allowed). Raises ``NotFound``, ``RuleViolation`` (not won; the
    customer archived). Flushes; the caller commits."""
    opportunity = records.load(Opportunity, opportunity_pk, user)
    stage = db.session.get(Stage, opportunity.stage_id)
    if stage is None or not stage.is_won:
        raise RuleViolation({"opportunity": str(_l("Only a won opportunity can become an order."))})
    existing = orders_of_opportunity(opportunity.id)
    owner = opportunity.owner
    try:
        records.check_owner(user, opportunity.owner_id)
    except RuleViolation:
        owner = user
    order = save_order({"customer": opportunity.customer, "opportunity": opportunity, "title": opportunity.title,
                        "owner": owner}, user)
    for position, source in enumerate(opportunity.lines, start=1):
        order.lines.append(OrderLine(position=position, product=source.product, quantity=source.quantity,
                                     delivered_quantity=Decimal(0),
                                     unit_price=source.unit_price, discount=source.discount or Decimal(0),
                                     amount=line_amount(source.quantity, source.unit_price,
                                                        source.discount or Decimal(0))))
    _retotal(order)
    db.session.flush()
    warning = str(_l("This opportunity already has %(n)d order(s); a new one was created.", n=existing)) \
        if existing else None
    return order, warning


# --- approval --------------------------------------------------------------------------

def _max_discount(order: SalesOrder) -> Decimal:
    return max((line.discount or Decimal(0) for line in order.lines), default=Decimal(0))


def current(order: SalesOrder) -> dict[str, Any]:
    """What an approver approves: the total and the lines (product, quantity, price,
    discount). A difference at approval time is a conflict."""
    return {"total": str(order.total),
            "lines": [[line.product_id, str(line.quantity), str(line.unit_price), str(line.discount)]
                      for line in order.lines]}


def _apply(request: Any, order: SalesOrder, approver: Any) -> None:
    """The last step approved: a waiting order becomes approved (rules re-checked)."""
    if order.status != WAITING:
        raise RuleViolation({"status": str(_l("The order is no longer waiting for approval."))})
    _approve(order, tell=True)


def _settle(request: Any, order: SalesOrder, outcome: str) -> None:
    """Rejected, withdrawn or conflicting: a waiting order goes back to draft."""
    if order.status == WAITING:
        order.status = DRAFT
        db.session.flush()


def _approve(order: SalesOrder, *, tell: bool = False) -> None:
    """Approved now; ``tell``: the owner hears it (an approver decided; not when no policy applied)."""
    order.status = APPROVED
    order.approved_at = clock.utc_now()
    _flush_order(order)
    if not tell:
        return
    notifications.notify("order_approved", [order.owner_id], record=order,
                         params={"code": order.code, "title": order.title or ""},
                         occasion=f"order_approved:{order.code}:{order.approved_at.isoformat()}")


approvals.register_kind(approvals.ChangeKind(
    KIND, _l("Confirm an order"), "order", apply=_apply, current=current, settle=_settle,
    conditions=("amount", "discount")))


def submit(pk: Any, user: Any, *, version: Any = None) -> SalesOrder:
    """Submit a draft order (at least one line) for confirmation: when an ``order.confirm``
    policy applies to its total and largest line discount (``approvals.policy_for``), the
    order waits (``waiting``) and the request goes to the approvers
    (``approvals.submit``); otherwise it is approved at once. Flushes."""
    order = records.load(SalesOrder, pk, user)
    if version not in (None, ""):
        records.check_version(order, version)
    if order.status != DRAFT:
        raise RuleViolation({"status": str(_l("Only a draft order can be submitted."))}, status=409)
    if not order.lines:
        raise RuleViolation({"lines": str(_l("Add at least one product line first."))})
    policy = approvals.policy_for(KIND, amount=order.total, discount=_max_discount(order))
    if policy is None:
        _approve(order)
        return order
    order.status = WAITING
    _flush_order(order)
    approvals.submit(KIND, order, user, {"status": APPROVED}, before=current(order), policy=policy)
    return order


def reopen_for_change(pk: Any, user: Any, reason: Any, *, version: Any = None) -> SalesOrder:
    """Put an approved order that nothing was delivered or paid against back to draft so
    its lines can change; it must be submitted again (a policy that applies asks for a new
    approval). A reason is required and audited. Flushes."""
    order = records.load(SalesOrder, pk, user)
    if version not in (None, ""):
        records.check_version(order, version)
    text = _reason(reason)
    if order.status not in (APPROVED, IN_PRODUCTION) or order.deliveries or order.payments:
        raise RuleViolation({"status": str(_l("Only an approved order with no delivery or payment can be "
                                              "reopened for a change; cancel it instead."))}, status=409)
    order.status, order.approved_at = DRAFT, None
    audit.record("order_reopened", order, {"code": order.code}, reason=text, user=user)
    _flush_order(order)
    return order


def _reason(raw: Any) -> str:
    text = validation.clean_line(raw) if raw else ""
    if not text:
        raise RuleViolation({"reason": str(_l("A reason is required."))})
    if len(text) > REASON_LIMIT:
        raise RuleViolation({"reason": str(_l("At most %(n)d characters.", n=REASON_LIMIT))})
    return text


# --- status ------------------------------------------------------------------------------

def change_status(pk: Any, user: Any, to: str, *, reason: Any = None, version: Any = None) -> SalesOrder:
    """Move an order by hand (``TRANSITIONS``): approved → in production → delivering →
    delivered → closed, or cancelled. Cancel needs a reason (kept in ``cancel_reason``)
    and is refused once delivered; delivered needs every line delivered in full; closing
    needs the order delivered and paid in full, or a reason (audited). Raises
    ``RuleViolation`` (409 for a move not allowed from this status). Flushes."""
    order = records.load(SalesOrder, pk, user)
    if version not in (None, ""):
        records.check_version(order, version)
    if to not in TRANSITIONS.get(order.status, ()):
        message = _l("A delivered order cannot be cancelled.") if to == CANCELLED and order.status in (
            DELIVERED, CLOSED) else _l("An order cannot go from %(a)s to %(b)s.",
                                      a=STATUSES.get(order.status, order.status), b=STATUSES.get(to, to))
        raise RuleViolation({"status": str(message)}, status=409)
    if to == CANCELLED:
        order.cancel_reason = _reason(reason)
    elif to == DELIVERED and not fully_delivered(order):
        raise RuleViolation({"status": str(_l("Record the deliveries first: not every line is delivered."))})
    elif to == CLOSED:
        if not (fully_delivered(order) and open_amount(order) == 0):
            text = _reason(reason) if reason else None
            if text is None:
                raise RuleViolation({"reason": str(_l(
                    "The order is not delivered and paid in full: give a reason to close it."))})
            audit.record("order_closed_short", order, {"code": order.code}, reason=text, user=user)
        order.closed_at = clock.utc_now()
    order.status = to
    _flush_order(order)
    return order


# --- deliveries and payments ----------------------------------------------------------------

def record_delivery(pk: Any, user: Any, delivered_on: Any, quantities: dict[Any, Any], *,
                    note: Any = None) -> Delivery:
    """Record one shipment of an approved order: ``quantities`` line id -> quantity (text
    or Decimal; empty / 0 lines skipped; at least one). A line never gets more than ordered
    minus already delivered. Updates each line's ``delivered_quantity``, the order's
    ``delivered_amount`` (each line's amount × delivered share, 2 places; the full amount
    once delivered in full) and its status (delivering; delivered when every line is).
    Raises ``NotFound`` (order or a line of another order), ``RuleViolation``. Flushes."""
    order = records.load(SalesOrder, pk, user)
    if order.status not in TRACKING:
        raise RuleViolation({"status": str(_l("Deliveries are recorded on approved orders not yet delivered."))},
                            status=409)
    errors: dict[str, str] = {}
    day = validation.day_value(delivered_on, "delivered_on", errors)
    if day is None and "delivered_on" not in errors:
        errors["delivered_on"] = str(_l("A date is required."))
    lines = {line.id: line for line in order.lines}
    shipped: list[tuple[OrderLine, Decimal]] = []
    for key, raw in (quantities or {}).items():
        line = lines.get(db_int(key))
        if line is None:
            raise records.not_found()
        if raw in (None, "") or (not isinstance(raw, str) and raw == 0) or (isinstance(raw, str) and
                                                                          raw.strip() in ("0", "0.00")):
            continue
        field = f"line_{line.id}"
        quantity = quantity_value(raw, field, errors)
        left = line.quantity - line.delivered_quantity
        if quantity is not None and quantity > left:
            errors[field] = str(_l("At most %(left)s of %(product)s are left to deliver.", left=left,
                                   product=str(line.product)))
        elif quantity is not None:
            shipped.append((line, quantity))
    text = validation.clean_line(note) or None if note else None
    if text and len(text) > REASON_LIMIT:
        errors["note"] = str(_l("At most %(n)d characters.", n=REASON_LIMIT))
    if not shipped and not errors:
        errors["quantities"] = str(_l("Enter a quantity for at least one line."))
    if errors:
        raise RuleViolation(errors)
    delivery = Delivery(order=order, delivered_on=day, note=text, recorded_by_id=getattr(user, "id", None))
    for line, quantity in shipped:
        delivery.lines.append(DeliveryLine(line=line, quantity=quantity))
        line.delivered_quantity = line.delivered_quantity + quantity
    order.delivered_amount = sum((_delivered_value(line) for line in order.lines), Decimal(0))
    order.status = DELIVERED if fully_delivered(order) else DELIVERING
    db.session.add(delivery)
    _flush_order(order)
    return delivery


def _delivered_value(line: OrderLine) -> Decimal:
    if line.delivered_quantity >= line.quantity:
        return line.amount
    return (line.amount * line.delivered_quantity / line.quantity).quantize(_CENT, rounding=ROUND_HALF_UP)


def _flush_order(order: SalesOrder) -> None:
    """Flush a change of ``order`` (or of its lines, deliveries, payments) with the order's
    version bumped: two changes at the same moment — two payments, two deliveries, a submit
    and a line edit — cannot both pass their checks; the second is refused with
    ``StaleRecord`` (409, nothing written) instead of a server error."""
    if order.id is not None:
        flag_modified(order, "delivered_amount")
    records.flush(_l("Someone else recorded on this order at the same time. Reload it and try again."))


class OverPayment(RuleViolation):
    """A payment above the open amount: 409 so the client can confirm it (``confirm``)."""

    status = 409


def record_payment(pk: Any, user: Any, paid_on: Any, amount: Any, method: Any = None, reference: Any = None, *,
                   note: Any = None, confirm: bool = False) -> Payment:
    """Record a payment received against an approved (or delivered) order: ``amount`` in
    yuan (> 0, 2 decimals; text or Decimal), ``paid_on`` a date, ``method`` an active
    payment method (record or id; optional), ``reference`` (<= 64). More than the total
    minus what is paid is refused (``OverPayment``, 409) unless ``confirm``. Adds to the
    order's ``paid_amount``. Flushes."""
    order = records.load(SalesOrder, pk, user)
    if order.status not in PAYABLE:
        raise RuleViolation({"status": str(_l("Payments are recorded on approved orders."))}, status=409)
    errors: dict[str, str] = {}
    day = validation.day_value(paid_on, "paid_on", errors)
    if day is None and "paid_on" not in errors:
        errors["paid_on"] = str(_l("A date is required."))
    value = money(amount, "amount", errors, required=True)
    if value is not None and value <= 0:
        errors["amount"] = str(_l("Enter an amount above 0."))
    chosen = _method(method, errors)
    ref = validation.clean_line(reference) or None if reference else None
    if ref and len(ref) > REFERENCE_LIMIT:
        errors["reference"] = str(_l("At most %(n)d characters.", n=REFERENCE_LIMIT))
    text = validation.clean_line(note) or None if note else None
    if text and len(text) > REASON_LIMIT:
        errors["note"] = str(_l("At most %(n)d characters.", n=REASON_LIMIT))
    if errors:
        raise RuleViolation(errors)
    if value > open_amount(order) and not confirm:
        raise OverPayment({"amount": str(_l("This is more than the %(open)s still open on the order. Confirm "
                                            "it if the customer really paid more.", open=open_amount(order))),
                           "confirm": str(_l("Send again with confirm set if the amount is right."))})
    payment = Payment(order=order, paid_on=day, amount=value, method=chosen, reference=ref, note=text,
                      recorded_by_id=getattr(user, "id", None))
    order.paid_amount = (order.paid_amount or Decimal(0)) + value
    db.session.add(payment)
    _flush_order(order)
    return payment


def _method(raw: Any, errors: dict[str, str]) -> PaymentMethod | None:
    if raw in (None, ""):
        return None
    found = raw if isinstance(raw, PaymentMethod) else (
        db.session.get(PaymentMethod, db_int(raw)) if db_int(raw) is not None else None)
    if found is None or not found.active:
        errors["method"] = str(_l("Pick an active payment method."))
        return None
    return found


# --- lists -------------------------------------------------------------------------------

def overdue_deliveries(user: Any, today: date | None = None) -> Select:
    """Orders in ``user``'s scope not delivered in full whose delivery date is before today
    (CRM zone): approved, in production or delivering; oldest date first. A query."""
    today = today or clock.local_today()
    return select(SalesOrder).where(
        SalesOrder.status.in_(TRACKING), SalesOrder.delivery_date < today,
        scope_clause(user, SalesOrder)).order_by(SalesOrder.delivery_date, SalesOrder.id)


def overdue_payments(user: Any, today: date | None = None) -> Select:
    """Orders in ``user``'s scope not paid in full whose payment due date is before today
    (CRM zone), approved up to delivered; oldest due date first. A query."""
    today = today or clock.local_today()
    return select(SalesOrder).where(
        SalesOrder.status.in_(PAYABLE), SalesOrder.paid_amount < SalesOrder.total,
        SalesOrder.payment_due < today, scope_clause(user, SalesOrder)).order_by(
        SalesOrder.payment_due, SalesOrder.id)


# --- the daily overdue reminder ----------------------------------------------------------------

BATCH = 500
OVERDUE_EVENTS = {
    "delivery": notifications.declare_event(notifications.Event(
        "order_delivery_overdue", _l("Order delivery overdue"),
        _l("Order %(code)s %(title)s was due for delivery on %(date)s and is not delivered in full."))),
    "payment": notifications.declare_event(notifications.Event(
        "order_payment_overdue", _l("Order payment overdue"),
        _l("Order %(code)s %(title)s: payment was due on %(date)s; %(open)s is still open."))),
}


def overdue_reminders(today: date | None = None) -> int:
    """Tell each overdue order's owner, once per order and due date (occasion
    ``order_overdue_<which>:<id>:<date>``: a new date reminds again), that its delivery or
    its payment is overdue (``overdue_deliveries`` / ``overdue_payments`` as an admin sees
    them; the owner always sees their order). Returns the notifications written; commits
    per batch of ``BATCH``."""
    today = today or clock.local_today()
    told = 0
    for which, clause, due in (
        ("delivery", SalesOrder.status.in_(TRACKING) & (SalesOrder.delivery_date < today), "delivery_date"),
        ("payment", SalesOrder.status.in_(PAYABLE) & (SalesOrder.paid_amount < SalesOrder.total)
         & (SalesOrder.payment_due < today), "payment_due"),
    ):
        last = 0
        while rows := db.session.scalars(select(SalesOrder).where(clause, SalesOrder.id > last)
                                         .order_by(SalesOrder.id).limit(BATCH)).all():
            last = rows[-1].id
            for item in rows:
                day = getattr(item, due)
                told += len(notifications.notify(
                    OVERDUE_EVENTS[which].key, [item.owner_id], record=item,
                    params={"code": item.code, "title": item.title or "", "date": day.isoformat(),
                            "open": str(open_amount(item))},
                    occasion=f"order_overdue_{which}:{item.id}:{day.isoformat()}"))
            db.session.commit()
    return told


def run_order_overdue() -> int:
    """Daily: overdue deliveries and payments, to their owners."""
    return overdue_reminders()


scheduler.register("order_overdue", "Orders: overdue deliveries and payments", run_order_overdue,
                   {"hour": 7, "minute": 55})


# --- demo ----------------------------------------------------------------------------------

def build_demo(session: Session, owners: list[Any]) -> int:
    """Three demo orders on the first demo customers with an active product: one draft,
    one approved partly delivered and paid, one delivered, paid and closed. Flushes."""
    from app.models.sales import Product

    products = session.scalars(select(Product).where(Product.active.is_(True), Product.list_price.is_not(None))
                               .order_by(Product.id).limit(3)).all()
    customers = session.scalars(select(Customer).where(Customer.archived_at.is_(None)).order_by(Customer.id)
                                .limit(3)).all()
    if not products or not customers:
        return 0
    today, made = clock.local_today(), 0
    for index, (customer, status) in enumerate(zip(customers, (DRAFT, DELIVERING, CLOSED), strict=False)):
        order = SalesOrder(customer=customer, owner_id=customer.owner_id, title=f"{customer.name} 订单",
                           status=status, currency="CNY", order_date=today, delivery_date=today,
                           payment_due=today)
        for position, product in enumerate(products, start=1):
            quantity = Decimal(2 + index)
            order.lines.append(OrderLine(position=position, product=product, quantity=quantity,
                                         delivered_quantity=Decimal(0),
                                         unit_price=product.list_price, discount=Decimal(5 * index),
                                         amount=line_amount(quantity, product.list_price, Decimal(5 * index))))
        _retotal(order)
        if status != DRAFT:
            order.approved_at = clock.utc_now()
            _demo_tracking(order, full=status == CLOSED, today=today)
        if status == CLOSED:
            order.closed_at = clock.utc_now()
        session.add(order)
        made += 1
    made += _demo_history(session, products)
    session.flush()
    return made


#: Demo orders of the months before this one (the dashboards' monthly sales against target).
DEMO_HISTORY_MONTHS, DEMO_HISTORY_PER_MONTH = 6, 8


def _demo_history(session: Session, products: list[Any]) -> int:
    """Closed orders spread over the last ``DEMO_HISTORY_MONTHS`` months (the 5th to the 25th
    of each), on demo customers in turn, so the monthly sales by rep, region and product have
    a history. Deterministic: the same demo every time."""
    customers = session.scalars(select(Customer).where(Customer.archived_at.is_(None)).order_by(Customer.id)
                                .offset(3).limit(DEMO_HISTORY_MONTHS * DEMO_HISTORY_PER_MONTH)).all()
    first = clock.local_today().replace(day=1)
    for index, customer in enumerate(customers):
        back = 1 + index // DEMO_HISTORY_PER_MONTH
        month = date(first.year - (first.month - back <= 0), (first.month - back - 1) % 12 + 1, 1)
        day = month.replace(day=5 + (index * 7) % 21)
        order = SalesOrder(customer=customer, owner_id=customer.owner_id, title=f"{customer.name} 订单",
                           status=CLOSED, currency="CNY", order_date=day, delivery_date=day, payment_due=day)
        for position, product in enumerate(products[: 1 + index % len(products)], start=1):
            quantity = Decimal(1 + (index * 3) % 5)
            order.lines.append(OrderLine(position=position, product=product, quantity=quantity,
                                         delivered_quantity=Decimal(0), unit_price=product.list_price,
                                         discount=Decimal(0), amount=line_amount(quantity, product.list_price,
                                                                                 Decimal(0))))
        _retotal(order)
        order.approved_at = order.closed_at = clock.from_local(datetime.combine(day, time(10, 0)))
        _demo_tracking(order, full=True, today=day)
        session.add(order)
    return len(customers)


def _demo_tracking(order: SalesOrder, *, full: bool, today: date) -> None:
    delivery = Delivery(order=order, delivered_on=today)
    for line in order.lines[: None if full else 1]:
        delivery.lines.append(DeliveryLine(line=line, quantity=line.quantity))
        line.delivered_quantity = line.quantity
    order.delivered_amount = sum((_delivered_value(line) for line in order.lines), Decimal(0))
    paid = order.total if full else (order.total / 2).quantize(_CENT, rounding=ROUND_HALF_UP)
    order.payments.append(Payment(paid_on=today, amount=paid, reference="DEMO"))
    order.paid_amount = paid


# --- declaration -------------------------------------------------------------------------------

def _search(text: str) -> Any:
    """Quick search: code or title contains ``text`` (wildcards typed are literal)."""
    return or_(SalesOrder.code.icontains(text, autoescape=True), SalesOrder.title.icontains(text, autoescape=True))


for _model in (OrderLine, Delivery, DeliveryLine, Payment):
    audit.audited(_model)

notifications.declare_event(notifications.Event(
    "order_approved", _l("Order approved"), _l("Order %(code)s %(title)s is approved.")))

ORDER = declare(RecordType(
    name="order", model=SalesOrder, label=_l("Sales order"), plural=_l("Orders"), plural_en="Orders",
    permission="SalesOrder", scope=OWNER, code_prefix=PREFIX, editable=EDITABLE, save=save_order,
    delete=delete_order, menu_category="Sales", menu_icon="fa-shopping-cart",
    list_columns=("code", "customer", "title", "status", "total", "delivered_percent", "paid_percent",
                  "delivery_date", "owner"),
    show_columns=("code", "customer", "contact", "opportunity", "title", "status", "currency", "order_date",
                  "delivery_date", "payment_due", "total", "delivered_amount", "paid_amount", "approved_at",
                  "closed_at", "cancel_reason", "owner", "note"),
    search_columns=("code", "customer", "title", "status", "delivery_date", "payment_due", "owner"),
    order_columns=("code", "title", "total", "delivery_date", "changed_on"),
    labels=dict(LABELS),
    descriptions={
        "currency": _l("3 letters; empty = the company currency."),
        "title": _l("Optional; an order from an opportunity takes its name."),
    },
    fields=(
        ImportField("code", _l("Order code"), "订单编号", ("code", "order no", "编号", "订单号"), max_length=20,
                    note=_l("Leave empty for new orders: the CRM numbers them. Only the order header is "
                            "imported: product lines are added on the order page.")),
        ImportField("customer", _l("Customer code"), "客户编号", ("customer", "customer no", "客户代码", "客户"),
                    CUSTOMER, required=True),
        ImportField("title", _l("Order title"), "订单名称", ("title", "name", "订单标题"), max_length=TITLE_LIMIT),
        ImportField("currency", _l("Currency"), "币种", ("currency", "货币"), max_length=3,
                    note=_l("Empty = the company currency.")),
        ImportField("order_date", _l("Order date"), "下单日期", ("order date", "订单日期"), DATE),
        ImportField("delivery_date", _l("Delivery date"), "交货日期", ("delivery date", "交付日期", "发货日期"),
                    DATE),
        ImportField("payment_due", _l("Payment due"), "收款日期", ("payment due", "付款期限", "回款日期"), DATE),
        ImportField("owner", _l("Owner"), "负责人", ("owner", "sales rep", "所属销售"), USER,
                    note=_l("User name or full name; empty = you.")),
        ImportField("note", _l("Note"), "备注", ("note", "remarks", "说明"), max_length=NOTE_LIMIT),
    ),
    roles={"Sales Rep": "read|write|delete|export", "Sales Manager": "read|write|delete|export",
           "Read Only": "read", "Customer Service": "read"},
    search=_search,
    demo=build_demo,
))
