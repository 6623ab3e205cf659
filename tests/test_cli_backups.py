"""``flask crm backup``, ``backup-verify`` and ``restore`` (the command line for a dead instance)."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, BackupRun, Customer, RestoreRun


def _newest(app) -> tuple[int, str]:
    with app.app_context():
        run = db.session.scalars(select(BackupRun).order_by(BackupRun.id.desc())).first()
        found = run.id, run.file_name
        db.session.remove()
        return found


def test_backup_verify_and_restore_from_the_command_line(app, backup_dirs, make_customer):
    runner = app.test_cli_runner()
    pk = make_customer("rep_a", name="Before")
    made = runner.invoke(args=["crm", "backup"])
    assert made.exit_code == 0, made.output
    assert "verification passed" in made.output
    backup_id, name = _newest(app)
    checked = runner.invoke(args=["crm", "backup-verify", str(backup_id), "--full"])
    assert checked.exit_code == 0 and "passed" in checked.output and "files" in checked.output
    with app.app_context():
        db.session.get(Customer, pk).name = "After"
        db.session.commit()
    declined = runner.invoke(args=["crm", "restore", str(backup_dirs["backups"] / name)], input="n\n")
    assert declined.exit_code != 0
    with app.app_context():
        assert db.session.get(Customer, pk).name == "After"
    done = runner.invoke(args=["crm", "restore", str(backup_dirs["backups"] / name), "--yes"])
    assert done.exit_code == 0, done.output
    with app.app_context():
        assert db.session.get(Customer, pk).name == "Before"
        restore = db.session.scalars(select(RestoreRun)).one()
        assert restore.source == "cli" and restore.status == "ok"
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "backup_restored"))
        assert entry.source == "cli" and json.loads(entry.detail)["file"] == name


def test_restore_refuses_a_corrupted_file_and_an_unknown_id(app, backup_dirs):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["crm", "backup"]).exit_code == 0
    _, name = _newest(app)
    path = backup_dirs["backups"] / name
    data = bytearray(path.read_bytes())
    data[300] ^= 0xFF
    path.write_bytes(bytes(data))
    refused = runner.invoke(args=["crm", "restore", str(path), "--yes"])
    assert refused.exit_code != 0 and "corrupted" in refused.output
    assert runner.invoke(args=["crm", "restore", "99999", "--yes"]).exit_code != 0
    assert runner.invoke(args=["crm", "backup-verify", "99999"]).exit_code != 0


def test_a_file_that_is_not_an_archive_gets_a_message_not_a_traceback(app, backup_dirs):
    runner = app.test_cli_runner()
    bogus = backup_dirs["files"].parent / "passwd"
    bogus.write_text("root:x:0:0:root:/root:/bin/bash\n")
    for args in (["crm", "restore", str(bogus), "--yes"], ["crm", "backup-verify", str(bogus)]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1, (args, result.output)
        assert isinstance(result.exception, SystemExit), result.exception  # a ClickException, no traceback
        assert "is not a readable backup archive" in result.output
    with app.app_context():
        assert db.session.scalar(select(RestoreRun.id)) is None
        assert not db.session.scalars(select(BackupRun).where(BackupRun.kind == "safety")).all()


def test_an_archive_without_a_recorded_checksum_is_not_called_checksum_ok(app, backup_dirs, make_customer):
    import shutil

    runner = app.test_cli_runner()
    make_customer("rep_a", name="Before")
    assert runner.invoke(args=["crm", "backup"]).exit_code == 0
    _, name = _newest(app)
    elsewhere = backup_dirs["files"].parent / "usb"
    elsewhere.mkdir()
    copy = elsewhere / ("copied-" + name)  # not the catalogue's name, no .sha256 beside it
    shutil.copyfile(backup_dirs["backups"] / name, copy)
    checked = runner.invoke(args=["crm", "backup-verify", str(copy)])
    assert checked.exit_code == 0, checked.output
    assert "no recorded checksum; checked by a full restore test" in checked.output and "files" in checked.output
    done = runner.invoke(args=["crm", "restore", str(copy), "--yes"])
    assert done.exit_code == 0, done.output
    assert "no recorded checksum; checked by a full restore test" in done.output
    assert "checksum ok" not in done.output
    assert "Personal-data erasures applied again: 0" in done.output
    with app.app_context():
        assert db.session.scalars(select(RestoreRun)).one().status == "ok"


def test_restore_numbers_continue_and_the_prompt_counts_later_erasures(app, backup_dirs, monkeypatch):
    from app.services.erasure import ledger

    runner = app.test_cli_runner()
    assert runner.invoke(args=["crm", "backup"]).exit_code == 0
    backup_id, _ = _newest(app)
    monkeypatch.setattr(ledger, "since", lambda instant: [{"code": "C1"}, {"code": "C2"}, {"code": "C3"}])
    monkeypatch.setattr(ledger, "reapply_since", lambda instant, user: ["C1", "C2", "C3"])
    asked = runner.invoke(args=["crm", "restore", str(backup_id)], input="n\n")
    assert "3 personal-data erasures made after this backup will be applied again" in asked.output
    first = runner.invoke(args=["crm", "restore", str(backup_id), "--yes"])
    second = runner.invoke(args=["crm", "restore", str(backup_id), "--yes"])
    numbers = [int(re.search(r"\(restore #(\d+)\)", result.output)[1]) for result in (first, second)]
    assert numbers[1] > numbers[0], second.output  # the carried history keeps counting
    assert "checksum ok" in second.output and "Personal-data erasures applied again: 3" in second.output
