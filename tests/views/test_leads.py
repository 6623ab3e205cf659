"""Lead screens and API: rules from the form and the API, conversion, re-run, rule admin,
and scope attacks (rep_b never sees, edits, converts or reassigns rep_a's lead)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from app.models.sales import AssignmentRule, Lead
from tests.app.services.leads_support import lead_data, make_lead, make_rule  # noqa: F401
from tests.conftest import user_id

SECRET = "Quasar Secret Trading"


@pytest.fixture(autouse=True)
def _leads(lead_data):  # noqa: F811
    yield


def _uid(app, name):
    with app.app_context():
        return user_id(name)


def _lead(app, pk):
    with app.app_context():
        item = db.session.get(Lead, pk)
        result = (item.owner_id, item.status, item.company, item.customer_id) if item else None
        db.session.remove()
        return result


def _made(app, owner, **fields):
    with app.app_context():
        pk = make_lead(owner, company=fields.pop("company", f"{SECRET} of {owner}"), **fields)
        db.session.remove()
        return pk


def _rule(app, *users, **conditions):
    with app.app_context():
        pk = make_rule("Everyone", users, **conditions)
        db.session.remove()
        return pk


def test_form_without_owner_is_assigned_by_the_rules(app, client, auth):
    _rule(app, "rep_b")
    auth.login("rep_a")
    response = client.post("/leadview/add", data={"company": "Form Co", "phone": "13812345678", "status": "new"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    with app.app_context():
        item = db.session.scalars(select(Lead).where(Lead.company == "Form Co")).one()
        assert item.owner_id == _uid(app, "rep_b") and item.assigned_by_rule_id is not None


def test_form_with_an_owner_keeps_it(app, client, auth):
    _rule(app, "rep_b")
    auth.login("rep_a")
    client.post("/leadview/add", data={"company": "Mine Co", "phone": "13812345678", "status": "new",
                                       "owner": str(_uid(app, "rep_a"))})
    with app.app_context():
        assert db.session.scalars(select(Lead.owner_id).where(Lead.company == "Mine Co")).one() == _uid(app, "rep_a")


def test_api_without_owner_is_assigned_by_the_rules(app, client, api):
    _rule(app, "rep_c")
    response = client.post("/api/v1/lead/", json={"company": "Api Co", "email": "a@example.com"},
                           headers=api("manager"))
    assert response.status_code == 201, response.get_json()
    assert _lead(app, response.get_json()["id"])[0] == _uid(app, "rep_c")


def test_api_refuses_a_bad_status_move(app, client, api):
    pk = _made(app, "rep_a")
    response = client.put(f"/api/v1/lead/{pk}", json={"status": "qualified", "version": 1}, headers=api("rep_a"))
    assert response.status_code == 422 and "status" in response.get_json()["message"]


def test_status_page_shows_history_and_convert_button(app, client, auth):
    pk = _made(app, "rep_a", status="qualified")
    auth.login("rep_a")
    page = client.get(f"/leadview/show/{pk}").get_data(as_text=True)
    assert 'id="lead-status-history"' in page and 'id="convert-lead"' in page
    assert 'id="erase-personal-data"' not in page  # a rep may not erase
    auth.logout()
    auth.login("admin")
    page = client.get(f"/leadview/show/{pk}").get_data(as_text=True)
    assert f"/erasure/?type=lead&amp;id={pk}" in page or f"/erasure/?id={pk}&amp;type=lead" in page


def test_convert_page_lists_a_duplicate_then_links_it(app, client, auth, make_customer):
    existing = make_customer("rep_a", name="Dup Co", contact_name="Li Si", contact_phone="13812345678")
    pk = _made(app, "rep_a", company="Dup Co", contact_name="Li Si", status="qualified",
                phone="13812345678")
    auth.login("rep_a")
    page = client.post(f"/leadview/convert/{pk}", data={}).get_data(as_text=True)
    assert f'value="{existing}"' in page and _lead(app, pk)[1] == "qualified"
    response = client.post(f"/leadview/convert/{pk}", data={"existing_customer_id": str(existing)})
    assert response.status_code == 302
    assert _lead(app, pk)[1:] == ("converted", "Dup Co", existing)
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Customer.id))) == 1


def test_api_convert_answers_409_with_the_duplicate_then_links(app, client, api, make_customer):
    existing = make_customer("rep_a", name="Dup Co", contact_name="Li Si", contact_phone="13812345678")
    pk = _made(app, "rep_a", company="Dup Co", contact_name="Li Si", status="qualified",
                phone="13812345678")
    headers = api("rep_a")
    response = client.post(f"/api/v1/lead/{pk}/convert", json={}, headers=headers)
    assert response.status_code == 409 and response.get_json()["message"]["duplicates"]
    response = client.post(f"/api/v1/lead/{pk}/convert", json={"existing_customer_id": existing}, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["result"]["customer_id"] == existing


def test_api_convert_refuses_bad_json(app, client, api):
    pk = _made(app, "rep_a", status="qualified")
    response = client.post(f"/api/v1/lead/{pk}/convert", data="{nope", content_type="application/json",
                           headers=api("rep_a"))
    assert response.status_code == 400


# --- scope attacks --------------------------------------------------------------------


def test_rep_b_never_sees_rep_a_lead_on_screens(app, client, auth):
    pk = _made(app, "rep_a", status="qualified")
    auth.login("rep_b")
    assert SECRET not in client.get("/leadview/list/").get_data(as_text=True)
    assert client.get(f"/leadview/show/{pk}").status_code == 404
    assert client.get(f"/leadview/edit/{pk}").status_code == 404
    assert client.get(f"/leadview/convert/{pk}").status_code == 404
    assert client.post(f"/leadview/convert/{pk}", data={}).status_code == 404
    client.post(f"/leadview/edit/{pk}", data={"company": "Stolen", "phone": "13812345678", "status": "new",
                                              "edit_version": "1"})
    client.post(f"/leadview/delete/{pk}")
    assert _lead(app, pk)[1:] == ("qualified", f"{SECRET} of rep_a", None)


def test_rep_b_never_reaches_rep_a_lead_through_the_api(app, client, api):
    pk = _made(app, "rep_a", status="qualified")
    headers = api("rep_b")
    assert client.get(f"/api/v1/lead/{pk}", headers=headers).status_code == 404
    assert SECRET not in client.get("/api/v1/lead/", headers=headers).get_data(as_text=True)
    assert client.put(f"/api/v1/lead/{pk}", json={"company": "Stolen", "version": 1},
                      headers=headers).status_code == 404
    assert client.post(f"/api/v1/lead/{pk}/convert", json={}, headers=headers).status_code == 404
    assert client.delete(f"/api/v1/lead/{pk}", headers=headers).status_code in (403, 404)  # reps may not delete
    assert _lead(app, pk)[1:] == ("qualified", f"{SECRET} of rep_a", None)


def test_rep_b_cannot_run_actions_on_rep_a_lead(app, client, auth):
    pk = _made(app, "rep_a")
    auth.login("rep_b")
    client.post("/leadview/action_post", data={"action": "rerun_rules", "rowid": [str(pk)]})
    client.post(f"/leadview/action/rerun_rules/{pk}")
    client.post("/leadview/rerun_unassigned")
    assert _lead(app, pk)[0] == _uid(app, "rep_a")


def test_a_rep_cannot_convert_into_another_reps_customer(app, client, api, make_customer):
    theirs = make_customer("rep_c", name="Other Co")
    pk = _made(app, "rep_a", status="qualified")
    response = client.post(f"/api/v1/lead/{pk}/convert", json={"existing_customer_id": theirs}, headers=api("rep_a"))
    assert response.status_code == 404
    assert _lead(app, pk)[1] == "qualified"


# --- admin ------------------------------------------------------------------------------


def test_admin_reruns_rules_for_unassigned_leads(app, client, auth):
    pk = _made(app, None)
    _rule(app, "rep_b")
    auth.login("admin")
    assert client.post("/leadview/rerun_unassigned").status_code == 302
    assert _lead(app, pk)[0] == _uid(app, "rep_b")


def test_assignment_rules_screen_is_for_admins(app, client, auth):
    auth.login("admin")
    response = client.post("/assignmentruleview/add", data={
        "name": " East ", "position": "5", "active": "y", "province": "浙江",
        "users": [str(_uid(app, "rep_a")), str(_uid(app, "rep_b"))]})
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    with app.app_context():
        rule = db.session.scalars(select(AssignmentRule)).one()
        assert rule.name == "East" and [u.username for u in rule.users] == ["rep_a", "rep_b"]
    auth.logout()
    auth.login("manager")
    assert client.get("/assignmentruleview/list/").status_code in (302, 403)
    client.post("/assignmentruleview/add", data={"name": "Mine", "position": "1"})
    with app.app_context():
        assert db.session.scalar(select(db.func.count(AssignmentRule.id))) == 1


def test_api_answers_a_lead_with_its_campaign_once(app, client, api):
    """The campaign relation has no foreign key: the API names it by ``campaign_id`` (a
    dotted column made FAB join every campaign to every lead: rows repeated, show a 500)."""
    from app.models.marketing import Campaign

    with app.app_context():
        first, second = (Campaign(code=f"MC{n}", name=f"Expo {n}", owner_id=user_id("rep_a")) for n in (1, 2))
        db.session.add_all([first, second])
        db.session.flush()
        lead = Lead(company="Campaign Co", contact_name="X", phone="13812345678", owner_id=user_id("rep_a"),
                    campaign_id=first.id)
        db.session.add(lead)
        db.session.commit()
        pk, campaign = lead.id, first.id
    headers = api("rep_a")
    shown = client.get(f"/api/v1/lead/{pk}", headers=headers)
    assert shown.status_code == 200 and shown.get_json()["result"]["campaign_id"] == campaign
    listed = client.get("/api/v1/lead/", headers=headers).get_json()
    assert listed["ids"].count(pk) == 1
