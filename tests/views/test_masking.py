"""Phone numbers are masked in lists, pages, API and downloads; revealing is explicit and recorded."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog

FULL, MASKED = "13912345678", "139****5678"


def test_list_show_and_download_are_masked(client, auth, make_customer):
    pk = make_customer("rep_a", contact_phone=FULL)
    auth.login("rep_a")
    for url in ("/customerview/list/", f"/customerview/show/{pk}", "/customerview/export/csv"):
        body = client.get(url).get_data(as_text=True)
        assert MASKED in body, url
        assert FULL not in body, url


def test_edit_form_shows_the_mask_and_keeps_the_number(app, client, auth, make_customer):
    pk = make_customer("rep_a", contact_phone=FULL)
    auth.login("rep_a")
    form = client.get(f"/customerview/edit/{pk}").get_data(as_text=True)
    assert FULL not in form and MASKED in form
    client.post(f"/customerview/edit/{pk}", data={"name": "Kept", "contact_phone": MASKED, "edit_version": "1"})
    with app.app_context():
        from app.models import Customer

        customer = db.session.get(Customer, pk)
        assert (customer.name, customer.contact_phone) == ("Kept", FULL)


def test_api_is_masked(client, api, make_customer):
    pk = make_customer("rep_a", contact_phone=FULL)
    headers = api("rep_a")
    assert client.get(f"/api/v1/customer/{pk}", headers=headers).get_json()["result"]["contact_phone"] == MASKED
    rows = client.get("/api/v1/customer/", headers=headers).get_json()["result"]
    assert [r["contact_phone"] for r in rows] == [MASKED]


def test_reveal_with_permission_is_recorded(app, client, auth, api, make_customer, totp):
    pk = make_customer("rep_a", contact_phone=FULL)
    auth.login("rep_a")
    auth.grant_step_up("rep_a")
    assert FULL not in client.get(f"/customerview/reveal/{pk}").get_data(as_text=True)
    assert FULL in client.post(f"/customerview/reveal/{pk}").get_data(as_text=True)
    totp.enrol(app, "rep_a")
    headers = {**api("rep_a"), "X-TOTP-Code": totp.code("rep_a")}
    response = client.post(f"/api/v1/customer/{pk}/contact", headers=headers)
    assert response.get_json()["contact_phone"] == FULL
    with app.app_context():
        actions = db.session.scalars(select(AuditLog.action).where(AuditLog.object_id == str(pk))).all()
    assert actions.count("reveal") == 2


def test_reveal_refused_without_permission(app, client, auth, api, make_customer):
    """Read Only users see all customers but never a full number."""
    pk = make_customer("rep_a", contact_phone=FULL)
    auth.login("viewer")
    assert FULL not in client.post(f"/customerview/reveal/{pk}", follow_redirects=True).get_data(as_text=True)
    assert client.post(f"/api/v1/customer/{pk}/contact", headers=api("viewer")).status_code == 403
    with app.app_context():
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "reveal")) is None


def test_reveal_out_of_scope_is_404(client, auth, make_customer):
    pk = make_customer("rep_c", contact_phone=FULL)
    auth.login("rep_a")
    assert client.post(f"/customerview/reveal/{pk}").status_code == 404


def test_export_neutralises_formulas(client, auth, make_customer):
    make_customer("rep_a", name="=HYPERLINK(\"http://evil\")", contact_name="+cmd|' /C calc'!A0")
    auth.login("rep_a")
    body = client.get("/customerview/export/csv").get_data().decode("utf-8-sig")
    assert "'=HYPERLINK" in body and "'+cmd" in body


def test_api_put_echoing_the_mask_keeps_the_number(app, client, api, make_customer):
    """A PUT that sends back the masked phone it was shown keeps the stored number."""
    from tests.conftest import user_id

    pk = make_customer("rep_a", contact_phone=FULL)
    with app.app_context():
        owner = user_id("rep_a")
    response = client.put(f"/api/v1/customer/{pk}", json={"name": "Echo", "contact_phone": MASKED, "owner": owner,
                                                          "version": 1}, headers=api("rep_a"))
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        from app.models import Customer

        assert db.session.get(Customer, pk).contact_phone == FULL
