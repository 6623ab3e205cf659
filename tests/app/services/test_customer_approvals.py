"""The customer changes approvals gate (issue 15): archive of a won customer, level,
key contact data, becoming won (001: only with a contract number)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer
from app.models.approvals import ApprovalPolicy, ApprovalRequest
from app.models.dictionaries import CustomerType
from app.services import approvals, customers
from app.services import settings as crm_settings
from app.services.errors import RuleViolation


def _user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def test_bulk_archive_holds_the_won_one_and_archives_the_rest(app: Any, make_customer: Any,
                                                              department_managers: Any) -> None:
    won, plain = make_customer("rep_a", type_code="won"), make_customer("rep_a")
    with app.app_context():
        archived, refused = customers.archive_customers([won, plain], _user("rep_a"))
        db.session.commit()
        assert [c.id for c in archived] == [plain] and refused == []
        held = db.session.scalars(select(ApprovalRequest)).one()
        assert (held.kind, held.record_id) == ("customer.archive", won)
        assert db.session.get(Customer, won).archived_at is None
        with pytest.raises(RuleViolation):  # a second request while one waits
            customers.archive_customers([won], _user("rep_a"))
        db.session.rollback()
        approvals.approve(held.id, _user("manager"))  # outside a request: no step-up asked
        db.session.commit()
        assert db.session.get(Customer, won).archived_at is not None


def test_without_a_policy_a_rep_is_refused_as_before(app: Any, make_customer: Any) -> None:
    won = make_customer("rep_a", type_code="won")
    with app.app_context():
        for policy in db.session.scalars(select(ApprovalPolicy)):
            policy.active = False
        db.session.commit()
        archived, refused = customers.archive_customers([won], _user("rep_a"))
        assert archived == [] and "won customer" in refused[0]
        assert db.session.scalars(select(ApprovalRequest)).all() == []


def test_level_without_policy_applies_at_once(app: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        db.session.scalars(select(ApprovalPolicy).where(ApprovalPolicy.kind == "customer.level")).one().active = False
        db.session.commit()
        from app.models.dictionaries import CustomerLevel

        level = db.session.scalars(select(CustomerLevel)).first()
        saved = customers.save_customer({"level": level}, _user("rep_a"), pk=pk, version=1)
        db.session.commit()
        assert saved.held_for_approval == [] and db.session.get(Customer, pk).level_id == level.id


def _won() -> CustomerType:
    return db.session.scalars(select(CustomerType).where(CustomerType.code == "won")).one()


def test_won_needs_a_contract_unless_switched_off(app: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        with pytest.raises(RuleViolation) as exc:
            customers.save_customer({"type": _won()}, _user("rep_a"), pk=pk, version=1)
        assert "type" in exc.value.errors
        db.session.rollback()
        with pytest.raises(RuleViolation):  # a new customer made won at once, too
            customers.save_customer({"name": "Fresh Co", "type": _won()}, _user("rep_a"))
        db.session.rollback()
        crm_settings.save({"won_needs_contract": False}, _user("admin"))
        db.session.commit()
        customers.save_customer({"type": _won()}, _user("rep_a"), pk=pk, version=1)
        db.session.commit()
        assert db.session.get(Customer, pk).type.code == "won"


def test_becoming_won_held_when_a_policy_exists(app: Any, make_customer: Any, department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        db.session.add(ApprovalPolicy(name="Won", kind="customer.won", active=True, position=0))
        db.session.commit()
        saved = customers.save_customer({"type": _won()}, _user("rep_a"), pk=pk, version=1, contract_number="HT-1")
        db.session.commit()
        request = saved.held_for_approval[0]
        assert db.session.get(Customer, pk).type.code == "potential"
        approvals.approve(request.id, _user("manager"))
        db.session.commit()
        assert request.status == approvals.APPROVED
        assert db.session.get(Customer, pk).type.code == "won"
