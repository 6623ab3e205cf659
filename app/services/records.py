"""What every record type's use cases share: loading in scope, the version guard, owners,
and reading a record's previous values during a save.

A use case (``save_customer``, ``save_follow_up``, ``archive_customers`` …) is built from
these pieces so that the form, the REST API, the importer, the sync and scheduled jobs
get the same answers: a record outside the caller's scope is "not found" (never
"not yours"), a stale version is refused, an owner must be active and in scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import ONETOMANY

from app.extensions import db
from app.models.org import CrmUser
from app.security.data_scope import scope_clause, visible_owner_ids
from app.security.request_bounds import db_int
from app.services.errors import NotFound, RuleForbidden, RuleViolation, StaleRecord


def not_found() -> NotFound:
    """The one answer for a record that is missing *or* outside the caller's scope."""
    return NotFound(str(_l("Record not found.")))


def load(model: type, pk: Any, user: Any, *, live: bool = True) -> Any:
    """The record ``pk`` of ``model`` as ``user`` may see it.

    ``live`` also refuses archived records (models with ``archived_at``). Raises
    ``NotFound`` (404) for a missing, out-of-scope or (``live``) archived record alike.
    """
    pk = db_int(pk)
    if pk is None:
        raise not_found()
    stmt = select(model).where(model.id == pk, scope_clause(user, model))
    if live and hasattr(model, "archived_at"):
        stmt = stmt.where(model.archived_at.is_(None))
    item = db.session.scalars(stmt).first()
    if item is None:
        raise not_found()
    return item


def load_many(model: type, pks: Iterable[Any], user: Any, *, live: bool = True) -> list[Any]:
    """Several records, all in scope or none: ``NotFound`` if any one is out of reach."""
    wanted = []
    for pk in pks:
        number = db_int(pk)
        if number is None:
            raise not_found()
        wanted.append(number)
    if not wanted:
        raise RuleViolation(str(_l("Select at least one record.")))
    stmt = select(model).where(model.id.in_(set(wanted)), scope_clause(user, model))
    if live and hasattr(model, "archived_at"):
        stmt = stmt.where(model.archived_at.is_(None))
    found = {item.id: item for item in db.session.scalars(stmt)}
    if len(found) != len(set(wanted)):
        raise not_found()
    return [found[pk] for pk in dict.fromkeys(wanted)]


def previous(item: Any, column: str) -> Any:
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


def related_id(item: Any, relation: str) -> int | None:
    """Id the record points to now, whether the relationship or the FK column was set."""
    if inspect(item).attrs[relation].history.has_changes():
        target = getattr(item, relation)
        return target.id if target is not None else None
    return getattr(item, f"{relation}_id")


def guarded(call: Any) -> Any:
    """Run a use case ``call()`` for a screen or an API: a concurrent save of the same record
    that surfaces only in a flush the use case did not guard (SQLAlchemy's
    ``StaleDataError``) becomes ``StaleRecord`` (409) like ``flush``, never a 500."""
    from sqlalchemy.orm.exc import StaleDataError

    try:
        return call()
    except StaleDataError:
        db.session.rollback()
        raise StaleRecord({"version": str(_l(
            "Someone else changed this record at the same moment: reload it and try again."))}) from None


def flush(message: Any = None) -> None:
    """Flush a use case's writes; a concurrent save of the same record in between (its
    version moved under us: SQLAlchemy's ``StaleDataError``) is ``StaleRecord`` (409) with
    ``message`` (default: reload and try again), never a 500. The session is rolled back."""
    from sqlalchemy.orm.exc import StaleDataError

    try:
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        raise StaleRecord({"version": str(message or _l(
            "Someone else changed this record at the same moment: reload it and try again."))}) from None


def check_version(item: Any, submitted: Any) -> None:
    """Optimistic locking: refuse a save based on an older version than the one stored.

    ``submitted`` is the version the editor loaded (int or its text). Raises
    ``RuleViolation`` (422) when it is missing or not a number, ``StaleRecord`` (409)
    when someone saved in between.
    """
    if submitted in (None, ""):
        raise RuleViolation({"version": str(_l("The record version is required to save changes."))})
    submitted = db_int(submitted) if not isinstance(submitted, float) else None
    if submitted is None:
        raise RuleViolation({"version": str(_l("Invalid record version."))})
    if submitted != item.version:
        raise StaleRecord({"version": str(_l(
            "Someone else changed this record while you were editing it (version %(theirs)d, you had "
            "%(yours)d). Reload it and apply your changes again.", theirs=item.version, yours=submitted))})


def check_owner(user: Any, owner_id: int | None) -> None:
    """A record's new owner must be an active user (not expired) inside the caller's data scope.

    Raises ``RuleViolation`` when missing or deactivated, ``RuleForbidden`` when out of scope
    (the same answer whether or not such a user exists).
    """
    if owner_id is None:
        raise RuleViolation({"owner": str(_l("An owner is required."))})
    allowed = visible_owner_ids(user)
    if allowed is not None and owner_id not in allowed:
        raise RuleForbidden({"owner": str(_l("You cannot assign records to this user."))})
    owner = db.session.get(CrmUser, owner_id)
    if owner is None:
        raise RuleForbidden({"owner": str(_l("You cannot assign records to this user."))})
    if not owner.is_active:  # deactivated, or past its expiry date (not deactivated by the nightly job yet)
        raise RuleViolation({"owner": str(_l("%(name)s is deactivated; pick an active owner.",
                                            name=owner.username))})


def owner_named(text: str, user: Any, check: bool = True) -> Any:
    """The user a spreadsheet cell names as owner (by user name), checked by ``check_owner``.

    Raises ``ValueError`` with the owner rule's message (deactivated; not assignable), or
    "No active user … in your data scope" for a name nobody in scope has. ``check=False``
    leaves the owner rule to the save (``settle_owner``): a record may keep a deactivated
    owner it already has, as in the form.
    """
    person = db.session.scalar(select(CrmUser).where(CrmUser.username == text.strip(), scope_clause(user, CrmUser)))
    if person is None:
        raise ValueError(_l("No active user %(name)s in your data scope.", name=text))
    if not check:
        return person
    try:
        check_owner(user, person.id)
    except RuleViolation as exc:
        raise ValueError(exc.errors["owner"]) from None
    return person


def default_owner(item: Any, user: Any) -> None:
    """No owner given: a new record belongs to its creator, an edited one keeps its owner."""
    if related_id(item, "owner") is not None:
        return
    before = previous(item, "owner_id")
    if before is not None:
        item.owner = inspect(item).session.get(CrmUser, before)
    elif user is not None:
        item.owner = user


def settle_owner(item: Any, user: Any) -> None:
    """Default the owner, then check it when it is new or changed (``check_owner``)."""
    default_owner(item, user)
    owner_id = related_id(item, "owner")
    if owner_id != previous(item, "owner_id") or inspect(item).transient or inspect(item).pending:
        check_owner(user, owner_id)


def assign(item: Any, values: dict[str, Any], editable: Iterable[str]) -> None:
    """Set the submitted ``values`` that a save may change; anything else is refused.

    ``values`` holds plain values and related objects (forms and the API load related ids
    into objects; the rules check them). Custom fields (``cf_<key>``, issue 18) go through
    ``custom_fields.apply``: their rules, defaults and required flags for every entry point.
    Raises ``RuleViolation`` naming unknown fields.
    """
    from app.services import custom_fields

    allowed = set(editable)
    custom = {name: value for name, value in values.items() if custom_fields.is_custom(name)}
    unknown = sorted(set(values) - allowed - set(custom))
    if unknown:
        raise RuleViolation({name: str(_l("This field cannot be set.")) for name in unknown})
    for name, value in values.items():
        if name not in custom:
            setattr(item, name, value)
    custom_fields.apply(item, custom)


def references(item: Any, blocking: bool = False) -> int:
    """How many rows point at ``item`` through a foreign key to its ``id`` (records,
    history, children). A referenced row is never hard-deleted: on SQLite (foreign keys
    not enforced) its records would point at nothing, on PostgreSQL the delete fails.
    ``blocking``: only keys without an ``ON DELETE`` rule, the ones that fail the delete
    (``app.models.on_delete`` on SQLite); rows the delete would clear or take along do not
    count, nor do nullable keys the ORM clears itself in the same flush (a one-to-many
    relationship without delete cascade: the users an account created or last edited)."""
    table = type(item).__table__
    cleared = _cleared_by_orm(type(item)) if blocking else set()
    total = 0
    for other in type(item).metadata.tables.values():
        for fk in other.foreign_keys:
            if blocking and ((fk.ondelete or "").upper() in ("CASCADE", "SET NULL") or fk.parent in cleared):
                continue
            if fk.column.table is table and fk.column.name == "id":
                total += db.session.scalar(select(func.count()).select_from(other).where(fk.parent == item.id)) or 0
    return total


def _cleared_by_orm(model: type) -> set[Any]:
    """The nullable key columns that deleting a ``model`` object sets to NULL through its
    one-to-many relationships (SQLAlchemy's default for children not deleted with it)."""
    cleared = set()
    for relation in inspect(model).relationships:
        if relation.direction is ONETOMANY and not relation.passive_deletes and not relation.cascade.delete:
            cleared.update(column for column in relation.remote_side if column.nullable)
    return cleared


def refuse_delete_in_use(item: Any) -> None:
    """``RuleViolation`` when rows still point at ``item`` (``references``)."""
    count = references(item)
    if count:
        raise RuleViolation(str(_l("%(name)s is still used by %(n)d records and cannot be deleted.",
                                   name=str(item), n=count)))


def record_status_changes(session: Any, model: type, column: str, make_change: Any) -> None:
    """Status history for one model, from a ``before_flush`` listener (every writer: forms,
    API, importer, sync, scripts). For each new or changed ``model`` row whose ``column``
    differs from its stored value, ``make_change(obj, before, after, reason)`` builds the
    history row added to the session; ``reason`` is the object's transient ``status_reason``
    (cleared: a reason belongs to one change only)."""
    for obj in [*session.new, *session.dirty]:
        if not isinstance(obj, model):
            continue
        before, after = previous(obj, column), getattr(obj, column)
        if before == after:
            continue
        session.add(make_change(obj, before, after, getattr(obj, "status_reason", None) or None))
        obj.status_reason = None
