"""The sales manager's metrics: stale opportunities, the follow-up cycle, customers won /
lost, the churn rate, the 12-month trend of new customers and the funnel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, case, false, func, literal, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models.customers import Customer, CustomerStatusChange, FollowUp
from app.models.dictionaries import CustomerType
from app.models.sales import Lead, Opportunity, OpportunityStageChange, Stage
from app.security.data_scope import scope_clause
from app.security.request_bounds import db_int
from app.services import opportunities as opps
from app.services import pipeline
from app.services.leads import CONVERTED
from app.services.metrics.base import (
    _MONTH,
    _QUALIFIED,
    LOST,
    WON,
    Figure,
    FigureSeries,
    Filters,
    Period,
    _between,
    _count,
    _days_between,
    _define,
    _fig,
    _narrow,
    _percent,
    _with_period,
    add_months,
)
from app.services.metrics.sales import (
    _follow_ups_base,
    _new_customers_base,
    _open_stage_ids,
    _opportunity_conditions,
)

# --- manager: stale opportunities, follow-up cycle, customers won / lost / churn ---------------

def _stale_base(user: Any, filters: Filters, key: Any) -> Select:
    _stages, open_ids = _open_stage_ids()
    stage = [] if key is None else [Opportunity.stage_id == (db_int(key) if db_int(key) is not None else -1)]
    return select(Opportunity).where(opps.stale_clause(), Opportunity.stage_id.in_(open_ids),
                                     *_opportunity_conditions(user, filters), *stage)


@_define("stale_opportunities", _l("Stale opportunities"),
         _l("Open opportunities not updated for longer than their stage's stale days (e.g. 方案提交 7 days), "
            "by stage, as of now."),
         "count", "bar", "manager",
         records=lambda user, filters, key: _stale_base(user, filters, key).order_by(Opportunity.changed_on),
         dimension=_l("Stage"))
def _stale(user: Any, filters: Filters) -> Figure:
    """Open opportunities matching ``opportunities.stale_clause`` (the pipeline's rule:
    ``changed_on`` older than the stage's ``stale_days``), by stage; ``value`` = all of them.
    As of now (not the period). One query."""
    stmt = (select(Opportunity.stage_id, func.count(Opportunity.id))
            .where(_stale_base(user, filters, None).whereclause).group_by(Opportunity.stage_id))
    counts = dict(db.session.execute(stmt).tuples().all())
    stages = [s for s in pipeline.all_stages() if s.id in counts]
    return _fig("stale_opportunities", categories=[str(s.label) for s in stages], keys=[s.id for s in stages],
                series=[FigureSeries(str(_l("Opportunities")), [int(counts[s.id]) for s in stages])],
                value=int(sum(counts.values())))


def _previous_follow_up() -> ColumnElement:
    earlier = aliased(FollowUp)
    return (select(func.max(earlier.followed_at))
            .where(earlier.customer_id == FollowUp.customer_id, earlier.followed_at < FollowUp.followed_at)
            .correlate(FollowUp).scalar_subquery())


def _cycle_base(user: Any, filters: Filters) -> Select:
    return _follow_ups_base(user, filters).where(_previous_follow_up().is_not(None))


@_define("follow_up_cycle", _l("Average follow-up cycle"),
         _l("平均跟进周期: for each follow-up in the period, the days since the customer's previous follow-up "
            "(any earlier one); the average, in days. A customer's first follow-up has no cycle."),
         "days", "number", "manager",
         records=lambda user, filters, _key: _cycle_base(user, filters).order_by(FollowUp.followed_at.desc()))
def _follow_up_cycle(user: Any, filters: Filters) -> Figure:
    """平均跟进周期 (001 §四): over the follow-ups of the ``follow_ups`` figure (period,
    scope, follow-up owner) that have an earlier follow-up of the same customer, the mean
    of the days between the two, 1 decimal (Decimal); None when there is none. The previous
    one may lie before the period. One query (no ``previous``: it would double the cost)."""
    gap = _days_between(FollowUp.followed_at, _previous_follow_up())
    value = db.session.scalar(select(func.avg(gap)).where(_follow_ups_base(user, filters).whereclause))
    mean = None if value is None else Decimal(str(value)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    return _fig("follow_up_cycle", value=mean)


def _type_id(code: str) -> int:
    return db.session.scalar(select(CustomerType.id).where(CustomerType.code == code)) or -1


def _turned(user: Any, filters: Filters, code: str) -> Select:
    """Ids of customers (in scope, of the filtered owners) whose type changed to ``code``
    within the period (status history; distinct customers)."""
    return (select(CustomerStatusChange.customer_id)
            .join(Customer, Customer.id == CustomerStatusChange.customer_id)
            .where(CustomerStatusChange.to_type_id == _type_id(code),
                   *_between(CustomerStatusChange.changed_at, filters.period),
                   scope_clause(user, Customer), *_narrow(Customer.owner_id, filters))
            .distinct())


def _turned_records(code: str) -> Callable[[Any, Filters, Any], Select]:
    return lambda user, filters, _key: select(Customer).where(
        Customer.id.in_(_turned(user, filters, code))).order_by(Customer.name)


@_define("won_customers", _l("Customers won"),
         _l("成交客户数: customers whose type changed to 成交 (won) in the period, each counted once."),
         "count", "number", "manager", records=_turned_records(WON))
def _won_customers(user: Any, filters: Filters) -> Figure:
    """成交客户数 (001 §四): distinct customers with a status change to type ``won`` whose
    ``changed_at`` lies in the period (in scope, of the filtered owners, archived or not);
    ``previous`` = the previous period's."""
    return _fig("won_customers", value=_count(_turned(user, filters, WON)),
                previous=_count(_turned(user, _with_period(filters, filters.period.previous()), WON)))


@_define("churned_customers", _l("Customers lost"),
         _l("Customers whose type changed to 流失 (lost) in the period, each counted once."),
         "count", "number", "manager", records=_turned_records(LOST))
def _churned_customers(user: Any, filters: Filters) -> Figure:
    """Distinct customers with a status change to type ``lost`` in the period (as
    ``won_customers``); ``previous`` = the previous period's."""
    return _fig("churned_customers", value=_count(_turned(user, filters, LOST)),
                previous=_count(_turned(user, _with_period(filters, filters.period.previous()), LOST)))


def _lost_at_start(user: Any, filters: Filters, start: datetime) -> int:
    """Customers (in scope, of the filtered owners, created before ``start``, not archived)
    whose type at ``start`` was ``lost``: their last status change before it went to lost
    (every type change is in the status history, the first one at creation). Reads the few
    changes to lost (index on type, time), not the customers."""
    lost = _type_id(LOST)
    later = aliased(CustomerStatusChange)
    newer = (select(later.id).where(later.customer_id == CustomerStatusChange.customer_id, later.changed_at < start,
                                    or_(later.changed_at > CustomerStatusChange.changed_at,
                                        and_(later.changed_at == CustomerStatusChange.changed_at,
                                             later.id > CustomerStatusChange.id)))
             .correlate(CustomerStatusChange).exists())
    stmt = (select(func.count(func.distinct(CustomerStatusChange.customer_id)))
            .join(Customer, Customer.id == CustomerStatusChange.customer_id)
            .where(CustomerStatusChange.to_type_id == lost, CustomerStatusChange.changed_at < start, ~newer,
                   scope_clause(user, Customer), Customer.archived_at.is_(None), Customer.created_on < start,
                   *_narrow(Customer.owner_id, filters)))
    return int(db.session.scalar(stmt) or 0)


def _customers_at_start(user: Any, filters: Filters) -> tuple[int, int]:
    """(customers existing at the period's start, of them lost then): created before it,
    not archived, in scope, of the filtered owners. One count with a CASE (the
    (owner, archived) index holds what it reads) and ``_lost_at_start``."""
    start, _end = filters.period.instants()
    existing = db.session.scalar(select(func.coalesce(func.sum(case((Customer.created_on < start, 1), else_=0)), 0))
                                 .where(scope_clause(user, Customer), Customer.archived_at.is_(None),
                                        *_narrow(Customer.owner_id, filters))) or 0
    return int(existing), _lost_at_start(user, filters, start)


@_define("churn_rate", _l("Churn rate"),
         _l("客户流失率: customers turned 流失 (lost) in the period ÷ customers not lost at the period's start "
            "(created before it, not archived), in %."),
         "percent", "number", "manager", records=_turned_records(LOST))
def _churn_rate(user: Any, filters: Filters) -> Figure:
    """客户流失率 (001 §四) = ``churned_customers`` / customers not lost at the period's start
    (created before it, not archived, whose type then was not ``lost``), in % with 1
    decimal; None when that denominator is 0. The type at the start is read from the status
    history (``_lost_at_start``). No ``previous`` (it would double the dashboard's cost;
    ``churned_customers`` has one)."""
    existing, lost_then = _customers_at_start(user, filters)
    return _fig("churn_rate", value=_percent(_count(_turned(user, filters, LOST)), existing - lost_then))


def _trend_months(period: Period) -> list[date]:
    last = period.start.replace(day=1)
    return [add_months(last, -11 + i) for i in range(12)]


def _trend_base(user: Any, filters: Filters, key: Any) -> Select:
    months = _trend_months(filters.period)
    start = _month_key(key, months)
    if start is None:
        return select(Customer).where(false())
    return _new_customers_base(user, _with_period(filters, Period.month_of(start)))


def _month_key(key: Any, months: list[date]) -> date | None:
    if key is None:
        return None
    match = _MONTH.match(str(key))
    if match is None or not 1 <= int(match.group(2)) <= 12:
        return None
    day = date(int(match.group(1)), int(match.group(2)), 1)
    return day if day in months else None


@_define("new_customers_trend", _l("New customers, 12 months"),
         _l("新增客户数 per month for the 12 months ending with the period's month (customers created in each "
            "month, CRM time zone, not archived)."),
         "count", "line", "manager",
         records=lambda user, filters, key: _trend_base(user, filters, key).order_by(Customer.created_on.desc()),
         dimension=_l("Month"))
def _new_customers_trend(user: Any, filters: Filters) -> Figure:
    """``new_customers`` for each of the 12 months ending with the period's (first) month;
    keys ``YYYY-MM``. One query: the month is a CASE over the 13 CRM-zone month boundaries
    (exact in any zone, no date arithmetic in SQL)."""
    months = _trend_months(filters.period)
    edges = [Period.month_of(m).instants()[0] for m in months] + [Period.month_of(months[-1]).instants()[1]]
    bucket = case(*[(Customer.created_on < edges[i + 1], i) for i in range(12)], else_=12)
    stmt = (select(bucket, func.count(Customer.id))
            .where(scope_clause(user, Customer), Customer.archived_at.is_(None), Customer.created_on >= edges[0],
                   Customer.created_on < edges[-1], *_narrow(Customer.owner_id, filters))
            .group_by(bucket))
    counts = dict(db.session.execute(stmt).tuples().all())
    return _fig("new_customers_trend", categories=[m.strftime("%Y-%m") for m in months],
                keys=[m.strftime("%Y-%m") for m in months],
                series=[FigureSeries(str(_l("New customers")), [int(counts.get(i, 0)) for i in range(12)])])


# --- manager: funnel (客户转化率分析) ------------------------------------------------------------

def _funnel_stages() -> list[Stage]:
    """The funnel's steps after the leads: active stages that are not lost, in order (won last)."""
    return [s for s in pipeline.all_stages() if s.active and not s.is_lost]


def _funnel_opportunities(user: Any, filters: Filters) -> Select:
    """Opportunity ids created in the period, in scope, of the filtered owners."""
    return select(Opportunity.id).where(*_opportunity_conditions(user, filters),
                                        *_between(Opportunity.created_on, filters.period))


def _reached(user: Any, filters: Filters) -> Any:
    """Subquery (opp, rank) over the period's opportunities: the furthest stage reached."""
    mine = _funnel_opportunities(user, filters)
    stages = [s for s in pipeline.all_stages() if not s.is_lost]
    history = (select(OpportunityStageChange.opportunity_id.label("opp"), OpportunityStageChange.to_stage_id.label("sid"))
               .where(OpportunityStageChange.opportunity_id.in_(mine)))
    current = select(Opportunity.id.label("opp"), Opportunity.stage_id.label("sid")).where(Opportunity.id.in_(mine))
    both = history.union_all(current).subquery()
    rank = case({s.id: s.sort_order for s in stages}, value=both.c.sid, else_=None) if stages else literal(None)
    return select(both.c.opp, func.max(rank).label("rank")).group_by(both.c.opp).subquery()


def _leads_base(user: Any, filters: Filters) -> Select:
    return select(Lead).where(scope_clause(user, Lead), *_between(Lead.created_on, filters.period),
                              *_narrow(Lead.owner_id, filters))


def _funnel_records(user: Any, filters: Filters, key: Any) -> Select:
    lead_steps = {"leads": (), "qualified": _QUALIFIED, "converted": (CONVERTED,)}
    if key in lead_steps:
        statuses = lead_steps[key]
        stmt = _leads_base(user, filters).where(*([Lead.status.in_(statuses)] if statuses else []))
        return stmt.order_by(Lead.created_on.desc())
    stage = next((s for s in _funnel_stages() if s.id == db_int(key)), None) if key is not None else None
    if stage is None:
        return select(Opportunity).where(false())
    reached = _reached(user, filters)
    return (select(Opportunity).where(Opportunity.id.in_(select(reached.c.opp).where(reached.c.rank >= stage.sort_order)))
            .order_by(Opportunity.created_on.desc()))


#: The funnel's lead steps (keys, labels): each a subset of the one before, the same leads.
_LEAD_STEPS = (("leads", _l("Leads")), ("qualified", _l("Qualified")), ("converted", _l("Converted")))


@_define("funnel", _l("Sales funnel"),
         _l("客户转化率分析 in two record sets. Leads created in the period → of them qualified → of them converted "
            "to an opportunity; then opportunities created in the period → of them those that reached each "
            "stage (or a later one) → won. Each conversion rate compares a step with the step before over the "
            "same records; between the leads and the first stage the records differ, so no rate is shown (–)."),
         "count", "funnel", "manager", records=_funnel_records, dimension=_l("Step"))
def _funnel(user: Any, filters: Filters) -> Figure:
    """The funnel (003 第三步 4 客户转化率分析) over two record sets, each step a subset of
    the step before it: the LEADS created in the period (scope, lead owner) — "Leads",
    "Qualified" (now ``qualified`` or ``converted``), "Converted" (now ``converted``) — then
    the OPPORTUNITIES created in the period: per active not-lost stage in order (won last)
    those whose furthest stage reached (current or any in their stage history, lost not
    counted) is that stage or a later one. Series "Count" and "Conversion %" (unit
    percent: step ÷ the step before, 1 decimal, never above 100; None for the first step,
    a zero denominator, and the first stage: its opportunities are not the converted leads
    of the period, so a ratio between them would mean nothing). Two queries."""
    leads, qualified, converted = db.session.execute(select(
        func.count(Lead.id), func.coalesce(func.sum(case((Lead.status.in_(_QUALIFIED), 1), else_=0)), 0),
        func.coalesce(func.sum(case((Lead.status == CONVERTED, 1), else_=0)), 0))
        .where(_leads_base(user, filters).whereclause)).one()
    reached = _reached(user, filters)
    ranks = dict(db.session.execute(select(reached.c.rank, func.count()).group_by(reached.c.rank)).tuples().all())
    stages = _funnel_stages()
    lead_counts = [int(leads), int(qualified), int(converted)]
    stage_counts = [sum(int(n) for rank, n in ranks.items() if rank is not None and rank >= s.sort_order)
                    for s in stages]
    rates = ([None] + [_percent(lead_counts[i], lead_counts[i - 1]) for i in range(1, len(lead_counts))]
             + [None] + [_percent(stage_counts[i], stage_counts[i - 1]) for i in range(1, len(stage_counts))])
    return _fig("funnel", categories=[str(label) for _key, label in _LEAD_STEPS] + [str(s.label) for s in stages],
                keys=[key for key, _label in _LEAD_STEPS] + [s.id for s in stages],
                series=[FigureSeries(str(_l("Count")), lead_counts + stage_counts),
                        FigureSeries(str(_l("Conversion %")), rates, unit="percent")])
