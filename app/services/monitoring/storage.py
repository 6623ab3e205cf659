"""Storage (000 §三(二): 数据库存储空间使用率预警阈值80%): the database's size against
``database_size_limit_mb`` (0: the disk it is on), and the free space of the instance
folder, the files root and the backup folders, each against ``storage_warning_percent``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import text

from app.extensions import db
from app.services.monitoring import config

#: What each usage row measures, as people read it (screens and the ``storage_low`` alert).
LABELS = {"database": _l("Database"), "instance": _l("Instance folder"), "files": _l("Files root"),
          "backups": _l("Backup folder"), "backup_copy": _l("Second backup folder")}

MB = 1024 * 1024


@dataclass
class Usage:
    """``used``/``total`` bytes of one thing (``key``: "database", "instance", "files",
    "backups", "backup_copy"); ``percent`` used; ``warn`` at or over the threshold;
    ``path`` where it is (None for a PostgreSQL database)."""

    key: str
    used: int
    total: int
    threshold: int
    path: str | None = None

    @property
    def percent(self) -> float:
        return round(100.0 * self.used / self.total, 1) if self.total else 0.0

    @property
    def warn(self) -> bool:
        return bool(self.total) and self.percent >= self.threshold

    @property
    def free(self) -> int:
        return max(0, self.total - self.used)


def database_bytes() -> int:
    """The database's size in bytes: SQLite's file with its WAL and shared-memory files;
    PostgreSQL's ``pg_database_size``."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
    name = engine.url.database
    if not name or name == ":memory:":
        return 0
    return sum(os.path.getsize(name + tail) for tail in ("", "-wal", "-shm") if os.path.exists(name + tail))


def _sqlite_path() -> str | None:
    name = db.engine.url.database
    return name if db.engine.dialect.name == "sqlite" and name and name != ":memory:" else None


def disk(key: str, path: str | os.PathLike, threshold: int) -> Usage | None:
    """Used and total space of the disk holding ``path`` (its nearest existing parent)."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        usage = shutil.disk_usage(where)
    except OSError:
        return None
    return Usage(key, usage.total - usage.free, usage.total, threshold, str(path))


def database(threshold: int | None = None) -> Usage:
    """The database against its limit (``database_size_limit_mb``; 0: its disk's size)."""
    threshold = threshold if threshold is not None else int(config.get("storage_warning_percent", 80))
    size = database_bytes()
    limit_mb = int(config.get("database_size_limit_mb", 0))
    if limit_mb:
        return Usage("database", size, limit_mb * MB, threshold, _sqlite_path())
    where = _sqlite_path() or current_app.instance_path
    found = disk("database", where, threshold)
    if found is None or db.engine.dialect.name == "postgresql":  # PostgreSQL's disk is not ours to see
        return Usage("database", size, 0, threshold, _sqlite_path())
    return Usage("database", size, found.total, threshold, where)


def folders() -> dict[str, str]:
    """key -> folder: the instance folder, the files root and the backup folders."""
    from app.services.backups import maintenance  # noqa: F401  (the backups package is loaded)

    config_ = current_app.config
    found = {"instance": current_app.instance_path,
             "files": config_.get("CRM_FILES_ROOT") or current_app.instance_path,
             "backups": config_.get("CRM_BACKUP_DIR") or os.path.join(current_app.instance_path, "backups")}
    if config_.get("CRM_BACKUP_COPY_DIR"):
        found["backup_copy"] = config_["CRM_BACKUP_COPY_DIR"]
    return found


def all_usage() -> list[Usage]:
    """The database, then each folder's disk, each against ``storage_warning_percent``."""
    threshold = int(config.get("storage_warning_percent", 80))
    found = [database(threshold)]
    for key, path in folders().items():
        usage = disk(key, path, threshold)
        if usage is not None:
            found.append(usage)
    return found


def check_storage() -> list[str]:
    """The hourly ``storage_check`` job: tell the admins of each thing at or over the
    threshold (once per thing per day). Returns the keys over it. Commits."""
    from app import clock
    from app.security.rights import admin_ids
    from app.services import messages, notifications

    over = [usage for usage in all_usage() if usage.warn]
    for usage in over:
        what = messages.stored(LABELS.get(usage.key, usage.key))  # in each reader's language
        notifications.notify(config.STORAGE.key, admin_ids(), params={"what": what, "percent": usage.percent},
                             occasion=f"storage:{usage.key}:{clock.local_today().isoformat()}")
    db.session.commit()
    return [usage.key for usage in over]
