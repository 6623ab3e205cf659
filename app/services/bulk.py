"""Many-row INSERTs straight through the database driver, for imports and the sync.

SQLAlchemy's per-row parameter processing costs more than SQLite's own work at
100,000 rows; this sends plain tuples with ``executemany``. Only the types our bulk
tables use are converted (datetimes, for SQLite, into SQLAlchemy's storage format, so
the ORM reads them back exactly as if it had written them; instants in UTC, as
``UtcDateTime`` binds them).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, DateTime, Table
from sqlalchemy.engine import Connection, Dialect

from app.models.base import UtcDateTime

_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": ":{n}", "named": ":{name}"}


def _dates_as_text(row: tuple, dated: list[int]) -> tuple:
    """SQLite has no date type: store them as SQLAlchemy does, so reads parse them back."""
    values = list(row)
    for index in dated:
        value = values[index]
        if isinstance(value, datetime):
            values[index] = value.strftime("%Y-%m-%d %H:%M:%S.%f")
        elif isinstance(value, date):
            values[index] = value.isoformat()
    return tuple(values)


def _instants(row: tuple, instants: list[tuple[int, UtcDateTime]], dialect: Dialect) -> tuple:
    """Instant columns as their type binds them (UTC; naive UTC text on SQLite comes next)."""
    values = list(row)
    for index, kind in instants:
        values[index] = kind.process_bind_param(values[index], dialect)
    return tuple(values)


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table`` in one executemany."""
    if not rows:
        return
    dialect = connection.dialect
    names = list(rows[0])
    style = _PLACEHOLDER.get(dialect.paramstyle, "?")
    marks = ", ".join(style.format(n=i + 1, name=name) for i, name in enumerate(names))
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    statement = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({quoted}) VALUES ({marks})"
    values = [tuple(row[name] for name in names) for row in rows]
    instants = [(i, table.c[name].type) for i, name in enumerate(names) if isinstance(table.c[name].type, UtcDateTime)]
    if instants:
        values = [_instants(row, instants, dialect) for row in values]
    if dialect.name == "sqlite":
        dated = [i for i, name in enumerate(names) if isinstance(table.c[name].type, (DateTime, Date, UtcDateTime))]
        if dated:
            values = [_dates_as_text(row, dated) for row in values]
    connection.exec_driver_sql(statement, values)
