"""The task queue's database claim: a job runs once whatever the broker delivers, a worker
that dies mid-import loses no row and imports none twice, and the sweep picks it up."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.clock import utc_now
from app.extensions import appbuilder, db
from app.models import Customer, TransferJob
from app.services import background, tasks
from app.services.importing import jobs
from tests.app.services.importing.conftest import write_xlsx

HEADERS = ["客户名称", "联系方式"]


class WorkerKilled(BaseException):
    """The process dies: nothing of ours catches it (as SIGKILL would not be caught)."""


def _workbook(path: Path, count: int) -> Path:
    """``count`` customers, one a row, under the manual's two required headers."""
    return write_xlsx(path, {"s": [HEADERS, *([f"Queue Co {n:02d}", f"1381234{n:04d}"] for n in range(count))]})


def _queued_job(username: str, path: Path, commit: bool, **fields: Any) -> int:
    """A job as ``jobs.start`` leaves it (mapped, queued), without running it."""
    user = appbuilder.sm.find_user(username=username)
    job = jobs.create_job(user, "customer", path.name, path.read_bytes(), **fields)
    _, job.mapping = jobs.propose_mapping(job)
    job.status, job.dry_run, job.lease_until = "queued", not commit, tasks.queued_until()
    db.session.commit()
    return job.id


def _names() -> list[str]:
    return db.session.scalars(select(Customer.name).where(Customer.name.like("Queue Co %"))
                              .order_by(Customer.name)).all()


def _kill_at_chunk(monkeypatch: Any, chunk: int) -> None:
    """The worker dies just before chunk ``chunk`` (1-based) commits."""
    seen = {"chunks": 0}
    check = tasks.check_cancel

    def dying(job_id: int) -> None:
        check(job_id)
        seen["chunks"] += 1
        if seen["chunks"] == chunk + 1:  # the first call is before the run, then one per chunk
            raise WorkerKilled

    monkeypatch.setattr(tasks, "check_cancel", dying)


def _expire_lease(job_id: int) -> None:
    db.session.execute(update(TransferJob).where(TransferJob.id == job_id)
                       .values(lease_until=utc_now() - timedelta(seconds=1)))
    db.session.commit()


def test_a_second_delivery_of_a_running_job_does_nothing(app: Any, ctx: Any, tmp_path: Path) -> None:
    job_id = _queued_job("rep_a", _workbook(tmp_path / "a.xlsx", 3), commit=True)
    token = tasks.claim(job_id)
    assert token and token.startswith(tasks.worker_name())
    assert tasks.claim(job_id) is None  # the lease holds: the broker's redelivery is refused
    job = jobs.execute(job_id, commit=True)
    assert job.status == "running" and _names() == []
    tasks.release(job_id)


def test_a_worker_killed_mid_import_loses_no_row_and_imports_none_twice(
        app: Any, ctx: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 2)
    job_id = _queued_job("rep_a", _workbook(tmp_path / "kill.xlsx", 7), commit=True)
    _kill_at_chunk(monkeypatch, 3)
    with pytest.raises(WorkerKilled):
        jobs.execute(job_id, commit=True)
    db.session.rollback()  # the dead worker's transaction
    job = db.session.get(TransferJob, job_id)
    assert (job.status, job.processed_rows, job.created) == ("running", 4, 4)  # two chunks committed
    assert len(_names()) == 4
    assert tasks.requeue_stalled() == []  # its lease still holds: nobody takes it over yet
    monkeypatch.undo()
    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 2)
    _expire_lease(job_id)
    assert tasks.requeue_stalled() == [job_id]  # the minute sweep: queued again, run inline here
    db.session.expire_all()
    job = db.session.get(TransferJob, job_id)
    assert (job.status, job.processed_rows, job.total_rows, job.created, job.rejected) == ("done", 7, 7, 7, 0)
    assert job.attempts == 2 and job.options["resumed_after"] == 4
    assert _names() == [f"Queue Co {n:02d}" for n in range(7)]  # each once
    assert tasks.requeue_stalled() == []
    assert jobs.execute(job_id, commit=True).status == "done"  # a late third delivery: nothing
    assert len(_names()) == 7


def test_a_killed_dry_run_starts_again_from_the_first_row(app: Any, ctx: Any, tmp_path: Path,
                                                          monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 2)
    job_id = _queued_job("rep_a", _workbook(tmp_path / "dry.xlsx", 5), commit=False)
    _kill_at_chunk(monkeypatch, 2)
    with pytest.raises(WorkerKilled):
        jobs.execute(job_id, commit=False)
    db.session.rollback()
    monkeypatch.undo()
    _expire_lease(job_id)
    assert tasks.requeue_stalled() == [job_id]
    db.session.expire_all()
    job = db.session.get(TransferJob, job_id)
    assert (job.status, job.processed_rows, job.created) == ("previewed", 5, 5)
    assert _names() == []  # a dry run never writes


def test_a_job_queued_too_long_is_sent_again_once(app: Any, ctx: Any, tmp_path: Path, monkeypatch: Any) -> None:
    job_id = _queued_job("rep_a", _workbook(tmp_path / "lost.xlsx", 2), commit=True)
    sent: list[tuple] = []
    monkeypatch.setattr(background, "submit", lambda f, *args: sent.append((f.__name__, args)))
    assert tasks.requeue_stalled() == []  # within its patience
    _expire_lease(job_id)
    assert tasks.requeue_stalled() == [job_id]
    assert sent == [("execute", (job_id, True))]
    assert tasks.requeue_stalled() == []  # queued again with a fresh patience: not sent twice


def test_only_allowed_functions_run_on_workers(app: Any, ctx: Any) -> None:
    assert tasks.resolve("app.services.importing.jobs.execute") is jobs.execute
    with pytest.raises(tasks.UnknownTask):
        tasks.resolve("os.system")
    with pytest.raises(tasks.UnknownTask):
        tasks.run_named("subprocess.run", [["true"]])
    assert tasks.resolve("app.services.tasks.requeue_stalled") is tasks.requeue_stalled
    assert tasks.resolve(tasks.allow(test_only_allowed_functions_run_on_workers))


def test_celery_mode_sends_the_named_task(app: Any, ctx: Any, monkeypatch: Any) -> None:
    from app import celery_app

    monkeypatch.setitem(app.config, "CRM_IMPORT_INLINE", False)
    monkeypatch.setitem(app.config, "CRM_TASK_QUEUE", "celery")
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", "memory://")
    monkeypatch.delitem(app.extensions, "crm_celery", raising=False)
    sent: list[tuple] = []

    class Client:
        def send_task(self, name: str, args: list) -> None:
            sent.append((name, args))

    monkeypatch.setattr(celery_app, "client", lambda _app: Client())
    background.submit(jobs.execute, 41, True)
    assert sent == [("crm.run", ["app.services.importing.jobs.execute", [41, True]])]
    with pytest.raises(tasks.UnknownTask):
        background.submit(print, "x")


def test_a_broker_that_is_down_leaves_the_job_to_the_sweep(app: Any, ctx: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_INLINE", False)
    monkeypatch.setitem(app.config, "CRM_TASK_QUEUE", "celery")
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.delitem(app.extensions, "crm_celery", raising=False)
    assert tasks.send(jobs.execute, (1, True)) is False  # logged, no exception for the request
    app.extensions.pop("crm_celery", None)


def test_cancel_is_for_the_owner_or_an_admin(app: Any, ctx: Any, tmp_path: Path) -> None:
    job_id = _queued_job("rep_a", _workbook(tmp_path / "c.xlsx", 2), commit=True)
    with pytest.raises(PermissionError):
        tasks.request_cancel(job_id, appbuilder.sm.find_user(username="manager"))
    assert tasks.request_cancel(job_id, appbuilder.sm.find_user(username="admin")) is True
    job = jobs.execute(job_id, commit=True)  # it was still waiting in the queue
    assert (job.status, job.error) == ("cancelled", "Cancelled; nothing was saved.")
    assert _names() == []
    assert tasks.request_cancel(job_id, appbuilder.sm.find_user(username="rep_a")) is False  # ended
    from app.models import AuditLog

    assert db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "job_cancel")) == 1


def test_the_worker_command_needs_the_celery_queue(app: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "CRM_TASK_QUEUE", "threads")
    result = app.test_cli_runner().invoke(args=["crm", "worker"])
    assert result.exit_code != 0 and "CRM_TASK_QUEUE=celery" in result.output
    monkeypatch.setitem(app.config, "CRM_TASK_QUEUE", "celery")
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", None)
    monkeypatch.setitem(app.config, "REDIS_URL", None)
    result = app.test_cli_runner().invoke(args=["crm", "worker"])
    assert result.exit_code != 0 and "needs CELERY_BROKER_URL or REDIS_URL" in result.output


def test_the_scheduler_command_runs_the_scheduler_loop(app: Any, monkeypatch: Any) -> None:
    from app import scheduler

    ran: list[Any] = []
    monkeypatch.setattr(scheduler, "run_forever", lambda flask_app: ran.append(flask_app), raising=False)
    result = app.test_cli_runner().invoke(args=["crm", "scheduler"])
    assert result.exit_code == 0, result.output
    assert ran == [app]


def test_the_sweep_is_a_minute_job_of_the_scheduler(app: Any) -> None:
    from app import scheduler

    sweep = [job for job in scheduler.JOBS if job.id == "requeue_stalled_jobs"]
    assert len(sweep) == 1 and sweep[0].cron == {"minute": "*"}


def test_settings_come_from_the_environment() -> None:
    code = ("import config; c = config.Config; print(c.CRM_TASK_QUEUE, c.CELERY_BROKER_URL, "
            "c.RATELIMIT_STORAGE_URI, c.CRM_JOB_LEASE_SECONDS)")
    root = Path(__file__).resolve().parents[3]
    base = {key: value for key, value in os.environ.items()
            if key not in ("REDIS_URL", "CELERY_BROKER_URL", "RATELIMIT_STORAGE_URI", "CRM_TASK_QUEUE",
                           "CRM_JOB_LEASE_SECONDS")}
    embedded = subprocess.run([sys.executable, "-c", code], cwd=root, env=base, capture_output=True, text=True)
    assert embedded.stdout.split() == ["threads", "None", "memory://", "60"]
    production = {**base, "REDIS_URL": "redis://cache:6379/0", "CRM_TASK_QUEUE": "celery",
                  "CRM_JOB_LEASE_SECONDS": "30"}
    scaled = subprocess.run([sys.executable, "-c", code], cwd=root, env=production, capture_output=True, text=True)
    assert scaled.stdout.split() == ["celery", "redis://cache:6379/0", "redis://cache:6379/0", "30"]


def test_an_all_or_nothing_import_taken_over_commits_nothing(app: Any, ctx: Any, tmp_path: Path,
                                                               monkeypatch: Any) -> None:
    """Its worker stalled past the lease and another delivery took the job: the stalled
    one's single commit is refused (it carries the claim), so the rows come in once."""
    from app.services.importing import engine

    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 2)
    job_id = _queued_job("rep_a", _workbook(tmp_path / "aon.xlsx", 5), commit=True, all_or_nothing=True)
    original = engine.ImportRun._chunk

    def taken_over(run: Any, rows: list, lines: list) -> None:
        if not run.result.rows:  # before the first chunk: another delivery claims the job
            with db.engine.begin() as connection:
                connection.execute(update(TransferJob.__table__).where(TransferJob.id == job_id)
                                   .values(claimed_by="elsewhere:1/abcd"))
        original(run, rows, lines)

    monkeypatch.setattr(engine.ImportRun, "_chunk", taken_over)
    job = jobs.execute(job_id, commit=True)
    assert (job.status, job.claimed_by) == ("running", "elsewhere:1/abcd")  # left to its new owner
    assert _names() == []
