"""One active scheduler per deployment, between real processes (issue 20): two
``run_forever`` processes on one deployment, exactly one active; ``kill -9`` of the active
one and the standby takes over within its standby interval; SIGTERM stops cleanly and
frees the lock. On PostgreSQL (the advisory lock) also: an active process whose lock
connection is cut stops scheduling and takes the lock again only once it is free.

Each process's state is read from its own log ("Scheduler active" / "standby" / "lost" /
"stopped") and from ``status()`` as the jobs page reads it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app import scheduler
from app.extensions import db
from config import BASE_DIR
from tests.polling import poll

STANDBY = 0.5
#: Take-over: one standby interval, plus starting APScheduler on a shared 2-core machine.
TAKE_OVER_BOUND = 20.0
#: Starting a process: the app factory and its imports.
START_BOUND = 90.0

SCRIPT = """
import os
from config import TestConfig
TestConfig.SQLALCHEMY_DATABASE_URI = os.environ["SCHED_DB"]
from app import create_app, scheduler
from app.services import background
app = create_app(TestConfig)
app.config["CRM_SCHEDULER_STANDBY_SECONDS"] = float(os.environ["SCHED_STANDBY"])
# Where jobs run is the queue's business: here a due job is only reported.
background.submit = lambda func, *args: print("submitted", func.__name__, flush=True)
scheduler.run_forever(app)
"""
STATES = {"Scheduler active": "active", "Scheduler standby": "standby", "Scheduler lost": "lost",
          "Scheduler stopped": "stopped"}




@dataclass
class SchedulerProcess:
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def states(self) -> list[str]:
        return [state for line in self.text().splitlines() for key, state in STATES.items() if key in line]

    def state(self) -> str | None:
        states = self.states()
        return states[-1] if states else None


def _describe(processes: list[SchedulerProcess]) -> str:
    return "\n".join(f"--- pid {p.pid} states {p.states()}\n{p.text()[-3000:]}" for p in processes)


@pytest.fixture
def start_schedulers(tmp_path: Path) -> Iterator[Callable[[str, int], list[SchedulerProcess]]]:
    started: list[SchedulerProcess] = []

    def start(url: str, count: int) -> list[SchedulerProcess]:
        env = {**os.environ, "SCHED_DB": url, "SCHED_STANDBY": str(STANDBY), "CRM_INSTANCE_DIR": str(tmp_path),
               "PYTHONUNBUFFERED": "1"}
        for number in range(count):
            log = tmp_path / f"scheduler-{number}.log"
            with log.open("w") as out:
                process = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=BASE_DIR, env=env, stdout=out,
                                           stderr=subprocess.STDOUT)
            started.append(SchedulerProcess(process, log))
        return started[-count:]

    yield start
    for item in started:
        if item.process.poll() is None:
            item.process.kill()
        item.process.wait(30)


def _one_active(processes: list[SchedulerProcess]) -> SchedulerProcess | None:
    """The single active process once every live one has said active or standby."""
    alive = [p for p in processes if p.process.poll() is None]
    if any(p.state() not in ("active", "standby") for p in alive):
        return None
    active = [p for p in alive if p.state() == "active"]
    assert len(active) <= 1, f"two active schedulers:\n{_describe(processes)}"
    return active[0] if active else None


def _hand_over(processes: list[SchedulerProcess], holder: Callable[[], dict]) -> SchedulerProcess:
    """Exactly one becomes active; killed with -9, the other takes over; returns it."""
    first = poll(lambda: _one_active(processes), START_BOUND,
                 lambda: f"no single active scheduler:\n{_describe(processes)}")
    other = next(p for p in processes if p is not first)
    assert other.state() == "standby"
    assert holder()["pid"] == first.pid and holder()["active"] is True
    first.process.kill()
    first.process.wait(30)
    killed_at = time.monotonic()
    poll(lambda: other.state() == "active", TAKE_OVER_BOUND,
         lambda: f"the standby did not take over:\n{_describe(processes)}")
    print(f"take-over after kill -9: {time.monotonic() - killed_at:.2f}s (standby interval {STANDBY}s)")
    assert holder()["pid"] == other.pid
    return other


def _terminate(survivor: SchedulerProcess, holder: Callable[[], dict]) -> None:
    """SIGTERM: a clean exit (status 0) that frees the lock."""
    survivor.process.send_signal(signal.SIGTERM)
    assert survivor.process.wait(30) == 0, survivor.text()[-3000:]
    assert survivor.state() == "stopped"
    assert holder()["active"] is False


def test_file_lock_hands_over_between_processes(start_schedulers: Any, tmp_path: Path) -> None:
    """SQLite (one machine): the file lock in the instance folder."""
    processes = start_schedulers(f"sqlite:///{tmp_path / 'crm.db'}", 2)
    lock = scheduler.FileLock(str(tmp_path / "scheduler.lock"))
    survivor = _hand_over(processes, lock.status)
    assert survivor.state() == "active" and lock.status()["pid"] == survivor.pid  # the standby holds the lock
    _terminate(survivor, lock.status)
    assert survivor.process.returncode == 0 and lock.status()["active"] is False  # a clean exit frees it


@pytest.fixture
def postgres_url(app: Any) -> Iterator[str]:
    """The suite's PostgreSQL database; its job table is emptied after the test."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if not url.startswith("postgresql"):
        pytest.skip("the advisory lock needs PostgreSQL (TEST_DATABASE_URL)")
    yield url
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {scheduler.JOB_TABLE}"))


def _pg_status(app: Any) -> Callable[[], dict]:
    def read() -> dict:
        with app.app_context():
            return scheduler.status()

    return read


def _cut_lock_connection(app: Any) -> int:
    """What a network partition does in the end: the server drops the holder's session."""
    with app.app_context(), db.engine.begin() as conn:
        return conn.scalar(text(
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l WHERE l.locktype = 'advisory' AND "
            "l.granted AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"),
            {"key": scheduler.ADVISORY_KEY})


def test_advisory_lock_hands_over_between_processes(app: Any, postgres_url: str, start_schedulers: Any) -> None:
    processes = start_schedulers(postgres_url, 2)
    status = _pg_status(app)
    survivor = _hand_over(processes, status)
    assert status()["mode"] == "postgresql" and status()["since"] is not None
    assert _cut_lock_connection(app) == 1
    poll(lambda: "lost" in survivor.states(), TAKE_OVER_BOUND,
         lambda: f"the active scheduler did not notice it lost its lock:\n{_describe(processes)}")
    poll(lambda: survivor.state() == "active" and status()["pid"] == survivor.pid, TAKE_OVER_BOUND,
         lambda: f"the scheduler did not take its lock again:\n{_describe(processes)}")
    _terminate(survivor, status)
    assert survivor.process.returncode == 0 and status()["active"] is False
