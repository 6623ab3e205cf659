"""Unhandled errors become ``error_event`` rows without request data; scheduled jobs are
recorded in ``job_run`` where they run (a raise or a False result is a failure, admins told);
the scheduler submits nothing in maintenance mode."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app import scheduler
from app.extensions import db
from app.models import Notification
from app.models.operations import ErrorEvent, JobRun
from app.services import background, messages
from app.services.backups import maintenance
from app.services.monitoring import health, jobs

SECRET = "13812345678-secret"


def test_an_unhandled_error_is_recorded_without_request_data(app: Any, client: Any, auth: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise ValueError("bad thing happened\nsecond line with details")

    auth.login("admin")
    monkeypatch.setitem(app.view_functions, "NotificationsView.list", boom)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    response = client.get(f"/notifications/?q={SECRET}")
    assert response.status_code == 500
    with app.app_context():
        event = db.session.scalars(select(ErrorEvent)).one()
        assert (event.kind, event.where, event.message) == ("ValueError", "NotificationsView.list", "bad thing happened")
        assert event.user_id is not None
        assert SECRET not in repr((event.kind, event.where, event.message))
        groups = health.error_groups(event.at.replace(year=event.at.year - 1))
        assert [(g.kind, g.where, g.count) for g in groups] == [("ValueError", "NotificationsView.list", 1)]


def failing_job() -> None:
    raise RuntimeError("disk on fire")


def false_job() -> bool:
    return False


def good_job(*_args: Any) -> int:
    return 7


@pytest.fixture
def scheduled_test_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "JOBS", list(scheduler.JOBS))
    for func in (failing_job, false_job, good_job):
        scheduler.register(func.__name__, func.__name__, func, {"hour": 4})


def _runs(app: Any) -> dict[str, tuple[bool | None, str | None]]:
    with app.app_context():
        return {r.job_id: (r.ok, r.error) for r in db.session.scalars(select(JobRun)) if r.finished_at}


def test_scheduled_jobs_are_recorded_where_they_run(app: Any, scheduled_test_jobs: None) -> None:
    with app.app_context():
        scheduler.enqueue("good_job")
        scheduler.enqueue("false_job")
        with pytest.raises(RuntimeError):
            scheduler.enqueue("failing_job")  # inline (tests): the error reaches the caller
        background.submit(good_job, 1)  # not the job's own call (arguments): not a job run
    runs = _runs(app)
    assert runs == {"good_job": (True, None), "false_job": (False, "returned False"),
                    "failing_job": (False, "RuntimeError: disk on fire")}
    with app.app_context():
        told = db.session.scalars(select(Notification).where(Notification.event == "job_failed")).all()
        assert {messages.render(n.params["job"]) for n in told} == {"false_job", "failing_job"}
        assert db.session.scalars(select(ErrorEvent.where)).all() == ["job:failing_job"]
        assert [r.job_id for r in health.failed_jobs(db.session.scalars(select(JobRun.started_at)).first()
                                                     .replace(year=2000))] != []


def test_threads_and_celery_paths_record_too(app: Any, scheduled_test_jobs: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.services import tasks

    with app.app_context():
        background._in_app(app, false_job)  # the thread pool's wrapper
        tasks.run_named(tasks.dotted(good_job), [])  # a Celery worker
    assert _runs(app) == {"false_job": (False, "returned False"), "good_job": (True, None)}


def test_maintenance_mode_submits_nothing(app: Any, scheduled_test_jobs: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maintenance, "active", lambda: True)
    with app.app_context():
        scheduler.enqueue("failing_job")  # would raise if it ran
    assert _runs(app) == {}


def test_the_audit_chain_state_is_the_last_check(app: Any) -> None:
    with app.app_context():
        assert health.audit_chain() is None
        health.verify_audit_chain_now()
        chain = health.audit_chain()
        assert chain is not None and chain.ok is True
        assert jobs.latest("verify_audit_chain").id == chain.id


def test_a_failed_job_is_named_in_the_readers_language(app: Any) -> None:
    with app.app_context():
        label = jobs.job_label("daily_checklist")
        assert messages.render(label, "zh") == "每日运维检查清单"
        assert messages.render(label, "en") == "Daily maintenance checklist"
        assert jobs.job_label("no_such_job") == "no_such_job"
