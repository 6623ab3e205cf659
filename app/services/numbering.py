"""Record codes: prefix + date + daily sequence (C20240501001, G20240501001).

The counter row is incremented with ``UPDATE ... RETURNING`` inside the caller's
transaction, so two users saving at the same moment are serialised by the database
(row lock on PostgreSQL, write lock on SQLite) and never get the same code.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.clock import local_today
from app.models.customers import CodeSequence, Customer, FollowUp

#: Record codes the CRM gives: customers C..., follow-ups G... (prefix + date + sequence).
CUSTOMER_PREFIX, FOLLOW_UP_PREFIX = "C", "G"
#: model -> its code prefix; declared record types add theirs (``app.record_types``).
PREFIXES: dict[type, str] = {Customer: CUSTOMER_PREFIX, FollowUp: FOLLOW_UP_PREFIX}


def register(model: type, prefix: str) -> None:
    """Number new ``model`` rows without a code as ``prefix`` + date + sequence.
    Raises ValueError for a prefix another type already uses (codes must say their type)."""
    taken = {p: m for m, p in PREFIXES.items() if m is not model}
    if prefix in taken:
        raise ValueError(f"code prefix {prefix!r} is taken by {taken[prefix].__name__}")
    PREFIXES[model] = prefix


def looks_generated(code: str) -> bool:
    """A code of our own shape: a file may name one that exists, never invent one."""
    return code[:1] in PREFIXES.values() and code[1:].isdigit()


def today_key() -> str:
    """Today in the CRM's zone as ``YYYYMMDD`` (``clock.local_today``): a customer saved at
    00:30 in Shanghai is numbered with that day, not with the UTC day before."""
    return local_today().strftime("%Y%m%d")


def allocate(session: Session, prefix: str, count: int = 1, day: str | None = None) -> list[str]:
    """Reserve ``count`` consecutive codes for today; 3 digits, wider past 999."""
    day = day or today_key()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(CodeSequence)
        .values(prefix=prefix, day=day, last_value=0)
        .on_conflict_do_nothing(index_elements=["prefix", "day"])
    )
    last = session.execute(
        update(CodeSequence)
        .where(CodeSequence.prefix == prefix, CodeSequence.day == day)
        .values(last_value=CodeSequence.last_value + count)
        .returning(CodeSequence.last_value)
    ).scalar_one()
    first = last - count + 1
    return [f"{prefix}{day}{n:03d}" for n in range(first, last + 1)]


def number_bound(session: Session, prefix: str, names: list[str], values: list[list[Any]],
                 blank: list[int]) -> list[str]:
    """Codes for the rows of ``values`` (bound in ``names`` order, one column ``code``) at the
    positions ``blank`` (``allocate``, in row order), written into those rows; returns every
    row's code, in order (a bulk insert's, prepared in another process)."""
    at = names.index("code")
    for index, code in zip(blank, allocate(session, prefix, len(blank)) if blank else [], strict=True):
        values[index][at] = code
    return [row[at] for row in values]


@event.listens_for(Session, "before_flush")
def _number_new_records(session: Session, flush_context: Any, instances: Any) -> None:
    """Codes for every writer (views, API, importer, sync, scripts): new rows of a
    numbered type that came without a code get the next ones, per prefix in one UPDATE."""
    by_prefix: dict[str, list[Any]] = {}
    for obj in session.new:
        prefix = PREFIXES.get(type(obj))
        if prefix is not None and not obj.code:
            by_prefix.setdefault(prefix, []).append(obj)
    for prefix, objs in by_prefix.items():
        for obj, code in zip(objs, allocate(session, prefix, len(objs)), strict=True):
            obj.code = code
