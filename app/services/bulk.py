"""Many-row INSERTs straight through the database driver, for imports and the sync.

SQLAlchemy's per-row parameter processing costs more than SQLite's own work at
100,000 rows; this sends plain tuples. Only the types our bulk tables use are converted
(datetimes, for SQLite, into SQLAlchemy's storage format, so the ORM reads them back
exactly as if it had written them; instants in UTC, as ``UtcDateTime`` binds them), and
each distinct value once (a batch shares its ``created_on``).

SQLite takes multi-row ``INSERT ... VALUES (...), (...)`` pages of up to ``SQLITE_PAGE_ROWS``
rows (its inserts run in-process: no round trips). One statement per row, as ``executemany``
runs it, pays SQLite's per-statement work on every row, and on a table with an insert trigger
(the search index's, ``app/services/search.py``) that includes a statement journal: each row
copies the pages it touches before changing them. 98,000 customer rows: 4.2 s as one
``executemany``, 1.4 s in pages of 200; contacts 2.9 -> 1.0 s; audit entries 1.7 -> 1.3 s
(CPU, SQLite 3.40). PostgreSQL
takes ``COPY ... FROM STDIN`` from ``COPY_FROM`` rows (issue 12: one stream instead of a
statement per row; measured 5x less server time and 2x less client CPU than
``executemany`` at 20,000 customer rows, and faster than multi-row ``VALUES`` pages).
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Date, DateTime, Table, event, exc, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.pool import Pool

from app.models.base import UtcDateTime

_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": ":{n}", "named": ":{name}"}
#: Rows from which PostgreSQL gets a COPY (below it an ``executemany`` costs as little).
COPY_FROM = 50
#: Most rows in one SQLite INSERT (fewer when the table's columns would pass the driver's
#: limit of bound values); gains flatten out past ~100 rows a statement.
SQLITE_PAGE_ROWS = 500


#: Ids per ``IN (…)`` list (``id_chunks``): far below every driver's bound-parameter limit.
ID_CHUNK = 500


def id_chunks(ids: Iterable[Any], size: int = ID_CHUNK) -> list[list[Any]]:
    """``ids`` without repeats, sorted (one table's keys are of one type), in lists of at
    most ``size``: one ``IN (…)`` statement each."""
    items = sorted(set(ids))
    return [items[start:start + size] for start in range(0, len(items), size)]


def sqlite_text(value: Any) -> Any:
    """SQLite has no date type: store them as SQLAlchemy does (``YYYY-MM-DD HH:MM:SS.ffffff``,
    the wall time, year padded to four digits), so reads parse them back."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def postgresql_text(value: Any) -> Any:
    """A date or datetime as PostgreSQL reads it (ISO 8601; an aware datetime with its
    offset); other values as they are. ``COPY`` formats a datetime object at ~1.2 us a
    value and a string at ~0.07 (psycopg 3.3, C): rendered in ``bound_values``, each
    distinct value once and in the process that prepares the rows (issue 12). psycopg binds
    a string as "unknown", which the column's type parses, so the text serves an
    ``executemany`` as well. ``_converter`` hands it values in the column's own form."""
    if isinstance(value, date):  # a datetime is a date too
        return value.isoformat(" ") if isinstance(value, datetime) else value.isoformat()
    return value


#: Dates and instants as each dialect's bulk statements take them (``_converter``).
_AS_TEXT: dict[str, Callable[[Any], Any]] = {"sqlite": sqlite_text, "postgresql": postgresql_text}


def _form(column_type: Any, dialect: Dialect) -> Callable[[Any], Any]:
    """A value of a date or date-time column as the column stores it, before it is text: on
    PostgreSQL an instant (``timestamptz``) in UTC, so the text's offset is a whole number of
    minutes; a wall time (``timestamp``, and any date-time on SQLite, which keeps no zone) as
    written, whatever its zone; a day (``date``) as the datetime's day."""
    if not isinstance(column_type, DateTime):
        return _day
    if column_type.timezone and dialect.name == "postgresql":
        return lambda value: value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else value
    return lambda value: value.replace(tzinfo=None) if isinstance(value, datetime) else value


def _day(value: Any) -> Any:
    """A date column's value: a datetime's day (its time is not the column's)."""
    return value.date() if isinstance(value, datetime) else value


def _converter(column_type: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """How a column's values are bound (None: as they are): dates and instants as text, in
    the form of the dialect (``sqlite_text``, ``postgresql_text``); instants in UTC first."""
    as_text = _AS_TEXT.get(dialect.name)
    if isinstance(column_type, UtcDateTime):
        bind = column_type.process_bind_param
        if as_text is None:
            return lambda value: bind(value, dialect)
        return lambda value: as_text(bind(value, dialect))
    if as_text is None or not isinstance(column_type, (DateTime, Date)):
        return None
    form = _form(column_type, dialect)
    return lambda value: as_text(form(value))


def bound_value(dialect: Dialect, column: Any, value: Any) -> Any:
    """One value of ``column`` bound as ``bound_values`` binds the column's values (an audit
    batch's shared ``created_at``, converted once)."""
    convert = _converter(column.type, dialect)
    return value if convert is None or value is None else convert(value)


def _convert(values: list[list[Any]], index: int, convert: Callable[[Any], Any]) -> None:
    """Convert column ``index`` of every row in place, each distinct value once."""
    memo: dict[Any, Any] = {}
    for row in values:
        value = row[index]
        if value is None:
            continue
        # Equal datetimes in different zones are the same instant but not the same wall time
        # (a plain ``DateTime`` column stores the wall time), and a wall time repeated when
        # clocks go back is two instants (``fold``): zone and fold are part of the key.
        key = value, getattr(value, "tzinfo", None), getattr(value, "fold", 0), type(value)
        try:
            row[index] = memo[key]
        except KeyError:
            row[index] = memo[key] = convert(value)
        except TypeError:  # an unhashable value: converted as it is
            row[index] = convert(value)


def bound_values(dialect: Dialect, table: Table, names: list[str], rows: list[dict[str, Any]]) -> list[list[Any]]:
    """``rows`` (dicts holding at least ``names``) as lists of bound values in ``names`` order."""
    pick = itemgetter(*names)
    values = [list(pick(row)) for row in rows] if len(names) > 1 else [[row[names[0]]] for row in rows]
    for index, name in enumerate(names):
        convert = _converter(table.c[name].type, dialect)
        if convert is not None:
            _convert(values, index, convert)
    return values


def insert_prepared(rows: list[dict[str, Any]], prepare: Callable[[list[dict[str, Any]]], Any],
                    store: Callable[[Any], None]) -> None:
    """Insert ``rows`` in the two steps an import splits between its processes: ``prepare``
    (bound, stamped, audited; a code still to number stands in as ``audit.later("code")`` at
    the positions it lists as ``.blank``) then ``store`` (numbers and inserts; sets ``.codes``
    and ``.ids``). The codes and ids land in ``rows``. If storing fails, those rows get their
    blank code back, so a caller that tries them again has them numbered then instead of
    storing the stand-in as a code."""
    if not rows:
        return
    new = prepare(rows)
    try:
        store(new)
    except BaseException:
        for index in new.blank:
            rows[index]["code"] = None
        raise
    for row, code, pk in zip(rows, new.codes, new.ids, strict=True):
        row["code"], row["id"] = code, pk


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table`` (``insert_values``)."""
    if not rows:
        return
    names = list(rows[0])
    insert_values(connection, table, names, bound_values(connection.dialect, table, names, rows))


#: ``n`` new ids of ``table``'s sequence, in order. The subquery (kept apart by ``OFFSET 0``)
#: looks the sequence up once: inlined, ``pg_get_serial_sequence`` ran for every id and the
#: statement took 10.6 ms per 2,000 ids instead of 0.65 ms (PostgreSQL 15), 0.5-0.7 s of a
#: 100,000-row import (issue 12).
_DRAW_IDS = ("SELECT nextval(s.seq) FROM (SELECT pg_get_serial_sequence(%(table)s, 'id')::regclass AS seq OFFSET 0) s,"
             " generate_series(1, %(n)s)")


def insert_with_ids(connection: Connection, table: Table, rows: list[dict[str, Any]], key: str = "code") -> None:
    """INSERT ``rows`` (dicts with the same keys, no ``id``; ``key`` unique in each row, e.g. the
    code just numbered) into ``table`` and set each row's ``"id"`` to the one it was stored
    under (``insert_bound``)."""
    if not rows:
        return
    names = list(rows[0])
    ids = insert_bound(connection, table, names, bound_values(connection.dialect, table, names, rows), key)
    for row, new_id in zip(rows, ids, strict=True):
        row["id"] = new_id


def draw_ids(connection: Connection, table: Table, count: int) -> list[int] | None:
    """PostgreSQL: ``count`` new ids from ``table``'s sequence, in one query, for
    ``insert_bound(..., ids=...)``; None on SQLite, whose ids come with the insert. An import
    storing chunks side by side draws them in chunk order (``importing.writer.numbering``),
    so a chunk's ids are ascending and below the next chunk's (not always consecutive:
    another writer may draw from the same sequence between them)."""
    if connection.dialect.name != "postgresql" or not count:
        return None
    return connection.exec_driver_sql(_DRAW_IDS, {"table": table.fullname, "n": count}).scalars().all()


def insert_bound(connection: Connection, table: Table, names: list[str], values: list[list[Any]],
                 key: str = "code", ids: list[int] | None = None) -> list[int]:
    """INSERT ``values`` (rows bound in ``names`` order, ``bound_values``; no ``id`` column;
    ``key`` unique in each row) into ``table``; returns the id each row was stored under, in
    order, without reading them back by ``key`` (issue 12: that query took 2.8 s of a
    100,000-row follow-up import on PostgreSQL). PostgreSQL: the ids are drawn from the
    table's sequence first (one query; or ``ids``, ``draw_ids``) and COPY stores them. SQLite
    (3.35+): the pages say ``RETURNING key, id``. Older SQLite: one query by ``key`` per 1,000 rows."""
    if not values:
        return []
    dialect = connection.dialect
    if dialect.name == "postgresql":
        ids = ids or draw_ids(connection, table, len(values))
        insert_values(connection, table, names, values, ids=ids)
        return ids
    at = names.index(key)
    if dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        head = _insert_head(dialect, table, names)
        returning = f" RETURNING {dialect.identifier_preparer.quote(key)}, id"
        stored = dict(chain.from_iterable(_insert_pages(connection, head, len(names), values, returning)))
    else:
        insert_values(connection, table, names, values)
        wanted, stored = [row[at] for row in values], {}
        for start in range(0, len(wanted), 1000):
            stored.update(connection.execute(select(table.c[key], table.c.id).where(
                table.c[key].in_(wanted[start:start + 1000]))).all())
    return [stored[row[at]] for row in values]


def _insert_head(dialect: Dialect, table: Table, names: Sequence[str]) -> str:
    quote = dialect.identifier_preparer.quote
    return f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(map(quote, names))}) VALUES "


def insert_values(connection: Connection, table: Table, names: Sequence[str], values: Sequence[Sequence[Any]],
                  ids: Sequence[int] | None = None) -> None:
    """INSERT ``values`` (rows of bound values in ``names`` order, see ``bound_values``) into
    ``table``, each row under its id in ``ids`` when given (``draw_ids``), else the
    database's: ``COPY`` on PostgreSQL from ``COPY_FROM`` rows, multi-row pages on SQLite,
    else one ``executemany``. Errors are SQLAlchemy's (``IntegrityError`` ...), and the
    transaction is the caller's (a failed COPY leaves it to be rolled back, as a failed
    INSERT does)."""
    if not values:
        return
    if ids:
        names, values = ["id", *names], [[new_id, *row] for new_id, row in zip(ids, values, strict=True)]
    dialect = connection.dialect
    if dialect.name == "postgresql" and len(values) >= COPY_FROM:
        copy_rows(connection, table, names, values)
        return
    head = _insert_head(dialect, table, names)
    if dialect.name == "sqlite":
        _insert_pages(connection, head, len(names), values)
        return
    style = _PLACEHOLDER.get(dialect.paramstyle, "?")
    marks = ", ".join(style.format(n=i + 1, name=name) for i, name in enumerate(names))
    connection.exec_driver_sql(f"{head}({marks})", [tuple(row) for row in values])


def _insert_pages(connection: Connection, head: str, width: int, values: Sequence[Sequence[Any]],
                  returning: str = "") -> list[list[Any]]:
    """SQLite: ``values`` (rows of ``width`` bound values) as multi-row INSERTs ``head`` +
    ``(?, ...), (?, ...)``, as many rows a statement as the driver's bound-value limit allows
    (999 before SQLite 3.32, 32,766 since), at most ``SQLITE_PAGE_ROWS``. With a
    ``returning`` clause, the rows each page returned (one list a page); else empty."""
    raw = connection.connection.driver_connection
    limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if hasattr(raw, "getlimit") else 999
    page = max(1, min(SQLITE_PAGE_ROWS, limit // width))
    returned = []
    for start in range(0, len(values), page):
        rows = values[start:start + page]
        one, bound = _page_shape(rows, width)
        result = connection.exec_driver_sql(head + ", ".join([one] * len(rows)) + returning, bound)
        if returning:
            returned.append(result.fetchall())
    return returned


def _page_shape(rows: Sequence[Sequence[Any]], width: int) -> tuple[str, tuple[Any, ...]]:
    """One SQLite page's row placeholder and its bound values: a column that is None in every
    row of the page is written as a ``NULL`` literal instead of bound. The driver binds a None
    through its adapter lookup (two failed attribute lookups a value): 100,000 rows with 9
    NULL columns of 20 took 0.36 s bound and 0.11 s as literals (CPU, SQLite 3.40)."""
    empty = [index for index, value in enumerate(rows[0]) if value is None]
    if empty:
        count = len(rows)
        empty = [index for index in empty if [row[index] for row in rows].count(None) == count]
    if not empty:
        return "(" + ", ".join("?" * width) + ")", tuple(chain.from_iterable(rows))
    nulls = set(empty)
    kept = [index for index in range(width) if index not in nulls]
    one = "(" + ", ".join("NULL" if index in nulls else "?" for index in range(width)) + ")"
    if not kept:
        return one, ()
    if len(kept) == 1:
        return one, tuple(row[kept[0]] for row in rows)
    return one, tuple(chain.from_iterable(map(itemgetter(*kept), rows)))


def copy_rows(connection: Connection, table: Table, names: Sequence[str], values: Sequence[Sequence[Any]]) -> None:
    """``COPY table (names) FROM STDIN`` of bound ``values`` (``bound_values``) through
    psycopg 3, in the connection's transaction. The engine's cursor listeners see the
    statement (``before_cursor_execute``/``after_cursor_execute``, with no parameters and
    no context) like any other; driver errors come back as SQLAlchemy's."""
    preparer = connection.dialect.identifier_preparer
    statement = f"COPY {preparer.format_table(table)} ({', '.join(map(preparer.quote, names))}) FROM STDIN"
    dbapi_error = connection.dialect.loaded_dbapi.Error
    with connection.connection.dbapi_connection.cursor() as cursor:
        for listener in connection.dispatch.before_cursor_execute:
            listener(connection, cursor, statement, (), None, True)
        try:
            with cursor.copy(statement) as copy:
                write = copy.write_row
                for row in values:
                    write(row)
        except dbapi_error as error:
            raise exc.DBAPIError.instance(statement, None, error, dbapi_error, dialect=connection.dialect) \
                from error
        for listener in connection.dispatch.after_cursor_execute:
            listener(connection, cursor, statement, (), None, True)


#: SQLite settings for one many-row transaction (``roomy_transaction``): page cache in KiB, and
#: WAL pages between automatic checkpoints (SQLite's defaults: 2,000 KiB, 1,000 pages).
ROOMY_CACHE_KIB = 65536
ROOMY_CHECKPOINT_PAGES = 10000


def roomy_transaction(connection: Connection) -> None:
    """SQLite: room for the many-row write of ``connection``'s current transaction (an import
    chunk). A 64 MiB page cache instead of 2 MiB: a 2,000-row chunk of follow-ups dirties more
    pages than that, and SQLite spills dirty pages to the WAL mid-transaction when its cache is
    full. A checkpoint every 10,000 WAL pages instead of 1,000: each copies the pages to the
    database file and syncs. Issue 12, 100,000 follow-ups, each setting alone -4 to -6 % wall,
    together -6 to -8 % (three runs side by side with the defaults, one core each). Both go
    back to what they were when the connection returns to the pool (``_restore_roomy``), so
    other requests keep the defaults; the first commit after the import checkpoints the larger
    WAL (at most ~40 MB). Nothing on other databases."""
    if connection.dialect.name != "sqlite":
        return
    pooled = connection.connection
    raw = pooled.driver_connection
    if "crm_roomy" not in pooled.info:
        pooled.info["crm_roomy"] = (raw.execute("PRAGMA cache_size").fetchone()[0],
                                    raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    raw.execute(f"PRAGMA cache_size=-{ROOMY_CACHE_KIB}")
    raw.execute(f"PRAGMA wal_autocheckpoint={ROOMY_CHECKPOINT_PAGES}")


@event.listens_for(Pool, "checkin")
def _restore_roomy(dbapi_connection: Any, record: Any) -> None:
    """A connection given room by ``roomy_transaction`` gets its own settings back as it
    returns to the pool (after the chunk's commit or rollback)."""
    saved = record.info.pop("crm_roomy", None) if record is not None else None
    if saved is None or dbapi_connection is None:
        return
    cache, checkpoint = saved
    try:
        dbapi_connection.execute(f"PRAGMA cache_size={int(cache)}")
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint)}")
    except sqlite3.Error:  # a broken connection: the pool discards it anyway
        pass


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """The cycle collector paused for one many-row run (an import, a sync run): 100,000 rows
    read and planned are over a million small dicts, lists and tuples without cycles, which
    reference counting frees, and each of the collector's passes walks everything the run holds
    (issue 12: about a third of a 50,000-row sync's CPU). Cyclic garbage (ORM states) waits for
    the first pass after the run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
