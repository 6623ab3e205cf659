"""Contracts (合同, code HT + date + sequence): their rules, use cases, attachments and the
expiry reminder.

Rules from the manuals and issue 15: 001 使用规范二 (a won customer needs a contract
number: ``customer_approvals.signed_numbers`` reads the signed ones), 003 第三步 3
(合同到期前30天提醒续签: ``expiry_reminders``, days from the ``contract_expiry_days`` setting).
A contract belongs to its customer and may cover several of that customer's orders; its
``number`` is the one on the paper (unique, compared trimmed and full-width folded).

Status: draft → active (needs number, signed date, start date) → expired (by date: the
daily job, or an import of an old contract whose end date passed) | terminated (a reason
is required; a draft may be terminated too: abandoned). Expired and terminated contracts
are closed: only the note may change; renewing makes a new draft (``renew``).

Every use case loads in the caller's scope (``records.load``: another rep's contract is
"not found"), checks the version, applies the rules (``RuleViolation`` field -> message),
flushes and leaves the commit to the caller. Changes are audited field by field (the
declared type), so a change to an active contract's number, amount or dates is on record.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from app import clock, scheduler
from app.extensions import db
from app.models.customers import Customer
from app.models.dictionaries import CustomerType
from app.models.orders import SIGNED_STATUSES, Contract, SalesOrder
from app.models.org import CrmUser
from app.record_types import OWNER, RecordType, declare
from app.security import data_scope
from app.security.request_bounds import db_int
from app.security.rights import is_admin
from app.services import attachments, notifications, records, validation
from app.services import settings as crm_settings
from app.services.accounts import manager_above
from app.services.errors import RuleForbidden, RuleViolation
from app.services.follow_ups import customer_problem
from app.services.importing.columns import CUSTOMER, DATE, USER, ImportField
from app.services.notifications import EMAIL, IN_APP, Event
from app.services.products import money

#: Statuses of a contract the customer signed (a draft is not a basis for 成交客户).

#: status -> label; the aliases an import or the API may use (both languages).
STATUSES = {"draft": _l("Draft"), "active": _l("Active"), "expired": _l("Expired"),
            "terminated": _l("Terminated")}
STATUS_ALIASES = {"draft": ("草稿", "未生效"), "active": ("生效", "有效", "执行中", "已生效"),
                  "expired": ("已到期", "到期", "过期", "已过期"), "terminated": ("已终止", "终止", "解除")}
#: status -> statuses it may move to (expired by date only; closed contracts stay closed).
MOVES = {"draft": ("active", "expired", "terminated"), "active": ("expired", "terminated"),
         "expired": (), "terminated": ()}
CLOSED = ("expired", "terminated")
#: Fields a save may set (form, API, import and sync rows).
EDITABLE = ("customer", "number", "title", "amount", "signed_on", "starts_on", "ends_on", "orders", "owner",
            "note", "status", "terminated_reason")
#: What the add/edit form shows (the status moves by the page's buttons).
FORM_FIELDS = ("customer", "number", "title", "amount", "signed_on", "starts_on", "ends_on", "orders", "owner",
               "note")
#: Kinds a contract's attachment may be (judged by content): scans and PDFs.
ATTACHMENT_KINDS = (*attachments.DOCUMENT, *attachments.SCREENSHOT, *attachments.OFFICE)
NUMBER_LIMIT = 64
TITLE_LIMIT = 200
REASON_LIMIT = 255
NOTE_LIMIT = 10000
#: Longest window the expiring list looks ahead (days).
MAX_WINDOW = 366
#: Rows one batch of the expiry job reads.
BATCH = 500

LABELS = {
    "customer": _l("Customer"), "number": _l("Contract number"), "title": _l("Contract title"),
    "amount": _l("Contract amount"), "currency": _l("Currency"), "signed_on": _l("Signed on"),
    "starts_on": _l("Starts on"), "ends_on": _l("Ends on"), "status": _l("Status"), "owner": _l("Owner"),
    "renewal_of": _l("Renewal of"), "terminated_reason": _l("Termination reason"), "note": _l("Note"),
    "orders": _l("Orders"),
}

EXPIRY = notifications.declare_event(Event(
    "contract_expiry", _l("Contract expiring"),
    _l("Contract %(code)s %(title)s (customer %(customer)s) ends on %(ends_on)s, in %(days)s days: talk to the "
       "customer about renewing it."), (IN_APP, EMAIL)))

REMIND = crm_settings.declare(crm_settings.Setting(
    "reminder_contract_expiry", crm_settings.BOOL, True, _l("Remind owners of contracts about to expire"),
    section=_l("Reminders")))


# --- values -------------------------------------------------------------------------------------

def status_code(raw: Any) -> str:
    """A status from its code, its label or an alias in either language (生效 -> active);
    empty -> draft. ``ValueError`` naming the choices otherwise."""
    text = validation.clean_code(raw).strip().casefold() if raw is not None else ""
    if not text:
        return "draft"
    for code, aliases in STATUS_ALIASES.items():
        if text == code or text in aliases or text == str(STATUSES[code]).casefold():
            return code
    raise ValueError(str(_l("Pick one of: %(kinds)s.", kinds=", ".join(str(v) for v in STATUSES.values()))))


def normal_number(raw: Any) -> str | None:
    """A contract number as compared and stored: full-width folded (NFKC), invisible
    characters dropped, spaces collapsed, trimmed; None when empty."""
    text = " ".join(validation.clean_code(raw).split()) if raw is not None else ""
    return text or None


def number_taken(number: str, own_id: int | None) -> bool:
    """Whether another contract (any owner: numbers are company-wide) has ``number``,
    compared without case."""
    stmt = select(Contract.id).where(func.upper(Contract.number) == number.upper())
    if own_id is not None:
        stmt = stmt.where(Contract.id != own_id)
    return db.session.scalar(stmt.limit(1)) is not None


# --- the rules ----------------------------------------------------------------------------------

def _text(item: Contract, errors: dict[str, str]) -> None:
    try:
        item.title = validation.require_text(item.title, TITLE_LIMIT)
    except ValueError as exc:
        errors["title"] = str(exc)
    item.number = normal_number(item.number)
    if item.number and len(item.number) > NUMBER_LIMIT:
        errors["number"] = str(_l("At most %(n)d characters.", n=NUMBER_LIMIT))
    elif item.number and number_taken(item.number, item.id):
        errors["number"] = str(_l("Another contract has the number %(number)s.", number=item.number))
    item.terminated_reason = validation.clean_line(item.terminated_reason) or None
    if item.terminated_reason and len(item.terminated_reason) > REASON_LIMIT:
        errors["terminated_reason"] = str(_l("At most %(n)d characters.", n=REASON_LIMIT))
    item.note = validation.clean_block(item.note) or None
    if item.note and len(item.note) > NOTE_LIMIT:
        errors["note"] = str(_l("At most %(n)d characters.", n=NOTE_LIMIT))


def _values(item: Contract, errors: dict[str, str]) -> None:
    item.amount = money(item.amount, "amount", errors)
    for name in ("signed_on", "starts_on", "ends_on"):
        setattr(item, name, validation.day_value(getattr(item, name), name, errors))
    if item.starts_on and item.ends_on and item.ends_on < item.starts_on and "ends_on" not in errors:
        errors["ends_on"] = str(_l("The end date is before the start date."))
    try:
        item.status = status_code(item.status)
    except ValueError as exc:
        errors["status"] = str(exc)


def _status(item: Contract, errors: dict[str, str]) -> None:
    """The status machine: allowed moves, what each status needs, closed contracts frozen."""
    before = records.previous(item, "status") if item.id is not None else "draft"
    after = item.status
    if "status" in errors:
        return
    if after != before and after not in MOVES.get(before, ()):
        errors["status"] = str(_l("A contract cannot go from %(before)s to %(after)s.",
                                  before=STATUSES.get(before, before), after=STATUSES[after]))
        return
    if after in SIGNED_STATUSES:
        for name in ("number", "signed_on", "starts_on"):
            if getattr(item, name) in (None, "") and name not in errors:
                errors[name] = str(_l("%(field)s is required for an active contract.", field=LABELS[name]))
    today = clock.local_today()
    if after == "active" and before != "active" and item.ends_on and item.ends_on < today:
        errors["ends_on"] = str(_l("This contract ended on %(day)s: it cannot become active (renew it instead).",
                                   day=item.ends_on.isoformat()))
    if after == "expired" and before != "expired" and not (item.ends_on and item.ends_on < today):
        errors["status"] = str(_l("A contract expires by date: its end date must have passed."))
    if after == "terminated" and not item.terminated_reason and "terminated_reason" not in errors:
        errors["terminated_reason"] = str(_l("A reason is required to terminate a contract."))


def _closed(item: Contract, values: dict[str, Any]) -> None:
    """An expired or terminated contract keeps everything but its note."""
    before = records.previous(item, "status") if item.id is not None else None
    if before in CLOSED and set(values) - {"note"}:
        raise RuleViolation({"status": str(_l("A %(status)s contract cannot be changed (only its note); renew it "
                                              "instead.", status=STATUSES[before]))})


def order_scope(user: Any) -> Any:
    """SQL: the sales orders ``user`` may see (the order type's own scope rule; until it is
    declared, the order's owner among the visible owners)."""
    try:
        return data_scope.scope_clause(user, SalesOrder)
    except LookupError:
        return data_scope.owner_in(SalesOrder.owner_id, data_scope.visible_owner_ids(user))


def visible_orders(item: Contract, user: Any) -> list[SalesOrder]:
    """The contract's orders ``user`` may see (the page lists only those), by code."""
    ids = [order.id for order in item.orders]
    if not ids:
        return []
    return list(db.session.scalars(select(SalesOrder).where(SalesOrder.id.in_(ids), order_scope(user))
                                   .order_by(SalesOrder.code)))


def _orders(raw: Any, customer_id: int | None, user: Any, errors: dict[str, str]) -> list[SalesOrder] | None:
    """The orders a save links: ids or loaded orders, each of the contract's customer and in
    ``user``'s scope (one answer, "not found", for a missing or out-of-scope order)."""
    if raw is None:
        return []
    wanted = []
    for entry in raw if isinstance(raw, (list, tuple, set)) else [raw]:
        number = entry.id if isinstance(entry, SalesOrder) else db_int(entry)
        if number is None:
            errors["orders"] = str(_l("Order not found."))
            return None
        wanted.append(number)
    found = {order.id: order for order in db.session.scalars(
        select(SalesOrder).where(SalesOrder.id.in_(set(wanted)), order_scope(user)))} if wanted else {}
    if len(found) != len(set(wanted)):
        errors["orders"] = str(_l("Order not found."))
        return None
    strangers = [order.code for order in found.values() if order.customer_id != customer_id]
    if strangers:
        errors["orders"] = str(_l("Orders %(codes)s belong to another customer.", codes=", ".join(sorted(strangers))))
        return None
    return [found[pk] for pk in dict.fromkeys(wanted)]


def _save(item: Contract, values: dict[str, Any], user: Any) -> Contract:
    """Assign ``values``, apply every rule (one ``RuleViolation`` listing every error), flush.
    A refusal leaves the stored contract as it was."""
    try:
        return _checked_save(item, values, user)
    except RuleViolation:
        if item.id is not None:
            db.session.expire(item)
        raise


def _checked_save(item: Contract, values: dict[str, Any], user: Any) -> Contract:
    new = item.id is None
    values = dict(values)
    raw_orders = values.pop("orders", None) if "orders" in values else ...
    with db.session.no_autoflush:
        _closed(item, {**values, **({} if raw_orders is ... else {"orders": raw_orders})})
        records.assign(item, values, EDITABLE)
        errors: dict[str, str] = {}
        _text(item, errors)
        _values(item, errors)
        customer_id = records.related_id(item, "customer")
        if new or customer_id != records.previous(item, "customer_id"):
            problem = customer_problem(customer_id, user)
            if problem:
                errors["customer"] = problem
        if raw_orders is not ...:
            orders = _orders(raw_orders, customer_id, user, errors)
        elif not new and customer_id != records.previous(item, "customer_id") and item.orders:
            orders, errors["orders"] = None, str(_l("Remove the orders of the previous customer first."))
        else:
            orders = None
        _status(item, errors)
        try:
            records.settle_owner(item, user)
        except RuleViolation as exc:
            if not errors:
                raise
            errors.update(exc.errors)
        if errors:
            raise RuleViolation(errors)
        if orders is not None:
            item.orders = orders
    if new:
        db.session.add(item)
    records.flush()
    return item


# --- use cases ----------------------------------------------------------------------------------

def save_contract(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> Contract:
    """Add (``pk`` None) or change a contract: the use case behind the form, the REST API,
    the importer and the sync.

    ``values``: ``EDITABLE`` fields — customer (a ``Customer`` or set through the API's
    id), number (trimmed, full-width folded, unique company-wide without case), title
    (required, 200), amount (yuan, Decimal >= 0, 2 decimals), signed_on / starts_on /
    ends_on (dates, ends_on >= starts_on), orders (ids or orders: the customer's, in
    scope), owner (active, in scope; default the writer), note, status (code, label or
    alias; the status machine, ``MOVES``) and terminated_reason. The customer must be live
    and in scope. Raises ``NotFound`` (contract out of scope), ``StaleRecord`` (version),
    ``RuleViolation({field: message})``. Flushes; the caller commits.
    """
    item = Contract() if pk is None else records.load(Contract, pk, user)
    if pk is not None:
        records.check_version(item, version)
    return _save(item, values, user)


def change_status(pk: Any, user: Any, status: Any, *, reason: Any = None, version: Any = None) -> Contract:
    """Move contract ``pk`` to ``status`` (activate, terminate with ``reason``, or expire
    when its end date passed): the page's buttons and ``POST /api/v1/contract/<id>/status``.
    ``version``: when given, a stale one is refused. Same rules as ``save_contract``."""
    item = records.load(Contract, pk, user)
    if version not in (None, ""):
        records.check_version(item, version)
    values: dict[str, Any] = {"status": status}
    if reason not in (None, ""):
        values["terminated_reason"] = reason
    return _save(item, values, user)


def renew(pk: Any, user: Any) -> Contract:
    """Renew contract ``pk`` (active or expired): a new draft contract of the same customer,
    title, amount, currency and owner (the writer when that owner cannot take it), with
    ``renewal_of`` set and dates following on (starts the day after the old end; as long
    as the old one). Refused (409) while another renewal of it is a draft or active.
    Flushes; the caller commits."""
    old = records.load(Contract, pk, user)
    if old.status not in SIGNED_STATUSES:
        raise RuleViolation({"status": str(_l("Only an active or expired contract can be renewed."))}, status=409)
    pending = db.session.scalar(select(Contract).where(Contract.renewal_of_id == old.id,
                                                       Contract.status.in_(("draft", "active"))).limit(1))
    if pending is not None:
        raise RuleViolation({"renewal_of": str(_l("This contract is already renewed by %(code)s.",
                                                  code=pending.code))}, status=409)
    starts = old.ends_on + timedelta(days=1) if old.ends_on else None
    ends = starts + (old.ends_on - old.starts_on) if starts and old.starts_on else None
    owner = old.owner if old.owner is not None and old.owner.is_active else user
    try:
        records.check_owner(user, owner.id)
    except RuleViolation:
        owner = user
    item = Contract(customer_id=old.customer_id, title=old.title, amount=old.amount, currency=old.currency,
                    starts_on=starts, ends_on=ends, status="draft", owner=owner, renewal_of=old)
    return _save(item, {}, user)


def renewal_chain(item: Contract, user: Any) -> list[Contract]:
    """The contracts ``item`` renews (oldest first), itself, then its renewals, as far as
    ``user`` may see them (a link out of scope ends the chain there)."""
    chain, seen = [item], {item.id}
    back = item.renewal_of
    while back is not None and back.id not in seen and data_scope.can_see(user, back):
        chain.insert(0, back)
        seen.add(back.id)
        back = back.renewal_of
    forward = _renewals(item, user)
    while forward and forward[0].id not in seen:
        chain.append(forward[0])
        seen.add(forward[0].id)
        forward = _renewals(forward[0], user)
    return chain


def _renewals(item: Contract, user: Any) -> list[Contract]:
    return list(db.session.scalars(select(Contract).where(
        Contract.renewal_of_id == item.id, data_scope.scope_clause(user, Contract)).order_by(Contract.id)))


def expiring(user: Any, days: Any = None, today: date | None = None) -> Select:
    """Active contracts in ``user``'s scope ending within ``days`` (default the
    ``contract_expiry_days`` setting; 0..``MAX_WINDOW``) from today (CRM zone), soonest
    first. A query: callers page it."""
    window = window_days(days)
    today = today or clock.local_today()
    return select(Contract).where(
        Contract.status == "active", Contract.ends_on >= today, Contract.ends_on <= today + timedelta(days=window),
        data_scope.scope_clause(user, Contract)).order_by(Contract.ends_on, Contract.id)


def window_days(days: Any) -> int:
    """The expiring list's window: ``days`` as a whole number 0..``MAX_WINDOW``, else the setting."""
    number = db_int(days) if days not in (None, "") else None
    if number is None or not 0 <= number <= MAX_WINDOW:
        return int(crm_settings.get("contract_expiry_days"))
    return number


# --- attachments --------------------------------------------------------------------------------

def add_attachment(pk: Any, upload: Any, user: Any) -> Any:
    """Attach an uploaded file (PDF, image or Office document, judged by content, within the size setting)
    to contract ``pk`` in ``user``'s scope. ``RuleViolation`` under ``file``: empty (422),
    too large (413), another kind (415); ``NotFound`` out of scope. Flushes."""
    item = records.load(Contract, pk, user)
    if upload is None or not getattr(upload, "filename", None):
        raise RuleViolation({"file": str(_l("Choose a file to upload."))})
    return attachments.store(item, upload, user, kinds=ATTACHMENT_KINDS)


def list_attachments(pk: Any, user: Any) -> list[Any]:
    """The attachments of contract ``pk`` (``NotFound`` out of scope), oldest first."""
    return attachments.for_record(records.load(Contract, pk, user))


def delete_attachment(pk: Any, attachment_pk: Any, user: Any) -> None:
    """Remove one attachment of contract ``pk``: by whoever uploaded it, the contract's
    owner or an admin (``RuleForbidden`` otherwise); audited. The stored file stays (files
    are shared by content and kept for the audit trail)."""

    item = records.load(Contract, pk, user)
    number = db_int(attachment_pk)
    found = next((a for a in attachments.for_record(item) if a.id == number), None)
    if found is None:
        raise records.not_found()
    if user.id not in (found.uploaded_by_id, item.owner_id) and not is_admin(user):
        raise RuleForbidden({"file": str(_l("Only the uploader, the contract's owner or an admin may remove it."))})
    db.session.delete(found)
    records.flush()


# --- the expiry job (003 第三步 3) ----------------------------------------------------------------

def expire_due(today: date | None = None) -> int:
    """Active contracts whose end date is before ``today`` (CRM zone) become expired (each
    audited as a change). Returns how many; flushes."""
    today = today or clock.local_today()
    due = db.session.scalars(select(Contract).where(Contract.status == "active", Contract.ends_on < today)).all()
    for item in due:
        item.status = "expired"
    records.flush()
    return len(due)


def department_manager(owner: CrmUser | None) -> int | None:
    """The manager of ``owner``'s department (``accounts.manager_above``: walking up while a
    department has none, or only the owner or someone who left); None at the top."""
    manager = manager_above(owner)
    return manager.id if manager is not None else None


def _recipients(item: Contract) -> list[int]:
    """Owner and the owner's department manager, those of them who may see the contract."""
    wanted = [item.owner_id, department_manager(item.owner)]
    people = {u.id: u for u in db.session.scalars(select(CrmUser).where(CrmUser.id.in_([w for w in wanted if w])))}
    return [uid for uid in dict.fromkeys(wanted) if uid in people and data_scope.can_see(people[uid], item)]


def expiry_params(item: Contract, today: date) -> dict[str, Any]:
    """The ``contract_expiry`` event's params: code, number, title, customer (code), ends_on
    (ISO date) and days left."""
    return {"code": item.code, "number": item.number or "", "title": item.title,
            "customer": item.customer.code if item.customer else "", "ends_on": item.ends_on.isoformat(),
            "days": (item.ends_on - today).days}


def expiry_reminders(today: date | None = None) -> int:
    """Tell the owner (and the owner's department manager) of each active contract ending
    within ``contract_expiry_days`` from ``today`` (CRM zone) — once per contract and end
    date (occasion ``contract_expiry:<id>:<ends_on>``: an extension reminds again), only
    people who may see it. Returns the notifications written; commits per batch."""
    if not crm_settings.get(REMIND.key):
        return 0
    today = today or clock.local_today()
    days = int(crm_settings.get("contract_expiry_days"))
    stmt = select(Contract).where(Contract.status == "active", Contract.ends_on >= today,
                                  Contract.ends_on <= today + timedelta(days=days))
    told, last = 0, 0
    while True:
        rows = db.session.scalars(stmt.where(Contract.id > last).order_by(Contract.id).limit(BATCH)).all()
        if not rows:
            return told
        last = rows[-1].id
        for item in rows:
            told += len(notifications.notify(EXPIRY.key, _recipients(item), record=item,
                                             params=expiry_params(item, today),
                                             occasion=f"contract_expiry:{item.id}:{item.ends_on.isoformat()}"))
        db.session.commit()


def run_contract_expiry() -> int:
    """Daily: past-end contracts expire, then the expiry reminders go out."""
    expire_due()
    db.session.commit()
    return expiry_reminders()


scheduler.register("contract_expiry", "Contract expiry reminders", run_contract_expiry, {"hour": 7, "minute": 50})


# --- declaration --------------------------------------------------------------------------------

def _search(text: str) -> Any:
    """Quick search: code, number or title contains ``text``."""
    return or_(Contract.code.icontains(text, autoescape=True), Contract.number.icontains(text, autoescape=True),
               Contract.title.icontains(text, autoescape=True))


#: Demo contracts: title, amount, months long, status, days the end lies ahead of today.
DEMO_ROWS = (
    ("年度软件服务合同", "120000.00", 12, "active", 20),
    ("设备采购合同", "56800.00", 6, "active", 150),
    ("实施服务合同", "30000.00", 3, "draft", 200),
)


def build_demo(session: Session, owners: list[Any], count: int = 9) -> int:
    """Demo contracts on each owner's first customers, won customers first (one active
    contract each ends within 30 days: the expiry reminder has something to say). Flushes;
    returns how many."""
    today = clock.local_today()
    made, serial = 0, session.scalar(select(func.count(Contract.id))) or 0
    per_owner = max(1, count // max(1, len(owners)))
    for owner in owners:
        won = select(CustomerType.id).where(CustomerType.code == "won").scalar_subquery()
        customers = session.scalars(select(Customer).where(Customer.owner_id == owner.id,
                                                           Customer.archived_at.is_(None))
                                    .order_by((Customer.type_id == won).desc(), Customer.id).limit(per_owner)).all()
        for index, customer in enumerate(customers):
            title, amount, months, status, ahead = DEMO_ROWS[index % len(DEMO_ROWS)]
            ends = today + timedelta(days=ahead)
            serial += 1
            session.add(Contract(
                customer_id=customer.id, owner_id=owner.id, title=title, amount=money(amount, "amount", {}),
                number=f"HT-DEMO-{serial:04d}" if status != "draft" else None, status=status,
                signed_on=ends - timedelta(days=months * 30 + 7) if status != "draft" else None,
                starts_on=ends - timedelta(days=months * 30), ends_on=ends))
            made += 1
    session.flush()
    return made


CONTRACT = declare(RecordType(
    name="contract", model=Contract, label=_l("Contract"), plural=_l("Contracts"), plural_en="Contracts",
    permission="Contract", scope=OWNER, code_prefix="HT",
    editable=EDITABLE, save=save_contract, delete=None,
    list_columns=("code", "number", "customer", "title", "amount", "signed_on", "starts_on", "ends_on", "status",
                  "owner", "renewal_of"),
    show_columns=("code", "number", "customer", "title", "amount", "currency", "signed_on", "starts_on", "ends_on",
                  "status", "terminated_reason", "owner", "renewal_of", "orders", "note"),
    search_columns=("code", "number", "customer", "title", "status", "signed_on", "ends_on", "owner"),
    order_columns=("code", "number", "title", "amount", "signed_on", "ends_on", "changed_on"),
    labels=dict(LABELS),
    descriptions={
        "number": _l("The number on the signed contract; required to activate it. Unique."),
        "amount": _l("Yuan, up to 2 decimals."),
        "orders": _l("Orders of this customer the contract covers."),
        "ends_on": _l("The owner is reminded before this day (Settings: contract expiry reminder)."),
    },
    fields=(
        ImportField("code", _l("Contract code"), "合同编码", ("code", "contract code", "编码"), max_length=20,
                    note=_l("Leave empty for new contracts: the CRM numbers them.")),
        ImportField("number", _l("Contract number"), "合同编号", ("number", "contract no", "contract number", "合同号"),
                    max_length=NUMBER_LIMIT),
        ImportField("customer", _l("Customer code"), "客户编号", ("customer", "customer no", "客户代码", "客户"),
                    CUSTOMER, required=True),
        ImportField("title", _l("Contract title"), "合同名称", ("title", "name", "合同标题", "合同"), required=True,
                    max_length=TITLE_LIMIT),
        ImportField("amount", _l("Contract amount"), "合同金额", ("amount", "金额", "合同额"),
                    note=_l("Yuan, up to 2 decimals.")),
        ImportField("signed_on", _l("Signed on"), "签订日期", ("signed", "signed on", "签约日期", "签订时间"), DATE),
        ImportField("starts_on", _l("Starts on"), "开始日期", ("start", "starts on", "生效日期", "起始日期"), DATE),
        ImportField("ends_on", _l("Ends on"), "结束日期", ("end", "ends on", "到期日期", "截止日期"), DATE),
        ImportField("status", _l("Status"), "状态", ("status", "合同状态"), max_length=16,
                    note=_l("draft, active, expired or terminated (草稿, 生效, 已到期, 已终止); empty = draft.")),
        ImportField("terminated_reason", _l("Termination reason"), "终止原因", ("reason", "termination reason"),
                    max_length=REASON_LIMIT),
        ImportField("owner", _l("Owner"), "负责人", ("owner", "sales rep", "所属销售"), USER,
                    note=_l("User name; empty = you.")),
    ),
    roles={"Sales Rep": "read|write|export", "Sales Manager": "read|write|export", "Read Only": "read"},
    menu_category="Sales", menu_icon="fa-file-text-o",
    search=_search,
    demo=build_demo,
))
