"""Reports → Sales targets (Admin): the year grid, one save, refusals for everyone else."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models.reports import SalesTarget


@pytest.fixture
def uid(app: Any) -> Any:
    def find(name: str) -> int:
        with app.app_context():
            return appbuilder.sm.find_user(username=name).id
    return find


def test_admin_sees_and_saves_the_grid(app: Any, client: Any, auth: Any, uid: Any) -> None:
    auth.login("admin")
    page = client.get("/targets/?year=2026")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    rep = uid("rep_a")
    assert f'name="target-{rep}-12"' in text and "2026-12" in text
    saved = client.post("/targets/", data={"year": "2026", f"target-{rep}-3": "12,345.6"})
    assert saved.status_code == 302
    with app.app_context():
        rows = db.session.execute(select(SalesTarget.user_id, SalesTarget.month, SalesTarget.amount)).all()
        assert [(r[0], r[1].isoformat(), Decimal(r[2])) for r in rows] == [(rep, "2026-03-01", Decimal("12345.60"))]
    assert 'value="12345.60"' in client.get("/targets/?year=2026").get_data(as_text=True)


def test_bad_cell_shown_nothing_stored(app: Any, client: Any, auth: Any, uid: Any) -> None:
    auth.login("admin")
    rep = uid("rep_a")
    page = client.post("/targets/", data={"year": "2026", f"target-{rep}-1": "100", f"target-{rep}-2": "-3"})
    assert page.status_code == 400
    assert "negative" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(SalesTarget)).all() == []


@pytest.mark.parametrize("who", ["rep_a", "manager", "viewer"])
def test_others_refused(app: Any, client: Any, auth: Any, uid: Any, who: str) -> None:
    auth.login(who)
    assert client.get("/targets/").status_code in (302, 403)
    answer = client.post("/targets/", data={"year": "2026", f"target-{uid(who)}-1": "999999"})
    assert answer.status_code in (302, 403)
    with app.app_context():
        assert db.session.scalars(select(SalesTarget)).all() == []
