"""Erasure runs: the request queues, the task queue sweeps (issue 19; 001 隐私与合规).

The web request does what is bounded (admin, step-up, reason, loading the record in
scope), records an ``ErasureRun`` and hands it to ``background.submit``. ``execute``
(on the task queue) clears the record and every copy in ONE transaction — the audit
redactions are listed by the erasure entry, so the chain verifies; a failure rolls it
all back and the run says so, to be tried again — marks the run done in that same
transaction, then writes the ledger (exactly once per erasure) and tidies the database
files (VACUUM / WAL truncate).

Progress (step, steps done / total) is written on a short separate connection on a
server database; on SQLite (one process, one writer) it is kept in this process, like
``tasks.heartbeat``. At most one unfinished run per record (a unique partial index).

A run whose worker died is resumed on its own by the task queue's minute sweep
(``tasks.requeue_stalled`` calls ``requeue_stalled`` here): its transaction rolled back,
so nothing of it stayed and running it again from the start is safe. The run's *lease*
is its worker's open transaction, which dies with the worker: on PostgreSQL a
transaction-level advisory lock (``LOCK_CLASS``, run id), on SQLite (one process) this
process's list of runs plus SQLite's write lock, taken at the start. The sweep takes a
run over only when it can take that lock itself, with one conditional UPDATE on the
attempt it saw, so two workers never sweep the same run; a delivery that finds its
attempt taken over stops before writing anything.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from app.clock import utc_now
from app.extensions import db
from app.models.erasure import ACTIVE, DONE, FAILED, QUEUED, RUNNING, ErasureRun
from app.services import background, notifications, tasks
from app.services.errors import NotFound, RuleViolation

log = logging.getLogger(__name__)

#: error key -> message shown to the reader (in their language, at render time).
ERRORS = {
    "failed": _l("The erasure stopped on an error and changed nothing. Try again; if it fails "
                 "again, the error log (System health) has the details."),
    "gone": _l("The record no longer exists: there is nothing left to erase."),
}
#: Admins are told when a run fails (in-app and e-mail, in each admin's language).
FAILED_EVENT = notifications.declare_event(notifications.Event(
    "erasure_failed", _l("Personal data erasure failed"),
    _l("The erasure of %(code)s (#%(id)s) stopped on an error and changed nothing: try it again on its page "
       "(Organisation → Personal data erasure)."), (notifications.IN_APP, notifications.EMAIL)))
#: A run still unfinished this long after its worker was seen gone (or queued this long)
#: may also be tried again by an admin: the sweep that resumes it on its own within
#: ``tasks.lease()`` + a minute is evidently not running (no scheduler).
STALLED_AFTER = timedelta(minutes=30)
#: PostgreSQL: first key of the advisory lock a run's worker holds in its transaction
#: (b"ERAS" as int32; the second key is the run id; the scheduler's single-key lock
#: lives in another key space).
LOCK_CLASS = 0x45524153
#: SQLite only: run id -> (step, steps done, steps total) of runs in this process.
_LOCAL: dict[int, tuple[str, int, int]] = {}
#: Runs whose worker is in this process (the sweep leaves them alone), like ``tasks._ACTIVE``.
_HERE: set[int] = set()


@dataclass
class Summary:
    """What an erasure did: the fields cleared per row (names, never values), the audit
    entries redacted, sync rows marked, other rows swept (table -> count)."""

    record_type: str
    code: str
    fields: dict[str, list[str]]
    redacted: int
    sync_rows: int
    swept: dict[str, int] = field(default_factory=dict)
    audit_seq: int | None = None


def summary_of(run: ErasureRun) -> Summary | None:
    """The ``Summary`` of a done run (from its JSON), None before."""
    return Summary(**run.summary) if run.status == DONE and run.summary else None


def active(record_type: str, record_id: int) -> ErasureRun | None:
    """The unfinished (queued or running) run of one record, if any."""
    return db.session.scalars(select(ErasureRun).where(
        ErasureRun.record_type == record_type, ErasureRun.record_id == int(record_id),
        ErasureRun.finished_at.is_(None))).first()


def latest(record_type: str, record_id: int) -> ErasureRun | None:
    """The newest run of one record (any status), None when it was never erased here."""
    return db.session.scalars(select(ErasureRun).where(
        ErasureRun.record_type == record_type, ErasureRun.record_id == int(record_id))
        .order_by(ErasureRun.id.desc())).first()


def recent(limit: int = 10) -> list[ErasureRun]:
    """The newest runs, newest first (at most ``limit``)."""
    return list(db.session.scalars(select(ErasureRun).order_by(ErasureRun.id.desc()).limit(limit)))


def _since(run: ErasureRun) -> Any:
    """When a queued run was (last) handed to the queue, or a running run was claimed."""
    return run.started_at or run.created_at


def alive(run_id: int) -> bool:
    """Is a worker carrying run ``run_id`` now? This process's runs; on PostgreSQL, any
    transaction holding the run's advisory lock (a dead worker's lock went with its
    connection). Probed on a short connection of its own, released at once."""
    if run_id in _HERE:
        return True
    if db.engine.dialect.name != "postgresql":
        return False  # SQLite: one process, so a run not in it has no worker
    with db.engine.begin() as conn:
        return not conn.scalar(text("SELECT pg_try_advisory_xact_lock(:c, :r)"), {"c": LOCK_CLASS, "r": run_id})


def orphaned(run: ErasureRun, is_alive: Callable[[int], bool] | None = None) -> bool:
    """Running, claimed longer ago than a lease (``tasks.lease``) and no worker holds it
    (``is_alive``: the probe, ``alive``): its worker died and its transaction rolled back,
    so the sweep may run it again."""
    return (run.status == RUNNING and run.started_at is not None
            and utc_now() - run.started_at > tasks.lease() and not (is_alive or alive)(run.id))


def stalled(run: ErasureRun, is_alive: Callable[[int], bool] | None = None) -> bool:
    """Unfinished for longer than ``STALLED_AFTER`` with no worker on it (queued and never
    taken, or running with its worker gone; ``is_alive`` as in ``orphaned``): an admin may
    try it again. A run still being carried is never stalled, however long it takes."""
    since = _since(run)
    if run.status not in ACTIVE or since is None or utc_now() - since <= STALLED_AFTER:
        return False
    return run.status == QUEUED or not (is_alive or alive)(run.id)


def _busy(run: ErasureRun) -> RuleViolation:
    return RuleViolation({"record": str(_l(
        "An erasure of %(code)s is already under way (#%(id)d): wait for it, or try it again on its "
        "page if it has stopped.", code=run.code or run.record_id, id=run.id))})


def refuse_if_busy(record_type: str, record_id: int) -> None:
    """``RuleViolation`` ("record") when the record has an unfinished run."""
    busy = active(record_type, record_id)
    if busy is not None:
        raise _busy(busy)


def queue(record_type: str, record: Any, extras: tuple[str, ...], reason: str, user: Any) -> ErasureRun:
    """Record a queued run for ``record`` and commit it (the worker must see it).
    ``RuleViolation`` ("record") when another run of the record is unfinished, also when
    two requests race (the unique partial index decides)."""
    refuse_if_busy(record_type, record.id)
    run = ErasureRun(record_type=record_type, record_id=record.id, code=getattr(record, "code", None),
                     extra_fields=sorted(extras), reason=reason, status=QUEUED,
                     user_id=getattr(user, "id", None))
    try:
        with db.session.begin_nested():
            db.session.add(run)
    except IntegrityError:
        db.session.rollback()
        raise _busy(active(record_type, record.id) or run) from None
    db.session.commit()
    return run


def submit(run: ErasureRun) -> None:
    """Hand the run to the task queue (inline with ``CRM_IMPORT_INLINE``)."""
    submit_id(run.id)


def submit_id(run_id: int) -> None:
    """Hand run ``run_id`` to the task queue."""
    background.submit(execute, run_id)


def _not_again() -> RuleViolation:
    return RuleViolation({"run": str(_l("Only an erasure that failed or stopped can be tried again."))})


def _requeue(run_id: int, status: str, attempts: int, since: Any) -> bool:
    """Put a run back to queued if it is still in ``status`` at attempt ``attempts`` with
    ``started_at`` = ``since`` (what the caller saw; a second sweep finds them changed)
    and, when running, no worker holds it; commits. On PostgreSQL the
    run's advisory lock is taken in this transaction first, so a worker cannot start on
    it meanwhile. ``started_at`` then says when it was handed to the queue. Returns
    whether this caller put it back (then it must ``submit`` it); ``IntegrityError``
    when another run of the record is unfinished."""
    if run_id in _HERE:
        return False
    if db.engine.dialect.name == "postgresql" and not db.session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:c, :r)"), {"c": LOCK_CLASS, "r": run_id}):
        db.session.rollback()
        return False  # a worker holds it: alive
    taken = db.session.execute(
        update(ErasureRun).where(ErasureRun.id == run_id, ErasureRun.status == status,
                                 ErasureRun.attempts == attempts,
                                 ErasureRun.started_at.is_(None) if since is None else ErasureRun.started_at == since)
        .values(status=QUEUED, error=None, finished_at=None, started_at=utc_now(), step=None, steps_done=0)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(taken)


def check_again(run: ErasureRun) -> None:
    """``RuleViolation`` when ``run`` may not be queued again now: it is neither failed nor
    stalled, or another run of the record is under way. ``erasure.retry`` asks before the
    admin's step-up code is spent; ``again`` asks again as it claims the run."""
    if run.status != FAILED and not stalled(run):
        raise _not_again()
    other = active(run.record_type, run.record_id)
    if other is not None and other.id != run.id:
        raise _busy(other)


def again(run: ErasureRun) -> ErasureRun:
    """Queue a failed (or stalled) run again and commit; ``RuleViolation`` otherwise (also
    when the sweep or another admin queued it first), or when another run of the record
    is under way."""
    check_again(run)
    try:
        taken = _requeue(run.id, run.status, run.attempts, run.started_at)
    except IntegrityError:
        db.session.rollback()
        raise _busy(active(run.record_type, run.record_id) or run) from None
    db.session.refresh(run)
    if not taken:
        raise _not_again()
    return run


def requeue_stalled() -> list[int]:
    """Part of the task queue's minute sweep (``tasks.requeue_stalled``): queue again the
    runs whose worker died (``orphaned``) and send again those queued longer than a queued
    job's patience (``tasks.queued_until``: the message was lost). Each with one
    conditional UPDATE on the attempt seen, so two sweeps send it once and a second
    delivery does nothing (``_claim``); then write ledger lines a dead worker left out
    (``_ledger_catch_up``). Returns the run ids sent."""
    patience = tasks.queued_until() - utc_now()
    now = utc_now()
    found = db.session.scalars(select(ErasureRun).where(ErasureRun.finished_at.is_(None))
                               .order_by(ErasureRun.id).limit(tasks.SWEEP_BATCH)).all()
    due = [(run.id, run.status, run.attempts, run.started_at) for run in found
           if (run.status == QUEUED and now - _since(run) > patience) or orphaned(run)]
    db.session.rollback()  # end the read before each run's own short transaction
    sent = []
    for run_id, status, attempts, since in due:
        try:
            taken = _requeue(run_id, status, attempts, since)
        except IntegrityError:  # cannot happen for an unfinished run; never stop the sweep
            db.session.rollback()
            taken = False
        if taken:
            log.warning("Erasure run #%s (%s) stopped without its worker; queued again", run_id, status)
            submit_id(run_id)
            sent.append(run_id)
    _ledger_catch_up()
    return sent


#: How far back the sweep looks for done runs whose ledger line is missing.
LEDGER_CATCH_UP = timedelta(days=1)


def _ledger_catch_up() -> list[int]:
    """Write the ledger line of runs done (committed) whose worker died before writing it
    (``execute`` writes it right after the commit): done more than a lease ago, within
    ``LEDGER_CATCH_UP``, no line with their erasure entry's seq. Without it a restore of an
    older backup would not re-apply the erasure. Returns the run ids written."""
    from app.services.erasure import ledger

    now = utc_now()
    done = [run for run in db.session.scalars(select(ErasureRun).where(
        ErasureRun.status == DONE, ErasureRun.finished_at > now - LEDGER_CATCH_UP,
        ErasureRun.finished_at < now - tasks.lease())) if run.id not in _HERE and run.summary]
    if not done:
        return []
    known = {(item["record_type"], int(item["record_id"]), item.get("seq")) for item in ledger.entries()}
    written = []
    for run in done:
        summary = Summary(**run.summary)
        if (summary.record_type, run.record_id, summary.audit_seq) in known:
            continue
        log.warning("Erasure run #%s: its ledger line was missing (worker stopped); written now", run.id)
        ledger.record(summary, tuple(run.extra_fields or ()), run.record_id, at=run.finished_at)
        written.append(run.id)
    return written


def state(run: ErasureRun) -> dict[str, Any]:
    """What the progress page shows: status, step key, steps done and total (this
    process's figures on SQLite), the error message (translated), whether it may be
    tried again ("retry"), whether this is a later attempt ("again") and whether its
    worker is gone and it waits for the sweep to queue it again ("orphaned")."""
    step, done, total = _LOCAL.get(run.id, (run.step, run.steps_done, run.steps_total)) \
        if run.status == RUNNING else (run.step, run.steps_done, run.steps_total)
    probe = functools.cache(alive)  # one probe of the worker (a connection on PostgreSQL) per page
    return {"status": run.status, "step": step, "done": done, "total": total,
            "error": ERRORS.get(run.error or "", ERRORS["failed"]) if run.status == FAILED else None,
            "retry": run.status == FAILED or stalled(run, probe), "summary": summary_of(run),
            # an earlier attempt was cut short (worker died) or failed: this one starts over
            "again": (run.attempts or 0) > (1 if run.status == RUNNING else 0) and run.status in ACTIVE,
            # its worker is gone and the sweep has not queued it again yet (within a minute)
            "orphaned": orphaned(run, probe)}


# --- the worker's side ------------------------------------------------------------------


class Progress:
    """Publishes the step a run is on: ``start(step)`` before each step (``total`` known
    up front). Server databases: a short transaction of its own (the run's own work stays
    uncommitted); SQLite: this process's memory."""

    def __init__(self, run_id: int, total: int) -> None:
        self.run_id, self.total, self.done = run_id, total, 0

    def start(self, step: str) -> None:
        """Say the run is on ``step`` now (the steps before it are done)."""
        _publish(self.run_id, step, self.done, self.total)
        self.done = min(self.done + 1, self.total)


def _publish(run_id: int, step: str, done: int, total: int) -> None:
    if db.engine.dialect.name == "sqlite":
        _LOCAL[run_id] = (step, done, total)
        return
    with db.engine.begin() as conn:
        conn.execute(update(ErasureRun.__table__).where(
            ErasureRun.id == run_id, ErasureRun.status == RUNNING).values(step=step, steps_done=done, steps_total=total))


def _claim(run_id: int) -> int | None:
    """Take a queued run (one conditional UPDATE; commits), then hold it for the rest of
    this delivery in the transaction the erasure will commit: the attempt number, or None
    when another delivery has it, it ended, or the sweep took this attempt over before
    the hold was in place."""
    attempt = db.session.execute(
        update(ErasureRun).where(ErasureRun.id == run_id, ErasureRun.status == QUEUED)
        .values(status=RUNNING, started_at=utc_now(), step=None, steps_done=0, attempts=ErasureRun.attempts + 1)
        .returning(ErasureRun.attempts).execution_options(synchronize_session=False)).scalar()
    db.session.commit()
    if attempt is None:
        return None
    _HERE.add(run_id)
    if db.engine.dialect.name == "postgresql":
        # held until the erasure commits or rolls back, or the connection dies with the worker
        db.session.execute(text("SELECT pg_advisory_xact_lock(:c, :r)"), {"c": LOCK_CLASS, "r": run_id})
        held = db.session.scalar(select(ErasureRun.id).where(
            ErasureRun.id == run_id, ErasureRun.status == RUNNING, ErasureRun.attempts == attempt))
    else:
        # SQLite: take the write lock now (a no-op write) for the whole erasure
        held = db.session.execute(
            update(ErasureRun).where(ErasureRun.id == run_id, ErasureRun.status == RUNNING,
                                     ErasureRun.attempts == attempt)
            .values(attempts=ErasureRun.attempts).execution_options(synchronize_session=False)).rowcount
    if not held:
        db.session.rollback()
        _HERE.discard(run_id)
        log.info("Erasure run #%s attempt %s was taken over; this delivery does nothing", run_id, attempt)
        return None
    return attempt


def _fail(run_id: int, key: str, attempt: int) -> None:
    """Mark this attempt failed; nothing when the run was queued again meanwhile."""
    db.session.execute(update(ErasureRun).where(
        ErasureRun.id == run_id, ErasureRun.status == RUNNING, ErasureRun.attempts == attempt).values(
        status=FAILED, error=key, finished_at=utc_now()).execution_options(synchronize_session=False))
    db.session.commit()


def _finisher(run: ErasureRun) -> Callable[[Summary], None]:
    def finish(summary: Summary) -> None:  # in the erasure's own transaction
        run.status, run.summary, run.reason, run.error = DONE, asdict(summary), None, None
        run.finished_at, run.step, run.steps_done = utc_now(), None, run.steps_total or 0
    return finish


def execute(run_id: int) -> None:
    """The task: claim the queued run and hold it (``_claim``), erase in one transaction
    (the run marked done in it), write the ledger, then tidy the database files. A failure
    rolls the erasure back and marks the attempt failed (``ERRORS`` key); a run already
    claimed, or whose attempt the sweep took over, is left alone. If the worker dies, the
    transaction rolls back and ``requeue_stalled`` runs it again from the start."""
    from app.models.org import CrmUser
    from app.services import erasure

    attempt = _claim(run_id)
    if attempt is None:
        return
    try:
        run = db.session.get(ErasureRun, run_id)
        db.session.refresh(run)
        subject = erasure.SUBJECTS.get(run.record_type)
        record = db.session.get(subject.model, run.record_id) if subject else None
        if record is None:
            db.session.rollback()
            _fail(run_id, "gone", attempt)
            return
        extras = tuple(run.extra_fields or ())
        user = db.session.get(CrmUser, run.user_id) if run.user_id else None
        progress = Progress(run_id, erasure.step_count())
        try:
            summary = erasure.commit_erasure(subject, record, extras, run.reason or "", user,
                                             progress=progress, finish=_finisher(run))
        except Exception:  # noqa: BLE001 - any failure: nothing committed, the run says so
            log.exception("Erasure run #%s of %s #%s failed", run_id, run.record_type, run.record_id)
            db.session.rollback()
            _fail(run_id, "failed", attempt)
            _tell_admins(run_id)
            return
    finally:
        _LOCAL.pop(run_id, None)
        _HERE.discard(run_id)
    erasure.ledger.record(summary, extras, record.id)
    try:
        erasure.tidy(subject, summary)
    except Exception:  # noqa: BLE001 - the erasure is done; freed pages go at the next VACUUM
        log.exception("Erasure run #%s: tidying the database files failed", run_id)


def _tell_admins(run_id: int) -> None:
    """Notify every active admin that run ``run_id`` failed (once per attempt); commits.
    Never raises: the run's page says it failed anyway."""
    from app.services.notify_hooks import admin_ids

    try:
        run = db.session.get(ErasureRun, run_id)
        notifications.notify(FAILED_EVENT.key, admin_ids(), params={"code": run.code or str(run.record_id),
                                                                     "id": run.id},
                             occasion=f"erasure:{run.id}:{run.attempts}")
        db.session.commit()
    except Exception:  # noqa: BLE001 - an alert that cannot be written is logged, not raised
        db.session.rollback()
        log.exception("Erasure run #%s failed and the admins could not be told", run_id)


def load(run_id: Any) -> ErasureRun:
    """A run by id (``NotFound`` when missing or not a number)."""
    try:
        run = db.session.get(ErasureRun, int(run_id))
    except (TypeError, ValueError):
        run = None
    if run is None:
        raise NotFound({"run": str(_l("No such erasure."))})
    return run


tasks.allow(execute)
tasks.register_other_sweep(requeue_stalled)
