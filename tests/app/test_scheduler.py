"""The scheduler's cron runs in CRM_TIMEZONE (issue 11 §5): the daily 01:05 job fires at 01:05
in Shanghai, not at 01:05 on the server's (UTC) clock; admins' transfer schedules and sync
targets are due by the same zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app import clock, scheduler
from app.models import SyncTarget, TransferSchedule
from app.services import schedules

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 11, 30, 13, 9, tzinfo=UTC)  # 21:09 in Shanghai


def _job(job_id: str) -> scheduler.JobDefinition:
    return next(job for job in scheduler.JOBS if job.id == job_id)


def test_the_0105_job_next_fires_at_0105_in_shanghai(ctx: Any) -> None:
    trigger = scheduler.job_trigger(_job("deactivate_expired_users"))
    fire = trigger.get_next_fire_time(None, AT.astimezone(trigger.timezone))
    assert fire.isoformat() == "2026-12-01T01:05:00+08:00"
    assert fire.astimezone(UTC) == datetime(2026, 11, 30, 17, 5, tzinfo=UTC)


def test_the_jobs_page_lists_next_runs_in_shanghai(ctx: Any) -> None:
    with clock.frozen(AT):
        rows = {row["id"]: row for row in scheduler.list_jobs()}
    assert rows["deactivate_expired_users"]["next_run_time"].isoformat() == "2026-12-01T01:05:00+08:00"
    assert rows["verify_audit_chain"]["next_run_time"].isoformat() == "2026-12-01T02:00:00+08:00"


def test_the_started_scheduler_keeps_the_zone_on_every_job(app: Any, tmp_path: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", True)
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    started = scheduler.start_once(app)
    assert started is not None
    try:
        job = started.get_job("deactivate_expired_users")
        local = job.next_run_time.astimezone(SHANGHAI)
        assert (local.hour, local.minute) == (1, 5) and job.trigger.timezone.key == "Asia/Shanghai"
    finally:
        started.remove_all_jobs()
        started.shutdown(wait=False)
        scheduler._lock_file.close()


@pytest.mark.parametrize("model", [TransferSchedule, SyncTarget])
def test_schedules_are_due_at_their_cron_time_in_shanghai(ctx: Any, model: type) -> None:
    """``5 1 * * *`` is 01:05 Shanghai = 17:05 UTC the day before."""
    item = model(cron="5 1 * * *", last_run_at=datetime(2026, 11, 30, 16, 0, tzinfo=UTC))
    fire = datetime(2026, 11, 30, 17, 5, tzinfo=UTC)
    assert not schedules.is_due(item, fire - timedelta(seconds=1))
    assert schedules.is_due(item, fire)
    assert not schedules.is_due(model(cron="5 1 * * *", last_run_at=datetime(2026, 11, 30, 0, 0, tzinfo=UTC)),
                                datetime(2026, 11, 30, 1, 5, tzinfo=UTC))  # 01:05 UTC is 09:05 in Shanghai
