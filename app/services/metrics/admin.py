"""The admin's metrics: users online, imports / exports / syncs, failed jobs, security alerts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, case, false, func, literal, select

from app.clock import utc_now
from app.extensions import db
from app.models.audit import AuditLog
from app.models.org import CrmUser
from app.models.sync import SyncRun
from app.models.transfers import FAILED, TransferJob
from app.security import alerts
from app.services.metrics.base import (
    Figure,
    FigureSeries,
    Filters,
    _between,
    _count,
    _define,
    _everyone_only,
    _fig,
    _narrow,
    _today_instants,
)

# --- admin -----------------------------------------------------------------------------------

#: "Online": seen within this many minutes (``CrmUser.last_seen_at``, see app.security.presence).
ONLINE_MINUTES = 5


def _online_base(user: Any, filters: Filters, key: Any) -> Select:
    since = {"now": utc_now() - timedelta(minutes=ONLINE_MINUTES), "today": _today_instants()[0]}.get(key)
    if since is None or not _everyone_only(user):
        return select(CrmUser).where(false())
    return select(CrmUser).where(CrmUser.active.is_(True), CrmUser.last_seen_at >= since,
                                 *_narrow(CrmUser.id, filters))


@_define("users_online", _l("Users online"),
         _l("Active users seen in the last 5 minutes, and those seen since midnight today (CRM time zone)."),
         "count", "bar", "admin",
         records=lambda user, filters, key: _online_base(user, filters, key or "now").order_by(
             CrmUser.last_seen_at.desc()), dimension=_l("Seen"))
def _users_online(user: Any, filters: Filters) -> Figure:
    """Active users whose ``last_seen_at`` (presence, updated at most once a minute) is
    within ``ONLINE_MINUTES`` ("now", the ``value``) or since today's start in the CRM zone
    ("today"). Admin only (empty for others). One query."""
    now_since = utc_now() - timedelta(minutes=ONLINE_MINUTES)
    online = today = 0
    if _everyone_only(user):
        online, today = db.session.execute(select(
            func.coalesce(func.sum(case((CrmUser.last_seen_at >= now_since, 1), else_=0)), 0), func.count(CrmUser.id))
            .where(_online_base(user, filters, "today").whereclause)).one()
    return _fig("users_online", categories=[str(_l("Online now")), str(_l("Seen today"))], keys=["now", "today"],
                series=[FigureSeries(str(_l("Users")), [int(online), int(today)])], value=int(online))


_TRANSFER_KINDS = {"import": _l("Imports"), "export": _l("Exports"), "sync": _l("Syncs")}


def _transfer_base(user: Any, filters: Filters, key: Any) -> Select:
    kind, _sep, status = str(key or "").partition(":")
    if not _everyone_only(user) or (key is not None and kind not in _TRANSFER_KINDS):
        return select(TransferJob).where(false())
    if kind == "sync":
        return select(SyncRun).where(*_between(SyncRun.started_at, filters.period),
                                     *([SyncRun.status == status] if status else []))
    return select(TransferJob).where(*_between(TransferJob.created_at, filters.period),
                                     *([TransferJob.kind == kind] if kind else []),
                                     *([TransferJob.status == status] if status else []))


@_define("transfers", _l("Imports, exports and syncs"),
         _l("Import and export jobs created in the period and sync runs started in it, by status."),
         "count", "bar", "admin",
         records=lambda user, filters, key: _transfer_base(user, filters, key), dimension=_l("Kind"))
def _transfers(user: Any, filters: Filters) -> Figure:
    """``TransferJob`` (imports, exports; by ``created_at``) and ``SyncRun`` (by
    ``started_at``) in the period: categories = kind, one series per status; keys
    ``kind`` (a drill-down may pass ``kind:status``). Admin only. Two queries."""
    counts: dict[tuple[str, str], int] = {}
    if _everyone_only(user):
        start, end = filters.period.instants()
        jobs = (select(TransferJob.kind, TransferJob.status, func.count(TransferJob.id))
                .where(TransferJob.created_at >= start, TransferJob.created_at < end)
                .group_by(TransferJob.kind, TransferJob.status))
        runs = (select(literal("sync"), SyncRun.status, func.count(SyncRun.id))
                .where(SyncRun.started_at >= start, SyncRun.started_at < end).group_by(SyncRun.status))
        for kind, status, n in [*db.session.execute(jobs), *db.session.execute(runs)]:
            counts[(kind, status)] = int(n)
    from app.services.importing.jobs import STATUS_LABELS
    from sync.runner import STATUS_LABELS as RUN_LABELS

    labels = {**STATUS_LABELS, **RUN_LABELS}
    statuses = sorted({status for _kind, status in counts})
    kinds = list(_TRANSFER_KINDS)
    return _fig("transfers", categories=[str(_TRANSFER_KINDS[k]) for k in kinds], keys=kinds,
                series=[FigureSeries(str(labels.get(status, status)), [counts.get((k, status), 0) for k in kinds])
                        for status in statuses])


def _failed_base(user: Any, filters: Filters, key: Any) -> Select:
    if not _everyone_only(user) or key not in (None, "scheduled", "sync"):
        return select(TransferJob).where(false())
    if key == "sync":
        return select(SyncRun).where(SyncRun.status == "failed", *_between(SyncRun.started_at, filters.period))
    return select(TransferJob).where(TransferJob.schedule_id.is_not(None), TransferJob.status == FAILED,
                                     *_between(TransferJob.created_at, filters.period))


@_define("failed_jobs", _l("Failed jobs"),
         _l("Scheduled imports/exports and sync runs of the period that failed (what Scheduled jobs lists)."),
         "count", "bar", "admin",
         records=lambda user, filters, key: _failed_base(user, filters, key or "scheduled"), dimension=_l("Kind"))
def _failed_jobs(user: Any, filters: Filters) -> Figure:
    """Failed scheduled transfer runs (``TransferJob`` with a schedule, status failed,
    created in the period) and failed ``SyncRun``s (started in the period) — the runs the
    jobs page lists; the system jobs' own failures are logged, not stored. ``value`` =
    both; a drill-down needs a category (two record types): without one it lists the
    scheduled transfers. Admin only. Two queries."""
    scheduled = _count(_failed_base(user, filters, "scheduled"))
    syncs = _count(_failed_base(user, filters, "sync"))
    return _fig("failed_jobs", categories=[str(_l("Scheduled transfers")), str(_l("Sync runs"))],
                keys=["scheduled", "sync"], series=[FigureSeries(str(_l("Failed")), [scheduled, syncs])],
                value=scheduled + syncs)


def _alerts_base(user: Any, filters: Filters, key: Any) -> Select:
    actions = alerts.actions()
    if not _everyone_only(user) or (key is not None and key not in actions):
        return select(AuditLog).where(false())
    return select(AuditLog).where(AuditLog.action.in_([key] if key else actions),
                                  *_between(AuditLog.created_at, filters.period))


@_define("security_alerts", _l("Security alerts"),
         _l("Security alerts raised in the period (authenticator lockouts, logins limited after wrong passwords, "
            "a broken audit chain), by kind."),
         "count", "bar", "admin",
         records=lambda user, filters, key: _alerts_base(user, filters, key).order_by(AuditLog.id.desc()),
         dimension=_l("Alert"))
def _security_alerts(user: Any, filters: Filters) -> Figure:
    """Audit entries whose action is one of ``alerts.actions()`` created in the period,
    per action (labels ``alerts.LABELS``). Admin only. One query."""
    stmt = (select(AuditLog.action, func.count(AuditLog.id)).where(_alerts_base(user, filters, None).whereclause)
            .group_by(AuditLog.action))
    counts = dict(db.session.execute(stmt).tuples().all())
    keys = [a for a in alerts.actions() if a in counts]
    return _fig("security_alerts", categories=[str(alerts.LABELS.get(k, k)) for k in keys], keys=keys,
                series=[FigureSeries(str(_l("Alerts")), [int(counts[k]) for k in keys])],
                value=int(sum(counts.values())))
