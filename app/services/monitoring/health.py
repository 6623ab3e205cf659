"""The system health page's figures (000 §三(二)): failed logins, failed jobs, transfers and
syncs with errors, errors grouped for the weekly review, the audit chain's last check.
Online users are in ``online``, response times in ``responses``, storage in ``storage``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.clock import utc_now
from app.extensions import db
from app.models.audit import AuditLog
from app.models.operations import ErrorEvent, JobRun
from app.models.sync import SyncRun
from app.models.transfers import FAILED, TransferJob
from app.services.monitoring import jobs

LOGIN_FAILED = "login_failed"
AUDIT_JOB = "verify_audit_chain"


def failed_logins(hours: int = 24, now: datetime | None = None) -> int:
    """Wrong passwords (audit ``login_failed``) in the last ``hours``."""
    since = (now or utc_now()) - timedelta(hours=hours)
    return db.session.scalar(select(func.count(AuditLog.id)).where(
        AuditLog.action == LOGIN_FAILED, AuditLog.created_at >= since)) or 0


def failed_jobs(since: datetime, until: datetime | None = None) -> list[JobRun]:
    """Scheduled-job runs that failed in the period, newest first (at most 50)."""
    query = select(JobRun).where(JobRun.ok.is_(False), JobRun.started_at >= since)
    if until is not None:
        query = query.where(JobRun.started_at < until)
    return list(db.session.scalars(query.order_by(JobRun.started_at.desc()).limit(50)))


def transfer_errors(since: datetime) -> dict[str, int]:
    """Imports, exports (failed ``TransferJob``s or imports with rejected rows) and sync
    runs (failed or stopped) with errors since ``since``: kind -> count."""
    rows = db.session.execute(select(TransferJob.kind, func.count(TransferJob.id)).where(
        TransferJob.created_at >= since, (TransferJob.status == FAILED) | (TransferJob.rejected > 0))
        .group_by(TransferJob.kind)).all()
    found = {kind: int(n) for kind, n in rows}
    found["sync"] = db.session.scalar(select(func.count(SyncRun.id)).where(
        SyncRun.started_at >= since, SyncRun.status.in_(("failed", "stopped")))) or 0
    return found


@dataclass
class ErrorGroup:
    """Errors of one ``kind`` at one ``where``: how many, the latest time and message."""

    kind: str
    where: str
    count: int
    last_at: datetime
    message: str | None


def error_groups(since: datetime, until: datetime | None = None) -> list[ErrorGroup]:
    """``error_event`` in the period grouped by kind and where, most frequent first."""
    query = select(ErrorEvent.kind, ErrorEvent.where, func.count(ErrorEvent.id), func.max(ErrorEvent.at)).where(
        ErrorEvent.at >= since)
    if until is not None:
        query = query.where(ErrorEvent.at < until)
    groups = [ErrorGroup(kind, where, int(n), last, None)
              for kind, where, n, last in db.session.execute(query.group_by(ErrorEvent.kind, ErrorEvent.where))]
    for group in groups:
        group.message = db.session.scalar(select(ErrorEvent.message).where(
            ErrorEvent.kind == group.kind, ErrorEvent.where == group.where).order_by(ErrorEvent.at.desc()).limit(1))
    return sorted(groups, key=lambda g: (-g.count, g.kind, g.where))


def error_count(since: datetime, until: datetime) -> int:
    """Errors recorded in [since, until)."""
    return db.session.scalar(select(func.count(ErrorEvent.id)).where(
        ErrorEvent.at >= since, ErrorEvent.at < until)) or 0


def audit_chain() -> JobRun | None:
    """The latest finished ``verify_audit_chain`` run (``ok``: the chain was intact), or None."""
    return jobs.latest(AUDIT_JOB)


def verify_audit_chain_now() -> None:
    """Queue the audit chain check (the "verify now" button): recorded as a job run."""
    from app import scheduler
    from app.services import background

    background.submit(scheduler.verify_audit_chain)


def detail(item: dict | str | None) -> dict:
    """An audit entry's ``detail`` as a dict (empty when none or not JSON)."""
    if isinstance(item, dict):
        return item
    try:
        found = json.loads(item or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
