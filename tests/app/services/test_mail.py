"""The outbox sender (app/services/mail.py) against a real SMTP server (aiosmtpd on 127.0.0.1).

E-mail arrives in the recipient's language with text and HTML parts; a server that is down
leaves messages queued with their attempts and error visible, and they are delivered once
when it comes back; two senders at once deliver each message once.
"""

from __future__ import annotations

import email
import socket
from datetime import timedelta
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from app import clock
from app.extensions import db
from app.models import Customer, CustomerType, OutboxMessage
from app.models.org import CrmUser
from app.services import mail, notifications
from tests.concurrency import at_once
from tests.conftest import user_id


class Collector:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """A real SMTP server on a fixed free port that a test starts and stops."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = Collector()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp(app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app's MAIL_* settings point at a free port on 127.0.0.1; the server is started."""
    server = SmtpServer()
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", server.port)
    monkeypatch.setitem(app.config, "MAIL_TIMEOUT", 5)
    monkeypatch.setitem(app.config, "MAIL_DEFAULT_SENDER", "CRM <crm@example.com>")
    server.start()
    yield server
    server.stop()


def parts(message: Message) -> dict[str, str]:
    """content type -> decoded text of each part."""
    return {part.get_content_type(): part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
            for part in message.walk() if not part.is_multipart()}


def subject(message: Message) -> str:
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


def lead_assigned(username: str, language: str | None) -> None:
    """Tell ``username`` (e-mail language ``language``) that a lead is theirs (e-mail by default)."""
    with db.session.begin_nested():
        db.session.execute(update(CrmUser.__table__).where(CrmUser.__table__.c.username == username)
                           .values(language=language))
    db.session.expire_all()
    notifications.notify("lead_assigned", [user_id(username)],
                         params={"code": "L20261201001", "company": "Acme <b>Tools</b>"})
    db.session.commit()


def test_email_arrives_in_english_and_in_chinese_with_text_and_html(ctx: Any, smtp: SmtpServer) -> None:
    lead_assigned("rep_a", "en")
    lead_assigned("rep_b", "zh")

    assert mail.send_due() == 2

    by_recipient = {m["To"]: m for m in smtp.handler.messages}
    english, chinese = by_recipient["rep_a@example.com"], by_recipient["rep_b@example.com"]
    assert subject(english) == "[Sheets CRM] Lead assigned to you"
    assert subject(chinese) == "[Sheets CRM] 分配给您的线索"
    en_parts, zh_parts = parts(english), parts(chinese)
    assert set(en_parts) == {"text/plain", "text/html"}
    assert "Lead L20261201001 Acme <b>Tools</b> is yours now." in en_parts["text/plain"]
    # HTML is escaped: a company name cannot inject markup into the e-mail
    assert "Acme &lt;b&gt;Tools&lt;/b&gt;" in en_parts["text/html"]
    assert "<b>Tools</b>" not in en_parts["text/html"]
    assert "线索 L20261201001 Acme <b>Tools</b> 现在归您负责。" in zh_parts["text/plain"]
    assert "您好" in zh_parts["text/html"]
    sent = db.session.scalars(select(OutboxMessage)).all()
    assert {(m.status, m.attempts, m.language) for m in sent} == {("sent", 1, "en"), ("sent", 1, "zh")}


def test_without_mail_server_email_stays_queued(ctx: Any) -> None:
    lead_assigned("rep_a", None)

    assert mail.send_due() == 0

    message = db.session.scalars(select(OutboxMessage)).one()
    assert (message.status, message.attempts, message.to_address) == ("queued", 0, "rep_a@example.com")


def test_smtp_down_then_back_delivers_once(app: Any, ctx: Any, smtp: SmtpServer) -> None:
    smtp.stop()
    lead_assigned("rep_a", "en")

    assert mail.send_due() == 0
    message = db.session.scalars(select(OutboxMessage)).one()
    assert (message.status, message.attempts) == ("queued", 1)
    assert "Connection refused" in message.last_error or "Errno" in message.last_error
    assert message.next_attempt_at is not None  # retried later, not now
    retry_at = clock.as_utc(message.next_attempt_at)
    assert mail.send_due() == 0  # not due yet: no second attempt within the back-off
    db.session.refresh(message)
    assert message.attempts == 1

    smtp.start()
    with clock.frozen(retry_at + timedelta(seconds=1)):
        assert mail.send_due() == 1
        assert mail.send_due() == 0
    db.session.refresh(message)
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, None)
    assert [m["To"] for m in smtp.handler.messages] == ["rep_a@example.com"]


def test_backoff_grows_and_the_last_attempt_marks_failed(app: Any, ctx: Any, smtp: SmtpServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    smtp.stop()
    monkeypatch.setitem(app.config, "MAIL_MAX_ATTEMPTS", 3)
    lead_assigned("rep_a", "en")
    message = db.session.scalars(select(OutboxMessage)).one()
    waits = []
    moment = clock.utc_now()
    for _ in range(3):
        with clock.frozen(moment):
            mail.send_due()
        db.session.refresh(message)
        if message.next_attempt_at is not None:
            waits.append(clock.as_utc(message.next_attempt_at) - moment)
            moment = clock.as_utc(message.next_attempt_at)

    assert waits == [timedelta(minutes=1), timedelta(minutes=5)]
    assert (message.status, message.attempts) == ("failed", 3)
    assert message.last_error


def test_two_senders_at_once_deliver_each_message_once(app: Any, smtp: SmtpServer) -> None:
    addresses = [f"person{number}@example.com" for number in range(5)]
    with app.app_context():
        for address in addresses:
            mail.queue(address, "Hello", "text", "<p>html</p>")
        db.session.commit()
        db.session.remove()
    results = at_once(app, mail.send_due)
    assert sum(results) == 5
    assert sorted(m["To"] for m in smtp.handler.messages) == addresses


def test_claim_is_taken_once(ctx: Any) -> None:
    message = mail.queue("x@example.com", "s", "t")
    db.session.commit()

    assert mail.claim(message.id) is True
    assert mail.claim(message.id) is False


def test_retry_now_queues_a_failed_message_again(ctx: Any) -> None:
    message = mail.queue("x@example.com", "s", "t")
    message.status, message.attempts = mail.FAILED, 8
    db.session.commit()

    assert mail.retry_now(message.id) is message
    assert message.status == mail.QUEUED
    assert mail.retry_now(message.id) is None  # only a failed one


def test_a_commit_that_queued_mail_submits_the_sender(app: Any, ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.services import background

    submitted = []
    monkeypatch.setitem(app.config, "CRM_IMPORT_INLINE", False)
    monkeypatch.setattr(background, "submit", lambda func, *args: submitted.append(func))

    db.session.add(Customer(name="No mail here", owner_id=user_id("rep_a"), contact_phone="13812345678",
                            type=db.session.scalars(select(CustomerType)).first()))
    db.session.commit()
    assert submitted == []
    mail.queue("x@example.com", "s", "t")
    db.session.rollback()
    db.session.commit()
    assert submitted == []  # rolled back: nothing to send
    mail.queue("x@example.com", "s", "t")
    db.session.commit()
    assert submitted == [mail.send_due]


def test_send_due_is_a_scheduled_job(ctx: Any) -> None:
    from app import scheduler

    job = scheduler.definition("send_outbox")
    assert (job.func, job.cron) == (mail.send_due, {"minute": "*"})


def test_an_attachment_arrives_with_the_email_and_too_large_ones_are_refused(ctx: Any, smtp: SmtpServer) -> None:
    data = b"PK\x03\x04 weekly report bytes"
    mail.queue("manager@example.com", "周报 Weekly report", "See the attached workbook.",
               attachments=[("客户报表.xlsx", data, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")])
    db.session.commit()
    assert mail.send_due() == 1
    (message,) = smtp.handler.messages
    files = [p for p in message.walk() if p.get_filename()]
    assert [(str(email.header.make_header(email.header.decode_header(f.get_filename()))), f.get_payload(decode=True))
            for f in files] == [("客户报表.xlsx", data)]
    with pytest.raises(ValueError):
        mail.queue("manager@example.com", "Too big", "x",
                   attachments=[("big.bin", b"0" * (mail.MAX_ATTACHMENT_BYTES + 1), "application/octet-stream")])
