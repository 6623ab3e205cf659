"""The REST API writes through the use cases: every answer is masked like GET, single
DELETEs cannot add up to an unasked bulk delete, and merges keep what was typed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Customer, FollowUp
from app.services import merge


def test_put_with_only_the_version_answers_a_masked_phone(client: Any, api: Any, make_customer: Any,
                                                           app: Any) -> None:
    pk = make_customer("rep_a", contact_phone="13812345678")
    headers = api("rep_a")
    response = client.put(f"/api/v1/customer/{pk}", json={"version": 1}, headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_data(as_text=True)
    assert "13812345678" not in body and "138****5678" in body
    created = client.post("/api/v1/customer/", json={"name": "Fresh Co", "contact_phone": "13912345678"},
                          headers=headers)
    assert created.status_code == 201 and "13912345678" not in created.get_data(as_text=True)
    with app.app_context():  # answering is not revealing: nothing to audit, nothing unmasked
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "reveal")) is None


def test_api_refuses_fields_it_does_not_list_and_non_objects(client: Any, api: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    headers = api("rep_a")
    assert client.put(f"/api/v1/customer/{pk}", json=[1, 2], headers=headers).status_code == 400
    response = client.put(f"/api/v1/customer/{pk}", json={"version": 1, "archived_at": "2020-01-01"},
                          headers=headers)
    assert response.status_code == 422


def test_many_single_deletes_ask_for_the_code_past_the_budget(client: Any, api: Any, make_customer: Any,
                                                              app: Any) -> None:
    budget = 3  # CRM_ARCHIVE_WITHOUT_CODE = "3 per hour"
    pks = [make_customer("rep_a", name=f"Bulk {i}", contact_phone=f"1381234560{i}") for i in range(budget + 2)]
    statuses = []
    for pk in pks:  # a fresh token each time: the budget is the user's, not the token's
        statuses.append(client.delete(f"/api/v1/customer/{pk}", headers=api("rep_a")).status_code)
    assert statuses[:budget] == [200] * budget
    assert statuses[budget:] == [401, 401]
    with app.app_context():
        live = db.session.scalars(select(Customer.id).where(Customer.archived_at.is_(None))).all()
        assert sorted(live) == sorted(pks[budget:])


def test_api_follow_up_on_an_archived_customer_is_refused(client: Any, api: Any, make_customer: Any,
                                                          app: Any) -> None:
    pk = make_customer("rep_a")
    headers = api("rep_a")
    assert client.delete(f"/api/v1/customer/{pk}", headers=headers).status_code == 200
    response = client.post("/api/v1/follow_up/", json={"customer": pk, "content": "Called"}, headers=headers)
    assert response.status_code == 422 and "archived" in response.get_json()["message"]["customer"]
    with app.app_context():
        assert db.session.scalar(select(FollowUp.id)) is None


def test_merge_keeps_the_other_records_values_where_the_survivor_is_empty(app: Any, ctx: Any,
                                                                          make_customer: Any) -> None:
    from app.extensions import appbuilder

    keep = make_customer("manager", name="Acme Ltd", contact_name="Li Lei", address=None, note="")
    other = make_customer("manager", name="ACME Ltd.", contact_name="Li Lei", address="9 Harbour Road",
                          note="Prefers e-mail")
    user = appbuilder.sm.find_user(username="manager")
    survivor = db.session.get(Customer, keep)
    merge.merge(survivor, [db.session.get(Customer, other)], {}, user)
    db.session.commit()
    survivor = db.session.get(Customer, keep)
    assert (survivor.address, survivor.note) == ("9 Harbour Road", "Prefers e-mail")
    assert survivor.name == "Acme Ltd"  # the survivor's own non-empty value stays


def test_merge_screen_preselects_non_empty_values(client: Any, auth: Any, make_customer: Any) -> None:
    keep = make_customer("manager", name="Acme Ltd", contact_name="Li Lei", address=None)
    other = make_customer("manager", name="ACME Ltd.", contact_name="Li Lei", address="9 Harbour Road")
    auth.login("manager")
    page = client.get(f"/duplicates/review?ids={keep},{other}").get_data(as_text=True)
    assert f'name="pick_address" value="{other}" checked' in page
    assert f'name="pick_name" value="{keep}" checked' in page


def test_bounded_text_and_dates_through_the_api(client: Any, api: Any, make_customer: Any) -> None:
    headers = api("rep_a")
    long_note = client.post("/api/v1/customer/", json={"name": "Long Co", "contact_phone": "13912345670",
                                                       "note": "x" * 10001}, headers=headers)
    assert long_note.status_code == 422 and "note" in long_note.get_json()["message"]
    pk = make_customer("rep_a")
    for when in ("0202-05-01 09:00:00", "9999-12-31 00:00:00"):  # a typo, and a date nobody meant
        response = client.post("/api/v1/follow_up/", json={"customer": pk, "content": "Called",
                                                           "followed_at": when}, headers=headers)
        assert response.status_code == 422, when
        assert "followed_at" in response.get_json()["message"]


def test_an_id_no_record_can_have_is_a_json_404_on_the_api(client: Any, api: Any) -> None:
    response = client.get("/api/v1/customer/99999999999999999999", headers=api("rep_a"))
    assert response.status_code == 404 and response.is_json
