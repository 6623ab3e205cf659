"""Metrics defined once (issue 17): what counts, which date, which status — in the CRM's
time zone, from the records in the viewer's data scope. Dashboards, the drill-down lists,
exports and the scheduled e-mail all read them from here.

Rules: 000 (管理层: 销售漏斗, 客户转化率; 报表数据准确性), 001 §四 (KPIs 新增客户数,
成交客户数, 平均跟进周期, 客户流失率), 002 §七 and §十(二) (sales performance, target
attainment, service quality), 003 第三步 4 (月度销售业绩报表 by rep, region, product;
客户转化率分析 from lead to each stage).

CONTRACT (the dashboards and reports builders rely on these names and shapes):

- ``Period(start, end)``: days in the CRM's zone, ``end`` exclusive; ``Period.month_of(day)``,
  ``.previous()``, ``.instants()`` -> (UTC start, UTC end) for instant columns.
- ``Filters(period, department_id=None, owner_id=None)``; ``parse_filters(args, user)`` reads
  ``period`` (``YYYY-MM``, default this month), ``department``, ``owner`` from request args
  and refuses (``RuleViolation``) a department or owner outside the viewer's scope.
- ``Figure``: one chart and its table (``as_dict()`` is the JSON ``views/static/crm/charts.js``
  draws). ``categories[i]`` is labelled, ``keys[i]`` is what a drill-down passes back.
- ``Metric(key, title, help, unit, chart, compute, records)``: ``compute(user, filters)`` ->
  ``Figure``; ``records(user, filters, category_key)`` -> a ``Select`` of the rows behind a
  number (the SAME conditions the number counts), or None when the metric has no list.
- ``METRICS``: key -> Metric; ``metric(key)`` (NotFound), ``figure(key, user, filters)``,
  ``drill(key, user, filters, category_key)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import g, has_request_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, Select, and_, case, cast, false, func, literal, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from app.clock import from_local, local_today, utc_now
from app.extensions import db
from app.models.activities import Activity
from app.models.audit import AuditLog
from app.models.customers import Customer, CustomerStatusChange, FollowUp
from app.models.dictionaries import CustomerType, FeedbackType, Priority, TicketType
from app.models.orders import OrderLine, SalesOrder
from app.models.org import SCOPE_ALL, SCOPE_DEPARTMENT, CrmUser, Department
from app.models.reports import SalesTarget
from app.models.sales import Lead, Opportunity, OpportunityStageChange, Product, Stage
from app.models.service import ServiceFeedback, Ticket
from app.models.sync import SyncRun
from app.models.transfers import FAILED, TransferJob
from app.security import alerts
from app.security.data_scope import department_tree_ids, owner_in, scope_clause, user_scope, visible_owner_ids
from app.security.request_bounds import db_int
from app.services import activities as act
from app.services import opportunities as opps
from app.services import pipeline, tickets
from app.services.errors import NotFound, RuleViolation
from app.services.leads import CONVERTED, QUALIFIED
from app.services.orders import APPROVED, CLOSED, DELIVERED, DELIVERING, IN_PRODUCTION

#: Sales orders that count as sales: confirmed (approved onward), not draft, waiting or cancelled.
CONFIRMED = (APPROVED, IN_PRODUCTION, DELIVERING, DELIVERED, CLOSED)
_QUALIFIED = (QUALIFIED, CONVERTED)
WON, LOST = "won", "lost"

#: Units a figure's numbers are in (the table and the chart format them).
UNITS = ("count", "money", "percent", "days")
#: Chart types ECharts draws for a figure ("number" is a single KPI tile; "table" has no chart).
CHARTS = ("number", "bar", "line", "pie", "funnel", "table")
#: Dashboards a metric sits on (a drill-down is allowed to whoever may open that dashboard).
DASHBOARDS = ("sales", "manager", "service", "admin")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_CENT = Decimal("0.01")


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """Days ``start`` (inclusive) to ``end`` (exclusive) in the CRM's zone."""

    start: date
    end: date

    @classmethod
    def month_of(cls, day: date) -> Period:
        """The calendar month holding ``day`` (a CRM-zone date)."""
        first = day.replace(day=1)
        return cls(first, add_months(first, 1))

    def previous(self) -> Period:
        """The period of the same length just before: the previous month for a month."""
        if self.start.day == 1 and self.end == add_months(self.start, 1):
            return Period(add_months(self.start, -1), self.start)
        return Period(self.start - (self.end - self.start), self.start)

    def instants(self) -> tuple[datetime, datetime]:
        """(UTC start, UTC end) of the period's CRM-zone days, for instant columns
        (``created_on``, ``followed_at``…): compare ``start <= column < end``. In
        Asia/Shanghai a month starts at 16:00 UTC the day before."""
        return (from_local(datetime.combine(self.start, time())),
                from_local(datetime.combine(self.end, time())))

    @property
    def label(self) -> str:
        """``YYYY-MM`` for a month, else ``start – end`` (inclusive last day)."""
        if self.start.day == 1 and self.end == add_months(self.start, 1):
            return self.start.strftime("%Y-%m")
        return f"{self.start.isoformat()} – {(self.end - timedelta(days=1)).isoformat()}"


@dataclass(frozen=True)
class Filters:
    """What every figure is narrowed to, besides the viewer's data scope: the period, one
    department (with its sub-departments: the records of owners in it) and/or one owner."""

    period: Period
    department_id: int | None = None
    owner_id: int | None = None


@dataclass
class FigureSeries:
    """One row of numbers over a figure's categories. ``unit`` when it is not the figure's
    (the funnel's conversion in %, the pipeline's count beside its amount), else None."""

    name: str
    values: list[int | Decimal | None]
    unit: str | None = None


@dataclass
class Figure:
    """One chart with its numbers. ``value`` is the single number of a "number" figure."""

    key: str
    title: str
    help: str
    unit: str
    chart: str
    categories: list[str] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)
    series: list[FigureSeries] = field(default_factory=list)
    value: int | Decimal | None = None
    #: the same number for the previous period ("this month vs last"), when the metric has one
    previous: int | Decimal | None = None
    #: drill-down URL per category (filled by the screen, which knows the routes)
    links: list[str | None] = field(default_factory=list)
    #: what the categories are ("Stage", "Sales rep"...): the table's top-left header
    dimension: str = ""

    def unit_of(self, index: int) -> str:
        """The unit of series ``index``: its own, else the figure's."""
        series = self.series[index] if 0 <= index < len(self.series) else None
        return (series.unit if series is not None else None) or self.unit

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: Decimals as strings, everything else as is."""
        def plain(v: Any) -> Any:
            return str(v) if isinstance(v, Decimal) else v
        return {"key": self.key, "title": str(self.title), "help": str(self.help), "unit": self.unit,
                "chart": self.chart, "categories": [str(c) for c in self.categories],
                "keys": [plain(k) for k in self.keys],
                "series": [{"name": str(s.name), "values": [plain(v) for v in s.values], "unit": s.unit}
                           for s in self.series],
                "value": plain(self.value), "previous": plain(self.previous), "links": list(self.links),
                "dimension": str(self.dimension or "")}


@dataclass(frozen=True)
class Metric:
    key: str
    title: Any
    help: Any
    unit: str
    chart: str
    compute: Callable[[Any, Filters], Figure]
    records: Callable[[Any, Filters, Any], Select] | None = None
    #: the dashboard it sits on ("sales", "manager", "service", "admin"): whoever may open
    #: that dashboard may drill into it
    dashboard: str = "manager"
    #: what the categories are (``Figure.dimension``), None for a single number
    dimension: Any = None



METRICS: dict[str, Metric] = {}


def _define(key: str, title: Any, help_text: Any, unit: str, chart: str, dashboard: str,
            records: Callable[[Any, Filters, Any], Select] | None = None, dimension: Any = None) -> Callable:
    """Decorator: register ``compute`` as the metric ``key`` (one definition per key);
    ``dimension`` names its categories (None for a single number)."""
    assert unit in UNITS and chart in CHARTS and dashboard in DASHBOARDS, key

    def wrap(compute: Callable[[Any, Filters], Figure]) -> Callable[[Any, Filters], Figure]:
        METRICS[key] = Metric(key, title, help_text, unit, chart, compute, records, dashboard, dimension)
        return compute
    return wrap


def metric(key: str) -> Metric:
    """The metric named ``key``. Raises ``NotFound`` for an unknown key."""
    found = METRICS.get(key) if isinstance(key, str) else None
    if found is None:
        raise NotFound({"metric": str(_l("There is no such figure."))})
    return found


def _memo() -> dict:
    """A per-request memo (one dashboard asks for a figure once; nothing survives the request)."""
    return g.setdefault("_crm_metrics_memo", {}) if has_request_context() else {}


def figure(key: str, user: Any, filters: Filters) -> Figure:
    """The metric ``key`` computed for ``user`` (their data scope) and ``filters``.

    Raises ``NotFound`` for an unknown key. Memoised for the request on (key, viewer,
    filters), never across requests.
    """
    found = metric(key)
    memo, memo_key = _memo(), (key, getattr(user, "id", None), filters)
    if memo_key not in memo:
        memo[memo_key] = found.compute(user, filters)
    return memo[memo_key]


def drill(key: str, user: Any, filters: Filters, category: Any = None) -> Select:
    """The rows behind the metric ``key``'s number for ``category`` (one of its figure's
    ``keys``; None = behind the whole number): a ``Select`` of the metric's record model
    with the SAME conditions the number counts (scope, filters, period, status).

    Raises ``NotFound`` for an unknown key or a metric without a list.
    """
    found = metric(key)
    if found.records is None:
        raise NotFound({"metric": str(_l("This figure has no list of records."))})
    return found.records(user, filters, category)


# --- filters ---------------------------------------------------------------------------

def _whole_id(raw: Any, field_name: str, message: Any) -> int | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    number = db_int(raw.strip() if isinstance(raw, str) else raw)
    if number is None:
        raise RuleViolation({field_name: str(message)}, status=400)
    return number


def _period(raw: Any) -> Period:
    if raw is None or not str(raw).strip():
        return Period.month_of(local_today())
    match = _MONTH.match(str(raw).strip())
    if match is None or not 1 <= int(match.group(2)) <= 12 or not 1900 <= int(match.group(1)) <= 9998:
        raise RuleViolation({"period": str(_l("Enter a month as YYYY-MM, e.g. 2024-05."))}, status=400)
    return Period.month_of(date(int(match.group(1)), int(match.group(2)), 1))


def department_choices(user: Any) -> list[tuple[int, str]]:
    """Departments ``user`` may filter by, as (id, name) by name: every one for a user who
    sees every owner, a department-scope user's own department tree, none for the others."""
    scope = user_scope(user)
    stmt = select(Department.id, Department.name).order_by(Department.name, Department.id)
    if scope == SCOPE_ALL:
        return list(db.session.execute(stmt).tuples())
    if scope == SCOPE_DEPARTMENT and getattr(user, "department_id", None):
        tree = sorted(department_tree_ids(user.department_id))
        return list(db.session.execute(stmt.where(Department.id.in_(tree))).tuples())
    return []


def owner_choices(user: Any) -> list[tuple[int, str]]:
    """Users ``user`` may filter by (their visible owners), as (id, name) by name: the
    pipeline's list (``pipeline.owner_choices``), so both filter bars offer the same people."""
    return pipeline.owner_choices(user)


def parse_filters(args: Any, user: Any) -> Filters:
    """The dashboard filters from request args: ``period`` (``YYYY-MM``, default this month
    in the CRM's zone), ``department`` and ``owner`` (ids).

    Refused (``RuleViolation``, status 400, keyed ``period`` / ``department`` / ``owner``)
    rather than ignored: a malformed month; an owner outside the viewer's scope (a rep may
    name only themself, a manager the people of their department tree, an admin anyone);
    a department outside ``department_choices`` (a manager's tree; none for a rep).
    """
    period = _period(args.get("period"))
    owner_id = _whole_id(args.get("owner"), "owner", _l("Choose an owner from the list."))
    department_id = _whole_id(args.get("department"), "department", _l("Choose a department from the list."))
    if owner_id is not None:
        owners = visible_owner_ids(user)
        known = db.session.get(CrmUser, owner_id) is not None
        if not known or (owners is not None and owner_id not in owners):
            raise RuleViolation({"owner": str(_l("Choose an owner from the list."))}, status=400)
    if department_id is not None and department_id not in {dep for dep, _ in department_choices(user)}:
        raise RuleViolation({"department": str(_l("Choose a department from the list."))}, status=400)
    return Filters(period, department_id, owner_id)


def _narrow(owner_column: Any, filters: Filters) -> list[ColumnElement]:
    """The owner / department filters on a record's owner column."""
    conditions: list[ColumnElement] = []
    if filters.owner_id is not None:
        conditions.append(owner_column == filters.owner_id)
    if filters.department_id is not None:
        tree = sorted(department_tree_ids(filters.department_id))
        conditions.append(owner_column.in_(select(CrmUser.id).where(CrmUser.department_id.in_(tree))))
    return conditions


def _between(column: Any, period: Period) -> list[ColumnElement]:
    """``column`` (an instant) inside the period's CRM-zone days."""
    start, end = period.instants()
    return [column >= start, column < end]


def _on_days(column: Any, period: Period) -> list[ColumnElement]:
    """``column`` (a date) inside the period."""
    return [column >= period.start, column < period.end]


# --- helpers ---------------------------------------------------------------------------

def _person(first: str | None, last: str | None) -> str:
    return " ".join(part for part in (first, last) if part) or "—"


def _fig(key: str, **values: Any) -> Figure:
    """A Figure carrying the metric's title, help, unit, chart and dimension."""
    found = METRICS[key]
    values.setdefault("dimension", str(found.dimension) if found.dimension is not None else "")
    return Figure(key, found.title, found.help, found.unit, found.chart, **values)


def _count(stmt: Select) -> int:
    """Rows of ``stmt`` counted in SQL."""
    return int(db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)


def _percent(part: Any, whole: Any) -> Decimal | None:
    """part / whole in %, 1 decimal; None when ``whole`` is 0 (no denominator, no rate)."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(_CENT, ROUND_HALF_UP)


def _nothing(model: type) -> Select:
    return select(model).where(false())


# --- sales rep: new customers, follow-ups -------------------------------------------------

def _new_customers_base(user: Any, filters: Filters) -> Select:
    return select(Customer).where(scope_clause(user, Customer), Customer.archived_at.is_(None),
                                  *_between(Customer.created_on, filters.period),
                                  *_narrow(Customer.owner_id, filters))


def _with_period(filters: Filters, period: Period) -> Filters:
    return Filters(period, filters.department_id, filters.owner_id)


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


# --- shared pieces ---------------------------------------------------------------------------

def _fen(column: Any) -> ColumnElement:
    """A money column in whole fen (integer): sums stay exact on SQLite and PostgreSQL."""
    return cast(func.round(func.coalesce(column, 0) * 100), BigInteger)


def _yuan(fen: Any, scale: int = 100) -> Decimal:
    """Integer fen (× ``scale``/100) -> yuan, 2 decimals."""
    return (Decimal(int(fen or 0)) / scale).quantize(_CENT, ROUND_HALF_UP)


def _people(ids: Any) -> dict[Any, str]:
    wanted = sorted(i for i in set(ids) if i is not None)
    names = {uid: _person(first, last) for uid, first, last in db.session.execute(
        select(CrmUser.id, CrmUser.first_name, CrmUser.last_name).where(CrmUser.id.in_(wanted or [-1])))}
    names[None] = str(_l("(nobody)"))
    return names


def _labels(model: type, ids: Any) -> dict[Any, str]:
    """Dictionary entries' labels in the reader's language."""
    wanted = sorted(i for i in set(ids) if i is not None)
    found = {row.id: str(row.label) for row in db.session.scalars(select(model).where(model.id.in_(wanted or [-1])))}
    found[None] = str(_l("(none)"))
    return found


def _departments(ids: Any) -> dict[Any, str]:
    wanted = sorted(i for i in set(ids) if i is not None)
    found = dict(db.session.execute(select(Department.id, Department.name)
                                    .where(Department.id.in_(wanted or [-1]))).tuples().all())
    found[None] = str(_l("(no department)"))
    return found


def _grouped(rows: list[tuple[Any, ...]], labels: dict[Any, str]) -> tuple[list[Any], list[str]]:
    """Keys of ``rows`` (first column) ordered by their label."""
    keys = sorted({row[0] for row in rows}, key=lambda k: (labels.get(k, str(k)), str(k)))
    return keys, [labels.get(k, str(k)) for k in keys]


def _days_between(later: Any, earlier: Any) -> ColumnElement:
    """Days (fractional) from ``earlier`` to ``later`` (instant columns), per database."""
    if db.engine.dialect.name == "postgresql":
        return func.extract("epoch", later - earlier) / 86400.0
    return func.julianday(later) - func.julianday(earlier)


def _everyone_only(user: Any) -> bool:
    """Admin figures (sessions, transfers, jobs, alerts) are not per owner: only a user
    who sees every owner gets them (the admin dashboard is Admin's)."""
    return visible_owner_ids(user) is None


# --- sales rep: activities, pipeline, forecast -------------------------------------------------

def _today_instants() -> tuple[datetime, datetime]:
    start = from_local(datetime.combine(local_today(), time()))
    return start, start + timedelta(days=1)


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


# --- manager: sales (月度销售业绩报表) --------------------------------------------------------------

def _orders_base(user: Any, filters: Filters) -> Select:
    return select(SalesOrder).where(SalesOrder.status.in_(CONFIRMED), scope_clause(user, SalesOrder),
                                    *_on_days(SalesOrder.order_date, filters.period),
                                    *_narrow(SalesOrder.owner_id, filters))


def _targets(user: Any, filters: Filters) -> dict[int, Decimal]:
    """Sales targets (yuan) per rep for the period's months, of the people in view."""
    stmt = (select(SalesTarget.user_id, func.sum(_fen(SalesTarget.amount)))
            .where(SalesTarget.month >= filters.period.start, SalesTarget.month < filters.period.end,
                   owner_in(SalesTarget.user_id, visible_owner_ids(user)), *_narrow(SalesTarget.user_id, filters))
            .group_by(SalesTarget.user_id))
    return {uid: _yuan(fen) for uid, fen in db.session.execute(stmt)}


def _orders_by(column: Any) -> Callable[[Any, Filters, Any], Select]:
    def records(user: Any, filters: Filters, key: Any) -> Select:
        stmt = _orders_base(user, filters)
        if key is not None:
            number = db_int(key)
            stmt = stmt.where(column.is_(None) if key == "none" else column == (number if number is not None else -1))
        return stmt.order_by(SalesOrder.order_date.desc(), SalesOrder.id.desc())
    return records


@_define("sales_by_rep", _l("Sales by rep"),
         _l("月度销售业绩: confirmed sales orders (approved onward; not draft, waiting or cancelled) by order date in "
            "the period, total per owner, beside the owner's sales target for the period."),
         "money", "bar", "manager", records=_orders_by(SalesOrder.owner_id), dimension=_l("Sales rep"))
def _sales_by_rep(user: Any, filters: Filters) -> Figure:
    """月度销售业绩 by rep (003 第三步 4): Σ ``total`` of orders in ``CONFIRMED`` statuses
    (approved, in production, delivering, delivered, closed) whose ``order_date`` lies in
    the period, per owner (yuan Decimal; amounts as recorded, whatever their currency);
    series "Sales" and "Target" (``SalesTarget`` of the period's months; None when the rep
    has none). Reps with a target and no sales are listed. Two queries."""
    stmt = (select(SalesOrder.owner_id, func.sum(_fen(SalesOrder.total)))
            .where(_orders_base(user, filters).whereclause).group_by(SalesOrder.owner_id))
    sales = {uid: _yuan(fen) for uid, fen in db.session.execute(stmt)}
    targets = _targets(user, filters)
    names = _people(set(sales) | set(targets))
    keys, categories = _grouped([(k,) for k in set(sales) | set(targets)], names)
    return _fig("sales_by_rep", categories=categories, keys=keys,
                series=[FigureSeries(str(_l("Sales")), [sales.get(k, Decimal("0.00")) for k in keys]),
                        FigureSeries(str(_l("Target")), [targets.get(k) for k in keys])],
                value=sum(sales.values(), Decimal("0.00")))


@_define("sales_by_department", _l("Sales by region"),
         _l("Confirmed sales orders by order date in the period, total per region (the order owner's department)."),
         "money", "bar", "manager",
         records=lambda user, filters, key: _orders_by(SalesOrder.owner_id)(user, filters, None).where(
             SalesOrder.owner_id.in_(select(CrmUser.id).where(
                 CrmUser.department_id.is_(None) if key == "none" else CrmUser.department_id == (db_int(key) or -1))))
         if key is not None else _orders_by(SalesOrder.owner_id)(user, filters, None), dimension=_l("Region"))
def _sales_by_department(user: Any, filters: Filters) -> Figure:
    """``sales_by_rep``'s orders per region = the owner's department (its own, not rolled
    up to parents); key "none" for owners without one. One query."""
    stmt = (select(CrmUser.department_id, func.sum(_fen(SalesOrder.total)))
            .join(CrmUser, CrmUser.id == SalesOrder.owner_id)
            .where(_orders_base(user, filters).whereclause).group_by(CrmUser.department_id))
    rows = db.session.execute(stmt).all()
    names = _departments(row[0] for row in rows)
    keys, categories = _grouped(rows, names)
    sums = dict(rows)
    return _fig("sales_by_department", categories=categories, keys=["none" if k is None else k for k in keys],
                series=[FigureSeries(str(_l("Sales")), [_yuan(sums[k]) for k in keys])])


def _product_records(user: Any, filters: Filters, key: Any) -> Select:
    """The ORDER LINES behind ``sales_by_product`` (their amounts add up to the product's
    number), newest order first; a whole order would list its other products too."""
    stmt = (select(OrderLine).join(SalesOrder, SalesOrder.id == OrderLine.order_id)
            .where(_orders_base(user, filters).whereclause))
    if key is not None:
        number = db_int(key)
        stmt = stmt.where(OrderLine.product_id == (number if number is not None else -1))
    return stmt.order_by(SalesOrder.order_date.desc(), SalesOrder.id.desc(), OrderLine.position)


@_define("sales_by_product", _l("Sales by product"),
         _l("Confirmed sales orders by order date in the period: the sum of their line amounts per product "
            "(the drill-down lists those order lines)."),
         "money", "bar", "manager", records=_product_records, dimension=_l("Product"))
def _sales_by_product(user: Any, filters: Filters) -> Figure:
    """Σ ``OrderLine.amount`` per product over ``sales_by_rep``'s orders (yuan Decimal); the
    drill-down lists those order lines (``_product_records``). One query."""
    stmt = (select(OrderLine.product_id, func.sum(_fen(OrderLine.amount)))
            .join(SalesOrder, SalesOrder.id == OrderLine.order_id)
            .where(_orders_base(user, filters).whereclause).group_by(OrderLine.product_id))
    rows = db.session.execute(stmt).all()
    names = dict(db.session.execute(select(Product.id, Product.name).where(
        Product.id.in_([r[0] for r in rows] or [-1]))).tuples().all())
    keys, categories = _grouped(rows, names)
    sums = dict(rows)
    return _fig("sales_by_product", categories=categories, keys=keys,
                series=[FigureSeries(str(_l("Sales")), [_yuan(sums[k]) for k in keys])])


@_define("target_attainment", _l("Target attainment"),
         _l("Sales (confirmed orders by order date in the period) ÷ sales target for the period, in %; per rep "
            "and in total. Empty when there is no target."),
         "percent", "bar", "manager", records=_orders_by(SalesOrder.owner_id), dimension=_l("Sales rep"))
def _target_attainment(user: Any, filters: Filters) -> Figure:
    """Target attainment (002 §十(二)): per rep with a target, ``sales_by_rep``'s sales /
    target in % (1 decimal); ``value`` = all those reps' sales / all their targets; None
    where the target is missing or 0 (no denominator, no rate)."""
    sales_figure = _sales_by_rep(user, filters)
    sales = dict(zip(sales_figure.keys, sales_figure.series[0].values, strict=True))
    targets = _targets(user, filters)
    keys = [k for k in sales_figure.keys if targets.get(k)]
    total_sales = sum((sales.get(k, Decimal(0)) for k in keys), Decimal("0.00"))
    return _fig("target_attainment", categories=[sales_figure.categories[sales_figure.keys.index(k)] for k in keys],
                keys=keys, series=[FigureSeries(str(_l("Attainment %")),
                                                [_percent(sales.get(k, 0), targets[k]) for k in keys])],
                value=_percent(total_sales, sum(targets[k] for k in keys)))


# --- service lead ----------------------------------------------------------------------------

def _ticket_conditions(user: Any, filters: Filters) -> list[ColumnElement]:
    """Tickets in the viewer's ticket scope; owner/department filters on the assignee."""
    return [scope_clause(user, Ticket), *_narrow(Ticket.assignee_id, filters)]


def _by_column(column: Any, key: Any) -> list[ColumnElement]:
    if key is None:
        return []
    number = db_int(key)
    return [column == (number if number is not None else -1)]


def _open_tickets(user: Any, filters: Filters, key: Any) -> Select:
    return select(Ticket).where(Ticket.status.in_(tickets.OPEN_STATUSES), *_ticket_conditions(user, filters),
                                *_by_column(Ticket.priority_id, key))


@_define("open_tickets_by_priority", _l("Open tickets by priority"),
         _l("Tickets not yet resolved or closed (new, assigned, in progress, waiting), by priority, as of now."),
         "count", "pie", "service",
         records=lambda user, filters, key: _open_tickets(user, filters, key).order_by(Ticket.resolve_due_at),
         dimension=_l("Priority"))
def _open_tickets_by_priority(user: Any, filters: Filters) -> Figure:
    """Tickets in ``tickets.OPEN_STATUSES`` in the viewer's ticket scope (assignee filters),
    per priority; a snapshot now. One query."""
    stmt = (select(Ticket.priority_id, func.count(Ticket.id)).where(_open_tickets(user, filters, None).whereclause)
            .group_by(Ticket.priority_id))
    counts = dict(db.session.execute(stmt).tuples().all())
    order = {p.id: (p.sort_order, p.id) for p in db.session.scalars(select(Priority))}
    keys = sorted(counts, key=lambda k: order.get(k, (0, k)))
    labels = _labels(Priority, keys)
    return _fig("open_tickets_by_priority", categories=[labels[k] for k in keys], keys=keys,
                series=[FigureSeries(str(_l("Tickets")), [int(counts[k]) for k in keys])],
                value=int(sum(counts.values())))


def _resolved_base(user: Any, filters: Filters, key: Any) -> Select:
    breached = {"met": [Ticket.resolve_breached.is_(False)], "breached": [Ticket.resolve_breached.is_(True)]}
    if key is not None and key not in breached:
        return select(Ticket).where(false())
    return select(Ticket).where(Ticket.resolved_at.is_not(None), *_between(Ticket.resolved_at, filters.period),
                                *_ticket_conditions(user, filters), *(breached[key] if key else []))


@_define("sla_compliance", _l("SLA compliance"),
         _l("Of the tickets resolved in the period, the share resolved within their SLA resolution time. "
            "A late first response alone does not make a ticket non-compliant (see SLA breaches)."),
         "percent", "number", "service",
         records=lambda user, filters, key: _resolved_base(user, filters, key).order_by(Ticket.resolved_at.desc()),
         dimension=_l("Result"))
def _sla_compliance(user: Any, filters: Filters) -> Figure:
    """SLA compliance (002 §十(二) 服务质量): tickets whose ``resolved_at`` lies in the period
    (ticket scope, assignee filters); compliant = ``resolve_breached`` false; value = % of
    compliant (1 decimal, None when none was resolved). Response breaches are counted by
    ``sla_breaches``, not here. Categories "met"/"breached" with their counts. One query."""
    met, late = db.session.execute(select(
        func.coalesce(func.sum(case((Ticket.resolve_breached.is_(False), 1), else_=0)), 0),
        func.coalesce(func.sum(case((Ticket.resolve_breached.is_(True), 1), else_=0)), 0))
        .where(_resolved_base(user, filters, None).whereclause)).one()
    return _fig("sla_compliance", categories=[str(_l("Within SLA")), str(_l("Breached"))], keys=["met", "breached"],
                series=[FigureSeries(str(_l("Tickets")), [int(met), int(late)])],
                value=_percent(met, int(met) + int(late)))


def _breach_condition(period: Period) -> ColumnElement:
    """The ticket breached a deadline inside the period: its response (or resolution) was
    due in the period and that clock is marked breached."""
    return or_(and_(Ticket.response_breached.is_(True), *_between(Ticket.response_due_at, period)),
               and_(Ticket.resolve_breached.is_(True), *_between(Ticket.resolve_due_at, period)))


def _breach_base(user: Any, filters: Filters, key: Any) -> Select:
    return select(Ticket).where(_breach_condition(filters.period), *_ticket_conditions(user, filters),
                                *_by_column(Ticket.type_id, key))


@_define("sla_breaches", _l("SLA breaches"),
         _l("Tickets whose first-response or resolution deadline fell in the period and was missed, by ticket type "
            "(a ticket missing both counts once)."),
         "count", "bar", "service",
         records=lambda user, filters, key: _breach_base(user, filters, key).order_by(Ticket.id.desc()),
         dimension=_l("Ticket type"))
def _sla_breaches(user: Any, filters: Filters) -> Figure:
    """Tickets (ticket scope, assignee filters) with ``response_breached`` and
    ``response_due_at`` in the period, or ``resolve_breached`` and ``resolve_due_at`` in the
    period (the breach happens at the deadline), counted once, by ticket type. One query."""
    stmt = (select(Ticket.type_id, func.count(Ticket.id)).where(_breach_base(user, filters, None).whereclause)
            .group_by(Ticket.type_id))
    rows = db.session.execute(stmt).all()
    labels = _labels(TicketType, [r[0] for r in rows])
    keys, categories = _grouped(rows, labels)
    counts = dict(rows)
    return _fig("sla_breaches", categories=categories, keys=keys,
                series=[FigureSeries(str(_l("Tickets")), [int(counts[k]) for k in keys])],
                value=int(sum(counts.values())))


def _rated_base(user: Any, filters: Filters, key: Any) -> Select:
    score = [] if key is None else [Ticket.satisfaction == (db_int(key) if db_int(key) in range(1, 6) else -1)]
    return select(Ticket).where(Ticket.satisfaction.between(1, 5), *_between(Ticket.rated_at, filters.period),
                                *_ticket_conditions(user, filters), *score)


@_define("satisfaction", _l("Satisfaction"),
         _l("满意度: how many tickets rated in the period got each score from 1 (very unhappy) to 5 (very happy)."),
         "count", "bar", "service",
         records=lambda user, filters, key: _rated_base(user, filters, key).order_by(Ticket.rated_at.desc()),
         dimension=_l("Score"))
def _satisfaction(user: Any, filters: Filters) -> Figure:
    """Satisfaction distribution (001 §四 满意度分布): tickets rated (``rated_at``) in the
    period, per score 1–5 (every score listed, zeros included); ``value`` = the mean score,
    1 decimal (None when nothing was rated). One query."""
    stmt = (select(Ticket.satisfaction, func.count(Ticket.id)).where(_rated_base(user, filters, None).whereclause)
            .group_by(Ticket.satisfaction))
    counts = {int(k): int(n) for k, n in db.session.execute(stmt)}
    rated = sum(counts.values())
    mean = (Decimal(sum(k * n for k, n in counts.items())) / rated).quantize(Decimal("0.1"), ROUND_HALF_UP) \
        if rated else None
    return _fig("satisfaction", categories=[str(k) for k in range(1, 6)], keys=list(range(1, 6)),
                series=[FigureSeries(str(_l("Tickets")), [counts.get(k, 0) for k in range(1, 6)])], value=mean)


def _feedback_base(user: Any, filters: Filters, key: Any) -> Select:
    owners = select(Customer.id).where(*_narrow(Customer.owner_id, filters))
    narrowed = [ServiceFeedback.customer_id.in_(owners)] if filters.owner_id or filters.department_id else []
    return select(ServiceFeedback).where(scope_clause(user, ServiceFeedback),
                                         *_between(ServiceFeedback.received_at, filters.period), *narrowed,
                                         *_by_column(ServiceFeedback.type_id, key))


@_define("feedback_by_type", _l("Feedback by type"),
         _l("Customer feedback (服务反馈) received in the period, by feedback type."),
         "count", "pie", "service",
         records=lambda user, filters, key: _feedback_base(user, filters, key).order_by(ServiceFeedback.received_at.desc()),
         dimension=_l("Feedback type"))
def _feedback_by_type(user: Any, filters: Filters) -> Figure:
    """``ServiceFeedback`` whose ``received_at`` lies in the period (customer scope; owner /
    department filters on the customer's owner), per type. One query."""
    stmt = (select(ServiceFeedback.type_id, func.count(ServiceFeedback.id))
            .where(_feedback_base(user, filters, None).whereclause).group_by(ServiceFeedback.type_id))
    rows = db.session.execute(stmt).all()
    labels = _labels(FeedbackType, [r[0] for r in rows])
    keys, categories = _grouped(rows, labels)
    counts = dict(rows)
    return _fig("feedback_by_type", categories=categories, keys=keys,
                series=[FigureSeries(str(_l("Feedback")), [int(counts[k]) for k in keys])],
                value=int(sum(counts.values())))


# --- admin -----------------------------------------------------------------------------------

#: "Online": seen within this many minutes (``CrmUser.last_seen_at``, see app.security.presence).
ONLINE_MINUTES = 5


def _online_base(user: Any, filters: Filters, key: Any) -> Select:
    since = {"now": utc_now() - timedelta(minutes=ONLINE_MINUTES), "today": _today_instants()[0]}.get(key)
    if since is None or not _everyone_only(user):
        return select(CrmUser).where(false())
    return select(CrmUser).where(CrmUser.active.is_(True), CrmUser.last_seen_at >= since,
                                 *_narrow(CrmUser.id, filters))


@_define("users_online", _l("Users online"),
         _l("Active users seen in the last 5 minutes, and those seen since midnight today (CRM time zone)."),
         "count", "bar", "admin",
         records=lambda user, filters, key: _online_base(user, filters, key or "now").order_by(
             CrmUser.last_seen_at.desc()), dimension=_l("Seen"))
def _users_online(user: Any, filters: Filters) -> Figure:
    """Active users whose ``last_seen_at`` (presence, updated at most once a minute) is
    within ``ONLINE_MINUTES`` ("now", the ``value``) or since today's start in the CRM zone
    ("today"). Admin only (empty for others). One query."""
    now_since = utc_now() - timedelta(minutes=ONLINE_MINUTES)
    online = today = 0
    if _everyone_only(user):
        online, today = db.session.execute(select(
            func.coalesce(func.sum(case((CrmUser.last_seen_at >= now_since, 1), else_=0)), 0), func.count(CrmUser.id))
            .where(_online_base(user, filters, "today").whereclause)).one()
    return _fig("users_online", categories=[str(_l("Online now")), str(_l("Seen today"))], keys=["now", "today"],
                series=[FigureSeries(str(_l("Users")), [int(online), int(today)])], value=int(online))


_TRANSFER_KINDS = {"import": _l("Imports"), "export": _l("Exports"), "sync": _l("Syncs")}


def _transfer_base(user: Any, filters: Filters, key: Any) -> Select:
    kind, _sep, status = str(key or "").partition(":")
    if not _everyone_only(user) or (key is not None and kind not in _TRANSFER_KINDS):
        return select(TransferJob).where(false())
    if kind == "sync":
        return select(SyncRun).where(*_between(SyncRun.started_at, filters.period),
                                     *([SyncRun.status == status] if status else []))
    return select(TransferJob).where(*_between(TransferJob.created_at, filters.period),
                                     *([TransferJob.kind == kind] if kind else []),
                                     *([TransferJob.status == status] if status else []))


@_define("transfers", _l("Imports, exports and syncs"),
         _l("Import and export jobs created in the period and sync runs started in it, by status."),
         "count", "bar", "admin",
         records=lambda user, filters, key: _transfer_base(user, filters, key), dimension=_l("Kind"))
def _transfers(user: Any, filters: Filters) -> Figure:
    """``TransferJob`` (imports, exports; by ``created_at``) and ``SyncRun`` (by
    ``started_at``) in the period: categories = kind, one series per status; keys
    ``kind`` (a drill-down may pass ``kind:status``). Admin only. Two queries."""
    counts: dict[tuple[str, str], int] = {}
    if _everyone_only(user):
        start, end = filters.period.instants()
        jobs = (select(TransferJob.kind, TransferJob.status, func.count(TransferJob.id))
                .where(TransferJob.created_at >= start, TransferJob.created_at < end)
                .group_by(TransferJob.kind, TransferJob.status))
        runs = (select(literal("sync"), SyncRun.status, func.count(SyncRun.id))
                .where(SyncRun.started_at >= start, SyncRun.started_at < end).group_by(SyncRun.status))
        for kind, status, n in [*db.session.execute(jobs), *db.session.execute(runs)]:
            counts[(kind, status)] = int(n)
    from app.services.importing.jobs import STATUS_LABELS
    from sync.runner import STATUS_LABELS as RUN_LABELS

    labels = {**STATUS_LABELS, **RUN_LABELS}
    statuses = sorted({status for _kind, status in counts})
    kinds = list(_TRANSFER_KINDS)
    return _fig("transfers", categories=[str(_TRANSFER_KINDS[k]) for k in kinds], keys=kinds,
                series=[FigureSeries(str(labels.get(status, status)), [counts.get((k, status), 0) for k in kinds])
                        for status in statuses])


def _failed_base(user: Any, filters: Filters, key: Any) -> Select:
    if not _everyone_only(user) or key not in (None, "scheduled", "sync"):
        return select(TransferJob).where(false())
    if key == "sync":
        return select(SyncRun).where(SyncRun.status == "failed", *_between(SyncRun.started_at, filters.period))
    return select(TransferJob).where(TransferJob.schedule_id.is_not(None), TransferJob.status == FAILED,
                                     *_between(TransferJob.created_at, filters.period))


@_define("failed_jobs", _l("Failed jobs"),
         _l("Scheduled imports/exports and sync runs of the period that failed (what Scheduled jobs lists)."),
         "count", "bar", "admin",
         records=lambda user, filters, key: _failed_base(user, filters, key or "scheduled"), dimension=_l("Kind"))
def _failed_jobs(user: Any, filters: Filters) -> Figure:
    """Failed scheduled transfer runs (``TransferJob`` with a schedule, status failed,
    created in the period) and failed ``SyncRun``s (started in the period) — the runs the
    jobs page lists; the system jobs' own failures are logged, not stored. ``value`` =
    both; a drill-down needs a category (two record types): without one it lists the
    scheduled transfers. Admin only. Two queries."""
    scheduled = _count(_failed_base(user, filters, "scheduled"))
    syncs = _count(_failed_base(user, filters, "sync"))
    return _fig("failed_jobs", categories=[str(_l("Scheduled transfers")), str(_l("Sync runs"))],
                keys=["scheduled", "sync"], series=[FigureSeries(str(_l("Failed")), [scheduled, syncs])],
                value=scheduled + syncs)


def _alerts_base(user: Any, filters: Filters, key: Any) -> Select:
    actions = alerts.actions()
    if not _everyone_only(user) or (key is not None and key not in actions):
        return select(AuditLog).where(false())
    return select(AuditLog).where(AuditLog.action.in_([key] if key else actions),
                                  *_between(AuditLog.created_at, filters.period))


@_define("security_alerts", _l("Security alerts"),
         _l("Security alerts raised in the period (authenticator lockouts, logins limited after wrong passwords, "
            "a broken audit chain), by kind."),
         "count", "bar", "admin",
         records=lambda user, filters, key: _alerts_base(user, filters, key).order_by(AuditLog.id.desc()),
         dimension=_l("Alert"))
def _security_alerts(user: Any, filters: Filters) -> Figure:
    """Audit entries whose action is one of ``alerts.actions()`` created in the period,
    per action (labels ``alerts.LABELS``). Admin only. One query."""
    stmt = (select(AuditLog.action, func.count(AuditLog.id)).where(_alerts_base(user, filters, None).whereclause)
            .group_by(AuditLog.action))
    counts = dict(db.session.execute(stmt).tuples().all())
    keys = [a for a in alerts.actions() if a in counts]
    return _fig("security_alerts", categories=[str(alerts.LABELS.get(k, k)) for k in keys], keys=keys,
                series=[FigureSeries(str(_l("Alerts")), [int(counts[k]) for k in keys])],
                value=int(sum(counts.values())))
