"""Contacts (联系人, issue 13): the people at a customer, and their use cases.

A contact belongs to its customer: whoever may see the customer sees its contacts (scope
``customer``), and a contact is written only for a live customer in the writer's scope
(``follow_ups.customer_problem``: a colleague's customer and a missing one are the same
"not found"). Fields from 003 决策人信息: name, title, decision-maker flag, phone
(masked; revealed with the customers' reveal rule), e-mail, birthday, primary flag.

Exactly one contact per customer is primary and it mirrors the customer's
联系人姓名/联系方式 both ways, so the manual's one-contact template, exports and the sync
keep working: the customer side lives in ``app.services.customers`` (its flush hook and
``insert_customers``), the contact side here (``save_contact`` on the primary contact
updates the customer through the customer phone rule). Because ``Customer.contact_phone``
is NOT NULL, a customer always keeps its primary contact: the flag moves to another
contact, the primary contact itself is never deleted, and a primary contact needs a phone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models.customers import Customer
from app.models.sales import Contact
from app.record_types import VIA_CUSTOMER, RecordType, declare
from app.services import customer_approvals as gate
from app.services import customers, records, validation
from app.services.errors import RuleViolation
from app.services.follow_ups import customer_problem
from app.services.importing.columns import CUSTOMER, DATE, ImportField

#: Fields a save may set (form, API, import rows).
EDITABLE = ("customer", "name", "title", "is_decision_maker", "phone", "email", "birthday", "is_primary", "note")
#: Column lengths from the model (name, title, e-mail); notes are bounded like follow-ups.
_LIMITS = {name: Contact.__table__.c[name].type.length for name in ("name", "title", "email")}
NOTE_LIMIT = 10000
#: How a spreadsheet cell or an API value says yes / no (决策人, 主要联系人 columns).
_YES = {"1", "true", "yes", "y", "t", "on", "x", "√", "✓", "是", "对", "有", "主要"}
_NO = {"", "0", "false", "no", "n", "f", "off", "否", "不是", "无", "-"}


def flag(raw: Any) -> bool:
    """A yes/no value: booleans, numbers 0/1, or text such as 是/否, yes/no, √ (a sheet's
    决策人 column). Raises ``ValueError`` for anything else (never a silent "no")."""
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    text = validation.clean_line(raw).casefold()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValueError(_l("Use yes or no (是 / 否)."))


def _birthday(raw: Any) -> date | None:
    """A day (a date, a date-time's day, or text such as 1990-05-01 / 1990年5月1日)."""
    if raw is None or isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if isinstance(raw, datetime):
        return raw.date()
    return validation.parse_date(raw)


def _phone(item: Contact, stored: str | None) -> str | None:
    """The customer phone rule (``customers.resolve_phone``: same messages, a masked echo of
    the stored number keeps it); empty is allowed here (a primary contact checks later)."""
    if item.phone is None or not validation.clean_line(item.phone):
        return None
    return customers.resolve_phone(item.phone, stored)


def _clean_fields(item: Contact, stored_phone: str | None) -> dict[str, str]:
    """Normalise the contact's own fields in place; field -> message for each bad one."""
    errors: dict[str, str] = {}
    steps = {
        "name": lambda: validation.require_text(item.name, _LIMITS["name"]),
        "title": lambda: validation.clean_line(item.title) or None,
        "phone": lambda: _phone(item, stored_phone),
        "email": lambda: validation.normalize_email(item.email),
        "birthday": lambda: _birthday(item.birthday),
        "note": lambda: validation.clean_block(item.note) or None,
        "is_decision_maker": lambda: flag(item.is_decision_maker),
        "is_primary": lambda: flag(item.is_primary),
    }
    for name, step in steps.items():
        try:
            setattr(item, name, step())
        except ValueError as exc:
            errors[name] = str(exc)
    limits = {**_LIMITS, "note": NOTE_LIMIT}
    for name, limit in limits.items():
        value = getattr(item, name)
        if name not in errors and isinstance(value, str) and len(value) > limit:
            errors[name] = str(_l("At most %(n)d characters.", n=limit))
    problem = validation.date_problem(item.birthday) if "birthday" not in errors else None
    if problem:
        errors["birthday"] = problem
    return errors


def _check_customer(item: Contact, user: Any, stored_customer_id: int | None) -> tuple[Customer | None, str | None]:
    """The contact's customer: live and in ``user``'s scope; a stored contact stays with it."""
    customer_id = records.related_id(item, "customer")
    if stored_customer_id is not None and customer_id != stored_customer_id:
        return None, str(_l("A contact stays with its customer: add a new contact to the other customer."))
    problem = customer_problem(customer_id, user)
    if problem:
        return None, problem
    return db.session.get(Customer, customer_id), None


def _lock_customer(customer: Customer) -> None:
    """Serialise primary-flag changes of one customer (row lock on PostgreSQL; SQLite has
    one writer at a time): two saves cannot both leave their contact primary."""
    db.session.execute(select(Customer.id).where(Customer.id == customer.id).with_for_update())


def _other_contacts(item: Contact, customer: Customer) -> list[Contact]:
    stmt = select(Contact).where(Contact.customer_id == customer.id)
    if item.id is not None:
        stmt = stmt.where(Contact.id != item.id)
    return list(db.session.scalars(stmt))


#: The primary contact's fields mirrored onto the customer's columns.
MIRROR = (("name", "contact_name"), ("phone", "contact_phone"))


def _settle_primary(item: Contact, customer: Customer, was_primary: bool, changed: set[str], user: Any) -> None:
    """One primary per customer: making a contact primary takes the flag from the other
    one; the primary contact cannot give it up by itself (another one takes it); a
    customer's first contact is its primary. The primary's name and phone go to the
    customer (the mirror), its phone through the customer rule."""
    _lock_customer(customer)
    others = _other_contacts(item, customer)
    if not item.is_primary:
        if was_primary:
            raise RuleViolation({"is_primary": str(_l(
                "A customer always has one primary contact: make another contact primary instead."))})
        if any(other.is_primary for other in others):
            return
        item.is_primary = True  # the customer had no contact yet
    for other in others:
        if other.is_primary:
            other.is_primary = False
    if item.phone is None:
        try:  # the customer's 联系方式 is required: the customer rule's own message
            customers.resolve_phone(item.phone, None)
        except ValueError as exc:
            raise RuleViolation({"phone": str(exc)}) from None
    mirrored = {"name", "phone"} if not was_primary else set(changed)
    moved = {field: column for field, column in MIRROR if field in mirrored
             and getattr(customer, column) != getattr(item, field)}
    if moved and gate.is_gated(gate.CONTACT_KIND, customer, user):
        # 001 使用规范二: the customer's key contact data, gated like on the customer's form
        if not was_primary:  # another person would become the customer's contact: on the customer's page
            gate.refuse_gated(gate.CONTACT_KIND, customer, user, list(moved))
        _hold_primary_change(item, customer, user, moved)
        mirrored -= set(moved)
    customers.copy_to_customer(item, customer, mirrored)


def _hold_primary_change(item: Contact, customer: Customer, user: Any, moved: dict[str, str]) -> None:
    """The primary contact's new name/phone wait for approval as a change of the customer's
    key contact data; the contact keeps its values until then (the approved change reaches
    it through the mirror)."""
    change = {column: getattr(item, field) for field, column in moved.items()}
    before = {column: getattr(customer, column) for column in moved.values()}
    for field in moved:
        setattr(item, field, records.previous(item, field))
    item.held_for_approval = gate.submit_held(customer, user, [gate.Held(gate.CONTACT_KIND, change, before)])


def _changed(item: Contact, before: dict[str, Any]) -> set[str]:
    return {name for name, value in before.items() if getattr(item, name) != value}


def save_contact(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> Contact:
    """Add (``pk`` None) or change one contact: the use case behind the form, the API and
    import/sync rows.

    ``values``: field -> value (``customer`` as a loaded record; flags as booleans or
    text such as 是/否; ``birthday`` a date or its text). Loads the contact in ``user``'s
    scope (``NotFound``: missing and a colleague's alike), refuses a stale ``version``
    (``StaleRecord``) and checks the customer (live, in scope), the fields (phone and e-mail
    as for customers) and the primary rule (``_settle_primary``): ``RuleViolation`` with a
    message per field. A primary contact's name and phone are copied onto the customer.
    Flushes (the flush hooks number P + date + sequence and audit); the caller commits.
    """
    item = Contact() if pk is None else records.load(Contact, pk, user)
    if pk is not None:
        records.check_version(item, version)
    with db.session.no_autoflush:
        before = {"name": item.name, "phone": item.phone}
        stored_customer_id, was_primary = item.customer_id, bool(item.is_primary)
        records.assign(item, values, EDITABLE)
        errors = _clean_fields(item, before["phone"])
        customer, problem = _check_customer(item, user, stored_customer_id)
        if problem:
            errors["customer"] = problem
        if errors:
            raise RuleViolation(errors)
        if pk is None:
            item.customer = customer
        _settle_primary(item, customer, was_primary, _changed(item, before), user)
    if pk is None:
        db.session.add(item)
    db.session.flush()
    return item


def set_primary(pk: Any, user: Any, *, version: Any) -> Contact:
    """Make contact ``pk`` its customer's primary contact (the flag moves; the customer's
    联系人姓名/联系方式 follow). Same loading, version and rules as ``save_contact``."""
    return save_contact({"is_primary": True}, user, pk=pk, version=version)


def delete_contact(pk: Any, user: Any) -> None:
    """Delete a contact of a live customer in ``user``'s scope (``NotFound`` otherwise).

    The primary contact is refused (``RuleViolation``): while others exist, make one of
    them primary first; the last one stays, as the customer's 联系人/联系方式 (a customer's
    phone is required). Leads that point at the contact keep their own copy of the name
    and phone and lose the link (the foreign key's SET NULL; ``app.models.on_delete`` on SQLite).
    """
    item = records.load(Contact, pk, user)
    problem = customer_problem(item.customer_id, user)
    if problem:
        raise RuleViolation({"customer": problem})
    if item.is_primary:
        others = db.session.scalar(select(Contact.id).where(Contact.customer_id == item.customer_id,
                                                            Contact.id != item.id).limit(1))
        message = (_l("This is the primary contact: make another contact primary before deleting it.") if others
                   else _l("A customer keeps at least one contact (its contact name and phone): edit it instead."))
        raise RuleViolation({"is_primary": str(message)}, status=409)
    db.session.delete(item)
    db.session.flush()


def reveal_contact_phone(pk: Any, user: Any, via: str = "web") -> str | None:
    """The full phone of one contact in ``user``'s scope: the customers' reveal rule
    (``customers.reveal_phone``: *reveal contact* permission, fresh step-up, audited).
    Raises ``NotFound``, ``RuleForbidden``, ``StepUpRequired``; the caller commits."""
    return customers.reveal_phone(records.load(Contact, pk, user), "phone", user, via)


_YES_NO_NOTE = _l("是 / 否 (yes / no); empty = no.")

CONTACT = declare(RecordType(
    name="contact", model=Contact, label=_l("Contact"), plural=_l("Contacts"), plural_en="Contacts",
    permission="Contact", scope=VIA_CUSTOMER, code_prefix="P",
    editable=EDITABLE, save=save_contact, delete=delete_contact,
    list_columns=("code", "customer", "name", "title", "phone", "email", "is_decision_maker", "is_primary"),
    show_columns=("code", "customer", "name", "title", "phone", "email", "birthday", "is_decision_maker",
                  "is_primary", "note"),
    search_columns=("code", "customer", "name", "title", "email", "is_decision_maker", "is_primary"),
    order_columns=("code", "name", "title"),
    labels={"customer": _l("Customer"), "name": _l("Name"), "title": _l("Job title"), "phone": _l("Phone"),
            "email": _l("E-mail"), "birthday": _l("Birthday"), "is_decision_maker": _l("Decision maker"),
            "is_primary": _l("Primary contact"), "note": _l("Note")},
    descriptions={
        "phone": _l("Mobile (13812345678) or landline with area code (010-12345678); +86 accepted."),
        "is_primary": _l("The primary contact is the customer's contact name and phone; ticking it here "
                         "moves the flag from the current one."),
    },
    fields=(
        ImportField("code", _l("Contact code"), "联系人编号", ("contact code", "contact no"), max_length=24,
                    note=_l("Leave empty for new contacts: the CRM numbers them.")),
        ImportField("customer", _l("Customer code"), "客户编号", ("customer", "customer no", "客户代码"), CUSTOMER,
                    required=True),
        ImportField("name", _l("Name"), "姓名", ("name", "contact", "contact name", "联系人", "联系人姓名"),
                    required=True, max_length=64),
        ImportField("title", _l("Job title"), "职务", ("title", "job title", "position", "职位", "岗位"),
                    max_length=64),
        ImportField("is_decision_maker", _l("Decision maker"), "决策人", ("decision maker", "是否决策人"),
                    note=_YES_NO_NOTE),
        ImportField("phone", _l("Phone"), "电话", ("phone", "mobile", "tel", "telephone", "手机", "手机号",
                    "联系电话", "联系方式"), max_length=32,
                    note=_l("Mobile (13812345678) or landline with area code (010-12345678).")),
        ImportField("email", _l("E-mail"), "邮箱", ("email", "mail", "e-mail", "电子邮箱"), max_length=120),
        ImportField("birthday", _l("Birthday"), "生日", ("birthday", "birth date", "出生日期"), DATE),
        ImportField("is_primary", _l("Primary contact"), "主要联系人", ("primary", "primary contact", "是否主要联系人"),
                    note=_l("是 moves the customer's contact name and phone to this contact.")),
    ),
    roles={"Sales Rep": "read|write|delete|export", "Sales Manager": "read|write|delete|export",
           "Customer Service": "read", "Read Only": "read"},
    menu_icon="fa-user",
))
