"""A stalled erasure run resumes on its own (issue 19, "a stalled erasure run is not
re-queued on its own"): the task queue's minute sweep (``tasks.requeue_stalled``) queues
again a run whose worker died, never one whose worker is alive, and sends again a run
whose message was lost; the erasure then runs once, from the start, and the run page says
what happens."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from app.clock import utc_now
from app.extensions import db
from app.models import AuditLog, Customer
from app.models.erasure import ErasureRun
from app.services import audit, erasure, tasks
from app.services.audit import ERASED, verify_chain
from app.services.erasure import runs, sweep
from app.services.errors import RuleViolation
from tests.app.services import test_erasure as base
from tests.app.services.test_erasure import PHONE, _ledger_lines, _user

#: The erasure tests' fixtures: a customer with a person's data; the task queue held back.
person, queue = base.person, base.queue


class WorkerKilled(BaseException):
    """The worker process dies (kill -9): no ``except Exception`` in the run sees it."""


class _NotHere(set):
    """This process's list of its runs, as another process sees it: empty."""

    def __contains__(self, item: object) -> bool:
        return False


def _age(run_id: int, **values) -> None:
    db.session.execute(update(ErasureRun).where(ErasureRun.id == run_id).values(**values))
    db.session.commit()


def _erasure_entries() -> int:
    return db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == audit.ERASURE_ACTION))


def test_a_run_whose_worker_died_is_resumed_by_the_sweep_and_erases_once(app, person, queue, backup_dirs,
                                                                         monkeypatch):
    real = sweep.everywhere

    def dying(*args, **kwargs):
        raise WorkerKilled

    monkeypatch.setattr(sweep, "everywhere", dying)
    with app.app_context():
        run_id = erasure.erase(_user("admin"), "customer", person, "本人要求删除").id
        db.session.remove()
        with pytest.raises(WorkerKilled):
            queue.run()
        db.session.rollback()  # the dead worker's transaction goes with its connection
        db.session.remove()
        monkeypatch.setattr(sweep, "everywhere", real)
        run = db.session.get(ErasureRun, run_id)
        assert (run.status, run.attempts) == ("running", 1)
        assert db.session.get(Customer, person).contact_phone == PHONE  # nothing of it stayed
        assert tasks.requeue_stalled() == [] and not queue  # within its lease: not taken over yet
        _age(run_id, started_at=utc_now() - tasks.lease() - timedelta(seconds=1))
        run = db.session.get(ErasureRun, run_id)
        assert runs.state(run)["orphaned"]  # the page can say its worker is gone
        tasks.requeue_stalled()  # the minute sweep, nobody pressing "Try again"
        assert len(queue) == 1
        run = db.session.get(ErasureRun, run_id)
        shown = runs.state(run)
        assert (shown["status"], shown["step"], shown["done"], shown["again"]) == ("queued", None, 0, True)
        assert not shown["retry"] and not shown["orphaned"]
        tasks.requeue_stalled()  # a second sweep sends it once only
        assert len(queue) == 1
        queue.run()
        db.session.remove()
        run = db.session.get(ErasureRun, run_id)
        assert (run.status, run.attempts, run.error) == ("done", 2, None)
        assert db.session.get(Customer, person).contact_phone == ERASED
        assert _erasure_entries() == 1 and verify_chain(db.session).ok
        assert not runs.state(run)["again"]
        db.session.remove()
    assert len(_ledger_lines(backup_dirs)) == 1


def test_a_run_whose_worker_is_alive_is_never_taken_over(app, person, queue, monkeypatch):
    """However old its claim, a run being carried is left alone by the sweep of another
    worker and by an admin's "Try again": two workers never sweep the same run."""
    monkeypatch.setattr(tasks, "lease", lambda: timedelta(seconds=-1))  # every claim looks expired
    monkeypatch.setattr(runs, "STALLED_AFTER", timedelta(seconds=-1))
    with app.app_context():
        if db.engine.dialect.name == "postgresql":  # the others are other processes: only the lock tells
            monkeypatch.setattr(runs, "_HERE", _NotHere())
    seen: dict = {}
    real = sweep.merge_search_index

    def elsewhere():  # another worker's minute sweep and an admin, while this run works
        with app.app_context():
            try:
                seen["sent"] = tasks.requeue_stalled()
                other = db.session.get(ErasureRun, seen["run_id"])
                seen["stalled"] = runs.stalled(other)
                try:
                    runs.again(other)
                    seen["again"] = "queued"
                except RuleViolation:
                    seen["again"] = "refused"
            finally:
                db.session.remove()

    def watched():
        seen["run_id"] = db.session.scalars(select(ErasureRun.id)).one()
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join(30)
        real()

    monkeypatch.setattr(sweep, "merge_search_index", watched)
    with app.app_context():
        run_id = erasure.erase(_user("admin"), "customer", person, "本人要求删除").id
        db.session.remove()
        queue.run()
        assert seen == {"run_id": run_id, "sent": [], "stalled": False, "again": "refused"}
        assert not queue  # nothing sent again
        run = db.session.get(ErasureRun, run_id)
        assert (run.status, run.attempts) == ("done", 1)
        assert _erasure_entries() == 1 and verify_chain(db.session).ok


def test_a_delivery_whose_attempt_was_taken_over_writes_nothing(app, person, queue, monkeypatch):
    """A worker that stalled between its claim and its hold (e.g. paused) finds its
    attempt queued again by the sweep and stops; the new delivery does the erasure."""
    with app.app_context():
        run_id = erasure.erase(_user("admin"), "customer", person, "本人要求删除").id
        db.session.remove()
        func_, args = queue.pop(0)
        worker = db.session()  # the delivery's session: right after its claim commits, the sweep runs
        taken_over = []

        def sweep_meanwhile(session):
            if not taken_over:
                with db.engine.begin() as conn:
                    taken_over.append(conn.execute(update(ErasureRun.__table__).where(
                        ErasureRun.id == run_id, ErasureRun.status == "running")
                        .values(status="queued", started_at=utc_now())).rowcount)

        event.listen(worker, "after_commit", sweep_meanwhile)
        try:
            func_(*args)
        finally:
            event.remove(worker, "after_commit", sweep_meanwhile)
        assert taken_over == [1]
        db.session.remove()
        run = db.session.get(ErasureRun, run_id)
        assert run.status == "queued" and db.session.get(Customer, person).contact_phone == PHONE
        assert _erasure_entries() == 0
        db.session.remove()
        runs.execute(run_id)  # the delivery the sweep sent
        db.session.remove()
        run = db.session.get(ErasureRun, run_id)
        assert (run.status, run.attempts) == ("done", 2)
        assert db.session.get(Customer, person).contact_phone == ERASED and _erasure_entries() == 1


def test_a_queued_run_whose_message_was_lost_is_sent_again_once(app, person, queue):
    with app.app_context():
        run_id = erasure.erase(_user("admin"), "customer", person, "本人要求删除").id
        queue.clear()  # the broker lost the message
        db.session.remove()
        assert tasks.requeue_stalled() == [] and not queue  # within a queued job's patience
        _age(run_id, created_at=utc_now() - timedelta(hours=1))
        tasks.requeue_stalled()
        assert [(f.__name__, a) for f, a in queue] == [("execute", (run_id,))]
        tasks.requeue_stalled()
        assert len(queue) == 1  # sent again with a fresh patience: not twice
        run = db.session.get(ErasureRun, run_id)
        seen = (run.status, run.attempts, run.started_at)
        assert runs._requeue(run_id, *seen) and not runs._requeue(run_id, *seen)  # two sweeps, one read
        queue.run()
        run = db.session.get(ErasureRun, run_id)
        assert (run.status, run.attempts) == ("done", 1)
        assert db.session.get(Customer, person).contact_phone == ERASED


def test_a_worker_dying_between_the_commit_and_the_ledger_leaves_the_line_to_the_sweep(
        app, person, queue, backup_dirs, monkeypatch):
    """The erasure committed (the run is done, so it is not run again) but its worker died
    before writing the ledger: the sweep writes the line, once, so a restore re-applies it."""
    def dying(*args, **kwargs):
        raise WorkerKilled

    real = erasure.ledger.record
    monkeypatch.setattr(erasure.ledger, "record", dying)
    with app.app_context():
        run_id = erasure.erase(_user("admin"), "customer", person, "本人要求删除").id
        db.session.remove()
        with pytest.raises(WorkerKilled):
            queue.run()
        db.session.remove()
        monkeypatch.setattr(erasure.ledger, "record", real)
        assert db.session.get(ErasureRun, run_id).status == "done" and not _ledger_lines(backup_dirs)
        tasks.requeue_stalled()
        assert not _ledger_lines(backup_dirs) and not queue  # within a lease: its worker may still write it
        _age(run_id, finished_at=utc_now() - tasks.lease() - timedelta(seconds=1))
        tasks.requeue_stalled()
        tasks.requeue_stalled()
        assert not queue  # a done run is never run again
        lines = _ledger_lines(backup_dirs)
        assert len(lines) == 1 and json.loads(lines[0])["record_id"] == person
        assert [item["record_id"] for item in erasure.ledger.since(utc_now() - timedelta(hours=1))] == [person]
