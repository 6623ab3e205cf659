"""Landing page: what is in the user's scope, and what needs doing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import g
from flask_appbuilder import IndexView, expose
from flask_appbuilder.models.sqla.filters import FilterSmaller
from sqlalchemy import select

from app.clock import local_today
from app.models.customers import Customer, FollowUp
from app.security import alerts
from app.security.data_scope import counting_whole_list, scope_clause, user_scope
from app.services import activities, follow_ups, metrics
from views import dashboards
from views.list_count import capped_count

#: The follow-up list's argument that keeps only next steps still to do (``follow_ups.next_step_open``).
OPEN_ARG = "next_step_open"
#: The follow-up list that the home page's "next step due" link opens.
FOLLOW_UP_VIEW = "FollowUpView"


def due_before(today: date | None = None) -> date:
    """First day that is not yet due: a follow-up is due when its next step date is before it.

    "Due" means on or before ``today`` (overdue included), a day in the CRM's zone
    (``clock.local_today``), as next-step dates are. Said as a strict "before
    tomorrow" because that is the comparison the follow-up list offers (FAB's "Smaller
    than" filter on a date), so the home count and the list it links to are one rule.
    """
    return (today or local_today()) + timedelta(days=1)


def due_list_args(appbuilder: Any, today: date | None = None) -> dict[str, str]:
    """List arguments that show exactly the due follow-ups: ``{"_flt_<n>_next_step_date": ISO date,
    "next_step_open": "1"}`` (the second: their planned activity is not done or cancelled).

    ``<n>`` is the position of "Smaller than" among the list's filters for that column
    (looked up, not assumed). Empty when the list offers no such filter.
    """
    view = next((v for v in appbuilder.baseviews if type(v).__name__ == FOLLOW_UP_VIEW), None)
    choices = view._filters.get_search_filters().get("next_step_date", []) if view is not None else []
    for index, flt in enumerate(choices):
        if isinstance(flt, FilterSmaller):
            return {f"_flt_{index}_next_step_date": due_before(today).isoformat(), OPEN_ARG: "1"}
    return {}


def rep_dashboard(appbuilder: Any, user: Any) -> dict[str, Any]:
    """The rep dashboard on the home page (issue 17), for users with ``can_sales`` on
    "Dashboards": ``{"figures": [metrics.Figure ...], "dashboard_period": "YYYY-MM"}`` (my
    activities today, pipeline by stage, weighted forecast this month, new customers and
    follow-ups this month vs last; this month in the CRM's zone, the user's scope), plus
    ``"manager_dashboard": True`` for users who may open the Sales dashboard. Empty without."""
    found: dict[str, Any] = {}
    if appbuilder.sm.has_access("can_manager", dashboards.VIEW_NAME):
        found["manager_dashboard"] = True
    if not appbuilder.sm.has_access("can_sales", dashboards.VIEW_NAME):
        return found
    filters = metrics.parse_filters({}, user)
    found["figures"] = dashboards.page_figures("sales", user, filters)
    found["dashboard_period"] = dashboards.filter_args(filters)["period"]
    return found


class CrmIndexView(IndexView):
    index_template = "crm/index.html"

    @expose("/")
    def index(self):
        user = getattr(g, "user", None)
        stats = None
        if user is not None and not user.is_anonymous:
            today = local_today()  # the CRM's day: at 23:30 UTC on the 30th it is the 1st in Shanghai
            with counting_whole_list():  # figures up to 1,000: the same work at any size (issue 12)
                customers = capped_count(select(Customer.id).where(
                    scope_clause(user, Customer), Customer.archived_at.is_(None)))
                due = capped_count(select(FollowUp.id).where(
                    scope_clause(user, FollowUp), follow_ups.next_steps_open(due_before(today))))
            stats = {"customers": customers, "due": due, "due_args": due_list_args(self.appbuilder, today),
                     "scope": user_scope(user)}
            if self.appbuilder.sm.has_access("can_read", "Activity"):
                groups = activities.my_open(user, horizon_days=0, limit=20)
                stats["activities_today"], stats["activities_overdue"] = groups["today"], groups["overdue"]
                with counting_whole_list():
                    stats["today_total"] = capped_count(activities.open_due(user, today=True))
                    stats["overdue_total"] = capped_count(activities.open_due(user, today=False))
            if self.appbuilder.sm.has_access("can_read", "SecurityAlert"):
                stats["alerts"] = alerts.recent_count()
            stats.update(rep_dashboard(self.appbuilder, user))
        return self.render_template(self.index_template, appbuilder=self.appbuilder, stats=stats,
                                    json_id=dashboards.json_id)
