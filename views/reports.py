"""The report builder screens (自定义报表, issue 17): build, preview, save, share, schedule,
open and export reports. Thin: the reports themselves are ``app.services.reports`` (scope,
rules, saving), the files ``app.services.report_export``.

Rules: 001 §四 (自定义报表 by level, industry, follow-up owner, period; export Excel/PDF),
003 第三步 4 (only managers export reports that contain contact data: ``can_export_contacts``).

Routes (view "Reports"): ``/reports/builder`` (GET; a preview is the spec in the query
string, so it is a shareable URL), ``/reports/save`` (POST), ``/reports/saved`` (the list),
``/reports/saved/<id>`` (run in the opener's scope), ``/reports/saved/<id>/delete`` (POST),
``/reports/export/<fmt>?<spec>`` and ``/reports/saved/<id>/export/<fmt>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.api import BaseApi, safe
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.security.decorators import protect
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from app import clock
from app.extensions import db
from app.security.request_bounds import db_int
from app.security.rights import is_admin, user_may
from app.services import exporting, metrics, report_export, reports
from app.services.errors import NotFound, RuleForbidden, RuleViolation
from views import display

#: Request keys that describe the saving, not the report itself.
SAVE_KEYS = ("name", "roles", "schedule", "weekday", "recipients", "pk", "version", "csrf_token", "report")
#: At most this many request keys are read as a report's definition.
MAX_SPEC_KEYS = 40
CHARTS = (("bar", _l("Bar")), ("line", _l("Line")), ("pie", _l("Pie")), ("table", _l("Table only")))
WEEKDAYS = (_l("Monday"), _l("Tuesday"), _l("Wednesday"), _l("Thursday"), _l("Friday"), _l("Saturday"),
            _l("Sunday"))
FILES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "pdf": "application/pdf"}
CONTACT_EXPORT_REFUSED = _l("This report contains contact data (names, phone numbers or e-mail addresses of "
                            "people). Only managers may export it: remove the contact "
                            "dimension, or ask your manager.")


def spec_data(args: Any) -> dict[str, Any]:
    """The request's report definition as ``reports.parse_spec`` reads it: every key but the
    saving ones, ``dimensions`` as a list (empty choices dropped)."""
    data: dict[str, Any] = {}
    for key in list(args.keys())[:MAX_SPEC_KEYS]:
        if key not in SAVE_KEYS and key != "dimensions":
            data[key] = args.get(key)
    data["dimensions"] = [d for d in args.getlist("dimensions") if d]
    return data


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)


def spec_args(spec: reports.ReportSpec) -> list[tuple[str, str]]:
    """A spec as query-string pairs (the inverse of ``spec_data``): builder links, exports."""
    pairs = [("source", spec.source)] + [("dimensions", d) for d in spec.dimensions]
    pairs += [("measure", spec.measure), ("chart", spec.chart)]
    for key, value in sorted(spec.filters.items()):
        values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        pairs += [(key, _text(v)) for v in values if v is not None and v != ""]
    return pairs


def _source_choices(user: Any) -> dict[str, Any]:
    """key -> {label, dimensions: [[key, label, sensitive]], measures: [[key, label]]}: the
    builder's choices (also sent to report_builder.js as JSON)."""
    return {s.key: {"label": str(s.label),
                    "dimensions": [[d.key, str(d.label), bool(d.sensitive)] for d in s.dimensions.values()],
                    "measures": [[m.key, str(m.label)] for m in s.measures.values()]}
            for s in reports.sources(user)}


def _filter_choices(user: Any) -> dict[str, list[dict[str, Any]]]:
    """source key -> its per-source filters as ``{key, label, choices}`` (``choices``:
    ``[(value, label)]`` in the viewer's language, read now; ``None``: a free id). The page
    renders one select per filter; those of the sources not chosen are hidden and disabled."""
    return {s.key: [{"key": f.key, "label": str(f.label), "choices": f.choices} for f in s.filters.values()]
            for s in reports.sources(user)}


def _filter_keys() -> set[str]:
    """Request keys that are a per-source filter of some source (rendered as selects)."""
    return {key for source in reports.SOURCES.values() for key in source.filters}


def _messages(exc: RuleViolation) -> dict[str, str]:
    errors = exc.errors if isinstance(exc.errors, Mapping) else {"": str(exc.errors)}
    return {str(k): str(v) for k, v in errors.items()}


def _role_choices(user: Any) -> list[tuple[int, str]]:
    """Roles a report may be shared with (``reports.share_roles``: all but Admin; an admin: all)."""
    return [(r.id, r.name) for r in reports.share_roles(user)]


def _ids(values: Iterable[Any]) -> list[int]:
    return [n for n in (db_int(v) for v in values) if n is not None]


def _filter_text(spec: reports.ReportSpec) -> str:
    """The spec's filters as "label = value" in the reader's language (a per-source filter's
    chosen label; dates, owner and department ids as given)."""
    named = reports.SOURCES[spec.source].filters
    parts = []
    for key, value in sorted(spec.filters.items()):
        if value in (None, "", [], ()):
            continue
        item = named.get(key)
        if item is None:
            parts.append(f"{key} = {_text(value)}")
            continue
        labels = dict(item.choices or ())
        parts.append(f"{item.label} = {labels.get(str(value), _text(value))}")
    return ", ".join(parts)


def _subtitle(result: reports.ReportResult) -> str:
    """Filters, when generated (CRM zone) and by whom: the PDF's subtitle line."""
    filters = _filter_text(result.spec)
    stamp = clock.local_text(clock.utc_now(), display.minute_format())
    who = getattr(g.user, "username", "")
    parts = [_("Filters: %(filters)s", filters=filters)] if filters else []
    parts.append(_("Generated %(at)s (%(zone)s) by %(user)s", at=stamp, zone=clock.zone_name(), user=who))
    return " · ".join(parts)


def _download(result: reports.ReportResult, fmt: str) -> Response:
    """The report as a file; refused (403 page) when it holds contact data and the user is
    not a manager; recorded like every export."""
    if result.contact_data and not reports.may_export_contacts(g.user):
        return _refused(CONTACT_EXPORT_REFUSED)
    title = str(result.title)
    if fmt == "xlsx":
        body = report_export.xlsx(title, [result.figure], result.pivot)
    else:
        body = report_export.pdf(title, [result.figure], result.pivot, subtitle=_subtitle(result))
    exporting.record(f"Report:{result.spec.source}", fmt, len(result.rows), user=g.user)
    db.session.commit()
    stamp = clock.local_today().strftime("%Y%m%d")
    ascii_name = f"report-{result.spec.source}-{stamp}.{fmt}"
    return Response(body, mimetype=FILES[fmt], headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                               f"filename*=UTF-8''{quote(f'{title}-{stamp}.{fmt}')}"})


def _refused(message: Any) -> Any:
    from flask import current_app

    appbuilder = current_app.appbuilder
    return render_template("crm/error.html", code=403, heading=_("Access denied"), text=str(message),
                           base_template=appbuilder.base_template, appbuilder=appbuilder), 403


class ReportsView(BaseView):
    """The report builder, saved reports and their exports (view "Reports")."""

    route_base = "/reports"
    class_permission_name = "Reports"
    base_permissions = ["can_read", "can_write", "can_export", "can_export_contacts"]
    method_permission_name = {"builder": "read", "saved": "read", "open": "read", "save": "write",
                              "delete": "write", "export": "export", "export_saved": "export"}
    default_view = "builder"

    def _builder_page(self, data: Mapping[str, Any], *, result: Any = None, errors: Any = None,
                      saving: Mapping[str, Any] | None = None, report: Any = None, status: int = 200) -> Any:
        choices = _source_choices(g.user)
        query = urlencode(spec_args(result.spec), doseq=True) if result is not None else ""
        return self.render_template(
            "crm/report_builder.html", title=_l("Report builder"), sources=choices, data=data,
            dims=list(data.get("dimensions") or []) + ["", ""], result=result, errors=errors or {},
            query=query, saving=saving or {}, report=report, charts=CHARTS, weekdays=WEEKDAYS,
            filters=_filter_choices(g.user), filter_keys=_filter_keys(),
            owners=metrics.owner_choices(g.user), departments=metrics.department_choices(g.user),
            roles=_role_choices(g.user), pivot=_pivot_rows(result),
            may_save=user_may(g.user, "can_write", "Reports"), may_export=user_may(g.user, "can_export", "Reports"),
        ), status

    @expose("/builder")
    @has_access
    def builder(self) -> Any:
        """The builder; with ``source`` in the query string, the preview too."""
        report, saving = None, {}
        pk = db_int(request.args.get("report"))
        if pk is not None:
            report = self._own_report(pk)
            saving = _saving_of(report)
        data = spec_data(request.args)
        if report is not None and not data.get("source"):  # "Edit": the saved definition
            data = spec_data(MultiDict(spec_args(reports.spec_of(report))))
        if not data.get("source"):
            return self._builder_page(data, saving=saving, report=report)
        try:
            result = reports.run(reports.parse_spec(data), g.user)
        except RuleViolation as exc:
            db.session.rollback()
            return self._builder_page(data, errors=_messages(exc), saving=saving, report=report, status=400)
        return self._builder_page(data, result=result, saving=saving, report=report)

    def _own_report(self, pk: int) -> Any:
        try:
            report = reports.load(pk, g.user)
        except NotFound:
            abort(404)
        if report.owner_id != g.user.id:
            abort(403)
        return report

    @expose("/save", methods=["POST"])
    @has_access
    def save(self) -> Any:
        """Save the builder's report (new, or the owner's edit): messages on the form, nothing lost."""
        form = request.form
        data = spec_data(form)
        saving = {"name": form.get("name", ""), "roles": _ids(form.getlist("roles")),
                  "schedule": form.get("schedule") or None, "weekday": form.get("weekday", ""),
                  "recipients": _ids(form.getlist("recipients")), "pk": db_int(form.get("pk")),
                  "version": db_int(form.get("version"))}
        try:
            spec = reports.parse_spec(data)
            saved = reports.save(g.user, saving["name"], spec, roles=saving["roles"], schedule=saving["schedule"],
                                 weekday=saving["weekday"] or None, recipients=saving["recipients"], pk=saving["pk"],
                                 version=saving["version"])
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            if isinstance(exc, NotFound):
                abort(404)
            return self._builder_page(data, errors=_messages(exc), saving=saving, status=exc.status
                                      if isinstance(exc, RuleForbidden) else 400)
        flash(_("Report \"%(name)s\" saved.", name=saved.name), "success")
        return redirect(url_for("ReportsView.open", pk=saved.id))

    @expose("/saved")
    @has_access
    def saved(self) -> Any:
        """The saved reports this user may open: own ones and those shared with their roles."""
        items = reports.visible(g.user)
        labels = {k: v["label"] for k, v in _source_choices(g.user).items()}
        return self.render_template("crm/report_list.html", title=_l("Saved reports"), items=items,
                                    labels=labels, weekdays=WEEKDAYS, admin=is_admin(g.user))

    def _saved_result(self, pk: int) -> tuple[Any, Any, Any]:
        """(report, result or None, errors): run in the opener's scope; 404 when not visible."""
        try:
            report = reports.load(pk, g.user)
        except NotFound:
            abort(404)
        try:
            return report, reports.run(reports.spec_of(report), g.user), None
        except RuleViolation as exc:
            db.session.rollback()
            return report, None, _messages(exc)

    @expose("/saved/<int:pk>")
    @has_access
    def open(self, pk: int) -> Any:
        report, result, errors = self._saved_result(pk)
        query = urlencode(spec_args(result.spec), doseq=True) if result is not None else ""
        return self.render_template("crm/report_show.html", title=report.name, report=report, result=result,
                                    errors=errors or {}, pivot=_pivot_rows(result), query=query,
                                    weekdays=WEEKDAYS, mine=report.owner_id == g.user.id,
                                    may_delete=report.owner_id == g.user.id or is_admin(g.user),
                                    may_export=user_may(g.user, "can_export", "Reports"))

    @expose("/saved/<int:pk>/delete", methods=["POST"])
    @has_access
    def delete(self, pk: int) -> Any:
        try:
            reports.delete(pk, g.user)
            db.session.commit()
        except NotFound:
            db.session.rollback()
            abort(404)
        except RuleViolation as exc:
            db.session.rollback()
            return _refused(_messages(exc).popitem()[1] if _messages(exc) else exc)
        flash(_("Report deleted."), "success")
        return redirect(url_for("ReportsView.saved"))

    @expose("/export/<fmt>")
    @has_access
    def export(self, fmt: str) -> Any:
        """The previewed report (spec in the query string) as xlsx or PDF."""
        if fmt not in FILES:
            abort(404)
        data = spec_data(request.args)
        try:
            result = reports.run(reports.parse_spec(data), g.user)
        except RuleViolation as exc:
            db.session.rollback()
            return self._builder_page(data, errors=_messages(exc), status=400)
        return _download(result, fmt)

    @expose("/saved/<int:pk>/export/<fmt>")
    @has_access
    def export_saved(self, pk: int, fmt: str) -> Any:
        if fmt not in FILES:
            abort(404)
        report, result, errors = self._saved_result(pk)
        if result is None:
            return self._builder_page({}, errors=errors, status=400)
        return _download(result, fmt)


def _saving_of(report: Any) -> dict[str, Any]:
    return {"name": report.name, "roles": [r.id for r in report.roles], "schedule": report.schedule,
            "weekday": "" if report.schedule_weekday is None else str(report.schedule_weekday),
            "recipients": [u.id for u in report.recipients], "pk": report.id, "version": report.version}


def _pivot_rows(result: Any) -> Any:
    """The pivot as header + rows of display texts for the page (None without a result)."""
    if result is None or result.pivot is None:
        return None
    unit = result.figure.unit if result.figure is not None else "count"
    table = report_export.pivot_table(result.pivot, unit, safe=lambda v: v)
    rows = [[report_export.cell_text(v, "" if i == 0 else unit) for i, v in enumerate(row)] for row in table.rows]
    return {"header": table.header, "rows": rows, "note": report_export.cut_note(table)}


def _plain(value: Any) -> Any:
    """A pivot cell for JSON: Decimal as text (exact), NaN/None as null."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and value != value:
        return None
    return value


class ReportApi(BaseApi):
    """``GET /api/v1/report/run?source=…&dimensions=…&measure=…&<filters>``: the report in
    the caller's scope: ``title``, ``figure`` (``Figure.as_dict()``), ``pivot`` (``header``
    and ``rows``, numbers as numbers, money as exact text), ``contact_data``. 400 with
    ``errors`` (field -> message) for a bad definition, 403 for records the caller may not read."""

    resource_name = "report"
    class_permission_name = "Reports"
    method_permission_name = {"run": "read"}
    base_permissions = ["can_read"]
    allow_browser_login = False

    @api_expose("/run", methods=["GET"])
    @protect()
    @safe
    def run(self) -> Any:
        """Run a report definition.
        ---
        get:
          responses:
            200:
              description: The figure and the pivot
            400:
              description: The definition is not valid (errors by field)
        """
        try:
            result = reports.run(reports.parse_spec(spec_data(request.args)), g.user)
        except RuleViolation as exc:
            db.session.rollback()
            errors = _messages(exc)
            status = exc.status if isinstance(exc, RuleForbidden) else 400
            return self.response(status, message="; ".join(errors.values()), errors=errors)
        unit = result.figure.unit if result.figure is not None else "count"
        table = report_export.pivot_table(result.pivot, unit, safe=lambda v: v)
        return self.response(200, title=str(result.title), figure=result.figure.as_dict(),
                             contact_data=bool(result.contact_data),
                             pivot={"header": table.header, "rows": [[_plain(v) for v in row] for row in table.rows]})


def register(appbuilder: Any) -> None:
    """Reports menu (label 报表): "Report builder", "Saved reports"."""
    appbuilder.add_view(ReportsView, "Report builder", label=_l("Report builder"), icon="fa-table",
                        category="Reports", category_label=_l("Reports"), category_icon="fa-bar-chart")
    appbuilder.add_api(ReportApi)
    appbuilder.add_link("Saved reports", label=_l("Saved reports"), href="ReportsView.saved", icon="fa-bookmark",
                        category="Reports")
