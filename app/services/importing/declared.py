"""Importing a declared record type (``app.record_types``: products, contacts, leads,
opportunities …): one generic row writer, plugged into the import run of ``engine``.

Customers and follow-ups keep their own fast paths (bulk inserts, the duplicate index);
a declared type has no rules here at all: every row goes through the type's own use case,
``rt.save(values, user, pk=..., version=...)``, the one the form, the API and the sync use
(issue 13: "one rule, every entry point"). What this module adds is the file side:

* cells parsed by field kind exactly as for customers (``engine.ImportRun._parse``: text,
  dictionary values with the value-mapping step's remembered choices, dates, owners by
  name, customer codes in the importer's scope);
* the key column (``ImportModel.keys``, ``code`` by default) decides create or update per
  the job's mode (create / update / upsert); a record outside the importer's data scope is
  answered like a missing one;
* each row is saved inside a SAVEPOINT: a ``RuleViolation`` (or ``NotFound``) rejects that
  row with the rule's own messages and nothing else is lost; a dry run is the same run
  rolled back at the end (``engine.ImportRun._finish``), so the preview cannot promise what
  the commit would refuse.

The save runs inside the chunk's message capture (``messages.capturing``), because the
rules' messages are made inside it; the values it writes are record values, never
rendered catalogue text, so no marker reaches the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, Numeric, select

from app.extensions import db
from app.models.customers import Customer
from app.record_types import REGISTRY, RecordType
from app.security.data_scope import scope_cache, scope_clause, visible_owner_ids
from app.services import audit, validation
from app.services.dictionaries import lookups_for
from app.services.errors import RuleViolation
from app.services.importing.columns import CUSTOMER, ImportModel
from app.services.importing.engine import (
    CREATE,
    CREATED,
    DUPLICATE,
    UNCHANGED,
    UPDATE,
    UPDATED,
    ImportRun,
    Result,
    RowRejected,
    Settings,
)
from app.services.importing.lookups import CUSTOMER_REF, Existing, Lookups
from app.services.importing.reading import Table
from app.services.importing.values import resolve

#: The types with their own import path in ``engine`` (everything else is declared).
OWN_PATHS = ("customer", "follow_up")
#: Cell text read as yes / no for a Boolean column (either language, as people type it).
YES = frozenset({"1", "true", "yes", "y", "是", "有", "对", "√", "✓", "x"})
NO = frozenset({"0", "false", "no", "n", "否", "无", "不", "×", "✗"})


def is_declared(model: str) -> bool:
    """Whether ``model`` (an import/sync model name) goes through a declaration's use case."""
    return model not in OWN_PATHS and model in REGISTRY


def column_value(model: type, name: str, text: str | None) -> Any:
    """Text of a TEXT-kind field as the save expects it, by the model column's type.

    Booleans are read from yes/no words (``YES``/``NO``; empty = None); anything else stays
    text (numbers included: the type's rules read amounts such as ``"￥1,200.50"`` and give
    their own message). ``ValueError`` for a word that is neither yes nor no.
    """
    column = model.__table__.c.get(name)
    if column is None or not isinstance(column.type, Boolean) or text is None:
        return text
    word = validation.clean_line(text).casefold()
    if not word:
        return None
    if word in YES:
        return True
    if word in NO:
        return False
    raise ValueError(_l("Write yes or no (是 / 否), not %(value)s.", value=text[:40]))


def canonical_number(value: Any) -> str:
    """A Numeric column's value as comparable text: ``1200.00`` and ``1200`` are ``1200``."""
    if value is None or value == "":
        return ""
    number = Decimal(str(value)).normalize()
    return format(number, "f")


def is_number_column(model: type, name: str) -> bool:
    column = model.__table__.c.get(name)
    return column is not None and isinstance(column.type, Numeric)


def is_boolean_column(model: type, name: str) -> bool:
    column = model.__table__.c.get(name)
    return column is not None and isinstance(column.type, Boolean)


def savepoint() -> Any:
    """``db.session.begin_nested()`` that is a real SAVEPOINT inside the session's transaction
    on every database. pysqlite starts no transaction before a ``SAVEPOINT`` statement, so
    SQLite makes that savepoint the transaction itself and its RELEASE commits everything
    written so far (a dry run's earlier rows included); an explicit BEGIN first keeps the
    outer transaction, which the caller commits or rolls back. (A ``begin`` event on the
    engine, SQLAlchemy's pysqlite recipe, would make this unnecessary.)"""
    connection = db.session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN")
    return db.session.begin_nested()


class KeyIndex:
    """Key value -> (id, in the importer's scope, archived) of every stored record of a
    declared type, for one key column; the same shape ``engine`` reads (``by_code``)."""

    def __init__(self, spec: ImportModel, key: str, user: Any) -> None:
        model = spec.model
        column = getattr(model, key)
        archived = model.archived_at.isnot(None) if hasattr(model, "archived_at") else None
        wanted = [model.id, column] + ([archived] if archived is not None else [])
        visible = set(db.session.scalars(select(model.id).where(scope_clause(user, model))))
        self.by_code: dict[str, tuple[int, bool, bool]] = {}
        for row in db.session.execute(select(*wanted).where(column.isnot(None))):
            self.by_code[str(row[1])] = (row[0], row[0] in visible, bool(row[2]) if len(row) > 2 else False)


class DeclaredLookups(Lookups):
    """The per-run caches of ``Lookups`` (dictionaries, users by name, customers by code)
    with the declared type's key index; scope is per record (``KeyIndex``), not per owner."""

    def __init__(self, spec: ImportModel, user: Any, key: str) -> None:
        # not super().__init__: it would index every customer (or follow-up) as the records to update
        self.spec, self.user = spec, user
        self.owner_ids = visible_owner_ids(user)
        self.dictionaries = lookups_for(spec.fields)
        self.users = self._users(user)
        self.named = {}
        self.existing = KeyIndex(spec, key, user)
        refers = any(f.kind == CUSTOMER for f in spec.fields)
        self.customers = Existing(CUSTOMER_REF) if refers else None
        self.duplicates = None


class DeclaredRun(ImportRun):
    """``engine.ImportRun`` for a declared type: its chunks, counts, previews, progress and
    dry-run rollback; rows written through ``rt.save`` (see the module doc)."""

    def __init__(self, table: Table, mapping: dict[str, str], settings: Settings, user: Any, commit: bool,
                 progress: Callable[[Result], None] | None = None) -> None:
        super().__init__(table, mapping, settings, user, commit, progress)
        self.rt: RecordType = REGISTRY[settings.model]
        if settings.key not in self.spec.keys:
            raise ValueError(_l("%(key)s cannot identify %(model)s records.", key=settings.key,
                                model=str(self.spec.label)))

    def run(self) -> Result:
        with scope_cache(), db.session.no_autoflush:
            self.lookups = DeclaredLookups(self.spec, self.user, self.settings.key)
            self.chosen = resolve(self.spec, self.settings.values)
            rows, size = self.table.rows, self.settings.chunk_size
            lines = self.table.lines or list(range(2, len(rows) + 2))
            for start in range(0, len(rows), size):
                self._chunk(rows[start:start + size], lines[start:start + size])
            self._finish()
        return self.result

    # --- what differs from customers ---------------------------------------------------

    def _row(self, raw: list[Any], existing: dict[int, Any], line: int) -> tuple[str, Any]:
        values, errors = self._parse(raw)
        target = self._target(values)
        if errors:
            raise RowRejected(errors)
        item = existing.get(target) if target is not None else None
        if target is not None:
            self._check_loaded(item, target)
        before = item.version if item is not None else None
        saved = self._save(self._payload(values, item is None), target, before)
        if target is None:
            self._remember_code(saved)
            # a dry run's number is rolled back: show the file's code (or none), as for customers
            return CREATED, saved if self.commit else {"code": values.get("code")}
        return (UNCHANGED if saved.version == before else UPDATED), saved

    def _target(self, values: dict[str, Any]) -> int | None:
        """Id of the record this row updates; None to create; ``RowRejected`` if neither may
        happen. Mode and messages as ``ImportRun._target``; out of scope = missing."""
        key = self.settings.key
        key_value = values.get(key)
        found = self._find(key_value)
        if found is not None and not found[1] and self.settings.mode == UPDATE:
            found = None  # another rep's record is answered like a missing one (no existence oracle)
        if found is None:
            if self.settings.mode == UPDATE:
                message = str(_l("Nothing to update: %(key)s is empty.", key=self._key_header())) \
                    if not key_value else self._no_record(key_value)
                raise RowRejected([(self._key_header(), message)])
            self._check_new_code(values.get("code"))
            return None
        record_id, in_scope, archived = found
        if not in_scope:
            raise RowRejected([(self._key_header(), self._no_record(key_value))])
        if self.settings.mode == CREATE:
            raise RowRejected([(self._key_header(), str(_l(
                "%(value)s already exists; choose 'update' or 'upsert' to change it.", value=key_value)))],
                DUPLICATE)
        if archived:
            from app.services.customers import archived_message

            raise RowRejected([(self._key_header(), archived_message(key_value))])
        return record_id

    def _find(self, key_value: Any) -> tuple[int, bool, bool] | None:
        if not key_value:
            return None
        return self.lookups.existing.by_code.get(str(key_value))

    def _check_loaded(self, item: Any, target: int) -> None:
        if item is None:
            raise RowRejected([(self._key_header(), str(_l("Record not found.")))])
        if target in self.updated_ids:
            raise RowRejected([(self._key_header(), str(_l("%(code)s appears twice in this file.",
                                                            code=getattr(item, "code", target))))], DUPLICATE)
        self.updated_ids.add(target)

    def _parse_cell(self, spec: Any, cell: Any, limit: int | None) -> Any:
        value = super()._parse_cell(spec, cell, limit)
        if spec.kind == CUSTOMER:
            return db.session.get(Customer, value) if value is not None else None
        return column_value(self.spec.model, spec.name, value) if isinstance(value, str) else value

    def _payload(self, values: dict[str, Any], is_new: bool) -> dict[str, Any]:
        """The row's values for ``rt.save``: the code only when given for a new record of a
        type whose code may be typed (an update never renumbers; a type that numbers every
        record refuses a typed one rather than drop it), an empty owner left out (new: the
        importer or the type's assignment; update: kept)."""
        payload = {}
        if is_new and values.get("code") and "code" not in self.rt.editable:
            raise RowRejected([(self._header("code"), str(_l(
                "No record has the code %(code)s; leave the cell empty for a new record (the CRM numbers it).",
                code=values["code"])))])
        for name, value in values.items():
            if name == "code" and (not is_new or not value):
                continue
            if name == "owner" and value is None:
                continue
            payload[name] = value
        return payload

    def _save(self, payload: dict[str, Any], pk: int | None, version: int | None) -> Any:
        """``rt.save`` inside a savepoint; its refusal rejects the row, nothing else."""
        point = savepoint()
        try:
            with db.session.no_autoflush:
                saved = self.rt.save(payload, self.user, pk=pk, version=version)
            db.session.flush()
        except RuleViolation as exc:
            point.rollback()
            raise RowRejected([(self._label(name), str(message)) for name, message in exc.errors.items()]) \
                from None
        point.commit()
        return saved

    def _label(self, name: str) -> str:
        """The file's header for a field the rules name, else its label (a rule may name a
        field the file does not map, or ``_`` for the record as a whole)."""
        if name in self.headers:
            return self.headers[name]
        field = next((f for f in self.spec.fields if f.name == name), None)
        if field is not None:
            return str(field.label)
        if name in self.rt.labels:
            return str(self.rt.labels[name])
        return str(self.rt.label) if name in ("_", "version") else name

    def _remember_code(self, item: Any) -> None:
        code = getattr(item, "code", None)
        if code:
            self.seen_codes.add(code)


def run_import(table: Table, mapping: dict[str, str], settings: Settings, user: Any, commit: bool,
               progress: Callable[[Result], None] | None = None, label: str = "") -> Result:
    """``engine.run_import`` for a declared type (``is_declared(settings.model)``): dry run
    (``commit=False``, everything rolled back) or commit, chunk by chunk; every write goes
    through the type's ``save`` and is audited with source ``import``. Raises ``ValueError``
    for a key that cannot identify the type's records (the job fails with it)."""
    started = time.perf_counter()
    with audit.audit_context(source="import", reason=label or None, steps=True):
        result = DeclaredRun(table, mapping, settings, user, commit, progress).run()
    result.seconds = time.perf_counter() - started
    return result
