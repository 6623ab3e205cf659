"""Attacks on the metrics and reports services (issue 17): numbers of records outside the
viewer's scope (the South, another rep), drill-down lists that do not match their number,
month boundaries in Asia/Shanghai, report specs built to do unbounded work, exports with
hostile text. The attacker's findings are fixed; each test keeps one. A test marked ``xfail(strict=True)`` would be a BUG the attacker found."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from app.services import metrics, report_export, reports
from app.services.errors import RuleViolation
from app.services.metrics import Filters, Period
from tests.app.services.test_metrics import lead, opportunity, order, target, ticket, uid, user

pytestmark = pytest.mark.usefixtures("shanghai")

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
NOV = Period(date(2026, 11, 1), date(2026, 12, 1))
#: The first instant of November in Shanghai is 2026-10-31T16:00Z.
EDGE = datetime(2026, 10, 31, 16, 30, tzinfo=UTC)
BEFORE_EDGE = datetime(2026, 10, 31, 15, 59, tzinfo=UTC)


def count(stmt: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)


@pytest.fixture
def world(ctx: Any, make_customer: Any, make_follow_up: Any) -> dict[str, int]:
    """The same records for rep_a (East), rep_b (East Team) and rep_c (South), some at the
    Shanghai month edge."""
    made: dict[str, int] = {}
    for owner in ("rep_a", "rep_b", "rep_c"):
        c = make_customer(owner, name=f"Cust {owner}", created_on=EDGE)
        make_customer(owner, name=f"Old {owner}", created_on=BEFORE_EDGE)
        made[owner] = c
        make_follow_up(c, owner, followed_at=EDGE)
        make_follow_up(c, owner, followed_at=datetime(2026, 11, 5, tzinfo=UTC))
        lead(owner, "new", EDGE)
        lead(owner, "qualified", datetime(2026, 11, 3, tzinfo=UTC))
        opportunity(owner, c, "proposal", amount="1000.00", created=EDGE, history=("proposal",),
                    close=date(2026, 11, 25))
        order(owner, c, "approved", date(2026, 11, 2), {f"Widget {owner}": "500.00", "Shared gadget": "70.00"})
        target(owner, date(2026, 11, 1), "1000.00")
        ticket(c, status="closed", rated_at=EDGE, satisfaction=4, assignee_id=uid(owner))
        ticket(c, status="new", assignee_id=uid(owner))
    return made


def totals(key: str, who: str) -> tuple[metrics.Figure, int]:
    with clock.frozen(NOW):
        fig = metrics.figure(key, user(who), Filters(NOV))
        return fig, count(metrics.drill(key, user(who), Filters(NOV)))


@pytest.mark.parametrize("who, owners", [("rep_a", 1), ("manager", 2), ("admin", 3)])
def test_counts_never_include_records_out_of_scope(world: dict[str, int], who: str, owners: int) -> None:
    with clock.frozen(NOW):
        f = Filters(NOV)
        u = user(who)
        assert metrics.figure("new_customers", u, f).value == owners
        assert metrics.figure("follow_ups", u, f).value == 2 * owners
        funnel = metrics.figure("funnel", u, f)
        assert funnel.series[0].values[:2] == [2 * owners, owners], funnel.series
        assert metrics.figure("sales_by_rep", u, f).value == 570 * owners
        product = dict(zip(metrics.figure("sales_by_product", u, f).categories,
                           metrics.figure("sales_by_product", u, f).series[0].values, strict=True))
        assert product["Shared gadget"] == 70 * owners
        assert not any(name.endswith("rep_c") for name in product) or owners == 3
        assert len(metrics.figure("target_attainment", u, f).keys) == owners
        pipeline = metrics.figure("pipeline_by_stage", u, f)
        assert sum(pipeline.series[1].values) == owners


def test_service_figures_stay_in_the_ticket_scope_of_a_manager(world: dict[str, int]) -> None:
    with clock.frozen(NOW):
        for who in ("manager", "rep_a"):
            got = metrics.figure("satisfaction", user(who), Filters(NOV))
            every = metrics.figure("satisfaction", user("admin"), Filters(NOV))
            assert sum(got.series[0].values) <= sum(every.series[0].values)
            for key in ("satisfaction", "open_tickets_by_priority"):
                fig, listed = totals(key, who)
                assert sum(fig.series[0].values) == listed, (who, key)
                south = {t.id for t in db.session.scalars(metrics.drill(key, user(who), Filters(NOV)))
                         if t.customer_id == world["rep_c"]}
                assert not south, (who, key)


@pytest.mark.parametrize("who", ["manager", "rep_a", "viewer", "service"])
def test_admin_figures_are_empty_for_everyone_but_admin(world: dict[str, int], who: str) -> None:
    with clock.frozen(NOW):
        for key in ("users_online", "transfers", "failed_jobs", "security_alerts"):
            fig = metrics.figure(key, user(who), Filters(NOV))
            numbers = [v for s in fig.series for v in s.values if v]
            if who in ("viewer", "service"):
                continue  # see every owner (scope all) but hold no can_admin: the screens refuse them
            assert not numbers, (who, key, numbers)


@pytest.mark.parametrize("who", ["rep_a", "manager", "admin", "service", "viewer"])
def test_every_category_drill_lists_exactly_its_number(world: dict[str, int], who: str) -> None:
    """003/issue: drill-down lists match the numbers (count metrics, first series)."""
    with clock.frozen(NOW):
        for key, found in metrics.METRICS.items():
            if found.unit != "count" or found.records is None or key == "transfers":
                continue
            fig = metrics.figure(key, user(who), Filters(NOV))
            if fig.chart == "number":
                if key != "follow_up_cycle":
                    assert count(metrics.drill(key, user(who), Filters(NOV))) == (fig.value or 0), (who, key)
                continue
            for category, number in zip(fig.keys, fig.series[0].values, strict=True):
                listed = count(metrics.drill(key, user(who), Filters(NOV), category))
                assert listed == (number or 0), (who, key, category, number, listed)


def test_the_edge_instant_is_november_in_metrics_reports_and_drills(world: dict[str, int]) -> None:
    rep = user("rep_a")
    with clock.frozen(NOW):
        october = Filters(Period(date(2026, 10, 1), date(2026, 11, 1)))
        assert metrics.figure("new_customers", rep, october).value == 1  # the 15:59Z one
        assert metrics.figure("new_customers", rep, Filters(NOV)).value == 1
        trend = metrics.figure("new_customers_trend", rep, Filters(NOV))
        assert dict(zip(trend.keys, trend.series[0].values, strict=True))["2026-11"] == 1
        result = reports.run(reports.parse_spec({"source": "customers", "dimensions": ["created_month"]}), rep)
        assert {r[0]: r[2] for r in result.rows} == {"2026-10": 1, "2026-11": 1}
        result = reports.run(reports.parse_spec({"source": "follow_ups", "dimensions": ["followed_month"]}), rep)
        assert {r[0]: r[2] for r in result.rows} == {"2026-11": 2}
        result = reports.run(reports.parse_spec({"source": "customers", "dimensions": ["created_quarter"],
                                                 "period_start": "2026-11-01", "period_end": "2026-11-30"}), rep)
        assert {r[0]: r[2] for r in result.rows} == {"2026-Q4": 1}


def test_report_scope_for_every_source(world: dict[str, int]) -> None:
    """The manager's report never holds the South; a rep's only their own."""
    with clock.frozen(NOW):
        for source in reports.SOURCES:
            spec = reports.parse_spec({"source": source, "dimensions": ["owner"]}) \
                if "owner" in reports.SOURCES[source].dimensions else None
            if spec is None:
                continue
            for who, barred in (("manager", {"rep_c"}), ("rep_a", {"rep_b", "rep_c"})):
                if reports.SOURCES[source] not in reports.sources(user(who)):
                    continue
                labels = {r[0] for r in reports.run(spec, user(who)).rows}
                names = {" ".join(filter(None, (user(b).first_name, user(b).last_name))) for b in barred}
                assert not labels & names, (source, who, labels)


def test_feedback_and_order_lines_scope(world: dict[str, int]) -> None:
    from app.models.dictionaries import FeedbackType
    from app.models.service import ServiceFeedback
    kind = db.session.scalars(select(FeedbackType.id)).first()
    for owner in ("rep_a", "rep_c"):
        db.session.add(ServiceFeedback(code=f"FB-{owner}", customer_id=world[owner], type_id=kind,
                                       received_at=EDGE, description="x", satisfaction=3))
    db.session.commit()
    with clock.frozen(NOW):
        for who, expected in (("manager", 1), ("rep_a", 1), ("admin", 2)):
            if reports.SOURCES["feedback"] in reports.sources(user(who)):
                result = reports.run(reports.parse_spec({"source": "feedback", "dimensions": ["type"]}), user(who))
                assert result.pivot.loc["Total", "Total"] == expected, who
            fig = metrics.figure("feedback_by_type", user(who), Filters(NOV))
            assert fig.value == expected, who
        lines = reports.run(reports.parse_spec({"source": "order_lines", "dimensions": ["product"],
                                                "measure": "sum:amount"}), user("manager"))
        assert {r[0] for r in lines.rows} == {"Widget rep_a", "Widget rep_b", "Shared gadget"}


# --- bad input at the service -------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    {"source": "customers", "dimensions": ["level", "industry", "type"]},
    {"source": "customers", "dimensions": "level,industry,type"},
    {"source": "customers", "dimensions": ["level"], "measure": "sum:id"},
    {"source": "customers", "dimensions": ["level"], "measure": "avg:amount; select 1"},
    {"source": "customers", "dimensions": ["__class__"]},
    {"source": "customers", "dimensions": [{"a": 1}]},
    {"source": ["customers"], "dimensions": ["level"]},
    {"source": "customers", "dimensions": ["level"], "owner": -1},
    {"source": "customers", "dimensions": ["level"], "owner": 1.5},
    {"source": "customers", "dimensions": ["level"], "department": "1; drop"},
    {"source": "customers", "dimensions": ["level"], "period_start": "2026-12-01", "period_end": "2026-01-01"},
    {"source": "customers", "dimensions": ["level"], "level": ["1", "2"]},
])
def test_parse_spec_refuses(ctx: Any, data: dict[str, Any]) -> None:
    with pytest.raises(RuleViolation):
        reports.parse_spec(data)


def test_parse_spec_refuses_a_date_with_trailing_junk(ctx: Any) -> None:
    with pytest.raises(RuleViolation):
        reports.parse_spec({"source": "customers", "dimensions": ["level"], "period_start": "2026-01-01' OR 1=1"})


def test_a_period_outside_plausible_years_is_refused_before_it_can_overflow(ctx: Any) -> None:
    for bound, day in (("period_start", "0001-01-01"), ("period_end", "9999-12-31")):
        with pytest.raises(RuleViolation) as refused:
            reports.parse_spec({"source": "customers", "dimensions": ["level"], bound: day})
        assert bound in refused.value.errors


def test_many_groups_are_capped_not_unbounded(ctx: Any) -> None:
    from app.models.customers import Customer
    from app.models.dictionaries import CustomerType
    potential = db.session.scalars(select(CustomerType).filter_by(code="potential")).one()
    owner = uid("rep_a")
    db.session.add_all([Customer(owner_id=owner, name=f"C{i}", contact_phone="13812345678",
                                 contact_name=f"P{i:04d}", type=potential) for i in range(1500)])
    db.session.commit()
    result = reports.run(reports.parse_spec({"source": "customers", "dimensions": ["contact_name", "level"]}),
                         user("admin"))
    assert len(result.pivot.index) <= reports.MAX_GROUPS + 1
    assert result.pivot.loc["Total", "Total"] == 1500


# --- files ------------------------------------------------------------------------------------

def test_xlsx_sheet_titles_and_formulas(ctx: Any) -> None:
    fig = metrics.Figure(key="x", title='=cmd|"/C calc"!A0 [a]:*?/\\' + "长" * 40, help="", unit="count",
                         chart="bar", categories=["=1+1", "+SUM(A1)", "@x", "-2+3", "\t=1"], keys=[1, 2, 3, 4, 5],
                         series=[metrics.FigureSeries("=evil()", [1, 2, 3, 4, 5])])
    body = report_export.xlsx(fig.title, [fig, fig])
    book = openpyxl.load_workbook(io.BytesIO(body))
    for sheet in book.worksheets:
        assert len(sheet.title) <= 31 and not set(sheet.title) & set("[]:*?/\\")
        for row in sheet.iter_rows():
            for cell in row:
                assert not (isinstance(cell.value, str) and cell.value.lstrip().startswith(("=", "+", "@", "-"))), \
                    (sheet.title, cell.value)
    pdf = report_export.pdf(fig.title, [fig], subtitle="😀 مرحبا </script>")
    assert pdf.startswith(b"%PDF")


def test_pdf_with_ten_thousand_categories_is_bounded(ctx: Any) -> None:
    fig = metrics.Figure(key="x", title="万", help="", unit="money", chart="bar",
                         categories=[f"类别{i} 😀 مرحبا" for i in range(10_000)], keys=list(range(10_000)),
                         series=[metrics.FigureSeries("s", [i for i in range(10_000)])])
    body = report_export.pdf("标题", [fig])
    assert body.startswith(b"%PDF") and len(body) < 20_000_000


def test_targets_service_refuses_non_admin_and_bad_amounts(ctx: Any) -> None:
    from app.services import targets
    from app.services.errors import RuleForbidden
    rep = uid("rep_a")
    for who in ("rep_a", "manager"):
        with pytest.raises((RuleForbidden, RuleViolation)):
            targets.set_year(user(who), 2026, {(rep, 11): "1000"})
    for bad in ("-1", "abc", "1e999", "NaN", "Infinity", "99999999999999999999"):
        with pytest.raises(RuleViolation):
            targets.set_year(user("admin"), 2026, {(rep, 11): bad})


def test_targets_service_refuses_a_user_who_is_not_a_rep(ctx: Any) -> None:
    from app.services import targets
    from app.services.errors import RuleForbidden
    with pytest.raises((RuleViolation, RuleForbidden)):
        targets.set_year(user("admin"), 2026, {(uid("service"), 11): "10"})
