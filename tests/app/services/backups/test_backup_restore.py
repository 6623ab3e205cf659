"""Backup, verification and restore through the services (SQLite here; PostgreSQL when
TEST_DATABASE_URL points there)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, BackupRun, Customer, Notification, RestoreRun
from app.services import backups, messages
from app.services.backups import common
from app.services.errors import RuleViolation


def _flip_byte(path, offset=200):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_backup_is_an_archive_with_manifest_checksum_and_copy(ctx, backup_dirs, make_customer):
    make_customer("rep_a", name="Acme Tea")
    (backup_dirs["files"] / "sync").mkdir()
    (backup_dirs["files"] / "sync" / "book.xlsx").write_bytes(b"workbook bytes")
    run = backups.create("manual")
    assert run.status == "ok", run.error
    path = backup_dirs["backups"] / run.file_name
    assert common.sha256_of(path) == run.sha256
    assert common.sidecar(path).read_text().split()[0] == run.sha256
    manifest = common.read_manifest(path)
    assert manifest["row_counts"]["customer"] == 1
    assert manifest["database"] == db.engine.dialect.name
    assert manifest["migration_head"]
    assert [item["name"] for item in manifest["files"]] == ["files/0/sync/book.xlsx"]
    assert run.second_copy_path and (backup_dirs["copies"] / run.file_name).is_file() and run.copied_at


def test_verification_passes_and_records_checks(ctx, backup_dirs, make_customer):
    make_customer("rep_a")
    run = backups.create("manual")
    result = backups.verify(run, full=True)
    checks = {check["key"]: check["ok"] for check in json.loads(result.checks)}
    assert result.status == "passed", result.message
    assert checks == {**checks, "checksum": True, "migrated": True, "row_counts": True, "audit_chain": True,
                      "files": True}
    assert run.verify_status == "passed" and run.verified_at


def test_corrupted_archive_fails_verification_and_is_refused_by_restore(ctx, backup_dirs):
    run = backups.create("manual")
    _flip_byte(backup_dirs["backups"] / run.file_name)
    result = backups.verify(run)
    assert result.status == "failed" and "corrupted" in result.message
    assert run.verify_status == "failed"
    alerts = db.session.scalars(select(Notification).where(Notification.event == "backup_failed")).all()
    assert [item.user.username for item in alerts] == ["admin"]
    assert "corrupted" in messages.render(alerts[0].params["problem"], "en")
    with pytest.raises(RuleViolation) as refused:
        backups.restore(run, None, source="cli")
    assert "corrupted" in refused.value.errors["backup"]
    assert db.session.scalar(select(RestoreRun.id)) is None
    assert not db.session.scalars(select(BackupRun).where(BackupRun.kind == "safety")).all()


def test_restore_round_trip(ctx, backup_dirs, make_customer):
    pk = make_customer("rep_a", name="Before")
    (backup_dirs["files"] / "a.txt").write_text("old")
    first = backups.create("manual")
    first_id, first_name = first.id, first.file_name
    db.session.get(Customer, pk).name = "After"
    db.session.commit()
    (backup_dirs["files"] / "a.txt").write_text("new")
    (backup_dirs["files"] / "b.txt").write_text("created later")
    later = backups.create("manual")
    backups.verify(later)
    later_name = later.file_name
    restored = backups.restore(db.session.get(BackupRun, first_id), None, source="cli").id
    db.session.remove()
    assert db.session.get(Customer, pk).name == "Before"
    assert (backup_dirs["files"] / "a.txt").read_text() == "old"
    assert not (backup_dirs["files"] / "b.txt").exists()
    row = db.session.get(RestoreRun, restored)
    assert row.status == "ok" and row.source == "cli" and row.backup_file == first_name
    names = {run.file_name: run for run in db.session.scalars(select(BackupRun))}
    assert later_name in names and names[later_name].status == "ok"
    assert names[later_name].verify_status == "passed"  # the archive's verdict came back with it
    assert names[first_name].status == "ok"
    safety = db.session.get(BackupRun, row.safety_backup_id)
    assert safety.kind == "safety" and safety.file_name in names
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "backup_restored"))
    assert entry is not None and entry.source == "cli"
    assert json.loads(entry.detail)["file"] == first_name
    assert not backups.maintenance.active()


def test_only_one_backup_at_a_time(ctx, backup_dirs):
    backups.start("manual")
    with pytest.raises(RuleViolation):
        backups.create("manual")
    assert backups.create("safety").status == "ok"  # a restore's safety backup is never blocked


def test_two_workers_starting_at_once_get_one_backup(ctx, backup_dirs, monkeypatch):
    from app.services.backups import archive

    monkeypatch.setattr(archive, "running", lambda: None)  # both passed the check at the same moment
    archive.start("manual")
    with pytest.raises(RuleViolation):
        archive.start("scheduled")
    assert db.session.query(BackupRun).filter_by(status="running").count() == 1
    assert archive.start("safety").status == "running"


def test_a_failed_second_copy_is_reported_and_the_backup_stays_good(ctx, app, backup_dirs, monkeypatch):
    blocker = backup_dirs["files"].parent / "not-a-folder"
    blocker.write_text("a file where the copy folder should be")
    monkeypatch.setitem(app.config, "CRM_BACKUP_COPY_DIR", str(blocker))
    run = backups.create("manual")
    assert run.status == "ok" and run.second_copy_path is None
    assert run.error.startswith("Second copy failed")
    assert backups.verify(run).status == "passed"


def test_only_an_admin_may_restore_through_the_service(ctx, backup_dirs):
    """The screen is Admin only; the use case says so too (not only the view)."""
    from app.models import CrmUser
    from app.services.errors import RuleForbidden
    from tests.conftest import user_id

    run = backups.create("manual")
    with pytest.raises(RuleForbidden):
        backups.restore(run, db.session.get(CrmUser, user_id("manager")), source="web")
    assert db.session.scalars(select(BackupRun).where(BackupRun.kind == "safety")).all() == []
