"""Opportunity screens and API (issue 13): the stage rule on form and API, the plausibility
warning, lines and competitors, the stale list, the stage admin screen, scope attacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

import views.opportunities  # noqa: F401  (registers the opportunity screen and API; see views/__init__.py)
from app import clock
from app.extensions import db
from app.models.customers import Customer
from app.models.org import CrmUser
from app.models.sales import Opportunity, Product, Stage
from app.services import opportunities
from tests.app.services.test_opportunities import clean_sales
from tests.conftest import statements_run, user_id

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clean_sales(app: Any) -> Any:
    with app.app_context():
        clean_sales()
        db.session.remove()
    yield
    with app.app_context():
        clean_sales()
        db.session.remove()


def stage_id(app: Any, code: str) -> int:
    with app.app_context():
        return db.session.scalars(select(Stage.id).where(Stage.code == code)).one()


def make_opp(app: Any, owner: str, customer_id: int, **values: Any) -> int:
    with app.app_context():
        if "stage" in values:
            values["stage"] = db.session.scalars(select(Stage).where(Stage.code == values["stage"])).one()
        item = opportunities.save_opportunity(
            {"customer": db.session.get(Customer, customer_id), "title": "ERP rollout", **values},
            db.session.get(CrmUser, user_id(owner)))
        db.session.commit()
        pk = item.id
        db.session.remove()
        return pk


def opp(app: Any, pk: int) -> dict[str, Any]:
    with app.app_context():
        item = db.session.get(Opportunity, pk)
        result = {"stage": item.stage.code, "amount": item.amount, "version": item.version,
                  "lines": len(item.lines), "competitors": len(item.competitors), "title": item.title}
        db.session.remove()
        return result


def form(app: Any, customer: int, **values: Any) -> dict[str, Any]:
    data = {"customer": str(customer), "title": "ERP rollout", "stage": str(stage_id(app, "contact")),
            "amount": "", "unit_price": "", "quantity": "", "expected_close": "", "probability_override": "",
            "owner": "", "lost_reason": "", "demand": "", "proposal_version": ""}
    data.update(values)
    return data


# --- required fields per stage: form, API, the move endpoints --------------------------------------

def test_form_refuses_a_stage_without_its_required_fields(client: Any, auth: Any, app: Any,
                                                           make_customer: Any) -> None:
    customer = make_customer("rep_a")
    auth.login("rep_a")
    page = client.post("/opportunityview/add", data=form(app, customer, stage=str(stage_id(app, "needs"))))
    assert page.status_code == 200 and "required in the stage" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Opportunity.id)) is None
    done = client.post("/opportunityview/add", data=form(app, customer, stage=str(stage_id(app, "needs")),
                                                         demand="20 seats"))
    assert done.status_code == 302
    with app.app_context():
        item = db.session.scalars(select(Opportunity)).one()
        assert item.stage.code == "needs" and item.owner_id == user_id("rep_a")


def test_form_edit_to_lost_needs_a_reason(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    pk = make_opp(app, "rep_a", customer)
    auth.login("rep_a")
    data = form(app, customer, stage=str(stage_id(app, "lost")), edit_version="1")
    page = client.post(f"/opportunityview/edit/{pk}", data=data)
    assert "Lost reason" in page.get_data(as_text=True) and opp(app, pk)["stage"] == "contact"
    data["lost_reason"] = "Budget cut"
    assert client.post(f"/opportunityview/edit/{pk}", data=data).status_code == 302
    assert opp(app, pk)["stage"] == "lost"


def test_screen_move_needs_the_fields_and_can_send_them(client: Any, auth: Any, app: Any,
                                                        make_customer: Any) -> None:
    pk = make_opp(app, "rep_a", make_customer("rep_a"))
    auth.login("rep_a")
    page = client.post(f"/opportunityview/move/{pk}", data={"stage": stage_id(app, "proposal")},
                       follow_redirects=True)
    assert "Proposal version" in page.get_data(as_text=True) and opp(app, pk)["stage"] == "contact"
    client.post(f"/opportunityview/move/{pk}", data={"stage": stage_id(app, "proposal"), "proposal_version": "v3"})
    assert opp(app, pk)["stage"] == "proposal"
    show = client.get(f"/opportunityview/show/{pk}").get_data(as_text=True)
    assert "opportunity-stage-history" in show and "Proposal" in show


def test_api_create_and_move_enforce_required_fields(client: Any, api: Any, app: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    headers = api("rep_a")
    refused = client.post("/api/v1/opportunity/", json={"customer": customer, "title": "Big deal",
                                                        "stage": stage_id(app, "proposal")}, headers=headers)
    assert refused.status_code == 422 and "proposal_version" in refused.get_json()["message"]
    created = client.post("/api/v1/opportunity/", json={"customer": customer, "title": "Big deal",
                                                        "unit_price": "100", "quantity": "3"}, headers=headers)
    assert created.status_code == 201, created.get_json()
    pk = created.get_json()["id"]
    assert created.get_json()["result"]["amount"] in ("300.00", 300.0, "300")
    moved = client.post(f"/api/v1/opportunity/{pk}/stage", json={"stage": stage_id(app, "won")}, headers=headers)
    assert moved.status_code == 200  # amount is filled: 成交 requires it
    pk2 = client.post("/api/v1/opportunity/", json={"customer": customer, "title": "Small"},
                      headers=headers).get_json()["id"]
    missing = client.post(f"/api/v1/opportunity/{pk2}/stage", json={"stage": stage_id(app, "negotiation")},
                          headers=headers)
    assert missing.status_code == 422 and "expected_close" in missing.get_json()["message"]
    put = client.put(f"/api/v1/opportunity/{pk2}", json={"version": 1, "stage": stage_id(app, "negotiation")},
                     headers=headers)
    assert put.status_code == 422 and "expected_close" in put.get_json()["message"]
    ok = client.post(f"/api/v1/opportunity/{pk2}/stage", json={
        "stage": stage_id(app, "negotiation"), "values": {"expected_close": "2026-09-30"}}, headers=headers)
    assert ok.status_code == 200, ok.get_json()
    shown = client.get(f"/api/v1/opportunity/{pk2}", headers=headers).get_json()["result"]
    assert [c["to"] for c in shown["stage_changes"]] == ["contact", "negotiation"]
    assert shown["stage_changes"][1]["days_in_stage"] == 0


# --- plausibility -------------------------------------------------------------------------------------

def test_plausibility_warning_on_form_and_api(client: Any, auth: Any, api: Any, app: Any,
                                              make_customer: Any) -> None:
    customer = make_customer("rep_a")
    make_opp(app, "rep_a", customer, stage="won", amount="1000")
    headers = api("rep_a")
    body = {"customer": customer, "title": "Huge", "amount": "9000"}
    warned = client.post("/api/v1/opportunity/", json=body, headers=headers)
    assert warned.status_code == 409 and "confirm_amount=1" in warned.get_json()["message"]["confirm"]
    assert client.post("/api/v1/opportunity/?confirm_amount=1", json=body, headers=headers).status_code == 201
    auth.login("rep_a")
    page = client.post("/opportunityview/add", data=form(app, customer, amount="9000"))
    assert page.status_code == 200 and "Amount confirmed" in page.get_data(as_text=True)
    assert client.post("/opportunityview/add", data=form(app, customer, amount="9000",
                                                         confirm_amount="y")).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Opportunity.id).where(Opportunity.amount == Decimal("9000")).limit(1))


# --- lines and competitors ----------------------------------------------------------------------------

def test_lines_and_competitors_on_the_page_and_the_api(client: Any, auth: Any, api: Any, app: Any,
                                                       make_customer: Any) -> None:
    pk = make_opp(app, "rep_a", make_customer("rep_a"))
    with app.app_context():
        product = Product(code="P-SEAT", name="CRM seat", list_price=Decimal("200"))
        db.session.add(product)
        db.session.commit()
        product_id = product.id
    headers = api("rep_a")
    line = client.post(f"/api/v1/opportunity/{pk}/line", json={"product": product_id, "quantity": "2",
                                                              "discount": "10"}, headers=headers)
    assert line.status_code == 201, line.get_json()
    shown = client.get(f"/api/v1/opportunity/{pk}", headers=headers).get_json()["result"]
    assert shown["lines"][0]["amount"] == "360.00" and opp(app, pk)["amount"] == Decimal("360.00")
    bad = client.post(f"/api/v1/opportunity/{pk}/line", json={"product": product_id, "quantity": "-1"},
                      headers=headers)
    assert bad.status_code == 422 and "quantity" in bad.get_json()["message"]
    assert client.post(f"/api/v1/opportunity/{pk}/competitor", json={"name": "Rival", "strengths": "Cheap"},
                       headers=headers).status_code == 201
    auth.login("rep_a")
    client.post(f"/opportunityview/line/{pk}", data={"product": product_id, "quantity": "1"})
    client.post(f"/opportunityview/competitor/{pk}", data={"name": "Other Rival"})
    page = client.get(f"/opportunityview/show/{pk}").get_data(as_text=True)
    assert "Rival" in page and "Other Rival" in page and "CRM seat" in page
    assert opp(app, pk)["lines"] == 2 and opp(app, pk)["amount"] == Decimal("560.00")
    line_id = shown["lines"][0]["id"]
    assert client.delete(f"/api/v1/opportunity/{pk}/line/{line_id}", headers=headers).status_code == 200
    assert opp(app, pk)["amount"] == Decimal("200.00")


# --- stale list ---------------------------------------------------------------------------------------

def test_stale_list_screen(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    with clock.frozen(T0):
        stale = make_opp(app, "rep_a", make_customer("rep_a"), stage="proposal", proposal_version="v1")
        other = make_opp(app, "rep_b", make_customer("rep_b"), stage="proposal", proposal_version="v1")
    fresh = make_opp(app, "rep_a", make_customer("rep_a"), title="Fresh", stage="proposal", proposal_version="v1")
    with app.app_context():
        codes = {pk: db.session.get(Opportunity, pk).code for pk in (stale, other, fresh)}
    auth.login("rep_a")
    page = client.get("/opportunityview/list/?stale=1").get_data(as_text=True)
    assert codes[stale] in page and codes[fresh] not in page and codes[other] not in page
    everything = client.get("/opportunityview/list/").get_data(as_text=True)
    assert codes[fresh] in everything and "opportunity-stale-link" in everything
    download = client.get("/opportunityview/export/csv?stale=1").get_data(as_text=True)
    assert codes[stale] in download and codes[fresh] not in download and codes[other] not in download


# --- scope attacks ------------------------------------------------------------------------------------

def test_rep_b_cannot_read_edit_move_or_add_to_rep_a_s_opportunity(client: Any, auth: Any, api: Any, app: Any,
                                                                    make_customer: Any) -> None:
    pk = make_opp(app, "rep_a", make_customer("rep_a"))
    with app.app_context():
        product = Product(code="P-X", name="Seat", list_price=Decimal("1"))
        db.session.add(product)
        db.session.commit()
        product_id = product.id
        line = opportunities.save_line(pk, {"product": product_id, "quantity": "1"},
                                       db.session.get(CrmUser, user_id("rep_a")))
        db.session.commit()
        line_id, code = line.id, db.session.get(Opportunity, pk).code
    before = opp(app, pk)
    headers = api("rep_b")
    assert client.get(f"/api/v1/opportunity/{pk}", headers=headers).status_code == 404
    assert code not in client.get("/api/v1/opportunity/", headers=headers).get_data(as_text=True)
    assert client.put(f"/api/v1/opportunity/{pk}", json={"version": 1, "title": "x"},
                      headers=headers).status_code == 404
    assert client.post(f"/api/v1/opportunity/{pk}/stage", json={"stage": stage_id(app, "needs"),
                       "values": {"demand": "x"}}, headers=headers).status_code == 404
    assert client.post(f"/api/v1/opportunity/{pk}/line", json={"product": product_id, "quantity": "1"},
                       headers=headers).status_code == 404
    assert client.delete(f"/api/v1/opportunity/{pk}/line/{line_id}", headers=headers).status_code == 404
    assert client.post(f"/api/v1/opportunity/{pk}/competitor", json={"name": "x"},
                       headers=headers).status_code == 404
    assert client.delete(f"/api/v1/opportunity/{pk}", headers=headers).status_code == 404
    auth.login("rep_b")
    assert client.get(f"/opportunityview/show/{pk}").status_code == 404
    assert client.get(f"/opportunityview/edit/{pk}").status_code == 404
    assert code not in client.get("/opportunityview/list/").get_data(as_text=True)
    for url, data in ((f"/opportunityview/move/{pk}", {"stage": stage_id(app, "needs"), "demand": "x"}),
                      (f"/opportunityview/line/{pk}", {"product": product_id, "quantity": "1"}),
                      (f"/opportunityview/line/{pk}/{line_id}/delete", {}),
                      (f"/opportunityview/competitor/{pk}", {"name": "x"})):
        assert client.post(url, data=data).status_code == 404, url
    assert opp(app, pk) == before


def test_read_only_users_cannot_move(client: Any, auth: Any, api: Any, app: Any, make_customer: Any) -> None:
    pk = make_opp(app, "rep_a", make_customer("rep_a"))
    auth.login("viewer")
    assert client.get(f"/opportunityview/show/{pk}").status_code == 200
    client.post(f"/opportunityview/move/{pk}", data={"stage": stage_id(app, "needs"), "demand": "x"})
    assert client.post(f"/api/v1/opportunity/{pk}/stage", json={"stage": stage_id(app, "needs"),
                       "values": {"demand": "x"}}, headers=api("viewer")).status_code in (401, 403)
    assert opp(app, pk)["stage"] == "contact"


# --- the stage admin screen -------------------------------------------------------------------------

def _stage_form(**values: Any) -> dict[str, Any]:
    data = {"code": "pilot", "label_en": "Pilot", "label_zh": "试点", "weight": "60", "is_won": "",
            "is_lost": "", "required_fields": "", "stale_days": "", "sort_order": "35", "active": "y",
            "aliases": ""}
    data.update(values)
    return {k: v for k, v in data.items() if v != "" or k in ("required_fields", "stale_days", "aliases")}


def test_stage_admin_screen(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    from app.extensions import appbuilder

    assert any(type(v).__name__ == "StageView" for v in appbuilder.baseviews), \
        "views/__init__.py must add_view(StageView) (views/opportunities.py docstring)"
    auth.login("rep_a")
    assert client.get("/stageview/list/").status_code in (302, 403)
    auth.logout()
    auth.login("admin")
    client.post("/stageview/add", data=_stage_form(required_fields="demand\npassword"))
    with app.app_context():
        assert db.session.scalar(select(Stage.id).where(Stage.code == "pilot")) is None
    client.post("/stageview/add", data=_stage_form(required_fields="demand, expected_close", weight="101"))
    with app.app_context():
        assert db.session.scalar(select(Stage.id).where(Stage.code == "pilot")) is None
    try:
        client.post("/stageview/add", data=_stage_form(required_fields="demand, expected_close"))
        with app.app_context():
            pilot = db.session.scalars(select(Stage).where(Stage.code == "pilot")).one()
            assert pilot.required_list == ["demand", "expected_close"]
        pk = make_opp(app, "rep_a", make_customer("rep_a"))
        with app.app_context():  # the new stage's rule holds at once
            with pytest.raises(opportunities.RuleViolation) as caught:
                opportunities.move_stage(pk, pilot.id, db.session.get(CrmUser, user_id("rep_a")),
                                         values={"demand": "x"})
            assert set(caught.value.errors) == {"expected_close"}
            db.session.rollback()
        client.post(f"/stageview/delete/{stage_id(app, 'contact')}")  # in use: refused
        assert stage_id(app, "contact")
    finally:
        with app.app_context():
            db.session.execute(Stage.__table__.delete().where(Stage.code == "pilot"))
            db.session.commit()


def test_days_in_stage_over_the_api(client: Any, api: Any, app: Any, make_customer: Any) -> None:
    with clock.frozen(T0):
        pk = make_opp(app, "rep_a", make_customer("rep_a"))
    with clock.frozen(T0 + timedelta(days=5, hours=1)):
        headers = api("rep_a")
        moved = client.post(f"/api/v1/opportunity/{pk}/stage", json={"stage": stage_id(app, "needs"),
                            "values": {"demand": "x"}, "version": 1}, headers=headers)
        assert moved.status_code == 200, moved.get_json()
        shown = client.get(f"/api/v1/opportunity/{pk}", headers=headers).get_json()["result"]
    assert shown["stage_changes"][-1]["days_in_stage"] == 5
    stale = client.post(f"/api/v1/opportunity/{pk}/stage", json={"stage": stage_id(app, "contact"), "version": 1},
                        headers=headers)
    assert stale.status_code == 409


def test_an_api_list_page_reads_the_same_statements_whatever_its_rows(app: Any, client: Any, api: Any,
                                                                      make_customer: Any) -> None:
    """A list column that is a property (``probability`` reads the override) comes with the
    page instead of one query per row (issue 12)."""
    customer = make_customer("rep_a")
    headers = api("rep_a")

    def page_of(rows: int) -> int:
        for _ in range(rows - len(client.get("/api/v1/opportunity/", headers=headers).get_json()["ids"])):
            make_opp(app, "rep_a", customer)
        with statements_run(app) as run:
            answer = client.get("/api/v1/opportunity/", headers=headers).get_json()
        assert len(answer["ids"]) == rows
        return len(run)

    assert page_of(2) == page_of(6)
