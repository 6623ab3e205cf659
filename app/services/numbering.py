"""Record codes: prefix + date + daily sequence (C20240501001, G20240501001).

The counter row is incremented with ``UPDATE ... RETURNING`` inside the caller's
transaction, so two users saving at the same moment are serialised by the database
(row lock on PostgreSQL, write lock on SQLite) and never get the same code.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.clock import local_today
from app.models.customers import CodeSequence

#: Record codes the CRM gives: customers C..., follow-ups G... (prefix + date + sequence).
CUSTOMER_PREFIX, FOLLOW_UP_PREFIX = "C", "G"


def looks_generated(code: str) -> bool:
    """A code of our own shape: a file may name one that exists, never invent one."""
    return code[:1] in (CUSTOMER_PREFIX, FOLLOW_UP_PREFIX) and code[1:].isdigit()


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
