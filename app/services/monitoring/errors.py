"""Unhandled errors (the weekly error-log review of 000 §三(二)): every exception a request
raises is written to ``error_event`` on its own connection: the class name, the first line
of its message (bounded) and the endpoint, never request data (form, query, headers).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, got_request_exception, request
from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from app.clock import utc_now
from app.extensions import db
from app.models.operations import ErrorEvent

log = logging.getLogger(__name__)
MESSAGE_LIMIT = 300


def summary(exc: BaseException) -> tuple[str, str]:
    """(class name, first line of the message, at most ``MESSAGE_LIMIT`` characters)."""
    lines = str(exc).strip().splitlines()
    return type(exc).__name__[:128], (lines[0] if lines else "")[:MESSAGE_LIMIT]


def record(where: str, exc: BaseException, user_id: int | None = None) -> bool:
    """Write one ``error_event`` (``where``: endpoint or ``job:<id>``) on its own
    connection. Returns False when the database refused (logged, never raised)."""
    kind, message = summary(exc)
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(ErrorEvent.__table__).values(
                at=utc_now(), where=where[:128], kind=kind, message=message or None, user_id=user_id))
    except SQLAlchemyError:
        log.warning("Error event not stored", exc_info=True)
        return False
    return True


def _on_exception(sender: Any, exception: BaseException, **_: Any) -> None:
    user = getattr(g, "user", None)
    record(request.endpoint or request.path.split("?", 1)[0][:128], exception, getattr(user, "id", None))


def install(app: Flask) -> None:
    """Record every unhandled exception of ``app``'s requests."""
    got_request_exception.connect(_on_exception, app, weak=False)
