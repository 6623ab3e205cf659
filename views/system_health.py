"""Organisation → System health and → Daily checklist (issue 19, 000 §三(二), 附录2), Admin only.

System health (``/system-health/``): online users vs the licence, response times per page
(last hour and 24 h, slowest p95 first; pages over the slow threshold), storage (database
and disks against the warning threshold), failed logins, failed jobs, transfers and syncs
with errors, errors of the last 7 days grouped (the weekly review), the audit chain's last
check with "Verify now". Daily checklist (``/system-health/checklist``): today's lines, a
"Check now" button and the last 30 days (one cell per line; a day opens its lines).
Every state is said in words as well as colour.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app import clock
from app.extensions import db
from app.models.operations import DailyCheck
from app.services.monitoring import checklist, health, online, responses, storage, timer
from views import display

STORAGE_LABELS = storage.LABELS
TRANSFER_LABELS = {"import": _l("Imports"), "export": _l("Exports"), "sync": _l("Sheet syncs")}


def size_text(n: int) -> str:
    """Bytes as MB or GB with the unit."""
    if n >= 1024 ** 3:
        return f"{n / 1024 ** 3:.1f} GB"
    return f"{n / 1024 ** 2:.1f} MB"


#: Lines whose figures are the checked day's (the others are the state at the check).
DAY_LINES = ("performance", "logs")


def checked_period(day: date, today: date) -> dict[str, str]:
    """What ``day``'s checklist checked (its figures are the day before's, CRM zone, 000 附录2),
    in the company date format: ``day``, ``since`` (the start of that day, the backup line's
    limit), ``cell`` (a line's period), ``summary`` (the page's sentence)."""
    checked = display.shown_day(day - timedelta(days=1))
    since = display.shown_time(checklist.period(day)[0])
    if day == today:
        cell = _("Yesterday, %(day)s", day=checked)
        summary = _("The checklist of %(day)s. Its figures are of yesterday, %(checked)s (00:00–24:00); "
                    "accounts and customer data as they were at the check.", day=display.shown_day(day),
                    checked=checked)
    else:
        cell = _("The day before, %(day)s", day=checked)
        summary = _("The checklist of %(day)s. Its figures are of the day before, %(checked)s (00:00–24:00); "
                    "accounts and customer data as they were at the check.", day=display.shown_day(day),
                    checked=checked)
    return {"day": display.shown_day(day), "since": _("Since %(at)s", at=since), "cell": cell, "summary": summary}


def line_period(line: dict[str, Any], period: dict[str, str]) -> str:
    """The period a checklist line speaks of: since yesterday's start (backup), yesterday
    (performance, logs) or the moment of the check (permissions, data)."""
    key = line.get("key")
    if key == "backup":
        return period["since"]
    return period["cell"] if key in DAY_LINES else _("At the check")


def backup_time(detail: dict[str, Any]) -> str:
    """The backup's start in the company format (rows stored before ``started_at``: their text)."""
    try:
        return display.shown_time(datetime.fromisoformat(detail["started_at"]))
    except (KeyError, TypeError, ValueError):
        return str(detail.get("at") or "")


def line_text(line: dict[str, Any]) -> str:
    """A checklist line's one-line detail in the reader's language."""
    d, key = line.get("detail") or {}, line.get("key")
    if key == "backup":
        if not d.get("backup"):
            return _("No backup in this period.")
        return _("Backup #%(id)s at %(at)s: %(status)s; restore test: %(verify)s; second copy: %(copy)s.",
                 id=d["backup"], at=backup_time(d), status=d.get("status") or "-", verify=d.get("verify") or "-",
                 copy=_("present") if d.get("copy") else _("missing"))
    if key == "performance":
        return _("Slowest page p95 ≤ %(p95)s ms (%(endpoint)s; limit %(limit)s ms); %(over)s pages over the alert "
                 "time; peak %(peak)s users online, licence %(licensed)s.", p95=d.get("p95", 0),
                 endpoint=d.get("endpoint") or "-", limit=d.get("slow_ms", ""), over=d.get("over_alert", 0),
                 peak=d.get("peak", 0), licensed=d.get("licensed") or _("not limited"))
    if key == "permissions":
        flagged = d.get("flagged") or {}
        if not flagged:
            return _("Every active account matches its job.")
        return "; ".join(f"{name}: {', '.join(flags)}" for name, flags in flagged.items())
    if key == "data":
        return _("%(incomplete)s customers miss a required field; %(clusters)s duplicate groups open.",
                 incomplete=d.get("incomplete", 0), clusters=d.get("clusters", 0))
    if key == "logs":
        sensitive = ", ".join(f"{name} × {n}" for name, n in (d.get("sensitive") or {}).items()) or "-"
        return _("%(errors)s errors, %(alerts)s security alerts; sensitive operations: %(sensitive)s.",
                 errors=d.get("errors", 0), alerts=d.get("alerts", 0), sensitive=sensitive)
    return ""


class SystemHealthView(BaseView):
    """The system health page and the daily checklist (Admin only)."""

    route_base = "/system-health"
    class_permission_name = "SystemHealth"
    method_permission_name = {"index": "read", "checklist": "read", "check_now": "edit", "verify_now": "edit"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self) -> Any:
        """GET: every figure of the page."""
        now = clock.utc_now()
        timer.flush()  # this process's figures of the last minute count too
        slow_ms, alert_ms = timer.refresh_limits()
        return self.render_template(
            "crm/system_health.html", title=_l("System health"), licence=online.licence(now),
            hour=responses.endpoint_figures(now - timedelta(hours=1)), day=responses.endpoint_figures(now - timedelta(days=1)),
            slow=responses.slow_requests(now - timedelta(days=1)), slow_ms=slow_ms, alert_ms=alert_ms,
            usage=storage.all_usage(), storage_labels=STORAGE_LABELS, size_text=size_text,
            failed_logins=health.failed_logins(24, now), failed_jobs=health.failed_jobs(now - timedelta(days=1)),
            transfers=health.transfer_errors(now - timedelta(days=1)), transfer_labels=TRANSFER_LABELS,
            errors=health.error_groups(now - timedelta(days=7)), chain=health.audit_chain(), local=display.shown_time)

    @expose("/verify-audit", methods=["POST"])
    @has_access
    def verify_now(self) -> Any:
        """POST: check the audit chain on the task queue (recorded as a job run)."""
        db.session.commit()
        health.verify_audit_chain_now()
        flash(_("The audit chain check was started; its result appears here when done."), "info")
        return redirect(url_for("SystemHealthView.index"))

    @expose("/checklist")
    @has_access
    def checklist(self) -> Any:
        """GET: today's checklist (or ``?day=YYYY-MM-DD``) and the last 30 days."""
        today = clock.local_today()
        day = today
        if request.args.get("day"):
            try:
                day = date.fromisoformat(request.args["day"])
            except ValueError:
                abort(400, _("Enter a day as YYYY-MM-DD."))
        stored = db.session.query(DailyCheck).filter(DailyCheck.day == day).one_or_none()
        return self.render_template(
            "crm/daily_checklist.html", title=_l("Daily checklist"), day=day, today=today, check=stored,
            lines=checklist.lines_of(stored), labels=checklist.LINES, line_text=line_text,
            period=checked_period(day, today), line_period=line_period, history=checklist.history(30, today),
            lines_of=checklist.lines_of, local=display.shown_time, shown_day=display.shown_day,
            one_day=timedelta(days=1))

    @expose("/checklist/run", methods=["POST"])
    @has_access
    def check_now(self) -> Any:
        """POST: build and store today's checklist now."""
        check = checklist.run()
        flash(_("Checklist done: all green.") if check.ok else _("Checklist done: some lines are red."),
              "success" if check.ok else "warning")
        return redirect(url_for("SystemHealthView.checklist"))


def register(appbuilder: AppBuilder) -> None:
    """Add *Organisation → System health* and *→ Daily checklist* (Admin only)."""
    appbuilder.add_view(SystemHealthView, "System health", label=_l("System health"), icon="fa-heartbeat",
                        category="Organisation", category_label=_l("Organisation"), category_icon="fa-users")
    appbuilder.add_link("Daily checklist", label=_l("Daily checklist"), href="SystemHealthView.checklist",
                        icon="fa-check-square-o", category="Organisation", category_label=_l("Organisation"))
