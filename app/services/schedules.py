"""Scheduled imports and exports defined by admins (TransferSchedule), run by the
scheduler's minute tick: a schedule is due when its cron time passed since its last run.

Folder imports: every file dropped in the folder is imported as the run-as user (the
mapping they last confirmed, else the aliases) and moved to ``done/`` or ``failed/``
with its error report beside it. Saved-list exports are written by a runner that the
views register (``register``), because the list screens define what an export holds.

A schedule's folder or file must lie under the configured roots (``files.checked_path``):
checked when the schedule is saved and again before every run, so a path stored before
that rule (or a link changed since) fails the run with a message. Folder imports read and
move regular files only: never a symlink, a hard-linked file or anything that became one
after the listing (the file is opened without following links).

A run's result (``last_message``) is read later by anyone, and the scheduler has no reader's
language: runners return a ``messages.Message``, stored with ``message_text.to_column`` and
rendered in the reader's language.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from app.clock import as_utc, crm_zone, utc_now
from app.extensions import db
from app.models.org import CrmUser
from app.models.transfers import DONE, FAILED, FOLDER_IMPORT, RUNNING, TransferJob, TransferSchedule
from app.services import files, message_text, messages
from app.services.importing import columns, jobs, reading
from app.services.importing.bounds import read_at_most

log = logging.getLogger(__name__)
RUNNERS: dict[str, Callable[[TransferSchedule], messages.Message]] = {}
#: What a scheduled export may write.
EXPORT_SUFFIXES = (".xlsx", ".csv")


def checked_location(kind: str, raw: str | None) -> Path:
    """The folder (folder import) or file (list export) a schedule names, resolved under the
    configured roots; ``ValueError`` with a translated message otherwise (files.checked_path)."""
    if kind == FOLDER_IMPORT:
        return files.checked_path(raw or "", kind=files.FOLDER)
    return files.checked_path(raw or "", kind=files.FILE, suffixes=EXPORT_SUFFIXES)


class RunFailed(Exception):
    """A run that cannot go on; ``message`` (a ``messages.Message``) says why, in any language."""

    def __init__(self, message: messages.Message) -> None:
        super().__init__(messages.render(message))
        self.message = message


def register(kind: str, runner: Callable[[TransferSchedule], messages.Message]) -> None:
    """``runner(schedule)`` runs a schedule of ``kind`` and returns its result; it raises
    ``RunFailed`` (or ``ValueError``/``PermissionError`` with our message) when it fails."""
    RUNNERS[kind] = runner


def trigger(cron: str) -> CronTrigger:
    """The schedule's cron expression (5 fields) in the CRM's zone; ``ValueError`` with a readable message."""
    try:
        return CronTrigger.from_crontab(cron, timezone=crm_zone())
    except ValueError as exc:
        raise ValueError(_l("Not a cron schedule (minute hour day month weekday): %(why)s", why=str(exc))) from None


def is_due(schedule: TransferSchedule, at: datetime) -> bool:
    """Whether a cron time fell between the last run (or this minute, if never run) and ``at``.

    The cron is read in the CRM's zone (``0 7 * * *`` is 07:00 there); ``at`` and the stored
    last run are instants (aware; a naive ``at`` is taken as UTC), compared in that zone.
    """
    cron = trigger(schedule.cron)
    at = as_utc(at).astimezone(cron.timezone)
    since = as_utc(schedule.last_run_at).astimezone(cron.timezone) if schedule.last_run_at else \
        at.replace(second=0, microsecond=0)
    next_time = cron.get_next_fire_time(None, since)
    return next_time is not None and next_time <= at


def run_due(at: datetime | None = None) -> list[str]:
    """Run every enabled schedule whose time has come; a failure never stops the others."""
    at = at or utc_now()
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
        | (table.c.last_run_at < utc_now() - timedelta(minutes=30)),
    ).values(last_status=RUNNING, last_run_at=utc_now())).rowcount
    db.session.commit()
    return taken == 1


def run(schedule: TransferSchedule) -> TransferSchedule:
    """Run one schedule now and store its outcome (last run, status, message)."""
    schedule_id = schedule.id
    if not _claim(schedule_id):
        return db.session.get(TransferSchedule, schedule_id)  # already running: this start does nothing
    try:
        run_as = db.session.get(CrmUser, schedule.run_as_id)
        if run_as is None or not run_as.is_active:  # expired counts as deactivated
            raise PermissionError(_l("The run-as user is deactivated; pick another user."))
        checked_location(schedule.kind, schedule.path)  # again at run time: stored values predate the rule
        message = RUNNERS[schedule.kind](schedule)
        status = DONE
    except Exception as exc:  # shown on the jobs page; the scheduler goes on
        log.exception("Scheduled transfer %s failed", schedule.name)
        db.session.rollback()
        message, status = failure_message(exc), FAILED
    schedule = db.session.get(TransferSchedule, schedule_id)
    schedule.last_run_at, schedule.last_status = utc_now(), status
    schedule.last_message = message_text.to_column(message, 2000)
    db.session.commit()
    return schedule


def failure_message(exc: BaseException) -> messages.Message:
    """Why a run failed: our own messages as they are (ids kept when raised with a lazy
    string or as ``RunFailed``), anything else with its class name (a crash)."""
    if isinstance(exc, RunFailed):
        return exc.message
    if isinstance(exc, (ValueError, PermissionError)):
        return messages.stored(exc)
    return f"{type(exc).__name__}: {exc}"


def import_folder(schedule: TransferSchedule) -> messages.Message:
    """Import every file in the folder; each ends in done/ or failed/ with its report.

    Links are listed as skipped, never read or moved (a link could point anywhere)."""
    folder = checked_location(FOLDER_IMPORT, schedule.path)
    user = db.session.get(CrmUser, schedule.run_as_id)
    outcomes = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in reading.SUFFIXES or path.name.startswith((".", "~$")):
            continue
        if not _plain_file(path):
            if path.is_symlink() or path.is_file():
                outcomes.append(messages.stored(_l("%(file)s: skipped (a link is never read or moved).",
                                                   file=path.name)))
            continue
        outcomes.append(_import_file(schedule, user, path))
    if not outcomes:
        return messages.stored(_l("No files to import."))
    return messages.concat([part for index, outcome in enumerate(outcomes)
                            for part in (("; " if index else ""), outcome)])


def _plain_file(path: Path) -> bool:
    """A regular file that is not a symlink and has no other name (hard link)."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def _read_plain(path: Path, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of a regular file, opened without following a link (the
    file may have been swapped for one since the listing)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    handle = os.open(path, flags)
    with os.fdopen(handle, "rb") as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(_l("not a regular file"))
        return read_at_most(stream, limit)


def _import_file(schedule: TransferSchedule, user: Any, path: Path) -> messages.Message:
    """Import one file of the folder; its outcome ("file: 1 created, ...", or why it failed)."""
    try:
        data = _read_plain(path, current_app.config["CRM_IMPORT_MAX_BYTES"])
        job = jobs.create_job(user, schedule.model, path.name, data, mode=schedule.mode,
                              schedule_id=schedule.id)
    except (reading.UnreadableFile, OSError) as exc:  # too large, not a table, unreadable: set aside
        db.session.rollback()
        if not path.is_symlink():  # swapped for a link since the listing: left alone
            _move(path, "failed")
        return messages.concat([f"{path.name}: ", messages.stored(exc)])
    db.session.commit()
    job_id = job.id
    try:
        table, mapping = jobs.propose_mapping(job)
        missing = columns.missing_required(columns.MODELS[schedule.model], mapping)
        if missing:
            raise ValueError(_l("No column for %(fields)s.", fields=", ".join(str(f.label) for f in missing)))
        job.mapping = mapping
        db.session.commit()
        job = jobs.execute(job.id, commit=True)
    except Exception as exc:  # whatever happens, the file leaves the folder (never imported twice)
        db.session.rollback()
        job = db.session.get(TransferJob, job_id)
        job.status, job.finished_at = FAILED, utc_now()
        store_failure(job, failure_message(exc))
        db.session.commit()
    target = _move(path, "done" if job.status == DONE else "failed")
    if job.report_path:
        _copy_into(Path(job.report_path), target, f"{path.stem}-errors.xlsx")
    if job.status != DONE:
        return messages.concat([f"{path.name}: ", jobs.error_message(job)])
    return messages.stored(_l("%(file)s: %(created)d created, %(updated)d updated, %(unchanged)d unchanged, "
                              "%(rejected)d rejected", file=path.name, created=job.created, updated=job.updated,
                              unchanged=job.unchanged, rejected=job.rejected))


def store_failure(job: TransferJob, message: messages.Message) -> None:
    """A job's failure as the import keeps it (``jobs.error_message`` reads the pair back):
    the message for readers in any language, ``job.error`` in the default language."""
    job.error = messages.render(message, messages.default_locale())[:2000]
    job.options = {**(job.options or {}), jobs.ERROR_KEY: {"text": job.error, "message": message}}


def _move(path: Path, outcome: str) -> Path:
    """Move a file into done/ or failed/ beside it. The folder is checked like the schedule's
    (a done/ linking out of the roots is refused) and the move is a rename, which replaces
    a link found at the destination instead of following it."""
    target = path.parent / outcome
    target.mkdir(exist_ok=True)
    target = files.checked_path(str(target), kind=files.FOLDER)
    try:
        os.replace(path, target / path.name)
    except FileNotFoundError:  # taken away since the listing: nothing to move, the other files go on
        pass
    return target


def _copy_into(source: Path, folder: Path, name: str) -> None:
    """Copy ``source`` to ``folder/name`` through a temp file and a rename (never writing
    through a link planted at ``name``)."""
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out)
        os.replace(temp, folder / name)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


register(FOLDER_IMPORT, import_folder)
