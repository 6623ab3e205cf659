"""Scope attacks on the metrics (issue 17): a rep's figures never count another rep's
records, a manager's never count the South, filters outside the viewer's scope are refused,
and a drill-down into another rep's category lists nothing of theirs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.extensions import db
from app.models.customers import CustomerStatusChange
from app.models.dictionaries import CustomerType
from app.models.org import CrmUser, Department
from app.services import metrics
from app.services.errors import RuleViolation
from app.services.metrics import Filters, Period
from tests.app.services.test_metrics import lead, opportunity, order, target, ticket

pytestmark = pytest.mark.usefixtures("shanghai")

NOV = Period(date(2026, 11, 1), date(2026, 12, 1))
IN_NOV = datetime(2026, 11, 10, tzinfo=UTC)
REPS = ("rep_a", "rep_b", "rep_c")


def user(name: str) -> CrmUser:
    return db.session.scalars(db.select(CrmUser).filter_by(username=name)).one()


def department(name: str) -> int:
    return db.session.scalars(db.select(Department.id).filter_by(name=name)).one()


@pytest.fixture
def everyone(ctx: Any, make_customer: Any, make_follow_up: Any) -> dict[str, dict[str, Any]]:
    """The same records for rep_a, rep_b (East Team) and rep_c (South): one of each kind."""
    made: dict[str, dict[str, Any]] = {}
    lost = db.session.scalars(db.select(CustomerType.id).filter_by(code="lost")).one()
    for name in REPS:
        customer = make_customer(name, created_on=IN_NOV)
        old = make_customer(name, created_on=datetime(2026, 9, 1, tzinfo=UTC))
        make_follow_up(customer, name, followed_at=datetime(2026, 10, 1, tzinfo=UTC))
        follow_up = make_follow_up(customer, name, followed_at=IN_NOV)
        db.session.add(CustomerStatusChange(customer_id=old, to_type_id=lost, changed_at=IN_NOV))
        db.session.commit()
        made[name] = {
            "customer": customer, "old": old, "follow_up": follow_up,
            "opportunity": opportunity(name, customer, "proposal", amount="1000.00", close=date(2026, 11, 20),
                                       history=("contact", "needs", "proposal")),
            "lead": lead(name, "qualified", IN_NOV),
            "order": order(name, customer, "approved", date(2026, 11, 5), {"Pump": "100.00"}),
            "ticket": ticket(customer, status="resolved", resolved_at=IN_NOV, rated_at=IN_NOV, satisfaction=4),
        }
        target(name, date(2026, 11, 1), "400.00")
    return made


COUNTED = ("new_customers", "follow_ups", "won_customers", "churned_customers")


def test_a_rep_counts_only_their_own_records(everyone: dict[str, dict[str, Any]]) -> None:
    rep_a = user("rep_a")
    for filters in (Filters(NOV), Filters(NOV, owner_id=rep_a.id)):
        assert metrics.figure("new_customers", rep_a, filters).value == 1
        assert metrics.figure("follow_ups", rep_a, filters).value == 1
        assert metrics.figure("churned_customers", rep_a, filters).value == 1
        assert metrics.figure("forecast_month", rep_a, filters).value == Decimal("500.00")
        assert metrics.figure("funnel", rep_a, filters).series[0].values[:4] == [1, 1, 0, 1]
        assert metrics.figure("sales_by_rep", rep_a, filters).keys == [rep_a.id]
        assert metrics.figure("sales_by_product", rep_a, filters).series[0].values == [Decimal("100.00")]
        assert metrics.figure("pipeline_by_rep", rep_a, filters).keys == [rep_a.id]
    # tickets: the rep's ticket scope (their customers'); an owner filter there means the assignee
    assert metrics.figure("satisfaction", rep_a, Filters(NOV)).series[0].values == [0, 0, 0, 1, 0]
    assert metrics.figure("sla_compliance", rep_a, Filters(NOV)).series[0].values == [1, 0]
    assert metrics.figure("satisfaction", rep_a, Filters(NOV, owner_id=rep_a.id)).value is None
    # the whole company sees three of each
    admin = user("admin")
    assert metrics.figure("new_customers", admin, Filters(NOV)).value == 3
    assert metrics.figure("forecast_month", admin, Filters(NOV)).value == Decimal("1500.00")


def test_a_rep_naming_another_owner_is_refused_not_ignored(everyone: dict[str, dict[str, Any]]) -> None:
    rep_a = user("rep_a")
    for other in ("rep_b", "rep_c", "manager"):
        with pytest.raises(RuleViolation) as caught:
            metrics.parse_filters({"owner": str(user(other).id)}, rep_a)
        assert "owner" in caught.value.errors
    for name in ("East", "East Team", "South"):
        with pytest.raises(RuleViolation) as caught:
            metrics.parse_filters({"department": str(department(name))}, rep_a)
        assert "department" in caught.value.errors
    assert metrics.parse_filters({"owner": str(rep_a.id)}, rep_a).owner_id == rep_a.id


@pytest.mark.parametrize("raw", ["abc", "1.5", "-", "99999999999999999999999"])
def test_parse_filters_refuses_malformed_ids(ctx: Any, raw: str) -> None:
    with pytest.raises(RuleViolation):
        metrics.parse_filters({"owner": raw}, user("admin"))


def test_a_manager_sees_the_department_tree_not_the_south(everyone: dict[str, dict[str, Any]]) -> None:
    manager = user("manager")
    assert metrics.figure("new_customers", manager, Filters(NOV)).value == 2          # rep_a and rep_b
    by_rep = metrics.figure("sales_by_rep", manager, Filters(NOV))
    assert set(by_rep.keys) == {user("rep_a").id, user("rep_b").id}
    assert set(metrics.figure("sales_by_department", manager, Filters(NOV)).categories) == {"East", "East Team"}
    assert metrics.figure("churned_customers", manager, Filters(NOV)).value == 2
    assert metrics.figure("funnel", manager, Filters(NOV)).series[0].values[0] == 2
    attainment = metrics.figure("target_attainment", manager, Filters(NOV))
    assert attainment.value == Decimal("25.0")   # 200 of 800: rep_c's target is not theirs either
    # filters inside the tree work; the South, its people and a made-up id are refused
    team = metrics.parse_filters({"period": "2026-11", "department": str(department("East Team"))}, manager)
    assert metrics.figure("new_customers", manager, team).value == 1
    for args in ({"department": str(department("South"))}, {"owner": str(user("rep_c").id)},
                 {"owner": str(user("manager_s").id)}, {"owner": "987654"}, {"department": "987654"}):
        with pytest.raises(RuleViolation):
            metrics.parse_filters(args, manager)


def test_an_admin_may_filter_anyone(everyone: dict[str, dict[str, Any]]) -> None:
    admin = user("admin")
    south = metrics.parse_filters({"period": "2026-11", "department": str(department("South"))}, admin)
    assert metrics.figure("new_customers", admin, south).value == 1
    rep_c = metrics.parse_filters({"period": "2026-11", "owner": str(user("rep_c").id)}, admin)
    assert metrics.figure("sales_by_rep", admin, rep_c).keys == [user("rep_c").id]


def test_drill_into_another_reps_category_lists_nothing_of_theirs(everyone: dict[str, dict[str, Any]]) -> None:
    rep_a = user("rep_a")
    theirs = [user("rep_b").id, user("rep_c").id]
    for key in ("sales_by_rep", "pipeline_by_rep", "target_attainment"):
        for other in theirs:
            assert db.session.scalars(metrics.drill(key, rep_a, Filters(NOV), other)).all() == []
    # and the unfiltered lists hold only rep_a's rows
    own = everyone["rep_a"]
    for key, expected in (("new_customers", {own["customer"]}), ("follow_ups", {own["follow_up"]}),
                          ("churned_customers", {own["old"]}), ("forecast_month", {own["opportunity"]}),
                          ("sales_by_rep", {own["order"]}), ("sla_compliance", {own["ticket"]}),
                          ("satisfaction", {own["ticket"]})):
        assert {row.id for row in db.session.scalars(metrics.drill(key, rep_a, Filters(NOV)))} == expected, key


@pytest.mark.parametrize("name", ["rep_a", "manager", "admin"])
def test_drill_down_lists_match_the_numbers(everyone: dict[str, dict[str, Any]], name: str) -> None:
    viewer = user(name)
    for key in ("new_customers", "follow_ups", "churned_customers", "won_customers", "forecast_month"):
        got = metrics.figure(key, viewer, Filters(NOV))
        rows = db.session.scalars(metrics.drill(key, viewer, Filters(NOV))).all()
        if got.unit == "count":
            assert len(rows) == got.value, key
        else:
            assert len(rows) == metrics.figure("funnel", viewer, Filters(NOV)).series[0].values[3]
    for key in ("sales_by_rep", "sales_by_department", "sales_by_product", "pipeline_by_stage", "pipeline_by_rep",
                "funnel", "satisfaction", "open_tickets_by_priority", "stale_opportunities"):
        got = metrics.figure(key, viewer, Filters(NOV))
        for category, value in zip(got.keys, got.series[0].values, strict=True):
            rows = db.session.scalars(metrics.drill(key, viewer, Filters(NOV), category)).all()
            if got.unit == "count":
                assert len(rows) == value, (key, category)
            elif key == "sales_by_product":  # the order lines: their amounts, not the orders' totals
                assert {type(r).__name__ for r in rows} == {"OrderLine"}, (key, category)
                assert sum((r.amount for r in rows), Decimal("0.00")) == value, (key, category)
            elif key.startswith("sales"):
                assert sum((r.total for r in rows), Decimal("0.00")) == value, (key, category)
            else:
                assert sum((r.amount for r in rows), Decimal("0.00")) == value, (key, category)


def test_admin_figures_are_empty_for_others(everyone: dict[str, dict[str, Any]]) -> None:
    for name in ("rep_a", "manager"):
        viewer = user(name)
        for key in ("users_online", "failed_jobs", "security_alerts"):
            assert not metrics.figure(key, viewer, Filters(NOV)).value, (name, key)
            assert db.session.scalars(metrics.drill(key, viewer, Filters(NOV))).all() == []
