"""Opportunities (商机, code O + date + sequence): their rules and use cases.

Rules come from the manuals: 000 §二(二) (stages, the fields required to enter each),
003 第二步–第三步 (stage weights, expected amount = 预估单价 × 预估数量 or the sum of the
product lines, 方案提交 超7天未更新 = stale), 002 §四(一)1 / 003 竞争分析 (competitors),
000 §四(二) (an expected amount far above the customer's history is questioned).

Every stage change — form, REST API, kanban drag, import, sync — goes through
``_apply_stage`` (``move_stage`` and ``save_opportunity`` both call it): the entered
stage's required fields must be filled, a lost stage needs a reason, and the change is
kept in the stage history with the days spent in the stage left. The caller commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, false, func, or_, select

from app.clock import as_utc, utc_now
from app.extensions import db
from app.models.sales import Competitor, Opportunity, OpportunityLine, OpportunityStageChange, Product, Stage
from app.record_types import OWNER, RecordType, declare
from app.security.data_scope import scope_clause
from app.security.request_bounds import db_int
from app.services import audit, records, validation
from app.services.errors import RuleViolation
from app.services.follow_ups import customer_problem
from app.services.importing.columns import CUSTOMER, DATE, DICT, USER, ImportField
from app.services.products import MAX_MONEY, money

#: Fields a save may set (form, API, import and sync rows).
EDITABLE = ("customer", "title", "stage", "amount", "unit_price", "quantity", "expected_close",
            "probability_override", "owner", "lost_reason", "demand", "proposal_version")
#: Fields a stage may require (``Stage.required_fields``, one a line): the plain values a
#: kanban drop may send along with the move (``move_stage(values=...)``).
REQUIRABLE = ("amount", "unit_price", "quantity", "expected_close", "probability_override",
              "lost_reason", "demand", "proposal_version")
#: Largest quantity Numeric(12, 2) holds.
MAX_QUANTITY = Decimal("9999999999.99")
_CENT = Decimal("0.01")
_TEXT_LIMITS = {"lost_reason": 255, "proposal_version": 64}
DEMAND_LIMIT = NOTE_LIMIT = 10000

LABELS = {
    "customer": _l("Customer"), "title": _l("Opportunity name"), "stage": _l("Stage"),
    "amount": _l("Amount"), "unit_price": _l("Unit price"), "quantity": _l("Quantity"),
    "expected_close": _l("Expected close date"), "probability_override": _l("Probability override (%)"),
    "probability": _l("Probability (%)"), "owner": _l("Owner"), "lost_reason": _l("Lost reason"),
    "demand": _l("Demand description"), "proposal_version": _l("Proposal version"),
    "stage_entered_at": _l("In stage since"),
}


class AmountImplausible(RuleViolation):
    """The amount is far above the customer's history (000 §四(二)); 409 so a client can
    confirm (``confirm_amount``: the form's tick box, the API's ``?confirm_amount=1``)."""

    status = 409

    def __init__(self, factor: Decimal) -> None:
        super().__init__({
            "confirm_amount": str(_l(
                "This amount is more than %(factor)s times the largest opportunity this customer has won. "
                "Tick 'Amount confirmed' if it is right.", factor=_number(factor))),
            "confirm": str(_l("Send the request again with ?confirm_amount=1 if the amount is right.")),
        })


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


# --- parsing plain values (forms and the API give types; kanban drops and rows give text) -------

def quantity_value(raw: Any, field: str, errors: dict[str, str]) -> Decimal | None:
    """A quantity above 0 with at most 2 decimals (None when empty); else a message in ``errors``."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = validation.decimal_value(raw)
    except (InvalidOperation, ValueError):
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0 or value > MAX_QUANTITY or value != value.quantize(_CENT):
        errors[field] = str(_l("Enter a quantity above 0 and up to %(max)s with at most 2 decimals.",
                               max=MAX_QUANTITY))
        return None
    return value


def percent_value(raw: Any, field: str, errors: dict[str, str], *, whole: bool) -> Decimal | None:
    """0–100 (whole numbers when ``whole``, else 2 decimals), None when empty."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = validation.decimal_value(raw.strip().rstrip("%％") if isinstance(raw, str) else raw)
    except (InvalidOperation, ValueError):
        value = Decimal("NaN")
    step = Decimal(1) if whole else _CENT
    if not value.is_finite() or value.is_signed() or value > 100 or value != value.quantize(step):
        errors[field] = str(_l("Enter a whole percentage from 0 to 100.") if whole
                            else _l("Enter a percentage from 0 to 100 with at most 2 decimals."))
        return None
    return value


def line_amount(quantity: Decimal, unit_price: Decimal, discount: Decimal) -> Decimal:
    """quantity × unit price × (1 − discount %), rounded half up to the fen."""
    return (quantity * unit_price * (1 - discount / 100)).quantize(_CENT, rounding=ROUND_HALF_UP)


# --- the opportunity rules ----------------------------------------------------------------------

def _filled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _clean_fields(item: Opportunity, errors: dict[str, str]) -> None:
    """Text, numbers and dates in place (messages into ``errors``)."""
    try:
        item.title = validation.require_text(item.title, 200)
    except ValueError as exc:
        errors["title"] = str(exc)
    for name, limit in _TEXT_LIMITS.items():
        text = validation.clean_line(getattr(item, name)) or None
        if text and len(text) > limit:
            errors[name] = str(_l("At most %(n)d characters.", n=limit))
        setattr(item, name, text)
    item.demand = validation.clean_block(item.demand) or None
    if item.demand and len(item.demand) > DEMAND_LIMIT:
        errors["demand"] = str(_l("At most %(n)d characters.", n=DEMAND_LIMIT))
    item.amount = money(item.amount, "amount", errors)
    item.unit_price = money(item.unit_price, "unit_price", errors)
    item.quantity = quantity_value(item.quantity, "quantity", errors)
    override = percent_value(item.probability_override, "probability_override", errors, whole=True)
    item.probability_override = None if override is None else int(override)
    item.expected_close = validation.day_value(item.expected_close, "expected_close", errors)


def _settle_amount(item: Opportunity, submitted: bool, errors: dict[str, str]) -> None:
    """003 预估金额: the sum of the product lines when there are any, else unit price ×
    quantity when both are given, else the amount as typed. A submitted amount that
    contradicts the computed one (and is not just the stored value sent back) is refused."""
    if errors.keys() & {"amount", "unit_price", "quantity"}:
        return
    lines = list(item.lines) if item.id is not None else []
    if lines:
        computed, why = sum((line.amount for line in lines), Decimal(0)), _l("the sum of the product lines")
    elif item.unit_price is not None and item.quantity is not None:
        computed, why = (item.unit_price * item.quantity).quantize(_CENT, ROUND_HALF_UP), _l("unit price × quantity")
    else:
        return
    if computed > MAX_MONEY:
        errors["amount"] = str(_l("The amount %(why)s is too large.", why=why))
        return
    stored = records.previous(item, "amount")
    if submitted and item.amount is not None and item.amount != computed and item.amount != stored:
        errors["amount"] = str(_l("The amount is %(why)s (%(value)s): leave it empty or change those instead.",
                                  why=why, value=computed))
        return
    item.amount = computed


def _apply_stage(item: Opportunity, errors: dict[str, str]) -> Stage | None:
    """THE stage rule (every entry point): an active stage (default the first); entering it
    needs its required fields, staying in it keeps them filled, a lost stage needs a
    reason. Returns the stage entered (None: no change, or errors), for
    ``_record_stage_change`` once every other rule passed too."""
    before_id = records.previous(item, "stage_id")
    stage = _stage_of(item)
    if stage is None:
        errors["stage"] = str(_l("A stage is required."))
        return None
    entering = stage.id != before_id
    try:
        validation.check_choice(stage, before_id)
    except ValueError as exc:
        errors["stage"] = str(exc)
        return None
    required = list(stage.required_list)
    if stage.is_lost and "lost_reason" not in required:
        required.append("lost_reason")
    for name in required:
        if name not in EDITABLE or name in errors:
            continue
        now_filled = _filled(getattr(item, name))
        if not now_filled and (entering or _filled(records.previous(item, name))):
            errors[name] = str(_l("%(field)s is required in the stage %(stage)s.",
                                  field=LABELS.get(name, name), stage=stage.label))
    return stage if entering and not errors else None


def _stage_of(item: Opportunity) -> Stage | None:
    stage_id = records.related_id(item, "stage")
    if stage_id is None:
        item.stage = first_stage()
        return item.stage
    return item.stage if item.stage is not None and item.stage.id == stage_id else db.session.get(Stage, stage_id)


def first_stage() -> Stage | None:
    """The default stage of a new opportunity: the active stage with the lowest sort order."""
    return db.session.scalars(select(Stage).where(Stage.active.is_(True))
                              .order_by(Stage.sort_order, Stage.id).limit(1)).first()


def days_between(start: datetime | None, end: datetime) -> int | None:
    """Whole days from ``start`` to ``end`` (floor, never negative); None without a start."""
    if start is None:
        return None
    return max((end - as_utc(start)).days, 0)


def _record_stage_change(item: Opportunity, stage: Stage, user: Any) -> None:
    """History row (from, to, who, when, whole days in the stage left); the stage clock restarts."""
    before_id = records.previous(item, "stage_id")
    now = utc_now()
    days = days_between(records.previous(item, "stage_entered_at"), now) if before_id is not None else None
    db.session.add(OpportunityStageChange(
        opportunity=item, from_stage_id=before_id, to_stage_id=stage.id, changed_at=now,
        changed_by_id=getattr(user, "id", None), days_in_stage=days))
    item.stage_entered_at = now


def plausible_factor() -> Decimal:
    """``CRM_PLAUSIBLE_AMOUNT_FACTOR`` (default 5)."""
    raw = current_app.config.get("CRM_PLAUSIBLE_AMOUNT_FACTOR", 5) if has_app_context() else 5
    return Decimal(str(raw))


def _check_plausible(item: Opportunity, confirmed: bool) -> None:
    """000 §四(二): an amount (new or changed) above factor × the customer's largest won
    opportunity raises ``AmountImplausible`` unless confirmed. No won history: no check.
    The message names no figure (the history may be a colleague's)."""
    if confirmed or item.amount is None:
        return
    if item.id is not None and item.amount == records.previous(item, "amount"):
        return
    customer_id = records.related_id(item, "customer")
    largest = db.session.scalar(
        select(func.max(Opportunity.amount)).join(Stage, Stage.id == Opportunity.stage_id)
        .where(Opportunity.customer_id == customer_id, Stage.is_won.is_(True),
               Opportunity.id != (item.id or 0)))
    factor = plausible_factor()
    if largest and largest > 0 and item.amount > factor * largest:
        raise AmountImplausible(factor)


def _save(item: Opportunity, values: dict[str, Any], user: Any, editable: tuple[str, ...],
          confirm_amount: bool) -> Opportunity:
    """Assign ``values``, apply every rule (``RuleViolation`` listing every error), flush.
    A refusal leaves the stored opportunity as it was (its unsaved changes are discarded),
    so a caller that retries without rolling back cannot flush half a move."""
    try:
        return _checked_save(item, values, user, editable, confirm_amount)
    except RuleViolation:
        if item.id is not None:
            db.session.expire(item)
        raise


def _checked_save(item: Opportunity, values: dict[str, Any], user: Any, editable: tuple[str, ...],
                  confirm_amount: bool) -> Opportunity:
    new = item.id is None
    with db.session.no_autoflush:
        records.assign(item, values, editable)
        errors: dict[str, str] = {}
        _clean_fields(item, errors)
        customer_id = records.related_id(item, "customer")
        if new or customer_id != records.previous(item, "customer_id"):
            problem = customer_problem(customer_id, user)
            if problem:
                errors["customer"] = problem
        _settle_amount(item, "amount" in values, errors)
        entered = _apply_stage(item, errors)
        try:
            records.settle_owner(item, user)
        except RuleViolation as exc:
            if not errors:
                raise
            errors.update(exc.errors)
        if errors:
            raise RuleViolation(errors)
        _check_plausible(item, confirm_amount)
        if entered is not None:
            _record_stage_change(item, entered, user)
    if new:
        db.session.add(item)
    db.session.flush()
    return item


# --- use cases ------------------------------------------------------------------------------------

def save_opportunity(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None,
                     confirm_amount: bool = False) -> Opportunity:
    """Add (``pk`` None) or change one opportunity: form, API, import and sync.

    ``values``: field -> value (``customer``/``stage``/``owner`` as loaded objects; amounts,
    quantity, dates and the override may also be text). Loads the opportunity in ``user``'s
    scope (``NotFound``), refuses a stale ``version`` (``StaleRecord``), then the rules:
    the customer live and in scope (new or changed); a title; amounts in yuan (2 decimals);
    the amount is computed — the sum of the product lines when there are any (lines win),
    else unit price × quantity when both are given (003), else as typed; probability
    override 0–100 or empty (= the stage's weight; it survives stage changes until
    cleared); the stage rule (``_apply_stage``: default the first stage, required fields,
    lost reason, history); owner active and in scope. Then the plausibility warning
    (``AmountImplausible``, 409, unless ``confirm_amount``). Flushes; the caller commits.
    """
    item = Opportunity() if pk is None else records.load(Opportunity, pk, user)
    if pk is not None:
        records.check_version(item, version)
    return _save(item, values, user, EDITABLE, confirm_amount)


def move_stage(pk: Any, stage_id: Any, user: Any, *, version: Any = None, values: dict[str, Any] | None = None,
               confirm_amount: bool = False) -> Opportunity:
    """Move opportunity ``pk`` to stage ``stage_id``: THE use case of a stage change (kanban
    drag, form, API, import, sync reach the same ``_apply_stage``).

    ``values``: fields filled with the move (``REQUIRABLE`` only; text is parsed), applied
    before the check, so a kanban drop can send what the stage requires. ``version``: when
    given, a stale one is refused (``StaleRecord``). Raises ``NotFound`` (missing or out of
    scope), ``RuleViolation({field: message})`` naming each missing field by its label, or
    for an unknown / inactive stage. Records the stage history (days in the stage left) and
    resets ``stage_entered_at``. Moving to the current stage changes nothing but ``values``.
    The caller commits.
    """
    item = records.load(Opportunity, pk, user)
    if version not in (None, ""):
        records.check_version(item, version)
    number = db_int(stage_id)
    stage = db.session.get(Stage, number) if number is not None else None
    if stage is None:
        raise RuleViolation({"stage": str(_l("Unknown stage."))})
    return _save(item, {**(values or {}), "stage": stage}, user, (*REQUIRABLE, "stage"), confirm_amount)


def delete_opportunity(pk: Any, user: Any) -> None:
    """Delete an opportunity in scope with its lines, competitors and stage history (the
    audit log keeps it); leads, orders and activities naming it lose the link (the foreign
    keys' SET NULL; ``app.models.on_delete`` on SQLite)."""
    item = records.load(Opportunity, pk, user)
    db.session.delete(item)  # its lines, competitors and stage history go with it (the model's cascade)
    db.session.flush()


def stale_opportunities(user: Any) -> Select:
    """Opportunities in ``user``'s scope not updated for their stage's ``stale_days``
    (003: 方案提交 超7天未更新), oldest change first. A query: callers page it."""
    return select(Opportunity).where(stale_clause(), scope_clause(user, Opportunity)).order_by(
        Opportunity.changed_on)


def stale_clause(now: datetime | None = None) -> Any:
    """SQL condition: the opportunity's stage has ``stale_days`` and ``changed_on`` is older
    than that before ``now`` (UTC instant; default: now). One term per such stage (a
    handful), so no database-specific date arithmetic."""
    now = now or utc_now()
    stages = db.session.execute(select(Stage.id, Stage.stale_days).where(
        Stage.stale_days.is_not(None), Stage.stale_days > 0)).all()
    terms = [and_(Opportunity.stage_id == sid, Opportunity.changed_on < now - timedelta(days=days))
             for sid, days in stages]
    return or_(*terms) if terms else false()


# --- competitors and product lines ----------------------------------------------------------------

def _child(model: type, opportunity: Opportunity, pk: Any) -> Any:
    number = db_int(pk)
    child = db.session.get(model, number) if number is not None else None
    if child is None or child.opportunity_id != opportunity.id:
        raise records.not_found()
    return child


def save_competitor(opportunity_pk: Any, values: dict[str, Any], user: Any, *, pk: Any = None) -> Competitor:
    """Add or change a competitor (竞争分析: name, strengths, weaknesses) on an opportunity
    in ``user``'s scope (``NotFound`` otherwise, also for a competitor of another one)."""
    opportunity = records.load(Opportunity, opportunity_pk, user)
    item = None if pk is None else _child(Competitor, opportunity, pk)
    unknown = sorted(set(values) - {"name", "strengths", "weaknesses"})
    if unknown:
        raise RuleViolation({name: str(_l("This field cannot be set.")) for name in unknown})
    errors: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    try:
        cleaned["name"] = validation.require_text(values.get("name", getattr(item, "name", None)), 200)
    except ValueError as exc:
        errors["name"] = str(exc)
    for name in ("strengths", "weaknesses"):
        cleaned[name] = validation.clean_block(values.get(name, getattr(item, name, None))) or None
        if cleaned[name] and len(cleaned[name]) > NOTE_LIMIT:
            errors[name] = str(_l("At most %(n)d characters.", n=NOTE_LIMIT))
    if errors:  # nothing touched yet: a refusal leaves the session clean
        raise RuleViolation(errors)
    item = item or Competitor(opportunity=opportunity)
    for name, value in cleaned.items():
        setattr(item, name, value)
    db.session.add(item)
    db.session.flush()
    return item


def delete_competitor(opportunity_pk: Any, pk: Any, user: Any) -> None:
    """Remove a competitor from an opportunity in ``user``'s scope."""
    opportunity = records.load(Opportunity, opportunity_pk, user)
    db.session.delete(_child(Competitor, opportunity, pk))
    db.session.flush()


def product_value(raw: Any, before_id: int | None, errors: dict[str, str]) -> Product | None:
    product = raw if isinstance(raw, Product) else (
        db.session.get(Product, db_int(raw)) if db_int(raw) is not None else None)
    if product is None:
        errors["product"] = str(_l("Pick a product.") if raw in (None, "") else _l("Product not found."))
        return None
    if not product.active and product.id != before_id:
        errors["product"] = str(_l("%(label)s is no longer in use; pick another value.", label=str(product)))
    return product


def save_line(opportunity_pk: Any, values: dict[str, Any], user: Any, *, pk: Any = None) -> OpportunityLine:
    """Add or change a product line (product, quantity, unit price, discount %) on an
    opportunity in ``user``'s scope. The product must be active (when newly picked); the
    quantity above 0; the unit price defaults to the product's list price; the discount
    0–100 %; amount = quantity × unit price × (1 − discount/100), to the fen. The
    opportunity's amount becomes the sum of its lines. ``RuleViolation`` names the fields."""
    opportunity = records.load(Opportunity, opportunity_pk, user)
    item = None if pk is None else _child(OpportunityLine, opportunity, pk)
    unknown = sorted(set(values) - {"product", "quantity", "unit_price", "discount"})
    if unknown:
        raise RuleViolation({name: str(_l("This field cannot be set.")) for name in unknown})
    errors: dict[str, str] = {}
    with db.session.no_autoflush:
        stored = {name: getattr(item, name, None) for name in ("product", "product_id", "quantity", "unit_price",
                                                               "discount")}
        product = product_value(values.get("product", stored["product"]), stored["product_id"], errors)
        quantity = quantity_value(values.get("quantity", stored["quantity"]), "quantity", errors)
        if quantity is None and "quantity" not in errors:
            errors["quantity"] = str(_l("A quantity is required."))
        price = money(values.get("unit_price", stored["unit_price"]), "unit_price", errors)
        if price is None and "unit_price" not in errors and product is not None:
            price = product.list_price  # 003: the list price unless negotiated
            if price is None:
                errors["unit_price"] = str(_l("A unit price is required (the product has no list price)."))
        discount = percent_value(values.get("discount", stored["discount"]), "discount", errors, whole=False)
        if errors:  # nothing touched yet: a refusal leaves the session clean
            raise RuleViolation(errors)
        item = item or OpportunityLine(opportunity=opportunity)
        item.product, item.quantity, item.unit_price = product, quantity, price
        item.discount = discount or Decimal(0)
        item.amount = line_amount(quantity, price, item.discount)
        if pk is None:
            item.position = 1 + (db.session.scalar(select(func.max(OpportunityLine.position)).where(
                OpportunityLine.opportunity_id == opportunity.id)) or 0)
        try:
            _total_lines(opportunity)
        except RuleViolation:
            if pk is None:
                opportunity.lines.remove(item)
                if item in db.session:
                    db.session.expunge(item)
            db.session.expire(opportunity)
            raise
    db.session.add(item)
    db.session.flush()
    return item


def delete_line(opportunity_pk: Any, pk: Any, user: Any) -> None:
    """Remove a product line; the opportunity's amount becomes the sum of the rest (or stays
    as it was when none is left)."""
    opportunity = records.load(Opportunity, opportunity_pk, user)
    line = _child(OpportunityLine, opportunity, pk)
    opportunity.lines.remove(line)
    db.session.delete(line)
    _total_lines(opportunity)
    db.session.flush()


def _total_lines(opportunity: Opportunity) -> None:
    if opportunity.lines:
        total = sum((line.amount for line in opportunity.lines), Decimal(0))
        if total > MAX_MONEY:
            raise RuleViolation({"amount": str(_l("The amount %(why)s is too large.",
                                                  why=_l("the sum of the product lines")))})
        opportunity.amount = total


# --- the stage dictionary (admin screen) -----------------------------------------------------------

_FIELD_SEPARATORS = ("\r", ",", "，", ";", "；", "、", " ")


def check_stage(entry: Stage) -> None:
    """A stage as an admin saves it: the dictionary rules (code, labels, aliases), weight
    0–100, not both won and lost, stale days empty or 1–3650, and required fields that are
    opportunity fields (``REQUIRABLE``; by name, one a line or comma separated — stored one a
    line, without repeats). ``RuleViolation`` names the fields."""
    from app.services.dictionaries import check_entry

    errors: dict[str, str] = {}
    try:
        check_entry(entry)
    except RuleViolation as exc:
        errors.update(exc.errors)
    if entry.weight is None or not 0 <= entry.weight <= 100:
        errors["weight"] = str(_l("Enter a whole percentage from 0 to 100."))
    if entry.is_won and entry.is_lost:
        errors["is_lost"] = str(_l("A stage is either won or lost, not both."))
    if entry.stale_days is not None and not 1 <= entry.stale_days <= 3650:
        errors["stale_days"] = str(_l("Leave empty (never stale) or enter 1 to 3650 days."))
    text = str(entry.required_fields or "")
    for separator in _FIELD_SEPARATORS:
        text = text.replace(separator, "\n")
    names = list(dict.fromkeys(part.strip() for part in text.split("\n") if part.strip()))
    unknown = [name for name in names if name not in REQUIRABLE]
    if unknown:
        errors["required_fields"] = str(_l("Unknown fields: %(names)s. Use: %(known)s.",
                                           names=", ".join(unknown), known=", ".join(REQUIRABLE)))
    entry.required_fields = "\n".join(names) or None
    if errors:
        raise RuleViolation(errors)


def check_stage_delete(entry: Stage) -> None:
    """A stage that opportunities or their history use is never deleted: deactivate it."""
    used = records.references(entry)
    if used:
        raise RuleViolation(str(_l("%(name)s is used by %(n)d records: deactivate it instead.",
                                   name=entry.label, n=used)))


def _search(text: str) -> Any:
    """Quick search: code or title contains ``text`` (wildcards typed are literal)."""
    return or_(Opportunity.code.icontains(text, autoescape=True), Opportunity.title.icontains(text, autoescape=True))


audit.audited(Competitor)
audit.audited(OpportunityLine)

OPPORTUNITY = declare(RecordType(
    name="opportunity", model=Opportunity, label=_l("Opportunity"), plural=_l("Opportunities"),
    plural_en="Opportunities", permission="Opportunity", scope=OWNER, code_prefix="O",
    editable=EDITABLE, save=save_opportunity, delete=delete_opportunity,
    list_columns=("code", "customer", "title", "stage", "amount", "probability", "expected_close", "owner"),
    show_columns=("code", "customer", "title", "stage", "stage_entered_at", "amount", "unit_price", "quantity",
                  "probability", "probability_override", "expected_close", "owner", "demand",
                  "proposal_version", "lost_reason"),
    search_columns=("code", "customer", "title", "stage", "expected_close", "owner"),
    order_columns=("code", "title", "amount", "expected_close", "changed_on"),
    labels=dict(LABELS),
    descriptions={
        "amount": _l("Yuan. Computed from the product lines, or unit price × quantity, when those are given."),
        "probability_override": _l("Leave empty to use the stage's weight; an override stays until cleared."),
        "lost_reason": _l("Required when the opportunity is lost."),
    },
    fields=(
        ImportField("code", _l("Opportunity code"), "商机编号", ("code", "opportunity no", "编号"), max_length=20,
                    note=_l("Leave empty for new opportunities: the CRM numbers them.")),
        ImportField("customer", _l("Customer code"), "客户编号", ("customer", "customer no", "客户代码"), CUSTOMER,
                    required=True),
        ImportField("title", _l("Opportunity name"), "商机名称", ("title", "name", "opportunity", "商机", "项目名称"),
                    required=True, max_length=200),
        ImportField("stage", _l("Stage"), "阶段", ("stage", "sales stage", "销售阶段"), DICT, dictionary=Stage,
                    note=_l("Empty = the first stage. A stage's required fields must be filled.")),
        ImportField("amount", _l("Amount"), "金额", ("amount", "expected amount", "预估金额", "预计金额"),
                    note=_l("Yuan, up to 2 decimals; unit price × quantity when both are given.")),
        ImportField("unit_price", _l("Unit price"), "单价", ("unit price", "price", "预估单价")),
        ImportField("quantity", _l("Quantity"), "数量", ("quantity", "qty", "预估数量")),
        ImportField("expected_close", _l("Expected close date"), "预计成交日期",
                    ("expected close", "close date", "成交日期"), DATE),
        ImportField("demand", _l("Demand description"), "需求描述", ("demand", "requirements", "需求"),
                    max_length=DEMAND_LIMIT),
        ImportField("proposal_version", _l("Proposal version"), "方案版本", ("proposal", "proposal version", "方案"),
                    max_length=64),
        ImportField("lost_reason", _l("Lost reason"), "输单原因", ("lost reason", "reason lost", "丢单原因"),
                    max_length=255),
        ImportField("owner", _l("Owner"), "负责人", ("owner", "sales rep", "跟进人", "所属销售"), USER,
                    note=_l("User name or full name; empty = you.")),
    ),
    roles={"Sales Rep": "read|write|delete|export", "Sales Manager": "read|write|delete|export",
           "Read Only": "read", "Customer Service": "read"},
    menu_icon="fa-line-chart",
    search=_search,
))
