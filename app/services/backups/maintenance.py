"""Maintenance mode during a restore: a flag file in the instance folder that every process
sees (web workers answer 503, the scheduler submits nothing, background work waits).

CONTRACT (issue 19 foundation; the backups builder may refine the bodies, not the names).
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask, current_app, request
from flask_babel import gettext as _

FLAG_NAME = "maintenance.flag"
#: Paths that answer during a restore: the load balancer's health checks and static files.
OPEN_PREFIXES = ("/health/", "/static/", "/appbuilder/static/")

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{text}</p></body></html>"""


def flag_path() -> Path:
    """The flag file: ``<instance>/maintenance.flag``."""
    return Path(current_app.instance_path) / FLAG_NAME


def active() -> bool:
    """True while a restore runs (the flag file exists)."""
    return flag_path().exists()


def wait_until_over(limit_seconds: float = 900, step_seconds: float = 2) -> bool:
    """Block while a restore runs, at most ``limit_seconds`` (background work must not write
    into a database being swapped; a restore is bounded, so after the limit the work runs
    anyway). Returns True when no restore is under way any more."""
    waited = 0.0
    while active() and waited < limit_seconds:
        time.sleep(step_seconds)
        waited += step_seconds
    return not active()


def refuse() -> tuple[str, int, dict[str, str]] | None:
    """The 503 page while ``active()`` (None otherwise, and for the open paths)."""
    if request.path.startswith(OPEN_PREFIXES) or request.endpoint == "static" or not active():
        return None
    page = PAGE.format(title=_("A restore is under way"),
                       text=_("The CRM is being restored from a backup. Try again in a minute."))
    return page, 503, {"Retry-After": "60", "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


def install(app: Flask) -> None:
    """Answer 503 with a short page for every request but static files and ``/health/*``
    while the flag is set (checked first, before login and the database)."""
    app.before_request_funcs.setdefault(None, []).insert(0, refuse)
