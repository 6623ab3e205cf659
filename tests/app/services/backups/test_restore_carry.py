"""What a restore must not undo or lose: erasures made after the backup (applied again),
the restore and verification history, the audit entries only in the safety backup; and
the schedule's "next backup" and verification messages stored language-neutral."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from flask_babel import force_locale
from sqlalchemy import select

from app import clock
from app.extensions import appbuilder, db
from app.models import AuditLog, BackupRun, BackupVerification, Customer, RestoreRun
from app.services import backups, erasure, messages
from app.services.backups import maintenance, schedule
from app.services.erasure import ledger

PHONE = "13955507777"


def _restored_entry() -> dict:
    entry = db.session.scalars(select(AuditLog).where(AuditLog.action == "backup_restored")
                               .order_by(AuditLog.id.desc())).first()
    return json.loads(entry.detail)


def test_a_restore_applies_again_the_erasures_made_after_the_backup(ctx, backup_dirs, make_customer):
    pk = make_customer("rep_a", name="Privacy Ltd", contact_phone=PHONE, contact_name="Wang Person")
    old = backups.create("manual")
    old_id = old.id
    erasure.erase(appbuilder.sm.find_user(username="admin"), "customer", pk, "the person asked")
    assert db.session.get(Customer, pk).contact_phone != PHONE
    assert len(ledger.since(datetime.fromisoformat(json.loads(old.manifest)["created_at"]))) == 1
    row = backups.restore(db.session.get(BackupRun, old_id), None, source="cli")
    assert row.erasures_reapplied == 1
    db.session.remove()
    customer = db.session.get(Customer, pk)
    assert customer.name == "Privacy Ltd" and customer.contact_phone != PHONE and customer.contact_name != "Wang Person"
    assert _restored_entry()["erasures_reapplied"] == 1


def test_the_erasures_are_applied_while_in_maintenance_with_the_backups_time(ctx, backup_dirs, monkeypatch,
                                                                             make_customer):
    make_customer("rep_a", name="Kept")
    old = backups.create("manual")
    created = datetime.fromisoformat(json.loads(old.manifest)["created_at"])
    seen = {}

    def fake_reapply(instant, user):
        seen.update(instant=instant, maintenance=maintenance.active(),
                    customers=db.session.scalar(select(Customer.name)))
        return ["C1", "C2"]

    monkeypatch.setattr(ledger, "reapply_since", fake_reapply)
    row = backups.restore(old, None, source="cli")
    assert seen == {"instant": created, "maintenance": True, "customers": "Kept"}
    assert row.erasures_reapplied == 2 and _restored_entry()["erasures_reapplied"] == 2
    assert not maintenance.active()


def test_restore_and_verification_history_survive_a_restore(ctx, backup_dirs, make_customer):
    make_customer("rep_a")
    first = backups.create("manual")
    first_id, first_name = first.id, first.file_name
    later = backups.create("manual")
    backups.verify(later)
    backups.verify(later, full=True)
    later_name = later.file_name
    one = backups.restore(db.session.get(BackupRun, first_id), None, source="cli").id
    two = backups.restore(db.session.get(BackupRun, first_id), None, source="cli").id
    db.session.remove()
    assert two > one  # not "restore #1" again (PostgreSQL's sequences do not restart per test)
    restores = db.session.scalars(select(RestoreRun).order_by(RestoreRun.id)).all()
    assert [(item.id, item.backup_file, item.status) for item in restores] == [(one, first_name, "ok"),
                                                                              (two, first_name, "ok")]
    assert restores[0].safety_backup_id and restores[0].safety_backup_id != restores[1].safety_backup_id
    later_run = db.session.scalar(select(BackupRun).where(BackupRun.file_name == later_name))
    kept = db.session.scalars(select(BackupVerification).where(BackupVerification.backup_id == later_run.id)).all()
    assert sorted(item.full for item in kept) == [False, True]
    assert len({item.id for item in db.session.scalars(select(BackupVerification))}) == len(
        db.session.scalars(select(BackupVerification)).all())


def test_the_audit_entries_only_in_the_safety_backup_are_named(ctx, backup_dirs, make_customer):
    from app.services.backups import dump

    first = backups.create("manual")
    first_id = first.id
    make_customer("rep_a")
    make_customer("rep_a")
    with db.engine.connect() as conn:
        live_seq = dump.chain_head(conn)["seq"]
    restored_seq = json.loads(first.manifest)["audit_head"]["seq"]
    assert live_seq > restored_seq
    row = backups.restore(db.session.get(BackupRun, first_id), None, source="cli")
    detail = _restored_entry()
    assert detail["audit_in_safety_backup"] == f"#{restored_seq + 1}–#{live_seq}"
    assert detail["safety_backup"] == db.session.get(BackupRun, row.safety_backup_id).file_name


def test_a_non_archive_is_refused_with_a_message(ctx, backup_dirs, tmp_path):
    from app.services.errors import RuleViolation

    bogus = tmp_path / "passwd"
    bogus.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(RuleViolation) as refused:
        backups.restore(bogus, None, source="cli")
    assert "not a readable backup archive" in refused.value.errors["backup"]
    assert db.session.scalar(select(RestoreRun.id)) is None


@pytest.mark.usefixtures("shanghai")
def test_next_run_is_never_in_the_past(ctx, backup_dirs):
    with clock.frozen(datetime(2026, 12, 1, 1, 0, tzinfo=UTC)):  # 09:00 in Shanghai, 02:00 not run yet
        assert schedule.due_now()
        assert schedule.next_run() >= clock.local_now()
        run = schedule.backup_daily()
        assert run is not None
        assert not schedule.due_now()
        assert schedule.next_run().strftime("%Y-%m-%d %H:%M") == "2026-12-02 02:00"
    with clock.frozen(datetime(2026, 12, 1, 17, 0, tzinfo=UTC)):  # 01:00 on the 2nd: ahead today
        assert not schedule.due_now()
        assert schedule.next_run().strftime("%Y-%m-%d %H:%M") == "2026-12-02 02:00"


def test_verification_failures_are_stored_language_neutral(ctx, backup_dirs):
    run = backups.create("manual")
    path = backup_dirs["backups"] / run.file_name
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF
    path.write_bytes(bytes(data))
    with force_locale("zh"):  # started by a Chinese-speaking admin
        result = backups.verify(run)
    check = json.loads(result.checks)[0]
    assert "corrupted" in messages.render(check["detail"], "en")
    assert "损坏" in messages.render(check["detail"], "zh")
    assert "corrupted" in result.message  # the log line is English, not the starter's language


def test_erasures_applied_again_are_stamped_with_an_account_of_the_restored_database(ctx, backup_dirs,
                                                                                   make_customer):
    """An admin created after the backup restores it: the rows erased again are not stamped
    with that admin's id, which the restored database does not hold (no key checks a stamp)."""
    from flask import g

    from app.models.org import CrmUser

    pk = make_customer("rep_a", name="Privacy Ltd", contact_phone=PHONE, contact_name="Wang Person")
    old = backups.create("manual")
    newcomer = CrmUser(username="new_admin", first_name="New", last_name="Admin", email="new@example.com",
                       active=True, roles=[appbuilder.sm.find_role("Admin")])
    db.session.add(newcomer)
    db.session.commit()
    newcomer_id = newcomer.id
    g.user = newcomer  # as in the restore's web request
    erasure.erase(newcomer, "customer", pk, "the person asked")
    assert db.session.get(Customer, pk).changed_by_fk == newcomer_id
    backups.restore(old, newcomer, source="web")
    db.session.remove()
    customer = db.session.get(Customer, pk)
    assert customer.contact_phone != PHONE
    assert db.session.get(CrmUser, newcomer_id) is None
    assert customer.changed_by_fk is None
