"""Restore a backup into the live instance (001 五): check and verify the archive, take a
"safety" backup, put the instance in maintenance, replace the database and the files,
migrate to head, re-list the archives, record and audit the restore, leave maintenance.

Sensitive (``backup.restore``): the screen asks for a TOTP code; the command line does
not (the shell is the authority) and audits with source "cli".
"""

from __future__ import annotations

import getpass
import json
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flask import g
from flask_babel import lazy_gettext as _l
from sqlalchemy import text

from app.clock import as_utc, utc_now
from app.extensions import db
from app.models.operations import BackupRun, RestoreRun
from app.security import step_up
from app.security.rights import is_admin
from app.services import audit, search
from app.services import files as file_roots
from app.services.backups import archive, carry, catalogue, common, dump, maintenance, migrate, verifying
from app.services.backups import files as instance_files
from app.services.errors import RuleForbidden, RuleViolation

RESTORE = step_up.declare("backup.restore", _l("Restore a backup (replaces all data)"), _l("Organisation > Backups"))


def _who(user: Any, source: str) -> str:
    if user is not None:
        return getattr(user, "username", str(user))
    return f"{source}:{getpass.getuser()}"


def _checked(path: Path, sha256: str | None, unrecorded_ok: bool = False) -> None:
    try:
        verifying.check_file(path, sha256, unrecorded_ok)
    except verifying.VerifyFailed as exc:
        raise RuleViolation({"backup": str(exc)}) from None


def _verify_first(run: BackupRun | None, path: Path, sha256: str | None) -> None:
    """Checksum (a path without a recorded checksum: none, the full test decides), then the
    restore test; ``RuleViolation`` with the failure (in the requester's language) otherwise."""
    _checked(path, sha256, unrecorded_ok=run is None)
    if run is not None:
        result = verifying.verify(run, full=True)
        if result.status != "passed":
            why = verifying.first_failure(json.loads(result.checks or "[]")) or result.message
            raise RuleViolation({"backup": str(_l("The backup failed its verification: %(why)s", why=why))})
        return
    try:
        checks = verifying.checks_of(path, sha256, full=True, unrecorded_ok=True)
    except verifying.VerifyFailed as exc:
        raise RuleViolation({"backup": str(exc)}) from None
    failed = verifying.first_failure(checks)
    if failed:
        raise RuleViolation({"backup": str(_l("The backup failed its verification: %(why)s", why=failed))})


def recorded_sha(run: BackupRun | None, path: Path) -> str | None:
    """The checksum recorded for an archive: its catalogue row's, else its ``.sha256``
    sidecar's; None when neither exists (never the file's own: that proves nothing)."""
    if run is not None and run.sha256:
        return run.sha256
    return catalogue.sidecar_sha(path)


def created_at(manifest: dict[str, Any], fallback: datetime | None = None) -> datetime | None:
    """When the backup was taken (aware UTC), from its manifest (``fallback`` otherwise)."""
    try:
        return as_utc(datetime.fromisoformat(manifest["created_at"]))
    except (KeyError, TypeError, ValueError):
        return as_utc(fallback)


def erasures_after(instant: datetime | None) -> list[dict[str, Any]]:
    """The personal-data erasures recorded after ``instant`` (what restoring a backup taken
    then would undo, so the restore applies them again): ``erasure.ledger.since``."""
    from app.services.erasure import ledger

    return ledger.since(instant) if instant is not None else []


def _replace_sqlite(dumped: Path) -> None:
    live = common.sqlite_path()
    source = sqlite3.connect(dumped)
    target = sqlite3.connect(live, timeout=60)
    try:
        source.backup(target, pages=-1)  # one step: the live database is locked until it is whole
    finally:
        target.close()
        source.close()


def _replace_postgresql(dumped: Path) -> None:
    url = db.engine.url
    with db.engine.connect() as conn:  # other sessions of the app's user would block the DROPs
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                          "AND usename = current_user AND pid <> pg_backend_pid()"))
        search.drop_side_indexes(conn)  # an older dump's --clean drops pg_trgm, which they need
        conn.commit()
    db.engine.dispose()
    args, env = common.pg_args(url)
    try:
        dump.run_tool([common.pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
                       *args, str(dumped)], env)
    except Exception:  # nothing was restored (one transaction): the search indexes as they were
        with db.engine.begin() as conn:
            search.ensure_side_indexes(conn)
        raise


def _restore_files(path: Path) -> int:
    """Put the archive's files back under the roots, remove the others; returns the count."""
    roots = file_roots.roots()
    written: set[Path] = set()
    with tarfile.open(path, "r:gz") as archived:
        for member in archived:
            if member.isfile() and member.name.startswith(common.FILES_PREFIX):
                target = instance_files.target_of(member.name, roots)
                if target is not None:
                    instance_files.extract(archived, member, target)
                    written.add(target)
    instance_files.clear_roots(written)
    return len(written)


def _replace(path: Path, kind: str) -> None:
    with tempfile.TemporaryDirectory(prefix="crm-restore-", dir=common.backup_dir()) as folder:
        manifest, dumped, _ = verifying.unpack(path, Path(folder), full=False)
        if (manifest.get("database") or kind) != kind:
            raise RuleViolation({"backup": str(_l("This backup is of a %(kind)s database; this instance uses %(live)s.",
                                                  kind=manifest.get("database"), live=kind))})
        db.session.remove()
        db.engine.dispose()
        (_replace_sqlite if kind == "sqlite" else _replace_postgresql)(dumped)
    db.engine.dispose()
    migrate.upgrade(db.engine)
    _restore_files(path)


def _after_swap(path: Path, live: carry.Live, who: tuple[int | None, str]) -> dict[str, Any]:
    """On the restored (migrated) database, still in maintenance: re-list the archives, put
    the restore/verification history back, re-apply the erasures made after the backup
    (``erasure.ledger.reapply_since``, commits). Returns the audit detail's facts."""
    from app.services.erasure import ledger

    restored_seq = carry.audit_seq()
    catalogue.reconcile()
    carry.put_back(live)
    db.session.commit()
    manifest = common.read_manifest(path)
    user = _user_here(who)
    with _stamping_as(user):
        codes = ledger.reapply_since(created_at(manifest), user if getattr(user, "id", None) else None)
    return {"created_at": manifest.get("created_at"), "erasures_reapplied": len(codes),
            "audit_in_safety_backup": carry.only_in_safety(live.audit_seq, restored_seq)}


def _record(path: Path, safety_name: str | None, who: tuple[int | None, str], source: str,
            started: Any, facts: dict[str, Any]) -> RestoreRun:
    safety = catalogue.find(safety_name) if safety_name else None
    restored = catalogue.find(path.name)
    row = RestoreRun(backup_id=restored.id if restored else None, backup_file=path.name,
                     safety_backup_id=safety.id if safety else None, started_at=started, finished_at=utc_now(),
                     status="ok", source=source, user_name=who[1])
    db.session.add(row)
    with audit.audit_context(source=source):
        audit.record("backup_restored", row, {"file": path.name, "created_at": facts["created_at"],
                                              "safety_backup": safety_name,
                                              "erasures_reapplied": facts["erasures_reapplied"],
                                              "audit_in_safety_backup": facts["audit_in_safety_backup"]},
                     user=_user_here(who))
    db.session.commit()
    row.erasures_reapplied = facts["erasures_reapplied"]  # for the done page (not a column)
    return row


@contextmanager
def _stamping_as(user: Any) -> Iterator[None]:
    """``g.user`` is ``user`` (``_user_here``: the restoring admin as the restored database
    knows them, or no one) while the erasures are applied again, so the rows they change are
    stamped with an account of that database: the live session's account may not be in the
    backup, and no key checks a stamp (``app.models.base.unchecked_key``)."""
    before = g.get("user")
    g.user = user
    try:
        yield
    finally:
        g.user = before


def _user_here(who: tuple[int | None, str]) -> Any:
    """The user as a row of the restored database (the old object belongs to a dead
    session); a user the backup does not know is named without an id."""
    from app.models.org import CrmUser

    found = db.session.get(CrmUser, who[0]) if who[0] is not None else None
    return found or SimpleNamespace(id=None, username=who[1])


def restore(target: BackupRun | Path, user: Any = None, source: str = "web") -> RestoreRun:
    """Restore ``target`` (a ``BackupRun`` or an archive path) into the live instance.

    ``source`` "web" (the caller asked for the step-up code: ``step_up.demand(RESTORE)``
    is called here too) | "cli". Returns the ``RestoreRun`` written in the restored
    database. Raises ``RuleViolation({"backup": msg})`` when the archive is corrupted or
    fails verification, or the safety backup fails (nothing was changed then); a failure
    while replacing is recorded (status "failed") and re-raised as ``RuleViolation``.

    After the swap (migrated, still in maintenance) the restore/verification history is
    carried across (``carry``) and the personal-data erasures made after the backup's
    ``created_at`` are applied again (001 隐私与合规: a restore must not undo an erasure);
    the ``backup_restored`` entry records their count and the audit entries that are now
    only in the safety backup. ``row.erasures_reapplied`` (not a column) is that count."""
    if source == "web":
        if not is_admin(user):
            raise RuleForbidden(str(_l("Only an administrator may restore a backup.")))
        step_up.demand(RESTORE, user)
    run = target if isinstance(target, BackupRun) else catalogue.find(Path(target).name)
    path = verifying.archive_path(run) if isinstance(target, BackupRun) else Path(target).resolve()
    sha256 = recorded_sha(run, path)
    kind = common.database_kind()
    who = (getattr(user, "id", None), _who(user, source))
    _verify_first(run if isinstance(target, BackupRun) else None, path, sha256)
    live = carry.read_live()
    started = utc_now()
    safety = archive.create("safety", user)
    if safety.status != "ok":
        raise RuleViolation({"backup": str(_l("The safety backup failed, nothing was restored: %(why)s",
                                              why=safety.error))})
    safety_name = safety.file_name
    flag = maintenance.flag_path()
    flag.write_text(started.isoformat())
    try:
        _replace(path, kind)
        return _record(path, safety_name, who, source, started, _after_swap(path, live, who))
    except Exception as exc:
        db.session.rollback()
        db.session.add(RestoreRun(backup_file=path.name, started_at=started, finished_at=utc_now(), status="failed",
                                  source=source, user_name=who[1], error=f"{type(exc).__name__}: {exc}"[:2000]))
        db.session.commit()
        if isinstance(exc, RuleViolation):
            raise
        raise RuleViolation({"backup": str(_l("The restore failed: %(why)s. The safety backup %(name)s holds the "
                                              "data from before.", why=exc, name=safety_name))}) from exc
    finally:
        flag.unlink(missing_ok=True)
