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
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import func, literal_column, or_, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from app.models.customers import Customer, FollowUp
from app.models.org import CrmUser
from app.security.data_scope import scope_clause
from app.services import validation

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


def prepare(session: Any) -> None:
    """Make the SQL folding function available on ``session``'s connection (SQLite only).

    Called right before a search query runs on that session, so connections opened
    before this module was imported have it too; registering again is cheap and harmless.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        raw = connection.connection.driver_connection
        raw.create_function(_SQLITE_FOLD, 1, _sqlite_fold, deterministic=True)


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
    clauses = [contains_folded([getattr(Customer, name) for name in TEXT_COLUMNS], text or "", session)]
    phone = query_phone(text or "")
    if phone:
        clauses.append(Customer.contact_phone == phone)
    return or_(*clauses)


# --- the navbar's quick search ------------------------------------------------------------

#: Hits a quick search shows per record type.
QUICK_LIMIT = 10
#: Milliseconds one record type's substring query may run (``CRM_QUICK_SEARCH_MS``).
QUICK_BUDGET_MS = 1500


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


@contextmanager
def _postgresql_budget(session: Any, milliseconds: int) -> Iterator[None]:
    before = session.scalar(text("SELECT current_setting('statement_timeout')"))
    with session.begin_nested():  # rolled back (timeout included) if the statement is cancelled
        session.execute(text("SELECT set_config('statement_timeout', :value, true)"),
                        {"value": str(max(milliseconds, 1))})
        yield
        session.execute(text("SELECT set_config('statement_timeout', :value, true)"), {"value": before})


def quick_find(user: Any, finder: Finder, typed: str, session: Any, limit: int = QUICK_LIMIT) -> QuickResult:
    """The first ``limit`` records of ``finder.model`` in ``user``'s scope that ``typed``
    matches: the exact (indexed) hits when there are any, else the substring hits, newest first.

    ``typed`` is ``quick_text``'s result (not empty). The substring query runs under
    ``CRM_QUICK_SEARCH_MS`` (default ``QUICK_BUDGET_MS``); past it the result is empty and
    says ``cut_short``.
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
        with time_budget(session, _budget_ms()):
            result.items = list(session.scalars(base.where(broad).order_by(*finder.newest()).limit(limit)))
    except SearchCutShort:
        result.cut_short = True
    return result


def _code(typed: str) -> str:
    """A record code as stored (``C20240501001``): codes are upper-case ASCII."""
    return fold(typed).upper()


def customer_exact(typed: str, session: Any) -> list[ColumnElement]:
    """Indexed lookups: the code, the credit code, the canonical phone (``customer`` indexes)."""
    conditions = [Customer.code == _code(typed), Customer.credit_code == _code(typed)]
    phone = query_phone(typed)
    if phone:
        conditions.append(Customer.contact_phone == phone)
    return conditions


CUSTOMERS = Finder(
    model=Customer, exact=customer_exact, broad=customer_clause,
    live=lambda: [Customer.archived_at.is_(None)], newest=lambda: [Customer.id.desc()],
)


def follow_up_exact(typed: str, session: Any) -> list[ColumnElement]:
    """Indexed lookups: the follow-up's code, its customer's code."""
    return [FollowUp.code == _code(typed),
            FollowUp.customer_id.in_(select(Customer.id).where(Customer.code == _code(typed)))]


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
                    newest=lambda: [FollowUp.id.desc()])


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

    def exact(typed: str, session: Any) -> list[ColumnElement]:
        conditions = [model.code == _code(typed)]
        phone = query_phone(typed)
        conditions += [column == phone for column in phones] if phone else []
        return conditions

    def broad(typed: str, session: Any) -> ColumnElement | None:
        return contains_folded(texts, typed, session) if fold(typed) and texts else None

    return Finder(model=model, exact=exact, broad=broad, newest=lambda: [model.id.desc()])
