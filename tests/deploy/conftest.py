"""The deploy tests run the product as production does: gunicorn with 3 workers, 2 task
workers and 2 schedulers on loopback, a fresh PostgreSQL database and a real Redis
(``tests/deploy/stack.py``).

They need PostgreSQL (``TEST_DATABASE_URL``) and Redis (``REDIS_URL``): ``.ci/run`` starts
both for its second phase and sets ``CRM_DEPLOY_TESTS=required``, which turns a missing
piece into a failure; elsewhere (SQLite, no Redis) the tests are skipped with the reason.
These tests never touch the suite's own database, so the suite's per-test clean-up is
switched off here.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.stack import Deployment, StackError

#: The scheduler's stand-by poll, kept short so a hand-over is seen within the test budget.
STANDBY_SECONDS = 3
#: Rows validated and committed together: small, so a long import has many chunks to watch.
CHUNK_ROWS = 200
#: A job's claim without a heartbeat: short, so a killed worker's job is free again soon.
LEASE_SECONDS = 10


def unavailable(reason: str) -> None:
    """Skip (or fail, where ``CRM_DEPLOY_TESTS=required``) because a real part is missing."""
    if os.environ.get("CRM_DEPLOY_TESTS") == "required":
        pytest.fail(f"deploy tests are required here, but {reason}")
    pytest.skip(f"deploy test skipped: {reason}")


def _redis_answers(url: str) -> str | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()
    return None


def missing_part() -> str | None:
    """Why the real deployment cannot start here, or None."""
    database = os.environ.get("TEST_DATABASE_URL", "")
    if not database.startswith("postgresql"):
        return "they need PostgreSQL (TEST_DATABASE_URL=postgresql+psycopg://...; source .ci/postgres.sh)"
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        return "they need a Redis server (REDIS_URL=redis://...; source .ci/redis.sh)"
    problem = _redis_answers(redis_url)
    if problem:
        return f"Redis at {redis_url} does not answer ({problem})"
    if shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None:
        return "gunicorn is not installed in this environment"
    return None


@pytest.fixture(autouse=True)
def _clean_data() -> None:
    """The suite's clean-up works on its own database; the deployment has another one."""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """gunicorn (3 workers) + 2 task workers + 2 schedulers on a fresh, migrated database with
    the demo users; stopped (process groups) and dropped afterwards, whatever happened."""
    reason = missing_part()
    if reason:
        unavailable(reason)
    stack = Deployment(
        tmp_path_factory.mktemp("deploy"), os.environ["TEST_DATABASE_URL"], os.environ["REDIS_URL"],
        extra_env={"CRM_SCHEDULER_STANDBY_SECONDS": str(STANDBY_SECONDS), "CRM_IMPORT_CHUNK_ROWS": str(CHUNK_ROWS),
                   "CRM_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
                   # The login test is about the per-account budget; the per-address limit on
                   # every login request would otherwise answer first.
                   "AUTH_RATE_LIMIT": "200 per 20 second"},
    )
    try:
        stack.start()
    except StackError as exc:
        pytest.fail(f"the deployment did not start: {exc}")
    try:
        yield stack
    finally:
        stack.close()
