"""Dictionary entries are written through their use case from the screens and the API:
a used entry is deactivated, never deleted (its records would point nowhere); codes are
unique with a message, not a 500; industries stay two levels deep."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Customer, CustomerType, Industry


def _type_id(app: Any, code: str) -> int:
    with app.app_context():
        return db.session.scalar(select(CustomerType.id).where(CustomerType.code == code))


def test_api_refuses_deleting_a_dictionary_entry_in_use(client: Any, api: Any, make_customer: Any,
                                                        app: Any) -> None:
    pk = make_customer("rep_a", type_code="lost")
    lost = _type_id(app, "lost")
    response = client.delete(f"/api/v1/customer_type/{lost}", headers=api("admin"))
    assert response.status_code == 422, response.get_json()
    with app.app_context():
        assert db.session.get(Customer, pk).type.code == "lost"


def test_screen_refuses_deleting_a_dictionary_entry_in_use(client: Any, auth: Any, make_customer: Any,
                                                           app: Any) -> None:
    make_customer("rep_a", type_code="lost")
    lost = _type_id(app, "lost")
    auth.login("admin")
    client.post(f"/customertypeview/delete/{lost}")
    with app.app_context():
        assert db.session.get(CustomerType, lost) is not None


def test_unused_entry_can_still_be_deleted(client: Any, api: Any, app: Any) -> None:
    headers = api("admin")
    created = client.post("/api/v1/customer_type/", json={"code": "tmp", "label_en": "Tmp", "label_zh": "临时",
                                                          "sort_order": 99, "active": True}, headers=headers)
    assert created.status_code == 201, created.get_json()
    assert client.delete(f"/api/v1/customer_type/{created.get_json()['id']}", headers=headers).status_code == 200


def test_duplicate_code_is_a_message_not_a_500(client: Any, api: Any, auth: Any) -> None:
    response = client.post("/api/v1/customer_type/", json={"code": "won", "label_en": "x", "label_zh": "y",
                                                           "sort_order": 1, "active": True}, headers=api("admin"))
    assert response.status_code == 422 and "code" in response.get_json()["message"]
    auth.login("admin")
    page = client.post("/customertypeview/add", data={"code": "won", "label_en": "x", "label_zh": "y",
                                                      "sort_order": "1", "active": "y"})
    assert page.status_code == 200


def test_industries_stay_two_levels_deep(client: Any, api: Any, app: Any) -> None:
    with app.app_context():
        top = db.session.scalar(select(Industry.id).where(Industry.code == "C"))
        child = db.session.scalar(select(Industry.id).where(Industry.code == "36"))
        other = db.session.scalar(select(Industry.id).where(Industry.code == "I"))
    headers = api("admin")
    for pk, parent in ((top, top), (top, other), (other, child), (child, 999_999)):
        response = client.put(f"/api/v1/industry/{pk}", json={"parent_id": parent}, headers=headers)
        assert response.status_code == 422, (pk, parent, response.get_json())
    with app.app_context():
        assert db.session.get(Industry, top).parent_id is None


def test_department_with_sub_departments_is_not_deleted(client: Any, auth: Any, app: Any) -> None:
    from app.models import Department

    with app.app_context():
        parent = Department(name="Probe parent")
        db.session.add(Department(name="Probe child", parent=parent))
        db.session.commit()
        parent_id = parent.id
    auth.login("admin")
    client.post(f"/departmentview/delete/{parent_id}")
    with app.app_context():
        kept = db.session.get(Department, parent_id) is not None
        for name in ("Probe child", "Probe parent"):  # the org is shared by every test
            db.session.delete(db.session.scalar(select(Department).where(Department.name == name)))
            db.session.flush()
        db.session.commit()
    assert kept
