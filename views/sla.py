"""Service > SLA policies and Service > Working calendars (issue 16): Admin only.

An SLA policy times tickets of a type x priority (blank matches any; the most specific
active policy wins) in business minutes of a working calendar; a working calendar is its
weekly hours with a lunch break plus holidays and make-up working days (调休). Saving,
deleting or importing recomputes the open tickets' deadlines (``sla.recompute_open``);
every change is audited (``audit.audited`` in ``app.services.sla``).
"""

from __future__ import annotations

from datetime import time
from typing import Any

from flask import flash, redirect, request
from flask_appbuilder import AppBuilder, ModelRestApi
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SelectField, TimeField
from wtforms.validators import DataRequired, NumberRange, Optional, Regexp

from app import clock
from app.extensions import db
from app.models.service import CalendarDay, SlaPolicy, WorkCalendar
from app.services import sla
from views.base import CRUD_PERMISSIONS, READ_WRITE_PERMISSIONS, CrmModelView

CATEGORY = "Service"
DAY_KINDS = {"holiday": _l("Holiday"), "workday": _l("Make-up working day")}


def category_args() -> dict[str, Any]:
    """What every add_view of the Service menu passes."""
    return {"category": CATEGORY, "category_label": _l("Service"), "category_icon": "fa-life-ring"}


def duration(minutes: int | None) -> str:
    """Business minutes as people read them: "4 h", "1 h 30 min", "15 min"."""
    if minutes is None:
        return ""
    hours, rest = divmod(int(minutes), 60)
    if hours and rest:
        return _("%(h)s h %(m)s min", h=hours, m=rest)
    return _("%(h)s h", h=hours) if hours else _("%(m)s min", m=rest)


def _recompute(policy_ids: list[int] | None = None) -> None:
    """Move the open tickets' deadlines after an admin change, in the change's transaction."""
    count = sla.recompute_open(policy_ids)
    db.session.commit()
    if count:
        flash(_("Deadlines of %(count)s open tickets were recomputed.", count=count), "info")


_MINUTES = [NumberRange(min=1, max=60 * 24 * 365, message=_l("Between 1 minute and a year of minutes."))]


class SlaPolicyView(CrmModelView):
    """SLA policies (000 §二(二): "high priority answered within 24 hours"; 附录3: internal
    problems answered within 15 minutes)."""

    datamodel = SQLAInterface(SlaPolicy)
    class_permission_name = "SlaPolicy"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    list_title = _l("SLA policies")
    show_title = _l("SLA policy")
    add_title = _l("Add SLA policy")
    edit_title = _l("Edit SLA policy")
    list_columns = ["name", "ticket_type", "priority", "first_response_minutes", "resolution_minutes",
                    "business_hours", "calendar", "warn_before_minutes", "escalate", "active"]
    add_columns = edit_columns = ["name", "ticket_type", "priority", "first_response_minutes", "resolution_minutes",
                                  "business_hours", "calendar", "warn_before_minutes", "escalate", "active"]
    show_columns = add_columns
    order_columns = ["name", "first_response_minutes", "resolution_minutes"]
    search_columns = ["name", "ticket_type", "priority", "active"]
    label_columns = {
        "name": _l("Name"), "ticket_type": _l("Type"), "priority": _l("Priority"),
        "first_response_minutes": _l("First response (minutes)"), "resolution_minutes": _l("Resolution (minutes)"),
        "business_hours": _l("Business hours only"), "calendar": _l("Working calendar"),
        "warn_before_minutes": _l("Warn before (minutes)"), "escalate": _l("Escalate on breach"),
        "active": _l("Active"),
    }
    description_columns = {
        "ticket_type": _l("Blank: any type. The most specific active policy wins: type and priority, "
                          "then type, then priority, then neither."),
        "priority": _l("Blank: any priority."),
        "first_response_minutes": _l("Working minutes: 60 = 1 hour, 480 = one 8-hour working day."),
        "resolution_minutes": _l("Working minutes: 60 = 1 hour, 480 = one 8-hour working day."),
        "business_hours": _l("Count working hours of the calendar only; untick to count round the clock."),
        "calendar": _l("Blank: the default calendar."),
        "warn_before_minutes": _l("The assignee and the team lead are warned this many working minutes "
                                  "before a deadline."),
        "escalate": _l("On a breach the team lead's manager is told too."),
    }
    validators_columns = {"first_response_minutes": _MINUTES, "resolution_minutes": _MINUTES,
                          "warn_before_minutes": [NumberRange(min=0, max=60 * 24 * 30)]}
    formatters_columns = {"first_response_minutes": duration, "resolution_minutes": duration,
                          "warn_before_minutes": duration}

    def post_add(self, item: SlaPolicy) -> None:
        _recompute(None)  # a new, more specific policy changes nothing for open tickets' policy

    def post_update(self, item: SlaPolicy) -> None:
        _recompute([item.id])


class CalendarDayView(CrmModelView):
    """A calendar's holidays and make-up working days (add / remove)."""

    datamodel = SQLAInterface(CalendarDay)
    class_permission_name = "WorkCalendar"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    list_title = _l("Holidays and make-up working days")
    show_title = _l("Calendar day")
    add_title = _l("Add calendar day")
    edit_title = _l("Edit calendar day")
    list_columns = ["day", "kind", "name", "calendar"]
    add_columns = edit_columns = show_columns = ["calendar", "day", "kind", "name"]
    order_columns = ["day"]
    search_columns = ["day", "kind", "name", "calendar"]
    base_order = ("day", "asc")
    label_columns = {"calendar": _l("Working calendar"), "day": _l("Day"), "kind": _l("Kind"), "name": _l("Name")}
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField(_l("Kind"), choices=list(DAY_KINDS.items()), default="holiday")}
    formatters_columns = {"kind": lambda value: DAY_KINDS.get(value, value)}

    def post_add(self, item: CalendarDay) -> None:
        _recompute(None)

    def post_update(self, item: CalendarDay) -> None:
        _recompute(None)

    def post_delete(self, item: CalendarDay) -> None:
        _recompute(None)


class WorkCalendarView(CrmModelView):
    """Working calendars: working weekdays, daily hours and lunch break (CRM time zone)."""

    datamodel = SQLAInterface(WorkCalendar)
    class_permission_name = "WorkCalendar"
    method_permission_name = {**READ_WRITE_PERMISSIONS, "action_post": "write", "import_holidays": "write"}
    base_permissions = list(CRUD_PERMISSIONS)
    list_title = _l("Working calendars")
    show_title = _l("Working calendar")
    add_title = _l("Add working calendar")
    edit_title = _l("Edit working calendar")
    list_columns = ["name", "weekdays", "day_start", "lunch_start", "lunch_end", "day_end", "is_default"]
    add_columns = edit_columns = show_columns = list_columns
    order_columns = ["name"]
    search_columns = ["name"]
    related_views = [CalendarDayView]
    label_columns = {
        "name": _l("Name"), "weekdays": _l("Working weekdays"), "day_start": _l("Day starts"),
        "lunch_start": _l("Lunch starts"), "lunch_end": _l("Lunch ends"), "day_end": _l("Day ends"),
        "is_default": _l("Default"),
    }
    description_columns = {
        "weekdays": _l("ISO weekday numbers: 1 = Monday ... 7 = Sunday; 12345 = Monday to Friday."),
        "lunch_start": _l("Blank lunch: no break."),
    }
    validators_columns = {"weekdays": [Regexp(r"^[1-7]{0,7}$", message=_l("Digits 1 to 7 only."))]}
    add_form_extra_fields = edit_form_extra_fields = {
        # a new calendar starts as the standard working day (09:00-18:00, lunch 12:00-13:00)
        "day_start": TimeField(_l("Day starts"), validators=[DataRequired()], default=time(9, 0)),
        "lunch_start": TimeField(_l("Lunch starts"), validators=[Optional()], default=time(12, 0)),
        "lunch_end": TimeField(_l("Lunch ends"), validators=[Optional()], default=time(13, 0)),
        "day_end": TimeField(_l("Day ends"), validators=[DataRequired()], default=time(18, 0)),
    }

    def pre_add(self, item: WorkCalendar) -> None:
        sla.check_calendar(item)

    def pre_update(self, item: WorkCalendar) -> None:
        sla.check_calendar(item)

    def post_add(self, item: WorkCalendar) -> None:
        _recompute(None)

    def post_update(self, item: WorkCalendar) -> None:
        _recompute(None)

    def post_delete(self, item: WorkCalendar) -> None:
        _recompute(None)

    @action("import_holidays", _l("Import China's public holidays"),
            _l("Import this year's and next year's public holidays and make-up working days?"), "fa-calendar")
    def import_holidays(self, items: Any) -> Any:
        """Adds this and next year's public days (chinese-calendar) to the chosen calendars;
        says which years the package knows."""
        items = items if isinstance(items, list) else [items]
        year, known = clock.local_today().year, sla.known_years()
        years = [y for y in (year, year + 1) if y in known]
        added = sum(sla.import_public_days(item, y) for item in items for y in years)
        db.session.commit()
        flash(_("%(count)s days added for %(years)s; the holiday package knows %(first)s to %(last)s.",
                count=added, years=", ".join(map(str, years)) or "-", first=known[0], last=known[-1]), "info")
        _recompute(None)
        return redirect(request.referrer or self.get_redirect())


class SlaPolicyApi(ModelRestApi):
    """Read-only SLA policies for integrations (Admin only, like the screen)."""

    resource_name = "sla_policy"
    datamodel = SQLAInterface(SlaPolicy)
    class_permission_name = "SlaPolicy"
    method_permission_name = READ_WRITE_PERMISSIONS
    include_route_methods = {"get", "get_list", "info"}
    list_columns = show_columns = ["id", "name", "ticket_type_id", "priority_id", "first_response_minutes",
                                   "resolution_minutes", "business_hours", "calendar_id", "warn_before_minutes",
                                   "escalate", "active"]
    list_title = show_title = _l("SLA policies")
    label_columns = {**SlaPolicyView.label_columns, "id": _l("ID"), "ticket_type_id": _l("Type"),
                     "priority_id": _l("Priority"), "calendar_id": _l("Working calendar")}


class WorkCalendarApi(ModelRestApi):
    """Read-only working calendars (Admin only)."""

    resource_name = "work_calendar"
    datamodel = SQLAInterface(WorkCalendar)
    class_permission_name = "WorkCalendar"
    method_permission_name = READ_WRITE_PERMISSIONS
    include_route_methods = {"get", "get_list", "info"}
    list_columns = show_columns = ["id", "name", "weekdays", "day_start", "lunch_start", "lunch_end", "day_end",
                                   "is_default"]
    list_title = show_title = _l("Working calendars")
    label_columns = {**WorkCalendarView.label_columns, "id": _l("ID")}
    search_columns = ["name", "weekdays", "is_default"]  # FAB has no filters for time-of-day columns


def register(appbuilder: AppBuilder) -> None:
    """Add Service > SLA policies and Service > Working calendars (Admin only: no role plan
    grants SlaPolicy or WorkCalendar) and their read-only APIs."""
    appbuilder.add_view(SlaPolicyView, "SLA policies", label=_l("SLA policies"), icon="fa-clock-o",
                        **category_args())
    appbuilder.add_view(WorkCalendarView, "Working calendars", label=_l("Working calendars"),
                        icon="fa-calendar", **category_args())
    appbuilder.add_view_no_menu(CalendarDayView)
    appbuilder.add_api(SlaPolicyApi)
    appbuilder.add_api(WorkCalendarApi)
