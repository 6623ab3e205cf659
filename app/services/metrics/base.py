"""The metrics' plumbing (see the package CONTRACT): ``Period``, ``Filters``, ``Figure``,
``Metric``, the ``METRICS`` registry and ``_define``, ``metric`` / ``figure`` / ``drill``,
``parse_filters`` and the owner / department choices, and the private helpers the metric
modules share."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import g, has_request_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, Select, cast, false, func, select
from sqlalchemy.sql.elements import ColumnElement

from app.clock import from_local, local_today
from app.extensions import db
from app.models.org import SCOPE_ALL, SCOPE_DEPARTMENT, CrmUser, Department
from app.security.data_scope import department_tree_ids, user_scope, visible_owner_ids
from app.services import pipeline
from app.services.errors import NotFound, RuleViolation
from app.services.leads import CONVERTED, QUALIFIED
from app.services.orders import APPROVED, CLOSED, DELIVERED, DELIVERING, IN_PRODUCTION
from app.services.pipeline import add_months, filter_id

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
    owner_id = filter_id(args.get("owner"), "owner", _l("Choose an owner from the list."))
    department_id = filter_id(args.get("department"), "department", _l("Choose a department from the list."))
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


def _with_period(filters: Filters, period: Period) -> Filters:
    return Filters(period, filters.department_id, filters.owner_id)


def _today_instants() -> tuple[datetime, datetime]:
    start = from_local(datetime.combine(local_today(), time()))
    return start, start + timedelta(days=1)
