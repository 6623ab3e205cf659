"""Re-list the archives in the backup folder after a restore: the restored ``backup_run``
table is the OLD catalogue, so backups taken after it (the safety backup among them) are
registered again from their manifests, and rows whose files are gone are marked removed."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.clock import utc_now
from app.extensions import db
from app.models.operations import BackupRun
from app.services.backups import common


def archives() -> list[Path]:
    """The finished archives in the backup folder, oldest name first."""
    return sorted(path for path in common.backup_dir().glob(f"crm-backup-*{common.SUFFIX}") if path.is_file())


def sidecar_sha(path: Path) -> str | None:
    """The archive's sha256 as its ``.sha256`` sidecar records it (None: no readable sidecar)."""
    side = common.sidecar(path)
    try:
        text = side.read_text(encoding="ascii", errors="replace").split() if side.is_file() else []
    except OSError:
        return None
    return text[0].lower() if text and len(text[0]) == 64 else None


def recorded_sha(path: Path) -> str:
    """The archive's sha256 from its sidecar, else computed (an archive of our own folder)."""
    return sidecar_sha(path) or common.sha256_of(path)


def _fill(run: BackupRun, path: Path, manifest: dict) -> None:
    run.status, run.error = "ok", None
    run.sha256, run.size_bytes = recorded_sha(path), path.stat().st_size
    run.manifest = json.dumps(manifest, ensure_ascii=False)
    run.database = manifest.get("database") or run.database
    run.finished_at = run.finished_at or datetime.fromtimestamp(path.stat().st_mtime).astimezone()
    verdict = common.read_verdict(path)
    if verdict.get("status") in ("passed", "failed") and verdict.get("at"):
        run.verify_status, run.verified_at = verdict["status"], datetime.fromisoformat(verdict["at"])
    copy = common.copy_dir()
    if copy is not None and (copy / path.name).is_file():
        run.second_copy_path = str(copy / path.name)


def reconcile() -> list[BackupRun]:
    """Register every archive the table does not know (and complete rows still "running"
    in the restored state); mark ok rows whose archive is missing as removed. Returns the
    rows added or completed. Flushes; the caller commits."""
    known = {run.file_name: run for run in db.session.scalars(select(BackupRun))}
    touched = []
    for path in archives():
        run = known.get(path.name)
        if run is not None and run.status == "ok":
            continue
        try:
            manifest = common.read_manifest(path)
        except ValueError:
            continue
        if run is None:
            created = datetime.fromisoformat(manifest["created_at"]) if manifest.get("created_at") else utc_now()
            run = BackupRun(kind=manifest.get("kind") or "manual", file_name=path.name, started_at=created)
            db.session.add(run)
        _fill(run, path, manifest)
        touched.append(run)
    present = {path.name for path in archives()}
    for run in known.values():
        if run.status == "ok" and run.removed_at is None and run.file_name not in present:
            run.removed_at = utc_now()
    db.session.flush()
    return touched


def find(file_name: str) -> BackupRun | None:
    """The row of an archive by file name (None too when the database has no catalogue)."""
    try:
        return db.session.scalar(select(BackupRun).where(BackupRun.file_name == file_name))
    except SQLAlchemyError:
        db.session.rollback()
        return None
