"""The task queue: where background work runs, and the database claim that makes it run once.

Why Celery: it is the queue Superset (the best-known Flask-AppBuilder application) runs
its background work on, it is well kept, and on Redis it gives what a CRM needs without a
new kind of server: ``task_acks_late`` + ``task_reject_on_worker_lost`` +
``worker_prefetch_multiplier=1`` mean a job whose worker dies is delivered again rather
than lost. RQ and Dramatiq would do too; Celery is the one FAB operators already know.

Delivery is therefore *at least once*, and the database, not the broker, decides who does
the work, so a second delivery never does it twice:

* every job row is **claimed** with one conditional UPDATE (``claim``): it must be queued,
  or running with an expired lease; the row count decides. The claim holds for
  ``CRM_JOB_LEASE_SECONDS`` and is renewed as the job goes (``checkpoint``/``heartbeat``);
* a committing import writes ``processed_rows`` in the same transaction as each committed
  chunk, guarded by its claim (``checkpoint``), so a second delivery resumes after the last
  committed chunk: a worker killed mid-import loses no row and imports none twice. Dry runs
  and all-or-nothing imports commit nothing until the end, so they start again from the
  start; exports rewrite their file from scratch;
* the minute sweep (``requeue_stalled``) queues again the jobs whose lease ran out (their
  worker died) or that waited queued too long (the message was lost).

Progress and cancel live in the job row, so any web worker reads them; ``heartbeat``
writes progress at most once a second on a short separate connection, so a dry run's
uncommitted work is never committed with it. On SQLite (the embedded single-process mode)
a second connection would wait on the run's own write lock, so there the figures of runs
that cannot commit mid-way are kept in this process, which is the only one.

``background.submit(func, *args)`` is the one entry point: threads in the embedded mode
(``CRM_TASK_QUEUE=threads``), the generic Celery task ``crm.run(name, args)`` otherwise,
which runs only functions of the allow-list below (never an arbitrary import).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update

from app.clock import utc_now
from app.extensions import db
from app.models.transfers import QUEUED, RUNNING, TransferJob

log = logging.getLogger(__name__)

#: The Celery task every job is sent as: ``crm.run(dotted name, [args])``.
TASK_NAME = "crm.run"
#: Functions a worker may run, by dotted name (``allow`` adds more at import time).
ALLOWED: set[str] = {
    "app.services.importing.jobs.execute",
    "views.exports.run_export",
    "app.services.dedup_clusters.run_scan",
    "app.services.dedup_clusters._pending_job",
    "app.services.search.index_pending",
    "sync.schedule.run_target",
    "app.services.tasks.requeue_stalled",
}
#: A queued job not claimed after this many leases is sent again (its message was lost).
QUEUED_PATIENCE_LEASES = 5
#: Seconds between two progress writes of one job (``heartbeat``).
PROGRESS_EVERY_SECONDS = 1.0
#: Jobs the sweep looks at per run (the rest wait for the next minute).
SWEEP_BATCH = 100

#: job kind -> (job -> the function and arguments that run it again), see ``requeue_stalled``.
RESUMERS: dict[str, Callable[[TransferJob], tuple[Callable[..., Any], tuple]]] = {}
#: Sweeps of work kept in other tables (erasure runs), run by the same minute job: () -> ids sent.
OTHER_SWEEPS: list[Callable[[], list[int]]] = []
#: SQLite only: job id -> (processed, total) of runs in this process (see the module doc).
_LOCAL: dict[int, tuple[int, int]] = {}
#: Jobs running in this process (the sweep leaves them alone) -> last progress write.
_ACTIVE: dict[int, float] = {}
_lock = threading.Lock()


class UnknownTask(LookupError):
    """A task name outside the allow-list (a forged or stale message): never imported."""


class Cancelled(Exception):
    """The job's owner or an admin asked to stop it; raised between chunks."""


class LeaseLost(Exception):
    """Another delivery took the job over (this one's lease ran out): stop, commit nothing."""


# --- which functions run ---------------------------------------------------------------


def dotted(func: Callable[..., Any]) -> str:
    """``module.qualname`` of a module-level function (how a task names it)."""
    return f"{func.__module__}.{func.__qualname__}"


def allow(func: Callable[..., Any]) -> str:
    """Let workers run ``func`` (a module-level function whose module the app imports at
    start, so the worker knows it too); returns its dotted name."""
    name = dotted(func)
    ALLOWED.add(name)
    return name


def resolve(name: str) -> Callable[..., Any]:
    """The allowed function called ``name``; ``UnknownTask`` for anything else."""
    if name not in ALLOWED:
        raise UnknownTask(name)
    module, _, attr = name.rpartition(".")
    func = getattr(importlib.import_module(module), attr, None)
    if not callable(func):
        raise UnknownTask(name)
    return func


def run_named(name: str, args: list[Any]) -> None:
    """What a worker does with ``crm.run``: the allowed function with its arguments (the
    caller gives the app context and removes the session). A scheduled job's work is
    recorded as a job run (``app.services.monitoring.jobs``)."""
    from app.services.backups import maintenance
    from app.services.monitoring import jobs

    maintenance.wait_until_over()  # never write into a database a restore is swapping
    jobs.call(resolve(name), *args)


def send(func: Callable[..., Any], args: tuple) -> bool:
    """Send ``func(*args)`` to the broker as ``crm.run``. ``UnknownTask`` if workers may
    not run it; False (logged) when the broker cannot be reached: the job stays queued and
    the minute sweep sends it again, so the request that queued it does not fail."""
    name = dotted(func)
    resolve(name)
    from app.celery_app import client

    try:
        client(current_app).send_task(TASK_NAME, args=[name, list(args)])
    except Exception:  # the broker is down: the sweep retries from the job row
        log.exception("Could not send %s%r to the broker", name, args)
        return False
    return True


# --- claim, lease, progress, cancel ------------------------------------------------------


def lease() -> timedelta:
    """How long a claim holds without a heartbeat (``CRM_JOB_LEASE_SECONDS``)."""
    return timedelta(seconds=int(current_app.config.get("CRM_JOB_LEASE_SECONDS", 60)))


def queued_until() -> Any:
    """The lease a job gets when queued: the sweep sends it again if nobody claimed it by then."""
    return utc_now() + lease() * QUEUED_PATIENCE_LEASES


def worker_name() -> str:
    """``host:pid`` of this process, as ``claimed_by`` shows it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(job_id: int, also: tuple[str, ...] = ()) -> str | None:
    """Take the job for this delivery, or None when another one has it (or it ended).

    One conditional UPDATE: the job must be queued (or in a status of ``also``: a caller
    that runs the job itself, not through the queue), or running with an expired lease (its
    worker died). Returns the claim token (``host:pid/random``) that ``checkpoint`` and
    ``heartbeat`` check; commits."""
    token = f"{worker_name()}/{uuid.uuid4().hex[:8]}"[:100]
    now = utc_now()
    claimed = db.session.execute(
        update(TransferJob).where(
            TransferJob.id == job_id,
            or_(TransferJob.status.in_([QUEUED, *also]),
                (TransferJob.status == RUNNING) & or_(TransferJob.lease_until.is_(None),
                                                      TransferJob.lease_until < now)))
        .values(status=RUNNING, claimed_by=token, lease_until=now + lease(),
                attempts=TransferJob.attempts + 1)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if not claimed:
        log.info("Job %s is taken or finished; this delivery does nothing", job_id)
        return None
    with _lock:
        _ACTIVE[job_id] = 0.0
    return token


def run_claimed(job_id: int, work: Callable[[str], TransferJob], also: tuple[str, ...] = ()) -> TransferJob:
    """``work(token)`` for this delivery if it can ``claim`` the job, released whatever happens;
    the job as it is when another delivery has it (or it ended): a second delivery does nothing."""
    token = claim(job_id, also=also)
    if token is None:
        return db.session.get(TransferJob, job_id)
    try:
        return work(token)
    finally:
        release(job_id)


def release(job_id: int) -> None:
    """The job ended in this process (whatever its outcome)."""
    with _lock:
        _ACTIVE.pop(job_id, None)
        _LOCAL.pop(job_id, None)


def checkpoint(job_id: int, token: str, **values: Any) -> None:
    """Write ``values`` (``processed_rows`` and counts) to the job row in the caller's
    transaction, which commits them with its chunk, and renew the lease. ``LeaseLost``
    when the claim is no longer this delivery's: the caller must roll its chunk back."""
    done = db.session.execute(
        update(TransferJob).where(TransferJob.id == job_id, TransferJob.claimed_by == token,
                                  TransferJob.status == RUNNING)
        .values(lease_until=utc_now() + lease(), **values)
        .execution_options(synchronize_session=False)).rowcount
    if not done:
        raise LeaseLost(job_id)


def _side_connection() -> bool:
    """May progress be written on a second connection (a server database)? See module doc."""
    return db.engine.dialect.name != "sqlite"


def heartbeat(job_id: int, token: str, processed: int, total: int, force: bool = False) -> None:
    """Progress of a run that cannot commit mid-way, and its lease: at most once a
    second (``force`` writes now), on a short transaction of its own. ``LeaseLost`` when
    another delivery took the job over."""
    now = time.monotonic()
    if not force and now - _ACTIVE.get(job_id, 0.0) < PROGRESS_EVERY_SECONDS:
        return
    with _lock:
        _ACTIVE[job_id] = now
    if not _side_connection():
        _LOCAL[job_id] = (processed, total)
        return
    with db.engine.begin() as connection:
        done = connection.execute(
            update(TransferJob.__table__).where(TransferJob.id == job_id, TransferJob.claimed_by == token,
                                                TransferJob.status == RUNNING)
            .values(processed_rows=processed, total_rows=total, lease_until=utc_now() + lease())).rowcount
    if not done:
        raise LeaseLost(job_id)


def progress_of(job: TransferJob) -> tuple[int, int]:
    """(rows processed, rows in all) of a job as any web worker sees it."""
    return _LOCAL.get(job.id, (job.processed_rows, job.total_rows))


def cancel_requested(job_id: int) -> bool:
    """Has someone asked to stop the job? Read on a connection of its own, so a long run's
    transaction still sees a flag committed after it began (SQLite keeps a snapshot)."""
    query = select(TransferJob.cancel_requested).where(TransferJob.id == job_id)
    if db.engine.url.database in (None, "", ":memory:"):  # one shared connection: no second one
        return bool(db.session.scalar(query))
    with db.engine.connect() as connection:
        return bool(connection.scalar(query))


def check_cancel(job_id: int) -> None:
    """``Cancelled`` when the job was asked to stop (call between chunks)."""
    if cancel_requested(job_id):
        raise Cancelled(job_id)


def may_cancel(job: TransferJob, user: Any) -> bool:
    """The job's owner or an admin (role ``AUTH_ROLE_ADMIN``) may stop it."""
    admin = current_app.config.get("AUTH_ROLE_ADMIN", "Admin")
    return job.user_id == user.id or any(role.name == admin for role in getattr(user, "roles", []))


def request_cancel(job_id: int, user: Any) -> bool:
    """Ask a queued or running job to stop, from any web worker: it stops between two
    chunks, keeps what it had committed and ends ``cancelled``. Audited. Returns False when
    the job is not running or queued any more; ``PermissionError`` when ``user`` may not
    (``may_cancel``). Commits."""
    from app.services import audit

    job = db.session.get(TransferJob, job_id)
    if job is None or not may_cancel(job, user):
        raise PermissionError(_l("You may cancel only your own jobs."))
    asked = db.session.execute(
        update(TransferJob).where(TransferJob.id == job_id, TransferJob.status.in_([QUEUED, RUNNING]))
        .values(cancel_requested=True).execution_options(synchronize_session=False)).rowcount
    if asked:
        audit.record("job_cancel", job, {"kind": job.kind, "file": job.filename, "status": job.status})
    db.session.commit()
    return bool(asked)


# --- the sweep -----------------------------------------------------------------------------


def register_resumer(kind: str, resumer: Callable[[TransferJob], tuple[Callable[..., Any], tuple]]) -> None:
    """How the sweep starts a job of ``kind`` again: job -> (allowed function, arguments)."""
    RESUMERS[kind] = resumer


def requeue_stalled() -> list[int]:
    """Every minute: queue again the jobs whose worker stopped (running, lease expired)
    or whose message was lost (queued past ``queued_until``). Each is put back to queued
    with one conditional UPDATE, so two sweeps send it once; a second delivery anyway does
    nothing (``claim``). Then the sweeps of ``register_other_sweep``. Returns the job ids sent."""
    from app.services import background

    now = utc_now()
    stalled = db.session.scalars(
        select(TransferJob).where(TransferJob.status.in_([QUEUED, RUNNING]),
                                  or_(TransferJob.lease_until.is_(None), TransferJob.lease_until < now))
        .order_by(TransferJob.id).limit(SWEEP_BATCH)).all()
    sent = []
    for job in stalled:
        if job.id in _ACTIVE or job.kind not in RESUMERS:
            continue
        func, args = RESUMERS[job.kind](job)
        taken = db.session.execute(
            update(TransferJob).where(TransferJob.id == job.id, TransferJob.status == job.status,
                                      or_(TransferJob.lease_until.is_(None), TransferJob.lease_until < now))
            .values(status=QUEUED, lease_until=queued_until())
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        if taken:
            log.warning("Job %s (%s) stalled; queued again", job.id, job.kind)
            background.submit(func, *args)
            sent.append(job.id)
    for other in OTHER_SWEEPS:
        try:
            other()
        except Exception:  # noqa: BLE001 - one kind's failure must not stop the others' sweep
            db.session.rollback()
            log.exception("Sweep %s failed", dotted(other))
    return sent


def register_other_sweep(sweep: Callable[[], list[int]]) -> None:
    """Let the minute sweep also run ``sweep`` (work whose rows are not ``TransferJob``,
    e.g. erasure runs): it re-queues its own stalled work, the same way."""
    if sweep not in OTHER_SWEEPS:
        OTHER_SWEEPS.append(sweep)


def register_sweep() -> None:
    """Put the sweep on the scheduler's minute (called once at app start)."""
    from app import scheduler

    scheduler.register("requeue_stalled_jobs", "Re-queue background jobs whose worker stopped",
                       requeue_stalled, {"minute": "*"})


register_sweep()
