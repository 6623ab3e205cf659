"""Monitoring (issue 19, 000 §三(二) and 附录2): the request timer, error capture, online
users, system health figures and the daily checklist.

Modules: ``timer`` (request times in memory, flushed once a minute), ``responses``
(p50/p95 read back), ``errors`` (unhandled errors), ``jobs`` (scheduled-job runs),
``online`` (users online vs the licence), ``storage`` (database and disks), ``health``
(the other figures of the system health page), ``checklist`` (000 附录2), ``config``
(settings and notification events).

CONTRACT (issue 19 foundation): ``install(app)`` is called by ``create_app`` after the
views are registered.
"""

from __future__ import annotations

from flask import Flask

from app import scheduler
from app.services.monitoring import checklist, config, errors, online, storage, timer

__all__ = ["checklist", "config", "install", "online", "storage", "timer"]

scheduler.register("online_sample", "Count users online (peak against the licence)", online.record_sample,
                   {"minute": "*"})
scheduler.register("daily_checklist", "Daily maintenance checklist", checklist.daily_checklist,
                   {"hour": 8, "minute": 0})
scheduler.register("storage_check", "Database and disk space against the warning threshold",
                   storage.check_storage, {"minute": 15})


def install(app: Flask) -> None:
    """Time every request and record unhandled errors (see the modules of this package)."""
    timer.install(app)
    errors.install(app)
