"""The scheduler's cron runs in CRM_TIMEZONE (issue 11 §5): the daily 01:05 job fires at 01:05
in Shanghai, not at 01:05 on the server's (UTC) clock; admins' transfer schedules and sync
targets are due by the same zone.

Issue 20: a due job is only submitted to the task queue (``enqueue``); missed runs run once
after an outage (coalesce, no misfire limit, next run times kept in the job store); one
process is active and another one in the same process/instance waits as standby. The
hand-over between real processes is in ``test_scheduler_handover.py``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from sqlalchemy import delete

from app import clock, scheduler
from app.extensions import db
from app.models import SyncTarget, TransferSchedule
from app.services import background, schedules, tasks
from tests.polling import poll

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 11, 30, 13, 9, tzinfo=UTC)  # 21:09 in Shanghai


def _job(job_id: str) -> scheduler.JobDefinition:
    return next(job for job in scheduler.JOBS if job.id == job_id)




def stop(supervisor: scheduler.Supervisor) -> None:
    supervisor.stop()
    supervisor.thread.join(30)
    assert not supervisor.thread.is_alive(), "the scheduler thread did not stop"
    scheduler._supervisor = None


@pytest.fixture
def empty_job_store(app: Any) -> Any:
    """The test database's APScheduler table, emptied before and after the test."""
    table = scheduler._jobstore
    with app.app_context():
        jobs_t = table(db.engine).jobs_t
        with db.engine.begin() as conn:
            conn.execute(delete(jobs_t))
        yield
        with db.engine.begin() as conn:
            conn.execute(delete(jobs_t))


@pytest.fixture
def submitted(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[Callable[..., Any]]:
    """The task queue replaced by a list of what was submitted (with the queue's own
    inline shortcut off, as in production)."""
    calls: list[Callable[..., Any]] = []

    def fake_submit(func: Callable[..., Any], *args: Any) -> None:
        from flask import current_app

        assert current_app and args == ()
        calls.append(func)

    monkeypatch.setitem(app.config, "CRM_IMPORT_INLINE", False)
    monkeypatch.setattr(background, "submit", fake_submit)
    return calls


ran: list[str] = []


def work_of_a_test_job() -> None:
    ran.append("ran")


def test_the_0105_job_next_fires_at_0105_in_shanghai(ctx: Any) -> None:
    trigger = scheduler.job_trigger(_job("deactivate_expired_users"))
    fire = trigger.get_next_fire_time(None, AT.astimezone(trigger.timezone))
    assert fire.isoformat() == "2026-12-01T01:05:00+08:00"
    assert fire.astimezone(UTC) == datetime(2026, 11, 30, 17, 5, tzinfo=UTC)


def test_the_jobs_page_lists_next_runs_in_shanghai(ctx: Any, empty_job_store: None) -> None:
    with clock.frozen(AT):
        rows = {row["id"]: row for row in scheduler.list_jobs()}
    assert rows["deactivate_expired_users"]["next_run_time"].isoformat() == "2026-12-01T01:05:00+08:00"
    assert rows["verify_audit_chain"]["next_run_time"].isoformat() == "2026-12-01T02:00:00+08:00"


def test_the_started_scheduler_keeps_the_zone_on_every_job(app: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                           empty_job_store: None) -> None:
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", True)
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    started = scheduler.start_once(app)
    assert started is not None
    try:
        poll(started.active.is_set, 30, "the embedded scheduler thread never became active")
        job = started.scheduler.get_job("deactivate_expired_users")
        local = job.next_run_time.astimezone(SHANGHAI)
        assert (local.hour, local.minute) == (1, 5) and job.trigger.timezone.key == "Asia/Shanghai"
    finally:
        stop(started)


@pytest.mark.parametrize("model", [TransferSchedule, SyncTarget])
def test_schedules_are_due_at_their_cron_time_in_shanghai(ctx: Any, model: type) -> None:
    """``5 1 * * *`` is 01:05 Shanghai = 17:05 UTC the day before."""
    item = model(cron="5 1 * * *", last_run_at=datetime(2026, 11, 30, 16, 0, tzinfo=UTC))
    fire = datetime(2026, 11, 30, 17, 5, tzinfo=UTC)
    assert not schedules.is_due(item, fire - timedelta(seconds=1))
    assert schedules.is_due(item, fire)
    assert not schedules.is_due(model(cron="5 1 * * *", last_run_at=datetime(2026, 11, 30, 0, 0, tzinfo=UTC)),
                                datetime(2026, 11, 30, 1, 5, tzinfo=UTC))  # 01:05 UTC is 09:05 in Shanghai


def test_a_due_job_is_only_submitted_to_the_queue(app: Any, submitted: list, monkeypatch: pytest.MonkeyPatch,
                                                  empty_job_store: None) -> None:
    """What APScheduler stores and calls for every job is ``enqueue(job_id)``, which submits
    the job's work and runs nothing itself (the work runs on the task queue)."""
    monkeypatch.setattr(scheduler, "JOBS", list(scheduler.JOBS))
    scheduler.register("test_job", "A test job", work_of_a_test_job, {"minute": "*"})
    started = scheduler.activate(app, paused=True)
    try:
        stored = {job.id: job for job in started.get_jobs()}
        assert set(stored) == {job.id for job in scheduler.JOBS}
        for job in stored.values():
            assert (job.func, job.args, job.coalesce, job.misfire_grace_time) == (scheduler.enqueue, (job.id,),
                                                                                   True, None)
            job.func(*job.args)
    finally:
        started.shutdown(wait=False)
    assert sorted(submitted, key=id) == sorted(
        [job.func for job in scheduler.JOBS], key=id)
    assert ran == [], "the scheduler ran a job's work itself"


def test_register_refuses_work_the_queue_could_not_find(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loading the app allowed every job's work on the queue (the sync's tick included).
    assert {tasks.dotted(job.func) for job in scheduler.JOBS} <= tasks.ALLOWED
    assert "sync.schedule.run_due_targets" in tasks.ALLOWED
    monkeypatch.setattr(scheduler, "JOBS", list(scheduler.JOBS))
    with pytest.raises(ValueError, match="module-level function"):
        scheduler.register("nested", "A closure", lambda: None, {"minute": "*"})
    scheduler.register("run_transfer_schedules", "Redefined", work_of_a_test_job, {"minute": "*/5"})
    assert [job.name for job in scheduler.JOBS if job.id == "run_transfer_schedules"] == ["Redefined"]
    # A task worker (any machine) may run what was registered, and every built-in job.
    for job in scheduler.JOBS:
        assert tasks.resolve(tasks.dotted(job.func)) is job.func


def _seed(app: Any, due: dict[str, datetime]) -> None:
    """Leave the job store as a scheduler that went down would: ``due`` jobs' next run times
    in the past."""
    with app.app_context():
        store = scheduler.JobScheduler(jobstores={"default": scheduler._jobstore()}, timezone=clock.crm_zone())
        store.start(paused=True)
        for job_id, at in due.items():
            store.add_job(scheduler.enqueue, scheduler.job_trigger(_job(job_id)), args=[job_id], id=job_id,
                          next_run_time=at, **scheduler.JOB_DEFAULTS)
        store.shutdown(wait=False)


def test_runs_missed_while_down_run_once_when_a_scheduler_is_back(app: Any, submitted: list,
                                                                 empty_job_store: None) -> None:
    """Ten missed minutes of the minute tick run it once; the daily job missed two days ago
    runs once too (not skipped until tomorrow); both then wait for their next time."""
    now = clock.utc_now()
    _seed(app, {"run_transfer_schedules": now - timedelta(minutes=10),
                "deactivate_expired_users": now - timedelta(days=2)})
    events: list[Any] = []
    started = scheduler.activate(app, paused=True)
    started.add_listener(events.append, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    try:
        started.resume()
        poll(lambda: len(events) >= 2, 30, f"the missed jobs did not run: {events}")
        next_runs = {job.id: job.next_run_time for job in started.get_jobs()}
    finally:
        started.shutdown(wait=False)
    assert sorted((event.code, event.job_id) for event in events) == [
        (EVENT_JOB_EXECUTED, "deactivate_expired_users"), (EVENT_JOB_EXECUTED, "run_transfer_schedules")]
    assert sorted(func.__name__ for func in submitted) == ["deactivate_expired_users", "run_transfer_schedules"]
    assert all(at > now for at in next_runs.values()), next_runs


def test_a_job_whose_cron_changed_gets_a_new_next_run(app: Any, submitted: list, monkeypatch: pytest.MonkeyPatch,
                                                      empty_job_store: None) -> None:
    _seed(app, {"verify_audit_chain": clock.utc_now() - timedelta(days=1)})
    monkeypatch.setattr(scheduler, "JOBS", [scheduler.JobDefinition(
        "verify_audit_chain", "Verify", scheduler.verify_audit_chain, {"hour": 3, "minute": 0})])
    started = scheduler.activate(app, paused=True)
    try:
        job = started.get_job("verify_audit_chain")
    finally:
        started.shutdown(wait=False)
    local = job.next_run_time.astimezone(SHANGHAI)
    assert job.next_run_time > clock.utc_now() and (local.hour, local.minute) == (3, 0)


def test_one_process_is_active_the_other_standby_until_it_stops(app: Any, tmp_path: Any, submitted: list,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 empty_job_store: None) -> None:
    """Two supervisors on one deployment (the file lock in one instance folder, or the
    advisory lock on PostgreSQL): one active; when it stops the standby takes over, and
    the jobs page's ``status()`` names the active process."""
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    monkeypatch.setitem(app.config, "CRM_SCHEDULER_STANDBY_SECONDS", 0.1)
    first, second = scheduler.Supervisor(app), scheduler.Supervisor(app)
    for supervisor in (first, second):
        supervisor.thread = threading.Thread(target=supervisor.run, daemon=True)
    first.thread.start()
    try:
        poll(first.active.is_set, 30, "the first scheduler never became active")
        second.thread.start()
        with app.app_context():
            state = scheduler.status()
        assert state["active"] and state["since"] is not None and state["pid"] == os.getpid(), state
        assert not second.active.is_set() and second.scheduler is None  # a standby never touches the store
        stop(first)
        poll(second.active.is_set, 30, "the standby did not take over")
    finally:
        for supervisor in (first, second):
            stop(supervisor)
    with app.app_context():
        assert scheduler.status()["active"] is False


def test_a_stopping_scheduler_leaves_due_runs_to_the_next_one(app: Any, submitted: list,
                                                              empty_job_store: None) -> None:
    """Shutting down (SIGTERM, lost lock) does not advance a due job it will not run:
    the next active scheduler still finds it due."""
    due = clock.utc_now() - timedelta(minutes=3)
    _seed(app, {"run_transfer_schedules": due})
    started = scheduler.activate(app, paused=True)
    started.shutdown(wait=False)
    with app.app_context():
        rows = {row["id"]: row for row in scheduler.list_jobs()}
    assert abs((rows["run_transfer_schedules"]["next_run_time"] - due).total_seconds()) < 1, rows
    assert submitted == []


def test_refresh_statistics_runs_sqlite_optimize_nightly(app: Any) -> None:
    with app.app_context():
        ran = scheduler.refresh_statistics()
        assert ran is (db.engine.dialect.name == "sqlite")
        assert scheduler.definition("refresh_statistics").cron == {"hour": 3, "minute": 30}


def test_a_company_zone_change_moves_every_daily_job(app: Any, submitted: list, monkeypatch: pytest.MonkeyPatch,
                                                     empty_job_store: None) -> None:
    """Issue 19: an admin sets the company zone to Europe/London; the active scheduler's next
    tick rebuilds the triggers, so the 01:05 job fires at 01:05 London time, not Shanghai's."""
    from app.services import company

    monkeypatch.setattr(company, "REFRESH_SECONDS", 3600)  # no reload from the database in between
    monkeypatch.setattr(scheduler, "JOBS", [_job("deactivate_expired_users")])
    started = scheduler.activate(app, paused=True)
    try:
        assert started.follow_zone() is False  # nothing changed since the triggers were built
        clock.set_company_zone("Europe/London")
        try:
            assert started.follow_zone() is True
            job = started.get_job("deactivate_expired_users")
            local = job.next_run_time.astimezone(ZoneInfo("Europe/London"))
            assert (local.hour, local.minute) == (1, 5) and job.trigger.timezone.key == "Europe/London"
        finally:
            clock.set_company_zone(None)
        assert started.follow_zone() is True
        assert started.get_job("deactivate_expired_users").trigger.timezone.key == "Asia/Shanghai"
    finally:
        started.shutdown(wait=False)
