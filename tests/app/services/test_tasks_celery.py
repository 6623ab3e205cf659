"""The production path for real: redis-server, a `flask crm worker` process (Celery, prefork
pool) and an import sent through the broker twice, done once. Skipped without
/usr/bin/redis-server unless CRM_REDIS_TESTS=required."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, TransferJob
from app.services import tasks
from app.services.importing import jobs

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
ROOT = Path(__file__).resolve().parents[3]
#: Upper bound on waiting for the other processes (a hung worker fails, never hangs the suite).
DEADLINE_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(what: str, ready: Any, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll ``ready()`` until it holds; fail (with the process's log) past the deadline."""
    end = time.monotonic() + DEADLINE_SECONDS
    while not ready():
        if process is not None and process.poll() is not None or time.monotonic() > end:
            pytest.fail(f"{what} did not happen:\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.2)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    if not os.path.exists(REDIS):
        if os.environ.get("CRM_REDIS_TESTS") == "required":
            pytest.fail("redis-server is required (CRM_REDIS_TESTS=required) but not installed")
        pytest.skip("redis-server is not installed")
    import redis

    port = _free_port()
    server = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        try:
            return redis.Redis.from_url(url).ping()
        except redis.ConnectionError:
            return False

    try:
        _wait("redis-server start", answers, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def worker(app: Any, redis_url: str, tmp_path: Path) -> Iterator[str]:
    log = tmp_path / "worker.log"
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "CRM_TASK_QUEUE": "celery",
           "REDIS_URL": redis_url, "CRM_SCHEDULER": "0", "CRM_INSTANCE_DIR": str(tmp_path / "instance"),
           "SECRET_KEY": "worker-test", "TOTP_ENCRYPTION_KEY": app.config["TOTP_ENCRYPTION_KEY"]}
    flask = [sys.executable, "-m", "flask", "--app", "app:create_app", "crm", "worker", "--concurrency", "1",
             "--hostname", "test@%h"]
    with log.open("w") as out:
        process = subprocess.Popen(flask, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait("worker start", lambda: "ready." in log.read_text(), process, log)
        yield redis_url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _workbook(path: Path, count: int) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.append(["客户名称", "联系方式"])
    for n in range(count):
        sheet.append([f"Celery Co {n:02d}", f"1371234{n:04d}"])
    book.save(path)
    return path


def test_an_import_sent_twice_through_redis_is_done_once_by_a_worker(
        app: Any, ctx: Any, worker: str, tmp_path: Path, monkeypatch: Any) -> None:
    import redis

    for key, value in {"CRM_IMPORT_INLINE": False, "CRM_TASK_QUEUE": "celery", "REDIS_URL": worker,
                       "CELERY_BROKER_URL": worker}.items():
        monkeypatch.setitem(app.config, key, value)
    monkeypatch.delitem(app.extensions, "crm_celery", raising=False)
    path = _workbook(tmp_path / "celery.xlsx", 9)
    user = appbuilder.sm.find_user(username="rep_a")
    job = jobs.create_job(user, "customer", path.name, path.read_bytes())
    _, job.mapping = jobs.propose_mapping(job)
    job.status = "previewed"
    db.session.commit()
    job_id = job.id
    assert jobs.start(job, commit=True)  # sent to the broker; the worker process runs it
    assert tasks.send(jobs.execute, (job_id, True))  # the broker delivers it again

    broker = redis.Redis.from_url(worker)

    def finished() -> bool:
        db.session.expire_all()
        done = db.session.get(TransferJob, job_id).status == "done"
        return done and broker.llen("celery") == 0 and not broker.hlen("unacked")

    _wait("the import on the worker", finished, log=tmp_path / "worker.log")
    job = db.session.get(TransferJob, job_id)
    assert (job.processed_rows, job.created, job.rejected, job.attempts) == (9, 9, 0, 1)
    assert job.claimed_by and not job.claimed_by.startswith(tasks.worker_name())  # another process
    names = db.session.scalars(select(Customer.name).where(Customer.name.like("Celery Co %"))).all()
    assert sorted(names) == [f"Celery Co {n:02d}" for n in range(9)]
    assert app.test_client().get("/health/ready").get_json()["checks"] == {"database": "ok", "redis": "ok"}
    monkeypatch.delitem(app.extensions, "crm_celery", raising=False)
