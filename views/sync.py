"""Sync screens (admins): targets with Sync now / Preview, run history, conflicts to settle."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, request, url_for
from flask_appbuilder import action, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from wtforms import SelectField, TextAreaField, ValidationError

from app import scheduler
from app.extensions import db
from app.models.sync import ARCHIVE, ASK, BOTH, GSHEETS, PULL, PUSH, RESTORE, XLSX, SyncConflict, SyncRun, SyncTarget
from app.security import step_up
from app.services import background, message_text, schedules
from app.services.errors import RuleViolation
from app.services.importing import columns
from sync import backends, conflicts, merge, runner, schedule, targets
from sync import records as sync_records
from views import display
from views.base import CrmModelView

CHOICES = {
    "model": [(name, spec.label) for name, spec in columns.MODELS.items()],  # declared types too
    "backend": [(XLSX, _l("Local .xlsx file")), (GSHEETS, _l("Google Sheet"))],
    "direction": [(BOTH, _l("Both ways")), (PUSH, _l("CRM to sheet only")), (PULL, _l("Sheet to CRM only"))],
    "conflict_policy": [(merge.REVIEW, _l("Keep for review")), (merge.APP_WINS, _l("CRM wins")),
                        (merge.SHEET_WINS, _l("Sheet wins")), (merge.NEWEST, _l("Newest change wins"))],
    "deleted_rows": [(ASK, _l("Keep for review")), (RESTORE, _l("Put the row back")),
                     (ARCHIVE, _l("Archive the customer"))],
}


#: Outcomes of a run (``runner``: running, done, stopped, failed) and what started it.
STATUS_LABELS = runner.STATUS_LABELS
TRIGGER_LABELS = {"manual": _l("Sync now"), "preview": _l("Preview"), "schedule": _l("Schedule")}
#: Keys of a run's counts (``sync.plan``, labelled by the runner) and API calls (``sync.backends``).
COUNT_LABELS = runner.COUNT_LABELS
CALL_LABELS = {"read": _l("Reads"), "write": _l("Writes"), "check": _l("Checks before writing")}
#: Coded columns shown by their labels (the form's own choices).
CODE_FORMATTERS = {name: display.labelled(choices) for name, choices in CHOICES.items()}


TARGET_LABELS = {
    "name": _l("Name"), "model": _l("Records"), "backend": _l("Where"), "location": _l("File or sheet address"),
    "worksheet": _l("Worksheet"), "direction": _l("Direction"), "conflict_policy": _l("When both changed"),
    "deleted_rows": _l("Rows deleted in the sheet"), "run_as": _l("Run as"), "cron": _l("Schedule (cron)"),
    "enabled": _l("Enabled"), "max_shrink_percent": _l("Stop if more than this percentage of the rows vanished"),
    "last_run_at": _l("Last run"), "last_status": _l("Last status"), "last_message": _l("Last result"),
    "mapping": _l("Column mapping"), "running_since": _l("Running since"), "sheet_id": _l("Google worksheet id"),
}


def _check_location(form: Any, field: Any) -> None:
    """xlsx: a workbook under CRM_FILES_ROOT (files.checked_path; checked again before every
    read). Google: the sheet's address or key."""
    from app.services import files

    if form.backend.data == XLSX:
        try:
            files.checked_path(field.data or "", kind=files.FILE, suffixes=(".xlsx",))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
    elif not (field.data or "").strip():
        raise ValidationError(str(_l("Give the Google Sheet's address or key.")))


def _check_cron(form: Any, field: Any) -> None:
    try:
        schedules.trigger(field.data or "")
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


scheduler.register("run_sync_targets", "Spreadsheet sync targets that are due", schedule.run_due_targets,
                   {"minute": "*"})


def parse_mapping(text: str | None, model: str | None) -> dict[str, str]:
    """'header = field' lines -> mapping; ``ValueError`` naming a bad line, or an unknown model."""
    if model not in columns.MODELS:
        raise ValueError(str(_l("Pick the records this target syncs.")))
    fields = {f.name for f in sync_records.spec_for(model).fields}
    mapping = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        header, sep, name = line.rpartition("=")
        if not sep or not header.strip() or name.strip() not in fields:
            raise ValueError(str(_l("Line %(n)d: write 'header = field' with one of: %(fields)s.", n=number,
                                    fields=", ".join(sorted(fields)))))
        mapping[header.strip()] = name.strip()
    if mapping and "code" not in mapping.values():
        raise ValueError(str(_l("Map one column to code (the record code).")))
    return mapping


def mapping_text(mapping: dict | None) -> str:
    return "\n".join(f"{header} = {name}" for header, name in (mapping or {}).items())


def _check_mapping(form: Any, field: Any) -> None:
    model = form.model.data if hasattr(form, "model") else "customer"
    if model not in columns.MODELS:
        return  # no records picked (an empty form): the records field says so
    try:
        parse_mapping(field.data, model)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class SyncTargetView(CrmModelView):
    datamodel = SQLAInterface(SyncTarget)
    class_permission_name = "SyncTarget"
    #: FAB's own permission names (can_list, can_add ...), as before this view had a CRM base.
    method_permission_name: dict[str, str] = {}
    base_permissions = None
    list_title = _l("Sync targets")
    show_title = _l("Sync target")
    add_title = _l("Add sync target")
    edit_title = _l("Edit sync target")
    list_columns = ["name", "model", "backend", "location", "worksheet", "direction", "conflict_policy", "run_as",
                    "enabled", "last_run_at", "last_status", "last_message"]
    add_columns = ["name", "model", "backend", "location", "worksheet", "mapping_text", "direction",
                   "conflict_policy", "deleted_rows", "run_as", "cron", "enabled", "max_shrink_percent"]
    edit_columns = add_columns
    show_columns = [c for c in add_columns if c != "mapping_text"] + ["mapping", "last_run_at", "last_status",
                                                                      "last_message"]
    label_columns = TARGET_LABELS
    formatters_columns = {**CODE_FORMATTERS, "last_status": display.labelled(STATUS_LABELS),
                          "mapping": lambda value: mapping_text(value), "last_message": message_text.shown}
    description_columns = {
        "location": _l("xlsx: /path/to/customers.xlsx on the server. Google: the sheet's URL, shared with the "
                       "service account in GOOGLE_SERVICE_ACCOUNT_FILE."),
        "run_as": _l("The sync sees and changes only this user's customers, with their permissions."),
        "worksheet": _l("Its first row holds the headers; a 客户编号 / Customer code column is required."),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        **{name: SelectField(TARGET_LABELS[name], choices=choices) for name, choices in CHOICES.items()},
        "mapping_text": TextAreaField(_l("Column mapping"), validators=[_check_mapping], description=_l(
            "One 'header = field' per line, e.g. 公司 = name. Empty: the importer's aliases match the headers "
            "on the first run and that mapping is kept (a renamed header then stops the run).")),
    }
    validators_columns = {"location": [_check_location], "cron": [_check_cron]}

    def prefill_form(self, form: Any, pk: Any) -> None:
        form.mapping_text.data = mapping_text(self.datamodel.get(pk).mapping)

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self) -> Any:
        return self._step_up_first(self.add_form) or super().add()

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk: Any) -> Any:
        return self._step_up_first(self.edit_form, int(pk) if str(pk).isdigit() else -1) or super().edit(pk)

    def _step_up_first(self, form_class: Any, pk: int | None = None) -> Any:
        """The code a save needs is asked before the form fills the stored target: a refused
        code's attempt is committed, and must not commit the new settings with it. An invalid
        form is left to FAB (it shows the errors and saves nothing)."""
        if request.method != "POST":
            return None
        form = form_class.refresh()
        form._id = pk  # FAB's own trick: the unique name check skips the target being edited
        if not form.validate():
            return None
        submitted = SyncTarget()  # never added to the session
        form.populate_obj(submitted)
        try:
            targets.demand_step_up(submitted, g.user)
        except step_up.StepUpRequired as exc:
            return step_up.refusal(exc)
        return None

    def pre_add(self, item: SyncTarget) -> None:
        item.mapping = parse_mapping(getattr(item, "mapping_text", ""), item.model) or None
        targets.save_target(item, g.user)

    pre_update = pre_add
    related_views: list = []

    def _run(self, target: SyncTarget, dry_run: bool) -> SyncRun:
        try:
            backend = backends.for_target(target)
        except backends.SheetUnavailable as exc:
            flash(str(exc), "danger")
            return None
        return runner.run(target, backend, trigger="preview" if dry_run else "manual", dry_run=dry_run,
                          started_by=g.user)

    @action("sync_now", _l("Sync now"), None, "fa-refresh", multiple=False)
    def sync_now(self, item: Any) -> Any:
        target = item[0] if isinstance(item, list) else item
        if targets.overwrites_app_data(target):
            refusal = step_up.require(targets.SHEET_WINS)
            if refusal is not None:
                return refusal
        try:
            backends.for_target(target)  # a sheet that cannot be opened is said here, not queued
        except backends.SheetUnavailable as exc:
            flash(str(exc), "danger")
            return redirect(url_for("SyncRunView.list"))
        before = db.session.scalar(select(func.max(SyncRun.id)).where(SyncRun.target_id == target.id)) or 0
        background.submit(schedule.run_target, target.id, "manual", g.user.id)
        db.session.expire_all()
        log = db.session.scalar(select(SyncRun).where(SyncRun.target_id == target.id, SyncRun.id > before)
                                .order_by(SyncRun.id.desc()).limit(1))
        if log is None or log.status == "running":  # on a worker: the runs list shows it when it ends
            flash(str(_l("Sync of %(name)s queued; its run appears below.", name=target.name)), "info")
        else:  # ran already (inline mode)
            flash(f"{target.name}: {STATUS_LABELS.get(log.status, log.status)} — {message_text.shown(log.message)}",
                  "success" if log.status == "done" else "danger")
        return redirect(url_for("SyncRunView.list"))

    @action("preview", _l("Preview"), None, "fa-eye", multiple=False)
    def preview(self, item: Any) -> Any:
        target = item[0] if isinstance(item, list) else item
        log = self._run(target, dry_run=True)
        if log is not None:
            flash(str(_l("Preview of %(name)s (nothing written): %(status)s — %(message)s", name=target.name,
                         status=STATUS_LABELS.get(log.status, log.status),
                         message=message_text.shown(log.message))), "info")
        return redirect(url_for("SyncRunView.list"))


class SyncRunView(CrmModelView):
    datamodel = SQLAInterface(SyncRun)
    class_permission_name = "SyncRun"
    base_permissions = ["can_read"]
    method_permission_name = {"list": "read", "show": "read"}
    list_title = _l("Sync runs")
    show_title = _l("Sync run")
    list_columns = ["target", "started_at", "finished_at", "trigger", "dry_run", "status", "counts", "api_calls",
                    "message"]
    show_columns = list_columns
    base_order = ("id", "desc")
    label_columns = {"target": _l("Target"), "started_at": _l("Started"), "finished_at": _l("Finished"),
                     "trigger": _l("Started by"), "dry_run": _l("Preview"), "status": _l("Status"),
                     "counts": _l("Counts"), "api_calls": _l("API calls"), "message": _l("Result")}
    formatters_columns = {"trigger": display.labelled(TRIGGER_LABELS), "status": display.labelled(STATUS_LABELS),
                          "counts": display.name_values(COUNT_LABELS), "api_calls": display.name_values(CALL_LABELS),
                          "message": message_text.shown}


class SyncConflictView(CrmModelView):
    datamodel = SQLAInterface(SyncConflict)
    class_permission_name = "SyncConflict"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"list": "read", "show": "read", "keep_app": "write", "keep_sheet": "write",
                              "action_post": "write"}
    list_title = _l("Sync conflicts")
    show_title = _l("Sync conflict")
    # Values through the model's shown_* (phones masked); never sorted or searched by value.
    list_columns = ["target", "key", "field_label", "shown_base", "shown_app_value", "shown_sheet_value",
                    "created_at", "resolution"]
    show_columns = list_columns + ["resolved_at"]
    search_columns = ["target", "key", "field", "created_at", "resolution"]
    order_columns = ["key", "field", "created_at", "resolution"]
    base_order = ("id", "desc")
    label_columns = {"target": _l("Target"), "key": _l("Customer code"), "field": _l("Field"), "field_label": _l("Field"),
                     "shown_base": _l("Agreed before"), "shown_app_value": _l("In the CRM"),
                     "shown_sheet_value": _l("In the sheet"), "created_at": _l("Found"), "resolution": _l("Kept"),
                     "resolved_at": _l("Settled")}
    formatters_columns = {"resolution": display.labelled({conflicts.KEEP_APP: _l("The CRM value"),
                                                          conflicts.KEEP_SHEET: _l("The sheet value"),
                                                          conflicts.SETTLED: _l("Both sides agree")})}

    def _settle(self, items: Any, choice: str) -> Any:
        for item in items if isinstance(items, list) else [items]:
            try:
                conflicts.resolve(item, choice, g.user)
                db.session.commit()
            except RuleViolation as exc:
                db.session.rollback()
                flash(str(exc), "danger")
        return redirect(request.referrer or url_for("SyncConflictView.list"))

    @action("keep_app", _l("Keep the CRM value"), None, "fa-database")
    def keep_app(self, items: Any) -> Any:
        return self._settle(items, conflicts.KEEP_APP)

    @action("keep_sheet", _l("Keep the sheet value"), None, "fa-table")
    def keep_sheet(self, items: Any) -> Any:
        return self._settle(items, conflicts.KEEP_SHEET)

    @expose("/pending")
    @has_access
    def pending(self) -> Any:
        return redirect(url_for("SyncConflictView.list", _flt_0_resolution=""))
