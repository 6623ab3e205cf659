"""APScheduler decides *when*; the task queue decides *where*. One active scheduler per deployment.

Jobs
    Every job (``JOBS`` and those added with ``register``) is stored in the application
    database (``apscheduler_jobs``) with ``enqueue(job_id)`` as its callable: when a job is
    due, the scheduler process only hands the job's work (a module-level function) to
    ``app.services.background.submit``, which runs it in an app context on the task queue
    (threads in the embedded mode, the queue's workers in production).

One active scheduler, a standby taking over
    A process runs a ``Supervisor``: it is *standby* until it holds the deployment's lock,
    *active* (APScheduler running) while it holds it. A standby tries again every
    ``CRM_SCHEDULER_STANDBY_SECONDS`` (default 15), so it takes over well within a minute
    after the active one dies.

    * PostgreSQL: a session-level advisory lock, key ``ADVISORY_KEY`` (the bytes
      ``crmsched`` as a 64-bit integer), held on a dedicated connection (not the pool's)
      for as long as the process is active. When the process dies its connection closes
      and PostgreSQL frees the lock. TCP keepalives on both ends drop a connection cut by
      a network partition; the active process checks its lock every ``CHECK_SECONDS`` (or
      the standby interval if shorter) and stops scheduling the moment the check fails,
      rather than run alongside the process that takes over.
    * SQLite (one machine): an exclusive ``flock`` on ``scheduler.lock`` in the instance
      folder, freed by the kernel when the holder exits.

    Only the active process touches the job store (adds, replaces, removes jobs); the
    jobs page only reads it. ``status()`` says who is active (host, pid, since).

Missed runs (the scheduler was down, or handed over)
    ``coalesce=True`` and no misfire limit (``misfire_grace_time=None``): after an outage
    each job runs ONCE as soon as a scheduler is active again, however long it was down,
    not once per missed minute, and a missed daily job is not skipped until the next day.
    The next run times are kept in the job store, so the next active scheduler starts from
    the times the previous one left (a job whose cron changed gets a fresh next run time).

``run.py`` calls ``start_once`` (a daemon thread in the web process, embedded mode);
``flask crm scheduler`` calls ``run_forever``. Tests and other ``flask`` commands start nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.cron import CronTrigger
from flask import Flask, current_app
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from app import clock
from app.extensions import db

log = logging.getLogger(__name__)
JOB_TABLE = "apscheduler_jobs"
#: PostgreSQL advisory lock key of the active scheduler: b"crmsched" read as a big-endian int64.
ADVISORY_KEY = int.from_bytes(b"crmsched", "big")
#: A standby tries to take the lock this often (seconds; ``CRM_SCHEDULER_STANDBY_SECONDS``).
STANDBY_SECONDS = 15.0
#: The active process checks it still holds its lock at least this often (seconds).
CHECK_SECONDS = 5.0
#: The missed-runs policy (module docstring): one run after an outage, however late.
JOB_DEFAULTS = {"coalesce": True, "misfire_grace_time": None, "max_instances": 1}
_app: Flask | None = None
_supervisor: Supervisor | None = None


@dataclass(frozen=True)
class JobDefinition:
    """A scheduled job: ``func`` is the work, a module-level function the task queue runs
    (by name, no arguments) in an app context; ``cron`` is CronTrigger fields in the CRM zone."""

    id: str
    name: str
    func: Callable[[], Any]
    cron: dict


def deactivate_expired_users() -> int:
    from app.services.accounts import deactivate_expired

    return deactivate_expired()


def purge_departed_users() -> list[str]:
    from app.services.accounts import purge_departed

    return purge_departed()


def verify_audit_chain() -> bool:
    """Daily check of the audit hash chain; a break becomes a security alert."""
    from app.services.audit import record, verify_chain

    report = verify_chain(db.session)
    if not report.ok:
        record("audit_chain_broken", None, {"seq": report.broken_seq, "problem": report.problem})
        db.session.commit()
    return report.ok


def refresh_statistics() -> bool:
    """Nightly on SQLite: ``PRAGMA optimize`` (SQLite's recommendation for long-lived
    databases) refreshes the statistics the planner needs to pick the dashboards' and lists'
    indexes after imports (without them a manager's funnel reads 10x more rows). PostgreSQL's
    autovacuum analyses on its own: nothing to do there. Returns whether it ran."""
    if db.engine.dialect.name != "sqlite":
        return False
    with db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA analysis_limit=1000")
        connection.exec_driver_sql("PRAGMA optimize")
    return True


def run_transfer_schedules() -> list[str]:
    """Every minute: the admins' scheduled folder imports and list exports that are due."""
    from app.services.schedules import run_due

    return run_due()


def index_search() -> int:
    """Every minute: index for search the rows an import only noted (the import asks for it
    at its end too; this catches a run that stopped before). Returns how many."""
    from app.services.search import index_pending

    return index_pending()


JOBS = [
    JobDefinition("deactivate_expired_users", "Deactivate expired accounts", deactivate_expired_users,
                  {"hour": 1, "minute": 5}),
    JobDefinition("purge_departed_users", "Purge accounts deactivated 30+ days ago (records to their manager)",
                  purge_departed_users, {"hour": 1, "minute": 20}),
    JobDefinition("verify_audit_chain", "Verify the audit log hash chain", verify_audit_chain,
                  {"hour": 2, "minute": 0}),
    JobDefinition("refresh_statistics", "Refresh the database's query statistics", refresh_statistics,
                  {"hour": 3, "minute": 30}),
    JobDefinition("run_transfer_schedules", "Scheduled imports and exports (see below)", run_transfer_schedules,
                  {"minute": "*"}),
    JobDefinition("index_search", "Index imported rows for search", index_search, {"minute": "*"}),
]


def register(job_id: str, name: str, func: Callable[[], Any], cron: dict) -> None:
    """Add (or redefine) a job defined outside ``app``: the sync's minute tick, the queue's
    stalled-job sweep. ``func`` runs on the task queue, which finds it by module and name.

    Raises ``ValueError`` for a function the queue could not import (a lambda, a closure).
    """
    if "<" in func.__qualname__ or func.__qualname__ != func.__name__:
        raise ValueError(f"Scheduled job {job_id!r} needs a module-level function, not {func.__qualname__!r}")
    from app.services import tasks  # not at import: tasks registers its sweep here when it loads

    JOBS[:] = [job for job in JOBS if job.id != job_id] + [JobDefinition(job_id, name, func, cron)]
    for job in JOBS:  # the queue's workers run only functions they were told about; tasks'
        tasks.allow(job.func)  # own import registers a job, so the built-in ones are allowed then


def definition(job_id: str) -> JobDefinition:
    """The job called ``job_id``; ``KeyError`` if no such job is defined (any more)."""
    for job in JOBS:
        if job.id == job_id:
            return job
    raise KeyError(job_id)


def enqueue(job_id: str) -> None:
    """What APScheduler calls when a job is due: submit the job's work to the task queue.

    Nothing else runs in the scheduler process, so a slow job never delays the next one.
    While a restore runs (maintenance mode) nothing is submitted: the run is skipped."""
    from app.services import background  # not at import: background's tasks register a job here
    from app.services.backups import maintenance

    app = _app or current_app._get_current_object()
    with app.app_context():
        if maintenance.active():
            log.warning("Maintenance mode: scheduled job %s skipped", job_id)
            return
        background.submit(definition(job_id).func)


def _jobstore(engine: Any = None) -> SQLAlchemyJobStore:
    return SQLAlchemyJobStore(engine=engine or db.engine, tablename=JOB_TABLE)


def job_trigger(job: JobDefinition) -> CronTrigger:
    """The job's cron in the CRM's zone (``CRM_TIMEZONE``): "01:05" is 01:05 there.

    A CronTrigger made without a zone takes the machine's (UTC on a server), whatever
    zone the scheduler has, so every trigger is given the zone here."""
    return CronTrigger(timezone=clock.crm_zone(), **job.cron)


def _same_schedule(a: Any, b: CronTrigger) -> bool:
    return isinstance(a, CronTrigger) and cron_text(a) == cron_text(b) and str(a.timezone) == str(b.timezone)


def sync_jobs(scheduler: BackgroundScheduler) -> None:
    """Make the job store hold exactly ``JOBS`` (active scheduler only).

    A job whose schedule is unchanged keeps its stored next run time, even one in the past:
    that is how a run missed while no scheduler was active still happens (once)."""
    stored = {job.id: job for job in scheduler.get_jobs()}
    if isinstance(scheduler, JobScheduler):
        scheduler.synced_zone = clock.zone_name()
    for job in JOBS:
        trigger = job_trigger(job)
        kept = stored.pop(job.id, None)
        extra = {"next_run_time": kept.next_run_time} if kept and _same_schedule(kept.trigger, trigger) else {}
        scheduler.add_job(enqueue, trigger, args=[job.id], id=job.id, name=job.name, replace_existing=True,
                          **JOB_DEFAULTS, **extra)
    for job_id in stored:  # jobs no longer defined
        scheduler.remove_job(job_id)


class JobScheduler(BackgroundScheduler):
    """APScheduler's background scheduler, minus one pass after ``shutdown``.

    APScheduler 3.11's loop wakes on shutdown and processes jobs once more without looking
    at its state: that pass advances every due job's next run time in the store without
    running it (the executor is already shut), so a process that stops or loses its lock
    would drop a run and write to the store the next active process now owns."""

    #: The CRM zone the stored triggers were built in (``sync_jobs``).
    synced_zone: str | None = None

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        self.follow_zone()
        return super()._process_jobs()

    def follow_zone(self) -> bool:
        """Rebuild every trigger when the CRM's zone changed since they were built (an admin
        changed it on Organisation → Company profile, in any process: pushing the app context
        refreshes the company settings). Returns True when it rebuilt them."""
        if _app is None:
            return False
        with _app.app_context():
            zone = clock.zone_name()
            if zone == self.synced_zone:
                return False
            log.info("Scheduler: the CRM zone is now %s; rebuilding the job triggers", zone)
            sync_jobs(self)
            return True


def activate(app: Flask, *, paused: bool = False) -> BackgroundScheduler:
    """Start APScheduler on the job store with ``JOBS`` (the caller holds the lock);
    ``paused`` leaves it to the caller to ``resume()`` (to attach listeners first)."""
    global _app
    _app = app
    with app.app_context():
        scheduler = JobScheduler(jobstores={"default": _jobstore()}, timezone=clock.crm_zone(),
                                 job_defaults=JOB_DEFAULTS)
        scheduler.start(paused=True)
        try:
            sync_jobs(scheduler)
        except Exception:
            scheduler.shutdown(wait=False)
            raise
        if not paused:
            scheduler.resume()
    return scheduler


# --- Who is active: the lock --------------------------------------------------------------------


def _holder_info() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": int(clock.system_now().timestamp())}


def _status(mode: str, info: dict[str, Any] | None) -> dict[str, Any]:
    info = info or {}
    since = info.get("since")
    return {"mode": mode, "active": bool(info), "host": info.get("host"), "pid": info.get("pid"),
            "since": datetime.fromtimestamp(since, UTC) if since else None}


class LeaderLock(Protocol):
    def acquire(self) -> bool: ...
    def held(self) -> bool: ...
    def release(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


@dataclass
class FileLock:
    """An exclusive ``flock`` on a file (SQLite: one machine). The file names the holder."""

    path: str
    _fd: int | None = field(default=None, repr=False)

    def acquire(self) -> bool:
        if self._fd is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # no truncation: the holder's info
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(_holder_info()).encode(), 0)
        return True

    def held(self) -> bool:
        """Still our file (not deleted or replaced under us)."""
        try:
            return self._fd is not None and os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
        except OSError:
            return False

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def status(self) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return _status("file", None)
        try:
            try:  # a shared lock we can take means nobody holds the exclusive one
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return _status("file", None)
            except OSError:
                pass
            try:
                return _status("file", json.loads(os.pread(fd, 4096, 0) or b"{}") or {"since": None})
            except ValueError:  # the holder is writing it right now
                return _status("file", {"since": None})
        finally:
            os.close(fd)


#: libpq settings of the lock connection: a dead peer is noticed in ~25 s on both ends.
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
              "tcp_user_timeout": 15000, "connect_timeout": 10}
_SERVER_SIDE = ("SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 5", "SET tcp_keepalives_count = 3",
                "SET statement_timeout = '10s'")
_LOCK_ROWS = ("FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
              "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key")
_APP_NAME = "crm-scheduler"


@dataclass
class AdvisoryLock:
    """``pg_advisory_lock(ADVISORY_KEY)`` held on a dedicated connection (PostgreSQL)."""

    url: URL
    _engine: Engine | None = field(default=None, repr=False)
    _conn: Connection | None = field(default=None, repr=False)

    def _connect(self) -> Connection:
        if self._conn is None:
            self._engine = create_engine(self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                                         connect_args={**_KEEPALIVE, "application_name": _APP_NAME})
            self._conn = self._engine.connect()
            for statement in _SERVER_SIDE:
                self._conn.execute(text(statement))
        return self._conn

    def acquire(self) -> bool:
        try:
            conn = self._connect()
            if not conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}):
                return False
            info = _holder_info()
            name = f"{_APP_NAME} {info['since']} {info['pid']} {info['host']}"[:63]
            conn.execute(text("SELECT set_config('application_name', :name, false)"), {"name": name})
            return True
        except Exception:  # database unreachable: stay standby, try again later
            log.warning("Scheduler: cannot reach the database for the lock", exc_info=True)
            self.release()
            return False

    def held(self) -> bool:
        try:
            return bool(self._conn is not None and self._conn.scalar(
                text("SELECT count(*) " + _LOCK_ROWS + " AND l.pid = pg_backend_pid()"), {"key": ADVISORY_KEY}))
        except Exception:
            return False

    def release(self) -> None:
        conn, engine, self._conn, self._engine = self._conn, self._engine, None, None
        if conn is not None:
            try:  # closing the session frees the lock as well; unlocking first says so at once
                conn.execute(text("SELECT pg_advisory_unlock_all()"))
            except Exception:
                pass
            try:
                conn.close()
            except Exception:
                pass
        if engine is not None:
            engine.dispose()

    def status(self) -> dict[str, Any]:
        query = "SELECT a.application_name " + _LOCK_ROWS.replace(
            "FROM pg_locks l", "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid")
        try:
            with db.engine.connect() as conn:
                name = conn.scalar(text(query), {"key": ADVISORY_KEY})
        except SQLAlchemyError:  # the jobs page shows "unknown" rather than fail
            log.warning("Scheduler status unavailable", exc_info=True)
            return {**_status("postgresql", None), "active": None}
        if name is None:
            return _status("postgresql", None)
        parts = name.split(" ", 3)
        if len(parts) < 4 or not parts[1].isdigit() or not parts[2].isdigit():
            return _status("postgresql", {"since": None})
        return _status("postgresql", {"since": int(parts[1]), "pid": int(parts[2]), "host": parts[3]})


def leader_lock(app: Flask) -> LeaderLock:
    """The deployment's lock: the advisory lock on PostgreSQL, a file lock otherwise."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine.url)
    return FileLock(os.path.join(app.instance_path, "scheduler.lock"))


def standby_seconds(app: Flask) -> float:
    """How often a standby tries the lock (``CRM_SCHEDULER_STANDBY_SECONDS``, default 15)."""
    return float(app.config.get("CRM_SCHEDULER_STANDBY_SECONDS", STANDBY_SECONDS))


def status() -> dict[str, Any]:
    """Who runs the scheduler now, for the jobs page (needs an app context): ``mode``
    ("postgresql" or "file"), ``active`` (bool; None if the database could not say),
    ``host``, ``pid`` and ``since`` (UTC datetime) of the active process when known, else None."""
    return leader_lock(current_app._get_current_object()).status()


# --- Standby / active ----------------------------------------------------------------------------


class Supervisor:
    """One process's part: standby until it holds the lock, active (APScheduler running)
    while it holds it, standby again if it loses it. ``run`` blocks until ``stop``."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.lock = leader_lock(app)
        self.interval = standby_seconds(app)
        self.stopping = threading.Event()
        self.active = threading.Event()
        self.scheduler: BackgroundScheduler | None = None
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        said_standby = False
        while not self.stopping.is_set():
            if self.lock.acquire():
                said_standby = False
                self._serve()
                continue
            if not said_standby:
                log.info("Scheduler standby: another process is active; trying again every %gs", self.interval)
                said_standby = True
            self.stopping.wait(self.interval)
        log.info("Scheduler stopped (pid %d)", os.getpid())

    def _serve(self) -> None:
        try:
            self.scheduler = activate(self.app)
            self.active.set()
            log.info("Scheduler active: pid %d on %s, %d jobs", os.getpid(), socket.gethostname(), len(JOBS))
            while not self.stopping.wait(min(self.interval, CHECK_SECONDS)):
                if not self.lock.held():
                    log.error("Scheduler lost its lock: stopped scheduling (another process may take over)")
                    break
        except Exception:  # database trouble while starting: standby again, retry later
            log.exception("Scheduler could not start; standby")
            self.stopping.wait(self.interval)
        finally:
            self.active.clear()
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=False)  # jobs run on the queue: nothing to wait for
                self.scheduler = None
            self.lock.release()

    def stop(self) -> None:
        self.stopping.set()


def start_once(app: Flask) -> Supervisor | None:
    """Embedded mode (``run.py``): a daemon thread that becomes the active scheduler or
    waits as standby. Once per process; None when ``SCHEDULER_ENABLED`` is off."""
    global _supervisor
    if not app.config.get("SCHEDULER_ENABLED", True):
        return None
    if _supervisor is None or _supervisor.thread is None or not _supervisor.thread.is_alive():
        _supervisor = Supervisor(app)
        _supervisor.thread = threading.Thread(target=_supervisor.run, name="crm-scheduler", daemon=True)
        _supervisor.thread.start()
    return _supervisor


def run_forever(app: Flask) -> None:
    """``flask crm scheduler``: be the active scheduler or its standby until SIGTERM/SIGINT,
    then release the lock and stop APScheduler without waiting (jobs run on the queue).
    Runs whatever ``SCHEDULER_ENABLED`` says: starting this command is the choice."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    supervisor = Supervisor(app)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_args: supervisor.stop())
    supervisor.run()


# --- The jobs page ---------------------------------------------------------------------------------

#: The five fields of a crontab line, in order, as APScheduler names them.
CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")


def cron_text(trigger: CronTrigger) -> str:
    """A job's schedule as the five-field cron line people know ("5 1 * * *": 01:05 every
    day, in the CRM's zone), not APScheduler's ``cron[hour='1', minute='5']``. Fields are
    APScheduler's own expressions (``day_of_week`` counts from Monday, as it does)."""
    fields = {field.name: str(field) for field in trigger.fields}
    return " ".join(fields[name] for name in CRON_FIELDS)


def list_jobs() -> list[dict[str, Any]]:
    """Defined jobs with their schedule (``cron_text``) and next run time (from the job
    table if a scheduler ran). Reads the table only: the active scheduler owns the store."""
    table = _jobstore().jobs_t
    with db.engine.connect() as conn:
        persisted = dict(conn.execute(select(table.c.id, table.c.next_run_time)).all())
    rows = []
    for job in JOBS:
        trigger = job_trigger(job)
        if job.id in persisted:
            stamp = persisted[job.id]
            next_run = datetime.fromtimestamp(stamp, UTC) if stamp is not None else None
        else:
            next_run = trigger.get_next_fire_time(None, clock.local_now())
        rows.append({"id": job.id, "name": job.name, "trigger": cron_text(trigger),
                     "next_run_time": clock.to_local(next_run), "persisted": job.id in persisted})
    return rows
