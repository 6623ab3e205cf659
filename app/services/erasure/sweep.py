"""Where copies of an erased value live, and how each is cleared (issue 19).

- audit entries: those about the erased rows (every value of an erased field, whole) and
  any other entry holding a distinctive value (a phone, an e-mail) or a name next to the
  record's code (merge, import, sync entries) — redacted through ``audit.apply_redactions``;
- sync state: ``SyncRow.base`` of the record (the erased fields marked ``_erased`` so the
  next run writes the marker to the sheet, ``sync_base``) and its open ``SyncConflict``s;
- every other text or JSON column of every table: in a cell holding a distinctive value
  (phone, masked phone, e-mail) every erased value is replaced, names too; names alone
  only in rows tied to the record (its notifications and their e-mails, status-change
  reasons);
- duplicate blocking keys (hashes of the old values) of a customer are dropped (the
  duplicate finder recomputes them from the erased values);
- the database files: SQLite rewrites freed pages (``secure_delete``), merges the search
  index and truncates the WAL; PostgreSQL VACUUMs the touched tables.

Backups keep the old values until their own retention (30 days) removes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import JSON, String, Text, and_, delete, or_, select, text, tuple_, update

from app.extensions import db
from app.models.audit import AuditLog
from app.models.duplicates import DuplicateKey
from app.models.notifications import Notification, OutboxMessage
from app.models.sync import SyncConflict, SyncRow, SyncTarget
from app.security.masking import mask_phone
from app.services import audit
from app.services.audit import ERASED, redact_text, redact_value

#: Tables never swept generically: the audit log (redacted on its own), and the records
#: of other people (a second customer sharing a phone is another record, listed, not changed).
SKIPPED_TABLES = frozenset({"audit_log", "audit_chain_head", "customer", "contact", "lead", "ab_user"})
#: A value this long, with a digit or "@", is distinctive enough to sweep everywhere.
DISTINCT_LENGTH = 6


def needles(old_values: Iterable[Any]) -> tuple[str, ...]:
    """The strings to look for: each erased text value (two characters or more), a phone's
    masked form too; longest first (a long value is replaced before its parts)."""
    found: set[str] = set()
    for value in old_values:
        if not isinstance(value, str) or len(value.strip()) < 2 or value == ERASED:
            continue
        found.add(value.strip())
        if sum(ch.isdigit() for ch in value) >= 7:
            found.add(mask_phone(value.strip()))
    return tuple(sorted((n for n in found if len(n) >= 2 and n != ERASED), key=len, reverse=True))


def distinctive(values: tuple[str, ...]) -> tuple[str, ...]:
    """The values safe to sweep in any row: long and holding a digit or "@" (phones, e-mails)."""
    return tuple(v for v in values if len(v) >= DISTINCT_LENGTH and any(ch.isdigit() or ch == "@" for ch in v))


def _escaped(value: str) -> str:
    """``value`` as a JSON column stores it (non-ASCII as \\uXXXX escapes)."""
    return json.dumps(value)[1:-1]


def _contains_any(column: Any, values: Iterable[str]) -> Any:
    return or_(*(column.contains(v, autoescape=True) for v in values))


# --- audit ------------------------------------------------------------------------------


_AUDIT_COLUMNS = [AuditLog.__table__.c[name] for name in (*audit.HASHED_COLUMNS, "hash", "erased_in")]


def audit_rewrites(objects: list[tuple[str, str]], keys: frozenset[str], values: tuple[str, ...],
                   codes: tuple[str, ...]) -> tuple[dict[int, dict[str, Any]], list[list[Any]], set[str]]:
    """Entries to redact: (seq -> new changes/detail/reason, [[seq, hash, fingerprint], ...],
    values found in the erased fields' past). ``objects``: (object_type, object_id) of the
    erased rows; ``keys``: their erased field names; ``codes``: their record codes.

    An entry an earlier erasure redacted is redacted again when it still holds one of these
    values. The listing names every member of each touched chain step with its fingerprint
    after this redaction (``audit.fingerprint``): ``verify_chain`` checks them against it."""
    about = or_(*(and_(AuditLog.object_type == t, AuditLog.object_id == i) for t, i in objects))
    rows = [row._mapping for row in db.session.execute(select(*_AUDIT_COLUMNS).where(about))]
    past = _past_values(rows, keys)
    values = needles((*values, *past))
    seen = {row["seq"] for row in rows}
    rows += [row for row in _elsewhere(values, codes) if row["seq"] not in seen]
    rewrites: dict[int, dict[str, Any]] = {}
    for row in rows:
        own = row["seq"] in seen
        new = {"changes": redact_text(row["changes"], values, keys if own else frozenset()),
               "detail": redact_text(row["detail"], values, keys if own else frozenset()),
               "reason": redact_text(row["reason"], values)}
        if (new["changes"], new["detail"], new["reason"]) != (row["changes"], row["detail"], row["reason"]):
            rewrites[row["seq"]] = new
    return rewrites, _listing(rewrites), set(values)


def _listing(rewrites: dict[int, dict[str, Any]]) -> list[list[Any]]:
    """[[seq, hash, fingerprint], ...] of every member of the chain steps holding a rewritten
    entry (members of one step share ``hash``), fingerprinted as they will be stored."""
    if not rewrites:
        return []
    hashes = set(db.session.scalars(select(AuditLog.hash).where(AuditLog.seq.in_(list(rewrites)))))
    members = db.session.execute(select(*_AUDIT_COLUMNS).where(AuditLog.hash.in_(hashes)))
    listed = []
    for row in members:
        stored = {**row._mapping, **rewrites.get(row.seq, {})}
        listed.append([row.seq, row.hash, audit.fingerprint(stored)])
    return sorted(listed)


def _past_values(rows: list[Any], keys: frozenset[str]) -> set[str]:
    """Every value the erased fields ever held, from the entries about the rows."""
    found: set[str] = set()
    for row in rows:
        try:
            changes = json.loads(row["changes"] or "{}")
        except ValueError:
            continue
        for key in keys & set(changes) if isinstance(changes, dict) else ():
            found.update(v for v in changes[key] if isinstance(v, str) and "*" not in v)
    return found


def _elsewhere(values: tuple[str, ...], codes: tuple[str, ...]) -> list[Any]:
    """Entries about other objects that hold a distinctive value, or a value with a code."""
    columns = (AuditLog.changes, AuditLog.detail, AuditLog.reason)
    conditions = [_contains_any(c, distinctive(values)) for c in columns if distinctive(values)]
    names = [v for v in values if v not in distinctive(values)]
    if names and codes:
        conditions += [and_(_contains_any(c, names), _contains_any(c, codes)) for c in columns]
    if not conditions:
        return []
    return [row._mapping for row in db.session.execute(select(*_AUDIT_COLUMNS).where(or_(*conditions)))]


# --- sync -------------------------------------------------------------------------------


def sync_state(model_name: str, record_id: int, keys: frozenset[str], values: tuple[str, ...]) -> int:
    """Mark the erased fields in the record's ``SyncRow.base`` (values replaced by the
    marker, names under ``_erased``: ``sync_base`` makes the next run write the marker to
    the sheet) and redact its conflicts. Returns the sync rows touched."""
    targets = select(SyncTarget.id).where(SyncTarget.model == model_name)
    rows = db.session.scalars(select(SyncRow).where(SyncRow.record_id == record_id, SyncRow.target_id.in_(targets)))
    count = 0
    for row in rows:
        base = dict(row.base or {})
        erased = {k for k, v in base.items() if k != "_row" and (k in keys or (
            isinstance(v, str) and any(n in v for n in values)))}
        for key in erased:
            base[key] = ERASED
        base["_erased"] = sorted(erased | set(base.get("_erased") or ()))
        row.base, row.checked = base, None
        count += 1
    conflicts = db.session.scalars(select(SyncConflict).where(SyncConflict.record_id == record_id,
                                                              SyncConflict.target_id.in_(targets)))
    for conflict in conflicts:
        for name in ("base", "app_value", "sheet_value"):
            value = getattr(conflict, name)
            if conflict.field in keys or (value and any(n in value for n in values)):
                setattr(conflict, name, ERASED if value else value)
    return count


def sync_base(base: dict[str, Any] | None, sheet: dict[str, str]) -> dict[str, Any] | None:
    """The base a sync run merges a row with: for fields a personal-data erasure marked
    (``_erased``), the sheet's own value — so the app's erased value counts as the one
    change and is written to the sheet (never the old value restored from the sheet)."""
    if not base or not base.get("_erased"):
        return base
    merged = {k: v for k, v in base.items() if k != "_erased"}
    for name in base["_erased"]:
        if name in sheet:
            merged[name] = sheet[name]
    return merged


# --- other tables -----------------------------------------------------------------------


def linked_rows(record_type: str, record_id: int, values: tuple[str, ...]) -> int:
    """Notifications about the record (their params) and their e-mails: every erased value."""
    count = 0
    notes = db.session.scalars(select(Notification).where(Notification.record_type == record_type,
                                                          Notification.record_id == record_id))
    ids = []
    for note in notes:
        ids.append(note.id)
        params = redact_value(note.params, values) if note.params else note.params
        if params != note.params:
            note.params, count = params, count + 1
    if ids:
        for message in db.session.scalars(select(OutboxMessage).where(OutboxMessage.notification_id.in_(ids))):
            for name in ("subject", "text_body", "html_body"):
                value = getattr(message, name)
                if value and any(v in value for v in values):
                    setattr(message, name, _replace(value, values))
                    count += 1
    return count


def _replace(value: str, values: tuple[str, ...]) -> str:
    for needle in values:
        value = value.replace(needle, ERASED)
    return value


def text_columns() -> list[tuple[Any, Any]]:
    """(table, column) of every String/Text/JSON column outside ``SKIPPED_TABLES``."""
    found = []
    for table in Model.metadata.sorted_tables:
        if table.name in SKIPPED_TABLES:
            continue
        found += [(table, c) for c in table.columns if isinstance(c.type, (String, Text, JSON))]
    return found


def everywhere(values: tuple[str, ...]) -> dict[str, int]:
    """Clear copies in every text/JSON column; returns table -> rows changed. A cell (or
    JSON document) holding a distinctive value (``distinctive``: a phone, an e-mail) is a
    copy of the person's data: every erased value in it is replaced, names included (an
    import preview row, an error text "phone … duplicate of <name>"). Names alone elsewhere
    are left: they may be another person's."""
    wanted = distinctive(values)
    touched: dict[str, int] = {}
    if not wanted:
        return touched
    for table, column in text_columns():
        if isinstance(column.type, JSON):
            n = _sweep_json(table, column, wanted, values)
        else:
            n = _sweep_text(table, column, wanted, values)
        if n:
            touched[table.name] = touched.get(table.name, 0) + n
    return touched


def _sweep_text(table: Any, column: Any, wanted: tuple[str, ...], values: tuple[str, ...]) -> int:
    replaced = column
    for needle in values:  # longest first (``needles``): a value before its parts
        replaced = _sql_replace(replaced, needle)
    result = db.session.execute(update(table).where(_contains_any(column, wanted)).values({column.name: replaced}))
    return result.rowcount or 0


def _sql_replace(column: Any, needle: str) -> Any:
    from sqlalchemy import func

    return func.replace(column, needle, ERASED)


def _sweep_json(table: Any, column: Any, wanted: tuple[str, ...], values: tuple[str, ...]) -> int:
    from sqlalchemy import cast

    keys = list(table.primary_key.columns)
    if not keys:
        return 0
    as_text = cast(column, Text)
    forms = {form for needle in wanted for form in (needle, _escaped(needle))}
    rows = db.session.execute(select(*keys, column).where(_contains_any(as_text, forms))).all()
    for row in rows:
        new = redact_value(row[-1], values)
        db.session.execute(update(table).where(tuple_(*keys) == tuple(row[:-1])).values({column.name: new}))
    return len(rows)


def duplicate_keys(customer_id: int) -> None:
    """Drop a customer's blocking keys (hashes of its old name, contact and phone)."""
    db.session.execute(delete(DuplicateKey).where(DuplicateKey.customer_id == customer_id))


# --- database files ---------------------------------------------------------------------


def before_writes() -> None:
    """SQLite: overwrite freed pages with zeros from now on in this connection."""
    conn = db.session.connection()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete=ON")


def merge_search_index() -> None:
    """SQLite FTS5 search tables: merge their segments, dropping the erased tokens."""
    from app.services.search import fts_tables

    for name in sorted(fts_tables(db.session)):
        db.session.execute(text(f"INSERT INTO {name}({name}) VALUES('optimize')"))


def after_commit(tables: Iterable[str]) -> None:
    """After the erasure committed: SQLite truncates its WAL (old pages gone); PostgreSQL
    VACUUMs the touched tables (outside a transaction)."""
    engine = db.engine
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    if engine.dialect.name == "postgresql":
        known = {t.name for t in Model.metadata.sorted_tables}
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in sorted(set(tables) & known):
                conn.exec_driver_sql(f'VACUUM "{name}"')
