"""Where copies of an erased value live, and how each is cleared (issue 19).

- values are matched as ``matching`` says: a phone with any separators and an optional
  +86/0086 prefix, an e-mail in any case, full-width forms too;
- audit entries: those about the erased rows (every value of an erased field, whole), about
  the rows tied to them (``tied``: the person's names too) and any other entry holding a
  distinctive value (a phone, an e-mail) or a name next to the record's code (merge,
  import, sync entries) — redacted through ``audit.apply_redactions``;
- sync state: ``SyncRow.base`` of the record (the erased fields marked ``_erased`` so the
  next run writes the marker to the sheet, ``sync_base``) and its open ``SyncConflict``s;
- every other text or JSON column of every table: in a cell holding a distinctive value
  (phone, masked phone, e-mail) every erased value is replaced, names too; names alone
  only in rows tied to the record (``tied``: rows referencing it by foreign key or by
  record type and id, one level below them, its notifications and their e-mails);
- duplicate blocking keys (hashes of the old values) of a customer are dropped (the
  duplicate finder recomputes them from the erased values);
- the database files: SQLite rewrites freed pages (``secure_delete``), merges the search
  index and truncates the WAL; PostgreSQL VACUUMs the touched tables (and their search side tables).

Backups keep the old values until their own retention (30 days) removes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import JSON, String, Text, and_, cast, delete, or_, select, text, tuple_, update

from app.extensions import db
from app.models.audit import AuditLog
from app.models.duplicates import DuplicateKey
from app.models.notifications import Notification, OutboxMessage
from app.models.sync import SyncConflict, SyncRow, SyncTarget
from app.services import audit, bulk
from app.services.audit import ERASED, redact_value
from app.services.erasure.matching import Matcher

#: Tables never swept generically: the audit log (redacted on its own), and the records
#: of other people (a second customer sharing a phone is another record, listed, not changed).
#: ``erasure_run`` holds no erased value (names and counts) and its progress is written on a
#: second connection while the erasure's transaction is open: never locked by the sweep.
SKIPPED_TABLES = frozenset({"audit_log", "audit_chain_head", "customer", "contact", "lead", "ab_user",
                            "erasure_run"})


def _contains_any(column: Any, values: Iterable[str]) -> Any:
    return or_(*(column.contains(v, autoescape=True) for v in values))


# --- audit ------------------------------------------------------------------------------


_AUDIT_COLUMNS = [AuditLog.__table__.c[name] for name in (*audit.HASHED_COLUMNS, "hash", "erased_in")]
_REDACTED = ("changes", "detail", "reason")


def audit_rewrites(objects: dict[tuple[str, str], frozenset[str]], values: tuple[str, ...],
                   codes: tuple[str, ...], tied: list[tuple[str, str]] = ()
                   ) -> tuple[dict[int, dict[str, Any]], list[list[Any]], Matcher]:
    """Entries to redact: (seq -> new changes/detail/reason, [[seq, hash, fingerprint], ...],
    the ``Matcher`` of every value, those found in the erased fields' past included).
    ``objects``: (object_type, object_id) of each erased row -> its erased field names
    (each row's own: a contact's ``name`` is not its customer's); ``codes``: their record codes; ``tied``: rows tied to them (``tied.find``), whose
    entries lose the person's names too.

    Values are matched as ``matching`` says (a phone in any format, an e-mail in any case).
    An entry an earlier erasure redacted is redacted again when it still holds one of these
    values. The listing names every member of each touched chain step with its fingerprint
    after this redaction (``audit.fingerprint``): ``verify_chain`` checks them against it."""
    rows = _entries_about(list(objects))
    past = _past_values(rows, objects)
    matcher = Matcher((*values, *past))
    seen = {row["seq"] for row in rows}
    named = [row for row in _entries_about(list(tied)) if row["seq"] not in seen]
    seen |= {row["seq"] for row in named}
    others = [row for row in _elsewhere(matcher, codes) if row["seq"] not in seen]
    rewrites: dict[int, dict[str, Any]] = {}
    own_seqs = {row["seq"] for row in rows}
    for row in rows + named + others:
        own = objects.get((row["object_type"], row["object_id"]), frozenset()) if row["seq"] in own_seqs \
            else frozenset()
        new = {name: _redact(row[name], matcher, own) for name in _REDACTED}
        if any(new[name] != row[name] for name in _REDACTED):
            rewrites[row["seq"]] = new
    return rewrites, _listing(rewrites), matcher


def _entries_about(objects: list[tuple[str, str]]) -> list[Any]:
    """Entries about ``objects`` ((object_type, object_id)), read per type in chunks."""
    by_type: dict[str, list[str]] = {}
    for kind, ident in objects:
        by_type.setdefault(kind, []).append(ident)
    found = []
    for kind, idents in by_type.items():
        for chunk in bulk.id_chunks(idents):
            about = and_(AuditLog.object_type == kind, AuditLog.object_id.in_(chunk))
            found += [row._mapping for row in db.session.execute(select(*_AUDIT_COLUMNS).where(about))]
    return found


def _redact(text: str | None, matcher: Matcher, keys: frozenset[str]) -> str | None:
    """An entry's ``changes``/``detail`` JSON (or plain text) with the values under ``keys``
    replaced whole and every match of ``matcher`` (names included) replaced; ``text``
    itself when nothing changes."""
    if not text:
        return text
    try:
        decoded = json.loads(text)
    except ValueError:
        return matcher.replace(text) if matcher.found(text) else text
    redacted = matcher.redact(redact_value(decoded, (), keys) if keys else decoded)
    return text if redacted == decoded else json.dumps(redacted, ensure_ascii=False, sort_keys=True)


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


def _past_values(rows: list[Any], objects: dict[tuple[str, str], frozenset[str]]) -> set[str]:
    """Every value the erased fields ever held, from the entries about the rows."""
    found: set[str] = set()
    for row in rows:
        try:
            changes = json.loads(row["changes"] or "{}")
        except ValueError:
            continue
        keys = objects.get((row["object_type"], row["object_id"]), frozenset())
        for key in keys & set(changes) if isinstance(changes, dict) else ():
            found.update(v for v in changes[key] if isinstance(v, str) and "*" not in v)
    return found


def _elsewhere(matcher: Matcher, codes: tuple[str, ...]) -> list[Any]:
    """Entries about other objects that hold a distinctive value (any format), or a value
    beside a code. Candidates by ``matcher.candidates`` (a phone's digits in order with
    anything between, an e-mail's local part…), confirmed by the matcher."""
    columns = (AuditLog.changes, AuditLog.detail, AuditLog.reason)
    dialect = db.session.get_bind().dialect.name
    conditions = [matcher.candidates(c, dialect) for c in columns] if matcher.has_distinct else []
    names = [v for v in matcher.others if v not in matcher.distinct_others]
    if names and codes:
        conditions += [and_(_contains_any(c, names), _contains_any(c, codes)) for c in columns]
    if not conditions:
        return []
    found = []
    for row in db.session.execute(select(*_AUDIT_COLUMNS).where(or_(*conditions))):
        texts = [row._mapping[name] or "" for name in _REDACTED]
        if any(matcher.distinct(t) or (matcher.found(t) and any(c in t for c in codes)) for t in texts):
            found.append(row._mapping)
    return found


# --- sync -------------------------------------------------------------------------------


def sync_state(model_name: str, record_id: int, keys: frozenset[str], matcher: Matcher) -> int:
    """Mark the erased fields in the record's ``SyncRow.base`` (values replaced by the
    marker, names under ``_erased``: ``sync_base`` makes the next run write the marker to
    the sheet) and redact its conflicts. Returns the sync rows touched."""
    targets = select(SyncTarget.id).where(SyncTarget.model == model_name)
    rows = db.session.scalars(select(SyncRow).where(SyncRow.record_id == record_id, SyncRow.target_id.in_(targets)))
    count = 0
    for row in rows:
        base = dict(row.base or {})
        erased = {k for k, v in base.items() if k != "_row" and (k in keys or (
            isinstance(v, str) and matcher.found(v)))}
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
            if conflict.field in keys or (value and matcher.found(value)):
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


def linked_rows(record_type: str, record_id: int, matcher: Matcher) -> int:
    """Notifications about the record (their params) and their e-mails: every erased value."""
    count = 0
    notes = db.session.scalars(select(Notification).where(Notification.record_type == record_type,
                                                          Notification.record_id == record_id))
    ids = []
    for note in notes:
        ids.append(note.id)
        params = matcher.redact(note.params) if note.params else note.params
        if params != note.params:
            note.params, count = params, count + 1
    if ids:
        for message in db.session.scalars(select(OutboxMessage).where(OutboxMessage.notification_id.in_(ids))):
            for name in ("subject", "text_body", "html_body"):
                value = getattr(message, name)
                if value and matcher.found(value):
                    setattr(message, name, matcher.replace(value))
                    count += 1
    return count


def text_columns() -> list[tuple[Any, Any]]:
    """(table, column) of every String/Text/JSON column outside ``SKIPPED_TABLES``."""
    found = []
    for table in Model.metadata.sorted_tables:
        if table.name in SKIPPED_TABLES:
            continue
        found += [(table, c) for c in table.columns if isinstance(c.type, (String, Text, JSON))]
    return found


def everywhere(matcher: Matcher, on_table: Callable[[str], None] | None = None) -> dict[str, int]:
    """Clear copies in every text/JSON column; returns table -> rows changed; ``on_table``
    is called with each table's name before its columns are swept (progress). A cell (or
    JSON string) holding a distinctive value in any format (``matching``: a phone with any
    separators or +86, an e-mail in any case) is a copy of the person's data: every erased
    value in it is replaced, names included (an import preview row, an error text "phone …
    duplicate of <name>"). Names alone are left here (they may be another person's; rows
    tied to the record are ``tied.sweep``'s). Candidates: ``matcher.candidates`` (a phone's
    digits in order whatever stands between them, an e-mail's local part), then the regex."""
    touched: dict[str, int] = {}
    if not matcher.has_distinct:
        return touched
    current = None
    for table, column in text_columns():
        if on_table is not None and table.name != current:
            current = table.name
            on_table(table.name)
        n = _sweep_column(table, column, matcher)
        if n:
            touched[table.name] = touched.get(table.name, 0) + n
    return touched


def _sweep_column(table: Any, column: Any, matcher: Matcher) -> int:
    keys = list(table.primary_key.columns)
    if not keys or column in keys:
        return 0
    is_json = isinstance(column.type, JSON)
    as_text = cast(column, Text) if is_json else column
    dialect = db.session.get_bind().dialect.name
    rows = db.session.execute(select(*keys, column).where(matcher.candidates(as_text, dialect))).all()
    changed = 0
    for row in rows:
        value = row[-1]
        if is_json:
            new = matcher.redact(value) if matcher.distinct(json.dumps(value, ensure_ascii=False)) else value
        elif isinstance(value, str) and matcher.distinct(value):
            new = matcher.replace(value)
        else:
            continue
        if new != value:
            db.session.execute(update(table).where(tuple_(*keys) == tuple(row[:-1])).values({column.name: new}))
            changed += 1
    return changed


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
        from app.services import search

        known = sorted(set(tables) & {t.name for t in Model.metadata.sorted_tables})
        if search.has_side_tables(db.session):  # their copies of the erased text (triggers updated them)
            known += [f"{name}_search" for name in known if name in search.PG_SEARCH_COLUMNS]
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in known:
                conn.exec_driver_sql(f'VACUUM "{name}"')
