"""Role dashboards (issue 17): the sales rep's (also on the home page), the sales manager's,
the service lead's and the admin's, each a grid of figures from ``app.services.metrics``
(metrics defined once, in the viewer's data scope) with a filter bar (period, department,
rep), xlsx/PDF export of the page's figures, and a drill-down from every number to the
records behind it (``metrics.drill``: the same conditions the number counts).

Rules: 000 (管理层: 查看销售漏斗、分析客户转化率、导出业绩报表), 001 §四 (KPI dashboard:
新增客户数, 成交客户数, 平均跟进周期, 客户流失率), 002 §七 (metrics defined once),
003 第三步 4 (月度销售业绩 by rep, region, product).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from flask import abort, current_app, flash, g, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.security.request_bounds import db_int
from app.services import exporting, metrics, notifications, report_export
from app.services.errors import NotFound, RuleViolation
from views import display

#: The figures of each dashboard page, in the order they are laid out.
PAGES: dict[str, tuple[str, ...]] = {
    "sales": ("activities_today", "pipeline_by_stage", "forecast_month", "new_customers", "follow_ups"),
    "manager": ("funnel", "sales_by_rep", "target_attainment", "pipeline_by_rep", "sales_by_department",
                "sales_by_product", "won_customers", "churned_customers", "churn_rate", "follow_up_cycle",
                "stale_opportunities", "new_customers_trend"),
    "service": ("open_tickets_by_priority", "sla_compliance", "sla_breaches", "satisfaction", "feedback_by_type"),
    "admin": ("users_online", "transfers", "failed_jobs", "security_alerts"),
}
#: Page titles (also the export file's title).
TITLES = {"sales": _l("My dashboard"), "manager": _l("Sales dashboard"),
          "service": _l("Service dashboard"), "admin": _l("Admin dashboard")}
#: The Dashboards permission each page needs (``can_<page>``).
VIEW_NAME = "Dashboards"
#: A drill-down list shows this many records per page.
DRILL_PAGE_SIZE = 50
#: Export formats -> (mimetype, file extension).
EXPORTS = {"xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
           "pdf": ("application/pdf", "pdf")}
#: Record attributes a drill-down column is read from, first present wins.
DRILL_COLUMNS: dict[str, tuple[str, ...]] = {
    "code": ("code",),
    "name": ("name", "title", "subject", "username"),
    "owner": ("owner",),
    "date": ("followed_at", "created_on", "order_date", "changed_at", "due_at", "occurred_at", "created_at", "started_at",
             "last_seen_at", "signed_on", "expected_close"),
    "amount": ("amount", "total", "total_amount"),
}
DRILL_LABELS = {"code": _l("Code"), "name": _l("Name"), "owner": _l("Owner"), "date": _l("Date"),
                "amount": _l("Amount")}
#: What the amount column holds, per record type, when "Amount" would not say it: an
#: order's total is not a product's share of it, an opportunity's amount is not weighted.
AMOUNT_LABELS = {"sales_order": _l("Order total"), "opportunity": _l("Opportunity amount (unweighted)"),
                 "sales_order_line": _l("Line amount")}
#: Columns of a drill-down of order lines (``sales_by_product``): the order's code (linking
#: to the order), the product, the quantity and the line's amount, which add up to the bar.
LINE_LABELS = {"code": _l("Sales order"), "product": _l("Product"), "quantity": _l("Quantity"),
               "owner": _l("Owner"), "date": _l("Order date"), "amount": _l("Line amount")}
#: Extra columns of an opportunity list behind the weighted forecast (its number is Σ weighted).
WEIGHT_LABELS = {"probability": _l("Probability"), "weighted": _l("Weighted amount")}
#: Page numbers beyond this are refused (400): far past any list's end, and page × size
#: stays a small integer for every database.
DRILL_MAX_PAGE = 1_000_000


# ---------------------------------------------------------------- formatting (templates)

def figure_value(value: Any, unit: str) -> str:
    """A figure's number as the table shows it: money ``1,234.50``, percent ``45.5%``
    (values are percentages, 0-100), days ``3.5``, counts ``1,234``; empty for None."""
    if value is None or value == "":
        return ""
    number = Decimal(str(value))
    if unit == "money":
        return f"{number:,.2f}"
    if unit == "percent":
        return f"{number:.1f}%"
    if unit == "days":
        return f"{number:.1f}"
    return f"{number:,.0f}" if number == number.to_integral_value() else f"{number:,.2f}"


def figure_change(value: Any, previous: Any) -> str:
    """"This period vs the previous one" as ``▲ 25.0%`` / ``▼ 10.0%`` / ``0.0%``; empty when
    there is no previous number or it is zero (no ratio to show)."""
    if value is None or previous is None:
        return ""
    now, before = Decimal(str(value)), Decimal(str(previous))
    if before == 0:
        return ""
    change = (now - before) * 100 / abs(before)
    arrow = "▲ " if change > 0 else "▼ " if change < 0 else ""
    return f"{arrow}{abs(change):.1f}%"


def series_unit(fig: Any, index: int) -> str:
    """The unit of ``fig``'s series number ``index`` (0-based): its own when the series names
    one (``FigureSeries.unit``: the funnel's conversion %, the pipeline's count), else the
    figure's."""
    series = fig.series[index] if 0 <= index < len(fig.series) else None
    return getattr(series, "unit", None) or fig.unit


def has_data(fig: Any) -> bool:
    """False when a chart would be empty: no category, or every value None or zero (the page
    then says "No data for this period." instead of drawing bare axes)."""
    return any(v not in (None, "", 0) and Decimal(str(v)) != 0 for s in fig.series for v in s.values)


def figure_json(fig: Any) -> dict[str, Any]:
    """``fig.as_dict()`` plus ``units``: one unit per series (``series_unit``), for charts.js."""
    found = fig.as_dict()
    found["units"] = [series_unit(fig, i) for i in range(len(fig.series))]
    return found


def chart_locale() -> str:
    """The ECharts locale of the page: "ZH" when the user reads Chinese, else "EN"."""
    from flask_babel import get_locale

    return "ZH" if str(get_locale() or "en").lower().startswith("zh") else "EN"


# ---------------------------------------------------------------- figures of a page

def filter_args(filters: metrics.Filters) -> dict[str, str]:
    """The request arguments that give back ``filters`` (``period`` YYYY-MM, ``department``,
    ``owner``), for links from a page to its drill-downs and exports."""
    args = {"period": filters.period.start.strftime("%Y-%m")}
    if filters.department_id is not None:
        args["department"] = str(filters.department_id)
    if filters.owner_id is not None:
        args["owner"] = str(filters.owner_id)
    return args


def read_filters(args: Any, user: Any) -> tuple[metrics.Filters, dict[str, str] | None]:
    """(filters, None) from the request arguments; a bad filter (outside the viewer's scope,
    not a month ...) gives (the default filters, the field -> message map) instead of a 500."""
    try:
        return metrics.parse_filters(args, user), None
    except RuleViolation as exc:
        return metrics.parse_filters({}, user), {k: str(v) for k, v in exc.errors.items()} or {"": str(exc)}


def drill_url(key: str, filters: metrics.Filters, category: Any = None) -> str:
    """The drill-down list of ``key`` (one category of it, or the whole number)."""
    args = filter_args(filters)
    if category is not None:
        args["category"] = str(category)
    return url_for("DashboardsView.drill", key=key, **args)


def with_links(fig: metrics.Figure, filters: metrics.Filters) -> metrics.Figure:
    """``fig`` with a drill-down link per category (or one for a "number" figure) when its
    metric lists records."""
    if metrics.metric(fig.key).records is None:
        fig.links = [None] * max(len(fig.categories), 1)
    elif fig.chart == "number":
        fig.links = [drill_url(fig.key, filters)]
    else:
        fig.links = [drill_url(fig.key, filters, k) for k in fig.keys]
    return fig


def page_figures(page: str, user: Any, filters: metrics.Filters) -> list[metrics.Figure]:
    """The figures of dashboard ``page`` for ``user`` (``PAGES[page]`` in order), drill-down
    links filled. Every key is a metric whose ``dashboard`` is ``page`` (tested)."""
    return [with_links(metrics.figure(key, user, filters), filters) for key in PAGES[page]]


def json_id(fig: metrics.Figure) -> str:
    """The id of the figure's JSON ``<script>`` (and the chart container's ``data-figure``)."""
    return f"figure-data-{fig.key}"


# ---------------------------------------------------------------- drill-down rows

@dataclass
class DrillRow:
    link: str | None
    cells: dict[str, Any]


def _attr(record: Any, names: tuple[str, ...]) -> tuple[bool, Any]:
    for name in names:
        if hasattr(type(record), name):
            return True, getattr(record, name)
    return False, None


def _cell(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column == "owner":
        return value.get_full_name() if hasattr(value, "get_full_name") else str(value)
    if column == "amount":
        return figure_value(value, "money")
    if column == "date":
        from views.display import display

        return display(value)
    return value


def _line_row(line: Any) -> DrillRow:
    order = line.order
    cells = {"code": order.code, "product": line.product.name if line.product else "",
             "quantity": figure_value(line.quantity, "count"), "owner": _cell("owner", order.owner),
             "date": _cell("date", order.order_date), "amount": _cell("amount", line.amount)}
    return DrillRow(notifications.record_path("sales_order", line.order_id), cells)


def _weights(record: Any) -> dict[str, Any]:
    from app.services import pipeline

    chance = pipeline.probability(record.stage, record.probability_override) if record.stage else 0
    weighted = Decimal(str(record.amount or 0)) * chance / 100
    return {"probability": figure_value(chance, "percent"), "weighted": figure_value(weighted, "money")}


def drill_columns(model: type, key: str = "") -> tuple[list[str], dict[str, Any]]:
    """(column keys, column key -> heading) of a drill-down of ``model`` records behind the
    metric ``key``: headings say what a column holds ("Order total", "Line amount"...)."""
    record_type = getattr(model, "__tablename__", None)
    if record_type == "sales_order_line":
        return list(LINE_LABELS), dict(LINE_LABELS)
    columns = [c for c, names in DRILL_COLUMNS.items() if any(hasattr(model, n) for n in names)]
    labels = {**DRILL_LABELS, "amount": AMOUNT_LABELS.get(record_type, DRILL_LABELS["amount"])}
    if key == "forecast_month" and record_type == "opportunity":
        columns += list(WEIGHT_LABELS)
        labels.update(WEIGHT_LABELS)
    return columns, labels


def drill_rows(records: list[Any], key: str = "") -> tuple[list[str], list[DrillRow]]:
    """(column keys the records have, one row per record with its show link); order lines
    link to their order."""
    if not records:
        return [], []
    model = type(records[0])
    columns, _labels = drill_columns(model, key)
    record_type = getattr(model, "__tablename__", None)
    if record_type == "sales_order_line":
        return columns, [_line_row(r) for r in records]
    rows = []
    for record in records:
        cells = {c: _cell(c, _attr(record, DRILL_COLUMNS[c])[1]) for c in columns if c in DRILL_COLUMNS}
        if "weighted" in columns:
            cells.update(_weights(record))
        rows.append(DrillRow(notifications.record_path(record_type, getattr(record, "id", None)), cells))
    return columns, rows


def drill_page(stmt: Any, page: int, session: Session | None = None) -> tuple[int, int, list[Any]]:
    """(total count, the page shown, its records) of ``stmt``: ``page`` is 0-based,
    ``DRILL_PAGE_SIZE`` records each, and a page past the end shows the last page (the
    OFFSET never exceeds the count, so no number overflows the database's integers)."""
    session = session or db.session
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    last = max((total - 1) // DRILL_PAGE_SIZE, 0)
    page = min(max(page, 0), last)
    records = list(session.scalars(stmt.limit(DRILL_PAGE_SIZE).offset(page * DRILL_PAGE_SIZE)))
    return total, page, records


def drill_sum(stmt: Any, session: Session | None = None) -> Decimal | None:
    """Σ of the amount column over every record of ``stmt`` (not only the page shown), or
    None when its records have no amount."""
    session = session or db.session
    model = stmt.column_descriptions[0].get("entity") if stmt.column_descriptions else None
    table = getattr(model, "__table__", None)
    name = next((n for n in DRILL_COLUMNS["amount"] if table is not None and n in table.c), None)
    if name is None:
        return None
    inner = stmt.order_by(None).subquery()
    return Decimal(str(session.scalar(select(func.coalesce(func.sum(inner.c[name]), 0))) or 0))


def explanation(fig: metrics.Figure, category: Any, user: Any, filters: metrics.Filters) -> str | None:
    """How a number that is not the sum of its list is made from it: target attainment is
    Σ the listed order totals ÷ the target. None for the others."""
    if fig.key != "target_attainment":
        return None
    sales_fig = metrics.figure("sales_by_rep", user, filters)
    reps = fig.keys if category is None else [category]
    sales = dict(zip(sales_fig.keys, sales_fig.series[0].values, strict=True))
    targets = dict(zip(sales_fig.keys, sales_fig.series[1].values, strict=True))
    total_sales = sum((sales.get(k) or Decimal(0) for k in reps), Decimal("0.00"))
    total_target = sum((targets.get(k) or Decimal(0) for k in reps), Decimal("0.00"))
    return _("%(number)s = sales %(sales)s (the order totals listed) ÷ target %(target)s",
             number=figure_value(number_of(fig, category), fig.unit), sales=figure_value(total_sales, "money"),
             target=figure_value(total_target, "money"))


def number_of(fig: metrics.Figure, category: Any) -> Any:
    """The number a drill-down lists: the category's value of the first series, or the
    figure's value."""
    if category is None or not fig.series:
        return fig.value
    index = [str(k) for k in fig.keys].index(str(category))
    return fig.series[0].values[index]


# ---------------------------------------------------------------- the screens

class DashboardsView(BaseView):
    """``/dashboards/<page>``: sales (the rep's), manager, service, admin; ``/dashboards/
    <page>/export/<xlsx|pdf>``; ``/dashboards/drill/<key>``: the records behind a number."""

    route_base = "/dashboards"
    class_permission_name = VIEW_NAME
    base_permissions = ["can_sales", "can_manager", "can_service", "can_admin"]
    method_permission_name = {"sales": "sales", "manager": "manager", "service": "service", "admin": "admin"}
    default_view = "sales"

    def _page(self, page: str) -> Any:
        filters, error = read_filters(request.args, g.user)
        for message in (error or {}).values():
            flash(message, "danger")
        return self.render_template(
            "crm/dashboard.html", page=page, title=TITLES[page], filters=filters, error=error,
            figures=page_figures(page, g.user, filters), json_id=json_id, period=filters.period.start.strftime("%Y-%m"),
            owners=_choices("owner_choices"), departments=_choices("department_choices"),
            may_export=self.appbuilder.sm.has_access("can_export", "Reports"),
            export_args=filter_args(filters), endpoint=f"DashboardsView.{page}")

    @expose("/sales")
    @has_access
    def sales(self) -> Any:
        return self._page("sales")

    @expose("/manager")
    @has_access
    def manager(self) -> Any:
        return self._page("manager")

    @expose("/service")
    @has_access
    def service(self) -> Any:
        return self._page("service")

    @expose("/admin")
    @has_access
    def admin(self) -> Any:
        return self._page("admin")

    def _refuse_unless(self, permission: str, view: str = VIEW_NAME) -> Any:
        """None when the user holds ``permission``; else the login page (anonymous) or 403."""
        if g.user is None or g.user.is_anonymous:
            return redirect(url_for(self.appbuilder.sm.auth_view.__class__.__name__ + ".login", next=request.url))
        if not self.appbuilder.sm.has_access(permission, view):
            abort(403)
        return None

    @expose("/<page>/export/<fmt>")
    def export(self, page: str, fmt: str) -> Any:
        if page not in PAGES or fmt not in EXPORTS:
            abort(404)
        refused = self._refuse_unless(f"can_{page}") or self._refuse_unless("can_export", "Reports")
        if refused is not None:
            return refused
        filters, error = read_filters(request.args, g.user)
        if error:
            abort(400)
        figures = page_figures(page, g.user, filters)
        title = str(TITLES[page])
        subtitle = f"{display.shown_day(filters.period.start)} – {display.shown_day(filters.period.end - timedelta(days=1))}"
        body = (report_export.xlsx(title, figures) if fmt == "xlsx"
                else report_export.pdf(title, figures, subtitle=subtitle))
        exporting.record(f"dashboard:{page}", fmt, len(figures), user=g.user)
        db.session.commit()
        mimetype, ext = EXPORTS[fmt]
        return send_file(io.BytesIO(body), mimetype=mimetype, as_attachment=True,
                         download_name=f"dashboard-{page}-{filter_args(filters)['period']}.{ext}")

    @expose("/drill/<key>")
    def drill(self, key: str) -> Any:
        try:
            definition = metrics.metric(key)
        except NotFound:
            abort(404)
        refused = self._refuse_unless(f"can_{definition.dashboard}")
        if refused is not None:
            return refused
        filters, error = read_filters(request.args, g.user)
        if error:
            abort(400)
        fig = metrics.figure(key, g.user, filters)
        category = request.args.get("category")
        key_of = {str(k): k for k in fig.keys}
        if definition.records is None or (category is not None and category not in key_of):
            abort(404)
        wanted = key_of.get(category) if category is not None else None
        page = db_int(request.args.get("page") or "0")
        if page is None or not 0 <= page <= DRILL_MAX_PAGE:
            abort(400)
        stmt = metrics.drill(key, g.user, filters, wanted)
        total, page, records = drill_page(stmt, page)
        columns, rows = drill_rows(records, key)
        labels = drill_columns(type(records[0]), key)[1] if records else DRILL_LABELS
        label = fig.categories[list(key_of).index(category)] if category is not None else None
        pages = max((total + DRILL_PAGE_SIZE - 1) // DRILL_PAGE_SIZE, 1)
        args = {**filter_args(filters), **({"category": category} if category is not None else {})}
        amount_sum = drill_sum(stmt) if "amount" in columns else None
        return self.render_template(
            "crm/dashboard_drill.html", fig=fig, label=label, number=figure_value(number_of(fig, category), fig.unit),
            total=total, columns=columns, labels=labels, rows=rows, page=page, pages=pages, args=args,
            amount_sum=None if amount_sum is None else figure_value(amount_sum, "money"),
            explain=explanation(fig, wanted, g.user, filters),
            back=url_for(f"DashboardsView.{definition.dashboard}", **filter_args(filters)),
            title=_("Records behind: %(title)s", title=fig.title))


def _choices(name: str) -> list[tuple[int, str]]:
    """The filter bar's owner/department choices: exactly what ``metrics.parse_filters``
    accepts for the viewer (their scope)."""
    return getattr(metrics, name)(g.user)


def register(appbuilder: Any) -> None:
    """The dashboards and their menus (category "Reports", label 报表) and the template
    helpers ``figure_value``/``figure_change``/``chart_locale``/``series_unit``/``has_data``/``figure_json``
    the figure macro uses (also on report pages)."""
    current_app.jinja_env.globals.update(figure_value=figure_value, figure_change=figure_change,
                                         chart_locale=chart_locale, series_unit=series_unit, has_data=has_data,
                                         figure_json=figure_json)
    category = "Reports"
    appbuilder.add_view(DashboardsView, "Sales dashboard", label=_l("Sales dashboard"), icon="fa-line-chart",
                        href="/dashboards/manager", category=category, category_label=_l("Reports"),
                        category_icon="fa-bar-chart")
    appbuilder.add_link("Service dashboard", label=_l("Service dashboard"), href="/dashboards/service",
                        icon="fa-life-ring", category=category)
    appbuilder.add_link("Admin dashboard", label=_l("Admin dashboard"), href="/dashboards/admin",
                        icon="fa-tachometer", category=category)
