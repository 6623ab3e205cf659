"""Approvals engine (issue 15): policies, approvers up the department tree, no
self-approval, decisions, conflicts, scope of requests, notifications."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, Notification
from app.models.approvals import ApprovalPolicy, ApprovalRequest, ApprovalStep
from app.models.org import CrmUser, Department
from app.services import approvals, customers
from app.services.errors import NotFound, RuleForbidden, RuleViolation
from tests.conftest import user_id


def _user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def _level(customer: Customer, code: str) -> Any:
    from app.models.dictionaries import CustomerLevel

    entry = db.session.scalars(select(CustomerLevel).where(CustomerLevel.code != (customer.level.code
                                                                                 if customer.level else ""))).first()
    return entry if code == "other" else None


def _hold_level(pk: int, who: str) -> ApprovalRequest:
    customer = db.session.get(Customer, pk)
    saved = customers.save_customer({"level": _level(customer, "other")}, _user(who), pk=pk,
                                    version=customer.version)
    db.session.commit()
    assert len(saved.held_for_approval) == 1
    return saved.held_for_approval[0]


def test_defaults_are_seeded_once(app: Any) -> None:
    with app.app_context():
        kinds = sorted(p.kind for p in db.session.scalars(select(ApprovalPolicy)))
        approvals.seed_defaults()
        assert sorted(p.kind for p in db.session.scalars(select(ApprovalPolicy))) == kinds
        assert {"customer.archive", "customer.level", "data_change"} <= set(kinds)
        assert "customer.contact" not in kinds and "customer.won" not in kinds


def test_policy_conditions_and_position(app: Any) -> None:
    with app.app_context():
        db.session.add_all([
            ApprovalPolicy(name="big", kind="customer.won", position=2, active=True, min_amount=1000),
            ApprovalPolicy(name="off", kind="customer.won", position=0, active=False),
            ApprovalPolicy(name="deep", kind="customer.won", position=1, active=True, min_discount=20),
        ])
        db.session.commit()
        assert approvals.policy_for("customer.won") is None
        assert approvals.policy_for("customer.won", amount=999) is None
        assert approvals.policy_for("customer.won", amount=1000).name == "big"
        assert approvals.policy_for("customer.won", amount=5000, discount=25).name == "deep"


def test_rep_request_goes_to_manager_and_is_applied(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        request = _hold_level(pk, "rep_a")
        assert request.code.startswith("AP")
        assert [a.user_id for a in request.approvers] == [user_id("manager")]
        assert db.session.get(Customer, pk).level_id is None  # held, not applied
        told = db.session.scalars(select(Notification).where(Notification.event == "approval_waiting")).all()
        assert [n.user_id for n in told] == [user_id("manager")]
        with pytest.raises(NotFound):  # another rep cannot decide
            approvals.approve(request.id, _user("rep_b"))
        approvals.approve(request.id, _user("manager"), comment="ok")
        db.session.commit()
        assert request.status == approvals.APPROVED and request.applied_at is not None
        assert db.session.get(Customer, pk).level_id == _level_id(request)
        told = db.session.scalars(select(Notification).where(Notification.event == "approval_approved")).all()
        assert [n.user_id for n in told] == [user_id("rep_a")]


def _level_id(request: ApprovalRequest) -> int:
    import json

    return json.loads(request.change)["level_id"]


def test_team_without_manager_walks_up(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_b")  # East Team has no manager: East's manager decides
    with app.app_context():
        request = _hold_level(pk, "rep_b")
        assert [a.user_id for a in request.approvers] == [user_id("manager")]


def test_self_approval_goes_up_the_tree(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("manager")
    with app.app_context():
        head = Department(name="Head office", manager_id=user_id("manager_s"))
        db.session.add(head)
        db.session.flush()
        db.session.get(Department, db.session.scalar(select(Department.id).where(Department.name == "East"))) \
            .parent_id = head.id
        db.session.commit()
        request = _hold_level(pk, "manager")
        assert [a.user_id for a in request.approvers] == [user_id("manager_s")]
        with pytest.raises(NotFound):
            approvals.approve(request.id, _user("manager"))


def test_self_approval_falls_back_to_admins(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("manager")
    with app.app_context():
        request = _hold_level(pk, "manager")
        assert user_id("manager") not in [a.user_id for a in request.approvers]
        assert user_id("admin") in [a.user_id for a in request.approvers]


def test_role_step_never_lists_requester(app: Any, make_customer: Any) -> None:
    pk = make_customer("manager")
    with app.app_context():
        policy = approvals.policy_for("customer.level")
        role = appbuilder.sm.find_role("Sales Manager")
        policy.steps = [ApprovalStep(position=0, approver="role", role_id=role.id)]
        db.session.commit()
        request = _hold_level(pk, "manager")
        assert [a.user_id for a in request.approvers] == [user_id("manager_s")]


def test_reject_needs_a_comment_and_never_applies(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        request = _hold_level(pk, "rep_a")
        with pytest.raises(RuleViolation) as exc:
            approvals.reject(request.id, _user("manager"), "  ")
        assert "comment" in exc.value.errors
        approvals.reject(request.id, _user("manager"), "Not this quarter")
        db.session.commit()
        assert request.status == approvals.REJECTED
        assert db.session.get(Customer, pk).level_id is None
        with pytest.raises(NotFound):  # decided: nobody decides it again
            approvals.approve(request.id, _user("manager"))
        told = db.session.scalars(select(Notification).where(Notification.event == "approval_rejected")).one()
        assert told.user_id == user_id("rep_a") and told.params["comment"] == "Not this quarter"


def test_record_changed_meanwhile_is_a_conflict(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        request = _hold_level(pk, "rep_a")
        customer = db.session.get(Customer, pk)
        from app.models.dictionaries import CustomerLevel

        other = db.session.scalars(select(CustomerLevel).where(CustomerLevel.id != _level_id(request))).first()
        customer.level_id = other.id  # an admin changed it meanwhile
        db.session.commit()
        approvals.approve(request.id, _user("manager"))
        db.session.commit()
        assert request.status == approvals.CONFLICT and request.outcome
        assert db.session.get(Customer, pk).level_id == other.id  # nothing overwritten
        told = {n.user_id for n in db.session.scalars(select(Notification).where(
            Notification.event == "approval_conflict"))}
        assert told == {user_id("rep_a"), user_id("manager")}


def test_withdraw_only_by_requester(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        request = _hold_level(pk, "rep_a")
        with pytest.raises(RuleForbidden):
            approvals.withdraw(request.id, _user("manager"))
        with pytest.raises(NotFound):
            approvals.withdraw(request.id, _user("rep_c"))
        approvals.withdraw(request.id, _user("rep_a"))
        db.session.commit()
        assert request.status == approvals.WITHDRAWN
        assert approvals.waiting_for(_user("manager")) == []
        with pytest.raises(RuleViolation):
            approvals.withdraw(request.id, _user("rep_a"))


def test_second_pending_request_is_refused(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        _hold_level(pk, "rep_a")
        customer = db.session.get(Customer, pk)
        with pytest.raises(RuleViolation):
            customers.save_customer({"level": _level(customer, "other")}, _user("rep_a"), pk=pk,
                                    version=customer.version)
        db.session.rollback()


def test_scope_of_requests(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        request = _hold_level(pk, "rep_a")
        for name in ("rep_a", "manager", "admin"):
            assert approvals.load(request.id, _user(name)).id == request.id
        for name in ("rep_c", "rep_b", "manager_s", "viewer"):
            with pytest.raises(NotFound):
                approvals.load(request.id, _user(name))
        assert approvals.requested_by(_user("rep_c")) == []
        assert [r.id for r in approvals.waiting_for(_user("manager"))] == [request.id]
        with pytest.raises(NotFound):
            approvals.for_record("customer", pk, _user("rep_c"))
        assert [r.id for r in approvals.for_record("customer", pk, _user("rep_a"))] == [request.id]


def test_inactive_manager_is_skipped(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        db.session.get(CrmUser, user_id("manager")).active = False
        db.session.commit()
        try:
            request = _hold_level(pk, "rep_a")
            assert user_id("manager") not in [a.user_id for a in request.approvers]
        finally:
            db.session.get(CrmUser, user_id("manager")).active = True
            db.session.commit()
