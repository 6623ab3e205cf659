"""What a restore carries across the swap, outside the restored database's own state:
the restore and verification history (``restore_run``, ``backup_verification``) and the
live audit chain's head, read before the swap and put back (or named) after it — the
history of the backups is about the backup folder, not about the restored data.

Rows are matched by what identifies them across databases (the backup's file name and
the start time), never by id: the restored database has its own ids, so rows it lacks are
inserted without ids and a verification's backup is found again by its file name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.clock import as_utc
from app.extensions import db
from app.models.operations import BackupRun, BackupVerification, RestoreRun
from app.services.backups import dump

_RESTORE_COLUMNS = ("backup_file", "started_at", "finished_at", "status", "source", "user_name", "error")
_VERIFY_COLUMNS = ("full", "started_at", "finished_at", "status", "checks", "message")


@dataclass
class Live:
    """The live state read before the swap: restore rows (dicts of ``_RESTORE_COLUMNS`` plus
    ``backup_name``/``safety_name``), verification rows (``_VERIFY_COLUMNS`` plus
    ``backup_name``) and the audit chain's head seq."""

    restores: list[dict[str, Any]] = field(default_factory=list)
    verifications: list[dict[str, Any]] = field(default_factory=list)
    audit_seq: int = 0


def _key(name: str | None, started: Any) -> tuple[str, str]:
    return name or "", as_utc(started).isoformat() if started is not None else ""


def read_live() -> Live:
    """The live history and chain head (call before the database is replaced)."""
    names = dict(db.session.execute(select(BackupRun.id, BackupRun.file_name)).all())
    restores = [{**{c: getattr(row, c) for c in _RESTORE_COLUMNS}, "backup_name": names.get(row.backup_id),
                 "safety_name": names.get(row.safety_backup_id)}
                for row in db.session.scalars(select(RestoreRun).order_by(RestoreRun.id))]
    verifications = [{**{c: getattr(row, c) for c in _VERIFY_COLUMNS}, "backup_name": names.get(row.backup_id)}
                     for row in db.session.scalars(select(BackupVerification).order_by(BackupVerification.id))]
    with db.engine.connect() as conn:
        seq = dump.chain_head(conn)["seq"]
    return Live(restores, verifications, seq)


def audit_seq() -> int:
    """The (restored) database's audit chain head seq."""
    with db.engine.connect() as conn:
        return dump.chain_head(conn)["seq"]


def put_back(live: Live) -> tuple[int, int]:
    """Insert the restore and verification rows the restored database lacks (after the
    catalogue was reconciled, so the backups are known by file name); a verification whose
    backup the catalogue no longer lists is left out. Returns (restores, verifications)
    inserted. Flushes; the caller commits."""
    ids = dict(db.session.execute(select(BackupRun.file_name, BackupRun.id)).all())
    have = {_key(row.backup_file, row.started_at) for row in db.session.scalars(select(RestoreRun))}
    added_restores = 0
    for item in live.restores:
        if _key(item["backup_file"], item["started_at"]) in have:
            continue
        db.session.add(RestoreRun(**{c: item[c] for c in _RESTORE_COLUMNS}, backup_id=ids.get(item["backup_name"]),
                                  safety_backup_id=ids.get(item["safety_name"])))
        added_restores += 1
    names = dict(db.session.execute(select(BackupRun.id, BackupRun.file_name)).all())
    seen = {_key(names.get(row.backup_id), row.started_at) for row in db.session.scalars(select(BackupVerification))}
    added_checks = 0
    for item in live.verifications:
        backup_id = ids.get(item["backup_name"])
        if backup_id is None or _key(item["backup_name"], item["started_at"]) in seen:
            continue
        db.session.add(BackupVerification(**{c: item[c] for c in _VERIFY_COLUMNS}, backup_id=backup_id))
        added_checks += 1
    db.session.flush()
    return added_restores, added_checks


def only_in_safety(live_seq: int, restored_seq: int) -> str | None:
    """"#X–#Y": the audit entries the live chain had beyond the restored one (they are only
    in the safety backup now); None when there are none."""
    if live_seq <= restored_seq:
        return None
    return f"#{restored_seq + 1}–#{live_seq}" if live_seq > restored_seq + 1 else f"#{live_seq}"
