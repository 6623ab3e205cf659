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
A key without a rule (``NO ACTION``) that still refers to a deleted row fails the flush
with ``IntegrityError``, as PostgreSQL fails the ``DELETE``: a user who owns customers was
deleted on SQLite and left them owned by nobody. Checked once the flush is over, so rows
the same flush re-pointed or deleted first do not count. The keys no database checks
(``base.unchecked_key``: the stamps) are checked here on PostgreSQL too; unlike a database
key, that check does not see a row another transaction stamps with the account meanwhile
(an account nothing names, deleted while it works: accepted).
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Any

from flask_appbuilder import Model
from sqlalchemy import delete, event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models.base import UNCHECKED
from app.services import bulk


@event.listens_for(Session, "after_flush")
def _apply_on_delete(session: Session, flush_context: Any) -> None:
    if not session.deleted:
        return
    gone: dict[str, set[Any]] = {}
    for obj in session.deleted:
        table = getattr(type(obj), "__table__", None)
        keys = list(table.primary_key.columns) if table is not None else []
        if len(keys) == 1:
            gone.setdefault(table.name, set()).add(getattr(obj, keys[0].key, None))
    connection, done, refusing = session.connection(), set(), []
    if session.get_bind().dialect.name != "sqlite":  # the database applies its keys: only the unchecked ones here
        refusing = [(child, column, name, chunk) for name, ids in gone.items()
                    for child, column in _unchecked_referring(name)
                    for chunk in bulk.id_chunks({pk for pk in ids if pk is not None})]
    else:
        for name, ids in gone.items():
            _apply(connection, name, {pk for pk in ids if pk is not None}, done, refusing)
    for check in refusing:  # once every rule has run: a cascade may have removed the referrer
        _refuse_referred(connection, *check)


def _apply(connection: Any, table_name: str, ids: set[Any], done: set[tuple[str, Any]],
           refusing: list[tuple[Any, Any, str, list[Any]]]) -> None:
    """The rules of every foreign key referring to ``ids`` of ``table_name`` (``done``: the
    rows already handled, so a cycle of cascades ends); the ``NO ACTION`` keys' checks go to
    ``refusing``."""
    ids = {pk for pk in ids if (table_name, pk) not in done}
    done.update((table_name, pk) for pk in ids)
    if not ids:
        return
    for child, column, rule in _referring(table_name):
        for chunk in bulk.id_chunks(ids):
            if rule == "NO ACTION":
                refusing.append((child, column, table_name, chunk))
                continue
            if rule == "SET NULL":
                connection.execute(update(child).where(column.in_(chunk)).values({column.name: None}))
                continue
            keys = list(child.primary_key.columns)
            if len(keys) == 1:  # what refers to those rows gets its rules first
                _apply(connection, child.name, set(connection.scalars(select(keys[0]).where(column.in_(chunk)))), done,
                       refusing)
            connection.execute(delete(child).where(column.in_(chunk)))


def _refuse_referred(connection: Any, child: Any, column: Any, table_name: str, ids: list[Any]) -> None:
    """``IntegrityError`` (PostgreSQL's ``foreign_key_violation``) when a row of ``child``
    still refers to one of ``ids`` through ``column``."""
    found = connection.execute(select(column).where(column.in_(ids)).limit(1)).first()
    if found is not None:
        message = (f"FOREIGN KEY constraint failed: {table_name} id {found[0]} is still referenced "
                   f"from {child.name}.{column.name}")
        raise IntegrityError(f"DELETE FROM {table_name}", None, sqlite3.IntegrityError(message))


@functools.cache
def _unchecked_referring(table_name: str) -> list[tuple[Any, Any]]:
    """(child table, its column) for every ``unchecked_key`` to the table (the stamps: no
    database checks them, so a delete they still name is refused here on PostgreSQL too)."""
    return [(child, column) for child in Model.metadata.sorted_tables for column in child.columns
            for key in column.foreign_keys if key.info.get(UNCHECKED) and key.column.table.name == table_name]


@functools.cache
def _referring(table_name: str) -> list[tuple[Any, Any, str]]:
    """(child table, its column, "SET NULL", "CASCADE" or "NO ACTION") for every foreign key
    to the table (``RESTRICT`` reads as ``NO ACTION``: both refuse)."""
    found = []
    for child in Model.metadata.sorted_tables:
        for column in child.columns:
            for key in column.foreign_keys:
                rule = (key.ondelete or "NO ACTION").upper()
                if key.column.table.name == table_name:
                    found.append((child, column, rule if rule in ("SET NULL", "CASCADE") else "NO ACTION"))
    return found
