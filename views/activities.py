"""Activity screens (issue 14): the declared list/show/add/edit and REST API
(``app.services.activities.ACTIVITY``) plus "My activities" (overdue / today / next 7
days), the calendar (FullCalendar, vendored) and its JSON feed, done / cancel buttons,
the task-template pre-fill, the task templates' admin screen, and the activities list of
a record's page (``record_activities`` in templates).

Thin: every list comes from the service (scoped, bounded); every write is a use case.
``views/__init__`` imports this module before the declared screens are registered, so
``OWN_VIEWS`` / ``OWN_APIS`` hold the activity screen and API with their own pages.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from flask import current_app, g, jsonify, request, url_for
from flask_appbuilder import AppBuilder, expose, has_access
from flask_appbuilder.api import protect, safe
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from wtforms import SelectField
from wtforms.validators import InputRequired

from app import clock
from app.extensions import db
from app.models.activities import Activity, ActivityTemplate
from app.models.org import CrmUser
from app.security import step_up
from app.security.masking import mask_phones_in
from app.services import activities, follow_ups, records, validation
from app.services.errors import NotFound, RuleViolation
from views import writes
from views.base import CRUD_PERMISSIONS, READ_WRITE_PERMISSIONS, CrmModelView
from views.declared import OWN_APIS, OWN_VIEWS, declared_api, declared_view
from views.fields import SecondsDateTimeField
from views.forms import active_users, version_field
from views.related import RelatedSelectField


def kind_field() -> SelectField:
    """The activity type as a choice (call, visit, meeting, e-mail, task)."""
    return SelectField(_l("Type"), choices=[(key, label) for key, label in activities.KINDS.items()], default="call")


def next_full_hour() -> datetime:
    """A new activity's default due time: the next full hour (an instant; shown in the CRM zone)."""
    now = clock.local_now().replace(minute=0, second=0, microsecond=0)
    return clock.from_local(now + timedelta(hours=1))


def due_field() -> SecondsDateTimeField:
    """The due time, typed as wall time in the CRM's zone; a new activity starts at the next hour."""
    return SecondsDateTimeField(_l("Due"), default=next_full_hour, validators=[InputRequired()],
                                description=activities.ACTIVITY.descriptions["due_at"])


def assignee_field() -> RelatedSelectField:
    """Assignees looked up as typed: active users in the writer's scope; blank = me. Any id is
    parsed: whether that person may take it is the use case's answer."""
    return RelatedSelectField(_l("Assignee"), model=CrmUser, narrow=active_users, allow_blank=True, accept_any=True,
                              description=_l("Empty: you. The assignee must be able to see the record."))


def active_templates() -> list[ActivityTemplate]:
    """The active task templates in their order (the picker's options)."""
    from sqlalchemy import select

    return list(db.session.scalars(select(ActivityTemplate).where(ActivityTemplate.active.is_(True))
                                   .order_by(ActivityTemplate.position, ActivityTemplate.name)))


def template_field() -> QuerySelectField:
    """A "Template" picker of the active task templates (pre-fills the form in the browser,
    ``crm/activity_form.js``); for the follow-up add form too (not a use-case field there)."""
    return QuerySelectField(_l("Template"), query_func=active_templates, get_pk_func=lambda item: item.id,
                            get_label="name", allow_blank=True,
                            description=_l("Pick a task template to pre-fill the form."))


def _closed_answer(pk: int, use_case: Any, done_message: Any) -> Any:
    """Run ``complete``/``cancel`` from a POST form; back to where the button was."""
    target = step_up.safe_next(request.form.get("next"), url_for("ActivityView.show", pk=pk))
    return writes.form_action(use_case, target, done_message)


def _instant_arg(name: str) -> datetime:
    """A calendar bound: FullCalendar sends ISO 8601 with an offset (or a day)."""
    moment = validation.parse_datetime(request.args.get(name))
    if moment is None:
        raise ValueError(name)
    return clock.from_local(moment)


#: Response header of the events feed when it held back activities beyond ``MAX_EVENTS``.
TRUNCATED_HEADER = "X-Activities-Truncated"


def event_json(item: Activity) -> dict[str, Any]:
    """One activity as a FullCalendar event: only what the list shows, phones masked."""
    return {"id": item.id, "title": mask_phones_in(f"{item.code} {item.subject}"), "start": clock.to_local(item.due_at).isoformat(),
            "url": url_for("ActivityView.show", pk=item.id), "classNames": [f"activity-{item.status}",
                                                                            f"activity-kind-{item.kind}"],
            "extendedProps": {"status": item.status, "kind": str(activities.KINDS.get(item.kind, item.kind))}}


class ActivityPagesMixin:
    """My activities, calendar, events feed, done / cancel, template pre-fill."""

    add_template = "crm/activity_form.html"
    edit_template = "crm/activity_form.html"
    show_template = "crm/activity_show.html"

    @expose("/mine/")
    @has_access
    def mine(self) -> Any:
        groups = activities.my_open(g.user)
        return self.render_template("crm/activity_mine.html", groups=groups, kinds=activities.KINDS,
                                    local_text=clock.local_text, title=_l("My activities"))

    @expose("/calendar/")
    @has_access
    def calendar(self) -> Any:
        return self.render_template("crm/activity_calendar.html", title=_l("Activity calendar"),
                                    zone=clock.zone_name(), locale=str(get_locale() or "en")[:2])

    @expose("/events/")
    @has_access
    def events(self) -> Any:
        try:
            start, end = _instant_arg("start"), _instant_arg("end")
        except ValueError:
            return jsonify(message=str(_l("Give start and end as dates or ISO date-times."))), 400
        try:
            found = activities.in_range(g.user, start, end, mine_only=request.args.get("mine") == "1",
                                        limit=activities.MAX_EVENTS + 1)
        except RuleViolation as exc:
            return jsonify(message="; ".join(str(m) for m in exc.errors.values()), errors=exc.errors), 400
        response = jsonify([event_json(item) for item in found[:activities.MAX_EVENTS]])
        if len(found) > activities.MAX_EVENTS:  # never a silent drop: the page says so
            response.headers[TRUNCATED_HEADER] = quote(str(_l(  # URL-encoded: headers are Latin-1
                "Only the first %(n)d activities are shown: switch to the week view or tick Only mine.",
                n=activities.MAX_EVENTS)))
        return response

    @expose("/complete/<int:pk>", methods=["POST"])
    @has_access
    def complete(self, pk: int) -> Any:
        form = request.form
        return _closed_answer(pk, lambda: activities.complete_activity(
            pk, g.user, form.get("outcome"), form.get("version"), next_step=form.get("next_step"),
            next_step_date=form.get("next_step_date")), _l("Activity done."))

    @expose("/cancel/<int:pk>", methods=["POST"])
    @has_access
    def cancel(self, pk: int) -> Any:
        version = request.form.get("version")
        return _closed_answer(pk, lambda: activities.cancel_activity(pk, g.user, version), _l("Activity cancelled."))

    @expose("/template/<int:pk>")
    @has_access
    def template(self, pk: int) -> Any:
        try:
            return jsonify(activities.template_prefill(pk))
        except NotFound:
            return jsonify(message=str(_l("Record not found."))), 404


ActivityView = declared_view(
    activities.ACTIVITY, ActivityPagesMixin,
    method_permission_name={**READ_WRITE_PERMISSIONS, "mine": "read", "calendar": "read", "events": "read",
                            "template": "read", "complete": "write", "cancel": "write"},
    add_form_extra_fields={"kind": kind_field(), "assignee": assignee_field(), "template": template_field(),
                           "due_at": due_field()},
    # only active templates are offered (the AJAX lookup keeps these filters)
    add_form_query_rel_fields={"template": [["active", FilterEqual, True]]},
    edit_form_query_rel_fields={"template": [["active", FilterEqual, True]]},
    formatters_columns={"kind": lambda value: activities.KINDS.get(value, value),
                        "status": lambda value: activities.STATUSES.get(value, value)},
    edit_form_extra_fields={"kind": kind_field(), "assignee": assignee_field(), "template": template_field(),
                            "edit_version": version_field()},
)
OWN_VIEWS[activities.ACTIVITY.name] = ActivityView
def _json_object() -> dict[str, Any]:
    """The request's JSON object, or {} (Done and Cancel take every field as optional)."""
    body = request.get_json(silent=True) if request.is_json else None
    return body if isinstance(body, dict) else {}


class ActivityApiDoneMixin:
    """``POST /api/v1/activity/<pk>/complete`` (JSON: ``outcome``, ``next_step``,
    ``next_step_date``, ``version``; all optional) and ``POST …/<pk>/cancel`` (``version``):
    the screens' Done and Cancel, through the same use cases (404 out of scope, 409 stale or
    closed, 422 with the follow-up's field messages)."""

    @expose("/<int:pk>/complete", methods=["POST"])
    @protect()
    @safe
    def complete(self, pk: int) -> Any:
        """Mark an open activity done; an outcome records the follow-up.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The activity, done
            404:
              $ref: '#/components/responses/404'
        """
        body = _json_object()
        return self._closed(lambda: activities.complete_activity(
            pk, g.user, body.get("outcome"), body.get("version"), next_step=body.get("next_step"),
            next_step_date=body.get("next_step_date")))

    @expose("/<int:pk>/cancel", methods=["POST"])
    @protect()
    @safe
    def cancel(self, pk: int) -> Any:
        """Cancel an open activity (kept, status cancelled).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The activity, cancelled
            404:
              $ref: '#/components/responses/404'
        """
        return self._closed(lambda: activities.cancel_activity(pk, g.user, _json_object().get("version")))

    def _closed(self, use_case: Any) -> Any:
        """Run Done or Cancel: the activity (200), or the use case's refusal."""
        item, refusal = self.call_use_case(use_case)
        if refusal is not None:
            return refusal
        db.session.commit()
        return self._answer(200, item)


#: The assignee column is NOT NULL but defaults to the writer (the use case's rule).
ActivityApi = declared_api(activities.ACTIVITY, ActivityApiDoneMixin, add_optional_columns=("assignee", "kind"),
                           method_permission_name={**READ_WRITE_PERMISSIONS, "complete": "write", "cancel": "write"})
OWN_APIS[activities.ACTIVITY.name] = ActivityApi


class ActivityTemplateView(CrmModelView):
    """任务模板 (003): admins define the preset follow-up scripts (Organisation menu). A
    template an activity used is deactivated, not deleted (its activities keep the link)."""

    datamodel = SQLAInterface(ActivityTemplate)
    class_permission_name = "ActivityTemplate"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    list_title = _l("Task templates")
    show_title = _l("Task template")
    add_title = _l("Add task template")
    edit_title = _l("Edit task template")
    list_columns = ["position", "name", "kind", "next_step", "next_step_days", "active"]
    add_columns = edit_columns = ["name", "kind", "content", "next_step", "next_step_days", "position", "active"]
    show_columns = add_columns
    order_columns = ["position", "name"]
    search_columns = ["name", "kind", "active"]
    base_order = ("position", "asc")
    label_columns = {"name": _l("Name"), "kind": _l("Type"), "content": _l("Content"), "next_step": _l("Next step"),
                     "next_step_days": _l("Next step after (days)"), "position": _l("Order"), "active": _l("Active")}
    add_form_extra_fields = edit_form_extra_fields = {"kind": kind_field()}
    formatters_columns = {"kind": lambda value: activities.KINDS.get(value, value)}

    def pre_delete(self, item: Any) -> None:
        records.refuse_delete_in_use(item)  # used by activities: untick Active instead


def record_activities(kind: str, pk: Any) -> list[Activity]:
    """The activities of one record the current user may see (template global for the
    customer, lead and opportunity pages)."""
    user = getattr(g, "user", None)
    if user is None or getattr(user, "is_anonymous", True) or pk is None:
        return []
    return activities.for_record(user, kind, int(pk))


def record_activity(pk: Any) -> Activity | None:
    """One activity the current user may see (the show page's buttons), or None."""
    try:
        return records.load(Activity, pk, g.user)
    except NotFound:
        return None


def register_activities(appbuilder: AppBuilder) -> None:
    """My activities and the calendar (CRM menu; ``can_read`` on Activity, menu access
    "My activities" / "Activity calendar"), task templates (Organisation menu, Admin), and
    the record pages' activity list."""
    current_app.jinja_env.globals.update(
        record_activities=record_activities, record_activity=record_activity, activity_kinds=activities.KINDS,
        activity_statuses=activities.STATUSES, activity_time=clock.local_text,
        follow_up_required=follow_ups.required_fields)
    appbuilder.add_link("My activities", href="ActivityView.mine", label=_l("My activities"), icon="fa-check-square-o",
                        category="CRM")
    appbuilder.add_link("Activity calendar", href="ActivityView.calendar", label=_l("Activity calendar"),
                        icon="fa-calendar", category="CRM")
    appbuilder.add_view(ActivityTemplateView, "Task templates", label=_l("Task templates"), icon="fa-clipboard",
                        category="Organisation")


