"""Monitoring thresholds (000 §三(二)): admin settings and the admins' notification events.

Settings (Organisation → Settings, section "Monitoring"): ``slow_page_ms`` (a page slower
than this is listed, default 3000 ms: "核心页面加载≤3秒"), ``alert_page_ms`` (alerts the
admins, default 5000 ms: "响应时间超5秒"), ``database_size_limit_mb`` (0: the disk is the
limit) and ``storage_warning_percent`` (default 80: "存储空间使用率预警阈值80%").
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from app.services import notifications, settings
from app.services.notifications import EMAIL, IN_APP, Event

SECTION = _l("Monitoring")

settings.declare(settings.Setting(
    "slow_page_ms", settings.INT, 3000, _l("Slow page (ms)"),
    _l("A page slower than this is listed on the system health page."), low=100, high=600000, section=SECTION))
settings.declare(settings.Setting(
    "alert_page_ms", settings.INT, 5000, _l("Page alert (ms)"),
    _l("A page slower than this alerts the administrators (at most once per page per hour)."),
    low=100, high=600000, section=SECTION))
settings.declare(settings.Setting(
    "database_size_limit_mb", settings.INT, 0, _l("Database size limit (MB)"),
    _l("The space the database may use; 0 means the disk it is on is the limit."), low=0, high=100000000,
    section=SECTION))
settings.declare(settings.Setting(
    "storage_warning_percent", settings.INT, 80, _l("Storage warning threshold (percent)"),
    _l("Warn when the database or a disk is fuller than this."), low=1, high=100, section=SECTION))

SLOW_PAGE = notifications.declare_event(Event(
    "slow_page", _l("Slow page"), _l("A page took %(ms)s ms: %(endpoint)s (%(path)s)."), (IN_APP, EMAIL)))
STORAGE = notifications.declare_event(Event(
    "storage_low", _l("Storage over the warning threshold"), _l("%(what)s is at %(percent)s percent of its limit."), (IN_APP, EMAIL)))
JOB_FAILED = notifications.declare_event(Event(
    "job_failed", _l("Scheduled job failed"), _l("The scheduled job %(job)s failed: %(error)s"), (IN_APP, EMAIL)))
CHECKLIST_RED = notifications.declare_event(Event(
    "checklist_red", _l("Daily checklist has problems"),
    _l("The daily checklist of %(day)s has red lines: %(lines)s."), (IN_APP, EMAIL)))


def get(key: str, default: Any) -> Any:
    """The setting ``key``, or ``default`` when it cannot be read (no app context, no database)."""
    try:
        return settings.get(key)
    except Exception:  # a monitoring figure never fails a page
        return default
