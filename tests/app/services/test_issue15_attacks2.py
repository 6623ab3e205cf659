"""Second attack on issue 15 through the use cases: other entry points to the gated
customer fields, other concurrent writes, approver resolution, typed numbers, and
messages frozen in one language.

Each test states the attack; a failing test is a finding (see attacker2's report)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from flask_babel import force_locale
from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from app.models.approvals import ApprovalPolicy, ApprovalRequest, ApprovalStep
from app.models.dictionaries import CustomerLevel
from app.models.notifications import Notification
from app.models.org import CrmUser
from app.models.sales import Contact, Product
from app.services import approvals, contacts, customers, notifications, orders
from app.services.errors import NotFound, RuleViolation
from tests.concurrency import at_once
from tests.conftest import user_id


def _user(name: str) -> Any:
    return db.session.get(CrmUser, user_id(name))


def _contact_policy() -> None:
    """001 使用规范二 switched on: key contact data changed by someone other than the
    owner or an admin waits for the admin."""
    policy = ApprovalPolicy(name="Key contact", kind="customer.contact", position=9, active=True)
    policy.steps = [ApprovalStep(position=0, approver="user", user_id=user_id("admin"))]
    db.session.add(policy)
    db.session.commit()


def _primary(pk: int) -> Contact:
    return db.session.scalars(select(Contact).where(Contact.customer_id == pk, Contact.is_primary.is_(True))).one()


def _other_level(customer: Customer) -> CustomerLevel:
    return db.session.scalars(select(CustomerLevel).where(CustomerLevel.id != (customer.level_id or 0))
                              .order_by(CustomerLevel.id)).first()


# --- 1. gated key contact data through the primary contact ---------------------------------


def test_editing_the_primary_contact_holds_a_key_contact_change(app: Any, make_customer: Any,
                                                                department_managers: Any) -> None:
    """The manager (not the owner) may not change the customer's phone alone (the import,
    the sync and the form hold it). Editing the PRIMARY CONTACT's phone mirrors straight into
    ``Customer.contact_phone``: the same change, no request."""
    pk = make_customer("rep_a", contact_phone="13812345678")
    with app.app_context():
        _contact_policy()
        contact = _primary(pk)
        contacts.save_contact({"phone": "13999990000", "name": "Mallory"}, _user("manager"), pk=contact.id,
                              version=contact.version)
        db.session.commit()
        customer = db.session.get(Customer, pk)
        assert (customer.contact_phone, customer.contact_name) != ("13999990000", "Mallory") \
            or approvals.pending("customer", pk, "customer.contact") is not None, \
            "key contact data changed through the primary contact, without approval"
        assert customer.contact_phone == "13812345678", "the customer's phone changed before approval"


def test_making_another_contact_primary_holds_a_key_contact_change(app: Any, make_customer: Any,
                                                                   department_managers: Any) -> None:
    """Same gate, other door: the manager adds a contact and ticks 'primary' (or uses
    set_primary): the customer's contact name and phone follow, without approval."""
    pk = make_customer("rep_a", contact_phone="13812345678", contact_name="Alice")
    with app.app_context():
        _contact_policy()
        try:  # refused (another person would become the contact: it is asked on the customer's page)
            contacts.save_contact({"customer": db.session.get(Customer, pk), "name": "Mallory",
                                   "phone": "13999990000", "is_primary": True}, _user("manager"))
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            assert "customer's page" in str(exc)
        customer = db.session.get(Customer, pk)
        assert (customer.contact_name, customer.contact_phone) == ("Alice", "13812345678"), \
            "the customer's key contact data moved to a new primary contact without approval"


# --- 2. a level request approved while the rep edits the customer ------------------------------


def test_level_approval_racing_a_customer_edit_ends_cleanly(app: Any, make_customer: Any,
                                                            department_managers: Any) -> None:
    """The manager approves the level while the owner saves a note on the same customer:
    each side ends in success or a clean refusal (RuleViolation, e.g. 409), never a raw
    database error; the request is not left half-applied."""
    pk = make_customer("rep_a")
    with app.app_context():
        customer = db.session.get(Customer, pk)
        saved = customers.save_customer({"level": _other_level(customer)}, _user("rep_a"), pk=pk,
                                        version=customer.version)
        db.session.commit()
        rid, version = saved.held_for_approval[0].id, db.session.get(Customer, pk).version
        db.session.remove()
    turn = iter(("approve", "edit"))

    def work() -> str:
        mine = next(turn)
        try:
            if mine == "approve":
                approvals.approve(rid, _user("manager"))
            else:
                customers.save_customer({"note": "called today"}, _user("rep_a"), pk=pk, version=version)
            db.session.commit()
            return f"{mine}:ok"
        except RuleViolation:
            db.session.rollback()
            return f"{mine}:refused"

    results = at_once(app, work)
    with app.app_context():
        request = db.session.get(ApprovalRequest, rid)
        customer = db.session.get(Customer, pk)
        if request.status == approvals.APPROVED:
            assert customer.level_id == json.loads(request.change)["level_id"], results


# --- 3. approver resolution ----------------------------------------------------------------------


def test_a_named_user_step_naming_the_requester_goes_to_someone_else(app: Any, make_customer: Any,
                                                                     department_managers: Any) -> None:
    """A level policy whose only step names rep_a; rep_a asks: rep_a must not be an approver."""
    pk = make_customer("rep_a")
    with app.app_context():
        for policy in db.session.scalars(select(ApprovalPolicy).where(ApprovalPolicy.kind == "customer.level")):
            policy.steps = [ApprovalStep(position=0, approver="user", user_id=user_id("rep_a"))]
        db.session.commit()
        customer = db.session.get(Customer, pk)
        saved = customers.save_customer({"level": _other_level(customer)}, _user("rep_a"), pk=pk,
                                        version=customer.version)
        db.session.commit()
        request = saved.held_for_approval[0]
        assert user_id("rep_a") not in [a.user_id for a in request.approvers]
        assert request.approvers, "nobody decides the request"


def test_an_archived_customer_is_not_changed_by_a_waiting_level_request(app: Any, make_customer: Any,
                                                                        department_managers: Any) -> None:
    """The customer is archived while its level request waits: approving must not write a
    level onto an archived record. The archive ends the request (withdrawn, requester and
    approver told), so it is no longer the manager's to approve."""
    pk = make_customer("rep_a")
    with app.app_context():
        customer = db.session.get(Customer, pk)
        level_before = customer.level_id
        saved = customers.save_customer({"level": _other_level(customer)}, _user("rep_a"), pk=pk,
                                        version=customer.version)
        db.session.commit()
        rid = saved.held_for_approval[0].id
        customers.archive_customers([pk], _user("rep_a"))
        db.session.commit()
        assert db.session.get(ApprovalRequest, rid).status == approvals.WITHDRAWN
        with pytest.raises((NotFound, RuleViolation)):
            approvals.approve(rid, _user("manager"))
        db.session.rollback()
        assert db.session.get(Customer, pk).level_id == level_before
        assert db.session.get(ApprovalRequest, rid).status == approvals.WITHDRAWN


# --- 4. typed numbers ---------------------------------------------------------------------------


def _draft_order(make_customer: Any) -> tuple[int, int]:
    pk = make_customer("rep_a")
    product = Product(name="Widget", list_price=Decimal("100.00"), active=True)
    db.session.add(product)
    db.session.flush()
    order = orders.save_order({"customer": db.session.get(Customer, pk), "title": "Typed"}, _user("rep_a"))
    db.session.commit()
    return order.id, product.id


@pytest.mark.parametrize("field,raw", [("unit_price", "12e2"), ("unit_price", "1_000"), ("quantity", "1e1"),
                                       ("quantity", "1_0"), ("discount", "1e1"), ("discount", "1_0"),
                                       ("unit_price", "-0")])
def test_order_line_numbers_in_odd_notations_are_refused(app: Any, make_customer: Any, field: str,
                                                         raw: str) -> None:
    """Nobody types "12e2" for 1200 yuan or "1_000" for 1000 (Python's Decimal syntax, not a
    person's): such text is a typo and must be refused, not read as another number."""
    with app.app_context():
        order_id, product_id = _draft_order(make_customer)
        values = {"product": product_id, "quantity": "2", "unit_price": "10", field: raw}
        with pytest.raises(RuleViolation) as refused:
            line = orders.save_line(order_id, values, _user("rep_a"))
            pytest.fail(f"{field}={raw!r} was read as {getattr(line, field)}")
        assert field in refused.value.errors
        db.session.rollback()


# --- 5. messages frozen in the approver's language ------------------------------------------------


def test_a_conflict_notice_reads_in_the_requesters_language(app: Any, make_customer: Any,
                                                            department_managers: Any) -> None:
    """The manager (English screen) approves a level request on a customer changed
    meanwhile: the requester reads the conflict in Chinese — the reason must not stay in
    English (it is stored as text in the approver's language)."""
    pk = make_customer("rep_a")
    with app.app_context():
        customer = db.session.get(Customer, pk)
        saved = customers.save_customer({"level": _other_level(customer)}, _user("rep_a"), pk=pk,
                                        version=customer.version)
        db.session.commit()
        rid = saved.held_for_approval[0].id
        customer = db.session.get(Customer, pk)
        customer.level = db.session.scalars(select(CustomerLevel).order_by(CustomerLevel.id.desc())).first()
        db.session.commit()  # changed meanwhile (by a script / an admin)
        with app.test_request_context("/"), force_locale("en"):
            approvals.approve(rid, _user("manager"))
            db.session.commit()
        assert db.session.get(ApprovalRequest, rid).status == approvals.CONFLICT
        notice = db.session.scalars(select(Notification).where(
            Notification.user_id == user_id("rep_a"), Notification.event == approvals.CONFLICT_EVENT)).one()
        text = notifications.text_of(notice, True, language="zh")
        assert "The record was changed" not in text, text
