"""The one writer of the audit log: explicit events and every change to audited models.

Two ways in, one chain:

* ``record(action, obj, ...)`` for events that are not row changes (login, reveal,
  export, step-up, TOTP enrolment ...);
* a SQLAlchemy ``after_flush`` hook that turns every insert/update/delete of an audited
  model into an entry with field-level before/after. Views, the REST API, imports, sync
  runs and scripts all flush through the same session, so none can forget.

Entries go into the current transaction (they commit or roll back with the change) and
are hash-chained by ``_append``, which locks the chain head row first.

Inside ``audit_context(steps=True)`` (imports) the entries appended together (a chunk's
flush, a bulk insert's ``append_created``) form one **chain step**: each keeps its own row
(the record's history shows it), all carry the hash of the entry before the step as
``prev_hash`` and, as ``hash``, one SHA-256 over the step (``step_hash``: the columns the
members share once, then each member's own columns). One JSON document and one hash per
chunk instead of one per record; ``verify_chain`` recomputes the step, so editing,
removing or reordering a member still breaks the chain.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from flask import g, has_app_context, has_request_context, request
from sqlalchemy import event, func, insert, inspect, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, attributes

from app.clock import as_utc, local_text, utc_now
from app.models.audit import AuditChainHead, AuditLog
from app.models.base import UtcDateTime, acting_user_id
from app.security.masking import ERASED, mask_phone
from app.services import message_text, messages
from app.services.bulk import bound_value, insert_rows, insert_values

#: Columns every entry hashes, in order (changing this list invalidates old chains).
HASHED_COLUMNS = (
    "seq", "created_at", "user_id", "user_name", "ip", "user_agent", "source", "action",
    "object_type", "object_id", "changes", "reason", "detail", "prev_hash",
)
#: Bookkeeping columns that are not worth an entry of their own.
IGNORED_COLUMNS = {"changed_on", "changed_by_fk", "created_on", "created_by_fk", "version"}


@dataclass(frozen=True)
class AuditSpec:
    """How one model is audited: which fields to skip, mask or list as collections."""

    exclude: frozenset[str] = frozenset()
    masked: frozenset[str] = frozenset()
    secret: frozenset[str] = frozenset()
    collections: tuple[str, ...] = ()
    permission_model: bool = False


#: Hashed columns every member of a chain step has in common (hashed once per step) ...
STEP_SHARED = ("created_at", "user_id", "user_name", "ip", "user_agent", "source", "prev_hash")
#: ... and each member's own (hashed per member, in seq order).
STEP_OWN = ("seq", "action", "object_type", "object_id", "changes", "reason", "detail")


@dataclass(frozen=True)
class _Context:
    source: str | None = None
    reason: str | None = None
    steps: bool = False


_NO_CONTEXT = _Context()
_context: ContextVar[_Context | None] = ContextVar("audit_context", default=None)
AUDITED: dict[type, AuditSpec] = {}


def audited(model: type, **spec: Any) -> None:
    """Register a model whose row changes are logged field by field."""
    for key in ("exclude", "masked", "secret"):
        spec[key] = frozenset(spec.get(key, ()))
    AUDITED[model] = AuditSpec(**spec)


def stored_reason(reason: Any) -> str | None:
    """An entry's reason as stored: text as given (a person's words, cut to 256 characters);
    a lazy string or a ``messages.Message`` (the code's own words, e.g. which run wrote the
    entry) kept for the reader's language (``message_text``: the audit log renders it)."""
    if reason is None or reason == "":
        return None
    if isinstance(reason, str):
        return reason[:256]
    message = reason if isinstance(reason, dict) else messages.stored(reason)
    return message_text.to_column(message, 256)


@contextmanager
def audit_context(source: str | None = None, reason: Any = None, steps: bool = False) -> Iterator[None]:
    """Label every entry written inside the block (e.g. ``source="import"``; ``reason``: see
    ``stored_reason``); ``steps``: entries appended together form one chain step (see the
    module doc; bulk writers such as the importer)."""
    token = _context.set(_Context(source=source, reason=stored_reason(reason), steps=steps))
    try:
        yield
    finally:
        _context.reset(token)


def current_source() -> str:
    explicit = (_context.get() or _NO_CONTEXT).source
    if explicit:
        return explicit
    if has_request_context():
        return "api" if request.path.startswith("/api/") else "web"
    return "script"


def _actor(conn: Connection, user: Any = None) -> tuple[int | None, str | None]:
    if user is None and has_app_context():
        candidate = getattr(g, "user", None)
        if candidate is not None and not getattr(candidate, "is_anonymous", True):
            user = candidate
    if user is not None:
        return user.id, user.username
    uid = acting_user_id.get()
    if uid is None:
        return None, None
    from app.models.org import CrmUser

    return uid, conn.execute(select(CrmUser.username).where(CrmUser.id == uid)).scalar()


def _request_facts() -> dict[str, str | None]:
    if not has_request_context():
        return {"ip": None, "user_agent": None}
    agent = request.headers.get("User-Agent")
    return {"ip": request.remote_addr, "user_agent": agent[:256] if agent else None}


def _json(value: Any) -> str | None:
    if value in (None, {}, []):
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


#: orjson's options for ``compact_json``: what it would write itself (datetimes, dataclasses)
#: goes through ``default=str`` as with ``json``.
_ORJSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def compact_json(value: Any) -> str:
    """``value`` as compact JSON text, non-ASCII as is (``json.dumps(..., ensure_ascii=False,
    separators=(",", ":"), default=str)``), through orjson: seven times faster on an audit
    entry's changes (issue 12: 0.75 -> 0.11 s per 200,000), and the same text for the str,
    int, None, bool, list and dict values the chain hashes (every code point compared), so
    entries hashed before verify the same. Floats differ in form (``1e-7`` for ``1e-07``;
    NaN and infinities become ``null``) and a plain ``Enum`` is written as its value: none
    reaches it today (bulk-audited columns hold no floats or enums; ``_plain`` turns other
    types into text first). Values orjson refuses (ints beyond 64 bits, lone surrogates,
    non-str keys) go through ``json`` as before. Entries written in bulk
    (``created_changes``: imports) store their changes this way; one saved record's
    entry keeps ``json``'s spaced text (``_json``); readers parse either."""
    try:
        return orjson.dumps(value, default=str, option=_ORJSON).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _hashed_time(value: datetime, zone: tzinfo | None = None) -> str:
    """An instant as the chain hashes it: naive UTC wall time, to the microsecond (what the
    entries written before instants were aware hashed on a UTC server); ``zone``: that
    zone's wall time instead (entries from a server whose clock was not UTC)."""
    moment = as_utc(value)
    if zone is not None:
        moment = moment.astimezone(zone)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds")


def entry_hash(row: Mapping[str, Any], legacy_zone: tzinfo | None = None) -> str:
    """SHA-256 over the hashed columns of one entry (as stored).

    ``legacy_zone``: the entry predates UTC storage and was hashed with its wall time in
    that zone (``AuditChainHead.legacy_zone``)."""
    values = []
    for name in HASHED_COLUMNS:
        value = row[name]
        if isinstance(value, datetime):
            value = _hashed_time(value, legacy_zone)
        values.append(value)
    payload = compact_json(values)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def step_hash(rows: list[Mapping[str, Any]]) -> str:
    """SHA-256 of one chain step (two or more entries appended together, in seq order):
    ``STEP_SHARED`` of the first member, then ``STEP_OWN`` of every member, as one compact
    JSON document. ``verify_chain`` checks that the members really share ``STEP_SHARED``."""
    shared = [rows[0][name] for name in STEP_SHARED]
    shared[0] = _hashed_time(shared[0])
    own = [[row[name] for name in STEP_OWN] for row in rows]
    payload = compact_json([shared, own])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _append(conn: Connection, entries: list[dict[str, Any]], user: Any = None) -> None:
    """Chain and insert entries; the head row update serialises concurrent writers.

    Every entry of one call gets the same ``created_at`` (one transaction, one moment);
    inside ``audit_context(steps=True)`` two or more entries form one chain step."""
    if not entries:
        return
    head = AuditChainHead.__table__
    bumped = conn.execute(update(head).where(head.c.id == 1).values(seq=head.c.seq + len(entries)))
    if bumped.rowcount == 0:
        conn.execute(insert(head).values(id=1, seq=len(entries), last_hash=""))
    seq_end, prev = conn.execute(select(head.c.seq, head.c.last_hash).where(head.c.id == 1)).one()
    user_id, user_name = _actor(conn, user)
    context = _context.get() or _NO_CONTEXT
    base = {"created_at": utc_now(), "user_id": user_id, "user_name": user_name, **_request_facts(),
            "source": current_source(), "object_type": None, "object_id": None, "changes": None, "detail": None,
            "reason": context.reason, "prev_hash": prev}
    first = seq_end - len(entries) + 1
    rows = [{**base, **entry, "seq": first + offset, "prev_hash": prev} for offset, entry in enumerate(entries)]
    if context.steps and len(rows) > 1:
        prev = step_hash(rows)
        for row in rows:
            row["hash"] = prev
    else:
        for row in rows:
            row["prev_hash"] = prev
            row["hash"] = prev = entry_hash(row)
    _insert_entries(conn, rows)
    conn.execute(update(head).where(head.c.id == 1).values(last_hash=prev))


#: The columns an entry is inserted with, in order.
_INSERTED = (*HASHED_COLUMNS, "hash")


def _insert_entries(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """INSERT entries straight through the driver (imports write 100k; ``bulk.insert_values``:
    ``COPY`` on PostgreSQL, multi-row pages on SQLite). The entries of one call share their
    ``created_at`` (``_append``), so it is converted for the column once."""
    if len(rows) == 1:
        insert_rows(conn, AuditLog.__table__, [{name: rows[0][name] for name in _INSERTED}])
        return
    stamp = bound_value(conn.dialect, AuditLog.__table__.c.created_at, rows[0]["created_at"])
    for row in rows:
        row["created_at"] = stamp
    insert_values(conn, AuditLog.__table__, _INSERTED, list(map(_VALUES, rows)))


_VALUES = itemgetter(*_INSERTED)


def record(
    action: str,
    obj: Any = None,
    detail: dict | None = None,
    *,
    reason: Any = None,
    user: Any = None,
) -> None:
    """Append an explicit event to the current transaction (it commits with the caller);
    ``reason``: see ``stored_reason``."""
    from app.extensions import db

    entry: dict[str, Any] = {"action": action, "detail": _json(detail)}
    if obj is not None:
        obj = getattr(obj, "_get_current_object", lambda: obj)()  # FAB's g.user is a LocalProxy
        entry["object_type"] = type(obj).__name__
        entry["object_id"] = _object_id(obj)
    if reason:
        entry["reason"] = stored_reason(reason)
    _append(db.session.connection(), [entry], user=user)
    from app.security import alerts  # here: alerts imports this module

    if action in alerts.actions():  # the admins are told in the alert's own transaction
        from app.services import notify_hooks

        notify_hooks.security_alert(action, obj)


# --- row changes --------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):  # an instant, always written in UTC with its offset
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _shown(spec: AuditSpec, key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in spec.secret:
        return "(changed)"
    if key in spec.masked:
        return mask_phone(value)
    return _plain(value)


def _columns(obj: Any, spec: AuditSpec) -> list[str]:
    skip = IGNORED_COLUMNS | spec.exclude
    return [attr.key for attr in inspect(obj).mapper.column_attrs if attr.key not in skip]


def _collection_change(obj: Any, key: str) -> list[list[str]] | None:
    history = attributes.get_history(obj, key)
    if not history.added and not history.deleted:
        return None
    unchanged = [str(v) for v in history.unchanged or ()]
    before = sorted(unchanged + [str(v) for v in history.deleted or ()])
    after = sorted(unchanged + [str(v) for v in history.added or ()])
    return [before, after]


# --- custom fields (issue 18): one change per field, masked ones masked -----------------

#: The JSON column holding a record's custom values (``CustomValuesMixin``).
CUSTOM_COLUMN = "custom"


def _custom_fields(model: type) -> dict[str, Any]:
    """key -> ``FieldDef`` of the record type stored on ``model`` (in memory, no query per row)."""
    from app.services import custom_fields

    record_type = custom_fields.record_type_of(model)
    return {field.key: field for field in custom_fields.fields_of(record_type)} if record_type else {}


def _custom_shown(field: Any, value: Any) -> Any:
    """A custom value as an entry keeps it: the stored JSON value; a masked field's masked text."""
    if value is None or value == [] or value == "":
        return None
    if field is not None and field.masked:
        from app.services.custom_fields import masked_text

        return masked_text(field, value)
    return value


def _custom_dict(value: Any) -> dict[str, Any]:
    """A ``custom`` value as a dict (a bulk row may carry it as JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def custom_changes(model: type, before: Any, after: Any, fields: dict[str, Any] | None = None
                   ) -> dict[str, list[Any]]:
    """The per-field changes between two ``custom`` values (dicts, or None): ``{"cf_<key>":
    [before, after]}`` for each key whose value differs, masked fields masked (never the
    full value in the log). ``fields``: ``_custom_fields(model)`` when already known."""
    from app.services.custom_fields import PREFIX

    before, after = _custom_dict(before), _custom_dict(after)
    if fields is None:
        fields = _custom_fields(model)
    changes = {}
    for key in sorted({*before, *after}):
        old, new = before.get(key), after.get(key)
        if old != new:
            field = fields.get(key)
            changes[PREFIX + key] = [_custom_shown(field, old), _custom_shown(field, new)]
    return changes


def _update_changes(obj: Any, spec: AuditSpec) -> dict[str, list[Any]]:
    changes = {}
    for key in _columns(obj, spec):
        history = attributes.get_history(obj, key)
        if not history.added and not history.deleted:
            continue
        before = history.deleted[0] if history.deleted else None
        after = history.added[0] if history.added else None
        if key == CUSTOM_COLUMN:
            changes.update(custom_changes(type(obj), before, after))
            continue
        if before != after:
            changes[key] = [_shown(spec, key, before), _shown(spec, key, after)]
    for key in spec.collections:
        change = _collection_change(obj, key)
        if change:
            changes[key] = change
    return changes


def _snapshot(obj: Any, spec: AuditSpec, created: bool) -> dict[str, list[Any]]:
    changes = {}
    for key in _columns(obj, spec):
        if key == CUSTOM_COLUMN:
            value = getattr(obj, key)
            changes.update(custom_changes(type(obj), None, value) if created else custom_changes(type(obj), value, None))
            continue
        value = _shown(spec, key, getattr(obj, key))
        if value is not None:
            changes[key] = [None, value] if created else [value, None]
    return changes


def _update_action(spec: AuditSpec, changes: dict[str, list[Any]]) -> str:
    if "archived_at" in changes:
        return "archive" if changes["archived_at"][1] else "restore"
    if changes.get("active") == [True, False]:
        return "deactivate"
    if spec.permission_model or set(changes) & set(spec.collections):
        return "permission_change"
    return "update"


def _object_id(obj: Any) -> str | None:
    """Primary key, also for rows inserted by the flush in progress (no identity key yet)."""
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    return None if not key or key[0] is None else str(key[0])


def _entry(obj: Any, action: str, changes: dict) -> dict[str, Any]:
    return {"action": action, "object_type": type(obj).__name__, "object_id": _object_id(obj),
            "changes": _json(changes)}


def _spec_for(obj: Any) -> AuditSpec | None:
    return _spec_of(type(obj))


def _spec_of(model: type) -> AuditSpec | None:
    for cls in model.__mro__:
        if cls in AUDITED:
            return AUDITED[cls]
    return None


def collect_changes(session: Session) -> list[dict[str, Any]]:
    """Entries for the flush in progress (called from ``after_flush``: history intact)."""
    entries = []
    for obj in session.new:
        spec = _spec_for(obj)
        if spec:
            action = "permission_change" if spec.permission_model else "create"
            entries.append(_entry(obj, action, _snapshot(obj, spec, created=True)))
    for obj in session.dirty:
        spec = _spec_for(obj)
        if spec and session.is_modified(obj):
            changes = _update_changes(obj, spec)
            if changes:
                entries.append(_entry(obj, _update_action(spec, changes), changes))
    for obj in session.deleted:
        spec = _spec_for(obj)
        if spec:
            entries.append(_entry(obj, "delete", _snapshot(obj, spec, created=False)))
    return entries


def created_changes(model: type, rows: list[dict[str, Any]], ahead: tuple[str, ...] = ()) -> list[str | None]:
    """Each row's create entry ``changes`` (compact JSON) for rows inserted in bulk, shaped like
    the hook's (``_snapshot``: every audited column with a value, masked as the spec says,
    keys sorted), or None for a row with nothing audited. A value known only when the row is stored (its code) may be
    ``later(key)``: the text then holds a marker that ``filled`` replaces with the value, so
    an import's checking process builds the entries and its writer only fills them in.
    ``ahead``: columns no row holds yet (``id``), marked in every row."""
    spec = _spec_of(model)
    if spec is None or not rows:
        return [None] * len(rows)
    skip = IGNORED_COLUMNS | spec.exclude
    keys = sorted(attr.key for attr in inspect(model).column_attrs if attr.key not in skip)
    # plain columns need no conversion per value; the rest go through _shown as in the hook
    as_is = {key for key in keys if key not in spec.secret | spec.masked}
    fields = _custom_fields(model) if CUSTOM_COLUMN in keys else {}
    marked = {key: later(key) for key in ahead}
    # a chunk's rows share their stamps and a few days: each instant or day shown once per key;
    # fold is in the memo's key (one zone's 02:30 twice when clocks go back compares equal)
    memo: dict[tuple[Any, ...], Any] = {}
    texts = []
    for row in rows:
        changes = {}
        for key in keys:  # sorted: the same JSON as the hook's sort_keys
            value = row.get(key) if key not in marked else marked[key]
            if key == CUSTOM_COLUMN:
                if value:  # cf_<key> sort before "custom": the entry's keys sorted again below
                    changes.update(custom_changes(model, None, value, fields))
                continue
            if value is None:
                continue
            kind = type(value)
            if key in as_is and kind in _AS_IS:
                changes[key] = [None, value]
            elif kind in _MOMENTS:
                memo_key = (key, value, value.tzinfo if kind is datetime else None, getattr(value, "fold", 0), kind)
                plain = memo.get(memo_key)
                if plain is None:
                    plain = memo[memo_key] = _shown(spec, key, value)
                changes[key] = [None, plain]
            else:
                changes[key] = [None, _shown(spec, key, value)]
        if row.get(CUSTOM_COLUMN):
            changes = dict(sorted(changes.items()))
        texts.append(compact_json(changes) if changes else None)
    return texts


def append_created(model: type, ids: list[int], changes: list[str | None]) -> None:
    """Append the create entries of the rows ``ids`` of ``model`` just inserted in bulk, with
    their ``changes`` (``created_changes``, filled in), as one call of ``_append``."""
    from app.extensions import db

    if _spec_of(model) is None or not ids:
        return
    name = model.__name__
    _append(db.session.connection(), [{"action": "create", "object_type": name, "object_id": str(pk),
                                       "changes": text} for pk, text in zip(ids, changes, strict=True)])


#: Makes ``later`` markers unguessable: no typed text can hold one (a fork keeps the same).
_LATER_NONCE = secrets.token_hex(8)


def later(key: str) -> str:
    """A stand-in value for column ``key`` of a row whose create entry is built before the row
    is stored (``created_changes``); ``filled`` replaces it with the stored value. The value
    itself must not be None, masked or secret (the entry would differ from the hook's)."""
    return f"\x00{key}:{_LATER_NONCE}\x00"


def filled(changes: str, values: Mapping[str, Any]) -> str:
    """``changes`` with each ``later(key)`` marker replaced by ``values[key]`` as JSON: the
    text ``created_changes`` would have made with the values themselves."""
    for key, value in values.items():
        changes = changes.replace(_later_json(key), _value_json(value), 1)
    return changes


def filled_rows(changes: list[str], values: Mapping[str, Sequence[Any]]) -> list[str]:
    """``filled`` for many entries at once, the values by column: ``changes[i]`` with the
    ``later(key)`` marker replaced by ``values[key][i]`` where it has one (an entry whose row
    held the value itself has none). A bulk insert's entries, one pass per column (100,000
    entries with a code and an id: 0.21 s against 0.25 s through ``filled``)."""
    for key, column in values.items():
        marker = _later_json(key)
        changes = [text.replace(marker, _value_json(value), 1) for text, value in zip(changes, column, strict=True)]
    return changes


def _value_json(value: Any) -> str:
    """``compact_json(value)``, at once for the ids and codes ``filled`` mostly writes."""
    if type(value) is int:
        return str(value)
    if type(value) is str and value.isascii() and value.isalnum():
        return f'"{value}"'
    return compact_json(value)


@functools.cache
def _later_json(key: str) -> str:
    return compact_json(later(key))


#: Value types ``_plain`` returns unchanged (bool is an int).
_AS_IS = frozenset({str, int, float, bool})
#: Value types ``created_changes`` shows once per distinct value (``_plain``'s costly ones).
_MOMENTS = frozenset({datetime, date})


@event.listens_for(Session, "after_flush")
def _audit_flush(session: Session, flush_context: Any) -> None:
    if any(isinstance(obj, AuditLog) for obj in session.dirty | session.deleted):
        raise RuntimeError("The audit log is append-only.")
    entries = collect_changes(session)
    if entries:
        _append(session.connection(), entries)


def history(object_type: str, object_id: Any, limit: int = 50) -> list[AuditLog]:
    """The latest entries about one record (for its page; the caller checks scope)."""
    from app.extensions import db

    return db.session.scalars(
        select(AuditLog).where(AuditLog.object_type == object_type, AuditLog.object_id == str(object_id))
        .order_by(AuditLog.seq.desc()).limit(limit)
    ).all()


def change_rows(changes: str | None, object_type: str | None = None,
                labels: Mapping[str, Any] | None = None) -> list[tuple[str, Any, Any]]:
    """(field, before, after) of an entry's ``changes`` column, as a person reads them.

    With the audited model's name (``object_type``): a foreign key column reads as its
    relation's label and its values as the related records' names (``str`` of the record,
    e.g. the dictionary entry's label or the user's name; "#id" once deleted); yes/no
    columns read Yes/No; date-times read to the minute. ``labels`` are the screen's
    column labels (a view's ``label_columns``, by column or relation name); a column
    without one keeps its name. Without ``object_type`` the stored values are shown. The
    record's own id (its primary key, in a created or deleted record's snapshot) is no
    change a person reads: it is left out.
    """
    if not changes:
        return []
    model = _model_named(object_type)
    relations = _relations(model) if model is not None else {}
    own_keys = {column.key for column in inspect(model).primary_key} if model is not None else {"id"}
    labels = labels or {}
    rows = []
    fields = _custom_fields(model) if model is not None else {}
    for key, (before, after) in sorted(json.loads(changes).items()):
        if key in own_keys:
            continue
        custom = fields.get(key[3:]) if key.startswith("cf_") else None
        if custom is not None:
            rows.append((labels.get(key) or custom.label(), *(_custom_readable(custom, v) for v in (before, after))))
            continue
        relation = relations.get(key)
        label = labels.get(relation.key if relation is not None else key) or labels.get(key) or key
        rows.append((label, *(_readable(model, key, relation, value) for value in (before, after))))
    return rows


def _custom_readable(field: Any, value: Any) -> Any:
    """A custom field's logged value as a person reads it (choice labels, Yes/No, local
    time); a field masked now reads masked, whatever it was when the entry was written (an
    admin may mask a field after values were logged in full)."""
    from app.services.custom_fields import as_text

    if value is None:
        return value
    if field.masked:
        return _custom_shown(field, value)
    try:
        return as_text(field, value)
    except (ValueError, TypeError):  # logged before the field's kind changed
        return value


def _model_named(object_type: str | None) -> type | None:
    return next((model for model in AUDITED if model.__name__ == object_type), None)


def _relations(model: type) -> dict[str, Any]:
    """Foreign key attribute name -> the many-to-one relationship it holds."""
    mapper = inspect(model)
    found = {}
    for relation in mapper.relationships:
        if relation.direction.name != "MANYTOONE":
            continue
        for column in relation.local_columns:
            found[mapper.get_property_by_column(column).key] = relation
    return found


def _readable(model: type | None, key: str, relation: Any, value: Any) -> Any:
    from flask_babel import lazy_gettext as _l

    from app.extensions import db

    if value is None or model is None:
        return value
    if relation is not None:
        record = db.session.get(relation.mapper.class_, value)
        return str(record) if record is not None else f"#{value}"
    if isinstance(value, bool):
        return _l("Yes") if value else _l("No")
    column = inspect(model).columns.get(key)
    if column is not None and isinstance(value, str) and isinstance(column.type, UtcDateTime):
        try:  # stored as ISO with +00:00; entries from before that are naive UTC (a server's clock)
            return local_text(datetime.fromisoformat(value))
        except ValueError:
            return value
    return value


#: Entries an administrator must look at (security alerts, home-page banner).
ALERT_ACTIONS = ("totp_locked", "audit_chain_broken")


def recent_alert_count(hours: int = 24) -> int:
    from app.extensions import db

    since = utc_now() - timedelta(hours=hours)
    return db.session.scalar(select(func.count(AuditLog.id)).where(
        AuditLog.action.in_(ALERT_ACTIONS), AuditLog.created_at >= since
    )) or 0


# --- verification -------------------------------------------------------------------


@dataclass
class ChainReport:
    checked: int
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(session: Session) -> ChainReport:
    """Walk the chain in order; report the first entry whose link or hash is wrong.

    Consecutive entries with the same ``prev_hash`` and ``hash`` are one chain step
    (``step_hash``): checked together, and reported at the first member that differs from
    the others in a shared column, else at the step's first entry."""
    head = session.get(AuditChainHead, 1)
    legacy_seq, legacy_zone = _legacy(head)
    # A database not migrated to issue 19 yet (verified before its upgrade) has no erasures.
    erasures = "erased_in" in {column["name"] for column in inspect(session.connection()).get_columns("audit_log")}
    listings = erasure_listings(session) if erasures else {}
    names = (*HASHED_COLUMNS, "hash", "erased_in") if erasures else (*HASHED_COLUMNS, "hash")
    columns = [AuditLog.__table__.c[name] for name in names]
    rows = session.execute(select(*columns).order_by(AuditLog.seq).execution_options(yield_per=5000))
    prev, expected_seq, checked = "", 1, 0
    step: list[Mapping[str, Any]] = []
    for row in rows.mappings():
        if step and (row["prev_hash"], row["hash"]) == (step[0]["prev_hash"], step[0]["hash"]):
            if row["seq"] != expected_seq:
                return ChainReport(checked, expected_seq, f"entry #{expected_seq} is missing (next is #{row['seq']})")
            step.append(row)
            expected_seq += 1
            continue
        if step:
            problem = _step_problem(step, legacy_zone if step[0]["seq"] <= legacy_seq else None, listings)
            if problem:
                return ChainReport(checked, *problem)
            prev, checked = step[0]["hash"], checked + len(step)
        if row["seq"] != expected_seq:
            return ChainReport(checked, expected_seq, f"entry #{expected_seq} is missing (next is #{row['seq']})")
        if row["prev_hash"] != prev:
            return ChainReport(checked, row["seq"], f"entry #{row['seq']} does not link to the entry before it")
        step = [row]
        expected_seq += 1
    if step:
        problem = _step_problem(step, legacy_zone if step[0]["seq"] <= legacy_seq else None, listings)
        if problem:
            return ChainReport(checked, *problem)
        prev, checked = step[0]["hash"], checked + len(step)
    if head is not None and (head.seq != checked or head.last_hash != prev):
        return ChainReport(checked, checked + 1, f"entries after #{checked} were removed (head is #{head.seq})")
    return ChainReport(checked)


def _step_problem(step: list[Mapping[str, Any]], legacy_zone: tzinfo | None,
                  listings: Mapping[int, Mapping[int, tuple[str, str]]] | None = None) -> tuple[int, str] | None:
    """(seq, problem) of a single entry or chain step whose hash does not match; None when it does.
    A step with an entry redacted by a personal-data erasure is checked by ``_redacted_problem``."""
    first = step[0]
    if any(row.get("erased_in") is not None for row in step):
        return _redacted_problem(step, listings or {})
    if len(step) == 1:
        if entry_hash(first, legacy_zone) != first["hash"]:
            return first["seq"], f"entry #{first['seq']} was altered after it was written"
        return None
    for member in step[1:]:
        if any(member[name] != first[name] for name in STEP_SHARED):
            return member["seq"], f"entry #{member['seq']} was altered after it was written"
    if step_hash(step) != first["hash"]:
        return first["seq"], (f"an entry among #{first['seq']}-#{step[-1]['seq']} (one chain step) "
                              "was altered after it was written")
    return None


# --- personal-data erasure (issue 19) ---------------------------------------------------

#: The action of the entry that records a personal-data erasure and lists the entries it redacted.
ERASURE_ACTION = "personal_data_erased"
#: What an erased value reads as in a redacted entry (and in the record's erased fields):
#: ``app.security.masking.ERASED``, imported above.


def erasure_listings(session: Session) -> dict[int, dict[int, tuple[str, str]]]:
    """seq of each ``personal_data_erased`` entry -> {seq: (original hash, fingerprint)} of
    the entries it lists in ``detail["redacted"]`` as [seq, hash, fingerprint]."""
    rows = session.execute(select(AuditLog.seq, AuditLog.detail).where(AuditLog.action == ERASURE_ACTION))
    listings: dict[int, dict[int, tuple[str, str]]] = {}
    for seq, detail in rows:
        try:
            listed = json.loads(detail or "{}").get("redacted") or []
            listings[seq] = {int(item[0]): (str(item[1]), str(item[2])) for item in listed}
        except (ValueError, TypeError, AttributeError, IndexError):
            listings[seq] = {}
    return listings


def fingerprint(row: Mapping[str, Any]) -> str:
    """A redacted entry's fingerprint: ``entry_hash`` over its columns as stored after the
    redaction. The erasure entry (itself chained) lists it, so editing any column of a
    redacted entry afterwards is still detected."""
    return entry_hash(row)


def _redacted_problem(step: list[Mapping[str, Any]],
                      listings: Mapping[int, Mapping[int, tuple[str, str]]]) -> tuple[int, str] | None:
    """A single entry or chain step with entries redacted by an erasure: the latest erasure
    named in ``erased_in`` (later in the chain) must list every member with its original hash
    (the chain link) and its fingerprint as stored now. (seq, problem), or None."""
    latest = max(row["erased_in"] for row in step if row.get("erased_in") is not None)
    listing = listings.get(latest, {})
    for row in step:
        listed = listing.get(row["seq"])
        if listed is None or latest <= row["seq"]:
            return row["seq"], f"entry #{row['seq']} claims an erasure (#{latest}) that does not list it"
        if listed != (row["hash"], fingerprint(row)):
            return row["seq"], f"entry #{row['seq']} was altered after it was written"
    return None


def redact_value(value: Any, needles: tuple[str, ...], keys: frozenset[str] = frozenset(),
                 key: str | None = None) -> Any:
    """``value`` (decoded JSON) with every string holding one of ``needles`` (substring)
    replaced by ``ERASED``, and every value under a key in ``keys`` (e.g. ``contact_phone``
    in a ``changes`` map: [before, after]) replaced whole. Returns a new value."""
    if isinstance(value, dict):
        return {k: redact_value(v, needles, keys, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, needles, keys, key) for v in value]
    if value is None:
        return None
    if key in keys:
        return ERASED
    if isinstance(value, str) and any(needle in value for needle in needles):
        return ERASED
    return value


def redact_text(text: str | None, needles: tuple[str, ...], keys: frozenset[str] = frozenset()) -> str | None:
    """A ``changes``/``detail`` JSON text redacted (``redact_value``); text that is not JSON
    is redacted as one string. Returns ``text`` itself when nothing in it changes."""
    if not text:
        return text
    try:
        decoded = json.loads(text)
    except ValueError:
        return ERASED if any(needle in text for needle in needles) else text
    redacted = redact_value(decoded, needles, keys)
    return text if redacted == decoded else json.dumps(redacted, ensure_ascii=False, sort_keys=True)


def apply_redactions(conn: Connection, rewrites: Mapping[int, Mapping[str, Any]], erasure_seq: int) -> None:
    """Write redacted entries: ``rewrites`` maps an entry's seq to its new ``changes`` /
    ``detail`` / ``reason``; each gets ``erased_in = erasure_seq`` (the erasure entry, which
    must already list [seq, hash, fingerprint] of every one and of the other members of its
    chain step, else ``verify_chain`` reports it). Core UPDATEs: the ORM refuses to change
    audit rows (append-only guard)."""
    table = AuditLog.__table__
    for seq, values in rewrites.items():
        allowed = {name: values[name] for name in ("changes", "detail", "reason") if name in values}
        conn.execute(update(table).where(table.c.seq == seq).values(**allowed, erased_in=erasure_seq))


def _legacy(head: AuditChainHead | None) -> tuple[int, tzinfo | None]:
    """(last seq hashed in a legacy zone, that zone) from the chain head; (0, None) when none."""
    if head is None or not head.legacy_seq or not head.legacy_zone:
        return 0, None
    return head.legacy_seq, ZoneInfo(head.legacy_zone)


def _register_models() -> None:
    from flask_appbuilder.security.sqla.models import Role

    from app.models import DICTIONARIES, CrmUser, Customer, Department, FollowUp, RoleDataScope

    audited(Customer, masked={"contact_phone"})
    audited(FollowUp, exclude={"next_step_closed"})  # the planned activity's state, audited there
    audited(Department)
    for model in DICTIONARIES:
        audited(model)
    audited(CrmUser, masked={"phone"}, secret={"password"}, collections=("roles",),
            exclude={"last_login", "login_count", "fail_login_count"})
    audited(Role, collections=("permissions",), permission_model=True)
    audited(RoleDataScope, permission_model=True)


_register_models()
