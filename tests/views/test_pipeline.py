"""The pipeline screens: the kanban page, a drag (POST /pipeline/move) and the forecast page.

Attacks: a rep moving a colleague's opportunity, drops into a stage whose required fields
are missing, malformed or stale moves, a reader without write access, bad filters."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models.sales import Opportunity, OpportunityStageChange
from tests.app.services.test_pipeline import _clean_opportunities, add_opportunity, stage_id  # noqa: F401
from tests.conftest import user_id


def opportunity(app: Any, owner: str, stage: str, amount: str | None, **fields: Any) -> dict[str, Any]:
    """Create one; returns its id, code, version and the stage ids by code."""
    with app.app_context():
        pk = add_opportunity(owner, stage, amount, **fields)
        item = db.session.get(Opportunity, pk)
        found = {"id": pk, "code": item.code, "version": item.version,
                 **{code: stage_id(code) for code in ("contact", "needs", "proposal", "negotiation", "won", "lost")}}
        db.session.remove()
        return found


def state(app: Any, pk: int) -> tuple[int, int, int]:
    """(stage id, version, stage history rows) as stored."""
    with app.app_context():
        item = db.session.get(Opportunity, pk)
        changes = db.session.scalar(select(func.count(OpportunityStageChange.id)).where(
            OpportunityStageChange.opportunity_id == pk))
        found = (item.stage_id, item.version, changes)
        db.session.remove()
        return found


def test_kanban_page_shows_scoped_columns_totals_and_cards(app, client, auth):
    mine = opportunity(app, "rep_a", "contact", "1234.50", title="Servers", close=date(2024, 5, 31))
    theirs = opportunity(app, "rep_b", "contact", "999999.00", title="Colleague's deal")
    auth.login("rep_a")
    response = client.get("/pipeline/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert mine["code"] in page and "Servers" in page and "1,234.50" in page and "2024-05-31" in page
    assert theirs["code"] not in page and "999,999.00" not in page and "Colleague" not in page
    assert "123.45" in page  # weighted: 10 % of 1,234.50
    assert 'src="/static/vendor/sortablejs/Sortable.min.js"' in page
    assert not re.search(r'<script[^>]+src="(https?:)?//', page)  # no CDN
    assert 'data-may-move="1"' in page
    assert f'href="/opportunityview/show/{mine["id"]}"' in page


def test_sortable_is_served_locally_with_its_licence(client):
    script = client.get("/static/vendor/sortablejs/Sortable.min.js")
    assert script.status_code == 200 and b"Sortable 1.15" in script.data
    assert b"MIT License" in client.get("/static/vendor/sortablejs/LICENSE").data


def test_bad_filter_is_refused_with_a_message(app, client, auth):
    theirs = opportunity(app, "rep_b", "contact", "10.00")
    with app.app_context():
        colleague = user_id("rep_b")
    auth.login("rep_a")
    response = client.get(f"/pipeline/?owner={colleague}")
    assert response.status_code == 400 and "Choose an owner from the list." in response.get_data(as_text=True)
    assert theirs["code"] not in response.get_data(as_text=True)
    month = client.get("/pipeline/?close_month=2024-99")
    assert month.status_code == 400 and "YYYY-MM" in month.get_data(as_text=True)


def test_rep_cannot_move_a_colleagues_opportunity(app, client, auth):
    theirs = opportunity(app, "rep_a", "contact", "10.00", demand="x")
    before = state(app, theirs["id"])
    auth.login("rep_b")
    response = client.post("/pipeline/move", json={"id": theirs["id"], "stage_id": theirs["needs"],
                                                   "version": theirs["version"]})
    assert response.status_code == 404
    body = response.get_json()
    assert body["ok"] is False and body["message"] == "Record not found."
    assert state(app, theirs["id"]) == before


def test_drop_into_a_stage_with_missing_fields_names_them_and_moves_nothing(app, client, auth):
    item = opportunity(app, "rep_a", "contact", "10.00")
    before = state(app, item["id"])
    auth.login("rep_a")
    response = client.post("/pipeline/move", json={"id": item["id"], "stage_id": item["needs"],
                                                   "version": item["version"]})
    assert response.status_code == 422
    body = response.get_json()
    assert [(f["name"], f["label"], f["kind"]) for f in body["fields"]] == [
        ("demand", "Demand description", "textarea")]
    assert "Demand description" in body["errors"]["demand"]
    assert state(app, item["id"]) == before


def test_resubmitting_with_the_fields_moves_and_records_history(app, client, auth):
    item = opportunity(app, "rep_a", "contact", "1000.00")
    auth.login("rep_a")
    response = client.post("/pipeline/move", json={"id": item["id"], "stage_id": item["needs"],
                                                   "version": item["version"], "values": {"demand": "Two servers"}})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["ok"] and body["stage_id"] == item["needs"] and body["version"] == item["version"] + 1
    columns = {c["stage_id"]: c for c in body["columns"]}
    assert columns[item["needs"]]["count"] == 1 and columns[item["needs"]]["weighted"] == "300.00"
    assert columns[item["contact"]]["count"] == 0
    assert state(app, item["id"]) == (item["needs"], item["version"] + 1, 1)
    with app.app_context():
        change = db.session.scalars(select(OpportunityStageChange)).one()
        assert (change.from_stage_id, change.to_stage_id, change.changed_by_id) == (
            item["contact"], item["needs"], user_id("rep_a"))
        assert db.session.get(Opportunity, item["id"]).demand == "Two servers"
        db.session.remove()


def test_drag_to_won_needs_the_amount(app, client, auth):
    item = opportunity(app, "rep_a", "negotiation", None, close=date(2024, 5, 1))
    auth.login("rep_a")
    refused = client.post("/pipeline/move", json={"id": item["id"], "stage_id": item["won"],
                                                  "version": item["version"]})
    assert refused.status_code == 422
    assert [f["name"] for f in refused.get_json()["fields"]] == ["amount"]
    bad = client.post("/pipeline/move", json={"id": item["id"], "stage_id": item["won"], "version": item["version"],
                                              "values": {"amount": "lots"}})
    assert bad.status_code == 422 and bad.get_json()["errors"]["amount"] == "Not a valid amount."
    moved = client.post("/pipeline/move", json={"id": item["id"], "stage_id": item["won"],
                                                "version": item["version"], "values": {"amount": "1,500.00"}})
    assert moved.status_code == 200
    won = {c["stage_id"]: c for c in moved.get_json()["columns"]}[item["won"]]
    assert (won["total"], won["weighted"]) == ("1500.00", "1500.00")


@pytest.mark.parametrize("body", [
    "not json", "[1, 2]", "null", '{"id": 1}', '{"id": "abc", "stage_id": 1, "version": 1}',
    '{"id": true, "stage_id": 1, "version": 1}', '{"id": 1.5, "stage_id": 1, "version": 1}',
    '{"id": 99999999999999999999, "stage_id": 1, "version": 1}',
    '{"id": 1, "stage_id": 1, "version": 1, "values": [1]}',
    '{"id": 1, "stage_id": 1, "version": 1, "values": {"demand": {"a": 1}}}',
])
def test_malformed_moves_get_a_clear_400(app, client, auth, body):
    auth.login("rep_a")
    response = client.post("/pipeline/move", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["ok"] is False and response.get_json()["message"]


def test_unknown_stage_stale_version_and_foreign_fields_are_4xx_json(app, client, auth):
    item = opportunity(app, "rep_a", "contact", "10.00", demand="x")
    before = state(app, item["id"])
    auth.login("rep_a")
    unknown = client.post("/pipeline/move", json={"id": item["id"], "stage_id": 987654, "version": item["version"]})
    assert unknown.status_code == 422 and "stage" in unknown.get_json()["errors"]
    stale = client.post("/pipeline/move", json={"id": item["id"], "stage_id": item["needs"],
                                                "version": item["version"] - 1})
    assert stale.status_code == 409 and "version" in stale.get_json()["errors"]
    foreign = client.post("/pipeline/move", json={"id": item["id"], "stage_id": item["needs"],
                                                  "version": item["version"], "values": {"owner_id": "1"}})
    assert foreign.status_code == 422 and "owner_id" in foreign.get_json()["errors"]
    assert state(app, item["id"]) == before


def test_reader_without_write_access_cannot_move(app, client, auth):
    item = opportunity(app, "rep_a", "contact", "10.00", demand="x")
    auth.login("viewer")
    page = client.get("/pipeline/")
    assert page.status_code == 200 and 'data-may-move="0"' in page.get_data(as_text=True)
    response = client.post("/pipeline/move", json={"id": item["id"], "stage_id": item["needs"],
                                                   "version": item["version"]})
    assert response.status_code == 403 and response.get_json()["ok"] is False
    assert state(app, item["id"])[0] == item["contact"]


def test_anonymous_move_is_refused(app, client):
    item = opportunity(app, "rep_a", "contact", "10.00", demand="x")
    response = client.post("/pipeline/move", json={"id": item["id"], "stage_id": item["needs"], "version": 1})
    assert response.status_code in (302, 401)
    assert state(app, item["id"])[0] == item["contact"]


def test_move_needs_the_pages_csrf_token(app, client, auth, monkeypatch):
    item = opportunity(app, "rep_a", "contact", "10.00", demand="x")
    auth.login("rep_a")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    move = {"id": item["id"], "stage_id": item["needs"], "version": item["version"]}
    assert client.post("/pipeline/move", json=move).status_code == 400
    assert state(app, item["id"])[0] == item["contact"]
    token = re.search(r'data-csrf="([^"]+)"', client.get("/pipeline/").get_data(as_text=True)).group(1)
    accepted = client.post("/pipeline/move", json=move, headers={"X-CSRFToken": token})
    assert accepted.status_code == 200, accepted.get_data(as_text=True)


def test_forecast_page_by_owner_and_department(app, client, auth):
    opportunity(app, "rep_a", "contact", "1000.00", close=date(2024, 5, 3))
    opportunity(app, "rep_b", "negotiation", "100.00", close=date(2024, 6, 3))
    opportunity(app, "rep_c", "contact", "5000.00", close=date(2024, 5, 3))
    auth.login("manager")
    page = client.get("/pipeline/forecast?start=2024-05&months=2").get_data(as_text=True)
    assert "Rep_A Test" in page and "Rep_B Test" in page and "Rep_C" not in page
    assert "100.00" in page and "80.00" in page and "180.00" in page and "500.00" not in page
    by_department = client.get("/pipeline/forecast?group_by=department&start=2024-05&months=2")
    text = by_department.get_data(as_text=True)
    assert by_department.status_code == 200 and "East Team" in text and "South" not in text
    for bad in ("group_by=region", "months=0", "months=x", "start=2024-5x"):
        refused = client.get(f"/pipeline/forecast?{bad}")
        assert refused.status_code == 400 and 'id="forecast-error"' in refused.get_data(as_text=True)


def test_pages_render_in_chinese(app, client, auth):
    opportunity(app, "rep_a", "contact", "10.00")
    auth.login("rep_a")
    client.get("/lang/zh")
    board = client.get("/pipeline/")
    assert board.status_code == 200 and "接触" in board.get_data(as_text=True)
    assert client.get("/pipeline/forecast").status_code == 200
