"""Sales orders (issue 15, 002 §四(二)): from a won opportunity through approval, partial
deliveries and payments to closed; Decimal amounts; locked lines; the overdue lists."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models.approvals import ApprovalPolicy, ApprovalStep
from app.models.customers import Customer
from app.models.dictionaries import PaymentMethod
from app.models.notifications import Notification
from app.models.orders import SalesOrder
from app.models.org import CrmUser
from app.models.sales import Opportunity, OpportunityLine, Product, Stage
from app.services import approvals, orders
from app.services.errors import NotFound, RuleViolation
from tests.conftest import user_id


def person(name: str) -> CrmUser:
    return db.session.get(CrmUser, user_id(name))


def product(name: str = "Widget", price: str = "33.33", active: bool = True) -> Product:
    item = Product(name=name, list_price=Decimal(price), active=active)
    db.session.add(item)
    db.session.flush()
    return item


def won_opportunity(owner: str, customer_id: int, lines: list[tuple[Product, str, str, str]],
                    stage_code: str = "won") -> Opportunity:
    """An opportunity in ``stage_code`` with ``lines`` (product, quantity, unit price, discount)."""
    stage = db.session.scalars(select(Stage).where(Stage.code == stage_code)).one()
    item = Opportunity(customer_id=customer_id, title="ERP rollout", stage=stage, owner_id=user_id(owner),
                       stage_entered_at=clock.utc_now())
    for position, (prod, quantity, price, discount) in enumerate(lines, start=1):
        item.lines.append(OpportunityLine(position=position, product=prod, quantity=Decimal(quantity),
                                          unit_price=Decimal(price), discount=Decimal(discount),
                                          amount=orders.line_amount(Decimal(quantity), Decimal(price),
                                                                    Decimal(discount))))
    item.amount = sum((line.amount for line in item.lines), Decimal(0))
    db.session.add(item)
    db.session.flush()
    return item


def order_policy(min_amount: str = "10000") -> ApprovalPolicy:
    """order.confirm above ``min_amount`` → the requester's department manager."""
    policy = ApprovalPolicy(name="Large orders", kind=orders.KIND, position=0, active=True,
                            min_amount=Decimal(min_amount))
    policy.steps = [ApprovalStep(position=0, approver="manager")]
    db.session.add(policy)
    db.session.flush()
    return policy


def draft_order(owner: str, customer_id: int, lines: list[tuple[Product, str, str, str]], **values: Any) -> SalesOrder:
    user = person(owner)
    order = orders.save_order({"customer": db.session.get(Customer, customer_id), "title": "Order", **values}, user)
    for prod, quantity, price, discount in lines:
        orders.save_line(order.id, {"product": prod.id, "quantity": quantity, "unit_price": price,
                                    "discount": discount}, user)
    return order


def bank() -> PaymentMethod:
    return db.session.scalars(select(PaymentMethod).where(PaymentMethod.code == "bank_transfer")).one()


# --- the story ---------------------------------------------------------------------------

def test_won_opportunity_to_closed_through_approval(app: Any, make_customer: Any,
                                                    department_managers: dict[str, str]) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        order_policy("10000")
        big, small = product("Server", "4000.00"), product("Cable", "33.33")
        opportunity = won_opportunity("rep_a", customer_id, [(big, "3", "4000.00", "0"), (small, "3", "33.33", "10")])
        rep_a, manager = person("rep_a"), person("manager")
        order, warning = orders.order_from_opportunity(opportunity.id, rep_a)
        assert warning is None and order.status == orders.DRAFT and order.currency == "CNY"
        assert order.code.startswith("SO") and order.opportunity_id == opportunity.id
        # 3 × 33.33 = 99.99, −10 % = 89.991 → 89.99 (half up, to the fen); 3 × 4000 = 12000
        assert [line.amount for line in order.lines] == [Decimal("12000.00"), Decimal("89.99")]
        assert order.total == Decimal("12089.99")
        db.session.commit()

        orders.submit(order.id, rep_a)
        db.session.commit()
        assert order.status == orders.WAITING
        request = approvals.pending("order", order.id, orders.KIND)
        assert request is not None
        with pytest.raises(RuleViolation, match="locked"):
            orders.save_line(order.id, {"product": small.id, "quantity": "1"}, rep_a)
        db.session.rollback()

        approvals.approve(request.id, manager)
        db.session.commit()
        db.session.refresh(order)
        assert order.status == orders.APPROVED and order.approved_at is not None
        told = db.session.scalars(select(Notification).where(Notification.user_id == rep_a.id,
                                                             Notification.event == "order_approved")).all()
        assert len(told) == 1

        with pytest.raises(RuleViolation) as locked:
            orders.save_line(order.id, {"product": small.id, "quantity": "1"}, rep_a)
        assert locked.value.status == 409 and "locked" in str(locked.value)
        db.session.rollback()

        orders.change_status(order.id, rep_a, orders.IN_PRODUCTION)
        first, second = order.lines
        orders.record_delivery(order.id, rep_a, date(2026, 3, 2), {first.id: "1", second.id: "2"})
        assert order.status == orders.DELIVERING
        # 12000 × 1/3 = 4000.00; 89.99 × 2/3 = 59.9933 → 59.99
        assert order.delivered_amount == Decimal("4059.99")
        assert order.delivered_percent == Decimal("33.5")
        orders.record_delivery(order.id, rep_a, "2026-03-05", {str(first.id): "2", str(second.id): "1"})
        assert order.status == orders.DELIVERED and order.delivered_amount == order.total
        assert order.delivered_percent == Decimal("100.0")

        orders.record_payment(order.id, rep_a, "2026-03-06", "6000.00", bank().id, "TX-1")
        assert order.paid_percent == Decimal("49.6")
        with pytest.raises(RuleViolation, match="reason"):
            orders.change_status(order.id, rep_a, orders.CLOSED)
        orders.record_payment(order.id, rep_a, date(2026, 3, 9), "6089.99", None, "TX-2")
        assert order.paid_amount == Decimal("12089.99") and order.paid_percent == Decimal("100.0")
        orders.change_status(order.id, rep_a, orders.CLOSED)
        db.session.commit()
        assert order.status == orders.CLOSED and order.closed_at is not None
        assert isinstance(order.paid_amount, Decimal)


def test_small_order_is_approved_at_once(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        order_policy("10000")
        order = draft_order("rep_a", customer_id, [(product(), "3", "33.33", "10")])
        orders.submit(order.id, person("rep_a"))
        assert order.status == orders.APPROVED and order.total == Decimal("89.99")
        assert approvals.pending("order", order.id) is None


def test_rejected_order_goes_back_to_draft(app: Any, make_customer: Any, department_managers: dict[str, str]) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        order_policy("100")
        order = draft_order("rep_a", customer_id, [(product(), "10", "33.33", "0")])
        orders.submit(order.id, person("rep_a"))
        request = approvals.pending("order", order.id)
        approvals.reject(request.id, person("manager"), "Too cheap")
        db.session.commit()
        assert order.status == orders.DRAFT and order.approved_at is None
        orders.save_line(order.id, {"product": order.lines[0].product_id, "quantity": "11"}, person("rep_a"),
                         pk=order.lines[0].id)
        assert order.total == Decimal("366.63")


def test_reopen_for_change_needs_a_new_approval(app: Any, make_customer: Any,
                                                department_managers: dict[str, str]) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        rep_a = person("rep_a")
        order = draft_order("rep_a", customer_id, [(product(), "1", "50000", "0")])
        orders.submit(order.id, rep_a)  # no policy yet: approved at once
        assert order.status == orders.APPROVED
        order_policy("10000")
        with pytest.raises(RuleViolation, match="reason"):
            orders.reopen_for_change(order.id, rep_a, "")
        orders.reopen_for_change(order.id, rep_a, "Customer wants two")
        assert order.status == orders.DRAFT and order.approved_at is None
        orders.save_line(order.id, {"quantity": "2"}, rep_a, pk=order.lines[0].id)
        orders.submit(order.id, rep_a)
        assert order.status == orders.WAITING and order.total == Decimal("100000.00")


# --- rules ---------------------------------------------------------------------------------

def test_over_delivery_and_over_payment_are_refused(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        rep_a = person("rep_a")
        order = draft_order("rep_a", customer_id, [(product(), "5", "10.00", "0")])
        with pytest.raises(RuleViolation):  # not approved yet
            orders.record_delivery(order.id, rep_a, "2026-03-02", {order.lines[0].id: "1"})
        orders.submit(order.id, rep_a)
        line = order.lines[0]
        orders.record_delivery(order.id, rep_a, "2026-03-02", {line.id: "3"})
        with pytest.raises(RuleViolation, match="At most 2"):
            orders.record_delivery(order.id, rep_a, "2026-03-03", {line.id: "2.01"})
        with pytest.raises(RuleViolation):
            orders.record_delivery(order.id, rep_a, "2026-03-03", {line.id: "0"})
        with pytest.raises(RuleViolation):
            orders.record_delivery(order.id, rep_a, "2026-03-03", {line.id: "-1"})
        assert line.delivered_quantity == Decimal("3")
        orders.record_payment(order.id, rep_a, "2026-03-02", "40", None)
        with pytest.raises(orders.OverPayment) as over:
            orders.record_payment(order.id, rep_a, "2026-03-02", "10.01", None)
        assert over.value.status == 409
        assert order.paid_amount == Decimal("40.00")
        orders.record_payment(order.id, rep_a, "2026-03-02", "10.01", None, confirm=True)
        assert order.paid_amount == Decimal("50.01") and order.paid_percent == Decimal("100.0")
        for bad in ("0", "-5", "1.001", "abc"):
            with pytest.raises(RuleViolation):
                orders.record_payment(order.id, rep_a, "2026-03-02", bad, None, confirm=True)


def test_cancel_needs_a_reason_and_never_after_delivered(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        rep_a = person("rep_a")
        order = draft_order("rep_a", customer_id, [(product(), "2", "10.00", "0")])
        orders.submit(order.id, rep_a)
        with pytest.raises(RuleViolation, match="reason"):
            orders.change_status(order.id, rep_a, orders.CANCELLED)
        orders.record_delivery(order.id, rep_a, "2026-03-02", {order.lines[0].id: "2"})
        assert order.status == orders.DELIVERED
        with pytest.raises(RuleViolation, match="delivered order cannot be cancelled") as refused:
            orders.change_status(order.id, rep_a, orders.CANCELLED, reason="changed mind")
        assert refused.value.status == 409
        other = draft_order("rep_a", customer_id, [(product("B"), "1", "5", "0")])
        orders.submit(other.id, rep_a)
        orders.change_status(other.id, rep_a, orders.CANCELLED, reason="Customer withdrew")
        assert other.status == orders.CANCELLED and other.cancel_reason == "Customer withdrew"
        with pytest.raises(RuleViolation):
            orders.save_order({"title": "again"}, rep_a, pk=other.id, version=other.version)


def test_line_rules_and_rounding(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        rep_a = person("rep_a")
        order = draft_order("rep_a", customer_id, [])
        prod = product()
        with pytest.raises(RuleViolation) as bad:
            orders.save_line(order.id, {"product": prod.id, "quantity": "0", "unit_price": "-1",
                                        "discount": "101"}, rep_a)
        assert set(bad.value.errors) == {"quantity", "unit_price", "discount"}
        retired = product("Old", active=False)
        with pytest.raises(RuleViolation, match="no longer in use"):
            orders.save_line(order.id, {"product": retired.id, "quantity": "1"}, rep_a)
        line = orders.save_line(order.id, {"product": prod.id, "quantity": "3", "discount": "10"}, rep_a)
        assert line.unit_price == Decimal("33.33") and line.amount == Decimal("89.99")
        orders.save_line(order.id, {"product": prod.id, "quantity": "0.5", "unit_price": "0.05"}, rep_a)
        assert order.total == Decimal("90.02")  # 0.5 × 0.05 = 0.025 → 0.03 (half up)
        orders.delete_line(order.id, line.id, rep_a)
        assert order.total == Decimal("0.03")
        with pytest.raises(RuleViolation, match="at least one"):
            orders.submit(draft_order("rep_a", customer_id, []).id, rep_a)


def test_header_rules(app: Any, make_customer: Any) -> None:
    mine, theirs = make_customer("rep_a"), make_customer("rep_c")
    with app.app_context():
        rep_a = person("rep_a")
        with pytest.raises(RuleViolation, match="not found"):
            orders.save_order({"customer": db.session.get(Customer, theirs)}, rep_a)
        stranger = won_opportunity("rep_c", theirs, [])
        with pytest.raises(RuleViolation) as wrong:
            orders.save_order({"customer": db.session.get(Customer, mine), "opportunity": stranger,
                               "delivery_date": "2026-01-01", "order_date": "2026-02-01", "currency": "rmb!"}, rep_a)
        assert set(wrong.value.errors) == {"opportunity", "delivery_date", "currency"}
        with pytest.raises(RuleViolation):
            orders.save_order({"customer": db.session.get(Customer, mine), "owner": person("rep_c")}, rep_a)
        order = orders.save_order({"customer": db.session.get(Customer, mine)}, rep_a)
        assert order.owner_id == rep_a.id and order.order_date == clock.local_today()
        orders.save_line(order.id, {"product": product().id, "quantity": "1"}, rep_a)
        orders.submit(order.id, rep_a)
        with pytest.raises(RuleViolation, match="draft"):
            orders.save_order({"currency": "USD"}, rep_a, pk=order.id, version=order.version)
        changed = orders.save_order({"payment_due": "2099-01-01"}, rep_a, pk=order.id, version=order.version)
        assert changed.payment_due == date(2099, 1, 1)


def test_only_a_won_opportunity_becomes_an_order_and_a_second_is_warned(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        rep_a = person("rep_a")
        open_one = won_opportunity("rep_a", customer_id, [], stage_code="proposal")
        with pytest.raises(RuleViolation, match="won"):
            orders.order_from_opportunity(open_one.id, rep_a)
        won = won_opportunity("rep_a", customer_id, [(product(), "1", "10", "0")])
        orders.order_from_opportunity(won.id, rep_a)
        second, warning = orders.order_from_opportunity(won.id, rep_a)
        assert warning and "1" in warning and second.total == Decimal("10.00")
        with pytest.raises(NotFound):
            orders.order_from_opportunity(won.id, person("rep_c"))


def test_overdue_lists_use_the_crm_day_and_scope(app: Any, make_customer: Any) -> None:
    mine, theirs = make_customer("rep_a"), make_customer("rep_c")
    with app.app_context():
        rep_a, rep_c = person("rep_a"), person("rep_c")
        yesterday = clock.local_today() - timedelta(days=1)
        late = draft_order("rep_a", mine, [(product(), "2", "10", "0")], order_date=yesterday,
                           delivery_date=yesterday, payment_due=yesterday)
        on_time = draft_order("rep_a", mine, [(product("B"), "1", "10", "0")], delivery_date=clock.local_today(),
                              payment_due=clock.local_today())
        other = draft_order("rep_c", theirs, [(product("C"), "1", "10", "0")], order_date=yesterday,
                            delivery_date=yesterday, payment_due=yesterday)
        for item, user in ((late, rep_a), (on_time, rep_a), (other, rep_c)):
            orders.submit(item.id, user)
        assert db.session.scalars(orders.overdue_deliveries(rep_a)).all() == [late]
        assert db.session.scalars(orders.overdue_payments(rep_a)).all() == [late]
        assert db.session.scalars(orders.overdue_deliveries(person("admin"))).all() == [late, other]
        orders.record_delivery(late.id, rep_a, yesterday, {late.lines[0].id: "2"})
        orders.record_payment(late.id, rep_a, yesterday, "20", None)
        assert db.session.scalars(orders.overdue_deliveries(rep_a)).all() == []
        assert db.session.scalars(orders.overdue_payments(rep_a)).all() == []


def test_out_of_scope_orders_are_not_found(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        order = draft_order("rep_a", customer_id, [(product(), "1", "10", "0")])
        rep_c = person("rep_c")
        calls = (
            lambda: orders.save_line(order.id, {"product": order.lines[0].product_id, "quantity": "1"}, rep_c),
            lambda: orders.delete_line(order.id, order.lines[0].id, rep_c),
            lambda: orders.submit(order.id, rep_c),
            lambda: orders.change_status(order.id, rep_c, orders.CANCELLED, reason="x"),
            lambda: orders.record_delivery(order.id, rep_c, "2026-03-02", {order.lines[0].id: "1"}),
            lambda: orders.record_payment(order.id, rep_c, "2026-03-02", "1", None),
            lambda: orders.save_order({"title": "x"}, rep_c, pk=order.id, version=order.version),
            lambda: orders.delete_order(order.id, rep_c),
        )
        for call in calls:
            with pytest.raises(NotFound):
                call()
        assert orders.delete_order(order.id, person("manager")) is None  # East's manager sees rep_a's


def test_demo_orders_add_up(app: Any, make_customer: Any) -> None:
    for owner in ("rep_a", "rep_b", "rep_c"):
        make_customer(owner)
    with app.app_context():
        product("Server", "4000.00"), product("Cable", "33.33")
        assert orders.build_demo(db.session, [person("rep_a")]) == 3
        made = db.session.scalars(select(SalesOrder).order_by(SalesOrder.id)).all()
        assert [item.status for item in made] == [orders.DRAFT, orders.DELIVERING, orders.CLOSED]
        for item in made:
            assert item.code.startswith("SO")
            assert item.total == sum((line.amount for line in item.lines), Decimal(0))
            assert item.paid_amount == sum((payment.amount for payment in item.payments), Decimal(0))
        assert made[2].paid_percent == made[2].delivered_percent == Decimal("100.0")
        assert Decimal(0) < made[1].delivered_percent < Decimal(100)


def test_overdue_reminders_tell_the_owner_once(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    with app.app_context():
        rep_a = person("rep_a")
        yesterday = clock.local_today() - timedelta(days=1)
        order = draft_order("rep_a", customer_id, [(product(), "2", "10", "0")], order_date=yesterday,
                            delivery_date=yesterday, payment_due=yesterday)
        orders.submit(order.id, rep_a)
        db.session.commit()
        assert orders.overdue_reminders() == 2
        assert orders.overdue_reminders() == 0  # once per occasion
        events = sorted(db.session.scalars(select(Notification.event).where(Notification.user_id == rep_a.id)))
        assert events == ["order_delivery_overdue", "order_payment_overdue"]
        orders.save_order({"delivery_date": clock.local_today()}, rep_a, pk=order.id, version=order.version)
        db.session.commit()
        assert orders.overdue_reminders() == 0  # delivery not overdue any more; payment told already
        assert orders.overdue_reminders(today=clock.local_today() + timedelta(days=1)) == 1  # the new date


def test_two_payments_at_once_never_pay_more_than_open(app: Any, make_customer: Any) -> None:
    from tests.concurrency import at_once

    customer_id = make_customer("rep_a")
    with app.app_context():
        order = draft_order("rep_a", customer_id, [(product(), "1", "100", "0")])
        orders.submit(order.id, person("rep_a"))
        db.session.commit()
        pk = order.id

    def pay() -> str:
        try:
            orders.record_payment(pk, person("rep_a"), "2026-03-02", "100", None)
            db.session.commit()
            return "paid"
        except RuleViolation as exc:
            db.session.rollback()
            return type(exc).__name__

    results = at_once(app, pay)
    assert results.count("paid") == 1 and set(results) - {"paid"} <= {"OverPayment", "StaleRecord"}, results
    with app.app_context():
        item = db.session.get(SalesOrder, pk)
        assert item.paid_amount == Decimal("100.00") and len(item.payments) == 1


def test_order_headers_import_through_the_use_case(app: Any, make_customer: Any, tmp_path: Any) -> None:
    """The import (headers in Chinese) creates order headers only; a row naming a customer
    outside the importer's scope or a delivery date before the order date is rejected."""
    from app.services.importing import columns, declared, engine, reading
    from tests.app.services.importing.conftest import write_xlsx

    mine, theirs = make_customer("rep_a"), make_customer("rep_c")
    with app.app_context():
        codes = {pk: db.session.get(Customer, pk).code for pk in (mine, theirs)}
        path = write_xlsx(tmp_path / "订单.xlsx", {"订单": [
            ["订单编号", "客户编号", "订单名称", "下单日期", "交货日期", "收款日期"],
            ["", codes[mine], "导入订单", "2026-03-01", "2026-03-20", "2026-04-01"],
            ["", codes[theirs], "别人的客户", "2026-03-01", "2026-03-20", ""],
            ["", codes[mine], "日期错误", "2026-03-01", "2026-02-01", ""],
        ]})
        table = reading.read_table(path)
        mapping = columns.auto_map(columns.MODELS["order"], table.headers)
        result = declared.run_import(table, mapping, engine.Settings("order", "create", "code"), person("rep_a"),
                                     True, label="test")
        assert result.summary()["created"] == 1 and result.rejected == 2
        made = db.session.scalars(select(SalesOrder)).one()
        assert (made.title, made.currency, made.owner_id, made.status, made.total) == (
            "导入订单", "CNY", user_id("rep_a"), orders.DRAFT, Decimal("0.00"))
        assert made.code.startswith("SO") and str(made.delivery_date) == "2026-03-20"


def test_a_product_on_an_order_line_is_not_deleted(app: Any, make_customer: Any) -> None:
    """Only opportunity lines were counted: on PostgreSQL the delete failed on the order
    line's foreign key (500), on SQLite the line kept a product that no longer existed."""
    from app.services import products

    customer_id = make_customer("rep_a")
    with app.app_context():
        item = product("Sold once")
        draft_order("rep_a", customer_id, [(item, "1", "10", "0")])
        db.session.commit()
        with pytest.raises(RuleViolation) as refused:
            products.delete_product(item.id, person("admin"))
        assert refused.value.status == 409 and "order lines" in str(refused.value)
        db.session.rollback()
        assert db.session.get(Product, item.id) is not None
        db.session.remove()
