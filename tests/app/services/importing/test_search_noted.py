"""Issue 12 on PostgreSQL: an import's chunks only note their new rows for search (the trigram
indexing was most of the database's time), whichever connection stores them; the run asks for
the indexing at its end, and the imported rows are found before and after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.extensions import appbuilder, db
from app.models import Customer
from app.services import background, search
from tests.app.services.importing.conftest import write_xlsx

HEADERS = ["客户编号", "客户名称", "联系人姓名", "联系方式"]


@pytest.fixture(autouse=True)
def _postgresql_only(app: Any) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite indexes at each commit (search._index_pending)")


def _noted(app: Any) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(text("SELECT tbl, count(*) FROM search_pending GROUP BY tbl")).all()
        db.session.remove()
    return dict(rows)


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
    assert _noted(app) == {"customer": 10, "contact": 10}
    with app.app_context():
        rep = appbuilder.sm.find_user(username="rep_a")
        assert len(search.quick_find(rep, search.CUSTOMERS, "kestrel opt", db.session).items) == 10
        assert search.index_pending() == 20
        assert db.session.scalar(select(func.count()).select_from(text("customer_search"))) == \
            db.session.scalar(select(func.count(Customer.id)))
        assert len(search.quick_find(rep, search.CUSTOMERS, "kestrel opt", db.session).items) == 10
        db.session.remove()
    assert _noted(app) == {}


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
    with app.app_context():
        names = db.session.scalars(text("SELECT name FROM customer_search WHERE name LIKE 'Osprey Valves%'")).all()
        assert len(names) == 6
        db.session.remove()
