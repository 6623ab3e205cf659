"""The daily maintenance checklist (000 附录2: CRM系统日常维护检查表), one line per item:

1. ``backup`` 数据备份 — the latest good backup since the start of yesterday (CRM zone)
   finished ok, its restore test passed, and its second copy (异地) is present; none = red.
2. ``performance`` 系统功能 — yesterday every page's p95 ≤ ``slow_page_ms`` and none over
   ``alert_page_ms``; yesterday's peak of online users ≤ the licence (0: not limited).
3. ``permissions`` 用户权限 — no active account flagged by the permission report.
4. ``data`` 数据准确性 — no active customer missing a required field of the import template
   (附录1: 客户名称, 所属行业, 联系人姓名, 联系方式, 信息来源) and no open duplicate cluster.
5. ``logs`` 操作日志 — no error and no security alert yesterday; sensitive operations
   (step-up confirmed actions) yesterday are listed by action.

``run(day)`` stores the day's ``DailyCheck`` (re-run replaces it) and tells the admins
when a line is red; the ``daily_checklist`` job runs it at 08:00 CRM time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select

from app import clock
from app.extensions import db
from app.models.audit import AuditLog
from app.models.customers import Customer
from app.models.duplicates import DuplicateCluster
from app.models.operations import BackupRun, DailyCheck, SlowRequest
from app.services import company
from app.services.monitoring import config, health, online, responses, timer

LINES = {"backup": _l("Data backup: integrity and restore test"),
         "performance": _l("System: response times and concurrent users"),
         "permissions": _l("User permissions: match with job titles, idle accounts"),
         "data": _l("Data accuracy: complete customers, duplicates"),
         "logs": _l("Operation logs: errors and sensitive operations")}
#: Customer columns the import template (000 附录1) marks required.
REQUIRED = ("name", "industry_id", "contact_name", "contact_phone", "source_id")
STEP_UP_OK = "step_up_success"


@dataclass
class Line:
    """One checklist line: ``ok`` green/red, ``figure`` a short figure, ``detail`` its facts."""

    key: str
    ok: bool
    figure: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "ok": self.ok, "figure": self.figure, "detail": self.detail}


def period(day: date) -> tuple[datetime, datetime]:
    """The checked period of ``day``'s checklist: yesterday in the CRM zone, in UTC."""
    return online.day_bounds(day - timedelta(days=1))


def backup_line(since: datetime) -> Line:
    """1: the latest full backup since ``since`` that is good (ok, verified, copied), else
    the latest one: the nightly one, or one an admin took (a manual or safety backup is as
    full and as verified)."""
    recent = (select(BackupRun).where(BackupRun.started_at >= since)
              .order_by(BackupRun.started_at.desc(), BackupRun.id.desc()))
    good = recent.where(BackupRun.status == "ok", BackupRun.verify_status == "passed",
                        BackupRun.second_copy_path.is_not(None), BackupRun.copied_at.is_not(None))
    run = db.session.scalar(good.limit(1)) or db.session.scalar(recent.limit(1))
    if run is None:
        return Line("backup", False, "—", {"backup": None})
    copy = bool(run.second_copy_path and run.copied_at)
    ok = run.status == "ok" and run.verify_status == "passed" and copy
    started = clock.as_utc(run.started_at)
    return Line("backup", ok, f"#{run.id}", {"backup": run.id, "status": run.status, "verify": run.verify_status,
                                             "copy": copy, "at": clock.local_text(run.started_at),
                                             "started_at": started.isoformat() if started else None})


def performance_line(since: datetime, until: datetime, day: date) -> Line:
    """2: yesterday's response times and online peak."""
    slow_ms, alert_ms = timer.refresh_limits()
    figures = responses.endpoint_figures(since, until)
    worst = figures[0] if figures else None
    over = db.session.scalar(select(func.count(SlowRequest.id)).where(
        SlowRequest.at >= since, SlowRequest.at < until, SlowRequest.ms > alert_ms)) or 0
    peak, licensed = online.peak(day - timedelta(days=1)), int(company.licensed_users() or 0)
    p95 = worst.p95 if worst else 0
    ok = p95 <= slow_ms and not over and not (licensed and peak > licensed)
    return Line("performance", ok, f"p95 ≤ {p95} ms; {peak}/{licensed or '∞'}",
                {"p95": p95, "endpoint": worst.endpoint if worst else None, "over_alert": over, "slow_ms": slow_ms,
                 "peak": peak, "licensed": licensed, "requests": sum(f.count for f in figures)})


def permissions_line() -> Line:
    """3: accounts the permission report flags (active accounts only)."""
    from app.services.permission_report import build_report

    flagged = {row.user.username: row.flags for row in build_report() if row.flags and row.user.active}
    return Line("permissions", not flagged, str(len(flagged)), {"flagged": flagged})


def incomplete_customers() -> int:
    """Active customers missing a required field (``REQUIRED``, blank text counts as missing)."""
    missing = []
    for name in REQUIRED:
        column = getattr(Customer, name)
        missing.append(column.is_(None))
        if not name.endswith("_id"):
            missing.append(func.trim(column) == "")
    return db.session.scalar(select(func.count(Customer.id)).where(
        Customer.archived_at.is_(None), or_(*missing))) or 0


def data_line() -> Line:
    """4: incomplete customers and open duplicate clusters."""
    incomplete = incomplete_customers()
    clusters = db.session.scalar(select(func.count(DuplicateCluster.id))) or 0
    return Line("data", not incomplete and not clusters, f"{incomplete} / {clusters}",
                {"incomplete": incomplete, "clusters": clusters})


def sensitive_operations(since: datetime, until: datetime) -> dict[str, int]:
    """Step-up confirmed actions in the period: action name -> count."""
    found: dict[str, int] = {}
    for detail in db.session.scalars(select(AuditLog.detail).where(
            AuditLog.action == STEP_UP_OK, AuditLog.created_at >= since, AuditLog.created_at < until)):
        action = str(health.detail(detail).get("action") or "?")
        found[action] = found.get(action, 0) + 1
    return dict(sorted(found.items()))


def logs_line(since: datetime, until: datetime) -> Line:
    """5: errors, security alerts and sensitive operations yesterday."""
    from app.security import alerts

    errors = health.error_count(since, until)
    alert_count = db.session.scalar(select(func.count(AuditLog.id)).where(
        AuditLog.action.in_(alerts.actions()), AuditLog.created_at >= since, AuditLog.created_at < until)) or 0
    sensitive = sensitive_operations(since, until)
    return Line("logs", not errors and not alert_count, f"{errors} / {alert_count} / {sum(sensitive.values())}",
                {"errors": errors, "alerts": alert_count, "sensitive": sensitive})


def build(day: date | None = None) -> list[Line]:
    """The five lines of ``day``'s checklist (default today in the CRM zone)."""
    day = day or clock.local_today()
    since, until = period(day)
    return [backup_line(since), performance_line(since, until, day), permissions_line(), data_line(),
            logs_line(since, until)]


def run(day: date | None = None) -> DailyCheck:
    """Build and store ``day``'s checklist (replacing a stored one), notify the admins of
    red lines (once per day and set of red lines). Commits."""
    from app.security.rights import admin_ids
    from app.services import notifications

    day = day or clock.local_today()
    lines = build(day)
    check = db.session.scalar(select(DailyCheck).where(DailyCheck.day == day)) or DailyCheck(day=day)
    check.checked_at = clock.utc_now()
    check.ok = all(line.ok for line in lines)
    check.results = json.dumps([line.as_dict() for line in lines], ensure_ascii=False, default=str)
    db.session.add(check)
    red = [line.key for line in lines if not line.ok]
    if red:
        notifications.notify(config.CHECKLIST_RED.key, admin_ids(), params=red_params(day, red),
                             occasion=f"checklist:{day.isoformat()}:{','.join(red)}")
    db.session.commit()
    return check


def red_params(day: date, red: list[str]) -> dict[str, Any]:
    """The ``checklist_red`` notification's params: ``day`` in the company date format and
    ``lines``, the red lines' labels as a stored message (``app.services.messages``), so each
    reader reads them in their own language (never the line keys)."""
    from app.services import messages

    labels: list[Any] = []
    for key in red:
        labels += [", "] if labels else []
        labels.append(messages.stored(LINES.get(key, key)))
    return {"day": day.strftime(company.date_format()), "lines": messages.concat(labels)}


def daily_checklist() -> int:
    """The ``daily_checklist`` job (08:00 CRM time): the stored check's id (a red line is
    the checklist's finding, not the job's failure)."""
    return run().id


def lines_of(check: DailyCheck | None) -> list[dict[str, Any]]:
    """A stored checklist's lines (list of dicts), empty for none or unreadable."""
    if check is None:
        return []
    try:
        found = json.loads(check.results or "[]")
    except ValueError:
        current_app.logger.warning("Daily check %s unreadable", check.id)
        return []
    return found if isinstance(found, list) else []


def history(days: int = 30, today: date | None = None) -> list[DailyCheck]:
    """Stored checklists of the last ``days`` days, newest first."""
    today = today or clock.local_today()
    return list(db.session.scalars(select(DailyCheck).where(DailyCheck.day > today - timedelta(days=days))
                                   .order_by(DailyCheck.day.desc())))
