"""Scheduled imports and exports defined by admins (TransferSchedule), run by the
scheduler's minute tick: a schedule is due when its cron time passed since its last run.

Folder imports: every file dropped in the folder is imported as the run-as user (the
mapping they last confirmed, else the aliases) and moved to ``done/`` or ``failed/``
with its error report beside it. Saved-list exports are written by a runner that the
views register (``register``), because the list screens define what an export holds.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from app.extensions import db
from app.models.base import now
from app.models.org import CrmUser
from app.models.transfers import DONE, FAILED, FOLDER_IMPORT, RUNNING, TransferJob, TransferSchedule
from app.services.importing import columns, jobs, reading

log = logging.getLogger(__name__)
RUNNERS: dict[str, Callable[[TransferSchedule], str]] = {}


def register(kind: str, runner: Callable[[TransferSchedule], str]) -> None:
    RUNNERS[kind] = runner


def trigger(cron: str) -> CronTrigger:
    """The schedule's cron expression (5 fields); ``ValueError`` with a readable message."""
    try:
        return CronTrigger.from_crontab(cron, timezone=current_app.config["SCHEDULER_TIMEZONE"])
    except ValueError as exc:
        raise ValueError(_l("Not a cron schedule (minute hour day month weekday): %(why)s", why=str(exc))) from None


def is_due(schedule: TransferSchedule, at: datetime) -> bool:
    """Whether a cron time fell between the last run (or this minute, if never run) and ``at``.

    Stored times are naive server-local; the cron is read in the scheduler's time zone.
    """
    cron = trigger(schedule.cron)
    at = at.astimezone(cron.timezone)
    since = schedule.last_run_at.astimezone(cron.timezone) if schedule.last_run_at else \
        at.replace(second=0, microsecond=0)
    next_time = cron.get_next_fire_time(None, since)
    return next_time is not None and next_time <= at


def run_due(at: datetime | None = None) -> list[str]:
    """Run every enabled schedule whose time has come; a failure never stops the others."""
    at = at or now()
    done = []
    for schedule in db.session.scalars(select(TransferSchedule).where(TransferSchedule.enabled.is_(True))):
        try:
            due = is_due(schedule, at)
        except ValueError:
            due = False
        if due:
            run(schedule)
            done.append(schedule.name)
    return done


def _claim(schedule_id: int) -> bool:
    """One run at a time per schedule (Run now and the tick): a conditional UPDATE wins once."""
    table = TransferSchedule.__table__
    taken = db.session.execute(update(table).where(
        table.c.id == schedule_id,
        (table.c.last_status.is_(None)) | (table.c.last_status != RUNNING)
        | (table.c.last_run_at < now() - timedelta(minutes=30)),
    ).values(last_status=RUNNING, last_run_at=now())).rowcount
    db.session.commit()
    return taken == 1


def run(schedule: TransferSchedule) -> TransferSchedule:
    """Run one schedule now and store its outcome (last run, status, message)."""
    schedule_id = schedule.id
    if not _claim(schedule_id):
        return db.session.get(TransferSchedule, schedule_id)  # already running: this start does nothing
    try:
        run_as = db.session.get(CrmUser, schedule.run_as_id)
        if run_as is None or not run_as.active:
            raise PermissionError(str(_l("The run-as user is deactivated; pick another user.")))
        message = RUNNERS[schedule.kind](schedule)
        status = DONE
    except Exception as exc:  # shown on the jobs page; the scheduler goes on
        log.exception("Scheduled transfer %s failed", schedule.name)
        db.session.rollback()
        message, status = f"{type(exc).__name__}: {exc}", FAILED
    schedule = db.session.get(TransferSchedule, schedule_id)
    schedule.last_run_at, schedule.last_status, schedule.last_message = now(), status, message[:2000]
    db.session.commit()
    return schedule


def import_folder(schedule: TransferSchedule) -> str:
    """Import every file in the folder; each ends in done/ or failed/ with its report."""
    folder = Path(schedule.path)
    if not folder.is_dir():
        raise ValueError(str(_l("Folder %(path)s does not exist.", path=str(folder))))
    user = db.session.get(CrmUser, schedule.run_as_id)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in reading.SUFFIXES
                   and not p.name.startswith((".", "~$")))
    outcomes = [_import_file(schedule, user, path) for path in files]
    if not outcomes:
        return str(_l("No files to import."))
    return "; ".join(outcomes)


def _import_file(schedule: TransferSchedule, user: Any, path: Path) -> str:
    try:
        job = jobs.create_job(user, schedule.model, path.name, path.read_bytes(), mode=schedule.mode,
                              schedule_id=schedule.id)
    except (reading.UnreadableFile, OSError) as exc:  # too large, not a table, unreadable: set aside
        db.session.rollback()
        _move(path, "failed")
        return f"{path.name}: {exc}"
    db.session.commit()
    job_id = job.id
    try:
        table, mapping = jobs.propose_mapping(job)
        missing = columns.missing_required(columns.MODELS[schedule.model], mapping)
        if missing:
            raise ValueError(str(_l("No column for %(fields)s.", fields=", ".join(str(f.label) for f in missing))))
        job.mapping = mapping
        db.session.commit()
        job = jobs.execute(job.id, commit=True)
    except Exception as exc:  # whatever happens, the file leaves the folder (never imported twice)
        db.session.rollback()
        job = db.session.get(TransferJob, job_id)
        job.status, job.error, job.finished_at = FAILED, str(exc), now()
        db.session.commit()
    target = _move(path, "done" if job.status == DONE else "failed")
    if job.report_path:
        shutil.copy(job.report_path, target / f"{path.stem}-errors.xlsx")
    if job.status != DONE:
        return f"{path.name}: {job.error}"
    return f"{path.name}: {job.created} created, {job.updated} updated, {job.unchanged} unchanged, " \
           f"{job.rejected} rejected"


def _move(path: Path, outcome: str) -> Path:
    target = path.parent / outcome
    target.mkdir(exist_ok=True)
    shutil.move(str(path), target / path.name)
    return target


register(FOLDER_IMPORT, import_folder)
