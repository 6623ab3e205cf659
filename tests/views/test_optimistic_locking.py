"""Two people edit the same record: the second save is refused, nothing is overwritten."""

from __future__ import annotations

from app.extensions import db
from app.models import Customer, FollowUp


def _edit(client, pk, name, version):
    return client.post(
        f"/customerview/edit/{pk}",
        data={"name": name, "contact_phone": "13812345678", "edit_version": str(version)},
        follow_redirects=True,
    )


def test_second_form_save_is_refused(app, auth, make_customer):
    pk = make_customer("rep_a", name="Original")
    first, second = app.test_client(), app.test_client()
    for client in (first, second):
        client.post("/login/", data={"username": "manager", "password": "Test-Pass-1234"})
        assert client.get(f"/customerview/edit/{pk}").status_code == 200  # both load version 1
    _edit(first, pk, "First save", 1)
    page = _edit(second, pk, "Second save", 1).get_data(as_text=True)
    assert "Someone else changed this record" in page
    with app.app_context():
        customer = db.session.get(Customer, pk)
        assert (customer.name, customer.version) == ("First save", 2)


def test_stale_api_put_is_409(app, client, api, make_customer):
    pk = make_customer("rep_a", name="Original")
    headers = api("rep_a")
    assert client.put(f"/api/v1/customer/{pk}", json={"name": "One", "version": 1}, headers=headers).status_code == 200
    stale = client.put(f"/api/v1/customer/{pk}", json={"name": "Two", "version": 1}, headers=headers)
    assert stale.status_code == 409
    assert "version" in stale.get_json()["message"]
    missing = client.put(f"/api/v1/customer/{pk}", json={"name": "Three"}, headers=headers)
    assert missing.status_code == 422
    with app.app_context():
        assert db.session.get(Customer, pk).name == "One"


def test_stale_follow_up_api_put_is_409(app, client, api, make_customer, make_follow_up):
    fu = make_follow_up(make_customer("rep_a"), "rep_a")
    headers = api("rep_a")
    assert client.put(f"/api/v1/follow_up/{fu}", json={"content": "v2", "version": 1}, headers=headers).status_code == 200
    assert client.put(f"/api/v1/follow_up/{fu}", json={"content": "v3", "version": 1}, headers=headers).status_code == 409
    with app.app_context():
        assert db.session.get(FollowUp, fu).content == "v2"
