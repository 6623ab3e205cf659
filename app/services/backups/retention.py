"""Retention (000 §三(一): backups kept 30 days): archives older than ``backup_keep_days``
CRM-zone days are deleted in both locations; the newest good backup (ok and verified
passed; else the newest ok one) is never deleted, whatever its age."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select

from app import clock
from app.clock import utc_now
from app.extensions import db
from app.models.operations import BackupRun
from app.services import settings
from app.services.backups import common


def newest_good() -> BackupRun | None:
    """The newest ok backup whose latest verification passed, else the newest ok one."""
    base = select(BackupRun).where(BackupRun.status == "ok", BackupRun.removed_at.is_(None))
    order = (BackupRun.started_at.desc(), BackupRun.id.desc())
    return (db.session.scalars(base.where(BackupRun.verify_status == "passed").order_by(*order).limit(1)).first()
            or db.session.scalars(base.order_by(*order).limit(1)).first())


def local_day(run: BackupRun) -> date:
    """The CRM-zone day a backup was taken on."""
    return clock.to_local(run.started_at).date()


def _delete(folder: Path | None, name: str) -> None:
    if folder is None:
        return
    for path in (folder / name, common.sidecar(folder / name), common.verdict_path(folder / name)):
        path.unlink(missing_ok=True)


def prune(today: date | None = None) -> list[BackupRun]:
    """Delete the archives (and sidecars, local and second copy) of ok backups taken on or
    before ``today - backup_keep_days`` (CRM-zone days; ``today`` defaults to the local
    today), except ``newest_good``; sets ``removed_at``. Returns the removed runs. Commits."""
    today = today or clock.local_today()
    last_kept = today - timedelta(days=int(settings.get("backup_keep_days")))
    keep = newest_good()
    removed = []
    for run in db.session.scalars(select(BackupRun).where(BackupRun.status == "ok", BackupRun.removed_at.is_(None))):
        if (keep is not None and run.id == keep.id) or local_day(run) > last_kept or not run.file_name:
            continue
        _delete(common.backup_dir(), run.file_name)
        _delete(Path(run.second_copy_path).parent if run.second_copy_path else common.copy_dir(), run.file_name)
        run.removed_at = utc_now()
        removed.append(run)
    db.session.commit()
    return removed
