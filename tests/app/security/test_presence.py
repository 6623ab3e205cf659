"""Presence (issue 17): ``last_seen_at`` written at most once a minute, on its own
transaction, for logged-in users' pages only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import flask_login
import pytest

from app import clock
from app.extensions import db
from app.models.org import CrmUser
from app.security import presence

T0 = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def seen(name: str) -> datetime | None:
    db.session.expire_all()
    return db.session.scalars(db.select(CrmUser.last_seen_at).filter_by(username=name)).one()


def load(name: str) -> CrmUser:
    db.session.expire_all()
    return db.session.scalars(db.select(CrmUser).filter_by(username=name)).one()


@pytest.fixture(autouse=True)
def _forget_presence(app: Any) -> Any:
    yield
    with app.app_context():
        db.session.execute(db.update(CrmUser).values(last_seen_at=None))
        db.session.commit()


def test_touch_writes_at_most_once_a_minute(ctx: Any) -> None:
    assert presence.touch(load("rep_a"), T0) is True
    assert seen("rep_a") == T0
    assert presence.touch(load("rep_a"), T0 + timedelta(seconds=59)) is False
    assert seen("rep_a") == T0
    # a stale object in memory (another process wrote meanwhile): the UPDATE's guard decides
    stale = load("rep_a")
    stale.last_seen_at = None
    assert presence.touch(stale, T0 + timedelta(seconds=30)) is False
    db.session.rollback()
    assert presence.touch(load("rep_a"), T0 + timedelta(seconds=61)) is True
    assert seen("rep_a") == T0 + timedelta(seconds=61)
    assert seen("rep_b") is None


def test_touch_is_committed_on_its_own_even_if_the_request_rolls_back(ctx: Any) -> None:
    person = load("rep_b")
    person.job_title = "changed by a failing request"
    db.session.flush()
    db.session.rollback()  # release SQLite's write lock the flush took, as a failed request does
    person = load("rep_b")
    person.phone = "13800000000"  # pending, never flushed
    assert presence.touch(person, T0) is True
    db.session.rollback()
    assert seen("rep_b") == T0
    assert load("rep_b").phone != "13800000000"


def test_anonymous_is_never_recorded(ctx: Any) -> None:
    assert presence.touch(flask_login.AnonymousUserMixin(), T0) is False
    assert presence.touch(None, T0) is False


@pytest.mark.parametrize(("path", "counted"), [("/", True), ("/customerview/list/", True),
                                               ("/static/crm/app.css", False), ("/health/live", False)])
def test_hook_counts_logged_in_pages_not_static_or_health(app: Any, path: str, counted: bool) -> None:
    with app.test_request_context(path), clock.frozen(T0):
        flask_login.login_user(load("manager"))
        presence._before_request()
        assert (seen("manager") == T0) is counted
        db.session.remove()


def test_hook_ignores_anonymous_requests(app: Any) -> None:
    with app.test_request_context("/customerview/list/"), clock.frozen(T0):
        presence._before_request()
        assert seen("manager") is None
        db.session.remove()


def test_install_registers_the_hook(app: Any) -> None:
    from flask import Flask

    other = Flask("presence_test")
    presence.install(other)
    assert presence._before_request in other.before_request_funcs[None]
