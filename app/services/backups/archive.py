"""Create a backup (000 §三(一) daily full backup, 001 五): the database (``dump``), the
instance files (``files``) and ``manifest.json`` in one tar.gz in ``backup_dir()``, its sha256
in the ``BackupRun`` and a ``.sha256`` sidecar, then a second copy when configured."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.clock import utc_now
from app.extensions import db
from app.models.operations import BackupRun
from app.services import company
from app.services.backups import common, dump
from app.services.backups import files as instance_files
from app.services.errors import RuleViolation

KINDS = ("scheduled", "manual", "safety")
#: A "running" backup older than this (hours) is taken as interrupted: it no longer locks.
LOCK_HOURS = 2


def version() -> str:
    """The application's version string (the newest migration stands in for a git-less tag)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("sheets-crm")
    except PackageNotFoundError:
        return "sheets-crm"


def migration_head() -> str | None:
    """The newest migration of this code (Alembic's head), None if unknown."""
    from app.services.backups import migrate

    return migrate.code_head()


def running() -> BackupRun | None:
    """A backup started less than ``LOCK_HOURS`` ago and still running (the lock); older
    running rows are marked failed (interrupted) on the way."""
    cutoff = utc_now() - timedelta(hours=LOCK_HOURS)
    found = None
    for run in db.session.scalars(select(BackupRun).where(BackupRun.status == "running")):
        if run.started_at and run.started_at >= cutoff:
            found = run
        else:
            run.status, run.finished_at = "failed", utc_now()
            run.error = run.error or "interrupted (no result within 2 hours)"
    return found


def start(kind: str, user: Any = None) -> BackupRun:
    """Insert the "running" row of a new backup and commit (so every worker sees the lock).

    ``kind``: "scheduled" | "manual" | "safety". Raises ``RuleViolation({"backup": msg})``
    while another backup runs (a safety backup ignores the lock: a restore needs it now)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if kind != "safety" and running() is not None:
        db.session.commit()
        raise RuleViolation({"backup": str(_l("Another backup is running; try again when it has finished."))})
    started = utc_now()
    run = BackupRun(kind=kind, status="running", started_at=started, database=common.database_kind(),
                    created_by_id=getattr(user, "id", None))
    run.file_name = f"crm-backup-{started:%Y%m%dT%H%M%S}{started.microsecond // 1000:03d}Z-{kind}{common.SUFFIX}"
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:  # another worker's backup started between the check and the insert
        db.session.rollback()
        raise RuleViolation({"backup": str(_l("Another backup is running; try again when it has finished."))}) \
            from None
    return run


def _manifest(run: BackupRun, facts: dict[str, Any], listed: list[dict[str, Any]]) -> dict[str, Any]:
    return {"format": 1, "app_version": version(), "migration_head": facts.get("migration") or migration_head(),
            "database": run.database, "kind": run.kind, "file_name": run.file_name,
            "created_at": run.started_at.isoformat(), "company": company.name(),
            "row_counts": facts["row_counts"], "audit_head": facts["audit_head"], "files": listed}


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(utc_now().timestamp()), 0o600
    archive.addfile(info, io.BytesIO(data))


def _write(run: BackupRun, scratch: Path, target: Path) -> dict[str, Any]:
    """Dump, then write the archive: manifest first, the database, the files."""
    dumped, facts = dump.snapshot(scratch, run.database)
    files_tar = scratch / "files.tar"
    with tarfile.open(files_tar, "w") as holder:  # files first (their list goes in the manifest)
        holder.copybufsize = common.CHUNK
        listed = instance_files.add_files(holder)
    manifest = _manifest(run, facts, listed)
    partial = target.with_name(target.name + ".part")
    with tarfile.open(partial, "w:gz", compresslevel=6) as archive:
        # 1 MiB pieces, not tarfile's 16 KiB: each piece takes the GIL back, and beside busy
        # request threads each take waits its turn (a 154 MiB backup took 30 s, not 3 s)
        archive.copybufsize = common.CHUNK
        _add_bytes(archive, common.MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
        archive.add(dumped, arcname=dumped.name)
        with tarfile.open(files_tar, "r") as holder:
            holder.copybufsize = common.CHUNK
            for member in holder:
                archive.addfile(member, holder.extractfile(member))
    partial.replace(target)
    return manifest


def perform(run_id: int) -> BackupRun:
    """Do the work of a started backup: archive, checksum, sidecar, second copy. The run
    ends "ok" or "failed" (with ``error``); never raises for a failure of the backup itself."""
    run = db.session.get(BackupRun, run_id)
    target = common.backup_dir() / run.file_name
    try:
        with tempfile.TemporaryDirectory(prefix="crm-backup-", dir=common.backup_dir()) as scratch:
            manifest = _write(run, Path(scratch), target)
        run.sha256 = common.sha256_of(target)
        common.write_sidecar(target, run.sha256)
        run.size_bytes, run.manifest = target.stat().st_size, json.dumps(manifest, ensure_ascii=False)
        run.status, run.finished_at = "ok", utc_now()
    except Exception as exc:  # noqa: BLE001 - the run records any failure
        db.session.rollback()
        run = db.session.get(BackupRun, run_id)
        run.status, run.finished_at, run.error = "failed", utc_now(), f"{type(exc).__name__}: {exc}"[:2000]
        target.unlink(missing_ok=True)
        db.session.commit()
        return run
    db.session.commit()
    second_copy(run)
    return run


def second_copy(run: BackupRun) -> None:
    """Copy the archive (and sidecar) to ``CRM_BACKUP_COPY_DIR`` and check the copy's sha256;
    a failure is recorded in ``error`` (the local backup stays good). Commits."""
    folder = common.copy_dir()
    if folder is None or run.status != "ok":
        return
    source = common.backup_dir() / run.file_name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / run.file_name
        shutil.copyfile(source, target)
        shutil.copyfile(common.sidecar(source), common.sidecar(target))
        if common.sha256_of(target) != run.sha256:
            target.unlink(missing_ok=True)
            raise OSError("the copy's checksum differs from the backup's")
        run.second_copy_path, run.copied_at = str(target), utc_now()
    except OSError as exc:
        run.error = f"Second copy failed: {exc}"[:2000]
    db.session.commit()


def create(kind: str, user: Any = None) -> BackupRun:
    """Take a backup now (``start`` + ``perform``): returns the finished ``BackupRun``
    ("ok" with file, size, sha256, manifest; or "failed" with ``error``).
    ``RuleViolation`` while another backup runs."""
    return perform(start(kind, user).id)
