"""APScheduler: jobs persisted in the application database, started once per deployment.

``run.py`` calls ``start_once``; tests and ``flask`` commands never start it. A file
lock in the instance folder keeps a second process (reloader child, second worker)
from starting another scheduler on the same job table.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from flask import Flask

from app import clock
from app.extensions import db

log = logging.getLogger(__name__)
JOB_TABLE = "apscheduler_jobs"
_app: Flask | None = None
_lock_file: Any = None


@dataclass(frozen=True)
class JobDefinition:
    id: str
    name: str
    func: Callable[[], Any]
    cron: dict




def deactivate_expired_users() -> int:
    from app.services.accounts import deactivate_expired

    with _app.app_context():
        return deactivate_expired()


def purge_departed_users() -> list[str]:
    from app.services.accounts import purge_departed

    with _app.app_context():
        return purge_departed()


def verify_audit_chain() -> bool:
    """Daily check of the audit hash chain; a break becomes a security alert."""
    from app.services.audit import record, verify_chain

    with _app.app_context():
        report = verify_chain(db.session)
        if not report.ok:
            record("audit_chain_broken", None, {"seq": report.broken_seq, "problem": report.problem})
            db.session.commit()
        return report.ok


def run_transfer_schedules() -> list[str]:
    """Every minute: the admins' scheduled folder imports and list exports that are due."""
    from app.services.schedules import run_due

    with _app.app_context():
        return run_due()


JOBS = [
    JobDefinition("deactivate_expired_users", "Deactivate expired accounts", deactivate_expired_users,
                  {"hour": 1, "minute": 5}),
    JobDefinition("purge_departed_users", "Purge accounts deactivated 30+ days ago (records to their manager)",
                  purge_departed_users, {"hour": 1, "minute": 20}),
    JobDefinition("verify_audit_chain", "Verify the audit log hash chain", verify_audit_chain,
                  {"hour": 2, "minute": 0}),
    JobDefinition("run_transfer_schedules", "Scheduled imports and exports (see below)", run_transfer_schedules,
                  {"minute": "*"}),
]


def register(job_id: str, name: str, func: Callable[[], Any], cron: dict) -> None:
    """Add a job defined outside ``app`` (the sync's minute tick); it runs in an app context."""

    def in_app() -> Any:
        with _app.app_context():
            return func()

    in_app.__name__ = in_app.__qualname__ = job_id
    globals()[job_id] = in_app  # APScheduler stores jobs by module-level reference
    if all(job.id != job_id for job in JOBS):
        JOBS.append(JobDefinition(job_id, name, in_app, cron))


def _jobstore(engine: Any = None) -> SQLAlchemyJobStore:
    return SQLAlchemyJobStore(engine=engine or db.engine, tablename=JOB_TABLE)


def start_once(app: Flask) -> BackgroundScheduler | None:
    """Start the scheduler unless another process on this instance already runs it."""
    global _app, _lock_file
    if not app.config.get("SCHEDULER_ENABLED", True):
        return None
    lock_path = os.path.join(app.instance_path, "scheduler.lock")
    os.makedirs(app.instance_path, exist_ok=True)
    _lock_file = open(lock_path, "w")
    try:
        fcntl.flock(_lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log.info("Scheduler already running in another process; not starting a second one.")
        return None
    _app = app
    with app.app_context():
        scheduler = BackgroundScheduler(jobstores={"default": _jobstore()}, timezone=clock.crm_zone())
        for job in JOBS:
            scheduler.add_job(job.func, job_trigger(job), id=job.id, name=job.name,
                              replace_existing=True, coalesce=True, misfire_grace_time=3600)
        scheduler.start()
    log.info("Scheduler started with %d jobs", len(JOBS))
    return scheduler


def job_trigger(job: JobDefinition) -> CronTrigger:
    """The job's cron in the CRM's zone (``CRM_TIMEZONE``): "01:05" is 01:05 there.

    A CronTrigger made without a zone takes the machine's (UTC on a server), whatever
    zone the scheduler has, so every trigger is given the zone here."""
    return CronTrigger(timezone=clock.crm_zone(), **job.cron)


#: The five fields of a crontab line, in order, as APScheduler names them.
CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")


def cron_text(trigger: CronTrigger) -> str:
    """A job's schedule as the five-field cron line people know ("5 1 * * *": 01:05 every
    day, in the CRM's zone), not APScheduler's ``cron[hour='1', minute='5']``. Fields are
    APScheduler's own expressions (``day_of_week`` counts from Monday, as it does)."""
    fields = {field.name: str(field) for field in trigger.fields}
    return " ".join(fields[name] for name in CRON_FIELDS)


def list_jobs() -> list[dict[str, Any]]:
    """Defined jobs with their schedule (``cron_text``) and next run time (from the job
    table if the scheduler ran)."""
    store = _jobstore()
    store.start(None, "default")
    persisted = {job.id: job for job in store.get_all_jobs()}
    rows = []
    for job in JOBS:
        stored = persisted.get(job.id)
        trigger = job_trigger(job)
        next_run = clock.to_local(stored.next_run_time if stored else trigger.get_next_fire_time(None, clock.local_now()))
        rows.append({"id": job.id, "name": job.name, "trigger": cron_text(trigger), "next_run_time": next_run,
                     "persisted": stored is not None})
    return rows
