"""The sales rep's metrics: new customers, follow-ups, activities today, the pipeline by
stage, the weighted forecast, and the pipeline by rep (on the manager's dashboard)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, case, false, func, select
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models.activities import Activity
from app.models.customers import Customer, FollowUp
from app.models.sales import Opportunity, Stage
from app.security.data_scope import counting_whole_list, scope_clause
from app.security.request_bounds import db_int
from app.services import activities as act
from app.services import pipeline
from app.services.metrics.base import (
    Figure,
    FigureSeries,
    Filters,
    _between,
    _count,
    _define,
    _fen,
    _fig,
    _grouped,
    _narrow,
    _on_days,
    _people,
    _today_instants,
    _with_period,
    _yuan,
)

# --- sales rep: new customers, follow-ups -------------------------------------------------

def _new_customers_base(user: Any, filters: Filters) -> Select:
    return select(Customer).where(scope_clause(user, Customer), Customer.archived_at.is_(None),
                                  *_between(Customer.created_on, filters.period),
                                  *_narrow(Customer.owner_id, filters))


@_define("new_customers", _l("New customers"),
         _l("新增客户数: customers created in the period (CRM time zone) and not archived since, "
            "owned by the people in view; compared with the previous period."),
         "count", "number", "sales",
         records=lambda user, filters, _key: _new_customers_base(user, filters).order_by(Customer.created_on.desc()))
def _new_customers(user: Any, filters: Filters) -> Figure:
    """新增客户数 (001 §四): customers whose ``created_on`` falls in the period, in scope,
    owned by the filtered owner/department, archived ones (merged duplicates, removed
    records) left out; ``previous`` = the same for the previous period."""
    now = _count(_new_customers_base(user, filters))
    before = _count(_new_customers_base(user, _with_period(filters, filters.period.previous())))
    return _fig("new_customers", value=now, previous=before)


def _follow_ups_base(user: Any, filters: Filters) -> Select:
    return select(FollowUp).where(scope_clause(user, FollowUp), *_between(FollowUp.followed_at, filters.period),
                                  *_narrow(FollowUp.owner_id, filters))


@_define("follow_ups", _l("Follow-ups"),
         _l("Follow-ups recorded with a follow-up time in the period (CRM time zone), on customers in view, "
            "made by the people in view; compared with the previous period."),
         "count", "number", "sales",
         records=lambda user, filters, _key: _follow_ups_base(user, filters).order_by(FollowUp.followed_at.desc()))
def _follow_ups(user: Any, filters: Filters) -> Figure:
    """Follow-ups whose ``followed_at`` falls in the period, on customers in the viewer's
    scope; owner/department filters apply to the follow-up's own ``owner_id`` (跟进人);
    ``previous`` = the previous period's count."""
    now = _count(_follow_ups_base(user, filters))
    before = _count(_follow_ups_base(user, _with_period(filters, filters.period.previous())))
    return _fig("follow_ups", value=now, previous=before)


# --- sales rep: activities, pipeline, forecast -------------------------------------------------

def _activities_conditions(user: Any, filters: Filters) -> list[ColumnElement]:
    """Open activities in scope assigned to the filtered owner (default: the viewer)."""
    assignee = filters.owner_id if filters.owner_id is not None or filters.department_id else getattr(user, "id", -1)
    narrow = _narrow(Activity.assignee_id, Filters(filters.period, filters.department_id, assignee))
    return [Activity.status == act.OPEN, scope_clause(user, Activity), *narrow]


def _activities_base(user: Any, filters: Filters, key: Any) -> Select:
    start, end = _today_instants()
    due = {"today": [Activity.due_at >= start, Activity.due_at < end], "overdue": [Activity.due_at < start]}
    if key not in due:
        return select(Activity).where(false())
    return select(Activity).where(*_activities_conditions(user, filters), *due[key])


@_define("activities_today", _l("Activities today"),
         _l("Open activities assigned to the person in view that are due today (CRM time zone), "
            "and open ones overdue from earlier days."),
         "count", "bar", "sales",
         records=lambda user, filters, key: _activities_base(user, filters, key or "today").order_by(Activity.due_at),
         dimension=_l("Due"))
def _activities_today(user: Any, filters: Filters) -> Figure:
    """Open activities (``activities.OPEN``) assigned to the filtered owner (default: the
    viewer; a department filter: its people), in scope, due today in the CRM's zone
    ("today") and due before today ("overdue") — the home page's rule
    (``activities.my_open``). Today, not the period: a to-do list. One query."""
    start, end = _today_instants()
    with counting_whole_list():  # a whole count: the customers in scope listed once, not one EXISTS a row
        stmt = select(func.sum(case((Activity.due_at >= start, 1), else_=0)),
                      func.sum(case((Activity.due_at < start, 1), else_=0))).where(
            *_activities_conditions(user, filters), Activity.due_at < end)
    today, overdue = db.session.execute(stmt).one()
    return _fig("activities_today", categories=[str(_l("Due today")), str(_l("Overdue"))],
                keys=["today", "overdue"], series=[FigureSeries(str(_l("Activities")), [int(today or 0),
                                                                                        int(overdue or 0)])],
                value=int(today or 0))


def _opportunity_conditions(user: Any, filters: Filters) -> list[ColumnElement]:
    return [scope_clause(user, Opportunity), *_narrow(Opportunity.owner_id, filters)]


def _open_stage_ids() -> tuple[list[Stage], list[int]]:
    stages = pipeline.all_stages()
    return stages, [s.id for s in stages if not s.is_won and not s.is_lost]


def _pipeline_base(user: Any, filters: Filters, key: Any) -> Select:
    _stages, open_ids = _open_stage_ids()
    wanted = [key] if key is not None else open_ids
    stage = db_int(key) if key is not None else None
    if key is not None and (stage is None or stage not in open_ids):
        return select(Opportunity).where(false())
    return select(Opportunity).where(Opportunity.stage_id.in_(wanted if stage is None else [stage]),
                                     *_opportunity_conditions(user, filters))


@_define("pipeline_by_stage", _l("Pipeline by stage"),
         _l("Open opportunities (not won, not lost) of the people in view, by their current active stage: "
            "how many and their total amount, whatever their expected close date."),
         "money", "bar", "sales",
         records=lambda user, filters, key: _pipeline_base(user, filters, key).order_by(Opportunity.changed_on.desc()),
         dimension=_l("Stage"))
def _pipeline_by_stage(user: Any, filters: Filters) -> Figure:
    """Open opportunities by active stage (``pipeline.column_totals``' numbers, won and lost
    columns left out): series "Amount" (yuan, Decimal) and "Count". Not limited to the
    period (a pipeline is a snapshot now). One GROUP BY query."""
    stages, open_ids = _open_stage_ids()
    stmt = (select(Opportunity.stage_id, func.count(Opportunity.id), func.sum(_fen(Opportunity.amount)))
            .where(Opportunity.stage_id.in_(open_ids), *_opportunity_conditions(user, filters))
            .group_by(Opportunity.stage_id))
    sums = {sid: (count, fen) for sid, count, fen in db.session.execute(stmt)}
    shown = [s for s in stages if s.id in open_ids and s.active]
    return _fig("pipeline_by_stage", categories=[str(s.label) for s in shown], keys=[s.id for s in shown],
                series=[FigureSeries(str(_l("Amount")), [_yuan(sums.get(s.id, (0, 0))[1]) for s in shown]),
                        FigureSeries(str(_l("Count")), [int(sums.get(s.id, (0, 0))[0]) for s in shown], unit="count")])


def _forecast_base(user: Any, filters: Filters) -> Select:
    stages = pipeline.all_stages()
    lost = [s.id for s in stages if s.is_lost]
    return select(Opportunity).where(*_opportunity_conditions(user, filters),
                                     *_on_days(Opportunity.expected_close, filters.period),
                                     *([Opportunity.stage_id.not_in(lost)] if lost else []))


@_define("forecast_month", _l("Weighted forecast"),
         _l("Σ amount × probability of the opportunities expected to close in the period (won ones at 100 %, "
            "lost ones left out): the Forecast page's number."),
         "money", "number", "sales",
         records=lambda user, filters, _key: _forecast_base(user, filters).order_by(Opportunity.expected_close))
def _forecast_month(user: Any, filters: Filters) -> Figure:
    """The weighted forecast for the period (``pipeline.forecast``'s rule and numbers:
    amount × ``probability_expr`` / 100 over opportunities whose ``expected_close`` lies in
    the period, won at 100 %, lost left out), yuan Decimal. One query."""
    weighted = _fen(Opportunity.amount) * pipeline.probability_expr(pipeline.all_stages())
    base = _forecast_base(user, filters)
    total = db.session.scalar(select(func.sum(weighted)).where(base.whereclause))
    return _fig("forecast_month", value=_yuan(total, 10_000))


def _open_base(user: Any, filters: Filters, key: Any) -> Select:
    _stages, open_ids = _open_stage_ids()
    owner = [] if key is None else [Opportunity.owner_id == (db_int(key) if db_int(key) is not None else -1)]
    return select(Opportunity).where(Opportunity.stage_id.in_(open_ids), *_opportunity_conditions(user, filters),
                                     *owner)


@_define("pipeline_by_rep", _l("Pipeline by rep"),
         _l("Open opportunities (not won, not lost) per owner: their total amount and weighted amount "
            "(amount × stage probability), whatever their close date."),
         "money", "bar", "manager",
         records=lambda user, filters, key: _open_base(user, filters, key).order_by(Opportunity.changed_on.desc()),
         dimension=_l("Sales rep"))
def _pipeline_by_rep(user: Any, filters: Filters) -> Figure:
    """Open opportunities per owner: series "Open amount" and "Weighted" (yuan Decimal,
    weighted with ``pipeline.probability``: the override, else the stage's weight). A
    snapshot now, not the period. One query grouped by (owner, stage, override) — a few
    hundred rows, weighted here — so SQL does no CASE per opportunity."""
    stages, open_ids = _open_stage_ids()
    by_id = {s.id: s for s in stages}
    stmt = (select(Opportunity.owner_id, Opportunity.stage_id, Opportunity.probability_override,
                   func.sum(_fen(Opportunity.amount)))
            .where(Opportunity.stage_id.in_(open_ids), *_opportunity_conditions(user, filters))
            .group_by(Opportunity.owner_id, Opportunity.stage_id, Opportunity.probability_override))
    sums: dict[Any, list[int]] = {}
    for owner, stage_id, override, fen in db.session.execute(stmt):
        row = sums.setdefault(owner, [0, 0])
        row[0] += int(fen or 0)
        row[1] += int(fen or 0) * pipeline.probability(by_id[stage_id], override)
    names = _people(sums)
    keys, categories = _grouped([(k,) for k in sums], names)
    return _fig("pipeline_by_rep", categories=categories, keys=keys,
                series=[FigureSeries(str(_l("Open amount")), [_yuan(sums[k][0]) for k in keys]),
                        FigureSeries(str(_l("Weighted")), [_yuan(sums[k][1], 10_000) for k in keys])])
