"""Demand analysis (客户需求分析, 001 表3): every required field of the table refused with its
label, defaults (owner = writer, status = pending), the owner rule, the customer's scope,
numbering and the import of the manual's own spreadsheet."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer
from app.models.service import Demand, DemandStatus, DemandType, Priority
from app.services import demands
from app.services.errors import NotFound, RuleForbidden, RuleViolation, StaleRecord
from tests.conftest import user_id

pytestmark = pytest.mark.usefixtures("shanghai")


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def entry(model: type, code: str) -> Any:
    return db.session.scalar(select(model).where(model.code == code))


def values(customer_id: int | None, **extra: Any) -> dict[str, Any]:
    return {"customer": db.session.get(Customer, customer_id) if customer_id else None,
            "demand_type": entry(DemandType, "tech_support"), "description": "ERP 接口同步失败\n需要远程排查",
            "priority": entry(Priority, "high"), **extra}


def test_a_new_demand_is_numbered_pending_and_the_writers(ctx: Any, make_customer: Any) -> None:
    item = demands.save_demand(values(make_customer("rep_a")), user("rep_a"))
    db.session.commit()
    assert item.code.startswith("D") and len(item.code) > 9
    assert item.status.code == "pending"
    assert item.owner_id == user_id("rep_a")
    assert item.description == "ERP 接口同步失败\n需要远程排查"


@pytest.mark.parametrize(("field", "label"), [
    ("customer", "Customer"), ("demand_type", "Demand type"), ("description", "Demand description"),
    ("priority", "Priority")])
def test_each_required_field_of_table_3_is_refused_with_its_label(ctx: Any, make_customer: Any, field: str,
                                                                  label: str) -> None:
    given = values(make_customer("rep_a"))
    given[field] = None if field != "description" else "  \n "
    with pytest.raises(RuleViolation) as caught:
        demands.save_demand(given, user("rep_a"))
    assert set(caught.value.errors) == {field}
    assert label in caught.value.errors[field]


def test_status_and_owner_cannot_be_emptied_on_an_edit(ctx: Any, make_customer: Any) -> None:
    item = demands.save_demand(values(make_customer("rep_a")), user("rep_a"))
    db.session.commit()
    with pytest.raises(RuleViolation) as caught:
        demands.save_demand({"status": None}, user("rep_a"), pk=item.id, version=item.version)
    assert "Completion status" in caught.value.errors["status"]


def test_solution_and_status_change_and_stale_versions_are_refused(ctx: Any, make_customer: Any) -> None:
    item = demands.save_demand(values(make_customer("rep_a")), user("rep_a"))
    db.session.commit()
    version = item.version
    changed = demands.save_demand({"solution": "远程排查接口配置", "status": entry(DemandStatus, "in_progress")},
                                  user("rep_a"), pk=item.id, version=version)
    db.session.commit()
    assert changed.status.code == "in_progress" and changed.solution == "远程排查接口配置"
    with pytest.raises(StaleRecord):
        demands.save_demand({"solution": "x"}, user("rep_a"), pk=item.id, version=version)


def test_another_reps_customer_is_not_found_and_their_demands_are_invisible(ctx: Any, make_customer: Any) -> None:
    theirs = make_customer("rep_b")
    with pytest.raises(RuleViolation) as caught:
        demands.save_demand(values(theirs), user("rep_a"))
    assert caught.value.errors["customer"] == "Customer not found."
    item = demands.save_demand(values(theirs), user("rep_b"))
    db.session.commit()
    with pytest.raises(NotFound):
        demands.save_demand({"solution": "mine now"}, user("rep_a"), pk=item.id, version=item.version)
    assert demands.for_customer(user("rep_a"), theirs) == []
    assert [d.id for d in demands.for_customer(user("manager"), theirs)] == [item.id]  # East department


def test_the_owner_must_be_in_scope_active_and_able_to_see_the_customer(ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    with pytest.raises(RuleForbidden):  # rep_a cannot hand records to rep_b
        demands.save_demand(values(customer, owner=user("rep_b")), user("rep_a"))
    with pytest.raises(RuleViolation) as caught:  # manager may assign rep_b, who cannot see rep_a's customer
        demands.save_demand(values(customer, owner=user("rep_b")), user("manager"))
    assert "cannot see this customer" in caught.value.errors["owner"]
    item = demands.save_demand(values(customer, owner=user("rep_a")), user("manager"))
    assert item.owner_id == user_id("rep_a")


def test_service_may_write_a_demand_for_any_customer(ctx: Any, make_customer: Any) -> None:
    item = demands.save_demand(values(make_customer("rep_c")), user("service"))
    db.session.commit()
    assert item.owner_id == user_id("service")


def test_an_inactive_type_cannot_be_newly_picked(ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    kind = entry(DemandType, "custom")
    kind.active = False
    db.session.flush()
    try:
        with pytest.raises(RuleViolation) as caught:
            demands.save_demand(values(customer, demand_type=kind), user("rep_a"))
        assert "demand_type" in caught.value.errors
    finally:
        db.session.rollback()


def test_the_declaration_lists_table_3s_columns_with_the_manuals_headers(ctx: Any) -> None:
    headers = {field.name: field.label_zh for field in demands.DEMAND.fields}
    assert headers == {"code": "需求编号", "customer": "客户编号", "demand_type": "需求类型", "description": "需求描述",
                       "priority": "优先级", "solution": "解决方案", "owner": "负责人", "status": "完成状态"}
    required = {field.name for field in demands.DEMAND.fields if field.is_required}
    assert required == {"customer", "demand_type", "description", "priority"}
    assert db.session.scalar(select(Demand.id).limit(1)) is None
