"""Presence: when each user was last seen (``CrmUser.last_seen_at``), for the admin
dashboard's "users online" (issue 17, ``app.services.metrics`` ``users_online``).

``touch(user)`` writes the instant at most once a minute per user: one conditional UPDATE
(``last_seen_at`` empty or older than ``INTERVAL``) on its own connection and transaction,
so it is committed whatever the request does afterwards (a failing request's rollback
never takes it back, and it never rides along in the request's own commit).
``install(app)`` runs it before every request of a logged-in user, except static files
and the health endpoints.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Flask, request
from sqlalchemy import or_, update
from sqlalchemy.exc import SQLAlchemyError

from app.clock import as_utc, utc_now
from app.extensions import db
from app.models.org import CrmUser

#: A user's ``last_seen_at`` is written at most once per this interval.
INTERVAL = timedelta(seconds=60)
#: Blueprints and endpoints that never count as being seen (no login, or no page).
SKIPPED_BLUEPRINTS = frozenset({"health"})


def touch(user: Any, now: datetime | None = None) -> bool:
    """Record that ``user`` (a logged-in ``CrmUser``) is active at ``now`` (UTC; default
    now). Returns True when the row was written, False when it was seen less than
    ``INTERVAL`` ago (already recorded) or the user is anonymous.

    Its own short transaction on a separate connection: committed at once, independent of
    the caller's session. A database error is swallowed (presence is never worth a failed
    page) and reported as False.
    """
    user_id = getattr(user, "id", None)
    if user_id is None or getattr(user, "is_anonymous", False):
        return False
    now = as_utc(now) or utc_now()
    seen = as_utc(getattr(user, "last_seen_at", None))
    if seen is not None and seen > now - INTERVAL:
        return False  # the loaded row already says so: no write at all
    stmt = (update(CrmUser.__table__)
            .where(CrmUser.__table__.c.id == user_id,
                   or_(CrmUser.__table__.c.last_seen_at.is_(None), CrmUser.__table__.c.last_seen_at < now - INTERVAL))
            .values(last_seen_at=now))
    try:
        with db.engine.begin() as conn:
            return conn.execute(stmt).rowcount > 0
    except SQLAlchemyError:
        return False


def _skipped() -> bool:
    endpoint = request.endpoint or ""
    return (not endpoint or endpoint == "static" or endpoint.endswith(".static")
            or request.blueprint in SKIPPED_BLUEPRINTS)


def _before_request() -> None:
    if _skipped():
        return
    from flask_login import current_user

    if getattr(current_user, "is_authenticated", False):
        touch(current_user)


def install(app: Flask) -> None:
    """Register ``touch`` for the logged-in user as a ``before_request`` hook of ``app``
    (static files and ``/health`` skipped). Call once, in the app factory."""
    app.before_request(_before_request)
