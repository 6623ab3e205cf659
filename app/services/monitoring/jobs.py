"""Scheduled-job runs (``job_run``): where a job's work actually runs (the task queue's
thread, its Celery worker, or inline), its start, finish, and whether it succeeded. A job
that raises, or whose function returns False (``verify_audit_chain`` finding a break),
failed: the admins are told and the error joins the error log (``where`` = ``job:<id>``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from app.clock import utc_now
from app.extensions import db
from app.models.operations import JobRun
from app.services.monitoring import config, errors

log = logging.getLogger(__name__)


def job_id_of(func: Callable[..., Any]) -> str | None:
    """The scheduled job whose work ``func`` is (``app.scheduler.JOBS``), or None."""
    from app.scheduler import JOBS

    for job in JOBS:
        if job.func is func or (getattr(job.func, "__module__", None) == getattr(func, "__module__", "")
                                and job.func.__qualname__ == getattr(func, "__qualname__", "")):
            return job.id
    return None


def _write(statement: Any) -> int | None:
    """Run ``statement`` in its own transaction; the first column of its RETURNING row, if any."""
    try:
        with db.engine.begin() as conn:
            result = conn.execute(statement)
            return result.scalar() if result.returns_rows else None
    except SQLAlchemyError:
        log.warning("Job run not stored", exc_info=True)
        return None


def run(job_id: str, func: Callable[..., Any], *args: Any) -> Any:
    """Run ``func(*args)`` as job ``job_id`` and record it in ``job_run`` (own connection).
    Re-raises what ``func`` raised; returns what it returned."""
    table = JobRun.__table__
    run_id = _write(insert(table).values(job_id=job_id[:64], started_at=utc_now()).returning(table.c.id))
    try:
        value = func(*args)
    except Exception as exc:
        _finish(job_id, run_id, exc, None)
        raise
    _finish(job_id, run_id, None, value)
    return value


def _finish(job_id: str, run_id: int | None, error: BaseException | None, value: Any) -> None:
    ok = error is None and value is not False
    text = None
    if error is not None:
        kind, message = errors.summary(error)
        text = f"{kind}: {message}"[:512]
        errors.record(f"job:{job_id}", error)
    elif not ok:
        text = "returned False"
    if db.engine.dialect.name == "sqlite":
        db.session.rollback()  # a job that left its transaction open holds SQLite's write lock
    if run_id is not None:
        _write(update(JobRun.__table__).where(JobRun.__table__.c.id == run_id).values(
            finished_at=utc_now(), ok=ok, error=text))
    if not ok:
        alert_failure(job_id, run_id, text or "")


def job_label(job_id: str) -> Any:
    """The job's name as a stored message: each admin reads it in their language (job names
    are in the catalogue as runtime values); the id for a job no longer defined."""
    from flask_babel import lazy_gettext

    from app.scheduler import definition
    from app.services import messages

    try:
        return messages.stored(lazy_gettext(definition(job_id).name))
    except KeyError:
        return job_id


def alert_failure(job_id: str, run_id: int | None, error: str) -> None:
    """Tell the admins that ``job_id`` failed (one notification per run). Never raises."""
    from flask import current_app

    from app.security.rights import admin_ids
    from app.services import notifications

    with current_app.app_context():
        try:
            notifications.notify(config.JOB_FAILED.key, admin_ids(), params={"job": job_label(job_id),
                                                                               "error": error[:200]},
                                 occasion=f"job_failed:{job_id}:{run_id or utc_now().isoformat()}"[:120])
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()
            log.warning("Job failure alert not sent", exc_info=True)
        finally:
            db.session.remove()


def call(func: Callable[..., Any], *args: Any) -> Any:
    """What the task queue calls instead of ``func(*args)``: recorded as a job run when
    ``func`` is a scheduled job's work submitted without arguments, plain otherwise."""
    job_id = job_id_of(func) if not args else None
    if job_id is None:
        return func(*args)
    return run(job_id, func)


def latest(job_id: str) -> JobRun | None:
    """The latest finished run of ``job_id``."""
    return db.session.scalar(select(JobRun).where(JobRun.job_id == job_id, JobRun.finished_at.is_not(None))
                             .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1))
