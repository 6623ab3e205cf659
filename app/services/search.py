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
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import func, literal_column, or_
from sqlalchemy.sql.elements import ColumnElement

from app.models.customers import Customer
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
    prepare(session)
    bind = session.get_bind()
    dialect, version = bind.dialect.name, getattr(bind.dialect, "server_version_info", None)
    if dialect == "postgresql":
        wanted = unicodedata.normalize("NFKC", validation.clean_line(text)).lower()  # as SQL lower() folds
    clauses = [folded(getattr(Customer, name), dialect, version).contains(wanted, autoescape=True)
               for name in TEXT_COLUMNS]
    phone = query_phone(text or "")
    if phone:
        clauses.append(Customer.contact_phone == phone)
    return or_(*clauses)
