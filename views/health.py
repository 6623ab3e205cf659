"""Health endpoints for a load balancer: ``/health/live`` and ``/health/ready``.

Plain Flask routes, outside FAB: no login, no session (nothing is read from or written to
it, so no cookie is set), no CSRF (GET only), no rate limit. The body names what failed,
never an address, a password, an exception text or a version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.extensions import db

health = Blueprint("health", __name__, url_prefix="/health")
#: Seconds a readiness check may wait for Redis or the broker.
CHECK_TIMEOUT = 2


@health.get("/live")
def live() -> Any:
    """The process answers: 200 ``{"status": "ok"}``, no database access."""
    return jsonify(status="ok")


def database_engine() -> Engine:
    """The engine ``/health/ready`` asks (a function, so a test can point it elsewhere)."""
    return db.engine


def check_database() -> None:
    with database_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def check_redis() -> None:
    import redis

    client = redis.Redis.from_url(current_app.config["REDIS_URL"], socket_timeout=CHECK_TIMEOUT,
                                  socket_connect_timeout=CHECK_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()


def check_broker() -> None:
    from app.celery_app import client

    with client(current_app).connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT)


def checks() -> dict[str, Callable[[], None]]:
    """What readiness needs: the database always; Redis when ``REDIS_URL`` is set; the
    broker when jobs go to Celery and it is not that same Redis."""
    config = current_app.config
    wanted = {"database": check_database}
    if config.get("REDIS_URL"):
        wanted["redis"] = check_redis
    if config.get("CRM_TASK_QUEUE") == "celery" and config.get("CELERY_BROKER_URL") != config.get("REDIS_URL"):
        wanted["broker"] = check_broker
    return wanted


@health.get("/ready")
def ready() -> Any:
    """200 when every check of ``checks`` passes; 503 naming the ones that failed."""
    results = {}
    for name, check in checks().items():
        try:
            check()
            results[name] = "ok"
        except Exception:  # any failure means not ready; the log has the details, the body does not
            current_app.logger.warning("Readiness check %s failed", name, exc_info=True)
            results[name] = "unreachable"
    failed = sorted(name for name, result in results.items() if result != "ok")
    body = {"status": "ok" if not failed else "unavailable", "checks": results}
    if failed:
        body["failed"] = failed
    return jsonify(body), 503 if failed else 200


def register_health(app: Flask, appbuilder: Any) -> None:
    """Add the endpoints, exempt from CSRF and from the rate limits."""
    from app.extensions import csrf

    csrf.exempt(health)
    limiter = getattr(appbuilder.sm, "limiter", None)
    if limiter is not None:
        limiter.exempt(health)
    app.register_blueprint(health)
