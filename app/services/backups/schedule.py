"""The nightly backup (000 §三(一)): one job, ``backup_daily``, ticks every 5 minutes and takes
the CRM-zone day's scheduled backup once the local time has passed ``backup_time`` and no ok
scheduled backup exists for that day (a changed time applies at once; a missed night catches
up), then verifies it (in full for the month's first backup), copies it and prunes."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models.operations import BackupRun
from app.services import settings
from app.services.backups import alerts, archive, maintenance, retention, verifying
from app.services.errors import RuleViolation

SECTION = _l("Backups")
KEEP_DAYS = settings.declare(settings.Setting(
    "backup_keep_days", settings.INT, 30, _l("Keep backups for (days)"),
    _l("Older backups are deleted here and in the second location; the newest good backup is always kept."),
    low=1, high=3650, section=SECTION))
BACKUP_TIME = settings.declare(settings.Setting(
    "backup_time", settings.TEXT, "02:00", _l("Daily backup time (HH:MM)"),
    _l("In the CRM's time zone; a backup missed at that time is taken at the next chance."),
    high=5, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", pattern_message=_l("Write the time as HH:MM, e.g. 02:00."),
    section=SECTION))


def backup_time() -> time:
    """The ``backup_time`` setting as a time of day (CRM zone)."""
    hours, minutes = str(settings.get("backup_time")).split(":")
    return time(int(hours), int(minutes))


def _day_bounds(now_local: datetime) -> tuple[datetime, datetime]:
    start = clock.from_local(datetime.combine(now_local.date(), time(0)))
    end = clock.from_local(datetime.combine(now_local.date() + timedelta(days=1), time(0)))
    return start, end


def done_today(now_local: datetime) -> bool:
    """An ok scheduled backup exists for the CRM-zone day of ``now_local``."""
    start, end = _day_bounds(now_local)
    return db.session.scalar(select(BackupRun.id).where(
        BackupRun.kind == "scheduled", BackupRun.status == "ok",
        BackupRun.started_at >= start, BackupRun.started_at < end).limit(1)) is not None


def next_run(now_local: datetime | None = None) -> datetime:
    """When the next scheduled backup runs (aware, CRM zone): today's ``backup_time`` while
    it is still ahead; ``now_local`` itself when today's is due and not done (the time has
    passed: the next 5-minute tick takes it, see ``due_now``); tomorrow's time once today's
    is done."""
    now_local = now_local or clock.local_now()
    if done_today(now_local):
        day = now_local.date() + timedelta(days=1)
        return clock.to_local(clock.from_local(datetime.combine(day, backup_time())))
    today = clock.to_local(clock.from_local(datetime.combine(now_local.date(), backup_time())))
    return max(today, now_local)


def due_now(now_local: datetime | None = None) -> bool:
    """Today's backup time has passed and today's scheduled backup is not done: the job
    takes it at its next tick (within 5 minutes)."""
    now_local = now_local or clock.local_now()
    return now_local.time() >= backup_time() and not done_today(now_local)


def first_of_month(run: BackupRun) -> bool:
    """No other ok backup was taken earlier in ``run``'s CRM-zone month (a full test is due)."""
    local = clock.to_local(run.started_at)
    start = clock.from_local(datetime(local.year, local.month, 1))
    return db.session.scalar(select(BackupRun.id).where(
        BackupRun.status == "ok", BackupRun.id != run.id, BackupRun.started_at >= start,
        BackupRun.started_at < run.started_at).limit(1)) is None


def after_backup(run: BackupRun) -> None:
    """Verify a finished backup (in full when it is the month's first), alert on a failed
    backup or copy, prune. Commits."""
    if run.status != "ok":
        alerts.backup_problem(run, run.error or "failed", f"backup:{run.id}")
        db.session.commit()
        return
    if run.error:  # the second copy failed
        alerts.backup_problem(run, run.error, f"copy:{run.id}")
        db.session.commit()
    verifying.verify(run, full=first_of_month(run))
    retention.prune()


def run_backup(run_id: int) -> None:
    """Background work of a started backup (the screen's "Back up now"): perform, verify,
    prune."""
    after_backup(archive.perform(run_id))


def run_verify(run_id: int, full: bool = True) -> None:
    """Background work of the screen's "Verify in full"."""
    run = db.session.get(BackupRun, run_id)
    if run is not None:
        verifying.verify(run, full=full)


def backup_daily() -> BackupRun | None:
    """The every-5-minutes tick (job ``backup_daily``): returns the backup taken, else None
    (not due, already done, another backup running, or maintenance)."""
    if maintenance.active():
        return None
    now_local = clock.local_now()
    if now_local.time() < backup_time() or done_today(now_local):
        return None
    try:
        run = archive.create("scheduled")
    except RuleViolation:
        db.session.rollback()
        return None
    after_backup(run)
    return run
