"""Admin pages: scheduled system jobs, and the scheduled imports/exports admins define."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, url_for
from flask_appbuilder import BaseView, action, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import SelectField, ValidationError

from app import scheduler
from app.extensions import db
from app.models.transfers import FOLDER_IMPORT, LIST_EXPORT, TransferJob, TransferSchedule
from app.services import message_text, messages, schedules
from app.services.importing import columns, engine, jobs
from views import display
from views.base import CrmModelView
from views.imports import MODE_LABELS, STATUS_LABELS

KINDS = [(FOLDER_IMPORT, _l("Import every file dropped in a folder")),
         (LIST_EXPORT, _l("Export a saved list to a file"))]


def model_choices() -> list[tuple[str, Any]]:
    """The records a schedule may import or export: (code, label), as the import offers them."""
    return [(m.name, m.label) for m in columns.MODELS.values()]


#: Coded columns shown by their labels, in lists, pages and the form's choices alike (the
#: records at display time: record types may add import models after this module loads).
CODE_FORMATTERS = {
    "kind": display.labelled(KINDS), "model": lambda code: display.labelled(model_choices())(code),
    "mode": display.labelled(MODE_LABELS), "last_status": display.labelled(STATUS_LABELS),
}


class ScheduledJobsView(BaseView):
    route_base = "/jobs"
    class_permission_name = "ScheduledJobs"
    method_permission_name = {"list": "read"}
    default_view = "list"

    @expose("/")
    @has_access
    def list(self):
        """System jobs, the admins' schedules and their recent runs: statuses by their labels,
        results and errors in the reader's language, times through ``display``."""
        transfers = db.session.scalars(select(TransferSchedule).order_by(TransferSchedule.name)).all()
        runs = db.session.scalars(select(TransferJob).where(TransferJob.schedule_id.isnot(None))
                                  .order_by(TransferJob.id.desc()).limit(30)).all()
        return self.render_template("crm/jobs.html", jobs=scheduler.list_jobs(), transfers=transfers, runs=runs,
                                    scheduler_status=scheduler.status(),
                                    status_labels=STATUS_LABELS, result=message_text.shown,
                                    run_error=lambda run: messages.render(jobs.error_message(run)),
                                    title=_l("Scheduled jobs"))


def _check_cron(form: Any, field: Any) -> None:
    try:
        schedules.trigger(field.data or "")
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _check_path(form: Any, field: Any) -> None:
    """The folder or file must lie under CRM_FILES_ROOT (checked again before every run)."""
    try:
        schedules.checked_location(form.kind.data, field.data)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class TransferScheduleView(CrmModelView):
    """Admins define scheduled folder imports and saved-list exports; runs are listed below.

    On the CRM base view: refused list arguments, unknown actions and FAB's file download
    route are messages, not 500s."""

    datamodel = SQLAInterface(TransferSchedule)
    class_permission_name = "TransferSchedule"
    #: FAB's own permission names (can_list, can_add ...), as before this view had a CRM base.
    method_permission_name: dict[str, str] = {}
    base_permissions = None
    list_title = _l("Scheduled imports and exports")
    show_title = _l("Scheduled import or export")
    add_title = _l("Add scheduled import or export")
    edit_title = _l("Edit scheduled import or export")
    list_columns = ["name", "kind", "model", "cron", "path", "run_as", "enabled", "last_run_at", "last_status",
                    "last_message"]
    #: Not ``jobs``: its filter would list every run (``TransferJob.__repr__``) in a dropdown.
    search_columns = ["name", "kind", "model", "cron", "path", "mode", "run_as", "enabled", "last_run_at",
                      "last_status"]
    add_columns = ["name", "kind", "model", "cron", "path", "mode", "filters", "columns", "run_as", "enabled"]
    edit_columns = add_columns
    show_columns = list_columns + ["mode", "filters", "columns"]
    label_columns = {
        "name": _l("Name"), "kind": _l("Kind"), "model": _l("Records"), "cron": _l("Schedule (cron)"),
        "path": _l("Folder or file"), "mode": _l("Import mode"), "filters": _l("Saved list URL"),
        "columns": _l("Columns"), "run_as": _l("Run as"), "enabled": _l("Enabled"), "last_run_at": _l("Last run"),
        "last_status": _l("Last status"), "last_message": _l("Last result"), "jobs": _l("Runs"),
    }
    formatters_columns = {**CODE_FORMATTERS, "last_message": message_text.shown}
    description_columns = {
        "cron": _l("Five fields: minute hour day month weekday, e.g. */15 * * * * or 0 7 * * 1-5."),
        "path": _l("Import: a folder (processed files move to done/ or failed/ beside their error report). "
                   "Export: the .xlsx or .csv file to write. Both under the server's files folder "
                   "(CRM_FILES_ROOT); a relative path is taken in it."),
        "filters": _l("Export: copy the list's address from the browser after filtering, e.g. "
                      "/customerview/list/?_flt_0_level=1. Empty = the whole list."),
        "columns": _l("Export: column names separated by commas (default: the list's columns)."),
        "run_as": _l("The job sees and changes only this user's data scope."),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField(_l("Kind"), choices=KINDS),
        "model": SelectField(_l("Records"), choices=model_choices()),
        "mode": SelectField(_l("Import mode"), choices=[(m, MODE_LABELS.get(m, m)) for m in engine.MODES],
                            default=engine.UPSERT),
    }
    validators_columns = {"cron": [_check_cron], "path": [_check_path]}
    base_order = ("name", "asc")

    @action("run_now", _l("Run now"), _l("Run the selected schedules now?"), "fa-play")
    def run_now(self, items: Any) -> Any:
        for item in items if isinstance(items, list) else [items]:
            done = schedules.run(item)
            status = STATUS_LABELS.get(done.last_status, done.last_status)
            flash(f"{done.name}: {status} — {message_text.shown(done.last_message)}",
                  "success" if done.last_status == "done" else "danger")
        return redirect(url_for("TransferScheduleView.list"))
