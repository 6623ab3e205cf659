"""Large list exports as background jobs (progress page, then download), and the runner
that scheduled saved-list exports share: the list view itself, as its user, builds the
rows, so scope, filters, columns and masking are exactly those of the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, jsonify, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l

from app.clock import utc_now
from app.extensions import appbuilder, db
from app.models.base import acting_user_id
from app.models.org import CrmUser
from app.models.transfers import CANCELLED, DONE, EXPORT, FAILED, LIST_EXPORT, QUEUED, TransferJob, TransferSchedule
from app.security.rights import user_may
from app.services import background, exporting, messages, schedules, tasks
from app.services.background import folder
from app.services.importing import jobs
from views.base import list_arg_problems


def start_export(view: Any, fmt: str, filename: str, unmasked: frozenset[str], count: int) -> Any:
    """Queue the list as shown (this request's URL) and send the user to its progress page."""
    job = TransferJob(kind=EXPORT, model=view.datamodel.obj.__name__, user_id=g.user.id,
                      filename=f"{filename}.{fmt}", total_rows=count, status=QUEUED, lease_until=tasks.queued_until(),
                      options={"view": type(view).__name__, "path": request.path,
                               "query": request.query_string.decode(), "unmasked": sorted(unmasked), "fmt": fmt})
    db.session.add(job)
    db.session.commit()
    background.submit(run_export, job.id)
    return redirect(url_for("ExportView.job", job_id=job.id))


def _view(name: str) -> Any:
    for view in appbuilder.baseviews:
        if type(view).__name__ == name:
            return view
    raise LookupError(name)


def run_export(job_id: int, target: str | None = None) -> TransferJob:
    """Write one export job's file (to ``target`` or the instance exports folder).

    A delivery that cannot claim the job (``tasks.claim``) does nothing; a second delivery
    writes the file again from scratch (a half-written one is never seen: ``.part``)."""
    return tasks.run_claimed(job_id, lambda token: _run_export(job_id, token, target))


def _run_export(job_id: int, token: str, target: str | None) -> TransferJob:
    job = db.session.get(TransferJob, job_id)
    user = db.session.get(CrmUser, job.user_id)
    options = dict(job.options or {})
    job.started_at = utc_now()
    db.session.commit()
    path = Path(target) if target else folder("exports") / f"export-{job_id}.{options['fmt']}"
    partial = path.with_name(path.name + ".part")
    token_user = acting_user_id.set(user.id)
    try:
        with current_app.test_request_context(options["path"], query_string=options["query"]):
            g.user = user
            view = _view(options["view"])
            if not user_may(user, "can_export", view.class_permission_name):  # a schedule's run-as user too
                raise PermissionError(_l("%(user)s may not export this list.", user=user.username))
            tasks.check_cancel(job_id)
            header, count, rows = view.export_table(frozenset(options.get("unmasked", [])), options.get("columns"))

            def progress(written: int) -> None:
                tasks.check_cancel(job_id)
                tasks.heartbeat(job_id, token, written, count)

            written = exporting.write_file(partial, options["fmt"], header, rows, progress=progress)
            partial.replace(path)  # readers never see a half-written file
            job = db.session.get(TransferJob, job_id)
            job.processed_rows = job.total_rows = written
            job.stored_path, job.status, job.finished_at, job.lease_until = str(path), DONE, utc_now(), None
            exporting.record(job.model, options["fmt"], written, options.get("unmasked", []), user=user, job_id=job_id)
            db.session.commit()
    except tasks.LeaseLost:
        db.session.rollback()  # another delivery writes the file
        job = db.session.get(TransferJob, job_id)
    except Exception as exc:
        db.session.rollback()
        partial.unlink(missing_ok=True)
        job = db.session.get(TransferJob, job_id)
        job.finished_at, job.lease_until = utc_now(), None
        if isinstance(exc, tasks.Cancelled):
            job.status = CANCELLED
            schedules.store_failure(job, messages.stored(_l("Cancelled; no file was written.")))
        else:
            job.status = FAILED
            schedules.store_failure(job, schedules.failure_message(exc))  # ListRefused is a ValueError
        db.session.commit()
    finally:
        acting_user_id.reset(token_user)
    return job


def _resume(job: TransferJob) -> tuple[Any, tuple]:
    """How the sweep runs a stalled export again (to its schedule's file, if it has one)."""
    return run_export, (job.id, (job.options or {}).get("target"))


tasks.register_resumer(EXPORT, _resume)


#: Saved-list exports: model -> the list screen that defines its rows and columns.
LIST_VIEWS = {"customer": ("CustomerView", "/customerview/list/"), "follow_up": ("FollowUpView", "/followupview/list/")}


def _saved_columns(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def saved_list_problems(model: str, url: str | None, columns: str | None = None) -> list[str]:
    """What a saved list (a schedule's list address and columns) asks that its list refuses.

    The address must be the model's list (``LIST_VIEWS``) with arguments the list accepts
    (``views.base.list_arg_problems``: no order or filter on masked or unlisted columns);
    the columns must be the list's own. Returns the messages (empty: fine). Call it when
    a schedule is saved; ``export_saved_list`` calls it again before each run.
    """
    if model not in LIST_VIEWS:
        return [str(_l("Only customer and follow-up lists can be exported."))]
    view_name, default_path = LIST_VIEWS[model]
    view, parts = _view(view_name), urlsplit((url or "").strip())
    problems = []
    if parts.path and parts.path.rstrip("/") != default_path.rstrip("/"):
        problems.append(str(_l("Give the address of the list %(path)s (with its filters).", path=default_path)))
    if not hasattr(view, "export_table"):
        return [*problems, str(_l("This list cannot be exported."))]
    with current_app.test_request_context(default_path, query_string=parts.query):
        problems += list_arg_problems(view, request.args)[0]
    unknown = [c for c in _saved_columns(columns) if c not in view.list_columns]
    if unknown:
        problems.append(str(_l("Unknown columns: %(names)s.", names=", ".join(unknown))))
    return problems


def export_saved_list(schedule: TransferSchedule) -> messages.Message:
    """Scheduled export: the saved list (filters from its URL, chosen columns) as its run-as user.

    Returns what was written; raises ``schedules.RunFailed`` with the messages of
    ``saved_list_problems`` (nothing is written) or the export's failure."""
    with messages.capturing() as capture:  # only the checks' messages: nothing is stored in this window
        problems = [capture.stored(problem) for problem in
                    saved_list_problems(schedule.model, schedule.filters, schedule.columns)]
    if problems:
        raise schedules.RunFailed(messages.concat([part for index, problem in enumerate(problems)
                                                   for part in ((" " if index else ""), problem)]))
    view_name, default_path = LIST_VIEWS[schedule.model]
    parts = urlsplit((schedule.filters or "").strip())
    target = schedules.checked_location(schedule.kind, schedule.path)  # write where the check looked
    fmt = "csv" if target.suffix.lower() == ".csv" else "xlsx"
    job = TransferJob(kind=EXPORT, model=schedule.model, user_id=schedule.run_as_id, schedule_id=schedule.id,
                      filename=target.name, status=QUEUED, lease_until=tasks.queued_until(),
                      options={"view": view_name, "path": default_path, "query": parts.query, "target": str(target),
                               "unmasked": [], "fmt": fmt, "columns": _saved_columns(schedule.columns) or None})
    db.session.add(job)
    db.session.commit()
    job = run_export(job.id, target=str(target))
    if job.status != DONE:
        raise schedules.RunFailed(jobs.error_message(job))
    return messages.stored(_l("%(n)d rows written to %(path)s", n=job.processed_rows, path=str(target)))


schedules.register(LIST_EXPORT, export_saved_list)


class ExportView(BaseView):
    route_base = "/exports"
    class_permission_name = "Export"
    method_permission_name = {"job": "read", "progress": "read", "download": "read", "cancel": "read"}
    base_permissions = ["can_read"]

    def _job(self, job_id: int) -> TransferJob:
        job = db.session.get(TransferJob, job_id)
        if job is None or job.kind != EXPORT or job.user_id != g.user.id:
            abort(404)
        return job

    @expose("/<int:job_id>")
    @has_access
    def job(self, job_id: int) -> Any:
        job = self._job(job_id)
        return self.render_template("crm/export_job.html", job=job, title=_l("Export %(file)s", file=job.filename),
                                    error=messages.render(jobs.error_message(job)))

    @expose("/<int:job_id>/progress")
    @has_access
    def progress(self, job_id: int) -> Any:
        job = self._job(job_id)  # the failure in the reader's language, as the page shows it
        return jsonify({**background.progress(job), "error": messages.render(jobs.error_message(job)) or None})

    @expose("/<int:job_id>/cancel", methods=["POST"])
    @has_access
    def cancel(self, job_id: int) -> Any:
        """Stop the export from any web worker (``tasks.request_cancel``)."""
        job = self._job(job_id)
        if tasks.request_cancel(job.id, g.user):
            flash(str(_l("Cancel requested: the export stops within a few seconds.")), "info")
        else:
            flash(str(_l("The export has already ended.")), "warning")
        return redirect(url_for("ExportView.job", job_id=job.id))

    @expose("/<int:job_id>/download")
    @has_access
    def download(self, job_id: int) -> Any:
        job = self._job(job_id)
        if job.status != DONE or not job.stored_path or not Path(job.stored_path).exists():
            abort(404)
        fmt = job.options["fmt"]
        return send_file(job.stored_path, mimetype=exporting.FORMATS[fmt], as_attachment=True,
                         download_name=job.filename)
