"""Issue 12: an import's chunks only note their new rows for search (on PostgreSQL the trigram
indexing was most of the database's time, on SQLite the FTS indexing a tenth of the writer's
work), whichever connection stores them; the run asks for the indexing at its end, and the
imported rows are found before and after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app.clock import utc_now
from app.extensions import appbuilder, db
from app.models import Customer, FollowUp
from app.services import background, search
from tests.app.services.importing.conftest import write_xlsx

HEADERS = ["客户编号", "客户名称", "联系人姓名", "联系方式"]


def _in_index(app: Any, name: str) -> int:
    """How many customers named ``name...`` the search index holds (not the customer table)."""
    with app.app_context():
        if db.engine.dialect.name == "sqlite":  # the FTS table's own index, not its content table
            found = db.session.scalar(text("SELECT count(*) FROM customer_search WHERE customer_search MATCH :q"),
                                      {"q": f'name : "{name}"'})
        else:
            found = db.session.scalar(text("SELECT count(*) FROM customer_search WHERE name LIKE :q"),
                                      {"q": f"{name}%"})
        db.session.remove()
    return found


def _noted(app: Any) -> dict[str, int]:
    with app.app_context():
        rows = {name: len(search.noted(db.session, name)) for name in ("customer", "contact", "follow_up")}
        db.session.remove()
    return {name: count for name, count in rows.items() if count}


@pytest.mark.parametrize("mode", ["0", "process"])
def test_an_import_notes_its_rows_and_asks_for_their_indexing(app: Any, run_job: Any, tmp_path: Path,
                                                              monkeypatch: Any, mode: str) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 4)
    monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", mode)
    asked = []
    monkeypatch.setattr(search, "index_soon", lambda: asked.append(True))
    rows = [["", f"Kestrel Optics {n:02d}", f"Qin {n}", f"1392{mode == '0':d}0{n:05d}"] for n in range(10)]
    job = run_job("rep_a", write_xlsx(tmp_path / "k.xlsx", {"s": [HEADERS, *rows]}))
    assert (job.status, job.created) == ("done", 10) and asked == [True]
    assert _noted(app) == {"customer": 10, "contact": 10} and _in_index(app, "Kestrel Optics") == 0
    with app.app_context():
        rep = appbuilder.sm.find_user(username="rep_a")
        assert len(search.quick_find(rep, search.CUSTOMERS, "kestrel opt", db.session).items) == 10
        assert search.index_pending() == 20
        assert len(search.quick_find(rep, search.CUSTOMERS, "kestrel opt", db.session).items) == 10
        db.session.remove()
    assert _noted(app) == {} and _in_index(app, "Kestrel Optics") == 10


def test_a_run_that_noted_nothing_starts_no_indexing(app: Any, run_job: Any, tmp_path: Path,
                                                     monkeypatch: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Heron Pumps")
    with app.app_context():
        code = db.session.get(Customer, pk).code
        db.session.remove()
    started, submit = [], background.submit
    monkeypatch.setattr(background, "submit", lambda func, *a, **k: (started.append(func), submit(func, *a, **k)))
    job = run_job("rep_a", write_xlsx(tmp_path / "u.xlsx", {"s": [HEADERS, [code, "Heron Pumps Ltd", "Qi Lan", "13940001234"]]}),
                  mode="update")
    assert (job.status, job.updated, job.unchanged, job.rejected) == ("done", 1, 0, 0), vars(job)
    assert _noted(app) == {}
    assert search.index_pending not in started  # update only: the trigger copied the change


def test_the_run_indexes_what_it_noted_at_its_end(app: Any, run_job: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 4)
    rows = [["", f"Osprey Valves {n:02d}", f"He {n}", f"1393000{n:04d}"] for n in range(6)]
    job = run_job("rep_a", write_xlsx(tmp_path / "o.xlsx", {"s": [HEADERS, *rows]}))
    assert job.created == 6 and _noted(app) == {}  # inline in tests: the job ran at the run's end
    assert _in_index(app, "Osprey Valves") == 6


def test_a_noted_follow_up_is_found_before_its_indexing(app: Any, make_customer: Any) -> None:
    """The quick search's follow-ups, whose index lookup misses what is only noted."""
    customer = make_customer("rep_a", name="Teal Works")
    with app.app_context():
        rep = appbuilder.sm.find_user(username="rep_a")
        search.defer_indexing(db.session.connection())  # as an import's chunk does
        db.session.add(FollowUp(customer_id=customer, owner_id=rep.id, content="Quoted the merganser valves"))
        db.session.commit()
        assert _noted(app) == {"follow_up": 1}
        found = search.quick_find(rep, search.FOLLOW_UPS, "merganser valv", db.session).items
        assert [item.content for item in found] == ["Quoted the merganser valves"]
        assert search.index_pending() == 1
        assert len(search.quick_find(rep, search.FOLLOW_UPS, "merganser valv", db.session).items) == 1
        db.session.remove()


def test_a_deferral_ends_with_its_transaction(app: Any) -> None:
    """Rolled back or committed, the next transaction on the same connection indexes its rows."""
    insert = text("INSERT INTO customer (code, name, contact_phone, owner_id, created_on, changed_on, version) "
                  "VALUES (:code, :name, '13800006001', :owner, :now, :now, 1)")
    with app.app_context():
        owner, now = appbuilder.sm.find_user(username="rep_a").id, utc_now()
        with db.engine.connect() as connection:
            search.defer_indexing(connection)
            connection.execute(insert, {"code": "C20261203901", "name": "Avocet Rolled", "owner": owner, "now": now})
            connection.rollback()
            connection.execute(insert, {"code": "C20261203902", "name": "Avocet Saved", "owner": owner, "now": now})
            connection.commit()
    assert _noted(app) == {} and _in_index(app, "Avocet Saved") == 1 and _in_index(app, "Avocet Rolled") == 0


def _sqlite_only(app: Any) -> None:
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("PostgreSQL indexes a saved row in its own statement (side tables)")


def _deferred_customers(app: Any, names: list[str]) -> None:
    """Customers inserted as an import's chunk inserts them: noted, not indexed."""
    with app.app_context():
        owner = appbuilder.sm.find_user(username="rep_a").id
        search.defer_indexing(db.session.connection())
        db.session.add_all([Customer(name=name, contact_phone=f"1380000{n:04d}", owner_id=owner)
                            for n, name in enumerate(names)])
        db.session.commit()
        db.session.remove()


def test_a_save_after_an_import_leaves_its_indexing_to_the_background(app: Any, monkeypatch: Any) -> None:
    """SQLite: a person's commit indexes what it noted itself, but not an import's many noted
    rows (``COMMIT_INDEX_LIMIT``); ``index_pending`` does, a batch per transaction."""
    _sqlite_only(app)
    monkeypatch.setattr(search, "COMMIT_INDEX_LIMIT", 3)
    _deferred_customers(app, [f"Shoveler Pumps {n}" for n in range(5)])
    with app.app_context():  # an ordinary save after it

        rep = appbuilder.sm.find_user(username="rep_a")
        db.session.add(Customer(name="Shoveler Hall", contact_phone="13800009999", owner_id=rep.id))
        db.session.commit()
        assert _noted(app) == {"customer": 6, "contact": 6} and _in_index(app, "Shoveler") == 0
        assert len(search.quick_find(rep, search.CUSTOMERS, "shoveler", db.session).items) == 6
        assert search.index_pending(batch=2) == 12
        db.session.execute(text("INSERT INTO customer_search(customer_search, rank) VALUES ('integrity-check', 1)"))
        db.session.remove()
    assert _noted(app) == {} and _in_index(app, "Shoveler") == 6


def test_a_deferral_never_outlives_its_connection_s_turn(app: Any) -> None:
    """SQLite: asked for on a connection that then goes back to the pool unused, it is gone."""
    _sqlite_only(app)
    with app.app_context():
        connection = db.engine.connect()
        search.defer_indexing(connection)
        pooled = connection.connection.info  # what the pool keeps with that connection
        connection.close()
        assert not pooled
        for _ in range(3):  # whichever pooled connection the next saves get
            owner = appbuilder.sm.find_user(username="rep_a").id
            db.session.add(Customer(name=f"Gadwall Mills {_}", contact_phone=f"1380000800{_}", owner_id=owner))
            db.session.commit()
        db.session.remove()
    assert _noted(app) == {} and _in_index(app, "Gadwall Mills") == 3


def test_the_index_hits_stay_when_the_noted_rows_scan_runs_out_of_time(app: Any, make_customer: Any,
                                                                       monkeypatch: Any) -> None:
    make_customer("rep_a", name="Garganey Foods")

    def out_of_time(*args: Any) -> None:
        raise search.SearchCutShort

    monkeypatch.setattr(search, "_with_noted", out_of_time)
    with app.app_context():
        rep = appbuilder.sm.find_user(username="rep_a")
        result = search.quick_find(rep, search.CUSTOMERS, "garganey", db.session)
        assert [item.name for item in result.items] == ["Garganey Foods"] and result.cut_short
        db.session.remove()
