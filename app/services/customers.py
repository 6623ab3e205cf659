"""Customer and follow-up rules: validation, numbering, status history, archiving.

Everything here runs for the HTML forms, the REST API and (later) the importer and
the sync. ``before_flush`` numbering and status history make sure no caller can forget.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models.base import current_user_id, now
from app.models.customers import Customer, CustomerAlias, CustomerStatusChange, FollowUp
from app.models.org import CrmUser
from app.security import masking
from app.security.data_scope import can_see, visible_owner_ids
from app.security.step_up import declare
from app.services import audit, bulk, numbering, validation
from app.services.errors import RuleForbidden, RuleViolation, StaleRecord

WON = "won"
BULK_ARCHIVE = declare("customer.bulk_archive", _l("Archive (delete) several customers at once"),
                       _l("Customers list, bulk action"))
ARCHIVE_WON = declare("customer.archive_won", _l("Archive (delete) a won customer"),
                      _l("Customers: delete / archive, and DELETE /api/v1/customer/<id>"))


def _previous(item: Any, column: str) -> Any:
    """The value a column had when loaded (None for new records).

    Columns, not relationships: a many-to-one that was never loaded has no history.
    """
    state = inspect(item)
    if state.pending or state.transient:
        return None
    history = state.attrs[column].history
    if history.deleted:
        return history.deleted[0]
    if history.unchanged:
        return history.unchanged[0]
    if history.added and state.session is not None:
        # Set after the object expired (e.g. after a commit): the old value is in the database.
        model = type(item)
        with state.session.no_autoflush:
            return state.session.execute(select(getattr(model, column)).where(model.id == item.id)).scalar()
    return getattr(item, column)


def _related_id(item: Any, relation: str) -> int | None:
    """Id the record points to now, whether the relationship or the FK column was set."""
    if inspect(item).attrs[relation].history.has_changes():
        target = getattr(item, relation)
        return target.id if target is not None else None
    return getattr(item, f"{relation}_id")


def resolve_phone(submitted: str | None, stored: str | None) -> str:
    """Normalise a submitted phone, keeping the stored one when the mask is echoed back."""
    if stored and masking.is_masked_echo(submitted, stored):
        return stored
    return validation.normalize_phone(submitted)


def check_owner(user: Any, owner_id: int | None) -> None:
    """A user may only give records to owners inside their own data scope."""
    allowed = visible_owner_ids(user)
    if owner_id is None:
        raise RuleViolation({"owner": str(_l("An owner is required."))})
    if allowed is not None and owner_id not in allowed:
        raise RuleForbidden({"owner": str(_l("You cannot assign records to this user."))})


def default_owner(item: Any, user: Any) -> None:
    """No owner given: a new record belongs to its creator, an edited one keeps its owner."""
    if _related_id(item, "owner") is not None:
        return
    previous = _previous(item, "owner_id")
    if previous is not None:
        item.owner = inspect(item).session.get(CrmUser, previous)
    elif user is not None:
        item.owner = user


def clean_customer(item: Customer, user: Any) -> None:
    """Normalise and validate a customer in place; raise ``RuleViolation`` listing every error."""
    with db.session.no_autoflush:  # scope queries must not flush a half-cleaned record
        _clean_customer(item, user)


def _clean_customer(item: Customer, user: Any) -> None:
    default_owner(item, user)
    values = {name: getattr(item, name) for name in CUSTOMER_CHECKED}
    previous = {name: _previous(item, name) for name in ("contact_phone", *CHOICE_IDS)}
    errors = check_customer(values, previous)
    if errors:
        raise RuleViolation(errors)
    for name in ("name", "contact_phone", "credit_code", "email"):
        setattr(item, name, values[name])
    owner_id = _related_id(item, "owner")
    if owner_id != _previous(item, "owner_id"):
        check_owner(user, owner_id)


CHOICES = ("type", "industry", "level", "source")
CHOICE_IDS = tuple(f"{name}_id" for name in CHOICES)
_TEXT_LIMITS = {c.name: c.type.length for c in Customer.__table__.columns
                if getattr(c.type, "length", None) and c.name not in ("code",)}
CUSTOMER_CHECKED = ("name", "contact_phone", "credit_code", "email", "contact_name", "address", "note", *CHOICES)


def check_customer(values: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, str]:
    """The customer field rules on plain values: normalise ``values`` in place, return errors.

    ``values`` holds text fields and dictionary entries (objects); ``previous`` the stored
    phone and dictionary ids of the record being edited (None for a new one). Forms and
    the API reach this through ``clean_customer``; the importer and the sync call it
    directly for speed, so all four apply the same rules.
    """
    previous = previous or {}
    errors: dict[str, str] = {}
    steps = {
        "name": lambda: validation.require_text(values.get("name"), 200),
        "contact_phone": lambda: resolve_phone(values.get("contact_phone"), previous.get("contact_phone")),
        "credit_code": lambda: validation.normalize_credit_code(values.get("credit_code")),
        "email": lambda: validation.normalize_email(values.get("email")),
    }
    for name, step in steps.items():
        try:
            values[name] = step()
        except ValueError as exc:
            errors[name] = str(exc)
    for name in CHOICES:
        try:
            validation.check_choice(values.get(name), previous.get(f"{name}_id"))
        except ValueError as exc:
            errors[name] = str(exc)
    for name, limit in _TEXT_LIMITS.items():
        value = values.get(name)
        if name not in errors and isinstance(value, str) and len(value) > limit:
            errors[name] = str(_l("At most %(n)d characters.", n=limit))
    return errors


def insert_customers(rows: list[dict[str, Any]]) -> None:
    """Insert many checked customers in one statement (imports, sync); ids land in ``rows``.

    The bulk path skips the ORM flush, so it does here what the flush hooks do for
    single saves: number them, start their status history, audit each one.
    """
    session = db.session
    blank = [row for row in rows if not row.get("code")]
    for row, code in zip(blank, numbering.allocate(session, numbering.CUSTOMER_PREFIX, len(blank)) if blank else [], strict=True):
        row["code"] = code
    stamp, uid = now(), current_user_id()
    for row in rows:
        row.update(created_on=stamp, changed_on=stamp, created_by_fk=uid, changed_by_fk=uid, version=1)
    bulk.insert_rows(session.connection(), Customer.__table__, rows)
    ids = dict(session.execute(select(Customer.code, Customer.id).where(Customer.code.in_([r["code"] for r in rows]))).all())
    for row in rows:
        row["id"] = ids[row["code"]]
    history = [{"customer_id": row["id"], "from_type_id": None, "to_type_id": row["type_id"],
                "changed_by_id": uid, "changed_at": stamp} for row in rows if row.get("type_id")]
    bulk.insert_rows(session.connection(), CustomerStatusChange.__table__, history)
    audit.record_created(Customer, rows)


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


def clean_follow_up(item: FollowUp, user: Any) -> None:
    with db.session.no_autoflush:
        _clean_follow_up(item, user)


def _clean_follow_up(item: FollowUp, user: Any) -> None:
    errors: dict[str, str] = {}
    try:
        item.content = validation.require_text(item.content, 10000)
    except ValueError as exc:
        errors["content"] = str(exc)
    customer_id = _related_id(item, "customer")
    if customer_id is None:
        errors["customer"] = str(_l("A customer is required."))
    elif customer_id != _previous(item, "customer_id") and not _customer_visible(user, customer_id):
        errors["customer"] = str(_l("Customer not found."))
    try:
        validation.check_choice(item.method, _previous(item, "method_id"))
    except ValueError as exc:
        errors["method"] = str(exc)
    if errors:
        raise RuleViolation(errors)
    default_owner(item, user)
    owner_id = _related_id(item, "owner")
    if owner_id != _previous(item, "owner_id"):
        check_owner(user, owner_id)


def _customer_visible(user: Any, customer_id: int) -> bool:
    """A follow-up can only be attached to a customer the user can see."""
    customer = db.session.get(Customer, customer_id)
    return customer is not None and can_see(user, customer)


def check_version(item: Any, submitted: Any) -> None:
    """Refuse a save based on an older version than the one stored."""
    if submitted in (None, ""):
        raise RuleViolation({"version": str(_l("The record version is required to save changes."))})
    try:
        submitted = int(submitted)
    except (TypeError, ValueError):
        raise RuleViolation({"version": str(_l("Invalid record version."))}) from None
    if submitted != item.version:
        raise StaleRecord(
            {
                "version": str(
                    _l(
                        "Someone else changed this record while you were editing it "
                        "(version %(theirs)d, you had %(yours)d). Reload it and apply "
                        "your changes again.",
                        theirs=item.version,
                        yours=submitted,
                    )
                )
            }
        )


def can_archive(customer: Customer, may_delete_won: bool) -> str | None:
    """None if the customer may be archived, else the reason it may not."""
    if customer.archived_at is not None:
        return str(_l("%(code)s is already archived.", code=customer.code))
    if is_won(customer) and not may_delete_won:
        return str(_l("%(code)s is a won customer; only a manager can archive it.", code=customer.code))
    return None


def is_won(customer: Customer) -> bool:
    """Won customers carry revenue history: archiving one is a manager's, stepped-up, act."""
    return customer.type is not None and customer.type.code == WON


def archive_step_up(customers: list[Customer], may_delete_won: bool) -> str | None:
    """Which sensitive action archiving these customers is (screens and API ask the same)."""
    if len(customers) > 1:
        return BULK_ARCHIVE
    if may_delete_won and any(is_won(customer) for customer in customers):
        return ARCHIVE_WON
    return None


def archive(customer: Customer, may_delete_won: bool) -> None:
    """Archive instead of deleting (customers are never hard-deleted from the UI)."""
    reason = can_archive(customer, may_delete_won)
    if reason:
        raise RuleForbidden(reason)
    customer.archived_at = datetime.now()  # audited as "archive" by the flush hook


def restore(customer: Customer) -> None:
    """Back from the archive; a customer merged away gets its own code back (its alias goes)."""
    customer.archived_at = None  # audited as "restore"
    session = inspect(customer).session
    if session is not None:
        for alias in session.scalars(select(CustomerAlias).where(CustomerAlias.merged_from_id == customer.id)):
            session.delete(alias)


def _number_new_records(session: Session) -> None:
    by_prefix: dict[str, list[Any]] = {numbering.CUSTOMER_PREFIX: [], numbering.FOLLOW_UP_PREFIX: []}
    for obj in session.new:
        if isinstance(obj, Customer) and not obj.code:
            by_prefix[numbering.CUSTOMER_PREFIX].append(obj)
        elif isinstance(obj, FollowUp) and not obj.code:
            by_prefix[numbering.FOLLOW_UP_PREFIX].append(obj)
    for prefix, objs in by_prefix.items():
        if objs:
            for obj, code in zip(objs, numbering.allocate(session, prefix, len(objs)), strict=True):
                obj.code = code


def _record_status_changes(session: Session) -> None:
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, Customer):
            continue
        before, after = _previous(obj, "type_id"), _related_id(obj, "type")
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


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    """Numbering and status history for every writer: views, API, importer, sync, scripts."""
    _number_new_records(session)
    _record_status_changes(session)
