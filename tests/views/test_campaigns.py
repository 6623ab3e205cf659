"""Marketing > Campaigns through the screens and the REST API (issue 15): the campaign page
with its evaluation and scope statement, the xlsx export (masked, formula-safe), the
actions, and scope attacks on every screen and API (page, evaluation, export, writes)."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Lead
from app.models.marketing import Campaign
from app.services import campaigns
from tests.app.services.test_campaigns import clear_policies, plan, roi_fixture

pytestmark = pytest.mark.usefixtures("shanghai")


def _user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


@pytest.fixture
def south(app: Any) -> int:
    """The ROI fixture: a campaign of manager_s (South) with rep_c's and manager_s's leads."""
    with app.app_context():
        clear_policies()
        pk = roi_fixture()
        db.session.remove()
    return pk


def _east(app: Any) -> int:
    with app.app_context():
        clear_policies()
        item = campaigns.save_campaign(plan(name="East fair"), _user("manager"))
        db.session.commit()
        pk = item.id
        db.session.remove()
    return pk


def test_page_shows_figures_counted_in_scope(client: Any, auth: Any, south: int) -> None:
    auth.login("rep_c")
    page = client.get(f"/marketing/campaigns/{south}").get_data(as_text=True)
    assert 'id="eval-roi">305.0<' in page and 'id="eval-cpl">4115.22<' in page
    assert "you may see: 3 of 5 leads" in page
    assert "Submit for approval" not in page  # a rep reads only
    auth.logout()
    auth.login("manager_s")
    page = client.get(f"/marketing/campaigns/{south}").get_data(as_text=True)
    assert "5 of 5 leads" in page and 'id="eval-won-amount">60000.00<' in page
    assert "Submit for approval" in page
    assert client.get(f"/campaignview/show/{south}").status_code == 302


def test_list_and_menu(client: Any, auth: Any, south: int) -> None:
    auth.login("manager_s")
    listing = client.get("/campaignview/list/").get_data(as_text=True)
    assert "春季展会" in listing
    auth.logout()
    auth.login("rep_a")  # East: not the South campaign
    assert "春季展会" not in client.get("/campaignview/list/").get_data(as_text=True)


@pytest.mark.parametrize("who", ["rep_a", "manager", "rep_b"])
def test_other_team_cannot_reach_the_campaign(client: Any, auth: Any, api: Any, south: int, who: str) -> None:
    auth.login(who)
    assert client.get(f"/marketing/campaigns/{south}").status_code == 404
    assert client.get(f"/marketing/campaigns/{south}/evaluation.xlsx").status_code == 404
    assert client.post(f"/marketing/campaigns/{south}/submit").status_code in (403, 404)
    assert client.post(f"/marketing/campaigns/{south}/status", data={"to_status": "cancelled"}).status_code \
        in (403, 404)
    assert client.get(f"/campaignview/edit/{south}").status_code in (302, 403, 404)
    headers = api(who)
    assert client.get(f"/api/v1/campaign/{south}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/campaign/{south}/evaluation", headers=headers).status_code == 404
    for path, body in (("submit", {}), ("status", {"status": "cancelled"})):
        answer = client.post(f"/api/v1/campaign/{south}/{path}", json=body, headers=headers)
        assert answer.status_code in (403, 404)
    assert client.put(f"/api/v1/campaign/{south}", json={"note": "x", "version": 1},
                      headers=headers).status_code in (403, 404)
    listed = client.get("/api/v1/campaign/", headers=headers).get_json()
    assert south not in [row["id"] for row in listed["result"]]
    with client.application.app_context():
        assert db.session.get(Campaign, south).status == campaigns.PLANNING


def test_rep_may_not_write_through_api(client: Any, api: Any, south: int) -> None:
    headers = api("rep_c")
    assert client.post(f"/api/v1/campaign/{south}/submit", json={}, headers=headers).status_code == 403
    assert client.post("/api/v1/campaign/", json={"name": "mine"}, headers=headers).status_code == 403


def test_api_actions(client: Any, api: Any, south: int) -> None:
    headers = api("manager_s")
    assert client.post(f"/api/v1/campaign/{south}/status", json={"status": "running"},
                       headers=headers).status_code == 409
    assert client.post(f"/api/v1/campaign/{south}/status", json={"status": "flying"},
                       headers=headers).status_code == 400
    assert client.post(f"/api/v1/campaign/{south}/submit", data="nope", headers=headers,
                       content_type="application/json").status_code == 400
    answer = client.post(f"/api/v1/campaign/{south}/submit", headers=headers)  # no policy: approved
    assert answer.status_code == 200 and answer.get_json()["result"]["status"] == "approved"
    answer = client.post(f"/api/v1/campaign/{south}/status", json={"status": "running"}, headers=headers)
    assert answer.get_json()["result"]["status"] == "running"
    locked = client.put(f"/api/v1/campaign/{south}", json={"budget": "1", "version": answer.get_json()["result"]
                                                           ["version"]}, headers=headers)
    assert locked.status_code == 409
    figures = client.get(f"/api/v1/campaign/{south}/evaluation", headers=api("rep_c")).get_json()
    assert figures["result"]["roi"] == "305.0" and figures["result"]["won_amount"] == "50000.00"
    assert figures["result"]["all_leads"] == 5 and "3 of 5" in figures["note"]
    assert client.get("/api/v1/campaign/999999/evaluation", headers=headers).status_code == 404


def test_api_create_checks_rules(client: Any, api: Any) -> None:
    headers = api("manager")
    bad = client.post("/api/v1/campaign/", json={"name": "x", "starts_on": "2026-05-02", "ends_on": "2026-05-01",
                                                 "budget": -1}, headers=headers)
    assert bad.status_code == 422
    good = client.post("/api/v1/campaign/", json={"name": "x", "budget": "100.5", "form": "online"}, headers=headers)
    assert good.status_code == 201, good.get_json()
    assert good.get_json()["result"]["code"].startswith("MC")


def test_export_is_scoped_masked_and_formula_safe(client: Any, auth: Any, app: Any, south: int) -> None:
    with app.app_context():
        lead = db.session.scalar(select(Lead).where(Lead.company == "丙公司"))
        lead.company = '=HYPERLINK("http://evil","x")'
        db.session.commit()
    auth.login("rep_c")
    answer = client.get(f"/marketing/campaigns/{south}/evaluation.xlsx")
    assert answer.status_code == 200
    assert "attachment" in answer.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(answer.data))
    figures, leads = book.worksheets
    values = {row[0]: row[1] for row in figures.iter_rows(values_only=True)}
    assert values["ROI (%)"] == "305.0" and values["Cost per lead"] == "4115.22"
    rows = list(leads.iter_rows(values_only=True))[1:]
    assert len(rows) == 3  # rep_c's leads only
    assert all("13900001111" not in str(row) for row in rows)
    assert any(str(row[1]).startswith("'=HYPERLINK") for row in rows)


def test_read_only_reads_but_cannot_export(client: Any, auth: Any, south: int) -> None:
    auth.login("viewer")
    assert client.get(f"/marketing/campaigns/{south}").status_code == 200
    assert client.get(f"/marketing/campaigns/{south}/evaluation.xlsx").status_code in (302, 403)


def test_screen_actions(client: Any, auth: Any, app: Any) -> None:
    pk = _east(app)
    auth.login("manager")
    client.post(f"/marketing/campaigns/{pk}/submit", follow_redirects=True)
    page = client.post(f"/marketing/campaigns/{pk}/status", data={"to_status": "done"},
                       follow_redirects=True).get_data(as_text=True)
    assert "cannot go from" in page
    client.post(f"/marketing/campaigns/{pk}/status", data={"to_status": "running"})
    with app.app_context():
        assert db.session.get(Campaign, pk).status == campaigns.RUNNING


def test_lead_api_refuses_a_campaign_out_of_scope(client: Any, api: Any, app: Any, south: int) -> None:
    east = _east(app)
    headers = api("rep_a")
    refused = client.post("/api/v1/lead/", json={"company": "X", "phone": "13800000009", "campaign": south},
                          headers=headers)
    assert refused.status_code in (403, 404, 422)
    made = client.post("/api/v1/lead/", json={"company": "Y", "phone": "13800000010", "campaign": east},
                       headers=headers)
    assert made.status_code == 201, made.get_json()
    with app.app_context():
        assert db.session.scalar(select(Lead.campaign_id).where(Lead.company == "Y")) == east
        assert db.session.scalar(select(Lead.id).where(Lead.company == "X")) is None


def test_lead_form_refuses_a_campaign_out_of_scope(client: Any, auth: Any, app: Any, south: int) -> None:
    auth.login("rep_a")
    page = client.post("/leadview/add", data={"company": "Z", "phone": "13800000011", "status": "new",
                                          "campaign": str(south)}, follow_redirects=True).get_data(as_text=True)
    assert "No campaign" in page
    with app.app_context():
        assert db.session.scalar(select(Lead.id).where(Lead.company == "Z")) is None


def test_money_is_not_float(app: Any) -> None:
    with app.app_context():
        item = campaigns.save_campaign(plan(budget="0.10", actual_cost="0.30"), _user("manager"))
        assert isinstance(item.budget, Decimal) and item.actual_cost == Decimal("0.30")
        assert item.starts_on == date(2026, 3, 1)
        db.session.rollback()


@pytest.mark.parametrize("who", ["rep_c", "manager_s", "viewer"])
def test_marketing_menu_lists_campaigns(client: Any, auth: Any, who: str) -> None:
    auth.login(who)
    assert "/campaignview/list/" in client.get("/").get_data(as_text=True)


def test_pages_in_chinese(client: Any, auth: Any, south: int) -> None:
    auth.login("manager_s")
    client.get("/lang/zh")
    page = client.get(f"/marketing/campaigns/{south}").get_data(as_text=True)
    assert "效果评估" in page and "投入产出比" in page  # after the lead merges campaigns.tsv
