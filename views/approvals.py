"""Approvals screens and REST API (issue 15): Approvals > Waiting for me, My requests,
Policies (admins); the request page (before → after, steps, Approve / Reject / Withdraw);
``/api/v1/approval/``. Thin: every decision is a use case of ``app.services.approvals``."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_appbuilder.api import BaseApi, safe
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate
from wtforms import SelectField, StringField
from wtforms.validators import Length, Optional

from app import clock
from app.extensions import db
from app.models.approvals import ApprovalPolicy, ApprovalRequest, ApprovalStep
from app.security import masking, step_up
from app.services import approvals, customers, message_text, notifications
from app.services.errors import NotFound, RuleViolation
from views import writes
from views.base import CRUD_PERMISSIONS, READ_WRITE_PERMISSIONS, CrmModelView

CATEGORY = "Approvals"


def category_args() -> dict[str, Any]:
    """What every add_view / add_link of the Approvals menu passes."""
    return {"category": CATEGORY, "category_label": _l("Approvals"), "category_icon": "fa-check-square-o"}


# --- what a request shows (page and API alike) -----------------------------------------------

#: Fields whose values are phones: shown masked to everyone (001 联系方式脱敏).
PHONE_FIELDS = ("contact_phone", "phone", "mobile")


def _field_label(record_type: str, key: str) -> str:
    from views.customers import CustomerView

    name = key[:-3] if key.endswith("_id") else key
    if record_type == "customer":
        return str(CustomerView.label_columns.get(name, _l("Archived") if name == "archived" else name))
    from app.record_types import REGISTRY

    declared = REGISTRY.get(record_type)
    labels = getattr(declared, "labels", None) or {}
    return str(labels.get(name, name))


def _value_text(record_type: str, key: str, value: Any) -> str:
    if value is None or value == "":
        return "-"
    if key in PHONE_FIELDS:
        return masking.mask_phone(str(value))
    if isinstance(value, bool):
        return str(_l("Yes") if value else _l("No"))
    model = notifications.model_for(record_type)
    name = key[:-3] if key.endswith("_id") else None
    if model is not None and name and name in model.__mapper__.relationships:
        target = db.session.get(model.__mapper__.relationships[name].mapper.class_, value)
        return str(target) if target is not None else "-"
    return masking.mask_phones_in(str(value))


def changes(item: ApprovalRequest) -> list[dict[str, str]]:
    """Before → after per field: labels of the record type, dictionary entries by name,
    phones masked."""
    after, before = json.loads(item.change or "{}"), json.loads(item.before or "{}")
    return [{"field": key, "label": _field_label(item.record_type, key),
             "before": _value_text(item.record_type, key, before.get(key)),
             "after": _value_text(item.record_type, key, value)} for key, value in after.items()]


def _name(user: Any) -> str:
    return user.get_full_name() if user is not None else "-"


def steps(item: ApprovalRequest) -> list[dict[str, Any]]:
    """Each step: who may decide it, and what was decided (who, when, comment)."""
    snapshot = json.loads(item.steps or "[]")
    rows = []
    for index, step in enumerate(snapshot):
        people = [_name(a.user) for a in item.approvers if a.step == index]
        done = [{"action": str(approvals.ACTIONS.get(a.action, a.action)), "by": _name(a.user),
                 "at": clock.local_text(a.at), "comment": message_text.shown(a.comment) if a.comment else ""}
                for a in item.actions if a.step == index and a.action != "submitted"]
        rows.append({"number": index + 1, "approver": str(approvals.APPROVERS.get(step.get("approver"), "")),
                     "people": people, "done": done, "current": item.status == approvals.PENDING and
                     index == item.step})
    return rows


def as_json(item: ApprovalRequest) -> dict[str, Any]:
    """The API's answer for one request (explicit fields; phones masked)."""
    kind = approvals.KINDS.get(item.kind)
    return {"id": item.id, "code": item.code, "kind": item.kind, "kind_label": str(kind.label) if kind else item.kind,
            "status": item.status, "record_type": item.record_type, "record_id": item.record_id,
            "record_label": item.record_label, "requester": item.requester.username if item.requester else None,
            "requested_at": item.requested_at.isoformat() if item.requested_at else None,
            "reason": item.reason, "changes": changes(item), "step": item.step,
            "approvers": [a.user.username for a in item.approvers if a.step == item.step],
            "outcome": message_text.shown(item.outcome) if item.outcome else None, "version": item.version}


def held_json(held: list[ApprovalRequest]) -> list[dict[str, Any]]:
    """``held_for_approval`` of a write's answer: code, kind, approvers' user names."""
    return [{"code": r.code, "kind": r.kind, "approvers": [a.user.username for a in r.approvers if a.step == r.step]}
            for r in held]


def flash_held(held: list[ApprovalRequest]) -> None:
    """Tell the user each change that was held: "<kind> sent for approval to <names> (AP…)"."""
    for item in held:
        kind = approvals.KINDS.get(item.kind)
        names = ", ".join(_name(a.user) for a in item.approvers if a.step == item.step)
        flash(str(_l("%(kind)s sent for approval to %(names)s (%(code)s).", kind=kind.label if kind else item.kind,
                     names=names, code=item.code)), "info")


# --- pages ----------------------------------------------------------------------------------


class ApprovalRequestView(BaseView):
    """Waiting for me, My requests, the request page and its buttons (``Approval``:
    can_read, can_write). The page shows the request's stored snapshot, never the record."""

    route_base = "/approvals"
    class_permission_name = "Approval"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"waiting": "read", "mine": "read", "show": "read", "for_record": "read",
                              "approve": "write", "reject": "write", "withdraw": "write", "data_change": "write"}
    default_view = "waiting"

    def _list(self, rows: list[ApprovalRequest], title: Any, box: str) -> Any:
        return self.render_template("approvals/list.html", rows=rows, title=title, box=box,
                                    statuses=approvals.STATUSES, kinds=approvals.KINDS,
                                    local_text=clock.local_text)

    @expose("/waiting")
    @has_access
    def waiting(self) -> Any:
        return self._list(approvals.waiting_for(g.user), _l("Waiting for me"), "waiting")

    @expose("/mine")
    @has_access
    def mine(self) -> Any:
        return self._list(approvals.requested_by(g.user), _l("My requests"), "mine")

    @expose("/record/<string:record_type>/<int:pk>")
    @has_access
    def for_record(self, record_type: str, pk: int) -> Any:
        """A record's requests (only for users who may see the record) and, on a customer,
        the data-change request form."""
        try:
            rows = approvals.for_record(record_type, pk, g.user)
        except NotFound:
            abort(404)
        return self.render_template("approvals/record.html", rows=rows, title=_l("Approvals"),
                                    record_type=record_type, pk=pk, statuses=approvals.STATUSES,
                                    kinds=approvals.KINDS, local_text=clock.local_text)

    @expose("/show/<pk>")
    @has_access
    def show(self, pk: Any) -> Any:
        try:
            item = approvals.load(pk, g.user)
        except NotFound:
            abort(404)
        kind = approvals.KINDS.get(item.kind)
        return self.render_template(
            "approvals/show.html", item=item, kind=kind, changes=changes(item), steps=steps(item),
            statuses=approvals.STATUSES, local_text=clock.local_text, title=item.code,
            may_decide=approvals.may_decide(item, g.user), sensitive=bool(kind and kind.step_up),
            may_withdraw=item.status == approvals.PENDING and item.requester_id == g.user.id,
            code_field=step_up.CODE_FIELD, outcome=message_text.shown(item.outcome) if item.outcome else "")

    def _decide(self, pk: Any, use_case: Any, done: Any) -> Any:
        back = url_for("ApprovalRequestView.show", pk=pk)
        try:
            item = use_case()
        except step_up.StepUpRequired as exc:
            db.session.rollback()
            return step_up.refusal(exc)
        except NotFound:
            db.session.rollback()
            abort(404)
        except RuleViolation as exc:
            db.session.rollback()
            for message in exc.errors.values():
                flash(str(message), "danger")
            return redirect(back)
        db.session.commit()
        if item.status == approvals.CONFLICT:
            flash(str(_l("%(code)s could not be applied: %(outcome)s", code=item.code, outcome=message_text.shown(item.outcome))),
                  "warning")
        else:
            flash(str(done), "success")
        return redirect(back)

    @expose("/approve/<int:pk>", methods=["POST"])
    @has_access
    def approve(self, pk: int) -> Any:
        form = request.form
        return self._decide(pk, lambda: approvals.approve(pk, g.user, form.get("comment"), form.get("version")),
                            _l("Approved."))

    @expose("/reject/<int:pk>", methods=["POST"])
    @has_access
    def reject(self, pk: int) -> Any:
        form = request.form
        return self._decide(pk, lambda: approvals.reject(pk, g.user, form.get("comment"), form.get("version")),
                            _l("Rejected."))

    @expose("/withdraw/<int:pk>", methods=["POST"])
    @has_access
    def withdraw(self, pk: int) -> Any:
        return self._decide(pk, lambda: approvals.withdraw(pk, g.user), _l("Withdrawn."))

    @expose("/data_change/<int:customer_pk>", methods=["POST"])
    @has_access
    def data_change(self, customer_pk: int) -> Any:
        """《数据变更申请》 on a customer (000 §三(一)): free text to the department manager."""
        back = url_for("ApprovalRequestView.for_record", record_type="customer", pk=customer_pk)
        try:
            item = customers.request_data_change(customer_pk, request.form.get("text"), g.user)
        except NotFound:
            db.session.rollback()
            abort(404)
        except RuleViolation as exc:
            db.session.rollback()
            for message in exc.errors.values():
                flash(str(message), "danger")
            return redirect(back)
        db.session.commit()
        flash_held([item])
        return redirect(back)


# --- policies (admins) --------------------------------------------------------------------------


def kind_field() -> SelectField:
    """A policy's kind as a choice of the registered kinds (translated labels)."""
    return SelectField(_l("Kind of change"), choices=lambda: [(k.name, k.label) for k in approvals.KINDS.values()])


def approver_field() -> SelectField:
    """A step's approver: the department manager, everyone with a role, or one person."""
    return SelectField(_l("Who approves"), choices=list(approvals.APPROVERS.items()), default="manager")


class ApprovalStepView(CrmModelView):
    """A policy's steps, in order (on the policy's page)."""

    datamodel = SQLAInterface(ApprovalStep)
    class_permission_name = "ApprovalPolicy"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    list_title = _l("Approval steps")
    show_title = _l("Approval step")
    add_title = _l("Add approval step")
    edit_title = _l("Edit approval step")
    list_columns = ["position", "approver", "role", "user"]
    search_columns = ["policy", "approver", "role", "user"]
    add_columns = edit_columns = show_columns = ["policy", "position", "approver", "role", "user"]
    base_order = ("position", "asc")
    label_columns = {"policy": _l("Policy"), "position": _l("Order"), "approver": _l("Who approves"),
                     "role": _l("Role"), "user": _l("Person")}
    description_columns = {"approver": _l("Department manager: the requester's, walking up the departments; "
                                          "nobody ever approves their own request.")}
    add_form_extra_fields = edit_form_extra_fields = {"approver": approver_field()}
    formatters_columns = {"approver": lambda value: approvals.APPROVERS.get(value, value)}

    def pre_add(self, item: Any) -> None:
        approvals.check_step(item)

    def pre_update(self, item: Any) -> None:
        approvals.check_step(item)


class ApprovalPolicyView(CrmModelView):
    """Approvals > Policies (admins): which change needs whose approval, under which condition."""

    datamodel = SQLAInterface(ApprovalPolicy)
    class_permission_name = "ApprovalPolicy"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    list_title = _l("Approval policies")
    show_title = _l("Approval policy")
    add_title = _l("Add approval policy")
    edit_title = _l("Edit approval policy")
    list_columns = ["position", "name", "kind", "min_amount", "min_discount", "active"]
    add_columns = edit_columns = ["name", "kind", "position", "active", "min_amount", "min_discount", "note"]
    show_columns = add_columns
    base_order = ("position", "asc")
    search_columns = ["name", "kind", "active"]
    related_views = [ApprovalStepView]
    label_columns = {"name": _l("Name"), "kind": _l("Kind of change"), "position": _l("Order"),
                     "active": _l("Active"), "min_amount": _l("From amount"), "min_discount": _l("From discount (%)"),
                     "note": _l("Note")}
    description_columns = {
        "min_amount": _l("Applies only at or above this amount (orders, campaign budgets); empty: always."),
        "min_discount": _l("Applies only when a line's discount is at or above this percentage; empty: always."),
        "position": _l("The first active policy of a kind whose condition holds applies."),
    }
    # typed as text and read by the policy rules (``approvals.check_policy``), like every amount
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": kind_field(),
        "min_amount": StringField(_l("From amount"), validators=[Optional(), Length(max=40)]),
        "min_discount": StringField(_l("From discount (%)"), validators=[Optional(), Length(max=20)]),
    }
    formatters_columns = {"kind": lambda value: approvals.KINDS[value].label if value in approvals.KINDS else value}

    def pre_add(self, item: Any) -> None:
        approvals.check_policy(item)

    def pre_update(self, item: Any) -> None:
        approvals.check_policy(item)


# --- REST API ----------------------------------------------------------------------------------


class DecisionBody(Schema):
    comment = fields.String(allow_none=True, validate=validate.Length(max=10000))
    version = fields.Integer(allow_none=True)
    totp_code = fields.String(allow_none=True)


class DataChangeBody(Schema):
    customer = fields.Integer(required=True)
    text = fields.String(required=True, validate=validate.Length(min=1, max=10000))


class ApprovalApi(writes.ActionApiMixin, BaseApi):
    """``GET /api/v1/approval/?box=waiting|mine``, ``GET /<id>``, ``POST /<id>/approve``
    (``comment``, ``version``; a sensitive kind: ``X-TOTP-Code``), ``/<id>/reject``
    (``comment`` required), ``/<id>/withdraw``, ``POST /data_change`` (``customer``,
    ``text``). 400 for a body not of the schema, 401 step-up, 403/404/409/422 as the use
    case refuses."""

    resource_name = "approval"
    class_permission_name = "Approval"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"list_requests": "read", "one": "read", "approve": "write", "reject": "write",
                              "withdraw": "write", "data_change": "write"}
    openapi_spec_tag = "Approval"

    def _run(self, schema: Schema, call: Any, status: int = 200) -> Any:
        return self.run_action(schema, call, as_json, status=status, empty_ok=True)

    @expose("/", methods=["GET"])
    @protect()
    @safe
    def list_requests(self) -> Any:
        """The user's inbox (``box=waiting``, default) or own requests (``box=mine``).
        ---
        get:
          responses:
            200:
              description: Requests, newest first
        """
        box = request.args.get("box", "waiting")
        if box not in ("waiting", "mine"):
            return self.response_400(message="box is waiting or mine.")
        rows = approvals.waiting_for(g.user) if box == "waiting" else approvals.requested_by(g.user)
        return self.response(200, result=[as_json(r) for r in rows], count=len(rows))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @safe
    def one(self, pk: int) -> Any:
        """One request the user may see (requester, approver, admin).
        ---
        get:
          responses:
            200:
              description: The request
            404:
              $ref: '#/components/responses/404'
        """
        try:
            item = approvals.load(pk, g.user)
        except NotFound:
            return self.response_404()
        return self.response(200, result=as_json(item))

    @expose("/<int:pk>/approve", methods=["POST"])
    @protect()
    @safe
    def approve(self, pk: int) -> Any:
        """Approve the current step (the last one applies the change).
        ---
        post:
          responses:
            200:
              description: The request (status approved, pending at the next step, or conflict)
        """
        return self._run(DecisionBody(), lambda v: approvals.approve(pk, g.user, v.get("comment"), v.get("version")))

    @expose("/<int:pk>/reject", methods=["POST"])
    @protect()
    @safe
    def reject(self, pk: int) -> Any:
        """Reject a request (comment required).
        ---
        post:
          responses:
            200:
              description: The request, rejected
        """
        return self._run(DecisionBody(), lambda v: approvals.reject(pk, g.user, v.get("comment"), v.get("version")))

    @expose("/<int:pk>/withdraw", methods=["POST"])
    @protect()
    @safe
    def withdraw(self, pk: int) -> Any:
        """The requester withdraws a pending request.
        ---
        post:
          responses:
            200:
              description: The request, withdrawn
        """
        return self._run(DecisionBody(), lambda v: approvals.withdraw(pk, g.user))

    @expose("/data_change", methods=["POST"])
    @protect()
    @safe
    def data_change(self) -> Any:
        """A data-change request (数据变更申请) on a customer in scope.
        ---
        post:
          responses:
            201:
              description: The request, waiting for approval
        """
        return self._run(DataChangeBody(), lambda v: customers.request_data_change(v["customer"], v["text"], g.user),
                         201)


def register(appbuilder: AppBuilder) -> None:
    """Approvals > Waiting for me, My requests (every CRM role), Policies (admins); the API."""
    appbuilder.add_view(ApprovalRequestView, "Waiting for me", label=_l("Waiting for me"), icon="fa-inbox",
                        **category_args())
    appbuilder.add_link("My requests", label=_l("My requests"), href="/approvals/mine", icon="fa-paper-plane",
                        category=CATEGORY)
    appbuilder.add_view(ApprovalPolicyView, "Approval policies", label=_l("Policies"), icon="fa-sitemap",
                        **category_args())
    appbuilder.add_view_no_menu(ApprovalStepView)
    appbuilder.add_api(ApprovalApi)
