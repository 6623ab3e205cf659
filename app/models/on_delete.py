"""The schema's ``ON DELETE`` rules, applied on SQLite too.

SQLite does not enforce foreign keys on the CRM's connections, so a deleted record's
``ON DELETE CASCADE`` children stayed and its ``ON DELETE SET NULL`` references kept
pointing at nothing. SQLite then gives the next new row the deleted one's id, and the
leftovers attach to it: a deleted lead's activities appeared on the next lead, another
rep's; a deleted follow-up's planned activity made the next follow-up with a next step
fail (its unique ``from_follow_up_id``). PostgreSQL applies the rules itself.

After every flush on SQLite that deleted records, each foreign key referring to their
table gets its rule: ``SET NULL`` clears the references, ``CASCADE`` deletes the rows
(and applies the rules to what refers to those, in turn). As on PostgreSQL, these rows
change without audit entries of their own: the deleted record's entry is the fact.
Keys without a rule (``NO ACTION``) are left as they are.
"""

from __future__ import annotations

import functools
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session

from app.services import bulk


@event.listens_for(Session, "after_flush")
def _apply_on_delete(session: Session, flush_context: Any) -> None:
    if not session.deleted or session.get_bind().dialect.name != "sqlite":
        return
    gone: dict[str, set[Any]] = {}
    for obj in session.deleted:
        table = getattr(type(obj), "__table__", None)
        keys = list(table.primary_key.columns) if table is not None else []
        if len(keys) == 1:
            gone.setdefault(table.name, set()).add(getattr(obj, keys[0].key, None))
    connection, done = session.connection(), set()
    for name, ids in gone.items():
        _apply(connection, name, {pk for pk in ids if pk is not None}, done)


def _apply(connection: Any, table_name: str, ids: set[Any], done: set[tuple[str, Any]]) -> None:
    """The rules of every foreign key referring to ``ids`` of ``table_name`` (``done``: the
    rows already handled, so a cycle of cascades ends)."""
    ids = {pk for pk in ids if (table_name, pk) not in done}
    done.update((table_name, pk) for pk in ids)
    if not ids:
        return
    for child, column, rule in _referring(table_name):
        for chunk in bulk.id_chunks(ids):
            if rule == "SET NULL":
                connection.execute(update(child).where(column.in_(chunk)).values({column.name: None}))
                continue
            keys = list(child.primary_key.columns)
            if len(keys) == 1:  # what refers to those rows gets its rules first
                _apply(connection, child.name, set(connection.scalars(select(keys[0]).where(column.in_(chunk)))), done)
            connection.execute(delete(child).where(column.in_(chunk)))


@functools.cache
def _referring(table_name: str) -> list[tuple[Any, Any, str]]:
    """(child table, its column, "SET NULL" or "CASCADE") for every foreign key to the table."""
    found = []
    for child in Model.metadata.sorted_tables:
        for column in child.columns:
            for key in column.foreign_keys:
                rule = (key.ondelete or "").upper()
                if key.column.table.name == table_name and rule in ("SET NULL", "CASCADE"):
                    found.append((child, column, rule))
    return found
