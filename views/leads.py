"""Lead screens: the declared list/show/add/edit with a Convert page and the "re-run rules"
action, the REST API with ``POST /api/v1/lead/<pk>/convert``, the assignment-rule admin
screen and the public web form (官网表单). Thin: the rules are ``app.services.leads``,
``app.services.assignment`` and ``app.services.webform``.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, g, jsonify, make_response, redirect, render_template, request, url_for
from flask_appbuilder import BaseView, action, expose, has_access
from flask_appbuilder.api import safe
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import SelectField

from app.extensions import appbuilder, csrf, db
from app.models.sales import AssignmentRule, Lead, Stage
from app.security import step_up
from app.security.request_bounds import db_int
from app.services import leads, validation, webform
from app.services.dedup import DuplicateFound
from app.services.errors import NotFound, RuleViolation
from views import forms, writes
from views.base import CRUD_PERMISSIONS, READ_WRITE_PERMISSIONS, CrmModelView
from views.declared import OWN_APIS, OWN_VIEWS, declared_api, declared_view

_STATUS_CHOICES = [(code, label) for code, label in leads.STATUS_LABELS.items() if code != leads.CONVERTED]


def status_field() -> SelectField:
    return SelectField(_l("Status"), choices=_STATUS_CHOICES, default=leads.NEW,
                       description=_l("new → contacted → qualified or invalid; an invalid lead needs a reason."))


def campaign_field() -> Any:
    """The lead's campaign, looked up as typed: campaigns in scope that are not cancelled;
    any id sent is parsed and judged by the use case (``campaigns.campaign_for_lead``)."""
    from app.models.marketing import Campaign
    from app.services.campaigns import campaign_choices
    from views.related import RelatedSelectField

    return RelatedSelectField(_l("Campaign"), model=Campaign, narrow=campaign_choices(None), allow_blank=True,
                              accept_any=True, description=_l("The marketing campaign that brought this lead."))


def _owner_field(editing: bool) -> Any:
    field = forms.owner_field(editing)
    if not editing:
        field.kwargs["description"] = _l("Leave empty to assign the lead by the assignment rules.")
    return field


def _flag(name: str) -> bool:
    return request.form.get(name, "").lower() in ("1", "on", "true", "yes", "y")


def opportunity_values(source: Any) -> dict[str, Any]:
    """What a convert request says about the opportunity: title, stage (an id), amount and
    expected close, parsed only (the opportunity use case checks them)."""
    values: dict[str, Any] = {}
    for name in ("title", "amount", "expected_close"):
        text = source.get(name)
        if text not in (None, ""):
            values[name] = text
    if "expected_close" in values:
        try:
            values["expected_close"] = validation.parse_date(values["expected_close"])
        except ValueError as exc:
            raise RuleViolation({"expected_close": str(exc)}) from None
    stage_id = source.get("stage") or source.get("stage_id")
    if stage_id not in (None, ""):
        stage = db.session.get(Stage, db_int(stage_id)) if db_int(stage_id) is not None else None
        if stage is None:
            raise RuleViolation({"stage": str(_l("Not a valid choice."))})
        values["stage"] = stage
    return values


class LeadPagesMixin:
    """Convert page and the admin's "re-run rules" action on the lead list."""

    def render_template(self, template: str, **kwargs: Any) -> Any:
        """The lead page also shows the status history and the Convert button."""
        if template == self.show_template:
            kwargs.update(lead=self.scoped_get(kwargs.get("pk")), status_label=leads.status_label)
        return super().render_template(template, **kwargs)

    @expose("/convert/<pk>", methods=["GET", "POST"])
    @has_access
    def convert(self, pk: Any) -> Any:
        """GET: what the lead becomes; POST: convert (duplicates listed, to link or confirm)."""
        item = self.scoped_get(pk)
        if item is None:
            abort(404)
        matches = []
        if request.method == "POST":
            try:
                leads.convert_lead(item.id, g.user, create_opportunity=_flag("create_opportunity"),
                                   opportunity_values=opportunity_values(request.form),
                                   existing_customer_id=request.form.get("existing_customer_id") or None,
                                   allow_duplicate=_flag("allow_duplicate"))
            except step_up.StepUpRequired as exc:
                db.session.rollback()
                return make_response(step_up.refusal(exc))
            except DuplicateFound as exc:
                db.session.rollback()
                matches = [(c, rule) for c, rule in exc.matches if c.code in exc.errors["duplicates"]]
                flash(exc.errors["duplicate"], "warning")
            except NotFound:
                db.session.rollback()
                flash(str(_l("Customer not found.")), "danger")
            except RuleViolation as exc:
                db.session.rollback()
                for message in exc.errors.values():
                    if isinstance(message, str):
                        flash(message, "danger")
            else:
                db.session.commit()
                flash(str(_l("%(code)s was converted.", code=item.code)), "success")
                return redirect(url_for(f"{self.endpoint}.show", pk=item.id))
            item = self.scoped_get(pk) or abort(404)
        stages = db.session.scalars(select(Stage).where(Stage.active.is_(True)).order_by(Stage.sort_order)).all()
        return self.render_template("crm/lead_convert.html", item=item, matches=matches, stages=stages,
                                    status_label=leads.status_label, form=request.form)

    @action("rerun_rules", _l("Re-run assignment rules"),
            _l("Assign the selected leads without an active owner by the rules?"), "fa-random", single=False)
    def rerun_action(self, items: Any) -> Any:
        items = items if isinstance(items, list) else [items]
        try:
            done, skipped = leads.rerun_rules([item.id for item in items], g.user)
        except RuleViolation as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return redirect(self.get_redirect())
        db.session.commit()
        if done:
            flash(str(_l("Assigned: %(list)s", list=", ".join(f"{i.code} → {i.owner or '-'}" for i in done))),
                  "success")
        for message in skipped[:5]:
            flash(message, "info")
        return redirect(self.get_redirect())

    @expose("/rerun_unassigned", methods=["POST"])
    @has_access
    def rerun_unassigned(self) -> Any:
        """Run the rules on every unassigned lead in scope (bounded: ``unassigned_pks``)."""
        pks = leads.unassigned_pks(g.user)
        if not pks:
            flash(str(_l("No unassigned leads.")), "info")
            return redirect(url_for(f"{self.endpoint}.list"))
        items = db.session.scalars(select(Lead).where(Lead.id.in_(pks))).all()
        return self.rerun_action(list(items))


LEAD_VIEW_PERMISSIONS = [*CRUD_PERMISSIONS, "can_export", "can_reassign"]

LeadView = declared_view(
    leads.LEAD, LeadPagesMixin,
    base_permissions=LEAD_VIEW_PERMISSIONS,
    method_permission_name={**READ_WRITE_PERMISSIONS, "convert": "write", "rerun_action": "reassign",
                            "rerun_unassigned": "reassign"},
    show_template="crm/lead_show.html",
    formatters_columns={"status": leads.status_label},
    add_form_extra_fields={"owner": _owner_field(False), "status": status_field(), "campaign": campaign_field()},
    edit_form_extra_fields={"edit_version": forms.version_field(), "owner": _owner_field(True),
                            "status": status_field(), "campaign": campaign_field()},
)


class LeadApiMixin:
    """``POST /api/v1/lead/<pk>/convert``."""

    @expose("/<int:pk>/convert", methods=["POST"])
    @protect()
    @safe
    def convert(self, pk: int) -> Any:
        """Convert a qualified lead into a customer (and optionally an opportunity).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          - in: query
            name: allow_duplicate
            schema:
              type: integer
            description: 1 to create the customer although it looks like an existing one
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    existing_customer_id:
                      type: integer
                    create_opportunity:
                      type: boolean
                    opportunity:
                      type: object
          responses:
            200:
              description: The converted lead with its customer, contact and opportunity ids
            404:
              $ref: '#/components/responses/404'
            409:
              description: Looks like an existing customer (duplicates listed), or already converted
            422:
              description: Not qualified, or the opportunity fields are refused
        """
        payload, error = writes.json_object(self, empty_ok=True)
        if error is not None:
            return error
        opportunity = payload.get("opportunity") or {}
        if not isinstance(opportunity, dict):
            return self.response_422(message={"opportunity": str(_l("Send the opportunity as a JSON object."))})

        def run() -> Any:
            return leads.convert_lead(
                pk, g.user, create_opportunity=bool(payload.get("create_opportunity")),
                opportunity_values=opportunity_values(opportunity),
                existing_customer_id=payload.get("existing_customer_id"),
                allow_duplicate=request.args.get("allow_duplicate") in ("1", "true"))

        item, refusal = self.call_use_case(run)
        if refusal is not None:
            return refusal
        db.session.commit()
        return self.response(200, result={
            "id": item.id, "code": item.code, "status": item.status, "customer_id": item.customer_id,
            "contact_id": item.contact_id, "opportunity_id": item.opportunity_id})


LeadApi = declared_api(leads.LEAD, LeadApiMixin,
                       method_permission_name={**READ_WRITE_PERMISSIONS, "convert": "write"})

OWN_VIEWS["lead"] = LeadView
OWN_APIS["lead"] = LeadApi


# --- assignment rules (admin) ---------------------------------------------------------


class AssignmentRuleView(CrmModelView):
    """分配规则: ordered rules, their conditions and who takes turns (admins only: no role
    of the default plan is granted "AssignmentRule")."""

    datamodel = SQLAInterface(AssignmentRule)
    class_permission_name = "AssignmentRule"
    list_title = _l("Assignment rules")
    show_title = _l("Assignment rule")
    add_title = _l("Add assignment rule")
    edit_title = _l("Edit assignment rule")
    list_columns = ["position", "name", "active", "province", "city", "industry", "source", "department",
                    "users", "last_user"]
    show_columns = list_columns
    add_columns = edit_columns = ["name", "position", "active", "province", "city", "industry", "source",
                                  "department", "users"]
    search_columns = ["name", "active", "province", "city", "industry", "source", "department"]
    order_columns = ["position", "name"]
    base_order = ("position", "asc")
    label_columns = {
        "position": _l("Order"), "name": _l("Name"), "active": _l("Active"), "province": _l("Province"),
        "city": _l("City"), "industry": _l("Industry"), "source": _l("Source"), "department": _l("Department"),
        "users": _l("Users"), "last_user": _l("Last assigned to"),
    }
    description_columns = {
        "position": _l("Rules are tried from the lowest number; the first whose conditions all match assigns."),
        "province": _l("Empty: any province. 广东 and 广东省 are the same."),
        "industry": _l("A section (制造业) also matches its divisions."),
        "department": _l("Its active members take turns too, besides the users picked."),
        "users": _l("Deactivated or expired users are skipped."),
    }

    def pre_add(self, item: AssignmentRule) -> None:
        self._clean(item)

    def pre_update(self, item: AssignmentRule) -> None:
        self._clean(item)

    @staticmethod
    def _clean(item: AssignmentRule) -> None:
        item.name = validation.clean_line(item.name)[:100]
        for name in ("province", "city"):
            setattr(item, name, validation.clean_line(getattr(item, name))[:32] or None)
        if item.position is None:
            item.position = 0



# --- web form (官网表单) ---------------------------------------------------------------


class WebFormView(BaseView):
    """``POST /webform/lead`` (public: a company website posts to it) and the admin page
    with the copy-paste HTML snippet (``GET /webform/snippet``)."""

    route_base = "/webform"
    class_permission_name = "WebForm"
    base_permissions = ["can_read"]
    method_permission_name = {"snippet": "read"}
    default_view = "snippet"

    @expose("/lead", methods=["POST"])
    def capture_lead(self) -> Any:
        """Public: no login, no CSRF token (a website posts it); bounded and rate limited
        by ``webform.capture`` (size, fields, per-address rate, honeypot, token)."""
        answer = webform.capture(request, current_app.config)
        return _webform_answer(answer)

    @expose("/snippet")
    @has_access
    def snippet(self) -> Any:
        endpoint = url_for("WebFormView.capture_lead", _external=True)
        html = webform.snippet_html(endpoint, current_app.config)
        return self.render_template("crm/webform_snippet.html", endpoint=endpoint, snippet=html,
                                    honeypot_count=webform.honeypot_count(),
                                    token_required=bool(current_app.config.get("CRM_WEBFORM_TOKEN")),
                                    system_user=webform.system_user_name(current_app.config))


def _webform_answer(answer: webform.Answer) -> Any:
    """JSON for JSON clients, a small page for a browser's form post."""
    if answer.as_json:
        response = jsonify({"ok": answer.status == 200, "message": answer.message,
                            **({"errors": answer.errors} if answer.errors else {})})
    else:
        response = make_response(render_template("crm/webform_answer.html", answer=answer), answer.status)
    response.status_code = answer.status
    return response


csrf.exempt(WebFormView.capture_lead)


def register(builder: Any = None) -> None:
    """Add the assignment-rule screen and the web form (called once by ``views.register_views``)."""
    builder = builder or appbuilder
    if any(isinstance(view, WebFormView) for view in builder.baseviews):
        return
    builder.add_view(AssignmentRuleView, "Assignment rules", label=_l("Assignment rules"), icon="fa-random",
                     category="CRM")
    builder.add_view(WebFormView, "Web form", label=_l("Web form"), icon="fa-globe", category="CRM")


__all__ = ["AssignmentRuleView", "LeadApi", "LeadView", "WebFormView", "register"]
