"""Rows tied to the erased records (issue 19): found from the models' own foreign keys,
not a hand list, and swept for the person's names too.

A row that references an erased customer, contact or lead — by a foreign key (a ticket, an
activity, an order's contact, an opportunity…) or by ``record_type`` + ``record_id`` (an
approval request, an attachment, a notification) — is about that person's record: the
person's names in its text columns are theirs, and go like a phone would. So do the rows
levels below them (a ticket's log, an approval request's actions and notices, the e-mails
those queued, an order's lines),
and the audit entries about all these rows (``objects``). Rows elsewhere keep names alone
(another person may share the name). Follow-ups count only when the admin ticked them.

Bounded work: ids are read and written in chunks (``bulk.id_chunks``); the candidates are every
tied row, matched in Python (``matching.Matcher``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import JSON, String, Text, select, update

from app.extensions import db
from app.services import bulk
from app.services.erasure.matching import Matcher

#: Tables never swept here: the people themselves (another contact of the company is
#: another person), the audit log (redacted on its own, ``objects``), users, the run.
SKIPPED = frozenset({"audit_log", "audit_chain_head", "customer", "contact", "lead", "ab_user", "erasure_run",
                     "duplicate_key", "duplicate_pair", "duplicate_decision"})
#: How many levels below the erased records are followed (1: rows referencing them, 2:
#: rows referencing those, 3: theirs — an approval request on the record, its
#: notification, the e-mail that notification queued).
DEPTH = 3


@dataclass
class Tied:
    """The tied rows: table name -> primary key values (single-column keys)."""

    ids: dict[str, set[Any]] = field(default_factory=dict)

    def add(self, table: str, values: Iterable[Any]) -> set[Any]:
        """Add ids of ``table``; returns the ones not seen before."""
        known = self.ids.setdefault(table, set())
        new = set(values) - known
        known |= new
        return new

    def objects(self) -> list[tuple[str, str]]:
        """(audit object_type, object_id) of every tied row of a mapped model."""
        classes = _classes()
        return [(classes[t], str(i)) for t, ids in self.ids.items() if t in classes for i in ids]


def _classes() -> dict[str, str]:
    return {m.local_table.name: m.class_.__name__ for m in Model.registry.mappers
            if getattr(m, "local_table", None) is not None}


def type_names(model: type) -> set[str]:
    """The names a polymorphic ``record_type`` column may store for ``model``."""
    from app.record_types import for_model

    declared = for_model(model)
    names = {model.__tablename__, model.__name__}
    if declared is not None:
        names.add(declared.name)
    from app.services.erasure.subjects import SUBJECTS

    names |= {key for key, subject in SUBJECTS.items() if subject.model is model}
    return names


def _key(table: Any) -> Any:
    keys = list(table.primary_key.columns)
    return keys[0] if len(keys) == 1 else None


def find(rows: list[Any], follow_ups: bool) -> Tied:
    """Every row tied to ``rows`` (the erased records and their linked copies), ``DEPTH``
    levels down; follow-ups only with ``follow_ups`` (the admin ticked them)."""
    tied = Tied()
    level: dict[str, set[Any]] = {}
    for row in rows:
        level.setdefault(type(row).__tablename__, set()).add(row.id)
    skipped = SKIPPED if follow_ups else SKIPPED | {"follow_up"}
    by_table = {t.name: t for t in Model.metadata.sorted_tables}
    models = {m.local_table.name: m.class_ for m in Model.registry.mappers if getattr(m, "local_table", None) is not None}
    for _depth in range(DEPTH):
        found: dict[str, set[Any]] = {}
        for table in Model.metadata.sorted_tables:
            key = _key(table)
            if table.name in skipped or key is None:
                continue
            for parent, ids in level.items():
                if not ids or parent not in by_table:
                    continue
                hits = _referencing(table, key, by_table[parent], ids, models.get(parent))
                new = tied.add(table.name, hits)
                if new:
                    found.setdefault(table.name, set()).update(new)
        level = found
    return tied


def _referencing(table: Any, key: Any, parent: Any, ids: set[Any], model: type | None) -> set[Any]:
    """Ids of ``table`` rows pointing at ``ids`` of ``parent`` (foreign keys, or a
    ``record_type`` / ``record_id`` pair naming the parent's model)."""
    conditions = []
    for column in table.columns:
        if any(fk.column.table is parent for fk in column.foreign_keys):
            conditions.append(column)
    hits: set[Any] = set()
    for chunk in bulk.id_chunks(ids):
        for column in conditions:
            hits.update(db.session.scalars(select(key).where(column.in_(chunk))))
        if model is not None and "record_type" in table.c and "record_id" in table.c:
            hits.update(db.session.scalars(select(key).where(
                table.c.record_type.in_(sorted(type_names(model))), table.c.record_id.in_(chunk))))
    return hits


#: The longest String column that holds a code the program chose (status, kind, channel,
#: action, currency…): every one of 16 characters or fewer in the schema is one.
CODE_LENGTH = 16
#: Longer columns that hold what the program wrote, not what people typed: record codes,
#: type names, keys, hashes, stored file paths, network details.
MACHINE = frozenset({"code", "record_type", "object_type", "object_id", "content_type", "sha256", "hash",
                     "prev_hash", "last_hash", "code_hash", "path", "stored_path", "report_path",
                     "second_copy_path", "key", "session_key", "job_id", "index_name", "ip", "endpoint", "cron",
                     "method"})


def _text_columns(table: Any) -> list[Any]:
    """The columns of ``table`` that may hold people's text. Codes, keys, hashes and paths
    are not swept: a name inside one is a coincidence, and rewriting it breaks the row (an
    activity's status "open" for a contact named "En", a file's path)."""
    return [c for c in table.columns if isinstance(c.type, (String, Text, JSON)) and not c.primary_key
            and not c.foreign_keys and c.name not in MACHINE and not _code(c)]


def _code(column: Any) -> bool:
    length = getattr(column.type, "length", None)
    return isinstance(column.type, String) and not isinstance(column.type, Text) and length is not None \
        and length <= CODE_LENGTH


def sweep(tied: Tied, matcher: Matcher) -> dict[str, int]:
    """Replace every erased value (names included) in the tied rows' text and JSON
    columns; returns table -> rows changed."""
    touched: dict[str, int] = {}
    by_table = {t.name: t for t in Model.metadata.sorted_tables}
    for name, ids in sorted(tied.ids.items()):
        table = by_table.get(name)
        key = _key(table) if table is not None else None
        columns = _text_columns(table) if key is not None else []
        if not columns or not ids:
            continue
        for chunk in bulk.id_chunks(ids):
            for row in db.session.execute(select(key, *columns).where(key.in_(chunk))):
                new = _cleared(row, columns, matcher)
                if new:
                    db.session.execute(update(table).where(key == row[0]).values(new))
                    touched[name] = touched.get(name, 0) + 1
    return touched


def _cleared(row: Any, columns: list[Any], matcher: Matcher) -> dict[str, Any]:
    new = {}
    for column, value in zip(columns, row[1:], strict=True):
        if value is None:
            continue
        if isinstance(column.type, JSON):
            redacted = matcher.redact(value)
            if redacted != value:
                new[column.name] = redacted
        elif isinstance(value, str) and matcher.found(value):
            new[column.name] = _text(value, matcher)
    return new


def _text(value: str, matcher: Matcher) -> str:
    """A text cell: a JSON document stays valid JSON (values replaced inside), other text
    has every match replaced."""
    if value[:1] in "[{":
        try:
            decoded = json.loads(value)
        except ValueError:
            return matcher.replace(value)
        return json.dumps(matcher.redact(decoded), ensure_ascii=False, sort_keys=True)
    return matcher.replace(value)
