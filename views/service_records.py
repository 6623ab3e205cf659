"""Demands (客户需求分析), service feedback (客户服务反馈), problem reports (问题反馈) and
attachment downloads (issue 16). Thin: every write is a use case in ``app.services``.

- Demands and feedback are declared record types: their list/show/add/edit screens and
  REST APIs derive from the declarations (``views/declared.py``). The feedback page adds
  "Open a ticket" for a complaint (``FeedbackTicketView.open_ticket``, and
  ``POST /api/v1/service_feedback/<id>/open_ticket``): routes of their own, so they work
  whichever order the screens are registered in.
- Service > Report a problem: any logged-in user writes 问题描述, 操作步骤 and may attach a
  screenshot; Service > My problem reports lists theirs with the status.
- ``/attachments/<id>/download``: the file, only to a user who may see its record, always
  as a download with ``nosniff``.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, g, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.api import BaseApi, protect, safe
from flask_babel import lazy_gettext as _l
from wtforms.validators import Optional

from app import clock
from app.extensions import db
from app.models.service import Ticket
from app.security import step_up
from app.services import attachments, demands, feedback, problem_reports, records, tickets
from app.services.errors import NotFound, RuleViolation
from views import writes
from views.declared import COMMON_LABELS, OWN_APIS, OWN_VIEWS, declared_api, declared_view
from views.fields import SecondsDateTimeField
from views.forms import version_field

SERVICE = "Service"


def received_field() -> SecondsDateTimeField:
    """反馈时间, typed as wall time in the CRM's zone; a new feedback starts at now."""
    return SecondsDateTimeField(_l("Feedback time"), default=lambda: clock.utc_now().replace(microsecond=0),
                                validators=[Optional()],
                                description=feedback.SERVICE_FEEDBACK.descriptions["received_at"])


def feedback_ticket(pk: Any) -> Ticket | None:
    """The ticket a feedback opened, if the reader may see the feedback (show page)."""
    try:
        item = records.load(feedback.ServiceFeedback, pk, g.user)
    except NotFound:
        return None
    return feedback.ticket_of(item)


def feedback_is_complaint(pk: Any) -> bool:
    """Whether the feedback ``pk`` (in the reader's scope) is a complaint (the button)."""
    try:
        item = records.load(feedback.ServiceFeedback, pk, g.user)
    except NotFound:
        return False
    return item.feedback_type is not None and item.feedback_type.code == feedback.COMPLAINT


#: 处理过程 is the model's ``process``, which a WTForms form cannot have as a field (it is
#: the form's own method): the forms call it ``handling_process``.
FORM_PROCESS = "handling_process"
_FEEDBACK_FORM = [FORM_PROCESS if name == "process" else name for name in feedback.EDITABLE]


def process_field() -> Any:
    """处理过程 as a text area (the form's name for the model's ``process``)."""
    from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget
    from wtforms import TextAreaField

    return TextAreaField(feedback.LABELS["process"], validators=[Optional()], widget=BS3TextAreaFieldWidget())


class FeedbackFormMixin:
    """The feedback forms: ``handling_process`` in, ``process`` to the use case; filled from
    the record on edit."""

    def form_values(self, form: Any) -> dict[str, Any]:
        values = {name: form[name].data for name in feedback.EDITABLE if name != "process" and name in form}
        if FORM_PROCESS in form:
            values["process"] = form[FORM_PROCESS].data
        return values

    def show_rule_errors(self, form: Any, exc: RuleViolation) -> None:
        if "process" in exc.errors:  # the rule's field is the form's handling_process
            exc.errors[FORM_PROCESS] = exc.errors.pop("process")
        super().show_rule_errors(form, exc)  # type: ignore[misc]

    def prefill_form(self, form: Any, pk: Any) -> None:
        item = self.datamodel.get(pk)
        if "edit_version" in form:
            form.edit_version.data = item.version
        if FORM_PROCESS in form:
            form[FORM_PROCESS].data = item.process


ServiceFeedbackView = declared_view(
    feedback.SERVICE_FEEDBACK, FeedbackFormMixin,
    show_template="service/feedback_show.html",
    add_columns=_FEEDBACK_FORM, edit_columns=[*_FEEDBACK_FORM, "edit_version"],
    use_case_fields=tuple(_FEEDBACK_FORM),
    add_form_extra_fields={"received_at": received_field(), FORM_PROCESS: process_field()},
    edit_form_extra_fields={"edit_version": version_field(), FORM_PROCESS: process_field()},
    label_columns={**COMMON_LABELS, **feedback.LABELS, FORM_PROCESS: feedback.LABELS["process"]},
)
ServiceFeedbackView.prefill_form = FeedbackFormMixin.prefill_form  # the declared body sets its own
OWN_VIEWS[feedback.SERVICE_FEEDBACK.name] = ServiceFeedbackView
#: A new feedback's time defaults to now (the rule); the API may leave it out.
OWN_APIS[feedback.SERVICE_FEEDBACK.name] = declared_api(feedback.SERVICE_FEEDBACK,
                                                        add_optional_columns=("received_at",))
DemandView = declared_view(demands.DEMAND)
OWN_VIEWS[demands.DEMAND.name] = DemandView
#: Owner (the writer) and status (pending) are defaulted by the rule.
OWN_APIS[demands.DEMAND.name] = declared_api(demands.DEMAND, add_optional_columns=("owner", "status"))


class FeedbackTicketView(BaseView):
    """"Open a ticket" on a complaint's page (POST, CSRF): the ``open_ticket`` use case."""

    route_base = "/service_feedback"
    class_permission_name = "ServiceFeedback"
    method_permission_name = {"open_ticket": "write"}
    base_permissions = ["can_write"]

    @expose("/open_ticket/<int:pk>", methods=["POST"])
    @has_access
    def open_ticket(self, pk: int) -> Any:
        back = step_up.safe_next(request.form.get("next"), url_for("ServiceFeedbackView.show", pk=pk))
        return writes.form_action(lambda: feedback.open_ticket(pk, g.user), back, lambda ticket: _l(
            "Ticket %(code)s opened for this complaint.", code=ticket.code))


class FeedbackTicketApi(BaseApi):
    """``POST /api/v1/service_feedback/<id>/open_ticket``: 201 with ``ticket`` (id, code);
    404 out of scope, 409 not a complaint or already opened (naming the ticket), 422 the
    ticket's rules."""

    resource_name = "service_feedback"
    class_permission_name = "ServiceFeedback"
    method_permission_name = {"open_ticket": "write"}
    base_permissions = ["can_write"]
    allow_browser_login = False

    @expose("/<int:pk>/open_ticket", methods=["POST"])
    @protect()
    @safe
    def open_ticket(self, pk: int) -> Any:
        """Open a ticket for a complaint.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            201:
              description: The ticket opened
            404:
              $ref: '#/components/responses/404'
            409:
              description: Not a complaint, or a ticket exists already
        """
        try:
            ticket = feedback.open_ticket(pk, g.user)
        except RuleViolation as exc:
            db.session.rollback()
            return self.response(exc.status, message="; ".join(str(m) for m in exc.errors.values()),
                                 errors={k: str(v) for k, v in exc.errors.items()})
        db.session.commit()
        return self.response(201, ticket={"id": ticket.id, "code": ticket.code}, feedback=pk)


class ProblemReportView(BaseView):
    """问题反馈 (000 附录3): report a problem with the CRM; the reporter's own reports."""

    route_base = "/problems"
    class_permission_name = "ProblemReport"
    method_permission_name = {"report": "write", "mine": "read", "show": "read"}
    base_permissions = ["can_read", "can_write"]
    default_view = "mine"

    @expose("/report/", methods=["GET", "POST"])
    @has_access
    def report(self) -> Any:
        values = {"description": request.form.get("description", ""), "steps": request.form.get("steps", "")}
        errors: dict[str, str] = {}
        if request.method == "POST":
            try:
                ticket = problem_reports.report_problem(values, g.user, request.files.get("screenshot"))
            except RuleViolation as exc:
                db.session.rollback()
                errors = {name: str(message) for name, message in exc.errors.items()}
            else:
                db.session.commit()
                flash(str(_l("Thank you: problem %(code)s was sent to the administrators.", code=ticket.code)),
                      "success")
                return redirect(url_for("ProblemReportView.show", pk=ticket.id))
        status = 422 if errors else 200
        return self.render_template("service/problem_report.html", values=values, errors=errors,
                                    labels=problem_reports.LABELS, title=_l("Report a problem"),
                                    max_mb=attachments.max_bytes() // (1024 * 1024)), status

    @expose("/mine/")
    @has_access
    def mine(self) -> Any:
        return self.render_template("service/problem_mine.html", items=problem_reports.my_reports(g.user),
                                    statuses=tickets.STATUSES, title=_l("My problem reports"))

    @expose("/<int:pk>")
    @has_access
    def show(self, pk: int) -> Any:
        try:
            item = problem_reports.load_own(pk, g.user)
        except NotFound:
            return current_app.make_response(("", 404))
        return self.render_template("service/problem_show.html", item=item, statuses=tickets.STATUSES,
                                    files=attachments.for_record(item), title=_l("Problem report %(code)s",
                                                                               code=item.code))


class AttachmentView(BaseView):
    """Attachment downloads: the record's data scope decides (404 otherwise); always a
    download (``as_attachment``) with the stored type and ``nosniff``."""

    route_base = "/attachments"
    class_permission_name = "Attachment"
    method_permission_name = {"download": "read"}
    base_permissions = ["can_read"]

    @expose("/<int:pk>/download")
    @has_access
    def download(self, pk: int) -> Any:
        try:
            item, path = attachments.for_download(pk, g.user)
        except NotFound:
            return current_app.make_response(("", 404))
        response = send_file(path, mimetype=item.content_type, as_attachment=True, download_name=item.filename,
                             max_age=0, conditional=False)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response.headers["Cache-Control"] = "private, no-store"
        return response


def register(appbuilder: Any) -> None:
    """Service > Report a problem, My problem reports; the feedback's "Open a ticket" (screen
    and API); attachment downloads; template helpers for the feedback page. (Demands and
    service feedback themselves are registered with every declared type.)"""
    current_app.jinja_env.globals.update(feedback_ticket=feedback_ticket, feedback_is_complaint=feedback_is_complaint,
                                         record_attachments=attachments.for_record)
    appbuilder.add_view_no_menu(FeedbackTicketView)
    appbuilder.add_api(FeedbackTicketApi)
    appbuilder.add_view_no_menu(AttachmentView)
    appbuilder.add_view(ProblemReportView, "Report a problem", href="/problems/report/", label=_l("Report a problem"),
                        icon="fa-bug", category=SERVICE, category_label=_l("Service"), category_icon="fa-life-ring")
    appbuilder.add_link("My problem reports", href="/problems/mine/", label=_l("My problem reports"),
                        icon="fa-list-alt", category=SERVICE, category_label=_l("Service"),
                        category_icon="fa-life-ring")

