"""Verify a backup by restoring it into a scratch database (000 §三(一) monthly restore test):
checksum, database integrity, migrated to head, row counts against the manifest, the audit
chain, and — in full — the files' sha256. Every check is recorded in ``BackupVerification``."""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.clock import utc_now
from app.extensions import db
from app.models.operations import BackupRun, BackupVerification
from app.services import audit, messages
from app.services.backups import alerts, common, dump, migrate, scratch
from app.services.backups import files as instance_files


class VerifyFailed(Exception):
    """A check failed: ``key`` names it; ``detail`` is the stored (language-neutral)
    ``messages.Message`` saying what was found; ``str()`` is its text in the current language."""

    def __init__(self, key: str, message: Any) -> None:
        self.key, self.detail = key, messages.stored(message)
        super().__init__(messages.render(self.detail))


def not_an_archive(path: Path) -> VerifyFailed:
    """The failure for a file that is not a readable backup archive."""
    return VerifyFailed("archive", _l("%(name)s is not a readable backup archive.", name=path.name))


def shown(check: dict[str, Any], locale: str | None = None) -> str:
    """A check's detail as text in the reader's (or ``locale``'s) language."""
    return messages.render(check.get("detail"), locale)


def first_failure(checks: list[dict[str, Any]], locale: str | None = None) -> str | None:
    """"<key>: <detail>" of the first failed check (None when all passed)."""
    failed = [check for check in checks if not check["ok"]]
    return f"{failed[0]['key']}: {shown(failed[0], locale)}" if failed else None


def archive_path(run: BackupRun) -> Path:
    """The archive of ``run`` in the backup folder."""
    return common.backup_dir() / (run.file_name or "")


def unpack(path: Path, into: Path, full: bool) -> tuple[dict[str, Any], Path, dict[str, str]]:
    """Extract the manifest and the database dump into ``into`` (and, when ``full``, hash
    every file member without keeping it): (manifest, dump path, file name -> sha256)."""
    try:
        manifest = common.read_manifest(path)
    except ValueError:
        raise not_an_archive(path) from None
    member_name = common.SQLITE_MEMBER if manifest.get("database") == "sqlite" else common.PG_MEMBER
    dumped, hashes = into / member_name, {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if member.name == member_name and member.isfile():
                    instance_files.extract(archive, member, dumped)
                elif full and member.isfile() and member.name.startswith(common.FILES_PREFIX):
                    hashes[member.name] = instance_files.extract(archive, member, into / "file.tmp")
                    (into / "file.tmp").unlink()
    except (tarfile.TarError, EOFError, zlib.error):
        raise not_an_archive(path) from None
    if not dumped.is_file():
        raise VerifyFailed("archive", _l("The backup has no database dump."))
    return manifest, dumped, hashes


def _database_checks(kind: str, engine: Engine, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    if kind == "sqlite":
        with engine.connect() as conn:
            result = conn.execute(text("PRAGMA integrity_check")).scalar()
        checks.append({"key": "integrity", "ok": result == "ok", "detail": str(result)})
    before, after = migrate.upgrade(engine)
    checks.append({"key": "migrated", "ok": after == migrate.code_head(), "detail": f"{before} -> {after}"})
    with engine.connect() as conn:
        counts = dump.table_counts(conn)
    expected = manifest.get("row_counts") or {}
    wrong = {name: [count, counts.get(name)] for name, count in expected.items() if counts.get(name) != count}
    checks.append({"key": "row_counts", "ok": not wrong,
                   "detail": json.dumps(wrong) if wrong else f"{len(expected)} tables, {sum(expected.values())} rows"})
    with Session(bind=engine) as session:
        report = audit.verify_chain(session)
    with engine.connect() as conn:
        head = dump.chain_head(conn)
    same_head = head == (manifest.get("audit_head") or head)
    checks.append({"key": "audit_chain", "ok": bool(report.ok) and same_head,
                   "detail": f"{report.checked}" if report.ok and same_head
                   else f"#{report.broken_seq}: {report.problem}" if not report.ok
                   else messages.stored(_l("The audit chain's head differs from the manifest's."))})
    return checks


def _file_check(manifest: dict[str, Any], hashes: dict[str, str]) -> dict[str, Any]:
    listed = {item["name"]: item["sha256"] for item in manifest.get("files") or []}
    bad = sorted(name for name, digest in listed.items() if hashes.get(name) != digest)
    return {"key": "files", "ok": not bad, "detail": ", ".join(bad[:10]) if bad else f"{len(listed)} files"}


#: The checksum check's detail when no checksum was recorded for the archive.
UNRECORDED = _l("no recorded checksum; checked by a full restore test")


def check_file(path: Path, sha256: str | None, unrecorded_ok: bool = False) -> None:
    """``VerifyFailed("checksum")`` unless ``path`` is a readable file whose sha256 is
    ``sha256`` (with ``unrecorded_ok``, no ``sha256`` at all passes: the caller runs the full
    restore test instead)."""
    try:
        readable = path.is_file() and os.access(path, os.R_OK)
    except OSError:
        readable = False
    if not readable:
        raise VerifyFailed("checksum", _l("The backup file %(name)s is missing.", name=path.name))
    if unrecorded_ok and not sha256:
        return
    try:
        digest = common.sha256_of(path)
    except OSError:
        raise VerifyFailed("checksum", _l("The backup file %(name)s is missing.", name=path.name)) from None
    if not sha256 or digest != sha256:
        raise VerifyFailed("checksum", _l("The backup file %(name)s is corrupted: its checksum does not match.",
                                          name=path.name))


def checks_of(path: Path, sha256: str | None, full: bool, unrecorded_ok: bool = False) -> list[dict[str, Any]]:
    """Every check of the archive at ``path`` (expected ``sha256``; None with
    ``unrecorded_ok``: no recorded checksum, so ``full`` must be True), in order; raises
    ``VerifyFailed`` at a checksum or archive failure."""
    check_file(path, sha256, unrecorded_ok)
    checks = [{"key": "checksum", "ok": True, "detail": sha256 or messages.stored(UNRECORDED)}]
    with tempfile.TemporaryDirectory(prefix="crm-verify-", dir=common.backup_dir()) as folder:
        manifest, dumped, hashes = unpack(path, Path(folder), full)
        kind = manifest.get("database") or "sqlite"
        with scratch.restored(kind, dumped) as engine:
            checks += _database_checks(kind, engine, manifest)
    if full:
        checks.append(_file_check(manifest, hashes))
    return checks


def run_checks(run: BackupRun, full: bool) -> list[dict[str, Any]]:
    """``checks_of`` the run's archive."""
    if not run.file_name:
        raise VerifyFailed("checksum", _l("The backup file %(name)s is missing.", name=""))
    return checks_of(archive_path(run), run.sha256, full)


def verify(run: BackupRun, full: bool = False) -> BackupVerification:
    """Restore ``run`` into a scratch database and check it; returns the committed
    ``BackupVerification`` (``status`` "passed" | "failed", ``checks`` JSON list of
    {"key", "ok", "detail"}, ``message`` the first failure). Mirrors the result in
    ``run.verify_status``/``verified_at``; a failure alerts the admins. Never raises for a
    bad backup (that is the result)."""
    item = BackupVerification(backup_id=run.id, full=full, started_at=utc_now(), status="running")
    db.session.add(item)
    db.session.commit()
    try:
        checks = run_checks(run, full)
    except VerifyFailed as exc:
        checks = [{"key": exc.key, "ok": False, "detail": exc.detail}]
    except Exception as exc:  # noqa: BLE001 - a restore test that crashes is a failed test
        checks = [{"key": "restore", "ok": False, "detail": f"{type(exc).__name__}: {exc}"[:1000]}]
    failed = [check for check in checks if not check["ok"]]
    item.checks, item.finished_at = json.dumps(checks, ensure_ascii=False), utc_now()
    item.status = "failed" if failed else "passed"
    english = first_failure(checks, "en")  # the log's text (English); screens render the checks
    item.message = english[:2000] if english else None
    run.verify_status, run.verified_at = item.status, item.finished_at
    if run.file_name and archive_path(run).is_file():
        common.write_verdict(archive_path(run), item.status, item.finished_at.isoformat())
    if failed:
        what = messages.concat([f"{failed[0]['key']}: ", failed[0]["detail"]])
        alerts.backup_problem(run, {"msgid": "verification failed (%(what)s)", "params": {"what": what}},
                              f"verify:{run.id}:{item.id}")
    db.session.commit()
    return item
