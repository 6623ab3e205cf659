"""Opportunity screens and API (商机) and the stage dictionary's admin screen.

Thin: every write is a use case of ``app.services.opportunities`` (``save_opportunity``,
``move_stage``, ``save_line`` …); the screens turn its ``RuleViolation`` into field
errors or messages, the API into 4xx JSON. The opportunity page shows its product lines,
competitors and stage history (loaded through the opportunity, which is loaded in scope).
The list has a "stale" switch (``?stale=1``: ``opportunities.stale_clause``).

Registration (views/__init__.py): ``import views.opportunities`` before
``register_declared`` fills ``OWN_VIEWS`` / ``OWN_APIS``; ``StageView`` is added there.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, has_request_context, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.api import safe
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import BooleanField

from app import clock
from app.extensions import db
from app.models.sales import Opportunity, Product, Stage
from app.security import step_up
from app.security.data_scope import scope_clause
from app.services import opportunities
from app.services.errors import RuleViolation
from app.services.opportunities import OPPORTUNITY
from views import forms, writes
from views.base import CRUD_PERMISSIONS, READ_WRITE_PERMISSIONS, SCOPE_FILTER, CrmModelView
from views.declared import OWN_APIS, OWN_VIEWS, declared_api, declared_view
from views.writes import step_up_abort

#: Screen and API methods that change an opportunity's children or stage: "write".
_WRITES = {"move": "write", "add_line": "write", "remove_line": "write",
           "add_competitor": "write", "remove_competitor": "write"}
STALE_ARG = "stale"
_STALE_ENDPOINTS = ("OpportunityView.list", "OpportunityView.export")


def confirm_amount_field() -> BooleanField:
    """'Amount confirmed': the plausibility warning's confirmation (the use case asks for it)."""
    return BooleanField(_l("Amount confirmed"),
                        description=_l("Tick only if the amount is right although it is far above this "
                                       "customer's history."))


def stale_only() -> bool:
    return has_request_context() and request.endpoint in _STALE_ENDPOINTS and request.args.get(STALE_ARG) == "1"


class StaleFilter(BaseFilter):
    """``?stale=1`` on the list and its downloads: only stale opportunities (003 方案提交 超7天未更新)."""

    name = "Stale"
    arg_name = "stale_only"

    def apply(self, query: Any, value: Any) -> Any:
        return query.filter(opportunities.stale_clause()) if stale_only() else query


class OpportunityPages:
    """The opportunity screen's own pages: move stage, product lines, competitors."""

    def save_record(self, values: dict[str, Any], *, pk: Any, version: Any, form: Any) -> Any:
        confirmed = "confirm_amount" in form and bool(form.confirm_amount.data)
        return opportunities.save_opportunity(values, g.user, pk=pk, version=version, confirm_amount=confirmed)

    def show_rule_errors(self, form: Any, exc: RuleViolation) -> None:
        """The plausibility warning goes under 'Amount confirmed'; its API hint is dropped."""
        if isinstance(exc, opportunities.AmountImplausible):
            exc = RuleViolation({"confirm_amount": exc.errors["confirm_amount"]})
        super().show_rule_errors(form, exc)

    def render_template(self, template: str, **kwargs: Any) -> Any:
        if template == self.show_template and kwargs.get("pk") is not None:
            item = self.scoped_get(kwargs["pk"])
            if item is not None:
                kwargs.update(opportunity=item, stages=_stages(), products=_products(),
                              may_write=self.appbuilder.sm.has_access("can_write", self.class_permission_name),
                              order_button=_order_button(item, self.appbuilder.sm))
        return super().render_template(template, **kwargs)

    def _run(self, pk: Any, call: Any, done: Any) -> Any:
        """Run a use case for the opportunity page: commit and ``done`` message, or the
        rule's messages; back to the page. Out of scope: 404 (the use case's NotFound)."""
        try:
            call()
        except step_up.StepUpRequired as exc:
            step_up_abort(exc)
        except RuleViolation as exc:
            db.session.rollback()
            if exc.status == 404:
                abort(404)
            for name, message in exc.errors.items():
                if name != "confirm":
                    label = opportunities.LABELS.get(name)
                    flash(f"{label}: {message}" if label and str(label) not in message else str(message), "danger")
            return redirect(url_for(f"{self.endpoint}.show", pk=pk))
        db.session.commit()
        flash(str(done), "success")
        return redirect(url_for(f"{self.endpoint}.show", pk=pk))

    @expose("/move/<pk>", methods=["POST"])
    @has_access
    def move(self, pk: Any) -> Any:
        """Move to another stage (``move_stage``); the fields the stage requires may come along."""
        values = {name: request.form[name] for name in opportunities.REQUIRABLE if request.form.get(name)}
        return self._run(pk, lambda: opportunities.move_stage(
            pk, request.form.get("stage"), g.user, version=request.form.get("version") or None, values=values,
            confirm_amount=request.form.get("confirm_amount") == "1"), _l("Stage changed."))

    @expose("/line/<pk>", methods=["POST"])
    @has_access
    def add_line(self, pk: Any) -> Any:
        values = {name: request.form.get(name, "") for name in ("product", "quantity", "unit_price", "discount")}
        return self._run(pk, lambda: opportunities.save_line(pk, values, g.user), _l("Product line added."))

    @expose("/line/<pk>/<line_pk>/delete", methods=["POST"])
    @has_access
    def remove_line(self, pk: Any, line_pk: Any) -> Any:
        return self._run(pk, lambda: opportunities.delete_line(pk, line_pk, g.user), _l("Product line removed."))

    @expose("/competitor/<pk>", methods=["POST"])
    @has_access
    def add_competitor(self, pk: Any) -> Any:
        values = {name: request.form.get(name, "") for name in ("name", "strengths", "weaknesses")}
        return self._run(pk, lambda: opportunities.save_competitor(pk, values, g.user), _l("Competitor added."))

    @expose("/competitor/<pk>/<competitor_pk>/delete", methods=["POST"])
    @has_access
    def remove_competitor(self, pk: Any, competitor_pk: Any) -> Any:
        return self._run(pk, lambda: opportunities.delete_competitor(pk, competitor_pk, g.user),
                         _l("Competitor removed."))


def _order_button(item: Opportunity, sm: Any) -> dict[str, int] | None:
    """"Create order" (``OrderDeskView.from_opportunity``) on a won opportunity for a user who
    may write orders: its id and how many orders it already has (the button warns)."""
    from app.services import orders

    stage = db.session.get(Stage, item.stage_id)
    if stage is None or not stage.is_won or not sm.has_access("can_write", "SalesOrder"):
        return None
    return {"id": item.id, "orders": orders.orders_of_opportunity(item.id)}


def _stages() -> list[Stage]:
    return list(db.session.scalars(select(Stage).where(Stage.active.is_(True)).order_by(Stage.sort_order)))


def _products() -> list[Product]:
    return list(db.session.scalars(select(Product).where(Product.active.is_(True)).order_by(Product.code)
                                   .limit(500)))


_EDITABLE = list(OPPORTUNITY.editable)

OpportunityView = declared_view(
    OPPORTUNITY, OpportunityPages,
    method_permission_name={**READ_WRITE_PERMISSIONS, **_WRITES},
    base_filters=[*SCOPE_FILTER, ["id", StaleFilter, lambda: None]],
    save_record=OpportunityPages.save_record,  # the factory's own would drop confirm_amount
    show_template="crm/opportunity_show.html",
    list_template="crm/opportunity_list.html",
    add_columns=[*_EDITABLE, "confirm_amount"],
    edit_columns=[*_EDITABLE, "edit_version", "confirm_amount"],
    add_form_extra_fields={"owner": forms.owner_field(), "confirm_amount": confirm_amount_field()},
    edit_form_extra_fields={"owner": forms.owner_field(True), "edit_version": forms.version_field(),
                            "confirm_amount": confirm_amount_field()},
)


# --- REST API ---------------------------------------------------------------------------------------

def _children(item: Opportunity) -> dict[str, list[dict[str, Any]]]:
    """The read-only nested lists of ``GET /api/v1/opportunity/<id>``."""
    return {
        "lines": [{"id": x.id, "position": x.position, "product": {"id": x.product_id, "code": x.product.code},
                   "quantity": str(x.quantity), "unit_price": str(x.unit_price), "discount": str(x.discount),
                   "amount": str(x.amount)} for x in item.lines],
        "competitors": [{"id": x.id, "name": x.name, "strengths": x.strengths, "weaknesses": x.weaknesses}
                        for x in item.competitors],
        "stage_changes": [{"from": x.from_stage.code if x.from_stage else None, "to": x.to_stage.code,
                           "changed_at": clock.to_local(x.changed_at).isoformat() if x.changed_at else None,
                           "changed_by": x.changed_by.username if x.changed_by else None,
                           "days_in_stage": x.days_in_stage} for x in item.stage_changes],
    }


class OpportunityApiPages:
    """``?confirm_amount=1`` on POST/PUT; nested lists on GET; stage moves, lines and
    competitors as sub-resources (each through its use case, the opportunity in scope)."""

    def save_record(self, values: dict[str, Any], *, pk: Any, version: Any) -> Any:
        return opportunities.save_opportunity(values, g.user, pk=pk, version=version,
                                              confirm_amount=request.args.get("confirm_amount") == "1")

    def pre_get(self, data: dict[str, Any]) -> None:
        super().pre_get(data)
        result = data.get("result")
        pk = result.get("id") if isinstance(result, dict) else None
        item = db.session.scalars(select(Opportunity).where(
            Opportunity.id == pk, scope_clause(g.user, Opportunity))).first() if pk else None
        if item is not None:
            result.update(_children(item))

    def _sub(self, call: Any, status: int = 200) -> Any:
        payload, error = writes.json_object(self) if request.method != "DELETE" else ({}, None)
        if error is not None:
            return error
        result, refusal = self.call_use_case(lambda: call(payload))
        if refusal is not None:
            return refusal
        db.session.commit()
        return self.response(status, id=getattr(result, "id", None))

    @expose("/<int:pk>/stage", methods=["POST"])
    @protect()
    @safe
    def move(self, pk: int) -> Any:
        """Move to a stage: ``{"stage": <id>, "version": n, "values": {field: value}}``.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: Moved
            404:
              $ref: '#/components/responses/404'
            409:
              description: Stale version, or an implausible amount (?confirm_amount=1)
            422:
              description: Fields the stage requires, by field
        """
        def call(body: dict[str, Any]) -> Any:
            values = body.get("values") or {}
            if not isinstance(values, dict):
                raise RuleViolation({"values": str(_l("Send the fields as a JSON object."))})
            return opportunities.move_stage(pk, body.get("stage"), g.user, version=body.get("version"),
                                            values=values, confirm_amount=request.args.get("confirm_amount") == "1")
        return self._sub(call)

    @expose("/<int:pk>/line", methods=["POST"])
    @protect()
    @safe
    def add_line(self, pk: int) -> Any:
        """Add a product line: ``{"product": <id>, "quantity": "2", "unit_price": "…", "discount": "10"}``.
        ---
        post:
          responses:
            201:
              description: Added
            404:
              $ref: '#/components/responses/404'
            422:
              description: Field errors
        """
        return self._sub(lambda body: opportunities.save_line(pk, body, g.user), 201)

    @expose("/<int:pk>/line/<int:line_pk>", methods=["DELETE"])
    @protect()
    @safe
    def remove_line(self, pk: int, line_pk: int) -> Any:
        """Remove a product line.
        ---
        delete:
          responses:
            200:
              description: Removed
            404:
              $ref: '#/components/responses/404'
        """
        return self._sub(lambda body: opportunities.delete_line(pk, line_pk, g.user))

    @expose("/<int:pk>/competitor", methods=["POST"])
    @protect()
    @safe
    def add_competitor(self, pk: int) -> Any:
        """Add a competitor: ``{"name": "…", "strengths": "…", "weaknesses": "…"}``.
        ---
        post:
          responses:
            201:
              description: Added
            404:
              $ref: '#/components/responses/404'
            422:
              description: Field errors
        """
        return self._sub(lambda body: opportunities.save_competitor(pk, body, g.user), 201)

    @expose("/<int:pk>/competitor/<int:competitor_pk>", methods=["DELETE"])
    @protect()
    @safe
    def remove_competitor(self, pk: int, competitor_pk: int) -> Any:
        """Remove a competitor.
        ---
        delete:
          responses:
            200:
              description: Removed
            404:
              $ref: '#/components/responses/404'
        """
        return self._sub(lambda body: opportunities.delete_competitor(pk, competitor_pk, g.user))


OpportunityApi = declared_api(OPPORTUNITY, OpportunityApiPages,
                              method_permission_name={**READ_WRITE_PERMISSIONS, **_WRITES},
                              save_record=OpportunityApiPages.save_record,
                              add_optional_columns=("owner", "stage"))  # defaulted by the rules

OWN_VIEWS[OPPORTUNITY.name] = OpportunityView
OWN_APIS[OPPORTUNITY.name] = OpportunityApi


# --- the stage dictionary ---------------------------------------------------------------------------

STAGE_LABELS = {
    "code": _l("Code"), "label_en": _l("English label"), "label_zh": _l("Chinese label"),
    "aliases": _l("Aliases"), "sort_order": _l("Sort order"), "active": _l("Active"),
    "weight": _l("Weight (%)"), "is_won": _l("Won"), "is_lost": _l("Lost"),
    "required_fields": _l("Required to enter"), "stale_days": _l("Stale after (days)"),
}


class StageView(CrmModelView):
    """销售阶段: order, weight, won/lost, the fields required to enter, the stale rule.
    Admins only (``Stage``); a stage in use is deactivated, never deleted."""

    datamodel = SQLAInterface(Stage)
    class_permission_name = "Stage"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    list_title = _l("Stages")
    show_title = _l("Stage")
    add_title = _l("Add stage")
    edit_title = _l("Edit stage")
    list_columns = ["code", "label_en", "label_zh", "weight", "is_won", "is_lost", "required_fields",
                    "stale_days", "sort_order", "active"]
    add_columns = edit_columns = show_columns = [*list_columns, "aliases"]
    search_columns = ["code", "label_en", "label_zh", "active"]
    base_order = ("sort_order", "asc")
    label_columns = STAGE_LABELS
    description_columns = {
        "weight": _l("Probability of an opportunity in this stage, 0 to 100 (an opportunity may override it)."),
        "required_fields": _l("Opportunity fields that must be filled to enter this stage, one a line: "
                              "%(fields)s.", fields=", ".join(opportunities.REQUIRABLE)),
        "stale_days": _l("An opportunity in this stage not updated for this many days is listed as stale; "
                         "empty = never."),
        "active": _l("Inactive stages stay on old opportunities but cannot be entered."),
    }

    def pre_add(self, item: Any) -> None:
        opportunities.check_stage(item)

    def pre_update(self, item: Any) -> None:
        opportunities.check_stage(item)

    def pre_delete(self, item: Any) -> None:
        opportunities.check_stage_delete(item)
