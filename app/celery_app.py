"""Celery for this app: the client web processes send with, and the worker that runs jobs.

``flask crm worker`` (app/cli.py) starts a worker for the app it runs in; the engine's own
command works too: ``celery -A app.celery_app worker`` builds the app from the environment
(``create_app()``) the first time the worker asks for it. Every job is the one task
``crm.run(name, args)`` (app/services/tasks.py), run in an app context with its own
session, removed afterwards.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from flask import Flask

log = logging.getLogger(__name__)
_EXTENSION = "crm_celery"


def settings(config: Any) -> dict[str, Any]:
    """Celery settings from the Flask config: at-least-once delivery, one job at a time
    per worker process, JSON only, and a short wait when the broker is down (the job stays
    queued in the database; the sweep sends it again)."""
    broker = config.get("CELERY_BROKER_URL") or config.get("REDIS_URL")
    if not broker:
        raise RuntimeError("CRM_TASK_QUEUE=celery needs CELERY_BROKER_URL or REDIS_URL.")
    return {
        "broker_url": broker,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                                      "interval_max": 1},
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }


def client(app: Flask) -> Celery:
    """The app's Celery for sending tasks (made once per app, no worker parts)."""
    celery = app.extensions.get(_EXTENSION)
    if celery is None:
        celery = Celery("crm", set_as_current=False)
        celery.conf.update(settings(app.config))
        app.extensions[_EXTENSION] = celery
    return celery


def worker(app: Flask) -> Celery:
    """A Celery whose ``crm.run`` runs jobs in ``app``; forked pool processes get their own
    database connections (the engine is disposed after the fork)."""
    celery = Celery("crm")
    celery.conf.update(settings(app.config))

    @celery.task(name="crm.run")
    def run(name: str, args: list[Any]) -> None:
        from app.extensions import db
        from app.services import tasks

        with app.app_context():
            try:
                tasks.run_named(name, args)
            finally:
                db.session.remove()

    def fresh_connections(**_: Any) -> None:
        from app.extensions import db

        with app.app_context():
            db.engine.dispose(close=False)  # the parent's connections stay the parent's

    worker_process_init.connect(fresh_connections, weak=False)
    return celery


def __getattr__(name: str) -> Any:
    """``celery -A app.celery_app``: the worker for an app built from the environment."""
    if name in ("celery", "app"):
        from app import create_app

        globals()[name] = built = worker(create_app())
        return built
    raise AttributeError(name)
