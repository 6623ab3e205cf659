"""SMS (app/services/sms.py): the logging backend, a pluggable provider, the outbox's retries."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import OutboxMessage
from app.models.org import CrmUser
from app.services import mail, notifications
from tests.conftest import user_id

SENT: list[tuple[str, str]] = []


class RecordingBackend:
    """A provider that accepts every message (what a real gateway's client class looks like)."""

    def send(self, to: str, text: str) -> None:
        SENT.append((to, text))


class DownBackend:
    def send(self, to: str, text: str) -> None:
        raise ConnectionError("gateway unreachable")


@pytest.fixture
def phone(app: Any) -> Any:
    """rep_a has a phone and wants lead assignments by SMS; both undone after the test."""
    table = CrmUser.__table__
    with app.app_context():
        db.session.execute(update(table).where(table.c.username == "rep_a").values(phone="13812345678"))
        notifications.save_preferences(db.session.get(CrmUser, user_id("rep_a")),
                                       {"lead_assigned": ["in_app", "sms"]}, None)
        db.session.commit()
        db.session.remove()
    SENT.clear()
    yield
    with app.app_context():
        db.session.execute(update(table).where(table.c.username == "rep_a").values(phone=None))
        db.session.commit()


def lead(code: str = "L1") -> None:
    notifications.notify("lead_assigned", [user_id("rep_a")], params={"code": code, "company": "Acme"})
    db.session.commit()


def test_logging_backend_logs_masked_and_marks_sent(ctx: Any, phone: Any, caplog: pytest.LogCaptureFixture) -> None:
    lead()
    with caplog.at_level(logging.INFO, logger="app.services.sms"):
        assert mail.send_due() == 1

    message = db.session.scalars(select(OutboxMessage)).one()
    assert (message.channel, message.status, message.to_address) == ("sms", "sent", "13812345678")
    assert "SMS to 138****5678: [Sheets CRM] Lead L1 Acme is yours now." in caplog.text
    assert "13812345678" not in caplog.text


def test_a_configured_provider_gets_the_phone_and_text(app: Any, ctx: Any, phone: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_SMS_BACKEND", f"{__name__}.RecordingBackend")
    lead()

    assert mail.send_due() == 1
    assert SENT == [("13812345678", "[Sheets CRM] Lead L1 Acme is yours now.")]


def test_a_failing_provider_is_retried_like_email(app: Any, ctx: Any, phone: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_SMS_BACKEND", f"{__name__}.DownBackend")
    lead()

    assert mail.send_due() == 0
    message = db.session.scalars(select(OutboxMessage)).one()
    assert (message.status, message.attempts) == ("queued", 1)
    assert message.last_error == "ConnectionError: gateway unreachable"
    assert message.next_attempt_at is not None


def test_a_wrong_backend_path_is_a_visible_error(app: Any, ctx: Any, phone: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_SMS_BACKEND", "no.such.Backend")
    lead()

    mail.send_due()
    message = db.session.scalars(select(OutboxMessage)).one()
    assert "CRM_SMS_BACKEND='no.such.Backend' is not an importable class" in message.last_error


def test_no_phone_no_sms(ctx: Any) -> None:
    notifications.save_preferences(db.session.get(CrmUser, user_id("rep_b")), {"lead_assigned": ["sms"]}, None)
    notifications.notify("lead_assigned", [user_id("rep_b")], params={"code": "L1", "company": "Acme"})
    db.session.commit()

    assert db.session.scalars(select(OutboxMessage)).all() == []
