"""Quick search at a million (issue 12): the contains-match goes through a text index
(SQLite FTS5 trigram tables, PostgreSQL pg_trgm), so it reads the matching rows only,
newest first up to the limit, instead of every record in scope. Same answers as the scan."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, event, select, text, update

from app.extensions import appbuilder, db
from app.models import Customer, CustomerStatusChange
from app.services import search


def _statements(run: Any) -> list[tuple[str, Any]]:
    """The SQL statements (with parameters) ``run()`` sends to the database."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def _sqlite_plans(statements: list[tuple[str, Any]]) -> list[str]:
    raw = db.session.connection().connection.driver_connection
    plans = []
    for statement, parameters in statements:
        if statement.lstrip().upper().startswith("SELECT"):
            rows = raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plans.append(" | ".join(row[-1] for row in rows))
    return plans


def _rep() -> Any:
    return appbuilder.sm.find_user(username="rep_a")


def test_contains_search_reads_the_index_not_every_customer_in_scope(ctx: Any, make_customer: Any) -> None:
    ids = [make_customer("rep_a", name=f"Lighthouse Trading {n}", contact_phone=f"1380000{n:04d}") for n in range(4)]
    make_customer("rep_b", name="Lighthouse Trading of rep_b", contact_phone="13900000001")
    found: list[Any] = []
    statements = _statements(lambda: found.append(
        search.quick_find(_rep(), search.CUSTOMERS, "lighthouse trad", db.session, limit=3)))
    assert [c.id for c in found[0].items] == sorted(ids, reverse=True)[:3] and not found[0].cut_short
    if db.engine.dialect.name == "sqlite":
        plans = _sqlite_plans([s for s in statements if "MATCH" in s[0]])
        assert plans, "the contains-search did not use the trigram index"
        for plan in plans:  # the FTS match drives; customers are then fetched by primary key only
            steps = plan.split(" | ")
            assert steps[0].startswith("SCAN customer_search VIRTUAL TABLE INDEX"), plan
            assert all("USING INTEGER PRIMARY KEY" in step for step in steps[1:]), plan
    else:  # the planner may use the trigram indexes for the folded LIKE (chosen when rows are many)
        # the side table's hits (migration b2d4f6a8c0e1): on a few rows the planner would rather
        # read them all; without that choice (as for a rare text among many) only the index finds them
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        db.session.execute(text("SET LOCAL enable_indexscan = off"))
        compiled = search.text_hits(Customer, search.TEXT_COLUMNS, "lighthouse trad", db.session)[0].compile(db.engine)
        raw = db.session.connection().connection.driver_connection  # the SQL as the driver gets it
        plan = "\n".join(row[0] for row in raw.execute(f"EXPLAIN {compiled}", compiled.params).fetchall())
        assert "ix_customer_search_name_trgm" in plan, plan  # the side table's (migration b2d4f6a8c0e1)


def test_indexed_search_finds_full_width_text_and_follows_edits_and_deletes(ctx: Any, make_customer: Any) -> None:
    wide = make_customer("rep_a", name="ＡＣＭＥ（华东）有限公司", contact_name="Li Na", contact_phone="13800001111")
    rep = _rep()
    for typed in ("acme", "ＡＣＭＥ", "Acme（华东", "acme(华东)"):
        assert [c.id for c in search.quick_find(rep, search.CUSTOMERS, typed, db.session).items] == [wide], typed
    db.session.execute(update(Customer).where(Customer.id == wide).values(name="Zenith Works"))
    db.session.commit()
    assert search.quick_find(rep, search.CUSTOMERS, "acme", db.session).items == []
    assert [c.id for c in search.quick_find(rep, search.CUSTOMERS, "zenith", db.session).items] == [wide]
    assert [c.id for c in search.quick_find(rep, search.CUSTOMERS, "li na", db.session).items] == [wide]
    db.session.execute(delete(CustomerStatusChange).where(CustomerStatusChange.customer_id == wide))
    db.session.execute(delete(Customer).where(Customer.id == wide))
    db.session.commit()
    assert search.quick_find(rep, search.CUSTOMERS, "zenith", db.session).items == []


def test_indexed_search_keeps_scope_and_takes_quotes_and_short_texts(ctx: Any, make_customer: Any) -> None:
    mine = make_customer("rep_a", name='The "Quoted" Shop', contact_phone="13800002222")
    make_customer("rep_b", name='The "Quoted" Shop of rep_b', contact_phone="13900002222")
    rep = _rep()
    for typed in ('"quoted"', 'e "quo', '"quoted" shop', "Sh"):  # "Sh": too short for a trigram, the scan answers
        assert [c.id for c in search.quick_find(rep, search.CUSTOMERS, typed, db.session).items] == [mine], typed
    assert search.quick_find(rep, search.CUSTOMERS, "of rep_b", db.session).items == []


def test_follow_ups_found_through_their_content_and_their_customer(ctx: Any, make_customer: Any,
                                                                   make_follow_up: Any) -> None:
    harbour = make_customer("rep_a", name="Harbourside Optics", contact_phone="13800003333")
    other = make_customer("rep_a", name="Plain Name", contact_phone="13800004444")
    by_name = make_follow_up(harbour, "rep_a", content="Sent the brochure")
    by_content = make_follow_up(other, "rep_a", content="Asked about harbourside delivery")
    their_customer = make_customer("rep_b", name="Harbourside of rep_b", contact_phone="13900003333")
    theirs = make_follow_up(their_customer, "rep_b", content="Harbourside visit by rep_b")
    found = search.quick_find(_rep(), search.FOLLOW_UPS, "harbourside", db.session)
    assert [f.id for f in found.items] == sorted([by_name, by_content], reverse=True)
    assert theirs not in [f.id for f in found.items]


def test_schema_comparison_differs_only_by_the_search_structures(ctx: Any) -> None:
    from app.models.base import compared
    from tests.test_migrations import _target_metadata

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_name": lambda name, kind, parent: not search.is_search_index(name),
            "include_object": compared(conn.dialect.name)})  # the stamps' keys: declared, not in the database
        assert compare_metadata(context, _target_metadata()) == []
    assert search.is_search_index("customer_search_idx") and search.is_search_index("ix_customer_name_trgm")
    assert not search.is_search_index("customer") and not search.is_search_index(None)


@pytest.mark.parametrize("typed, expected", [
    ("ab", None),
    ("acme", '"acme" OR "ａｃｍｅ"'),
    ('a"b', '"a""b" OR "ａ＂ｂ"'),
    ("华腾科技", '"华腾科技"'),
])
def test_fts_query_spells_the_text_in_both_widths(typed: str, expected: str | None) -> None:
    assert search.fts_query(typed) == expected


def test_one_time_budget_is_shared_by_the_whole_results_page(app: Any, ctx: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"now": 100.0}
    given: list[int] = []

    def slow_find(user: Any, finder: Any, typed: str, session: Any, budget_ms: int | None = None) -> Any:
        given.append(budget_ms)
        clock["now"] += 0.4  # each record type's search takes 400 ms
        return search.QuickResult()

    monkeypatch.setattr(search.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(search, "quick_find", slow_find)
    monkeypatch.setitem(app.config, "CRM_QUICK_SEARCH_MS", 1000)
    results = search.quick_find_all(_rep(), [search.CUSTOMERS] * 4, "acme", db.session)
    assert len(results) == 4
    assert given == [1000, 600, 200, search.QUICK_FLOOR_MS]  # what is left, never a fresh budget each


def test_newest_first_across_the_recent_rows_and_the_index(ctx: Any, make_customer: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    old = [make_customer("rep_a", name=f"Kestrel Foods {n}", contact_phone=f"1380000{n:04d}") for n in range(3)]
    for n in range(3):
        make_customer("rep_a", name=f"Unrelated {n}", contact_phone=f"1390000{n:04d}")
    monkeypatch.setattr(search, "RECENT_ROWS", 2)  # the 2 newest rows are the Unrelated ones
    base = select(Customer).where(Customer.owner_id == _rep().id)
    clause = search.customer_clause("kestrel", db.session)
    assert [c.id for c in search.pg_newest(db.session, base, clause, Customer.id, 2)] == sorted(old, reverse=True)[:2]
    assert [c.id for c in search.pg_newest(db.session, base, clause, Customer.id, 10)] == sorted(old, reverse=True)


def test_a_text_too_short_for_the_index_searches_the_newest_rows_and_says_so(
        ctx: Any, make_customer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    old = [make_customer("rep_a", name=f"Qx Old {n}", contact_phone=f"1380000{n:04d}") for n in range(3)]
    for n in range(3):
        make_customer("rep_a", name=f"Unrelated {n}", contact_phone=f"1390000{n:04d}")
    rep = _rep()
    monkeypatch.setattr(search, "RECENT_ROWS", 2)  # a big table: only the 2 newest rows are read for "qx"
    short = search.quick_find(rep, search.CUSTOMERS, "qx", db.session)
    assert short.items == [] and short.cut_short  # the page asks for more of the name
    longer = search.quick_find(rep, search.CUSTOMERS, "qx old", db.session)
    assert [c.id for c in longer.items] == sorted(old, reverse=True) and not longer.cut_short
    monkeypatch.setattr(search, "RECENT_ROWS", 1000)  # a table smaller than that is searched whole
    whole = search.quick_find(rep, search.CUSTOMERS, "qx", db.session)
    assert [c.id for c in whole.items] == sorted(old, reverse=True) and not whole.cut_short


def test_sqlite_index_follows_bulk_inserts_and_edits_within_one_transaction(ctx: Any, make_customer: Any) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the FTS tables are SQLite's (PostgreSQL indexes the columns themselves)")
    from app.services.bulk import insert_rows

    rep = _rep()
    from app.clock import utc_now

    owner = {"owner_id": rep.id, "version": 1, "created_on": utc_now(), "changed_on": utc_now()}
    connection = db.session.connection()  # an import's path: rows through the driver, no flush
    insert_rows(connection, Customer.__table__, [
        {"code": f"C2099{n:07d}", "name": f"Osprey Bulk {n}", "contact_phone": f"1380000{n:04d}", **owner}
        for n in range(3)])
    db.session.execute(update(Customer).where(Customer.code == "C20990000001").values(name="Renamed Heron"))
    db.session.execute(delete(Customer).where(Customer.code == "C20990000002"))
    db.session.commit()  # the commit indexes the inserted rows with their final values
    assert [c.code for c in search.quick_find(rep, search.CUSTOMERS, "osprey bulk", db.session).items] \
        == ["C20990000000"]
    assert [c.code for c in search.quick_find(rep, search.CUSTOMERS, "heron", db.session).items] == ["C20990000001"]
    assert db.session.scalar(text("SELECT count(*) FROM search_pending")) == 0
    for name in search.FTS_COLUMNS:  # the index matches its tables exactly (FTS5 checks it)
        db.session.execute(text(f"INSERT INTO {name}({name}) VALUES ('integrity-check')"))
    db.session.rollback()
