"""Retention in CRM-zone days (across a month end) and the every-5-minutes daily backup."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import BackupRun, BackupVerification
from app.services import backups
from app.services.backups import schedule

pytestmark = pytest.mark.usefixtures("shanghai")


def _backup_at(at: datetime) -> BackupRun:
    with clock.frozen(at):
        run = backups.create("scheduled")
    assert run.status == "ok", run.error
    return run


def test_retention_counts_shanghai_days_across_the_month_end(ctx, backup_dirs):
    oct_31 = _backup_at(datetime(2026, 10, 31, 15, 0, tzinfo=UTC))  # 23:00 on 31 Oct in Shanghai
    nov_1 = _backup_at(datetime(2026, 10, 31, 16, 30, tzinfo=UTC))  # 00:30 on 1 Nov in Shanghai
    newest = _backup_at(datetime(2026, 11, 29, 18, 0, tzinfo=UTC))
    backups.verify(newest)
    with clock.frozen(datetime(2026, 11, 30, 3, 0, tzinfo=UTC)):  # 30 Nov, keep 30 days: 1 Nov stays
        removed = backups.prune()
    assert [run.id for run in removed] == [oct_31.id]
    assert oct_31.removed_at and not (backup_dirs["backups"] / oct_31.file_name).exists()
    assert not (backup_dirs["copies"] / oct_31.file_name).exists()
    assert (backup_dirs["backups"] / nov_1.file_name).exists() and nov_1.removed_at is None


def test_the_newest_good_backup_is_never_removed(ctx, backup_dirs):
    good = _backup_at(datetime(2026, 1, 5, 4, 0, tzinfo=UTC))
    backups.verify(good)
    bad = _backup_at(datetime(2026, 1, 6, 4, 0, tzinfo=UTC))
    (backup_dirs["backups"] / bad.file_name).write_bytes(b"not an archive")
    assert backups.verify(bad).status == "failed"
    safety = _backup_at(datetime(2026, 1, 7, 4, 0, tzinfo=UTC))
    safety.kind = "safety"
    db.session.commit()
    with clock.frozen(datetime(2026, 6, 1, tzinfo=UTC)):
        removed = {run.id for run in backups.prune()}
    assert removed == {bad.id, safety.id}
    assert good.removed_at is None and (backup_dirs["backups"] / good.file_name).exists()


def test_daily_job_backs_up_once_after_the_configured_time(ctx, backup_dirs):
    with clock.frozen(datetime(2026, 3, 1, 17, 55, tzinfo=UTC)):  # 01:55 in Shanghai: not yet
        assert schedule.backup_daily() is None
    with clock.frozen(datetime(2026, 3, 1, 18, 5, tzinfo=UTC)):  # 02:05
        run = schedule.backup_daily()
    assert run is not None and run.kind == "scheduled" and run.status == "ok"
    verification = db.session.scalar(select(BackupVerification).where(BackupVerification.backup_id == run.id))
    assert verification.status == "passed" and verification.full  # the month's first: in full
    assert "files" in {check["key"] for check in json.loads(verification.checks)}
    with clock.frozen(datetime(2026, 3, 1, 22, 0, tzinfo=UTC)):  # later that day: done already
        assert schedule.backup_daily() is None
    with clock.frozen(datetime(2026, 3, 2, 18, 10, tzinfo=UTC)):  # the next night: not the first of the month
        second = schedule.backup_daily()
    assert second is not None and not second.verifications[0].full


def test_a_missed_night_catches_up_and_maintenance_skips(ctx, backup_dirs, app):
    backups.maintenance.flag_path().write_text("x")
    try:
        with clock.frozen(datetime(2026, 3, 1, 23, 0, tzinfo=UTC)):
            assert schedule.backup_daily() is None
    finally:
        backups.maintenance.flag_path().unlink()
    with clock.frozen(datetime(2026, 3, 2, 1, 0, tzinfo=UTC)):  # 09:00: the 02:00 run was missed
        assert schedule.backup_daily() is not None


def test_backup_time_setting_refuses_a_bad_time_and_moves_the_schedule(ctx, backup_dirs):
    from app.extensions import appbuilder
    from app.services import settings
    from app.services.errors import RuleViolation

    admin = appbuilder.sm.find_user(username="admin")
    with pytest.raises(RuleViolation) as refused:
        settings.save({"backup_time": "25:00"}, admin)
    assert "HH:MM" in str(refused.value.errors["backup_time"])
    db.session.rollback()
    settings.save({"backup_time": "23:30"}, admin)
    db.session.commit()
    with clock.frozen(datetime(2026, 3, 2, 15, 0, tzinfo=UTC)):  # 23:00 in Shanghai: not yet
        assert schedule.backup_daily() is None
        assert schedule.next_run().strftime("%H:%M") == "23:30"
    with clock.frozen(datetime(2026, 3, 2, 15, 35, tzinfo=UTC)):
        assert schedule.backup_daily() is not None
