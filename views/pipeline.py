"""The pipeline screens: the kanban board (drag a card to another stage) and the forecast.

Thin: figures come from ``app.services.pipeline`` (scoped, bounded); a drag posts JSON to
``/pipeline/move``, which runs the stage-move use case and answers JSON. A refusal is
never silent: the answer carries the message (and, for required fields the target stage
misses, the fields to fill in), and the page puts the card back in its column.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import g, jsonify, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import has_access_api
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.routing import BuildError

from app.extensions import db
from app.security.request_bounds import db_int
from app.security.rights import user_may
from app.services import pipeline
from app.services.errors import RuleViolation

#: A move's ``values``: at most this many fields, each at most this many characters.
MAX_VALUES, MAX_VALUE_CHARS = 20, 10_000


def money(value: Decimal | None) -> str:
    """An amount as the board shows it: thousands separated, 2 decimals; empty for none."""
    return "" if value is None else f"{value:,.2f}"


def _refusal(status: int, message: Any, errors: dict[str, str] | None = None,
             fields: list[dict[str, str]] | None = None) -> Any:
    body = {"ok": False, "message": str(message), "errors": errors or {}, "fields": fields or []}
    response = jsonify(body)
    response.status_code = status
    return response


def _move_request() -> tuple[dict[str, Any] | None, Any]:
    """The posted move, checked for shape: ({id, stage_id, version, values}, None) or
    (None, 400 answer)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None, _refusal(400, _l("Send the move as a JSON object: {id, stage_id, version, values}."))
    wanted = {"id": db_int(body.get("id")), "stage_id": db_int(body.get("stage_id")),
              "version": db_int(body.get("version"))}
    bad = {name: str(_l("A whole number is required.")) for name, value in wanted.items() if value is None}
    if bad:
        return None, _refusal(400, _l("The move is incomplete: reload the page and try again."), bad)
    values = body.get("values")
    if values is None:
        values = {}
    if not isinstance(values, dict) or len(values) > MAX_VALUES or not all(
            isinstance(k, str) and (v is None or isinstance(v, (str, int, float)) and not isinstance(v, bool))
            and len(str(v or "")) <= MAX_VALUE_CHARS for k, v in values.items()):
        return None, _refusal(400, _l("The fields sent with the move are not valid."), {"values": str(_l(
            "An object of field names to texts is expected."))})
    wanted["values"] = values or None
    return wanted, None


def _show_url() -> Any:
    """pk -> the opportunity's page, or None while no opportunity screen is registered."""
    try:
        sample = url_for("OpportunityView.show", pk=0)
    except BuildError:
        return lambda pk: None
    if not sample.endswith("/0"):
        return lambda pk: url_for("OpportunityView.show", pk=pk)
    prefix = sample[:-1]  # 300 cards: one url_for, not one per card
    return lambda pk: f"{prefix}{pk}"


class PipelineView(BaseView):
    """``/pipeline/``: the kanban; ``/pipeline/forecast``: the weighted forecast;
    ``/pipeline/move``: a drag (JSON; also needs write access to opportunities)."""

    route_base = "/pipeline"
    class_permission_name = "Pipeline"
    base_permissions = ["can_read"]
    method_permission_name = {"index": "read", "forecast": "read", "move": "read"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self) -> Any:
        error, status = None, 200
        try:
            filters = pipeline.parse_filters(request.args, g.user)
        except RuleViolation as exc:
            filters, error, status = pipeline.BoardFilters(), exc.errors, 400
        columns = pipeline.board(g.user, filters) if error is None else []
        may_move = user_may(g.user, "can_write", "Opportunity")
        return self.render_template(
            "crm/pipeline.html", columns=columns, filters=filters, error=error, money=money,
            owners=pipeline.owner_choices(g.user), departments=pipeline.department_choices(g.user),
            may_move=may_move, cards_shown=pipeline.CARDS, title=_l("Pipeline"), show_url=_show_url(),
        ), status

    @expose("/move", methods=["POST"])
    @has_access_api
    def move(self) -> Any:
        if not user_may(g.user, "can_write", "Opportunity"):
            return _refusal(403, _l("You may not change opportunities."))
        wanted, refusal = _move_request()
        if refusal is not None:
            return refusal
        try:
            item = pipeline.move(wanted["id"], wanted["stage_id"], g.user, version=wanted["version"],
                                 values=wanted["values"])
            db.session.commit()
        except RuleViolation as exc:
            db.session.rollback()
            return _refusal(exc.status, exc, exc.errors, pipeline.missing_fields(exc.errors))
        except StaleDataError:  # saved by someone else between our read and our write
            db.session.rollback()
            return _refusal(409, _l("Someone else changed this opportunity just now: reload the page."))
        try:
            filters = pipeline.parse_filters(request.args, g.user)
        except RuleViolation:
            filters = pipeline.BoardFilters()
        columns = pipeline.column_totals(g.user, filters)
        return jsonify({"ok": True, "id": item.id, "stage_id": item.stage_id, "version": item.version,
                        "probability": item.probability, "columns": [c.totals() for c in columns]})

    @expose("/forecast")
    @has_access
    def forecast(self) -> Any:
        group_by = request.args.get("group_by") or "owner"
        months = db_int(request.args.get("months") or pipeline.DEFAULT_MONTHS)
        error, result, status = None, None, 200
        try:
            start = pipeline.month_start(request.args.get("start"), "start")
            result = pipeline.forecast(g.user, group_by, months if months is not None else -1, start)
        except RuleViolation as exc:
            error, status = exc.errors, 400
        return self.render_template(
            "crm/pipeline_forecast.html", result=result, error=error, money=money, group_by=group_by,
            months=request.args.get("months") or pipeline.DEFAULT_MONTHS, start=request.args.get("start") or "",
            max_months=pipeline.MAX_MONTHS, title=_l("Forecast"),
        ), status


def register_pipeline(appbuilder: Any, category: str = "CRM") -> None:
    """The kanban and the forecast in the CRM menu (menu permissions "Pipeline", "Forecast";
    the pages need ``can_read`` on "Pipeline")."""
    appbuilder.add_view(PipelineView, "Pipeline", label=_l("Pipeline"), icon="fa-columns", category=category)
    appbuilder.add_link("Forecast", href="PipelineView.forecast", label=_l("Forecast"), icon="fa-line-chart",
                        category=category)
