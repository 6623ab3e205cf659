"""Organisation → Backups (``/backups/``, Admin only; 000 §三(一), 001 五): the list of backups
with their verification, "Back up now", "Verify in full", download (sensitive, audited) and
restore (sensitive: a TOTP code on the form; a safety backup is taken first).

Backups and verifications run on the task queue (the page shows "running"); a restore runs
in the request, bounded by the maintenance flag that makes every other request wait."""

from __future__ import annotations

import json
from typing import Any

from flask import flash, g, redirect, request, send_file, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models.operations import BackupRun, RestoreRun
from app.security import step_up
from app.services import audit, background
from app.services import backups as service
from app.services.backups import archive, common, restoring, schedule, verifying
from app.services.errors import RuleViolation
from views import display

DOWNLOAD = step_up.declare("backup.download", _l("Download a backup (all data, unmasked)"),
                           _l("Organisation > Backups"))
PAGE_SIZE = 100
KIND_LABELS = {"scheduled": _l("Scheduled"), "manual": _l("Manual"), "safety": _l("Safety (before a restore)")}
STATUS_LABELS = {"running": _l("Running"), "ok": _l("OK"), "failed": _l("Failed"), "passed": _l("Passed")}
CHECK_LABELS = {"checksum": _l("Checksum"), "archive": _l("Archive"), "integrity": _l("Database integrity"),
                "migrated": _l("Migrated to the current version"), "row_counts": _l("Row counts"),
                "audit_chain": _l("Audit chain"), "files": _l("Files"), "restore": _l("Restore into a scratch database")}


def last_night() -> BackupRun | None:
    """The newest scheduled backup (what the header's green/red light is about)."""
    return db.session.scalars(select(BackupRun).where(BackupRun.kind == "scheduled")
                              .order_by(BackupRun.started_at.desc()).limit(1)).first()


def header() -> dict[str, Any]:
    """Last night's backup, the next scheduled time (in the company's date format; "due
    now" when the day's time has passed and its backup is not done), the folders and their
    free space."""
    copy = common.copy_dir()
    upcoming = str(_l("due now, within 5 minutes")) if schedule.due_now() else display.shown_time(schedule.next_run())
    return {"last": last_night(), "next": upcoming,
            "dir": common.backup_dir(), "dir_free": common.free_bytes(common.backup_dir()),
            "copy_dir": copy, "copy_free": common.free_bytes(copy)}


def checks_of(run: BackupRun) -> list[dict[str, Any]]:
    """The latest verification's checks of ``run`` (label, ok, detail), [] if none; the
    details are stored language-neutral and read here in the reader's language."""
    if not run.verifications:
        return []
    latest = run.verifications[-1]
    items = json.loads(latest.checks or "[]")
    return [{**item, "label": CHECK_LABELS.get(item["key"], item["key"]), "detail": verifying.shown(item)}
            for item in items]


def erasures_after(run: BackupRun) -> int:
    """How many personal-data erasures were made after ``run`` was taken (a restore of it
    applies them again)."""
    manifest = json.loads(run.manifest or "{}")
    return len(restoring.erasures_after(restoring.created_at(manifest, run.started_at)))


def size_text(value: int | None) -> str:
    """Bytes as KB/MB/GB (one decimal)."""
    if value is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def reattach_user(user_id: int) -> None:
    """After a restore the request's user belongs to a closed session: load it again from
    the restored database (logged out when the backup does not know it)."""
    from flask_login import logout_user

    from app.models.org import CrmUser

    user = db.session.get(CrmUser, user_id)
    if user is None:
        g.user = None
        logout_user()
        return
    g.user = g._login_user = user


class BackupsView(BaseView):
    """The backups page and its actions."""

    route_base = "/backups"
    class_permission_name = "Backups"
    method_permission_name = {"index": "read", "backup_now": "write", "verify_full": "write",
                              "download": "write", "restore": "write"}
    base_permissions = ["can_read", "can_write"]
    default_view = "index"

    def _back(self) -> Any:
        return redirect(url_for(f"{self.endpoint}.index"))

    def _run(self, pk: int) -> BackupRun | None:
        return db.session.get(BackupRun, pk)

    @expose("/")
    @has_access
    def index(self) -> Any:
        """The list, newest first, with the header."""
        runs = db.session.scalars(select(BackupRun).order_by(BackupRun.started_at.desc(), BackupRun.id.desc())
                                  .limit(PAGE_SIZE)).all()
        restores = db.session.scalars(select(RestoreRun).order_by(RestoreRun.started_at.desc()).limit(10)).all()
        return self.render_template("crm/backups.html", runs=runs, restores=restores, head=header(),
                                    kinds=KIND_LABELS, statuses=STATUS_LABELS, checks_of=checks_of,
                                    size_text=size_text, shown=display.shown_time, title=_l("Backups"))

    @expose("/backup", methods=["POST"])
    @has_access
    def backup_now(self) -> Any:
        """Start a manual backup on the task queue (verified afterwards)."""
        try:
            run = archive.start("manual", g.user)
        except RuleViolation as exc:
            flash(exc.errors["backup"], "warning")
            return self._back()
        background.submit(schedule.run_backup, run.id)
        flash(str(_l("The backup has started; this page shows it as running until it is done.")), "info")
        return self._back()

    @expose("/verify/<int:pk>", methods=["POST"])
    @has_access
    def verify_full(self, pk: int) -> Any:
        """Start a full verification (database and files) of one backup on the task queue."""
        run = self._run(pk)
        if run is None or run.status != "ok" or run.removed_at is not None:
            flash(str(_l("That backup cannot be verified (not finished, or removed).")), "warning")
            return self._back()
        background.submit(schedule.run_verify, run.id, True)
        flash(str(_l("The full verification has started.")), "info")
        return self._back()

    @expose("/download/<int:pk>")
    @has_access
    @step_up.sensitive(DOWNLOAD)
    def download(self, pk: int) -> Any:
        """Send the archive (audited ``backup_downloaded``)."""
        run = self._run(pk)
        path = common.backup_dir() / (run.file_name or "") if run is not None else None
        if run is None or run.status != "ok" or run.removed_at is not None or not path.is_file():
            flash(str(_l("That backup file is not available.")), "warning")
            return self._back()
        audit.record("backup_downloaded", run, {"file": run.file_name})
        db.session.commit()
        return send_file(path, mimetype="application/gzip", as_attachment=True, download_name=run.file_name)

    @expose("/restore/<int:pk>", methods=["GET", "POST"])
    @has_access
    def restore(self, pk: int) -> Any:
        """GET: what a restore does and the form (confirm + code); POST: restore now."""
        run = self._run(pk)
        if run is None or run.status != "ok" or run.removed_at is not None:
            flash(str(_l("That backup cannot be restored (not finished, or removed).")), "warning")
            return self._back()
        error = None
        if request.method == "POST":
            if request.form.get("confirm") != "yes":
                error = str(_l("Tick the box to confirm that the current data will be replaced."))
            else:
                refusal = step_up.require(service.RESTORE)
                if refusal is not None:
                    return refusal
                user_id = g.user.id
                try:
                    row = service.restore(run, g.user, source="web")
                except RuleViolation as exc:
                    error = exc.errors.get("backup") or str(exc)
                    reattach_user(user_id)
                    run = self._run(pk)
                else:
                    reattach_user(user_id)
                    flash(str(_l("The backup has been restored. A safety backup of the data before it is listed.")),
                          "success")
                    flash(str(_l("Personal-data erasures made after the backup, applied again: %(count)s.",
                                 count=getattr(row, "erasures_reapplied", 0))), "info")
                    return self._back()
        page = self.render_template("crm/backups_restore.html", run=run, error=error, shown=display.shown_time,
                                    erasures=erasures_after(run), code_field=step_up.CODE_FIELD,
                                    title=_l("Restore a backup"))
        return (page, 400) if error else page


def register(appbuilder: AppBuilder) -> None:
    """Add *Organisation → Backups* (Admin only: no role but Admin is granted it)."""
    appbuilder.add_view(BackupsView, "Backups", label=_l("Backups"), icon="fa-database",
                        category="Organisation", category_label=_l("Organisation"), category_icon="fa-users")
