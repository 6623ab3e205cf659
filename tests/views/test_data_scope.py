"""Attacks on the data scope: every route must hide out-of-scope customers.

Org: rep_a in East, rep_b in East Team (a sub-department of East), rep_c in South;
``manager`` manages East (so East Team too), ``manager_s`` South.
"""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Customer

# (actor, owner of the target record, may the actor reach it?)
READERS = [
    ("rep_a", "rep_a", True),
    ("rep_a", "rep_b", False),
    ("rep_a", "rep_c", False),
    ("manager", "rep_b", True),
    ("manager", "rep_a", True),
    ("manager", "rep_c", False),
    ("manager_s", "rep_a", False),
    ("admin", "rep_c", True),
    ("service", "rep_c", True),
    ("viewer", "rep_a", True),
]
WRITERS = [case for case in READERS if case[0] not in ("service", "viewer")]
SECRET = "Zeta Confidential Holdings"


@pytest.fixture
def target(make_customer):
    def make(owner):
        return make_customer(owner, name=f"{SECRET} of {owner}", contact_phone="13900001111")

    return make


def _archived(app, pk):
    with app.app_context():
        value = db.session.get(Customer, pk).archived_at
        db.session.remove()
        return value is not None


def _name(app, pk):
    with app.app_context():
        value = db.session.get(Customer, pk).name
        db.session.remove()
        return value


@pytest.mark.parametrize("actor,owner,visible", READERS)
def test_list_shows_only_scope(client, auth, target, actor, owner, visible):
    target(owner)
    auth.login(actor)
    page = client.get("/customerview/list/").get_data(as_text=True)
    assert (SECRET in page) is visible


@pytest.mark.parametrize("actor,owner,visible", READERS)
def test_show_page(client, auth, target, actor, owner, visible):
    pk = target(owner)
    auth.login(actor)
    response = client.get(f"/customerview/show/{pk}")
    assert response.status_code == (200 if visible else 404)
    assert (SECRET in response.get_data(as_text=True)) is visible


@pytest.mark.parametrize("actor,owner,visible", WRITERS)
def test_edit_form_and_save(app, client, auth, target, actor, owner, visible):
    pk = target(owner)
    auth.login(actor)
    assert client.get(f"/customerview/edit/{pk}").status_code == (200 if visible else 404)
    response = client.post(
        f"/customerview/edit/{pk}",
        data={"name": "Renamed by attacker", "contact_phone": "13800000000", "edit_version": "1"},
    )
    if visible:
        assert response.status_code == 302
        assert _name(app, pk) == "Renamed by attacker"
    else:
        assert response.status_code == 404
        assert _name(app, pk).startswith(SECRET)


@pytest.mark.parametrize("actor,owner,visible", WRITERS)
def test_delete_archives_only_in_scope(app, client, auth, target, actor, owner, visible):
    pk = target(owner)
    auth.login(actor)
    response = client.post(f"/customerview/delete/{pk}")
    assert response.status_code == (302 if visible else 404)
    assert _archived(app, pk) is visible


@pytest.mark.parametrize("actor,owner,visible", WRITERS)
def test_bulk_archive_action_rechecks_each_pk(app, client, auth, target, make_customer, actor, owner, visible):
    mine = make_customer(actor, name="Own record")
    pk = target(owner)
    auth.login(actor)
    auth.grant_step_up(actor)  # bulk archive is a sensitive action
    response = client.post("/customerview/action_post", data={"action": "archive", "rowid": [mine, pk]})
    assert response.status_code == (302 if visible else 404)
    # An out-of-scope pk refuses the whole action: not even the actor's own record changes.
    assert _archived(app, pk) is visible
    assert _archived(app, mine) is visible


@pytest.mark.parametrize("actor,owner,visible", WRITERS)
def test_single_action_route(app, client, auth, target, actor, owner, visible):
    pk = target(owner)
    auth.login(actor)
    response = client.post(f"/customerview/action/archive/{pk}")
    assert response.status_code == (302 if visible else 404)
    assert _archived(app, pk) is visible


@pytest.mark.parametrize("actor,owner,visible", READERS)
def test_rest_get(client, api, target, actor, owner, visible):
    pk = target(owner)
    response = client.get(f"/api/v1/customer/{pk}", headers=api(actor))
    assert response.status_code == (200 if visible else 404)
    listing = client.get("/api/v1/customer/", headers=api(actor)).get_json()
    assert any(SECRET in row["name"] for row in listing["result"]) is visible


@pytest.mark.parametrize("actor,owner,visible", WRITERS)
def test_rest_put(app, client, api, target, actor, owner, visible):
    pk = target(owner)
    response = client.put(
        f"/api/v1/customer/{pk}", json={"name": "API rename", "version": 1}, headers=api(actor)
    )
    assert response.status_code == (200 if visible else 404), response.get_json()
    assert (_name(app, pk) == "API rename") is visible


@pytest.mark.parametrize("actor,owner,visible", WRITERS)
def test_rest_delete(app, client, api, target, actor, owner, visible):
    pk = target(owner)
    response = client.delete(f"/api/v1/customer/{pk}", headers=api(actor))
    assert response.status_code == (200 if visible else 404)
    assert _archived(app, pk) is visible


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("actor,owner,visible", [c for c in READERS if c[0] not in ("service", "viewer")])
def test_download(client, auth, target, fmt, actor, owner, visible):
    target(owner)
    auth.login(actor)
    response = client.get(f"/customerview/export/{fmt}")
    assert response.status_code == 200
    if fmt == "csv":
        assert (SECRET in response.get_data().decode("utf-8-sig")) is visible
    else:
        from io import BytesIO

        from openpyxl import load_workbook

        rows = load_workbook(BytesIO(response.get_data())).active.iter_rows(values_only=True)
        assert any(SECRET in str(cell) for row in rows for cell in row) is visible


@pytest.mark.parametrize("actor,owner,visible", WRITERS)
def test_related_field_choices(client, auth, api, target, actor, owner, visible):
    """A rep must not learn other reps' customer names through a dropdown."""
    target(owner)
    auth.login(actor)
    found = client.get("/followupview/related/add/customer", query_string={"q": SECRET}).get_data(as_text=True)
    assert (SECRET in found) is visible
    assert SECRET not in client.get("/followupview/add").get_data(as_text=True)  # the form lists no customer
    if not visible:  # nor through the follow-up list's search filters
        assert SECRET not in client.get("/followupview/list/").get_data(as_text=True)
    info = client.get("/api/v1/follow_up/_info?q=(keys:!(add_columns))", headers=api(actor))
    assert info.status_code == 200
    assert (SECRET in info.get_data(as_text=True)) is visible


@pytest.mark.parametrize("actor,owner,visible", WRITERS)
def test_follow_ups_of_hidden_customers_are_hidden(client, auth, api, target, make_follow_up, actor, owner, visible):
    fu = make_follow_up(target(owner), owner, content="Discussed the secret discount")
    auth.login(actor)
    assert client.get(f"/followupview/show/{fu}").status_code == (200 if visible else 404)
    assert ("secret discount" in client.get("/followupview/list/").get_data(as_text=True)) is visible
    assert client.get(f"/api/v1/follow_up/{fu}", headers=api(actor)).status_code == (200 if visible else 404)


def test_rep_cannot_attach_follow_up_to_hidden_customer(client, api, target):
    pk = target("rep_c")
    response = client.post(
        "/api/v1/follow_up/", json={"customer": pk, "content": "sneaky"}, headers=api("rep_a")
    )
    assert response.status_code == 422


def test_rep_cannot_give_a_customer_to_another_rep(app, client, api, make_customer):
    pk = make_customer("rep_a")
    from tests.conftest import user_id

    with app.app_context():
        rep_c = user_id("rep_c")
    response = client.put(
        f"/api/v1/customer/{pk}", json={"owner": rep_c, "version": 1}, headers=api("rep_a")
    )
    # Refused by the request schema (422: the owner is not among the choices offered,
    # the same answer as for a user that does not exist) or by the use case (403).
    assert response.status_code in (403, 422)
    assert "owner" in response.get_json()["message"]
    with app.app_context():
        assert db.session.get(Customer, pk).owner_id != rep_c
