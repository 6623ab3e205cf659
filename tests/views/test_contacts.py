"""Contacts on the screens (/contactview/) and the REST API (/api/v1/contact/): a contact
belongs to its customer's owner, so a colleague can neither read, change, delete nor add
one on another rep's customer, by any route; phones stay masked; the mirror holds."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select

from app.extensions import db
from app.models import Customer
from app.models.sales import Contact
from app.services import contacts

# Until views/customers.py imports ContactView (the customer page's related list: the lead
# adds that line), importing it here, at collection, registers the contact screens with
# their reveal routes when the session's app is built.
from views import contacts as contact_views  # noqa: F401, E402

SECRET = "Quincy Secretperson"
FULL, MASKED = "13712345678", "137****5678"


@pytest.fixture(autouse=True)
def forget_contacts(app: Any) -> Any:
    yield
    with app.app_context():
        db.session.rollback()
        db.session.execute(delete(Contact))
        db.session.commit()
        db.session.remove()


@pytest.fixture
def contact_of(app: Any, make_customer: Any) -> Any:
    """A secondary contact of a new customer of ``owner``: (customer id, contact id)."""

    def make(owner: str) -> tuple[int, int]:
        customer = make_customer(owner)
        with app.app_context():
            item = Contact(customer_id=customer, name=SECRET, phone=FULL, title="CTO")
            db.session.add(item)
            db.session.commit()
            pk = item.id
            db.session.remove()
        return customer, pk

    return make


def _contact(app: Any, pk: int) -> Contact | None:
    with app.app_context():
        item = db.session.get(Contact, pk)
        found = None if item is None else (item.name, item.title, item.customer_id)
        db.session.remove()
        return found


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def test_owner_adds_lists_and_sees_masked_phones(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a", contact_name="Zhou")
    auth.login("rep_a")
    response = client.post("/contactview/add", data={"customer": str(customer), "name": SECRET, "phone": FULL,
                                                     "title": "CTO"})
    assert response.status_code == 302, _text(response)
    page = _text(client.get("/contactview/list/"))
    assert SECRET in page and "Zhou" in page and MASKED in page and FULL not in page


def test_a_colleague_cannot_reach_a_contact_on_screens(app: Any, client: Any, auth: Any, contact_of: Any) -> None:
    customer, pk = contact_of("rep_a")
    auth.login("rep_b")
    assert SECRET not in _text(client.get("/contactview/list/"))
    assert client.get(f"/contactview/show/{pk}").status_code == 404
    assert client.get(f"/contactview/edit/{pk}").status_code == 404
    client.post(f"/contactview/edit/{pk}", data={"name": "Taken", "customer": str(customer), "edit_version": "1"})
    assert _contact(app, pk) == (SECRET, "CTO", customer)


def test_screen_delete_answers_404_for_a_colleague_and_a_message_for_the_primary(
        app: Any, client: Any, auth: Any, contact_of: Any) -> None:
    customer, pk = contact_of("rep_a")
    auth.login("rep_b")
    assert client.post(f"/contactview/delete/{pk}").status_code == 404
    assert _contact(app, pk) == (SECRET, "CTO", customer)
    auth.logout()
    auth.login("rep_a")
    with app.app_context():
        primary = db.session.scalar(select(Contact.id).where(Contact.customer_id == customer,
                                                             Contact.is_primary.is_(True)))
        db.session.remove()
    page = _text(client.post(f"/contactview/delete/{primary}", follow_redirects=True))
    assert "make another contact primary" in page and _contact(app, primary) is not None


def test_a_colleague_cannot_add_a_contact_to_another_reps_customer(app: Any, client: Any, auth: Any,
                                                                    make_customer: Any) -> None:
    customer = make_customer("rep_a")
    auth.login("rep_b")
    client.post("/contactview/add", data={"customer": str(customer), "name": "Spy", "phone": FULL})
    with app.app_context():
        assert db.session.scalar(select(Contact).where(Contact.name == "Spy")) is None
        db.session.remove()


def test_a_colleague_cannot_reach_a_contact_through_the_api(app: Any, client: Any, api: Any, contact_of: Any) -> None:
    customer, pk = contact_of("rep_a")
    headers = api("rep_b")
    listed = client.get("/api/v1/contact/", headers=headers).get_json()
    assert listed["count"] == 0
    assert client.get(f"/api/v1/contact/{pk}", headers=headers).status_code == 404
    assert client.put(f"/api/v1/contact/{pk}", json={"name": "Taken", "version": 1},
                      headers=headers).status_code == 404
    assert client.delete(f"/api/v1/contact/{pk}", headers=headers).status_code == 404
    added = client.post("/api/v1/contact/", json={"customer": customer, "name": "Spy", "phone": FULL},
                        headers=headers)
    assert added.status_code == 422 and set(added.get_json()["message"]) == {"customer"}
    assert _contact(app, pk) == (SECRET, "CTO", customer)
    with app.app_context():  # the use case refuses too when a schema lets the id through
        from app.extensions import appbuilder
        from app.services.errors import RuleViolation

        rep_b = appbuilder.sm.find_user(username="rep_b")
        with pytest.raises(RuleViolation) as refused:
            contacts.save_contact({"customer": db.session.get(Customer, customer), "name": "Spy"}, rep_b)
        assert refused.value.errors == {"customer": "Customer not found."}
        db.session.rollback()
        db.session.remove()
    assert _contact(app, pk) == (SECRET, "CTO", customer)


def test_the_owner_uses_the_api_and_phones_stay_masked(app: Any, client: Any, api: Any, contact_of: Any) -> None:
    customer, pk = contact_of("rep_a")
    headers = api("rep_a")
    shown = client.get(f"/api/v1/contact/{pk}", headers=headers).get_json()["result"]
    assert shown["phone"] == MASKED and shown["name"] == SECRET
    changed = client.put(f"/api/v1/contact/{pk}", json={"title": "CEO", "phone": MASKED, "version": shown["version"]},
                         headers=headers)
    assert changed.status_code == 200, changed.get_json()
    assert _contact(app, pk) == (SECRET, "CEO", customer)
    with app.app_context():
        assert db.session.get(Contact, pk).phone == FULL  # the masked echo kept the number
        db.session.remove()


def test_making_a_contact_primary_through_the_api_updates_the_customer(app: Any, client: Any, api: Any,
                                                                       contact_of: Any) -> None:
    customer, pk = contact_of("rep_a")
    headers = api("rep_a")
    response = client.put(f"/api/v1/contact/{pk}", json={"is_primary": True, "version": 1}, headers=headers)
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        item = db.session.get(Customer, customer)
        assert (item.contact_name, item.contact_phone) == (SECRET, FULL)
        assert [c.name for c in db.session.scalars(select(Contact).where(
            Contact.customer_id == customer, Contact.is_primary.is_(True)))] == [SECRET]
        db.session.remove()


def test_editing_the_customer_on_its_screen_updates_its_primary_contact(app: Any, client: Any, auth: Any,
                                                                        make_customer: Any) -> None:
    customer = make_customer("rep_a", name="Acme", contact_name="Zhou")
    auth.login("rep_a")
    response = client.post(f"/customerview/edit/{customer}", data={
        "name": "Acme", "contact_name": "Zhou Jie", "contact_phone": "139 0000 0001", "edit_version": "1"})
    assert response.status_code == 302, _text(response)
    with app.app_context():
        (primary,) = db.session.scalars(select(Contact).where(Contact.customer_id == customer)).all()
        assert (primary.name, primary.phone, primary.is_primary) == ("Zhou Jie", "13900000001", True)
        db.session.remove()


def test_reveal_a_contacts_phone_on_the_screen_and_the_api_is_recorded(app: Any, client: Any, auth: Any,
                                                                         api: Any, totp: Any, contact_of: Any) -> None:
    from app.models import AuditLog

    _, pk = contact_of("rep_a")
    auth.login("rep_a")
    assert FULL not in _text(client.get(f"/contactview/reveal/{pk}"))
    assert FULL not in _text(client.post(f"/contactview/reveal/{pk}"))  # no step-up yet: the code page
    auth.grant_step_up("rep_a")
    assert FULL in _text(client.post(f"/contactview/reveal/{pk}"))
    totp.enrol(app, "rep_a")
    headers = api("rep_a")
    assert client.post(f"/api/v1/contact/{pk}/phone", headers=headers).status_code == 401
    answer = client.post(f"/api/v1/contact/{pk}/phone", headers={**headers, "X-TOTP-Code": totp.code("rep_a")})
    assert answer.get_json()["phone"] == FULL
    with app.app_context():
        vias = [e.detail for e in db.session.scalars(select(AuditLog).where(  # in chain order, not heap order
            AuditLog.action == "reveal", AuditLog.object_type == "Contact", AuditLog.object_id == str(pk))
            .order_by(AuditLog.seq))]
        db.session.remove()
    assert len(vias) == 2 and '"via": "api"' in vias[1]


def test_a_colleague_or_a_read_only_user_cannot_reveal_a_contacts_phone(app: Any, client: Any, auth: Any,
                                                                        api: Any, contact_of: Any) -> None:
    _, pk = contact_of("rep_a")
    auth.login("rep_b")
    auth.grant_step_up("rep_b")
    assert client.get(f"/contactview/reveal/{pk}").status_code == 404
    assert client.post(f"/contactview/reveal/{pk}").status_code == 404
    assert client.post(f"/api/v1/contact/{pk}/phone", headers=api("rep_b")).status_code == 404
    auth.logout()
    auth.login("viewer")  # sees every customer, may never reveal
    auth.grant_step_up("viewer")
    assert FULL not in _text(client.post(f"/contactview/reveal/{pk}"))
    assert client.post(f"/api/v1/contact/{pk}/phone", headers=api("viewer")).status_code == 403
    with app.app_context():
        from app.models import AuditLog

        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "reveal")) is None
        db.session.remove()
