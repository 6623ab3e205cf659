"""Rate limits and sessions shared across web workers (issue 20).

Two real worker processes (two ``create_app`` objects, each serving HTTP on loopback) on
the suite's database, with ``RATELIMIT_STORAGE_URI`` on a real ``redis-server``:

* the wrong-password budget of ``login_guard`` is one count for both workers, so an
  attacker cannot get five guesses per worker by spreading them;
* logging out through one worker ends the session everywhere: the same cookie is refused
  by the other worker (the session epoch lives in the database, ``app.security.sessions``).

The Redis server is started here (``/usr/bin/redis-server``, no persistence, a free port,
a temporary folder). Without the binary the tests skip, unless ``CRM_REDIS_TESTS=required``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from config import BASE_DIR
from tests.conftest import PASSWORD
from tests.polling import poll

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_BOUND = 90.0
WORKER = """
import os
from config import TestConfig
TestConfig.SQLALCHEMY_DATABASE_URI = os.environ["WORKER_DB"]
TestConfig.RATELIMIT_STORAGE_URI = os.environ["WORKER_LIMITS"]
TestConfig.CRM_LOGIN_LIMIT_PER_USERNAME_IP = "5 per 15 minute"
from werkzeug.serving import make_server
from app import create_app
server = make_server("127.0.0.1", 0, create_app(TestConfig), threaded=True)
print("serving on", server.server_port, flush=True)
server.serve_forever()
"""




def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on loopback: its URL."""
    if not os.path.exists(REDIS_SERVER):
        if os.environ.get("CRM_REDIS_TESTS") == "required":
            pytest.fail(f"CRM_REDIS_TESTS=required but {REDIS_SERVER} is missing")
        pytest.skip("redis-server is not installed")
    folder, port = tmp_path_factory.mktemp("redis"), _free_port()
    server = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        poll(lambda: _pings(client) or server.poll() is not None, 20, lambda: "redis-server did not answer")
        assert server.poll() is None, "redis-server exited at start"
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait(20)


class Worker:
    """One web worker: its own process, app and limiter, on the suite's database."""

    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process, self.log, self.base = process, log, ""

    def ready(self) -> bool:
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("serving on "):
                self.base = f"http://127.0.0.1:{line.split()[-1]}"
                return True
        return self.process.poll() is not None

    def login(self, username: str, password: str, cookies: Any = None) -> requests.Response:
        return requests.post(f"{self.base}/login/", data={"username": username, "password": password},
                             cookies=cookies, allow_redirects=False, timeout=30)

    def get(self, path: str, cookies: Any) -> requests.Response:
        return requests.get(f"{self.base}{path}", cookies=cookies, allow_redirects=False, timeout=30)


@pytest.fixture(scope="module")
def workers(app: Any, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    folder = tmp_path_factory.mktemp("workers")
    env = {**os.environ, "WORKER_DB": app.config["SQLALCHEMY_DATABASE_URI"], "WORKER_LIMITS": redis_url,
           "CRM_INSTANCE_DIR": str(folder), "PYTHONUNBUFFERED": "1"}
    started = []
    for number in range(2):
        log = folder / f"worker-{number}.log"
        with log.open("w") as out:
            started.append(Worker(subprocess.Popen([sys.executable, "-c", WORKER], cwd=BASE_DIR, env=env,
                                                   stdout=out, stderr=subprocess.STDOUT), log))
    try:
        for worker in started:
            poll(worker.ready, START_BOUND, lambda w=worker: f"worker did not start:\n{w.log.read_text()[-3000:]}")
            assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        yield started
    finally:
        for worker in started:
            worker.process.terminate()
            worker.process.wait(20)


@pytest.fixture(autouse=True)
def _fresh_counters(request: pytest.FixtureRequest) -> None:
    if "workers" in request.fixturenames:
        redis.Redis.from_url(request.getfixturevalue("redis_url")).flushall()


def test_wrong_passwords_count_once_across_workers(workers: list[Worker]) -> None:
    """Five wrong passwords per (account, address) in all, wherever they land: three on one
    worker and two on the other use the budget up, and both workers refuse the sixth try,
    the right password included."""
    first, second = workers
    tries = [first, first, first, second, second]
    assert [worker.login("rep_a", f"guess-{i}").status_code for i, worker in enumerate(tries)] == [302] * 5
    for worker in (first, second):
        refused = worker.login("rep_a", PASSWORD)
        assert refused.status_code == 429, refused.text[:500]
        assert "Too many wrong passwords" in refused.text and int(refused.headers["Retry-After"]) > 0


def test_logout_through_one_worker_ends_the_session_on_the_other(workers: list[Worker]) -> None:
    first, second = workers
    response = first.login("rep_b", PASSWORD)
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    cookie = response.cookies  # the copy a second tab (or a thief) keeps
    assert second.get("/customerview/list/", cookie).status_code == 200
    assert first.get("/logout/", cookie).status_code == 302
    refused = second.get("/customerview/list/", cookie)
    assert refused.status_code == 302 and "/login" in refused.headers["Location"]
