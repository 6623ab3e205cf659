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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
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
#: A run queued or running this long without finishing is taken as stopped (its worker
#: died: its transaction rolled back) and may be tried again.
STALLED_AFTER = timedelta(minutes=30)
#: SQLite only: run id -> (step, steps done, steps total) of runs in this process.
_LOCAL: dict[int, tuple[str, int, int]] = {}


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


def stalled(run: ErasureRun) -> bool:
    """Queued or running for longer than ``STALLED_AFTER`` (its worker is gone)."""
    since = run.started_at or run.created_at
    return run.status in ACTIVE and since is not None and utc_now() - since > STALLED_AFTER


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
    background.submit(execute, run.id)


def again(run: ErasureRun) -> ErasureRun:
    """Queue a failed (or stalled) run again and commit; ``RuleViolation`` otherwise, or
    when another run of the record is under way."""
    if run.status != FAILED and not stalled(run):
        raise RuleViolation({"run": str(_l("Only an erasure that failed or stopped can be tried again."))})
    other = active(run.record_type, run.record_id)
    if other is not None and other.id != run.id:
        raise _busy(other)
    run.status, run.error, run.finished_at, run.started_at = QUEUED, None, None, None
    run.step, run.steps_done = None, 0
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise _busy(active(run.record_type, run.record_id) or run) from None
    return run


def state(run: ErasureRun) -> dict[str, Any]:
    """What the progress page shows: status, step key, steps done and total (this
    process's figures on SQLite), the error message (translated) and whether it may be
    tried again."""
    step, done, total = _LOCAL.get(run.id, (run.step, run.steps_done, run.steps_total)) \
        if run.status == RUNNING else (run.step, run.steps_done, run.steps_total)
    return {"status": run.status, "step": step, "done": done, "total": total,
            "error": ERRORS.get(run.error or "", ERRORS["failed"]) if run.status == FAILED else None,
            "retry": run.status == FAILED or stalled(run), "summary": summary_of(run)}


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


def _claim(run_id: int) -> bool:
    claimed = db.session.execute(
        update(ErasureRun).where(ErasureRun.id == run_id, ErasureRun.status == QUEUED)
        .values(status=RUNNING, started_at=utc_now(), step=None, steps_done=0, attempts=ErasureRun.attempts + 1)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(claimed)


def _fail(run_id: int, key: str) -> None:
    db.session.execute(update(ErasureRun).where(ErasureRun.id == run_id).values(
        status=FAILED, error=key, finished_at=utc_now()).execution_options(synchronize_session=False))
    db.session.commit()


def _finisher(run: ErasureRun) -> Callable[[Summary], None]:
    def finish(summary: Summary) -> None:  # in the erasure's own transaction
        run.status, run.summary, run.reason, run.error = DONE, asdict(summary), None, None
        run.finished_at, run.step, run.steps_done = utc_now(), None, run.steps_total or 0
    return finish


def execute(run_id: int) -> None:
    """The task: claim the queued run, erase in one transaction (the run marked done in
    it), write the ledger, then tidy the database files. A failure rolls the erasure back
    and marks the run failed (``ERRORS`` key); a run already claimed is left alone."""
    from app.models.org import CrmUser
    from app.services import erasure

    if not _claim(run_id):
        return
    run = db.session.get(ErasureRun, run_id)
    db.session.refresh(run)
    subject = erasure.SUBJECTS.get(run.record_type)
    record = db.session.get(subject.model, run.record_id) if subject else None
    if record is None:
        _fail(run_id, "gone")
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
        _fail(run_id, "failed")
        _tell_admins(run_id)
        return
    finally:
        _LOCAL.pop(run_id, None)
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
