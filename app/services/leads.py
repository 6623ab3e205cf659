"""Leads (线索, code L + date + sequence): their rules, status flow and use cases.

The manual's flow (000 §二(二)): 新线索 → 初步跟进 → 意向客户 / 无效线索, i.e.
``new → contacted → qualified | invalid``. Allowed moves (``TRANSITIONS``):

- new → contacted, or straight to invalid (spam, a wrong number);
- contacted → qualified or invalid;
- qualified → contacted (the interest cooled) or invalid;
- invalid → contacted (reopened: a lead marked invalid by mistake, or that came back);
- ``converted`` is set by ``convert_lead`` only, and a converted lead is read-only.

An invalid lead needs a reason (``invalid_reason``). Every change is kept in the status
history (``LeadStatusChange``, by a ``before_flush`` listener: every writer). A new lead
without an owner is assigned by the rules (``app.services.assignment``) from every entry
point — form, API, import, web form, sync all call ``save_lead``.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.clock import utc_now
from app.extensions import db
from app.models.base import current_user_id
from app.models.customers import Customer
from app.models.dictionaries import CustomerSource, Industry
from app.models.sales import Lead, LeadStatusChange
from app.record_types import OWNER, RecordType, declare
from app.services import assignment, audit, custom_fields, notify_hooks, records, validation
from app.services.customers import resolve_phone
from app.services.errors import RuleViolation
from app.services.importing.columns import DICT, USER, ImportField

NEW, CONTACTED, QUALIFIED, INVALID, CONVERTED = "new", "contacted", "qualified", "invalid", "converted"
STATUS_LABELS = {
    NEW: _l("New"), CONTACTED: _l("Contacted"), QUALIFIED: _l("Qualified"), INVALID: _l("Invalid"),
    CONVERTED: _l("Converted"),
}
#: status -> statuses a save may move it to (``converted``: only ``convert_lead``).
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({CONTACTED, INVALID}),
    CONTACTED: frozenset({QUALIFIED, INVALID}),
    QUALIFIED: frozenset({CONTACTED, INVALID}),
    INVALID: frozenset({CONTACTED}),
    CONVERTED: frozenset(),
}
#: Statuses a lead may be created with (an import may bring leads already followed up).
START_STATUSES = (NEW, CONTACTED, QUALIFIED, INVALID)

#: Fields a save may set (form, API, import and sync rows, the web form).
EDITABLE = ("company", "contact_name", "phone", "email", "province", "city", "industry", "source",
            "campaign", "owner", "status", "invalid_reason", "note")
NOTE_LIMIT = 10000
_TEXT_LIMITS = {"company": 200, "contact_name": 64, "province": 32, "city": 32, "invalid_reason": 255}


def status_label(status: str | None) -> str:
    """The status in the reader's language (the stored code when unknown)."""
    return str(STATUS_LABELS.get(status or "", status or ""))


def _clean_text(item: Lead, errors: dict[str, str]) -> None:
    try:
        item.company = validation.require_text(item.company, _TEXT_LIMITS["company"])
    except ValueError as exc:
        errors["company"] = str(exc)
    for name in ("contact_name", "province", "city", "invalid_reason"):
        value = validation.clean_line(getattr(item, name)) or None
        if value and len(value) > _TEXT_LIMITS[name]:
            errors[name] = str(_l("At most %(n)d characters.", n=_TEXT_LIMITS[name]))
        setattr(item, name, value)
    item.note = validation.clean_block(item.note) or None
    if item.note and len(item.note) > NOTE_LIMIT:
        errors["note"] = str(_l("At most %(n)d characters.", n=NOTE_LIMIT))


def _clean_contact(item: Lead, errors: dict[str, str]) -> None:
    stored = records.previous(item, "phone")
    if validation.clean_code(item.phone):
        try:
            item.phone = resolve_phone(item.phone, stored)
        except ValueError as exc:
            errors["phone"] = str(exc)
    else:
        item.phone = None
    try:
        item.email = validation.normalize_email(item.email)
    except ValueError as exc:
        errors["email"] = str(exc)
    if not item.phone and not item.email and "phone" not in errors and "email" not in errors:
        errors["phone"] = str(_l("A phone number or an e-mail address is required."))


def _clean_choices(item: Lead, errors: dict[str, str]) -> None:
    for name in ("industry", "source"):
        try:
            validation.check_choice(getattr(item, name), records.previous(item, f"{name}_id"))
        except ValueError as exc:
            errors[name] = str(exc)


def _check_status(item: Lead, errors: dict[str, str]) -> None:
    before, after = records.previous(item, "status"), item.status or NEW
    item.status = after
    if before is None:  # a new lead
        if after not in START_STATUSES:
            errors["status"] = str(_l("A new lead starts as new, contacted, qualified or invalid."))
    elif after != before and after not in TRANSITIONS.get(before, frozenset()):
        errors["status"] = str(_l("A lead cannot go from %(before)s to %(after)s.",
                                  before=status_label(before), after=status_label(after)))
    if after == INVALID and not item.invalid_reason:
        errors["invalid_reason"] = str(_l("Say why the lead is invalid."))
    if after == INVALID and after != before:
        item.status_reason = item.invalid_reason


def clean_lead(item: Lead, user: Any) -> None:
    """Normalise and validate a lead in place (not its owner); ``RuleViolation`` lists every error."""
    errors: dict[str, str] = {}
    with db.session.no_autoflush:
        _clean_text(item, errors)
        _clean_contact(item, errors)
        _clean_choices(item, errors)
        _check_status(item, errors)
    if errors:
        raise RuleViolation(errors)


def refuse_converted(item: Lead) -> None:
    """A converted lead is a record of what happened: read-only (``RuleViolation`` 409)."""
    if item.converted_at is not None or item.status == CONVERTED:
        raise RuleViolation(str(_l("%(code)s was converted; it can no longer be changed.", code=item.code)),
                            status=409)


def _settle_owner(item: Lead, user: Any, is_new: bool) -> Any:
    """The owner given is checked (active, in the writer's scope); none given on a new (or
    unassigned) lead: the assignment rules, else the fallback owner. Returns the rule
    decision to audit, or None."""
    if records.related_id(item, "owner") is not None or not (is_new or records.previous(item, "owner_id") is None):
        records.settle_owner(item, user)
        return None
    decision = assignment.choose_owner(item, user)
    item.owner = decision.owner
    item.assigned_by_rule = decision.rule
    return decision


def save_lead(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> Lead:
    """Add (``pk`` None) or change one lead: the use case behind the form, the API, import,
    sync and the web form.

    ``values``: field -> value (``industry``/``source``/``owner`` as loaded objects). Loads
    the lead in ``user``'s scope (``NotFound``), refuses a stale ``version`` (``StaleRecord``),
    a converted lead (409), a move the status flow does not allow and an invalid lead
    without a reason (``RuleViolation``). A new lead without an owner is assigned by the
    rules (``assignment.choose_owner``) and the assignment is audited with the rule that
    fired. Flushes; the caller commits.
    """
    is_new = pk is None
    item = Lead() if is_new else records.load(Lead, pk, user)
    if not is_new:
        records.check_version(item, version)
        refuse_converted(item)
    before_owner_id = item.owner_id
    with db.session.no_autoflush:
        values = _with_campaign(item, values, user)
        records.assign(item, values, EDITABLE)
        clean_lead(item, user)
        decision = _settle_owner(item, user, is_new)
    if is_new:
        db.session.add(item)
    db.session.flush()
    if decision is not None:
        assignment.audit_decision(item, decision)
    notify_hooks.lead_assigned(item, before_owner_id, user)
    return item


def _with_campaign(item: Lead, values: dict[str, Any], user: Any) -> dict[str, Any]:
    """``values`` with the campaign resolved (``campaigns.campaign_for_lead``: in the
    writer's scope, not cancelled; an id, code or name from the API, a file or the sync)."""
    if "campaign" not in values:
        return values
    from app.services.campaigns import campaign_for_lead

    return {**values, "campaign": campaign_for_lead(values["campaign"], user, item.campaign_id)}


def delete_lead(pk: Any, user: Any) -> None:
    """Delete a lead in scope that was not converted (a converted one is kept as history)."""
    item = records.load(Lead, pk, user)
    refuse_converted(item)
    db.session.delete(item)
    db.session.flush()


def rerun_rules(pks: list[Any], user: Any) -> tuple[list[Lead], list[str]]:
    """Run the assignment rules again on leads in ``user``'s scope that have no active owner
    (unassigned, or owned by a deactivated/expired user): "re-run rules" on the lead list.

    Returns (reassigned leads, messages for the ones skipped: converted or already owned
    by an active user). ``NotFound`` if any pk is out of scope. Audited per lead.
    """
    items = records.load_many(Lead, pks, user)
    done, skipped = [], []
    for item in items:
        if item.converted_at is not None or (item.owner is not None and item.owner.is_active):
            skipped.append(str(_l("%(code)s already has an active owner.", code=item.code)))
            continue
        before_owner_id = item.owner_id
        decision = assignment.choose_owner(item, user)
        item.owner, item.assigned_by_rule = decision.owner, decision.rule
        db.session.flush()
        assignment.audit_decision(item, decision, action="reassign")
        notify_hooks.lead_assigned(item, before_owner_id, user)
        done.append(item)
    return done, skipped


def unassigned_pks(user: Any, limit: int = 500) -> list[int]:
    """Ids of leads in scope without an owner (at most ``limit``: a request does bounded work)."""
    from app.security.data_scope import scope_clause

    stmt = select(Lead.id).where(Lead.owner_id.is_(None), Lead.converted_at.is_(None),
                                 scope_clause(user, Lead)).order_by(Lead.id).limit(limit)
    return list(db.session.scalars(stmt))


# --- conversion -----------------------------------------------------------------------


def convert_lead(pk: Any, user: Any, *, create_opportunity: bool = False,
                 opportunity_values: dict[str, Any] | None = None, existing_customer_id: Any = None,
                 allow_duplicate: bool = False) -> Lead:
    """Turn a qualified lead into a customer (+ its primary contact) and optionally an
    opportunity (000 §二(二): 意向客户 → 客户); the lead keeps links to what it became.

    The duplicate rule runs first: a customer matching the lead's company, contact and
    phone raises ``dedup.DuplicateFound`` (409, listing the matches in the user's scope)
    unless ``allow_duplicate``; ``existing_customer_id`` links the lead to that customer
    instead (it must be in the user's scope and live: ``NotFound`` / ``RuleViolation``).
    ``opportunity_values`` go to ``opportunities.save_opportunity`` with the customer and
    owner filled in. Only a qualified lead converts; the lead is then ``converted`` and
    read-only. Audited ("convert"). Flushes; the caller commits.
    """
    item = records.load(Lead, pk, user)
    refuse_converted(item)
    if item.status != QUALIFIED:
        raise RuleViolation({"status": str(_l("Only a qualified lead can be converted (this one is %(status)s).",
                                              status=status_label(item.status)))})
    customer = _link_customer(existing_customer_id, user) if existing_customer_id not in (None, "") \
        else _new_customer(item, user, allow_duplicate)
    item.customer = customer
    item.contact = _primary_contact(customer)
    if create_opportunity:
        item.opportunity = _new_opportunity(item, customer, user, opportunity_values or {})
    item.status, item.converted_at = CONVERTED, utc_now()
    db.session.flush()
    audit.record("convert", item, {"lead": item.code, "customer": customer.code,
                                   "opportunity": getattr(item.opportunity, "code", None),
                                   "linked_existing": existing_customer_id not in (None, "")})
    return item


def _link_customer(customer_id: Any, user: Any) -> Customer:
    from app.services.customers import _live_customer

    return _live_customer(customer_id, user)


def _new_customer(item: Lead, user: Any, allow_duplicate: bool) -> Customer:
    from app.services.customers import save_customer

    values = {"name": item.company, "contact_name": item.contact_name, "contact_phone": item.phone,
              "email": item.email, "industry": item.industry, "source": item.source, "owner": item.owner,
              "address": " ".join(p for p in (item.province, item.city) if p) or None,
              "note": str(_l("Converted from lead %(code)s.", code=item.code)),
              **custom_fields.carried(item, "customer")}  # issue 18: the fields both types have
    return save_customer(values, user, allow_duplicate=allow_duplicate)


def _primary_contact(customer: Customer) -> Any:
    """The customer's primary contact, when contacts exist (another part adds them)."""
    try:
        from app.models.sales import Contact
    except ImportError:  # pragma: no cover - the model is in place
        return None
    return db.session.scalar(select(Contact).where(Contact.customer_id == customer.id,
                                                   Contact.is_primary.is_(True)).limit(1))


def _new_opportunity(item: Lead, customer: Customer, user: Any, values: dict[str, Any]) -> Any:
    try:
        from app.services.opportunities import save_opportunity
    except ImportError:
        raise RuleViolation(str(_l("Opportunities are not available yet."))) from None
    values = {"title": item.company, **custom_fields.carried(item, "opportunity"), **values, "customer": customer}
    values.setdefault("owner", item.owner)
    return save_opportunity(values, user)


# --- status history for every writer -------------------------------------------------


def _status_change(obj: Lead, before: str | None, after: str, reason: str | None) -> LeadStatusChange:
    return LeadStatusChange(lead=obj, from_status=before, to_status=after, changed_by_id=current_user_id(),
                            reason=(reason or None) and reason[:255])


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    records.record_status_changes(session, Lead, "status", _status_change)


def _search(text: str) -> Any:
    like = f"%{text}%"
    return Lead.company.ilike(like) | Lead.code.ilike(like) | Lead.contact_name.ilike(like)


LEAD = declare(RecordType(
    name="lead", model=Lead, label=_l("Lead"), plural=_l("Leads"), plural_en="Leads",
    permission="Lead", scope=OWNER, code_prefix="L",
    editable=EDITABLE, save=save_lead, delete=delete_lead,
    list_columns=("code", "company", "contact_name", "phone", "province", "city", "industry", "source",
                  "campaign", "status", "owner", "changed_on"),
    show_columns=("code", "company", "contact_name", "phone", "email", "province", "city", "industry",
                  "source", "campaign", "status", "invalid_reason", "owner", "assigned_by_rule", "note", "customer",
                  "contact", "opportunity", "converted_at"),
    search_columns=("code", "company", "contact_name", "province", "city", "industry", "source", "status",
                    "owner"),
    order_columns=("code", "company", "status", "changed_on"),
    labels={"company": _l("Company"), "contact_name": _l("Contact"), "phone": _l("Phone"),
            "email": _l("E-mail"), "province": _l("Province"), "city": _l("City"), "industry": _l("Industry"),
            "source": _l("Source"), "campaign": _l("Campaign"), "status": _l("Status"),
            "invalid_reason": _l("Invalid reason"),
            "note": _l("Notes"), "assigned_by_rule": _l("Assigned by rule"), "customer": _l("Customer"),
            "contact": _l("Contact person"), "opportunity": _l("Opportunity"),
            "converted_at": _l("Converted at")},
    descriptions={"owner": _l("Leave empty to assign the lead by the assignment rules."),
                  "status": _l("new → contacted → qualified or invalid; an invalid lead needs a reason.")},
    fields=(
        ImportField("code", _l("Lead code"), "线索编号", ("code", "lead no", "编号"), max_length=20,
                    note=_l("Leave empty for new leads: the CRM numbers them.")),
        ImportField("company", _l("Company"), "公司名称", ("company", "company name", "客户名称", "企业名称"),
                    required=True, max_length=200),
        ImportField("contact_name", _l("Contact"), "联系人", ("contact", "联系人姓名", "姓名"), max_length=64),
        ImportField("phone", _l("Phone"), "联系电话", ("phone", "mobile", "联系方式", "手机", "电话"), max_length=32),
        ImportField("email", _l("E-mail"), "邮箱", ("email", "e-mail", "电子邮箱"), max_length=120),
        ImportField("province", _l("Province"), "省份", ("province", "省", "地区"), max_length=32),
        ImportField("city", _l("City"), "城市", ("city", "市"), max_length=32),
        ImportField("industry", _l("Industry"), "所属行业", ("industry", "行业"), DICT, dictionary=Industry),
        ImportField("source", _l("Source"), "线索来源", ("source", "信息来源", "来源"), DICT,
                    dictionary=CustomerSource),
        ImportField("campaign", _l("Campaign"), "市场活动",
                    ("campaign", "活动", "市场活动", "campaign code", "活动编号"), max_length=200,
                    note=_l("Campaign code or theme (one you may see, not cancelled).")),
        ImportField("status", _l("Status"), "线索状态", ("status", "状态"), max_length=16,
                    note=_l("new, contacted, qualified or invalid.")),
        ImportField("invalid_reason", _l("Invalid reason"), "无效原因", ("invalid reason", "无效原因"),
                    max_length=255),
        ImportField("owner", _l("Owner"), "负责人", ("owner", "sales", "负责人", "销售"), USER,
                    note=_l("Leave empty to assign by the assignment rules.")),
        ImportField("note", _l("Notes"), "备注", ("note", "notes", "remark", "备注"), max_length=NOTE_LIMIT),
    ),
    roles={"Sales Rep": "read|write|export", "Sales Manager": "read|write|delete|export",
           "Customer Service": "read", "Read Only": "read"},
    search=_search,
    menu_icon="fa-bullhorn",
))
