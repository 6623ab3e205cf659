"""Customers (客户基本信息, 001 表1): their rules and their use cases.

Rules (``check_customer``, ``clean_customer``, archiving) run for every writer; the use
cases (``save_customer``, ``archive_customers``, ``restore_customers``,
``reveal_contact``) are what the screens and the REST API call. The importer and the
sync apply the same rules in bulk. ``before_flush`` numbering and status history make
sure no caller can forget.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, has_request_context
from flask_babel import lazy_gettext as _l
from limits import parse
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from app.clock import utc_now
from app.extensions import appbuilder, db
from app.models.base import current_user_id
from app.models.customers import Customer, CustomerAlias, CustomerStatusChange
from app.models.dictionaries import CustomerType
from app.models.sales import Contact
from app.security import masking, step_up
from app.security.rights import user_may
from app.security.step_up import declare
from app.services import approvals, audit, bulk, numbering, records, validation
from app.services import customer_approvals as gate
from app.services.errors import RuleForbidden, RuleViolation

WON = "won"
BULK_ARCHIVE = declare("customer.bulk_archive", _l("Archive (delete) several customers at once"),
                       _l("Customers list, bulk action"))
ARCHIVE_WON = declare("customer.archive_won", _l("Archive (delete) a won customer"),
                      _l("Customers: delete / archive, and DELETE /api/v1/customer/<id>"))


def resolve_phone(submitted: str | None, stored: str | None) -> str:
    """Normalise a submitted phone, keeping the stored one when the mask is echoed back, and
    an erased phone (issue 19) when the form, API or sheet sends the marker or nothing."""
    if stored and masking.is_masked_echo(submitted, stored):
        return stored
    if stored == masking.ERASED and (submitted or "").strip() in ("", masking.ERASED):
        return stored
    return validation.normalize_phone(submitted)


def clean_customer(item: Customer, user: Any) -> None:
    """Normalise and validate a customer in place; raise ``RuleViolation`` listing every error."""
    with db.session.no_autoflush:  # scope queries must not flush a half-cleaned record
        _clean_customer(item, user)


def _clean_customer(item: Customer, user: Any) -> None:
    values = {name: getattr(item, name) for name in CUSTOMER_CHECKED}
    before = {name: records.previous(item, name) for name in ("contact_phone", *CHOICE_IDS)}
    errors = check_customer(values, before)
    try:
        records.settle_owner(item, user)
    except RuleViolation as exc:
        if not errors:
            raise
        errors.update(exc.errors)
    if errors:
        raise RuleViolation(errors)
    for name in ("name", "contact_name", "address", "note", "contact_phone", "credit_code", "email"):
        setattr(item, name, values[name])


CHOICES = ("type", "industry", "level", "source")
CHOICE_IDS = tuple(f"{name}_id" for name in CHOICES)
_TEXT_LIMITS = {c.name: c.type.length for c in Customer.__table__.columns
                if getattr(c.type, "length", None) and c.name not in ("code",)}
_TEXT_LIMITS["note"] = NOTE_LIMIT = 10000  # a Text column, bounded like follow-up content
CUSTOMER_CHECKED = ("name", "contact_phone", "credit_code", "email", "contact_name", "address", "note", *CHOICES)


def check_customer(values: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, str]:
    """The customer field rules on plain values: normalise ``values`` in place, return errors.

    ``values`` holds text fields and dictionary entries (objects); ``previous`` the stored
    phone and dictionary ids of the record being edited (None for a new one). Forms and
    the API reach this through ``clean_customer``; the importer and the sync call it
    directly for speed (about 10 µs a row), so all four apply the same rules.
    """
    previous = previous or _NO_PREVIOUS
    errors: dict[str, str] = {}
    for name, step in _STEPS:
        try:
            values[name] = step(values.get(name), previous)
        except ValueError as exc:
            errors[name] = str(exc)
    for name in CHOICES:
        entry = values.get(name)
        if entry is not None:
            try:
                validation.check_choice(entry, previous.get(f"{name}_id"))
            except ValueError as exc:
                errors[name] = str(exc)
    for name, limit in _TEXT_LIMITS.items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit and name not in errors:
            errors[name] = str(_l("At most %(n)d characters.", n=limit))
    return errors


_NO_PREVIOUS: dict[str, Any] = {}


def _optional_line(value: Any, previous: dict[str, Any]) -> str | None:
    return validation.clean_line(value) or None


#: The text rules of ``check_customer``, in the order its errors are listed.
_STEPS = (
    ("name", lambda value, previous: validation.require_text(value, 200)),
    ("contact_name", _optional_line),
    ("address", _optional_line),
    ("note", lambda value, previous: validation.clean_block(value) or None),
    ("contact_phone", lambda value, previous: resolve_phone(value, previous.get("contact_phone"))),
    ("credit_code", lambda value, previous: validation.normalize_credit_code(value)),
    ("email", lambda value, previous: validation.normalize_email(value)),
)


def insert_customers(rows: list[dict[str, Any]]) -> None:
    """Insert many checked customers at once (imports); codes and ids land in ``rows``.
    A row's ``status_reason`` (e.g. "合同编号 …", ``customer_approvals.check_won_row``) goes
    into its status history, not the customer: ``prepare_customers`` then ``store_customers``.
    """
    bulk.insert_prepared(rows, prepare_customers, store_customers)


@dataclass
class NewCustomers:
    """Checked new customers ready to store (``prepare_customers``), in plain values only: an
    import's checking process prepares a chunk and its writer process stores it
    (``importing.writer``), as with ``follow_ups.NewFollowUps``. ``codes`` and ``ids`` are
    set by ``number_customers`` and ``insert_new_customers``."""

    names: list[str]  #: ``customer`` columns, in the order of each row of ``values``
    values: list[list[Any]]  #: each row's bound values (``bulk.bound_values``; ``custom`` as JSON)
    changes: list[str | None]  #: each row's create entry (``audit.created_changes``)
    blank: list[int]  #: the rows the CRM numbers as they are stored (code ``audit.later``)
    history: list[tuple[int, dict[str, Any]]]  #: (row, its first status change without ``customer_id``)
    contacts: list[list[Any]]  #: each row's primary contact, bound in ``CONTACT_NAMES`` order
    codes: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)  #: PostgreSQL: drawn by ``number_customers``
    numbered: bool = False  #: by ``number_customers`` (a chunk stored again keeps its codes and ids)


#: The primary contact's columns as ``NewCustomers.contacts`` binds them; the first two
#: (its code and its customer's id) are filled in by ``store_customers``.
CONTACT_NAMES = ["code", "customer_id", "name", "phone", "is_primary", "is_decision_maker", "created_on",
                 "changed_on", "created_by_fk", "changed_by_fk", "version"]


def prepare_customers(rows: list[dict[str, Any]]) -> NewCustomers:
    """``rows`` (as ``insert_customers``) stamped, bound for the database and audited as the
    flush hooks would (the create entry, the first status change, the primary contact), all
    but what storing decides: codes, ids. Queries nothing."""
    stamp, uid = utc_now(), current_user_id()
    blank = []
    for index, row in enumerate(rows):
        if not row.get("code"):
            row["code"] = audit.later("code")
            blank.append(index)
        row.update(created_on=stamp, changed_on=stamp, created_by_fk=uid, changed_by_fk=uid, version=1)
    reasons = {index: row.pop("status_reason") for index, row in enumerate(rows) if "status_reason" in row}
    names, dialect = list(rows[0]), db.session.get_bind().dialect
    history = [(index, {"from_type_id": None, "to_type_id": row["type_id"], "changed_by_id": uid,
                        "changed_at": stamp, "reason": reasons.get(index)})
               for index, row in enumerate(rows) if row.get("type_id")]
    contacts = [{"code": None, "customer_id": None, "name": primary_name(row.get("contact_name"), row["name"]),
                 "phone": row.get("contact_phone"), "is_primary": True, "is_decision_maker": False,
                 "created_on": stamp, "changed_on": stamp, "created_by_fk": uid, "changed_by_fk": uid, "version": 1}
                for row in rows]
    return NewCustomers(
        names=names, values=bulk.bound_values(dialect, Customer.__table__, names, _json_bound(rows)),
        changes=audit.created_changes(Customer, rows, ahead=("id",)), blank=blank, history=history,
        contacts=bulk.bound_values(dialect, Contact.__table__, CONTACT_NAMES, contacts))


def store_customers(new: NewCustomers) -> None:
    """Number, insert and audit the customers ``new`` (``prepare_customers``), their status
    history and primary contacts in the session's transaction (the caller commits). The
    codes and ids land in ``new``. The primary contacts are not audited row by row: the
    customer's own "create" entry holds the same name and phone."""
    number_customers(new, db.session)
    insert_new_customers(new)
    audit_new_customers(new)


def number_customers(new: NewCustomers, session: Any) -> None:
    """The codes of ``new``'s customers without one and of their primary contacts, counted in
    ``session``: the chunk's own, or a short transaction of its own when an import stores two
    chunks side by side (``importing.writer.numbering``)."""
    new.codes = numbering.number_bound(session, numbering.CUSTOMER_PREFIX, new.names, new.values, new.blank)
    for contact, code in zip(new.contacts, numbering.allocate(session, _contact_prefix(), len(new.contacts)),
                             strict=True):
        contact[0] = code
    connection = session.connection()  # PostgreSQL: the ids too (``bulk.draw_ids``), drawn in the same order
    new.ids = bulk.draw_ids(connection, Customer.__table__, len(new.values)) or []
    new.contact_ids = bulk.draw_ids(connection, Contact.__table__, len(new.contacts)) or []
    new.numbered = True


def insert_new_customers(new: NewCustomers) -> None:
    """Insert the numbered ``new`` (``number_customers``): the customers (their ids land in
    ``new``), their first status changes and their primary contacts. No audit entry yet."""
    connection = db.session.connection()
    new.ids = bulk.insert_bound(connection, Customer.__table__, new.names, new.values, ids=new.ids or None)
    bulk.insert_rows(connection, CustomerStatusChange.__table__,
                     [{"customer_id": new.ids[index], **change} for index, change in new.history])
    for contact, pk in zip(new.contacts, new.ids, strict=True):
        contact[1] = pk
    bulk.insert_values(connection, Contact.__table__, CONTACT_NAMES, new.contacts, ids=new.contact_ids)


def audit_new_customers(new: NewCustomers) -> None:
    """The "create" entries of the customers ``insert_new_customers`` stored: one chain step."""
    audit.append_created(Customer, new.ids, audit.filled_rows(new.changes, {"code": new.codes, "id": new.ids}))


def _json_bound(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with their ``custom`` values (dicts of custom field values, issue 18) as JSON
    text for the bulk insert, which binds values as they are; the rows themselves keep the
    dicts (the audit's create entries). Rows without the column are returned as they are."""
    if not rows or "custom" not in rows[0]:
        return rows
    return [{**row, "custom": json.dumps(row["custom"], ensure_ascii=False)}
            if isinstance(row["custom"], dict | list) else row for row in rows]


def primary_name(contact_name: str | None, name: str | None) -> str:
    """The primary contact's name for a customer: its 联系人姓名, else (no contact name
    typed) the customer's own name, cut to the contact column (the rule of migration
    ``a4c6e8f0b2d5``, so migrated and new customers agree)."""
    return (contact_name or name or "")[:_CONTACT_NAME_LENGTH]


_CONTACT_NAME_LENGTH = Contact.__table__.c.name.type.length
#: Customers whose primary contact one flush looks up per query (bounded IN lists).
_PRIMARY_BATCH = 500


def _contact_prefix() -> str:
    return numbering.PREFIXES.get(Contact, "P")


DUPLICATE_FIELDS = ("name", "contact_name", "contact_phone", "credit_code")


def check_duplicates(item: Customer, user: Any, confirmed: bool) -> None:
    """The duplicate rule on save (forms and API): only when a compared field changed."""
    from app.services import dedup

    state = inspect(item)
    if not (state.transient or state.pending) and not any(
        state.attrs[name].history.has_changes() for name in DUPLICATE_FIELDS
    ):
        return
    with db.session.no_autoflush:
        dedup.refuse_duplicates(item.name, item.contact_name, item.contact_phone, item.credit_code, user,
                                exclude_id=item.id, confirmed=confirmed)


def can_archive(customer: Customer, may_delete_won: bool) -> str | None:
    """None if the customer may be archived, else the reason it may not."""
    if customer.archived_at is not None:
        return str(_l("%(code)s is already archived.", code=customer.code))
    if is_won(customer) and not may_delete_won:
        return str(_l("%(code)s is a won customer; only a manager can archive it.", code=customer.code))
    return None


def is_won(customer: Customer) -> bool:
    """Won customers carry revenue history: archiving one is a manager's, stepped-up, act
    (000 §三(一)). A customer that ever was won (moved to lost, or back to potential) still
    counts, so moving it off won first never skips the approval."""
    if customer.type is not None and customer.type.code == WON:
        return True
    if customer.id is None:
        return False
    ever = select(CustomerStatusChange.id).join(CustomerType, CustomerType.id == CustomerStatusChange.to_type_id) \
        .where(CustomerStatusChange.customer_id == customer.id, CustomerType.code == WON).limit(1)
    return db.session.scalar(ever) is not None


def archive_step_up(customers: list[Customer], may_delete_won: bool) -> str | None:
    """Which sensitive action archiving these customers is (None: not sensitive by itself)."""
    if len(customers) > 1:
        return BULK_ARCHIVE
    if may_delete_won and any(is_won(customer) for customer in customers):
        return ARCHIVE_WON
    return None


def archive(customer: Customer, may_delete_won: bool, user: Any = None) -> None:
    """Archive instead of deleting (customers are never hard-deleted from the UI); ``user``
    (or None: the CRM) is named on the approval requests this ends (``archived_now``)."""
    reason = can_archive(customer, may_delete_won)
    if reason:
        raise RuleForbidden(reason)
    archived_now(customer, user, ARCHIVED_REASON)


def archived_now(customer: Customer, user: Any, reason: Any) -> None:
    """Set ``customer`` archived now (audited as "archive" by the flush hook) and end its
    pending approval requests, withdrawn because of ``reason`` (a lazy message): nothing
    would apply to an archived customer, and the requester and the approvers waiting on
    them are told (``approvals.withdraw_pending``) instead of meeting a conflict later.
    The one way a customer is archived: archive, bulk archive, API, sync, merge."""
    customer.archived_at = utc_now()
    approvals.withdraw_pending("customer", customer.id, user, reason)


#: Why an archive ends a customer's pending approval requests (``archived_now``).
ARCHIVED_REASON = _l("The customer was archived.")


def restore(customer: Customer) -> None:
    """Back from the archive; a customer merged away gets its own code back (its alias goes)."""
    customer.archived_at = None  # audited as "restore"
    session = inspect(customer).session
    if session is not None:
        for alias in session.scalars(select(CustomerAlias).where(CustomerAlias.merged_from_id == customer.id)):
            session.delete(alias)


# --- use cases: every entry point (screens, REST API, jobs) calls these -----------------

#: Fields a save may set (forms, API); anything else in a request is refused.
EDITABLE = ("name", "credit_code", "type", "industry", "contact_name", "contact_phone", "email", "address",
            "level", "source", "owner", "note", "status_reason")


def save_customer(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None,
                  allow_duplicate: bool = False, contract_number: str | None = None,
                  approved: bool = False) -> Customer:
    """Add (``pk`` None) or change one customer: the use case behind the form and the API.

    ``values``: field -> value (text, or loaded dictionary entries / users for relations);
    ``version``: the version the editor loaded (required for an edit). Loads the record
    in ``user``'s scope (``NotFound`` otherwise), refuses a stale version
    (``StaleRecord``), applies the customer rules (001 表1 fields; owner active and in
    scope), the won rule (001: 成交客户 only with a contract number, ``contract_number``
    or a signed contract; setting ``won_needs_contract``) and the duplicate rule
    (``dedup.DuplicateFound`` unless ``allow_duplicate``), then flushes; the flush hooks
    number, keep the status history and audit. The caller commits (or rolls back on
    ``RuleViolation``).

    Approvals (003 第四步, 001 使用规范二): a gated field that changed (level, key
    contact data, becoming won) while an active policy covers it is put back and held in
    one ``ApprovalRequest`` per kind; the rest of the save applies. The requests are in
    ``item.held_for_approval`` (and ``approvals.held()``). ``approved``: the save applies
    an approved request (no gate).
    """
    item = Customer() if pk is None else _live_customer(pk, user)
    if pk is not None:
        records.check_version(item, version)
    with db.session.no_autoflush:
        records.assign(item, values, EDITABLE)
        clean_customer(item, user)
        gates = gate.Gates.now()
        number = gate.check_won(item, contract_number, gates)
        held = [] if approved else gate.hold_gated(item, user, gates)
        check_duplicates(item, user, confirmed=allow_duplicate)
    if pk is None:
        db.session.add(item)
    records.flush()
    item.held_for_approval = gate.submit_held(item, user, held, number)
    return item


gate.register_kinds(ARCHIVE_WON)


def request_data_change(pk: Any, text: str | None, user: Any) -> Any:
    """A 数据变更申请 (000 §三(一)) on a customer in ``user``'s scope: the wanted change in
    words, approved by the department manager and then carried out by the administrators
    (no automatic apply). ``RuleViolation`` without text or while one is pending."""
    item = records.load(Customer, pk, user, live=False)
    text = validation.clean_block(text)
    if not text:
        raise RuleViolation({"text": str(_l("Describe the change you need."))})
    if len(text) > NOTE_LIMIT:
        raise RuleViolation({"text": str(_l("At most %(n)d characters.", n=NOTE_LIMIT))})
    return approvals.submit(gate.DATA_CHANGE_KIND, item, user, {"description": text}, before={}, reason=text)


def _live_customer(pk: Any, user: Any) -> Customer:
    """A customer in scope that is not archived (archived ones are named: they are in scope)."""
    item = records.load(Customer, pk, user, live=False)
    if item.archived_at is not None:
        raise RuleViolation(archived_message(item.code))
    return item


def archived_message(code: str) -> str:
    """The one refusal for changing an archived customer or attaching something to it."""
    return str(_l("%(code)s is archived; restore it before changing it or adding to it.", code=code))


def archive_customers(pks: list[Any], user: Any) -> tuple[list[Customer], list[str]]:
    """Archive (the CRM's delete) customers in ``user``'s scope; returns (archived, refusals).

    Step-up (003 删除客户需审批; DESIGN "Sensitive actions"): several at once, a won customer,
    or more single archives than ``CRM_ARCHIVE_WITHOUT_CODE`` allows per user (so a bulk
    delete cannot be done as many single DELETEs) each ask for a fresh code
    (``StepUpRequired``). Records out of scope: ``NotFound`` and nothing is archived.
    """
    items = records.load_many(Customer, pks, user, live=False)
    may_delete_won = user_may(user, "can_archive_won", "Customer")
    name = archive_step_up(items, may_delete_won) or _over_archive_budget(user, len(items))
    if name:
        step_up.demand(name, user)
    archived, refused = [], []
    for item in items:
        reason = archive_or_hold(item, user, may_delete_won)
        if reason:
            refused.append(reason)
        elif item.archived_at is not None:
            archived.append(item)
    _spend_archive_budget(user, len(archived))
    db.session.flush()
    return archived, refused


def archive_or_hold(item: Customer, user: Any, may_delete_won: bool) -> str | None:
    """Archive one loaded customer for ``user`` — or, a won customer the user may not
    archive, hold the archive for approval (003 第四步; ``customer_approvals.hold_archive``).
    Returns the refusal, None when archived or held. The one rule bulk archives, the API,
    the sync (a row deleted from the sheet) and its conflict screen share."""
    reason = can_archive(item, may_delete_won)
    if reason and gate.hold_archive(item, user, is_won(item)):
        return None
    if not reason:
        archived_now(item, user, ARCHIVED_REASON)
    return reason


def _archive_budget(user: Any) -> tuple[Any, tuple[str, str]]:
    return parse(current_app.config["CRM_ARCHIVE_WITHOUT_CODE"]), ("archive-without-code", str(user.id))


def _over_archive_budget(user: Any, count: int) -> str | None:
    if not has_request_context():
        return None
    limit, keys = _archive_budget(user)
    return None if appbuilder.sm.limiter.limiter.test(limit, *keys, cost=count) else BULK_ARCHIVE


def _spend_archive_budget(user: Any, count: int) -> None:
    if has_request_context() and count:
        limit, keys = _archive_budget(user)
        appbuilder.sm.limiter.limiter.hit(limit, *keys, cost=count)


def restore_customers(pks: list[Any], user: Any) -> list[Customer]:
    """Bring archived customers in ``user``'s scope back (a merged-away one gets its code back)."""
    items = records.load_many(Customer, pks, user, live=False)
    live = [item.code for item in items if item.archived_at is None]
    if live:
        raise RuleViolation(str(_l("Not archived: %(codes)s", codes=", ".join(live))))
    for item in items:
        restore(item)
    db.session.flush()
    return items


REVEAL = declare("contact.reveal", _l("Reveal a full phone number"),
                 _l("Customer page, and POST /api/v1/customer/<id>/contact"))


#: The permission (on the Customer view) that lets a user reveal any full phone number.
REVEAL_PERMISSION = "can_reveal_contact"


def reveal_contact(pk: Any, user: Any, via: str = "web") -> str:
    """The full phone of one customer in scope, after a step-up; the reveal is audited
    (001 使用规范: 联系方式脱敏, 查看需授权并记录)."""
    return reveal_phone(records.load(Customer, pk, user), "contact_phone", user, via)


def reveal_phone(item: Any, column: str, user: Any, via: str = "web") -> str | None:
    """The one reveal rule for a phone of a record already loaded in ``user``'s scope
    (customers, their contacts): the *reveal contact* permission on customers
    (``RuleForbidden`` without it), a fresh step-up (``StepUpRequired``), then an audit
    entry naming the record, the field and the entry point ``via`` (``web``/``api``)."""
    if not user_may(user, REVEAL_PERMISSION, "Customer"):
        raise RuleForbidden(str(_l("You may not reveal full phone numbers.")))
    step_up.demand(REVEAL, user)
    audit.record("reveal", item, {"field": column, "code": item.code, "via": via})
    return getattr(item, column)


def _record_status_changes(session: Session) -> None:
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, Customer):
            continue
        before, after = records.previous(obj, "type_id"), records.related_id(obj, "type")
        if before == after:
            continue
        session.add(
            CustomerStatusChange(
                customer=obj,
                from_type_id=before,
                to_type_id=after,
                changed_by_id=current_user_id(),
                reason=(obj.status_reason or None),
            )
        )
        obj.status_reason = None  # a reason belongs to one change only


def _contact_changed(customer: Customer) -> bool:
    state = inspect(customer)
    if state.pending or state.transient:
        return True
    return any(state.attrs[name].history.has_changes() for name in ("contact_name", "contact_phone"))


def _primaries(session: Session, customers: list[Customer]) -> dict[int, Contact]:
    """The primary contact of each customer (keyed by ``id()`` of the customer object) as
    the session holds it now: stored ones (a few bounded queries, no autoflush inside a
    flush) and new or re-flagged ones still pending in this flush."""
    wanted = {id(customer): customer for customer in customers}
    by_pk = {customer.id: customer for customer in customers if customer.id is not None}
    candidates: list[Contact] = [obj for obj in (*session.new, *session.dirty) if isinstance(obj, Contact)]
    for chunk in bulk.id_chunks(by_pk, _PRIMARY_BATCH):
        candidates.extend(session.scalars(select(Contact).where(
            Contact.customer_id.in_(chunk), Contact.is_primary.is_(True))))
    found: dict[int, Contact] = {}
    for contact in candidates:
        if not contact.is_primary or contact in session.deleted:
            continue
        owner = contact.customer if contact.customer is not None else by_pk.get(contact.customer_id)
        if owner is not None and id(owner) in wanted:
            found.setdefault(id(owner), contact)
    return found


def _mirror_primary_contacts(session: Session) -> None:
    """The primary contact mirrors 联系人姓名/联系方式 (issue 13): every writer that adds a
    customer or changes those two fields (forms, API, import updates, sync, merge, scripts)
    updates the primary contact, or creates it. Bulk inserts: ``insert_customers``."""
    changed = [obj for obj in (*session.new, *session.dirty) if isinstance(obj, Customer) and _contact_changed(obj)]
    if not changed:
        return
    primaries = _primaries(session, changed)
    fresh = []
    for customer in changed:
        contact = primaries.get(id(customer))
        if contact is None:
            contact = Contact(customer=customer, is_primary=True, is_decision_maker=False)
            session.add(contact)
            fresh.append(contact)
        _copy_to_contact(customer, contact)
    # numbering's own hook ran before this one: number the contacts made here
    for contact, code in zip(fresh, numbering.allocate(session, _contact_prefix(), len(fresh)) if fresh else [],
                             strict=True):
        contact.code = code


def _copy_to_contact(customer: Customer, contact: Contact) -> None:
    name = primary_name(customer.contact_name, customer.name)
    if contact.name != name:
        contact.name = name
    if contact.phone != customer.contact_phone:
        contact.phone = customer.contact_phone


def copy_to_customer(contact: Contact, customer: Customer, fields: Iterable[str]) -> None:
    """The other way of the mirror: the primary contact's ``fields`` (``name``, ``phone``)
    onto the customer's 联系人姓名/联系方式. The caller has checked the phone with the
    customer rules (``resolve_phone``)."""
    for name, column in (("name", "contact_name"), ("phone", "contact_phone")):
        if name in fields and getattr(customer, column) != getattr(contact, name):
            setattr(customer, column, getattr(contact, name))


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    """Status history and the primary contact mirror for every writer: views, API,
    importer, sync, scripts (numbering: ``app.services.numbering``)."""
    _record_status_changes(session)
    _mirror_primary_contacts(session)
    _delete_contacts_of_deleted(session)


def _delete_contacts_of_deleted(session: Session) -> None:
    """A customer deleted outright (scripts; screens archive) takes its contacts along, on
    SQLite too (no enforced ON DELETE CASCADE there): the ORM would otherwise try to
    detach them (customer_id NOT NULL)."""
    gone = [obj.id for obj in session.deleted if isinstance(obj, Customer) and obj.id is not None]
    for chunk in bulk.id_chunks(gone, _PRIMARY_BATCH):
        for contact in session.scalars(select(Contact).where(Contact.customer_id.in_(chunk))):
            session.delete(contact)
