"""Admin page listing scheduled jobs and their next run time."""

from __future__ import annotations

from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l

from app import scheduler


class ScheduledJobsView(BaseView):
    route_base = "/jobs"
    class_permission_name = "ScheduledJobs"
    method_permission_name = {"list": "read"}
    default_view = "list"

    @expose("/")
    @has_access
    def list(self):
        return self.render_template(
            "crm/jobs.html", jobs=scheduler.list_jobs(), title=_l("Scheduled jobs")
        )
