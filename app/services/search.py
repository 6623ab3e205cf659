"""The customer list's one search box: what a typed text matches (issue 11, §1 and §6).

One box covers the customer name, code, contact name, credit code (substring, case- and
width-insensitive) and the contact phone (exact match only, after ``normalize_phone``).
The clause is ANDed with the list's data-scope filter by the caller, so it only ever
narrows what the user may already see.

Folding: the typed text and the stored column are both compared in NFKC, case-folded
form, so ``acme`` finds ``ACME``, ``ＡＣＭＥ`` and ``Ａｃｍｅ``. SQLite has no Unicode
folding of its own (its ``lower()`` is ASCII-only), so a deterministic ``crm_fold``
function (Python's NFKC + casefold) is registered on the connection the query runs on;
PostgreSQL 13+ uses ``lower(normalize(col, NFKC))``. What remains: on PostgreSQL
``lower()`` follows the database's ctype (with the C locale only ASCII and NFKC-folded
letters compare case-insensitively, e.g. ``É``/``é`` do not), and PostgreSQL's ``lower``
does not expand ``ß`` to ``ss`` as ``casefold`` does; characters NFKC does not unify
(traditional/simplified Chinese, ``〇``/``0``) are different text everywhere.

The navbar's quick search (``quick_find``) runs one bounded query per record type: the
indexed exact lookups first (a code, a credit code, a canonical phone, a user name), which
answer at once when they hit; else the folded substring match, newest first with a LIMIT
so the database stops at the first ``QUICK_LIMIT`` hits, under a time budget
(``CRM_QUICK_SEARCH_MS``): a text found nowhere cannot keep a web worker scanning a million
rows. When the budget runs out the page says the search was cut short. Scope is always
applied (``scope_clause``), in every query.

At a million rows the substring match goes through an index when one exists (issue 12,
migration ``f3b5d7e9a1c2``), so its time no longer grows with the records in scope:

- SQLite: FTS5 trigram tables (``customer_search``, ``follow_up_search``, ``contact_search``,
  ``lead_search``) kept by triggers (inserts: indexed in bulk at commit, ``_index_pending``; an
  import's after the run, ``index_pending``, found by a scan of the noted rows meanwhile);
  the database walks the matching rows newest first (``ORDER BY rowid DESC``) and stops at
  the limit. The trigram tokenizer folds case (Unicode) but not width, so the typed text is
  looked up in its half-width and its full-width spelling: stored ``ＡＣＭＥ`` is found by
  ``acme``, but a match that mixes widths inside the typed part (``ＡＣme``), and other NFKC
  equivalences (``㈱``) or ``ß``/``ss``, are not found this way. Follow-ups found through
  their customer's name come from the newest matching customers.
- Texts shorter than 3 characters have no trigram: they are looked for among the newest
  ``RECENT_ROWS`` rows of the table only (``recent_only``); when that leaves older rows
  unsearched and finds fewer than the limit, the page says the search was cut short and asks
  for more of the name (a table smaller than that is searched whole, as before).
- PostgreSQL: ``pg_trgm`` GIN indexes on the folded columns serve the same ``LIKE`` the scan
  runs (same semantics); the planner picks the index when the text is rare.

A schema change that rebuilds ``customer`` or ``follow_up`` on SQLite (Alembic batch mode)
drops the triggers: such a migration re-creates them (``f3b5d7e9a1c2``), rebuilds the
FTS table (``INSERT INTO customer_search(customer_search) VALUES ('rebuild')``) and, in the
same transaction, forgets that table's noted rows (``DELETE FROM search_pending WHERE tbl =
'customer'``): an import's rows stay noted until ``index_pending`` runs, and the rebuild
has indexed them already (indexed twice, the FTS table fails its integrity check).
"""

from __future__ import annotations

import logging
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import Text, and_, column, event, func, literal_column, or_, select, table, text, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import Pool
from sqlalchemy.sql.elements import ColumnElement

from app.models.customers import Customer, FollowUp
from app.models.org import CrmUser
from app.security.data_scope import scope_clause
from app.services import validation

log = logging.getLogger(__name__)

#: Longest search text a list accepts (a name is at most a few dozen characters).
MAX_QUERY_LENGTH = 100
#: Customer columns the text part of the search looks in (never the masked phone:
#: a substring match on it would reveal its digits one by one).
TEXT_COLUMNS = ("name", "code", "contact_name", "credit_code")
_SQLITE_FOLD = "crm_fold"


def fold(text: str | None) -> str:
    """``text`` as compared: invisible characters dropped, spaces collapsed (``clean_line``),
    NFKC (full-width to half-width) and case-folded. ``None`` gives ``""``."""
    return unicodedata.normalize("NFKC", validation.clean_line(text)).casefold()


def _sqlite_fold(value: Any) -> Any:
    return None if value is None else unicodedata.normalize("NFKC", str(value)).casefold()


def install_sqlite_functions(raw_connection: Any) -> None:
    """Register the SQL folding function on a DBAPI SQLite connection (every new connection
    of the app's engine: ``app.extensions.enable_sqlite_pragmas``)."""
    raw_connection.create_function(_SQLITE_FOLD, 1, _sqlite_fold, deterministic=True)


def prepare(session: Any) -> None:
    """Make the SQL folding function available on ``session``'s connection (SQLite only).

    Called right before a search query runs on that session, so connections opened
    before this module was imported have it too; registering again is cheap and harmless.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        install_sqlite_functions(connection.connection.driver_connection)


def folded(column: Any, dialect: str, server_version: tuple | None = None) -> ColumnElement:
    """SQL for ``column`` in the folded form ``fold`` gives in Python (see the module doc)."""
    if dialect == "sqlite":
        return getattr(func, _SQLITE_FOLD)(column)
    if dialect == "postgresql" and (server_version or (13,)) >= (13,):
        return func.lower(func.normalize(column, literal_column("NFKC")))
    return func.lower(column)


def query_phone(text: str) -> str | None:
    """The canonical phone ``text`` spells (``138 1234 5678``, ``+86-138…``, full-width
    digits), or None when it is not a phone number."""
    try:
        return validation.normalize_phone(text)
    except ValueError:
        return None


def _dialect(session: Any) -> tuple[str, tuple | None]:
    bind = session.get_bind()
    return bind.dialect.name, getattr(bind.dialect, "server_version_info", None)


def contains_folded(columns: list[Any], typed: str, session: Any) -> ColumnElement:
    """OR of "the folded column contains the folded ``typed``" over ``columns`` (``%``/``_``
    literal), as ``customer_clause`` compares; registers the SQLite fold first."""
    prepare(session)
    dialect, version = _dialect(session)
    wanted = fold(typed)
    if dialect == "postgresql":
        wanted = unicodedata.normalize("NFKC", validation.clean_line(typed)).lower()  # as SQL lower() folds
    return or_(*(folded(column, dialect, version).contains(wanted, autoescape=True) for column in columns))


def customer_clause(text: str | None, session: Any) -> ColumnElement | None:
    """WHERE clause for the customer search box, or None for an empty text.

    ``text`` longer than ``MAX_QUERY_LENGTH`` raises ``ValueError`` (the view says so).
    Text columns match when their folded value contains the folded text (``%``/``_`` are
    literal); the phone matches only when equal to the canonical phone the text spells.
    """
    wanted = fold(text)
    if not wanted:
        return None
    if len(wanted) > MAX_QUERY_LENGTH:
        raise ValueError(f"longer than {MAX_QUERY_LENGTH} characters")
    phone = query_phone(text or "")
    hits = text_hits(Customer, TEXT_COLUMNS, text or "", session)
    if hits is not None:  # one IN over a UNION: the planner joins the hits, an OR would scan
        if phone:
            hits.append(select(Customer.id).where(Customer.contact_phone == phone))
        return _one_of(Customer, hits)
    clauses = [contains_folded([getattr(Customer, name) for name in TEXT_COLUMNS], text or "", session)]
    if phone:
        clauses.append(Customer.contact_phone == phone)
    return or_(*clauses)


# --- PostgreSQL: the searched text in side tables (migration b2d4f6a8c0e1) ----------------

#: Tables whose searched columns have a copy in ``<table>_search`` with the trigram indexes.
PG_SEARCH_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer": ("name", "code", "contact_name", "credit_code"),
    "contact": ("code", "name", "title", "email"),
    "follow_up": ("code", "content"),
}
#: Rows noted for indexing (SQLite: until the commit; PostgreSQL: inserted by an import).
_PENDING = table("search_pending", column("tbl"), column("row_id"))
#: PostgreSQL: an import statement's new rows, noted as the range of their ids (c8e0a2b4d6f9).
_SPANS = table("search_pending_span", column("tbl"), column("low_id"), column("high_id"))
_PG_SIDES: dict[str, bool] = {}


def has_side_tables(session: Any) -> bool:
    """Whether the side tables exist on ``session``'s PostgreSQL database (looked up once)."""
    bind = session.get_bind()
    key = str(bind.url)
    if key not in _PG_SIDES:
        _PG_SIDES[key] = session.scalar(text("SELECT to_regclass('customer_search') IS NOT NULL")) is True
    return _PG_SIDES[key]


def _side(name: str) -> Any:
    return table(f"{name}_search", column("id"), *(column(c, Text) for c in PG_SEARCH_COLUMNS[name]))


def text_hits(model: type, names: tuple[str, ...] | list[str], typed: str, session: Any) -> list[Any] | None:
    """PostgreSQL with side tables: the ids of ``model`` rows one of whose ``names`` columns
    contains ``typed`` (folded, as ``contains_folded``), as SELECTs to UNION: the side table's
    rows through its trigram indexes, and, only while an import's rows are noted but not
    indexed yet (``search_pending``), those rows by a scan of them alone. (With the side
    table alone the planner may walk the newest rows and stop at a page, as for the model's
    own columns; a UNION makes it collect every hit first.) None when no side table covers
    these columns (SQLite, no pg_trgm): compare the model's own columns."""
    name = model.__tablename__
    if name not in PG_SEARCH_COLUMNS or not set(names) <= set(PG_SEARCH_COLUMNS[name]):
        return None
    if not _postgresql(session) or not has_side_tables(session):
        return None
    side = _side(name)
    hits = [select(side.c.id).where(contains_folded([side.c[n] for n in names], typed, session))]
    rows, spans = session.execute(select(select(_PENDING.c.row_id).where(_PENDING.c.tbl == name).exists(),
                                         select(_SPANS.c.tbl).where(_SPANS.c.tbl == name).exists())).one()
    matches = contains_folded([getattr(model, n) for n in names], typed, session)
    if rows or spans:  # else the index alone: the planner may walk the newest rows and stop at the page
        # both: an indexing run may move a span's held rows to row notes after the check above
        hits.append(select(model.id).join(_PENDING, and_(_PENDING.c.row_id == model.id, _PENDING.c.tbl == name))
                    .where(matches))
        hits.append(select(model.id).join(_SPANS, and_(_SPANS.c.tbl == name,
                                                       model.id.between(_SPANS.c.low_id, _SPANS.c.high_id)))
                    .where(matches))
    return hits


def text_match(model: type, names: tuple[str, ...] | list[str], typed: str, session: Any) -> ColumnElement:
    """"One of ``names`` columns of ``model`` contains ``typed``": through the side tables
    where there are some (``text_hits``), else ``contains_folded`` on the model's columns."""
    hits = text_hits(model, names, typed, session)
    if hits is None:
        return contains_folded([getattr(model, n) for n in names], typed, session)
    return _one_of(model, hits)


def _one_of(model: type, hits: list[Any]) -> ColumnElement:
    """``model``'s id among the ids ``hits`` (SELECTs) give: one IN, over a UNION if several."""
    return model.id.in_(hits[0] if len(hits) == 1 else union_all(*hits))


def _side_indexes() -> list[tuple[str, str, str]]:
    """(index, side table, column) of every trigram index on the side tables."""
    return [(f"ix_{name}_search_{c}_trgm", f"{name}_search", c) for name, cs in PG_SEARCH_COLUMNS.items() for c in cs]


def drop_side_indexes(connection: Any) -> None:
    """PostgreSQL, before a restore: drop the side tables' trigram indexes. A backup from
    before the side tables is restored with ``--clean``, which drops the ``pg_trgm``
    extension those indexes depend on (the restore would fail); the upgrade after it makes
    them anew, and a failed restore puts them back (``ensure_side_indexes``)."""
    if connection.dialect.name == "postgresql":
        for index, _table, _column in _side_indexes():
            connection.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")


def ensure_side_indexes(connection: Any) -> None:
    """PostgreSQL: the side tables' trigram indexes, made again where missing (after a
    failed restore, ``drop_side_indexes``); nothing where the side tables are absent."""
    if connection.dialect.name != "postgresql":
        return
    for index, table_name, column_name in _side_indexes():
        if connection.exec_driver_sql(f"SELECT to_regclass('{table_name}')").scalar() is not None:
            connection.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {index} ON {table_name} "
                                       f"USING gin (lower(normalize({column_name}, NFKC)) gin_trgm_ops)")


def defer_indexing(connection: Any) -> None:
    """Rows this transaction inserts into the searched tables are only noted in
    ``search_pending`` (their trigram indexing is most of an import's database time on
    PostgreSQL, and a tenth of its writer's work on SQLite); ``index_pending`` indexes them
    after. Until then search finds them by a scan of the noted rows (PostgreSQL
    ``text_hits``, SQLite ``_with_noted``). SQLite: this transaction's commit leaves the
    noted rows as they are (``_index_pending``)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT set_config('crm.search_deferred', 'on', true)")
    elif connection.dialect.name == "sqlite":
        connection.connection.info[_DEFERRED] = True


#: SQLite: in a pooled connection's ``info``, while its transaction defers indexing.
_DEFERRED = "crm_search_deferred"


#: Noted rows ``index_pending`` copies per transaction.
INDEX_BATCH = 20_000


def index_pending(batch: int = INDEX_BATCH) -> int:
    """Index the rows noted in ``search_pending``, ``batch`` of each table per short
    transaction, and forget them; returns how many. SQLite: into the FTS tables
    (``_index_noted``; each batch holds the write lock ~0.1 s). PostgreSQL: copy them into their
    side tables; returns how many were copied. The copied rows
    are locked (``FOR SHARE``) so an edit made meanwhile waits, then updates the copy (its
    trigger); a row an unfinished edit holds is skipped and stays noted for the next run,
    and noted rows another run is copying are skipped too (``SKIP LOCKED``: this never
    waits, so it cannot deadlock with an edit of several rows). The notes' statistics are
    refreshed at the end (the planner would keep judging the table by its largest size).
    An import's spans (``search_pending_span``) are copied range by range
    (``_index_spans``). 0 on other databases."""
    from app.extensions import db

    if db.engine.dialect.name == "sqlite":
        done = 0
        while True:
            with db.engine.begin() as connection:
                defer_indexing(connection)  # this commit's hook has nothing more to do
                indexed = _index_noted(connection.connection.driver_connection, batch)
            if not indexed:
                return done
            done += indexed
    if db.engine.dialect.name != "postgresql" or not has_side_tables(db.session):
        return 0
    done = 0
    for name, columns in PG_SEARCH_COLUMNS.items():
        done += _index_spans(db.engine, name, columns, batch)
        while True:
            with db.engine.begin() as connection:
                ids = connection.execute(text(
                    "DELETE FROM search_pending WHERE tbl = :tbl AND row_id IN (SELECT row_id FROM search_pending "
                    "WHERE tbl = :tbl LIMIT :batch FOR UPDATE SKIP LOCKED) RETURNING row_id"),
                    {"tbl": name, "batch": batch}).scalars().all()
                if not ids:
                    break
                done += _copy_rows(connection, name, columns, "id = ANY(:ids)", {"ids": list(ids)}, len(ids))
            if len(ids) < batch:
                break
    if done:
        with db.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE search_pending, search_pending_span")
    return done


def _index_spans(engine: Any, name: str, columns: tuple[str, ...], batch: int) -> int:
    """PostgreSQL: copy the rows of ``name``'s spans (an import statement's ids,
    ``search_pending_span``) to its side table, at most ``batch`` ids per transaction (the
    rest of a longer span stays noted for the next); returns how many were copied. Spans
    another run is copying are skipped (``SKIP LOCKED``)."""
    done = 0
    while True:
        with engine.begin() as connection:
            span = connection.execute(text(
                "DELETE FROM search_pending_span WHERE ctid = (SELECT ctid FROM search_pending_span WHERE tbl = :tbl "
                "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING low_id, high_id"), {"tbl": name}).first()
            if span is None:
                return done
            low, high = span
            if high - low >= batch:
                connection.execute(text("INSERT INTO search_pending_span (tbl, low_id, high_id) "
                                        "VALUES (:tbl, :low, :high)"), {"tbl": name, "low": low + batch, "high": high})
                high = low + batch - 1
            done += _copy_rows(connection, name, columns, "id BETWEEN :low AND :high", {"low": low, "high": high})


def noted(session: Any, name: str) -> set[int]:
    """Ids of ``name``'s rows noted for indexing and not indexed yet: one by one in
    ``search_pending`` and, on PostgreSQL, within the spans an import noted."""
    ids = set(session.scalars(select(_PENDING.c.row_id).where(_PENDING.c.tbl == name)))
    if _postgresql(session) and has_side_tables(session):
        model = table(name, column("id"))
        ids.update(session.scalars(select(model.c.id).join(_SPANS, and_(
            _SPANS.c.tbl == name, model.c.id.between(_SPANS.c.low_id, _SPANS.c.high_id)))))
    return ids


def anything_noted(connection: Any) -> bool:
    """Whether any row waits for ``index_pending`` (a note, or on PostgreSQL a span); False
    where the tables are absent (no FTS5, no pg_trgm)."""
    if connection.dialect.name == "postgresql":
        present = [name for name in ("search_pending", "search_pending_span")
                   if connection.exec_driver_sql(f"SELECT to_regclass('{name}')").scalar() is not None]
    else:
        present = list(connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'search_pending'").scalars())
    return any(connection.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {name})").scalar() for name in present)


def _copy_rows(connection: Any, name: str, columns: tuple[str, ...], where: str, params: dict[str, Any],
               expected: int | None = None) -> int:
    """Copy ``name``'s rows that ``where`` (SQL on its ``id``, with ``params``) names to its
    side table; returns how many were copied. Each row is locked ``FOR SHARE SKIP LOCKED``: an
    edit made meanwhile waits, then updates the copy (its trigger); a row an unfinished edit
    holds is noted alone for the next run (a deleted row just goes). ``expected``: how many
    rows ``where`` names, when known (all of them copied: nothing to look for)."""
    listed = ", ".join(columns)
    copied = list(connection.execute(text(
        f"WITH rows AS (SELECT id, {listed} FROM {name} WHERE {where} ORDER BY id FOR SHARE SKIP LOCKED) "
        f"INSERT INTO {name}_search (id, {listed}) SELECT id, {listed} FROM rows ON CONFLICT (id) "
        f"DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in columns)} RETURNING id"), params).scalars())
    if expected is None or len(copied) < expected:
        connection.execute(text(
            f"INSERT INTO search_pending (tbl, row_id) SELECT :tbl, id FROM {name} WHERE {where} "
            "AND NOT (id = ANY(:copied)) ON CONFLICT DO NOTHING"), {**params, "tbl": name, "copied": copied})
    return len(copied)


def index_soon() -> None:
    """After an import: ``index_pending`` in the background when the import noted anything
    (a run that only updated rows asks for nothing; the minute job catches anything left)."""
    from app.extensions import db
    from app.services import background

    if db.engine.dialect.name not in ("postgresql", "sqlite"):
        return
    with db.engine.connect() as connection:
        waiting = anything_noted(connection)
    if waiting:
        background.submit(index_pending)


# --- the navbar's quick search ------------------------------------------------------------

#: Hits a quick search shows per record type.
QUICK_LIMIT = 10
#: Milliseconds one record type's substring query may run (``CRM_QUICK_SEARCH_MS``).
QUICK_BUDGET_MS = 1500


#: Shortest folded text the trigram index can look up (3 characters make one trigram).
MIN_INDEXED_LENGTH = 3
#: Derived search structures made by migration f3b5d7e9a1c2 (FTS tables and their shadow
#: tables, trigram indexes): schema comparisons skip them (``is_search_index``).
#: SQLite FTS5 trigram tables (migration f3b5d7e9a1c2): name -> (table, its indexed columns).
FTS_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "customer_search": ("customer", ("name", "code", "contact_name", "credit_code")),
    "follow_up_search": ("follow_up", ("code", "content")),
    "contact_search": ("contact", ("code", "name", "title", "email")),
    "lead_search": ("lead", ("code", "company", "contact_name", "province", "city", "status")),
}
SEARCH_INDEX_NAMES = frozenset({
    *FTS_COLUMNS, "search_pending",
    # PostgreSQL: the trigram indexes on the record tables (f3b5d7e9a1c2, until b2d4f6a8c0e1),
    # then the side tables' keys and trigram indexes
    *(f"ix_{t}_{c}_trgm" for t, cs in PG_SEARCH_COLUMNS.items() for c in cs),
    *(f"{t}_search_pkey" for t in PG_SEARCH_COLUMNS),
    *(index for index, _table, _column in _side_indexes()),
    "search_pending_pkey", "search_pending_span",
})
_FTS_SHADOWS = ("_data", "_idx", "_content", "_docsize", "_config")


def is_search_index(name: str | None) -> bool:
    """Whether ``name`` (a table or index) is one of the search structures the migration made
    outside the models (``SEARCH_INDEX_NAMES`` and the FTS tables' shadow tables)."""
    if not name:
        return False
    return name in SEARCH_INDEX_NAMES or any(
        name == f"{table}{suffix}" for table in FTS_COLUMNS for suffix in _FTS_SHADOWS)


class SearchCutShort(Exception):
    """The substring query ran out of its time budget."""


@dataclass(frozen=True)
class Finder:
    """How one record type is searched. Every builder takes (typed text, session).

    ``exact``: indexed equality conditions (a code, a phone), tried first and cheap;
    ``broad``: the substring condition (None: nothing to match), bounded by the budget;
    ``live``: conditions every hit meets besides scope (e.g. not archived);
    ``newest``: the order of hits (an indexed column, so LIMIT can stop early).
    """

    model: type
    exact: Callable[[str, Any], list[ColumnElement]]
    broad: Callable[[str, Any], ColumnElement | None]
    live: Callable[[], list[ColumnElement]] = lambda: []
    newest: Callable[[], list[Any]] = lambda: []
    #: (typed, session, base select, limit) -> the hits through a text index, or None when
    #: no index answers (text too short, no index on this database): the scan runs then.
    indexed: Callable[[str, Any, Any, int], list[Any] | None] | None = None


@dataclass
class QuickResult:
    """One record type's hits (at most the limit), and whether the budget cut the search short."""

    items: list[Any] = field(default_factory=list)
    cut_short: bool = False


def quick_text(raw: str | None) -> str:
    """The quick search's text: ``clean_line`` (invisible characters out, spaces collapsed,
    trimmed). "" means nothing to search. Raises ``ValueError`` beyond ``MAX_QUERY_LENGTH``."""
    typed = validation.clean_line(raw)
    if len(typed) > MAX_QUERY_LENGTH:
        raise ValueError(f"longer than {MAX_QUERY_LENGTH} characters")
    return typed


def _budget_ms() -> int:
    configured = current_app.config.get("CRM_QUICK_SEARCH_MS") if has_app_context() else None
    return QUICK_BUDGET_MS if configured is None else max(int(configured), 0)


def _interrupted(exc: OperationalError) -> bool:
    """SQLite's progress handler ("interrupted") or PostgreSQL's statement_timeout (57014)."""
    return "interrupted" in str(exc.orig) or getattr(exc.orig, "sqlstate", None) == "57014"


@contextmanager
def time_budget(session: Any, milliseconds: int) -> Iterator[None]:
    """Stop the queries run inside after ``milliseconds``: ``SearchCutShort``.

    SQLite: a progress handler on the connection aborts the statement (a read leaves the
    transaction usable). PostgreSQL: ``statement_timeout`` for this transaction, inside a
    savepoint so a cancelled statement does not abort the request's transaction; the
    previous timeout is put back after.
    """
    connection = session.connection()
    dialect = connection.dialect.name
    try:
        if dialect == "sqlite":
            with _sqlite_budget(connection.connection.driver_connection, milliseconds):
                yield
        elif dialect == "postgresql":
            with _postgresql_budget(session, milliseconds):
                yield
        else:
            yield
    except OperationalError as exc:
        if not _interrupted(exc):
            raise
        raise SearchCutShort(str(exc.orig)) from None


@contextmanager
def _sqlite_budget(raw: Any, milliseconds: int) -> Iterator[None]:
    deadline = time.monotonic() + milliseconds / 1000
    raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
    try:
        yield
    finally:
        raw.set_progress_handler(None, 0)


#: The monotonic time the PostgreSQL budget running now ends (``statement_timeout`` counts
#: per statement: a search of several statements narrows it before each, ``_tighten``).
_pg_deadline: ContextVar[float | None] = ContextVar("search_pg_deadline", default=None)


@contextmanager
def _postgresql_budget(session: Any, milliseconds: int) -> Iterator[None]:
    before = session.scalar(text("SELECT current_setting('statement_timeout')"))
    token = _pg_deadline.set(time.monotonic() + milliseconds / 1000)
    try:
        with session.begin_nested():  # rolled back (timeout included) if the statement is cancelled
            session.execute(text("SELECT set_config('statement_timeout', :value, true)"),
                            {"value": str(max(milliseconds, 1))})
            yield
            session.execute(text("SELECT set_config('statement_timeout', :value, true)"), {"value": before})
    finally:
        _pg_deadline.reset(token)


def _tighten(session: Any) -> None:
    """Inside a PostgreSQL budget: the next statement may take only what is left of it."""
    deadline = _pg_deadline.get()
    if deadline is None:
        return
    left = int((deadline - time.monotonic()) * 1000)
    if left <= 0:
        raise SearchCutShort("budget spent")
    session.execute(text("SELECT set_config('statement_timeout', :value, true)"), {"value": str(left)})


#: Milliseconds a record type's substring query always gets on a shared page budget
#: (an indexed lookup takes a few; the types searched last are not starved).
QUICK_FLOOR_MS = 50


def quick_find_all(user: Any, finders: list[Finder], typed: str, session: Any) -> list[QuickResult]:
    """``quick_find`` for each of ``finders``, one ``CRM_QUICK_SEARCH_MS`` budget shared by
    all (each substring query gets what the ones before left, at least ``QUICK_FLOOR_MS``):
    the results page takes about one budget at most, not one per record type."""
    deadline = time.monotonic() + _budget_ms() / 1000
    results = []
    for finder in finders:
        left = max(round((deadline - time.monotonic()) * 1000), QUICK_FLOOR_MS)
        results.append(quick_find(user, finder, typed, session, budget_ms=left))
    return results


def quick_find(user: Any, finder: Finder, typed: str, session: Any, limit: int = QUICK_LIMIT,
               budget_ms: int | None = None) -> QuickResult:
    """The first ``limit`` records of ``finder.model`` in ``user``'s scope that ``typed``
    matches: the exact (indexed) hits when there are any, else the substring hits, newest first.

    ``typed`` is ``quick_text``'s result (not empty). The substring query (through the text
    index when there is one, ``finder.indexed``) runs under ``budget_ms`` (default
    ``CRM_QUICK_SEARCH_MS``, else ``QUICK_BUDGET_MS``); past it the result is empty and says
    ``cut_short``.
    """
    model = finder.model
    base = select(model).where(scope_clause(user, model), *finder.live())
    result = QuickResult()
    seen: set[int] = set()
    for condition in finder.exact(typed, session):
        for item in session.scalars(base.where(condition).order_by(*finder.newest()).limit(limit)):
            if item.id not in seen and len(result.items) < limit:
                seen.add(item.id)
                result.items.append(item)
    if result.items:  # a code, credit code, phone or user name matched exactly: that is what was meant
        return result
    broad = finder.broad(typed, session)
    if broad is None:
        return result
    try:
        with time_budget(session, _budget_ms() if budget_ms is None else budget_ms):
            short = len(fold(typed)) < MIN_INDEXED_LENGTH
            found = finder.indexed(typed, session, base, limit) if finder.indexed and not short else None
            through_index = found is not None
            if found is None and short and finder.indexed:  # no trigram to look up: the newest rows only
                found, result.cut_short = recent_only(session, base, broad, finder.model.id, limit)
            if found is None:
                found = session.scalars(base.where(broad).order_by(*finder.newest()).limit(limit))
            result.items = list(found)
            if through_index:  # the index's hits stay if the scan of noted rows runs out of time
                result.items = _with_noted(session, base, finder.model, broad, result.items, limit)
    except SearchCutShort:
        result.cut_short = True
    return result


def _with_noted(session: Any, base: Any, model: type, broad: ColumnElement, found: list[Any],
                limit: int) -> list[Any]:
    """SQLite: ``found`` (the FTS hits) and the rows an import noted but has not indexed yet
    (``defer_indexing``) that ``broad`` matches, by a scan of those rows alone; the newest
    ``limit``. Only while some are noted (one indexed lookup otherwise)."""
    name = model.__tablename__
    if session.get_bind().dialect.name != "sqlite" or name not in {table for table, _c in FTS_COLUMNS.values()}:
        return found
    if not session.scalar(select(select(_PENDING.c.row_id).where(_PENDING.c.tbl == name).exists())):
        return found
    noted = session.scalars(base.join(_PENDING, and_(_PENDING.c.row_id == model.id, _PENDING.c.tbl == name))
                            .where(broad).order_by(model.id.desc()).limit(limit))
    return _newest([*found, *noted], limit)


def recent_only(session: Any, base: Any, condition: ColumnElement, key: Any, limit: int) -> tuple[list[Any], bool]:
    """(hits, whether older rows were left out): a text too short for the trigram index is
    looked for among the table's newest ``RECENT_ROWS`` rows only (bounded work); on a
    table that holds more, fewer than ``limit`` hits say the search was cut short (the page
    asks for more of the name)."""
    edge = session.scalar(select(key).order_by(key.desc()).offset(RECENT_ROWS).limit(1))  # index only
    if edge is None:
        return list(session.scalars(base.where(condition).order_by(key.desc()).limit(limit))), False
    _tighten(session)
    found = list(session.scalars(base.where(condition, key > edge).order_by(key.desc()).limit(limit)))
    return found, len(found) < limit


# --- contains-search through the SQLite trigram index ------------------------------------

_FTS_TABLES: dict[str, frozenset[str]] = {}


#: SQLite: most noted rows a commit indexes itself. More (an import's, noted while it deferred)
#: are left to ``index_pending`` (asked for by the import, and the minute job), so a person's
#: save after an import never does the import's indexing; search finds them meanwhile.
COMMIT_INDEX_LIMIT = 5_000


@event.listens_for(Engine, "commit")
def _index_pending(conn: Any) -> None:
    """SQLite, as a transaction commits: index the rows noted by the insert triggers in
    ``search_pending`` (``_index_noted``), in the same transaction; unless the transaction
    deferred them (``defer_indexing``: an import's chunk) or more than ``COMMIT_INDEX_LIMIT``
    are noted. Rows written by another program (the sqlite3 shell) are indexed by the next
    commit of the application."""
    if conn.dialect.name != "sqlite":
        return
    if conn.connection.info.pop(_DEFERRED, False):
        return
    raw = conn.connection.driver_connection
    try:
        noted = raw.execute("SELECT count(*) FROM (SELECT 1 FROM search_pending LIMIT ?)",
                            (COMMIT_INDEX_LIMIT + 1,)).fetchone()[0]
    except sqlite3.OperationalError:  # not migrated yet (or no FTS5): nothing to index
        return
    if 0 < noted <= COMMIT_INDEX_LIMIT:
        _index_noted(raw)


@event.listens_for(Engine, "rollback")
def _forget_deferral(conn: Any) -> None:
    """A deferring transaction that rolls back: the connection's next one indexes again."""
    if conn.dialect.name == "sqlite" and not conn.closed and not conn.invalidated:
        conn.connection.info.pop(_DEFERRED, None)


@event.listens_for(Pool, "checkin")
def _end_deferral(dbapi_connection: Any, record: Any) -> None:
    """A connection back in the pool defers nothing, whatever its last holder asked."""
    if record is not None:
        record.info.pop(_DEFERRED, None)


def _index_noted(raw: sqlite3.Connection, batch: int | None = None) -> int:
    """SQLite: index the noted rows (the first ``batch`` of each table; None: all) in one
    ``INSERT ... SELECT`` per FTS table and forget them, all or nothing (a savepoint: never
    the failure of the commit it runs in); returns how many notes were handled. A trigger
    inserting into the FTS table row by row costs ~30 us a row (an import of 100,000
    customers: +7 s CPU); this costs ~3 us."""
    try:
        if raw.execute("SELECT 1 FROM search_pending LIMIT 1").fetchone() is None:
            return 0  # nothing to write: no write transaction (the minute job runs this on an idle database)
    except sqlite3.OperationalError:  # not migrated yet (or no FTS5): nothing to index
        return 0
    notes = "SELECT row_id FROM search_pending WHERE tbl = ?" + ("" if batch is None else " ORDER BY row_id LIMIT ?")
    done = 0
    raw.execute("SAVEPOINT crm_search_pending")
    try:
        for name, (table_name, columns) in FTS_COLUMNS.items():
            args = (table_name,) if batch is None else (table_name, batch)
            listed = ", ".join(columns)
            raw.execute(f"INSERT INTO {name}(rowid, {listed}) SELECT {', '.join(f't.{c}' for c in ('id', *columns))} "
                        f"FROM {table_name} t JOIN ({notes}) p ON p.row_id = t.id", args)
            done += raw.execute(f"DELETE FROM search_pending WHERE tbl = ? AND row_id IN ({notes})",
                                (table_name, *args)).rowcount
    except sqlite3.OperationalError:  # e.g. a read-only request meeting a busy writer: the next commit indexes
        raw.execute("ROLLBACK TO crm_search_pending")
        log.warning("Search index: pending rows left for the next commit", exc_info=True)
        done = 0
    raw.execute("RELEASE crm_search_pending")
    return done


def fts_tables(session: Any) -> frozenset[str]:
    """The FTS search tables present on ``session``'s SQLite database (empty elsewhere, or
    when the migration found no FTS5 trigram support); looked up once per database."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return frozenset()
    key = str(bind.url)
    if key not in _FTS_TABLES:
        names = session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'table'")).all()
        _FTS_TABLES[key] = frozenset(name for name in names if name in FTS_COLUMNS)
    return _FTS_TABLES[key]


def _full_width(typed: str) -> str:
    """``typed`` with its ASCII characters in their full-width forms (space -> U+3000)."""
    return "".join("\u3000" if ch == " " else chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in typed)


def fts_query(typed: str, columns: tuple[str, ...] | None = None) -> str | None:
    """The FTS5 MATCH text for "contains ``typed``" (folded, in half- and full-width spelling,
    each a quoted phrase), limited to ``columns`` when given; None below
    ``MIN_INDEXED_LENGTH`` characters (no trigram to look up)."""
    wanted = fold(typed)
    if len(wanted) < MIN_INDEXED_LENGTH:
        return None
    spellings = dict.fromkeys((wanted, _full_width(wanted)))
    phrases = " OR ".join('"' + spelling.replace('"', '""') + '"' for spelling in spellings)
    return f"{{{' '.join(columns)}}} : ({phrases})" if columns else phrases


def _fts(name: str) -> Any:
    return table(name, column("rowid"))


def _matches(name: str, query: str) -> ColumnElement:
    return literal_column(name).op("MATCH")(query)


def customer_indexed(typed: str, session: Any, base: Any, limit: int) -> list[Any] | None:
    """Customers whose name, code, contact name or credit code contain ``typed``, newest
    first, through ``customer_search`` (None: no index for this text or database);
    PostgreSQL: ``customer_clause`` through the trigram indexes (``pg_newest``)."""
    if _postgresql(session):
        clause = customer_clause(typed, session)
        if clause is None:
            return None
        scan = contains_folded([getattr(Customer, name) for name in TEXT_COLUMNS], typed, session)
        phone = query_phone(typed)
        return pg_newest(session, base, clause, Customer.id, limit,
                         scan=or_(scan, Customer.contact_phone == phone) if phone else scan)
    query = fts_query(typed)
    if query is None or "customer_search" not in fts_tables(session):
        return None
    fts = _fts("customer_search")
    return list(session.scalars(base.join(fts, fts.c.rowid == Customer.id)
                                .where(_matches("customer_search", query))
                                .order_by(fts.c.rowid.desc()).limit(limit)))


#: PostgreSQL: rows in scope the newest-first walk reads before the search goes through the
#: trigram index instead (a common text is found among the newest rows, a rare one by the index).
RECENT_ROWS = 5_000


def _postgresql(session: Any) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def pg_newest(session: Any, base: Any, condition: ColumnElement, key: Any, limit: int,
              scan: ColumnElement | None = None) -> list[Any]:
    """PostgreSQL: the rows of ``base`` meeting ``condition``, newest first by ``key`` (an id
    column), at most ``limit``. Without help the planner walks the primary key backwards
    through every row when the text is rare; here it walks at most ``RECENT_ROWS`` (the
    newest in scope), then looks the older ones up through the trigram index (the order is
    hidden from it as ``key + 0``, so it sorts the few matches instead). "The newest" are
    the table's newest ``RECENT_ROWS`` (an index-only walk), whatever the scope. ``scan``:
    the same condition on the rows' own columns, for that walk (``condition`` may go through
    a side table, ``text_hits``, whose every hit the planner could fetch first)."""
    edge = session.scalar(select(key).order_by(key.desc()).offset(RECENT_ROWS).limit(1))  # index only
    if edge is None:  # a small table: one query
        _tighten(session)
        return list(session.scalars(base.where(condition).order_by(key.desc()).limit(limit)))
    _tighten(session)
    walked = condition if scan is None else scan
    found = list(session.scalars(base.where(walked, key > edge).order_by(key.desc()).limit(limit)))
    if len(found) < limit:
        _tighten(session)
        found += session.scalars(base.where(condition, key <= edge).order_by((key + 0).desc())
                                 .limit(limit - len(found)))
    return found


def _newest(found: list[Any], limit: int) -> list[Any]:
    unique = {item.id: item for item in found}
    return [unique[pk] for pk in sorted(unique, reverse=True)[:limit]]


def _follow_up_split(typed: str, session: Any, base: Any, limit: int) -> list[Any]:
    """PostgreSQL: ``follow_up_clause`` as two queries the planner can serve from the trigram
    indexes (one OR with a correlated EXISTS it cannot): the follow-ups' own text, and the
    follow-ups of the newest matching customers."""
    own = text_match(FollowUp, ("code", "content"), typed, session)
    theirs = text_match(Customer, ("name", "code"), typed, session)
    found = pg_newest(session, base, own, FollowUp.id, limit,
                      scan=contains_folded([FollowUp.code, FollowUp.content], typed, session))
    found += pg_newest(session, base.join(Customer, Customer.id == FollowUp.customer_id), theirs, Customer.id, limit,
                       scan=contains_folded([Customer.name, Customer.code], typed, session))
    return _newest(found, limit)


def follow_up_indexed(typed: str, session: Any, base: Any, limit: int) -> list[Any] | None:
    """Follow-ups whose code or content contain ``typed`` (``follow_up_search``), and those of
    the newest customers whose name or code contain it (``customer_search``): the newest
    ``limit`` of both, or None when an index is missing or the text is too short.
    PostgreSQL: the same two parts through the trigram indexes (``_follow_up_split``)."""
    if session.get_bind().dialect.name == "postgresql":
        return _follow_up_split(typed, session, base, limit)
    own, by_customer = fts_query(typed), fts_query(typed, ("name", "code"))
    if own is None or not {"customer_search", "follow_up_search"} <= fts_tables(session):
        return None
    mine, theirs = _fts("follow_up_search"), _fts("customer_search")
    found = list(session.scalars(base.join(mine, mine.c.rowid == FollowUp.id)
                                 .where(_matches("follow_up_search", own))
                                 .order_by(mine.c.rowid.desc()).limit(limit)))
    found += session.scalars(base.join(theirs, theirs.c.rowid == FollowUp.customer_id)
                             .where(_matches("customer_search", by_customer))
                             .order_by(theirs.c.rowid.desc()).limit(limit))  # no sort of every match
    return _newest(found, limit)


def _code(typed: str) -> str:
    """A record code as stored (``C20240501001``): codes are upper-case ASCII."""
    return fold(typed).upper()


def _credit_code_shaped(code: str) -> bool:
    """18 letters and digits: a unified social credit code could be meant (GB 32100)."""
    return len(code) == 18 and code.isascii() and code.isalnum()


def customer_exact(typed: str, session: Any) -> list[ColumnElement]:
    """Indexed lookups: the code, the credit code (only for text shaped like one: when most
    customers have none the planner may judge that index useless and walk the whole table
    instead), the canonical phone (``customer`` indexes)."""
    conditions = [Customer.code == _code(typed)]
    if _credit_code_shaped(_code(typed)):
        conditions.append(Customer.credit_code == _code(typed))
    phone = query_phone(typed)
    if phone:
        conditions.append(Customer.contact_phone == phone)
    return conditions


CUSTOMERS = Finder(
    model=Customer, exact=customer_exact, broad=customer_clause,
    live=lambda: [Customer.archived_at.is_(None)], newest=lambda: [Customer.id.desc()],
    indexed=lambda typed, session, base, limit: customer_indexed(typed, session, base, limit),
)


def follow_up_exact(typed: str, session: Any) -> list[ColumnElement]:
    """Indexed lookups: the follow-up's code, its customer's code (the customer is looked up
    first: given an id, the database walks that customer's follow-ups, not the scope's)."""
    conditions = [FollowUp.code == _code(typed)]
    customer_id = session.scalar(select(Customer.id).where(Customer.code == _code(typed)))
    if customer_id is not None:
        conditions.append(FollowUp.customer_id == customer_id)
    return conditions


def follow_up_clause(typed: str, session: Any) -> ColumnElement | None:
    """Follow-ups whose code or content, or whose customer's name or code, contain ``typed``.

    The customer part is a correlated EXISTS (one primary-key lookup per follow-up read),
    not an IN over every customer: the scan walks the scoped follow-ups newest first and
    stops at the limit.
    """
    if not fold(typed):
        return None
    by_customer = select(Customer.id).where(
        Customer.id == FollowUp.customer_id, contains_folded([Customer.name, Customer.code], typed, session)).exists()
    return or_(contains_folded([FollowUp.code, FollowUp.content], typed, session), by_customer)


FOLLOW_UPS = Finder(model=FollowUp, exact=follow_up_exact, broad=follow_up_clause,
                    newest=lambda: [FollowUp.id.desc()],
                    indexed=lambda typed, session, base, limit: follow_up_indexed(typed, session, base, limit))


def user_exact(typed: str, session: Any) -> list[ColumnElement]:
    """Indexed lookup: the user name as typed (FAB's unique ``ab_user.username``)."""
    return [CrmUser.username == typed]


def user_clause(typed: str, session: Any) -> ColumnElement | None:
    """Users whose user name, first or last name, or full name (either order) contain ``typed``."""
    if not fold(typed):
        return None
    columns = [CrmUser.username, CrmUser.first_name, CrmUser.last_name, CrmUser.last_name + CrmUser.first_name,
               CrmUser.first_name + " " + CrmUser.last_name]
    return contains_folded(columns, typed, session)


USERS = Finder(model=CrmUser, exact=user_exact, broad=user_clause, newest=lambda: [CrmUser.username])


def declared_finder(rt: Any) -> Finder:
    """A declared record type's search (``app.record_types``): its code exactly (and a masked
    phone column by the canonical number, both indexed), then its unmasked text columns of the
    list, newest first."""
    from sqlalchemy import String, Text

    model = rt.model
    phones = [getattr(model, name) for name in rt.masked if name.endswith("phone")]
    texts = [getattr(model, name) for name in rt.list_columns
             if name in model.__table__.columns and name not in rt.masked
             and isinstance(model.__table__.columns[name].type, String | Text)]
    columns = tuple(column.key for column in texts)

    def exact(typed: str, session: Any) -> list[ColumnElement]:
        conditions = [model.code == _code(typed)]
        phone = query_phone(typed)
        conditions += [column == phone for column in phones] if phone else []
        return conditions

    def broad(typed: str, session: Any) -> ColumnElement | None:  # through a side table when one covers them
        return text_match(model, columns, typed, session) if fold(typed) and texts else None

    return Finder(model=model, exact=exact, broad=broad, newest=lambda: [model.id.desc()],
                  indexed=_declared_indexed(model, texts))


def _declared_indexed(model: type, texts: list[Any]) -> Callable[[str, Any, Any, int], list[Any] | None]:
    """The FTS lookup for a declared type whose table has one covering ``texts`` (SQLite);
    PostgreSQL: the substring match through its trigram indexes, if any (``pg_newest``)."""
    name = f"{model.__tablename__}_search"
    columns = tuple(column.key for column in texts)

    def indexed(typed: str, session: Any, base: Any, limit: int) -> list[Any] | None:
        if _postgresql(session):
            if not fold(typed) or not texts:
                return None
            scan = contains_folded(texts, typed, session)
            return pg_newest(session, base, text_match(model, columns, typed, session), model.id, limit, scan=scan)
        known = FTS_COLUMNS.get(name, ("", ()))[1]
        query = fts_query(typed, columns)
        if not columns or not set(columns) <= set(known) or query is None or name not in fts_tables(session):
            return None
        fts = _fts(name)
        return list(session.scalars(base.join(fts, fts.c.rowid == model.id).where(_matches(name, query))
                                    .order_by(fts.c.rowid.desc()).limit(limit)))

    return indexed
