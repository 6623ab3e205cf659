"""Metrics defined once (issue 17): each figure against a hand-computed fixture, in the
CRM's zone (Asia/Shanghai: a month starts at 16:00 UTC the day before)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app import clock
from app.extensions import db
from app.models.customers import Customer
from app.models.org import CrmUser
from app.services import metrics
from app.services.errors import NotFound, RuleViolation
from app.services.metrics import Filters, Period

pytestmark = pytest.mark.usefixtures("shanghai")

NOV = Period(date(2026, 11, 1), date(2026, 12, 1))
OCT = Period(date(2026, 10, 1), date(2026, 11, 1))
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def user(name: str) -> CrmUser:
    return db.session.scalars(db.select(CrmUser).filter_by(username=name)).one()


def ids(stmt: Any) -> set[int]:
    return {row.id for row in db.session.scalars(stmt)}


# --- plumbing ---------------------------------------------------------------------------

def test_period_month_previous_and_instants(ctx: Any) -> None:
    assert Period.month_of(date(2026, 11, 17)) == NOV
    assert NOV.previous() == OCT
    assert Period.month_of(date(2026, 1, 5)).previous() == Period(date(2025, 12, 1), date(2026, 1, 1))
    assert NOV.instants() == (utc(2026, 10, 31, 16), utc(2026, 11, 30, 16))
    assert NOV.label == "2026-11"


def test_metric_unknown_key_is_not_found(ctx: Any) -> None:
    with pytest.raises(NotFound):
        metrics.metric("no_such_metric")
    with pytest.raises(NotFound):
        metrics.figure("no_such_metric", user("admin"), Filters(NOV))


def test_every_listed_key_is_defined_with_its_dashboard(ctx: Any) -> None:
    expected = {
        "sales": {"activities_today", "pipeline_by_stage", "forecast_month", "new_customers", "follow_ups"},
        "manager": {"funnel", "pipeline_by_rep", "sales_by_rep", "sales_by_department", "sales_by_product",
                    "target_attainment", "stale_opportunities", "follow_up_cycle", "won_customers",
                    "churned_customers", "churn_rate", "new_customers_trend"},
        "service": {"open_tickets_by_priority", "sla_compliance", "sla_breaches", "satisfaction",
                    "feedback_by_type"},
        "admin": {"users_online", "transfers", "failed_jobs", "security_alerts"},
    }
    for board, keys in expected.items():
        for key in keys:
            found = metrics.metric(key)
            assert found.dashboard == board, key
            assert str(found.help) and str(found.title)


def test_parse_filters_defaults_to_this_month_in_the_crm_zone(ctx: Any) -> None:
    # 2026-11-30 17:00 UTC is already December 1st in Shanghai
    with clock.frozen(utc(2026, 11, 30, 17)):
        got = metrics.parse_filters({}, user("admin"))
    assert got == Filters(Period(date(2026, 12, 1), date(2027, 1, 1)))
    assert metrics.parse_filters({"period": "2026-11"}, user("admin")).period == NOV


@pytest.mark.parametrize("period", ["2026-13", "26-11", "2026-1", "x", "2026-11-01"])
def test_parse_filters_refuses_a_bad_month(ctx: Any, period: str) -> None:
    with pytest.raises(RuleViolation) as caught:
        metrics.parse_filters({"period": period}, user("admin"))
    assert "period" in caught.value.errors


def test_new_customers_month_boundary_in_shanghai_and_previous(ctx: Any, make_customer: Any) -> None:
    make_customer("rep_a", created_on=utc(2026, 10, 31, 16, 30))   # Nov 1st 00:30 in Shanghai
    make_customer("rep_a", created_on=utc(2026, 10, 31, 15, 59))   # still October
    make_customer("rep_a", created_on=utc(2026, 11, 30, 15, 59))   # Nov 30th 23:59
    make_customer("rep_a", created_on=utc(2026, 11, 30, 16, 0))    # December
    make_customer("rep_a", created_on=utc(2026, 11, 5), archived_at=utc(2026, 11, 6))  # archived: out
    make_customer("rep_b", created_on=utc(2026, 11, 5))
    rep_a = user("rep_a")
    got = metrics.figure("new_customers", rep_a, Filters(NOV, owner_id=rep_a.id))
    assert (got.value, got.previous) == (2, 1)
    assert metrics.figure("new_customers", user("admin"), Filters(NOV)).value == 3
    rows = db.session.scalars(metrics.drill("new_customers", rep_a, Filters(NOV, owner_id=rep_a.id))).all()
    assert len(rows) == 2 and {c.owner_id for c in rows} == {rep_a.id}
    assert isinstance(db.session.get(Customer, rows[0].id), Customer)


def test_follow_ups_this_month_vs_last(ctx: Any, make_customer: Any, make_follow_up: Any) -> None:
    mine = make_customer("rep_a")
    theirs = make_customer("rep_c")
    make_follow_up(mine, "rep_a", followed_at=utc(2026, 10, 31, 16, 0))   # Nov in Shanghai
    make_follow_up(mine, "rep_a", followed_at=utc(2026, 11, 10))
    make_follow_up(mine, "rep_a", followed_at=utc(2026, 10, 10))
    make_follow_up(theirs, "rep_c", followed_at=utc(2026, 11, 10))
    rep_a = user("rep_a")
    got = metrics.figure("follow_ups", rep_a, Filters(NOV, owner_id=rep_a.id))
    assert (got.value, got.previous) == (2, 1)
    assert metrics.figure("follow_ups", user("admin"), Filters(NOV)).value == 3
    as_dict = got.as_dict()
    assert as_dict["value"] == 2 and as_dict["unit"] == "count" and as_dict["chart"] == "number"


@pytest.mark.parametrize("name", ["admin", "manager", "rep_a", "service", "viewer"])
def test_every_metric_computes_and_drills_for_every_role(ctx: Any, name: str, make_customer: Any) -> None:
    make_customer("rep_a", created_on=utc(2026, 11, 3))
    viewer = user(name)
    for key in metrics.METRICS:
        got = metrics.figure(key, viewer, Filters(NOV))
        assert got.key == key and got.as_dict()["title"]
        for series in got.series:
            assert len(series.values) == len(got.categories), key
        for category in [None, *got.keys]:
            db.session.execute(metrics.drill(key, viewer, Filters(NOV), category)).all()


# --- fixtures built by hand -------------------------------------------------------------------

def uid(name: str) -> int:
    return user(name).id


def dict_id(model: type, code: str) -> int:
    return db.session.scalars(db.select(model.id).where(model.code == code)).one()


def stage(code: str) -> Any:
    from app.models.sales import Stage
    return db.session.scalars(db.select(Stage).filter_by(code=code)).one()


_counter = iter(range(1, 1_000_000))


def opportunity(owner: str, customer: int, stage_code: str, *, amount: str = "100.00", created: datetime = NOW,
                close: date | None = None, history: tuple[str, ...] = (), override: int | None = None,
                changed: datetime | None = None) -> int:
    from app.models.sales import Opportunity, OpportunityStageChange
    item = Opportunity(code=f"O-T{next(_counter)}", customer_id=customer, owner_id=uid(owner), title="Deal",
                       stage_id=stage(stage_code).id, amount=Decimal(amount), expected_close=close,
                       probability_override=override, created_on=created, changed_on=changed or created,
                       stage_entered_at=created)
    db.session.add(item)
    db.session.flush()
    db.session.execute(db.delete(OpportunityStageChange).where(OpportunityStageChange.opportunity_id == item.id))
    for code in history:
        db.session.add(OpportunityStageChange(opportunity_id=item.id, to_stage_id=stage(code).id, changed_at=created))
    db.session.flush()
    if changed is not None:
        db.session.execute(db.update(Opportunity).where(Opportunity.id == item.id).values(changed_on=changed))
    db.session.commit()
    return item.id


def lead(owner: str, status: str, created: datetime) -> int:
    from app.models.sales import Lead
    item = Lead(code=f"L-T{next(_counter)}", company="Lead Co", owner_id=uid(owner), status=status, created_on=created)
    db.session.add(item)
    db.session.commit()
    return item.id


def order(owner: str, customer: int, status: str, day: date, lines: dict[str, str]) -> int:
    from app.models.orders import OrderLine, SalesOrder
    total = sum((Decimal(v) for v in lines.values()), Decimal("0"))
    item = SalesOrder(code=f"SO-T{next(_counter)}", customer_id=customer, owner_id=uid(owner), status=status,
                      order_date=day, total=total)
    db.session.add(item)
    db.session.flush()
    for position, (product, amount) in enumerate(lines.items()):
        db.session.add(OrderLine(order_id=item.id, position=position, product_id=product_id(product), quantity=1,
                                 unit_price=Decimal(amount), amount=Decimal(amount)))
    db.session.commit()
    return item.id


def product_id(name: str) -> int:
    from app.models.sales import Product
    found = db.session.scalars(db.select(Product.id).filter_by(name=name)).first()
    if found is None:
        item = Product(code=f"P-{name}", name=name)
        db.session.add(item)
        db.session.flush()
        found = item.id
    return found


def target(owner: str, month: date, amount: str) -> None:
    from app.models.reports import SalesTarget
    db.session.add(SalesTarget(user_id=uid(owner), month=month, amount=Decimal(amount)))
    db.session.commit()


def values(fig: metrics.Figure, series: int = 0) -> dict[Any, Any]:
    return dict(zip(fig.categories, fig.series[series].values, strict=True))


# --- funnel -------------------------------------------------------------------------------------

def test_funnel_counts_each_step_and_conversions(ctx: Any, make_customer: Any) -> None:
    for status in ("new", "qualified", "converted", "invalid"):
        lead("rep_a", status, utc(2026, 11, 2))
    lead("rep_a", "qualified", utc(2026, 10, 31, 15, 0))   # October 31st 23:00 in Shanghai: not November
    lead("rep_c", "qualified", utc(2026, 11, 2))
    mine = make_customer("rep_a")
    opportunity("rep_a", mine, "contact", history=("contact",))
    o2 = opportunity("rep_a", mine, "proposal", history=("contact", "needs", "proposal"))
    o3 = opportunity("rep_a", mine, "lost", history=("contact", "needs", "lost"))
    o4 = opportunity("rep_a", mine, "won", history=("contact", "needs", "proposal", "negotiation", "won"))
    opportunity("rep_a", mine, "won", created=utc(2026, 10, 2))   # created in October
    rep_a = user("rep_a")
    got = metrics.figure("funnel", rep_a, Filters(NOV, owner_id=rep_a.id))
    assert got.keys[:3] == ["leads", "qualified", "converted"]
    # leads of the period: 4 created → 2 qualified (qualified, converted) → 1 converted; then the
    # period's opportunities: 4 reached contact → 3 needs → 2 proposal → 1 negotiation → 1 won
    assert got.series[0].values == [4, 2, 1, 4, 3, 2, 1, 1]
    # each % over the same records as the step before; none between the leads and the first
    # stage (different records: it read 200 % = 4 opportunities ÷ 2 qualified leads before)
    assert got.series[1].values == [None, Decimal("50.0"), Decimal("50.0"), None, Decimal("75.0"),
                                    Decimal("66.7"), Decimal("50.0"), Decimal("100.0")]
    assert got.series[1].unit == "percent" and got.as_dict()["series"][1]["unit"] == "percent"
    assert got.series[0].unit is None and got.unit_of(0) == "count" and got.unit_of(1) == "percent"
    assert "same records" in str(got.help)
    needs = stage("needs").id
    assert ids(metrics.drill("funnel", rep_a, Filters(NOV), needs)) == {o2, o3, o4}
    assert len(ids(metrics.drill("funnel", rep_a, Filters(NOV), "qualified"))) == 2
    assert len(ids(metrics.drill("funnel", rep_a, Filters(NOV), "converted"))) == 1
    # the whole company: rep_c's lead too
    assert metrics.figure("funnel", user("admin"), Filters(NOV)).series[0].values[:2] == [5, 3]


def test_funnel_conversion_never_exceeds_100_percent(ctx: Any, make_customer: Any) -> None:
    """The story's demo: few qualified leads, many opportunities created in the period."""
    lead("rep_a", "qualified", utc(2026, 11, 2))
    customer = make_customer("rep_a")
    for _n in range(5):
        opportunity("rep_a", customer, "contact", history=("contact",))
    got = metrics.figure("funnel", user("admin"), Filters(NOV))
    rates = [r for r in got.series[1].values if r is not None]
    assert rates and max(rates) <= 100
    assert got.series[1].values[got.keys.index(stage("contact").id)] is None


def test_pipeline_by_stage_count_series_has_its_own_unit(ctx: Any) -> None:
    got = metrics.figure("pipeline_by_stage", user("admin"), Filters(NOV))
    assert [s.unit for s in got.series] == [None, "count"] and got.unit == "money"
    assert [s["unit"] for s in got.as_dict()["series"]] == [None, "count"]


def test_funnel_with_nothing_has_no_rates_not_errors(ctx: Any) -> None:
    got = metrics.figure("funnel", user("admin"), Filters(NOV))
    assert set(got.series[0].values) == {0}
    assert set(got.series[1].values) == {None}


# --- sales against target -----------------------------------------------------------------------

def _sales_fixture(make_customer: Any) -> None:
    a, b, c = make_customer("rep_a"), make_customer("rep_b"), make_customer("rep_c")
    order("rep_a", a, "approved", date(2026, 11, 1), {"Pump": "60.00", "Valve": "40.00"})
    order("rep_a", a, "draft", date(2026, 11, 2), {"Pump": "999.00"})
    order("rep_a", a, "waiting", date(2026, 11, 2), {"Pump": "999.00"})
    order("rep_a", a, "cancelled", date(2026, 11, 2), {"Pump": "999.00"})
    order("rep_a", a, "approved", date(2026, 10, 31), {"Pump": "10.00"})
    order("rep_b", b, "delivered", date(2026, 11, 30), {"Valve": "50.50"})
    order("rep_c", c, "closed", date(2026, 11, 15), {"Pump": "70.00"})
    target("rep_a", date(2026, 11, 1), "200.00")
    target("rep_c", date(2026, 11, 1), "100.00")
    target("rep_c", date(2026, 10, 1), "999.00")


def test_sales_by_rep_region_product_and_attainment(ctx: Any, make_customer: Any) -> None:
    _sales_fixture(make_customer)
    admin = user("admin")
    by_rep = metrics.figure("sales_by_rep", admin, Filters(NOV))
    sales = dict(zip(by_rep.keys, by_rep.series[0].values, strict=True))
    targets = dict(zip(by_rep.keys, by_rep.series[1].values, strict=True))
    assert sales == {uid("rep_a"): Decimal("100.00"), uid("rep_b"): Decimal("50.50"), uid("rep_c"): Decimal("70.00")}
    assert targets == {uid("rep_a"): Decimal("200.00"), uid("rep_b"): None, uid("rep_c"): Decimal("100.00")}
    assert all(isinstance(v, Decimal) for v in sales.values())
    assert values(metrics.figure("sales_by_department", admin, Filters(NOV))) == {
        "East": Decimal("100.00"), "East Team": Decimal("50.50"), "South": Decimal("70.00")}
    assert values(metrics.figure("sales_by_product", admin, Filters(NOV))) == {
        "Pump": Decimal("130.00"), "Valve": Decimal("90.50")}
    attainment = metrics.figure("target_attainment", admin, Filters(NOV))
    assert dict(zip(attainment.keys, attainment.series[0].values, strict=True)) == {
        uid("rep_a"): Decimal("50.0"), uid("rep_c"): Decimal("70.0")}
    assert attainment.value == Decimal("56.7")  # (100 + 70) / (200 + 100)
    rows = db.session.scalars(metrics.drill("sales_by_rep", admin, Filters(NOV), uid("rep_a"))).all()
    assert [o.total for o in rows] == [Decimal("100.00")]


def test_target_attainment_without_targets_is_none(ctx: Any, make_customer: Any) -> None:
    order("rep_a", make_customer("rep_a"), "approved", date(2026, 11, 1), {"Pump": "60.00"})
    got = metrics.figure("target_attainment", user("admin"), Filters(NOV))
    assert got.value is None and got.keys == []


# --- pipeline and forecast ----------------------------------------------------------------------

def test_forecast_month_matches_the_forecast_page(ctx: Any, make_customer: Any) -> None:
    from app.services import pipeline
    a, c = make_customer("rep_a"), make_customer("rep_c")
    opportunity("rep_a", a, "proposal", amount="1000.00", close=date(2026, 11, 30))          # 50 % -> 500
    opportunity("rep_a", a, "needs", amount="333.33", close=date(2026, 11, 1), override=33)  # 110.00
    opportunity("rep_a", a, "won", amount="10.00", close=date(2026, 11, 5))                   # 100 %
    opportunity("rep_a", a, "lost", amount="5000.00", close=date(2026, 11, 5))                # left out
    opportunity("rep_a", a, "proposal", amount="7000.00", close=date(2026, 12, 1))            # December
    opportunity("rep_c", c, "negotiation", amount="100.00", close=date(2026, 11, 10))         # 80
    admin, rep_a = user("admin"), user("rep_a")
    page = pipeline.forecast(admin, months=1, start=date(2026, 11, 1))
    assert metrics.figure("forecast_month", admin, Filters(NOV)).value == page.total == Decimal("700.00")
    mine = pipeline.forecast(rep_a, months=1, start=date(2026, 11, 1))
    got = metrics.figure("forecast_month", rep_a, Filters(NOV, owner_id=rep_a.id))
    assert got.value == mine.total == Decimal("620.00")
    assert len(ids(metrics.drill("forecast_month", rep_a, Filters(NOV, owner_id=rep_a.id)))) == 3


def test_pipeline_by_stage_and_by_rep(ctx: Any, make_customer: Any) -> None:
    a, b = make_customer("rep_a"), make_customer("rep_b")
    opportunity("rep_a", a, "proposal", amount="100.00")
    opportunity("rep_a", a, "proposal", amount="50.25", created=utc(2025, 1, 1))
    opportunity("rep_a", a, "won", amount="999.00")
    opportunity("rep_b", b, "contact", amount="10.00")
    admin = user("admin")
    by_stage = metrics.figure("pipeline_by_stage", admin, Filters(NOV))
    assert "Won" not in by_stage.categories and "Lost" not in by_stage.categories
    assert values(by_stage)["Proposal"] == Decimal("150.25") and values(by_stage, 1)["Proposal"] == 2
    assert values(by_stage)["Contact"] == Decimal("10.00")
    assert len(ids(metrics.drill("pipeline_by_stage", admin, Filters(NOV), stage("proposal").id))) == 2
    by_rep = metrics.figure("pipeline_by_rep", admin, Filters(NOV))
    open_amount = dict(zip(by_rep.keys, by_rep.series[0].values, strict=True))
    weighted = dict(zip(by_rep.keys, by_rep.series[1].values, strict=True))
    assert open_amount == {uid("rep_a"): Decimal("150.25"), uid("rep_b"): Decimal("10.00")}
    assert weighted == {uid("rep_a"): Decimal("75.13"), uid("rep_b"): Decimal("1.00")}


def test_stale_opportunities_use_the_pipeline_rule(ctx: Any, make_customer: Any) -> None:
    a = make_customer("rep_a")
    with clock.frozen(NOW):
        old = opportunity("rep_a", a, "proposal", changed=NOW - timedelta(days=8))
        opportunity("rep_a", a, "proposal", changed=NOW - timedelta(days=6))
        opportunity("rep_a", a, "contact", changed=NOW - timedelta(days=80))   # no stale days
        got = metrics.figure("stale_opportunities", user("admin"), Filters(NOV))
        assert got.value == 1 and values(got) == {"Proposal": 1}
        assert ids(metrics.drill("stale_opportunities", user("admin"), Filters(NOV), stage("proposal").id)) == {old}


# --- customers: won, lost, churn rate, trend, follow-up cycle -----------------------------------

def _status(customer: int, to: str, at: datetime, before: str = "potential") -> None:
    from app.models.customers import CustomerStatusChange
    from app.models.dictionaries import CustomerType
    db.session.add(CustomerStatusChange(customer_id=customer, from_type_id=dict_id(CustomerType, before),
                                        to_type_id=dict_id(CustomerType, to), changed_at=at))
    db.session.commit()


def test_won_churned_and_churn_rate(ctx: Any, make_customer: Any) -> None:
    from app.models.customers import CustomerStatusChange
    sept = utc(2026, 9, 1)
    c1 = make_customer("rep_a", type_code="lost", created_on=sept)
    c2 = make_customer("rep_a", type_code="won", created_on=sept)
    c3 = make_customer("rep_a", type_code="lost", created_on=sept)
    make_customer("rep_a", created_on=sept)
    c5 = make_customer("rep_a", type_code="lost", created_on=sept)
    make_customer("rep_a", created_on=utc(2026, 11, 3))          # new in November: not in the denominator
    db.session.execute(db.delete(CustomerStatusChange))
    db.session.commit()
    _status(c1, "lost", utc(2026, 11, 5))
    _status(c2, "won", utc(2026, 11, 6))
    _status(c2, "won", utc(2026, 11, 20), before="won")           # counted once
    _status(c3, "lost", utc(2026, 10, 10))                        # lost before November
    _status(c5, "lost", utc(2026, 10, 31, 16, 10))                 # November 1st in Shanghai
    rep_a = user("rep_a")
    mine = Filters(NOV, owner_id=rep_a.id)
    won = metrics.figure("won_customers", rep_a, mine)
    assert (won.value, won.previous) == (1, 0)
    churned = metrics.figure("churned_customers", rep_a, mine)
    assert (churned.value, churned.previous) == (2, 1)
    rate = metrics.figure("churn_rate", rep_a, mine)
    assert rate.value == Decimal("50.0")       # 2 of the 4 not lost on November 1st
    october = metrics.figure("churn_rate", rep_a, Filters(OCT, owner_id=rep_a.id))
    assert october.value == Decimal("20.0")    # 1 of the 5 on October 1st
    assert ids(metrics.drill("churned_customers", rep_a, mine)) == {c1, c5}
    assert ids(metrics.drill("churn_rate", rep_a, mine)) == {c1, c5}


def test_churn_rate_with_no_customers_is_none(ctx: Any) -> None:
    assert metrics.figure("churn_rate", user("admin"), Filters(NOV)).value is None


def test_new_customers_trend_twelve_months(ctx: Any, make_customer: Any) -> None:
    make_customer("rep_a", created_on=utc(2026, 10, 31, 16, 30))   # November in Shanghai
    make_customer("rep_a", created_on=utc(2026, 10, 31, 15, 30))   # October
    make_customer("rep_a", created_on=utc(2025, 12, 1))            # first month shown
    make_customer("rep_a", created_on=utc(2025, 11, 15))           # before the 12 months
    got = metrics.figure("new_customers_trend", user("admin"), Filters(NOV))
    assert got.keys[0] == "2025-12" and got.keys[-1] == "2026-11" and len(got.keys) == 12
    counts = dict(zip(got.keys, got.series[0].values, strict=True))
    assert (counts["2025-12"], counts["2026-10"], counts["2026-11"]) == (1, 1, 1)
    assert sum(counts.values()) == 3
    assert len(ids(metrics.drill("new_customers_trend", user("admin"), Filters(NOV), "2026-11"))) == 1
    assert ids(metrics.drill("new_customers_trend", user("admin"), Filters(NOV), "2020-01")) == set()


def test_follow_up_cycle_average_days(ctx: Any, make_customer: Any, make_follow_up: Any) -> None:
    x, y = make_customer("rep_a"), make_customer("rep_a")
    make_follow_up(x, "rep_a", followed_at=utc(2026, 10, 20))
    make_follow_up(x, "rep_a", followed_at=utc(2026, 10, 31, 17))   # November 1st 01:00 in Shanghai
    make_follow_up(x, "rep_a", followed_at=utc(2026, 11, 11))
    make_follow_up(y, "rep_a", followed_at=utc(2026, 11, 5))        # y's first: no cycle
    got = metrics.figure("follow_up_cycle", user("rep_a"), Filters(NOV))
    assert got.value == Decimal("11.0")   # (11.708 + 10.292) / 2
    assert metrics.figure("follow_up_cycle", user("rep_a"), Filters(OCT)).value is None  # x's first only
    assert len(ids(metrics.drill("follow_up_cycle", user("rep_a"), Filters(NOV)))) == 2


def test_activities_today_and_overdue(ctx: Any, make_customer: Any) -> None:
    from app.models.activities import Activity
    a = make_customer("rep_a")
    def activity(due: datetime, status: str = "open", who: str = "rep_a") -> None:
        db.session.add(Activity(code=f"A-T{next(_counter)}", kind="call", subject="Call", due_at=due,
                                assignee_id=uid(who), customer_id=a, status=status))
        db.session.commit()
    activity(utc(2026, 11, 19, 16, 30))    # Nov 20th 00:30 Shanghai: today
    activity(utc(2026, 11, 20, 15, 59))    # Nov 20th 23:59: today
    activity(utc(2026, 11, 20, 16, 0))     # tomorrow
    activity(utc(2026, 11, 19, 15, 0))     # yesterday: overdue
    activity(utc(2026, 11, 20, 1), status="done")
    activity(utc(2026, 11, 20, 1), who="manager")   # someone else's
    with clock.frozen(NOW):
        got = metrics.figure("activities_today", user("rep_a"), Filters(NOV))
        assert got.series[0].values == [2, 1] and got.value == 2
        assert len(ids(metrics.drill("activities_today", user("rep_a"), Filters(NOV), "today"))) == 2


# --- service ----------------------------------------------------------------------------------

def ticket(customer: int, *, status: str = "assigned", priority: str = "high", kind: str = "consult",
           **fields: Any) -> int:
    from app.models.dictionaries import Priority, TicketType
    from app.models.service import Ticket
    item = Ticket(code=f"T-T{next(_counter)}", subject="Help", customer_id=customer, status=status,
                  type_id=dict_id(TicketType, kind), priority_id=dict_id(Priority, priority), **fields)
    db.session.add(item)
    db.session.commit()
    return item.id


def test_open_tickets_by_priority(ctx: Any, make_customer: Any) -> None:
    a = make_customer("rep_a")
    ticket(a, priority="high")
    ticket(a, priority="high", status="waiting")
    ticket(a, priority="low", status="new")
    ticket(a, priority="low", status="resolved")
    ticket(a, priority="low", status="closed")
    got = metrics.figure("open_tickets_by_priority", user("admin"), Filters(NOV))
    assert values(got) == {"High": 2, "Low": 1} and got.value == 3


def test_sla_compliance_breaches_and_satisfaction(ctx: Any, make_customer: Any) -> None:
    a = make_customer("rep_a")
    ticket(a, status="resolved", resolved_at=utc(2026, 11, 3))
    ticket(a, status="closed", resolved_at=utc(2026, 11, 4), resolve_breached=True,
           resolve_due_at=utc(2026, 11, 2))
    ticket(a, status="resolved", resolved_at=utc(2026, 10, 31, 16, 5), response_breached=True,
           response_due_at=utc(2026, 10, 31, 17), rated_at=utc(2026, 11, 6), satisfaction=5)
    ticket(a, status="resolved", resolved_at=utc(2026, 10, 31, 15, 55))          # October in Shanghai
    ticket(a, kind="complaint", resolve_breached=True, resolve_due_at=utc(2026, 10, 20),
           response_breached=True, response_due_at=utc(2026, 11, 1))               # one breach in November
    ticket(a, status="closed", rated_at=utc(2026, 11, 7), satisfaction=2)
    ticket(a, status="closed", rated_at=utc(2026, 11, 8), satisfaction=5)
    ticket(a, status="closed", rated_at=utc(2026, 10, 8), satisfaction=1)
    admin = user("admin")
    compliance = metrics.figure("sla_compliance", admin, Filters(NOV))
    assert compliance.value == Decimal("66.7")   # 2 of 3 resolved in November within the resolution time
    assert compliance.series[0].values == [2, 1]
    assert len(ids(metrics.drill("sla_compliance", admin, Filters(NOV), "breached"))) == 1
    breaches = metrics.figure("sla_breaches", admin, Filters(NOV))
    from app.models.dictionaries import TicketType
    assert dict(zip(breaches.keys, breaches.series[0].values, strict=True)) == {
        dict_id(TicketType, "consult"): 2, dict_id(TicketType, "complaint"): 1}
    assert breaches.value == 3
    rated = metrics.figure("satisfaction", admin, Filters(NOV))
    assert rated.categories == ["1", "2", "3", "4", "5"] and rated.series[0].values == [0, 1, 0, 0, 2]
    assert rated.value == Decimal("4.0")
    assert len(ids(metrics.drill("satisfaction", admin, Filters(NOV), 5))) == 2


def test_sla_compliance_without_resolved_tickets_is_none(ctx: Any) -> None:
    assert metrics.figure("sla_compliance", user("admin"), Filters(NOV)).value is None
    assert metrics.figure("satisfaction", user("admin"), Filters(NOV)).value is None


def test_feedback_by_type(ctx: Any, make_customer: Any) -> None:
    from app.models.dictionaries import FeedbackType
    from app.models.service import ServiceFeedback
    a = make_customer("rep_a")
    kinds = db.session.scalars(db.select(FeedbackType).order_by(FeedbackType.id)).all()
    for kind, when in ((kinds[0], utc(2026, 11, 2)), (kinds[0], utc(2026, 10, 31, 16, 1)), (kinds[1], utc(2026, 11, 9)),
                       (kinds[1], utc(2026, 10, 31, 15, 59))):
        db.session.add(ServiceFeedback(code=f"F-T{next(_counter)}", customer_id=a, type_id=kind.id,
                                       description="x", received_at=when))
    db.session.commit()
    got = metrics.figure("feedback_by_type", user("admin"), Filters(NOV))
    assert dict(zip(got.keys, got.series[0].values, strict=True)) == {kinds[0].id: 2, kinds[1].id: 1}


# --- admin -------------------------------------------------------------------------------------

def test_users_online_now_and_today(ctx: Any) -> None:
    try:
        db.session.execute(db.update(CrmUser).where(CrmUser.username == "rep_a").values(
            last_seen_at=NOW - timedelta(minutes=2)))
        db.session.execute(db.update(CrmUser).where(CrmUser.username == "rep_b").values(
            last_seen_at=utc(2026, 11, 19, 16, 10)))    # 00:10 today in Shanghai
        db.session.execute(db.update(CrmUser).where(CrmUser.username == "rep_c").values(
            last_seen_at=utc(2026, 11, 19, 15, 50)))    # yesterday
        db.session.commit()
        with clock.frozen(NOW):
            got = metrics.figure("users_online", user("admin"), Filters(NOV))
            assert got.series[0].values == [1, 2] and got.value == 1
            names = {u.username for u in db.session.scalars(metrics.drill("users_online", user("admin"),
                                                                          Filters(NOV), "today"))}
            assert names == {"rep_a", "rep_b"}
            assert metrics.figure("users_online", user("manager"), Filters(NOV)).value == 0
    finally:
        db.session.execute(db.update(CrmUser).values(last_seen_at=None))
        db.session.commit()


def test_transfers_failed_jobs_and_security_alerts(ctx: Any) -> None:
    from app.models.audit import AuditLog
    from app.models.transfers import TransferJob, TransferSchedule
    from app.services import audit
    schedule = TransferSchedule(name="Nightly", kind="list_export", path="/tmp", cron="0 1 * * *") \
        if hasattr(TransferSchedule, "cron") else None
    schedule_id = None
    if schedule is not None:
        try:
            db.session.add(schedule)
            db.session.flush()
            schedule_id = schedule.id
        except Exception:  # noqa: BLE001  (the schedule's own required fields differ: skip that part)
            db.session.rollback()
    for kind, status, when in (("import", "done", utc(2026, 11, 2)), ("import", "failed", utc(2026, 11, 3)),
                               ("export", "done", utc(2026, 11, 4)), ("export", "done", utc(2026, 10, 4))):
        db.session.add(TransferJob(kind=kind, model="customer", user_id=uid("admin"), filename="x.xlsx",
                                   status=status, created_at=when,
                                   schedule_id=schedule_id if status == "failed" else None))
    db.session.commit()
    with clock.frozen(utc(2026, 11, 10)):
        audit.record("totp_locked", None, {"user": "rep_a"})
        db.session.commit()
    admin = user("admin")
    moved = metrics.figure("transfers", admin, Filters(NOV))
    by_status = {s.name: dict(zip(moved.keys, s.values, strict=True)) for s in moved.series}
    assert by_status["Done"] == {"import": 1, "export": 1, "sync": 0}  # statuses by their labels
    assert by_status["Failed"]["import"] == 1
    if schedule_id is not None:
        assert metrics.figure("failed_jobs", admin, Filters(NOV)).value == 1
    found = metrics.figure("security_alerts", admin, Filters(NOV))
    assert dict(zip(found.keys, found.series[0].values, strict=True)) == {"totp_locked": 1}
    assert db.session.scalars(metrics.drill("security_alerts", admin, Filters(NOV), "totp_locked")).one().action \
        == "totp_locked"
    assert isinstance(db.session.scalars(metrics.drill("security_alerts", admin, Filters(NOV))).first(), AuditLog)
    # not the admin's: nothing
    assert metrics.figure("security_alerts", user("manager"), Filters(NOV)).value == 0
    assert metrics.figure("transfers", user("manager"), Filters(NOV)).series == []


def test_a_drill_without_category_lists_the_headline_number(ctx: Any, make_customer: Any) -> None:
    from app.models.activities import Activity
    a = make_customer("rep_a")
    for due in (utc(2026, 11, 20, 1), utc(2026, 11, 18, 1)):   # today, overdue
        db.session.add(Activity(code=f"A-T{next(_counter)}", kind="call", subject="Call", due_at=due,
                                assignee_id=uid("rep_a"), customer_id=a, status="open"))
    db.session.commit()
    with clock.frozen(NOW):
        got = metrics.figure("activities_today", user("rep_a"), Filters(NOV))
        assert len(ids(metrics.drill("activities_today", user("rep_a"), Filters(NOV)))) == got.value == 1
