"""The quick search's bounds: the time budget stops a long query and leaves the session usable;
exact (indexed) hits answer without the substring scan; the limit holds."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select, text

from app.extensions import appbuilder, db
from app.models import Customer
from app.services import search

#: A query that runs for many seconds on SQLite and PostgreSQL alike.
LONG = text("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000000) "
            "SELECT count(*) FROM c")


def test_time_budget_stops_a_long_query_and_the_session_goes_on(ctx: Any) -> None:
    started = time.monotonic()
    with pytest.raises(search.SearchCutShort):
        with search.time_budget(db.session, 100):
            db.session.execute(LONG).scalar()
    assert time.monotonic() - started < 5
    assert db.session.scalar(select(1)) == 1  # same transaction, still usable
    with search.time_budget(db.session, 1000):  # a quick query inside the budget is untouched
        assert db.session.scalar(select(2)) == 2
    started = time.monotonic()
    db.session.execute(text("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) "
                            "SELECT count(*) FROM c")).scalar()  # no budget left behind on the connection
    assert time.monotonic() - started < 5


def test_quick_text_trims_and_bounds() -> None:
    assert search.quick_text("  \u200bacme\u3000 ") == "acme"
    assert search.quick_text(None) == ""
    with pytest.raises(ValueError):
        search.quick_text("x" * (search.MAX_QUERY_LENGTH + 1))


def test_exact_hits_answer_alone_and_the_limit_holds(ctx: Any, make_customer: Any) -> None:
    ids = [make_customer("rep_a", name=f"Harbour {n}", contact_phone=f"1380000{n:04d}") for n in range(5)]
    code = db.session.get(Customer, ids[0]).code
    rep = appbuilder.sm.find_user(username="rep_a")
    found = search.quick_find(rep, search.CUSTOMERS, "harbour", db.session, limit=3)
    assert [c.id for c in found.items] == sorted(ids, reverse=True)[:3] and not found.cut_short
    by_code = search.quick_find(rep, search.CUSTOMERS, code.lower(), db.session, limit=3)
    assert by_code.items[0].id == ids[0]
    phone = search.quick_find(rep, search.CUSTOMERS, "138 0000 0003", db.session)
    assert [c.id for c in phone.items] == [ids[3]]


def test_scope_is_applied_before_anything(ctx: Any, make_customer: Any) -> None:
    theirs = make_customer("rep_b", name="Harbour Lights", contact_phone="13900009999")
    code = db.session.get(Customer, theirs).code
    rep = appbuilder.sm.find_user(username="rep_a")
    for typed in ("harbour", code, "139 0000 9999"):
        assert search.quick_find(rep, search.CUSTOMERS, typed, db.session).items == []
