"""Attacks on issue 15 through the use cases (approvals, orders, contracts, campaigns):
double decisions at the same moment, stuck requests, gate bypasses, money edge cases.

Each test states the attack; a failing test is a finding (see the attacker's report)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer
from app.models.approvals import ApprovalAction, ApprovalPolicy, ApprovalRequest, ApprovalStep
from app.models.dictionaries import CustomerLevel
from app.models.orders import SalesOrder
from app.models.org import CrmUser
from app.models.sales import Product
from app.services import approvals, customers, orders
from app.services.errors import NotFound, RuleViolation
from tests.concurrency import at_once
from tests.conftest import user_id


def _user(name: str) -> Any:
    return db.session.get(CrmUser, user_id(name))


def _other_level(customer: Customer) -> CustomerLevel:
    return db.session.scalars(select(CustomerLevel).where(CustomerLevel.id != (customer.level_id or 0))
                              .order_by(CustomerLevel.id)).first()


def _hold_level(pk: int, who: str = "rep_a") -> int:
    customer = db.session.get(Customer, pk)
    saved = customers.save_customer({"level": _other_level(customer)}, _user(who), pk=pk,
                                    version=customer.version)
    db.session.commit()
    assert len(saved.held_for_approval) == 1
    return saved.held_for_approval[0].id


def _applied(request_id: int) -> int:
    return db.session.scalar(select(func.count(ApprovalAction.id)).where(
        ApprovalAction.request_id == request_id, ApprovalAction.action.in_(("applied", "approved")))) or 0


# --- approvals ------------------------------------------------------------------------------------


def test_two_approvals_at_the_same_moment_decide_once(app: Any, make_customer: Any,
                                                      department_managers: Any) -> None:
    """The manager double-clicks Approve (two workers): one decision, the other refused
    cleanly (not found / stale), never a raw StaleDataError or two 'approved' entries."""
    pk = make_customer("rep_a")
    with app.app_context():
        rid = _hold_level(pk)
        db.session.remove()

    def work() -> str:
        try:
            approvals.approve(rid, db.session.get(CrmUser, user_id("manager")))
            db.session.commit()
            return "ok"
        except RuleViolation as exc:
            db.session.rollback()
            return type(exc).__name__

    results = at_once(app, work)
    assert sorted(results).count("ok") == 1, results
    with app.app_context():
        assert db.session.get(ApprovalRequest, rid).status == approvals.APPROVED
        actions = db.session.scalars(select(ApprovalAction.action).where(ApprovalAction.request_id == rid)).all()
        assert actions.count("approved") == 1 and actions.count("applied") == 1, actions


def test_request_of_a_deactivated_approver_is_not_stuck(app: Any, make_customer: Any,
                                                        department_managers: Any) -> None:
    """The only approver leaves (deactivated) while a request waits: someone (an admin, or the
    next manager up) must be able to decide it — it must not wait forever unseen."""
    pk = make_customer("rep_a")
    with app.app_context():
        rid = _hold_level(pk)
        manager = _user("manager")
        manager.active = False
        db.session.commit()
        admin = _user("admin")
        assert rid in [r.id for r in approvals.waiting_for(admin)], "nobody can see the stuck request"
        approvals.approve(rid, admin)
        db.session.commit()
        assert db.session.get(ApprovalRequest, rid).status == approvals.APPROVED


def test_two_step_policy_is_not_decided_twice_by_one_person(app: Any, make_customer: Any,
                                                            department_managers: Any) -> None:
    """A two-step level policy (department manager, then a named person). When the named
    person is the requester, the fallback must not hand step 2 to the person who already
    decided step 1: one person would approve 'in sequence' alone."""
    pk = make_customer("rep_a")
    with app.app_context():
        for policy in db.session.scalars(select(ApprovalPolicy).where(ApprovalPolicy.kind == "customer.level")):
            policy.steps = [ApprovalStep(position=0, approver="manager"),
                            ApprovalStep(position=1, approver="user", user_id=user_id("rep_a"))]
        db.session.commit()
        rid = _hold_level(pk)
        approvals.approve(rid, _user("manager"))
        db.session.commit()
        request = db.session.get(ApprovalRequest, rid)
        if request.status == approvals.PENDING:
            step_two = [a.user_id for a in request.approvers if a.step == 1]
            assert user_id("manager") not in step_two, "the step-1 approver also decides step 2"
        else:
            pytest.fail("a two-step policy was fully approved by one person in one click")


def test_withdrawn_request_cannot_be_approved(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        rid = _hold_level(pk)
        approvals.withdraw(rid, _user("rep_a"))
        db.session.commit()
        with pytest.raises(NotFound):
            approvals.approve(rid, _user("manager"))
        db.session.rollback()
        assert db.session.get(Customer, pk).level_id is None


def test_reject_with_a_comment_of_spaces_is_refused(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        rid = _hold_level(pk)
        with pytest.raises(RuleViolation):
            approvals.reject(rid, _user("manager"), " \u3000\t\u200b ")
        db.session.rollback()
        assert db.session.get(ApprovalRequest, rid).status == approvals.PENDING


def test_merge_cannot_change_a_gated_level_without_approval(app: Any, make_customer: Any,
                                                            department_managers: Any) -> None:
    """003 第四步 修改客户等级需部门负责人审批: a manager's own level change goes up for
    approval — but merging a duplicate and picking its level changes the survivor's level
    at once (the dedup merge never asks the gates)."""
    from app.services import merge

    with app.app_context():
        level = db.session.scalars(select(CustomerLevel).order_by(CustomerLevel.id)).first().id
    keep = make_customer("rep_a", name="Acme Ltd")
    other = make_customer("rep_a", name="Acme Ltd.", contact_phone="13900000000", level_id=level)
    with app.app_context():
        try:
            merge.merge_customers([keep, other], keep, {"level_id": other}, _user("manager"))
            db.session.commit()
        except RuleViolation:
            db.session.rollback()
        survivor = db.session.get(Customer, keep)
        held = approvals.pending("customer", keep, "customer.level")
        assert survivor.level_id is None or held is not None, "level changed by a merge without approval"


# --- orders ---------------------------------------------------------------------------------------


def _approved_order(owner: str, customer_id: int, quantity: str = "5", price: str = "100.00") -> tuple[int, int]:
    user = _user(owner)
    item = Product(name="Widget", list_price=Decimal(price), active=True)
    db.session.add(item)
    db.session.flush()
    order = orders.save_order({"customer": db.session.get(Customer, customer_id), "title": "Order"}, user)
    line = orders.save_line(order.id, {"product": item.id, "quantity": quantity, "unit_price": price}, user)
    orders.submit(order.id, user)
    db.session.commit()
    assert order.status == orders.APPROVED
    return order.id, line.id


def test_two_deliveries_at_once_never_exceed_the_ordered_quantity(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        order_id, line_id = _approved_order("rep_a", customer_id)
        db.session.remove()

    def work() -> str:
        try:
            orders.record_delivery(order_id, db.session.get(CrmUser, user_id("rep_a")), "2026-03-01",
                                   {line_id: "5"})
            db.session.commit()
            return "ok"
        except RuleViolation as exc:
            db.session.rollback()
            return type(exc).__name__

    at_once(app, work)
    with app.app_context():
        order = db.session.get(SalesOrder, order_id)
        assert order.lines[0].delivered_quantity <= Decimal("5")
        assert len(order.deliveries) == 1


def test_two_payments_at_once_never_exceed_the_total_unconfirmed(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        order_id, _ = _approved_order("rep_a", customer_id)
        db.session.remove()

    def work() -> str:
        try:
            orders.record_payment(order_id, db.session.get(CrmUser, user_id("rep_a")), "2026-03-01", "500.00")
            db.session.commit()
            return "ok"
        except RuleViolation as exc:
            db.session.rollback()
            return type(exc).__name__

    at_once(app, work)
    with app.app_context():
        order = db.session.get(SalesOrder, order_id)
        assert order.paid_amount <= order.total and len(order.payments) == 1


@pytest.mark.parametrize("raw", ["-0.01", "0.005", "NaN", "sNaN", "Infinity", "1e20", "100000000000000000000",
                                 "1,2,3", "", "  ", "0", "1e-999999999", "1E+999999999"])
def test_payment_amounts_that_are_not_money_are_refused(app: Any, make_customer: Any, raw: str) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        order_id, _ = _approved_order("rep_a", customer_id)
        with pytest.raises(RuleViolation):
            orders.record_payment(order_id, _user("rep_a"), "2026-03-01", raw, confirm=True)
        db.session.rollback()
        assert db.session.get(SalesOrder, order_id).paid_amount in (None, Decimal(0))


@pytest.mark.parametrize("field, raw", [("discount", "100.01"), ("discount", "-1"), ("quantity", "0"),
                                        ("quantity", "-1"), ("quantity", "NaN"), ("unit_price", "-0.01"),
                                        ("unit_price", "1e20"), ("unit_price", "0.001")])
def test_line_values_out_of_range_are_refused(app: Any, make_customer: Any, field: str, raw: str) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        user = _user("rep_a")
        item = Product(name="Widget", list_price=Decimal("10.00"), active=True)
        db.session.add(item)
        db.session.flush()
        order = orders.save_order({"customer": db.session.get(Customer, customer_id), "title": "O"}, user)
        values = {"product": item.id, "quantity": "1", "unit_price": "10.00", "discount": "0", field: raw}
        with pytest.raises(RuleViolation):
            orders.save_line(order.id, values, user)
        db.session.rollback()


def test_a_line_of_another_order_cannot_be_delivered(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        first, _ = _approved_order("rep_a", customer_id)
        _, other_line = _approved_order("rep_a", customer_id)
        with pytest.raises(NotFound):
            orders.record_delivery(first, _user("rep_a"), "2026-03-01", {other_line: "1"})
        db.session.rollback()


def test_out_of_scope_rep_cannot_touch_an_order(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        order_id, line_id = _approved_order("rep_a", customer_id)
        rep_c = _user("rep_c")
        for call in (lambda: orders.record_delivery(order_id, rep_c, "2026-03-01", {line_id: "1"}),
                     lambda: orders.record_payment(order_id, rep_c, "2026-03-01", "1.00"),
                     lambda: orders.change_status(order_id, rep_c, orders.CANCELLED, reason="x"),
                     lambda: orders.reopen_for_change(order_id, rep_c, "x"),
                     lambda: orders.submit(order_id, rep_c)):
            with pytest.raises(NotFound):
                call()
            db.session.rollback()


def test_an_order_for_another_reps_customer_is_refused(app: Any, make_customer: Any) -> None:
    theirs = make_customer("rep_c")
    with app.app_context():
        with pytest.raises(RuleViolation):
            orders.save_order({"customer": theirs, "title": "Mine now"}, _user("rep_a"))
        db.session.rollback()
        assert not db.session.scalar(select(func.count(SalesOrder.id)))


def test_order_approver_is_never_the_submitter(app: Any, make_customer: Any, department_managers: Any) -> None:
    """An order policy naming the manager: the manager submitting an order of his own goes
    to someone else, never to himself."""
    customer_id = make_customer("manager")
    with app.app_context():
        policy = ApprovalPolicy(name="All orders", kind=orders.KIND, position=0, active=True,
                                min_amount=Decimal("0"))
        policy.steps = [ApprovalStep(position=0, approver="user", user_id=user_id("manager"))]
        db.session.add(policy)
        db.session.commit()
        user = _user("manager")
        item = Product(name="Widget", list_price=Decimal("10.00"), active=True)
        db.session.add(item)
        db.session.flush()
        order = orders.save_order({"customer": db.session.get(Customer, customer_id), "title": "O"}, user)
        orders.save_line(order.id, {"product": item.id, "quantity": "1"}, user)
        orders.submit(order.id, user)
        db.session.commit()
        request = approvals.pending("order", order.id)
        assert request is not None and user.id not in [a.user_id for a in request.approvers]
        with pytest.raises(NotFound):
            approvals.approve(request.id, user)
        db.session.rollback()



# --- import (after the gates helper's work) ------------------------------------------------------


def test_import_by_a_manager_holds_a_key_contact_change(app: Any, tmp_path: Any, make_customer: Any,
                                                         department_managers: Any) -> None:
    """001 使用规范二 with a key-contact policy on: the manager (not the owner) changes the
    customer's phone by an import update: the phone must not change before approval."""
    from tests.app.services.test_customer_gates_everywhere import _import

    pk = make_customer("rep_a", contact_phone="13812345678")
    with app.app_context():
        policy = ApprovalPolicy(name="Key contact", kind="customer.contact", position=9, active=True)
        policy.steps = [ApprovalStep(position=0, approver="user", user_id=user_id("admin"))]
        db.session.add(policy)
        db.session.commit()
        code = db.session.get(Customer, pk).code
    _import(app, tmp_path, "manager", ["客户编号", "联系方式"], [[code, "13999990000"]], mode="update")
    with app.app_context():
        assert db.session.get(Customer, pk).contact_phone == "13812345678"
        assert approvals.pending("customer", pk, "customer.contact") is not None


def test_import_cannot_unwin_then_archive(app: Any, tmp_path: Any, make_customer: Any,
                                         department_managers: Any) -> None:
    """The import moves a won customer back to potential (ungated), after which the rep may
    archive it without the manager's approval (000 §三(一))."""
    from tests.app.services.test_customer_gates_everywhere import _import

    pk = make_customer("rep_a", type_code="won")
    with app.app_context():
        code = db.session.get(Customer, pk).code
    _import(app, tmp_path, "rep_a", ["客户编号", "客户类型"], [[code, "potential"]], mode="update")
    with app.app_context():
        archived, refused = customers.archive_customers([pk], _user("rep_a"))
        db.session.commit()
        assert not archived, "a won customer was archived by a rep without approval after an import"
