"""Marketing > Campaigns (issue 15): the declared list/add/edit and ``/api/v1/campaign/``
(``app.services.campaigns.CAMPAIGN``), the campaign page (plan, status actions, the
evaluation with its xlsx export, the leads in scope) and the REST actions
``POST /api/v1/campaign/<id>/submit``, ``POST /api/v1/campaign/<id>/status``,
``GET /api/v1/campaign/<id>/evaluation``.

Thin: every figure and every write is ``app.services.campaigns``; a refusal is a flash
message (pages) or 4xx JSON (API): 400 a body that is not the schema's JSON, 403 a right
the user lacks, 404 a campaign missing or out of scope, 409 a move the flow refuses.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from flask import abort, g, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_appbuilder.api import BaseApi, protect, safe
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate
from openpyxl import Workbook
from wtforms import SelectField

from app.extensions import db
from app.security import masking
from app.security.request_bounds import db_int
from app.security.rights import user_may
from app.services import campaigns, exporting, leads, records
from app.services.errors import NotFound, RuleForbidden
from views import forms, writes
from views.declared import OWN_APIS, OWN_VIEWS, declared_api, declared_view

#: Leads the campaign page lists (the evaluation counts them all; the export lists them).
PAGE_LEADS = 100


def form_field() -> SelectField:
    """The campaign's form as a choice (online / offline / hybrid), may stay empty."""
    return SelectField(_l("Form"), choices=[("", "")] + [(k, v) for k, v in campaigns.FORMS.items()], default="")


class CampaignShowMixin:
    """The declared show page is the campaign page."""

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk: Any) -> Any:
        return redirect(url_for("CampaignPageView.page", pk=db_int(pk) or 0))


_FORMATTERS = {"status": campaigns.status_label, "form": campaigns.form_label}
CampaignView = declared_view(
    campaigns.CAMPAIGN, CampaignShowMixin,
    formatters_columns=_FORMATTERS,
    add_form_extra_fields={"owner": forms.owner_field(), "form": form_field()},
    edit_form_extra_fields={"edit_version": forms.version_field(), "owner": forms.owner_field(True),
                            "form": form_field()},
)
OWN_VIEWS[campaigns.CAMPAIGN.name] = CampaignView
CampaignApi = declared_api(campaigns.CAMPAIGN)
OWN_APIS[campaigns.CAMPAIGN.name] = CampaignApi


# --- the campaign page ------------------------------------------------------------------

def scope_note(result: campaigns.Evaluation) -> str:
    """The page's statement of what the figures count."""
    return str(_l("Figures count only the leads and opportunities you may see: %(n)d of %(m)d leads.",
                  n=result.leads, m=result.all_leads))


def evaluation_file(result: campaigns.Evaluation, user: Any) -> str:
    """The evaluation as an xlsx file (sheets "Evaluation" and "Leads", formula-safe);
    returns its temporary path (the sender deletes it)."""
    figures, lead_rows = campaigns.evaluation_sheets(result, user)
    book = Workbook(write_only=True)
    for title, rows in ((str(_l("Evaluation")), figures), (str(_l("Leads")), lead_rows)):
        sheet = book.create_sheet(title[:31])
        for row in rows:
            sheet.append([exporting.neutralise(value) for value in row])
    handle, path = tempfile.mkstemp(suffix=".xlsx", prefix="crm-campaign-")
    os.close(handle)
    book.save(path)
    return path


class CampaignPageView(BaseView):
    """The campaign page and its buttons (can_read / can_write / can_export on Campaign)."""

    route_base = "/marketing/campaigns"
    class_permission_name = campaigns.PERMISSION
    base_permissions = ["can_read", "can_write", "can_export"]
    method_permission_name = {"page": "read", "submit": "write", "status": "write", "export_evaluation": "export"}
    default_view = "page"

    def _load(self, pk: int) -> Any:
        try:
            return records.load(campaigns.Campaign, pk, g.user)
        except NotFound:
            abort(404)

    @expose("/<int:pk>")
    @has_access
    def page(self, pk: int) -> Any:
        item = self._load(pk)
        result = campaigns.evaluate(pk, g.user)
        shown = db.session.scalars(campaigns.leads_in_scope(item, g.user).limit(PAGE_LEADS)).all()
        return self.render_template(
            "campaigns/page.html", item=item, result=result, figures=result.as_dict(), note=scope_note(result),
            leads=shown, lead_status=leads.status_label, mask_phone=masking.mask_phone,
            status_label=campaigns.status_label, form_label=campaigns.form_label,
            moves=campaigns.TRANSITIONS.get(item.status, ()),
            can_write=user_may(g.user, "can_write", campaigns.PERMISSION),
            can_export=user_may(g.user, "can_export", campaigns.PERMISSION), title=item.code)

    def _act(self, pk: int, use_case: Any, done: Any) -> Any:
        return writes.form_action(use_case, url_for("CampaignPageView.page", pk=pk), done)

    @expose("/<int:pk>/submit", methods=["POST"])
    @has_access
    def submit(self, pk: int) -> Any:
        form = request.form
        return self._act(pk, lambda: campaigns.submit(pk, g.user, version=form.get("version"),
                                                      reason=form.get("reason")),
                         lambda item: _l("Submitted for approval.") if item.status == campaigns.WAITING
                         else _l("No approval is needed: the campaign is approved."))

    @expose("/<int:pk>/status", methods=["POST"])
    @has_access
    def status(self, pk: int) -> Any:
        form = request.form
        return self._act(pk, lambda: campaigns.change_status(pk, g.user, form.get("to_status", ""),
                                                             version=form.get("version")),
                         lambda item: _l("The campaign is now %(status)s.",
                                         status=campaigns.status_label(item.status)))

    @expose("/<int:pk>/evaluation.xlsx")
    @has_access
    def export_evaluation(self, pk: int) -> Any:
        self._load(pk)
        try:
            exporting.authorise(g.user, campaigns.PERMISSION)
        except RuleForbidden:
            abort(403)
        result = campaigns.evaluate(pk, g.user)
        path = evaluation_file(result, g.user)
        exporting.record("CampaignEvaluation", "xlsx", result.leads, user=g.user)
        db.session.commit()
        return exporting.send_file_chunks(path, "xlsx", f"{result.campaign.code}-evaluation")


# --- REST actions ---------------------------------------------------------------------

class SubmitBody(Schema):
    version = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True, validate=validate.Length(max=campaigns.TEXT_LIMIT))


class StatusBody(Schema):
    status = fields.String(required=True, validate=validate.OneOf(list(campaigns.STATUSES)))
    version = fields.Integer(allow_none=True)


def _result(item: Any) -> dict[str, Any]:
    return {"id": item.id, "code": item.code, "status": item.status, "version": item.version}


class CampaignActionsApi(writes.ActionApiMixin, BaseApi):
    """``POST /api/v1/campaign/<pk>/submit`` (``version``, ``reason``; an empty body is fine),
    ``POST /api/v1/campaign/<pk>/status`` (``status``: running, done, planning (revise) or
    cancelled; ``version``), ``GET /api/v1/campaign/<pk>/evaluation``. 400 a body that is not
    the schema's JSON, 403 / 404 / 409 / 422 as the use case refuses; 200 with the campaign's
    id, code, status and version, or the evaluation's figures."""

    resource_name = "campaign"
    class_permission_name = campaigns.PERMISSION
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"submit": "write", "status": "write", "evaluation": "read"}
    openapi_spec_tag = "Campaign"

    def _run(self, schema: Schema, call: Any, *, empty_ok: bool = False) -> Any:
        return self.run_action(schema, call, _result, empty_ok=empty_ok)

    @expose("/<int:pk>/submit", methods=["POST"])
    @protect()
    @safe
    def submit(self, pk: int) -> Any:
        """Submit a campaign's plan for approval (approved at once when no policy applies).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    version:
                      type: integer
                    reason:
                      type: string
          responses:
            200:
              description: The campaign, waiting for approval or approved
            400:
              $ref: '#/components/responses/400'
            404:
              $ref: '#/components/responses/404'
            409:
              description: Not in planning, or a stale version
            422:
              description: Dates or budget missing
        """
        return self._run(SubmitBody(), lambda v: campaigns.submit(pk, g.user, version=v.get("version"),
                                                                  reason=v.get("reason")), empty_ok=True)

    @expose("/<int:pk>/status", methods=["POST"])
    @protect()
    @safe
    def status(self, pk: int) -> Any:
        """Start, finish, revise (back to planning) or cancel a campaign.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    status:
                      type: string
                      enum: [planning, running, done, cancelled]
                    version:
                      type: integer
          responses:
            200:
              description: The campaign, moved
            400:
              $ref: '#/components/responses/400'
            404:
              $ref: '#/components/responses/404'
            409:
              description: The status flow does not allow this move
        """
        return self._run(StatusBody(), lambda v: campaigns.change_status(pk, g.user, v["status"],
                                                                         version=v.get("version")))

    @expose("/<int:pk>/evaluation", methods=["GET"])
    @protect()
    @safe
    def evaluation(self, pk: int) -> Any:
        """The campaign's evaluation (002 §五(三)), counting what the caller may see.
        ---
        get:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: Participants, leads, converted, conversion rate (%), won opportunities and
                amount, actual cost, cost per lead, ROI (%); money as "12345.67", "—" when dividing by zero
            404:
              $ref: '#/components/responses/404'
        """
        try:
            result = campaigns.evaluate(pk, g.user)
        except NotFound:
            return self.response_404()
        return self.response(200, result=result.as_dict(), note=scope_note(result))


def register(appbuilder: AppBuilder) -> None:
    """The campaign page (no menu entry: the list's show opens it) and the actions API."""
    appbuilder.add_view_no_menu(CampaignPageView)
    appbuilder.add_api(CampaignActionsApi)
