"""E-mail and SMS through an outbox (issue 14): queued in the caller's transaction, sent by the queue.

Nothing is sent inline: ``queue`` writes an ``OutboxMessage`` that commits with the change
that caused it. ``send_due`` (every minute on the scheduler, and submitted to the task
queue right after a commit that queued something) delivers the due rows:

* each row is **claimed** with one conditional UPDATE (queued, due, not claimed by a
  live sender); the row count decides, so two senders never send one message twice;
* e-mail goes through Flask-Mailman's SMTP backend (text + HTML alternative), SMS through
  ``app.services.sms`` (a pluggable backend);
* a failure schedules the next attempt after ``BACKOFF_MINUTES`` (1, 5, 15, 60 … minutes);
  after ``MAIL_MAX_ATTEMPTS`` (default 8) the row is ``failed`` with its last error, visible
  and retriable on the outbox page;
* an SMTP server that cannot be reached ends the run's e-mail part at the first message
  (one attempt counted), so a down server costs one timeout per run, not one per message;
* without ``MAIL_SERVER`` e-mail stays queued (the outbox page says so): nothing is lost.

A sender killed between the SMTP answer and its commit leaves the claim to expire
(``LEASE``) and the message is sent again: delivery is at least once in that window only.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from app.clock import utc_now
from app.extensions import db
from app.models.notifications import OutboxAttachment, OutboxMessage

log = logging.getLogger(__name__)

QUEUED, SENT, FAILED = "queued", "sent", "failed"
#: An e-mail that waits for the user's morning digest (``notifications.digest_pending``),
#: then ``DIGESTED`` once the digest that carries it is queued. Never sent on its own.
HELD, DIGESTED = "held", "digested"
STATUSES = (QUEUED, SENT, FAILED, HELD, DIGESTED)
EMAIL, SMS = "email", "sms"
#: Largest total size of one e-mail's attachments (10 MB: what common mail servers accept).
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
#: Minutes before the next attempt after the 1st, 2nd … failure (the last one repeats).
BACKOFF_MINUTES = (1, 5, 15, 60, 180, 360, 720)
#: How long a claim lasts: longer than a send can take (MAIL_TIMEOUT is per SMTP step).
LEASE = timedelta(minutes=5)
#: Session flag: this transaction queued a message, send it right after the commit.
_KICK = "crm_outbox_kick"
#: Errors that say the SMTP server (not this one message) is unusable right now.
_SERVER_DOWN = (OSError, smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected,
                smtplib.SMTPAuthenticationError, smtplib.SMTPHeloError)


def queue(to_address: str, subject: str, text_body: str, html_body: str | None = None, *,
          user_id: int | None = None, notification_id: int | None = None,
          language: str | None = None, channel: str = "email",
          attachments: Iterable[tuple[str, bytes, str]] = ()) -> OutboxMessage:
    """Queue one message to ``to_address`` (an e-mail address; a phone for ``channel="sms"``).

    ``attachments``: ``(filename, data, content_type)`` files sent with an e-mail, at most
    ``MAX_ATTACHMENT_BYTES`` in all (``ValueError`` beyond: a mail server refuses more).

    The row commits with the caller's transaction; ``send_due`` is submitted after that
    commit (and runs every minute anyway). The subject becomes one line (a header cannot
    carry a line break or a separator; callers that take a subject from a person refuse
    one first). Returns the (flushed) outbox row."""
    message = OutboxMessage(channel=channel, to_address=to_address, subject=" ".join((subject or "").split())[:255],
                            text_body=text_body, html_body=html_body, user_id=user_id,
                            notification_id=notification_id, language=language, status=QUEUED)
    files = [OutboxAttachment(filename=name[:255], data=data, content_type=kind) for name, data, kind in attachments]
    if sum(len(f.data) for f in files) > MAX_ATTACHMENT_BYTES:
        raise ValueError(f"attachments exceed {MAX_ATTACHMENT_BYTES} bytes")
    message.attachments = files
    db.session.add(message)
    db.session.flush()
    kick_after_commit()
    return message


def kick_after_commit() -> None:
    """Submit ``send_due`` once the current transaction commits (nothing on a rollback)."""
    db.session.info[_KICK] = True


def email_configured() -> bool:
    """Whether an SMTP server is set (``MAIL_SERVER``); without one e-mail stays queued."""
    return bool(current_app.config.get("MAIL_SERVER"))


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt after ``attempts`` failed ones (1 -> 1 min, 2 -> 5 min …)."""
    return timedelta(minutes=BACKOFF_MINUTES[min(max(attempts, 1), len(BACKOFF_MINUTES)) - 1])


def _due(now: Any) -> Any:
    return (OutboxMessage.status == QUEUED,
            or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))


def send_due(limit: int | None = None) -> int:
    """Send the due outbox rows (at most ``limit``, default ``MAIL_BATCH`` = 100, oldest
    first); returns how many were sent. Module-level: the scheduler's minute job and the
    task queue run it, any number at once (each row is claimed before it is sent)."""
    channels = [SMS, EMAIL] if email_configured() else [SMS]
    now = utc_now()
    limit = limit or int(current_app.config.get("MAIL_BATCH", 100))
    ids = db.session.scalars(select(OutboxMessage.id).where(*_due(now), OutboxMessage.channel.in_(channels))
                             .order_by(OutboxMessage.id).limit(limit)).all()
    db.session.commit()
    sender = _Sender()
    sent = 0
    try:
        for pk in ids:
            if sender.smtp_down and db.session.get(OutboxMessage, pk).channel == EMAIL:
                continue  # not claimed: it stays queued for the next run
            if claim(pk):
                sent += _deliver_one(sender, pk)
    finally:
        sender.close()
        db.session.commit()
    return sent


def claim(pk: int) -> bool:
    """Take outbox row ``pk`` for ``LEASE`` if it is still queued, due and unclaimed (one
    conditional UPDATE, committed: two senders racing for it get 1 and 0 rows)."""
    now = utc_now()
    taken = db.session.execute(update(OutboxMessage).where(OutboxMessage.id == pk, *_due(now))
                               .values(claimed_until=now + LEASE)
                               .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return taken == 1


def _deliver_one(sender: _Sender, pk: int) -> int:
    message = db.session.get(OutboxMessage, pk)
    db.session.refresh(message)
    try:
        sender.deliver(message)
    except Exception as exc:  # any failure is the message's state, not the run's end
        log.warning("Outbox message %s (%s) not sent: %s", pk, message.channel, exc)
        _record_failure(message, exc)
        if message.channel == EMAIL and isinstance(exc, _SERVER_DOWN):
            sender.smtp_down = True
        db.session.commit()
        return 0
    message.status, message.sent_at, message.claimed_until = SENT, utc_now(), None
    message.attempts += 1
    message.last_error = None
    db.session.commit()
    return 1


def _record_failure(message: OutboxMessage, exc: Exception) -> None:
    message.attempts += 1
    message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    message.claimed_until = None
    if message.attempts >= int(current_app.config.get("MAIL_MAX_ATTEMPTS", 8)):
        message.status = FAILED
        message.next_attempt_at = None
    else:
        message.next_attempt_at = utc_now() + backoff(message.attempts)


class _Sender:
    """One SMTP connection per run (opened at the first e-mail) and the SMS backend."""

    def __init__(self) -> None:
        self.connection: Any = None
        self.smtp_down = False

    def deliver(self, message: OutboxMessage) -> None:
        if message.channel == SMS:
            from app.services import sms

            sms.deliver(message.to_address, message.text_body)
            return
        from flask_mailman import EmailMultiAlternatives

        if self.connection is None:
            self.connection = smtp_connection()
        email = EmailMultiAlternatives(message.subject, message.text_body, sender_address(),
                                       [message.to_address], connection=self.connection)
        if message.html_body:
            email.attach_alternative(message.html_body, "text/html")
        for file in message.attachments:
            email.attach(file.filename, file.data, file.content_type)
        if email.send() != 1:
            raise smtplib.SMTPException("the server accepted no recipient")

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:  # closing a broken connection must not hide the run's result
                log.debug("SMTP close failed", exc_info=True)


def smtp_connection() -> Any:
    """A Flask-Mailman SMTP connection from the current ``MAIL_*`` settings (read per run,
    so a changed setting needs no restart of the sender)."""
    from app.extensions import mail

    cfg = current_app.config
    return mail.get_connection(
        backend="smtp", fail_silently=False, host=cfg.get("MAIL_SERVER"), port=int(cfg.get("MAIL_PORT") or 25),
        username=cfg.get("MAIL_USERNAME") or "", password=cfg.get("MAIL_PASSWORD") or "",
        use_tls=bool(cfg.get("MAIL_USE_TLS")), use_ssl=bool(cfg.get("MAIL_USE_SSL")),
        timeout=float(cfg.get("MAIL_TIMEOUT") or 10))


def sender_address() -> str:
    """The From address: ``MAIL_DEFAULT_SENDER``, else the app's name at localhost."""
    return current_app.config.get("MAIL_DEFAULT_SENDER") or f"{current_app.config.get('APP_NAME', 'CRM')} " \
                                                            "<noreply@localhost>"


def retry_now(pk: int) -> OutboxMessage | None:
    """Queue a failed message again for one more attempt now (the outbox page's *Retry
    now*); None if ``pk`` is not a failed message. The caller audits and commits."""
    message = db.session.get(OutboxMessage, pk)
    if message is None or message.status != FAILED:
        return None
    message.status, message.next_attempt_at, message.claimed_until = QUEUED, utc_now(), None
    db.session.flush()
    kick_after_commit()
    return message


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    """A commit that queued mail submits ``send_due`` (threads or Celery). Inline mode
    (tests) leaves it to the explicit call: the committed session cannot run it here."""
    if not session.info.pop(_KICK, False) or not has_app_context():
        return
    if current_app.config.get("CRM_IMPORT_INLINE"):
        return
    from app.services import background

    try:
        background.submit(send_due)
    except Exception:  # the minute job sends it anyway; the commit already happened
        log.exception("Could not submit the outbox sender")


@event.listens_for(Session, "after_rollback")
def _forget_kick(session: Session) -> None:
    session.info.pop(_KICK, None)


def register_job() -> None:
    """The outbox sender on the scheduler's minute."""
    from app import scheduler

    scheduler.register("send_outbox", "Send queued e-mail and SMS (outbox)", send_due, {"minute": "*"})


register_job()
