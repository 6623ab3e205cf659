"""Backups (issue 19, 000 §三(一), 001 五, 002 §九(一)2): daily and on-demand full backups,
a second copy, retention, verification by restoring into a scratch database, restore.

Public API: ``create(kind, user)``, ``verify(backup, full)``, ``restore(backup, user, source)``,
``prune()``, ``backup_daily()`` (the job), ``install(app)`` (the 503 during a restore).
Importing this package registers the ``backup_daily`` job (every 5 minutes; it decides
itself whether the day's backup is due) and declares the settings ``backup_keep_days`` and
``backup_time``, the step-up action ``backup.restore`` and the ``backup_failed`` event.
"""

from __future__ import annotations

from flask import Flask

from app import scheduler
from app.services import tasks
from app.services.backups import maintenance
from app.services.backups.archive import create, start
from app.services.backups.restoring import RESTORE, restore
from app.services.backups.retention import prune
from app.services.backups.schedule import backup_daily, run_backup, run_verify
from app.services.backups.verifying import verify

__all__ = ["RESTORE", "backup_daily", "create", "install", "prune", "restore", "start", "verify"]

scheduler.register("backup_daily", "Daily backup (when due), its verification, second copy and retention",
                   backup_daily, {"minute": "*/5"})
tasks.allow(run_backup)  # the screen's "Back up now" and "Verify in full" run on the task queue
tasks.allow(run_verify)


def install(app: Flask) -> None:
    """Answer 503 (a page saying a restore is under way) while ``maintenance.active()``."""
    maintenance.install(app)
