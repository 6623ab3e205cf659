"""E-mail through an outbox (issue 14): queued in the caller's transaction, sent by the queue.

Nothing is sent inline: ``queue`` writes an ``OutboxMessage`` that commits with the change
that caused it; the queue's sender delivers it through Flask-Mailman and retries while the
SMTP server is down, so nothing is lost and nothing is sent twice.
"""

from __future__ import annotations

from app.extensions import db
from app.models.notifications import OutboxMessage


def queue(to_address: str, subject: str, text_body: str, html_body: str | None = None, *,
          user_id: int | None = None, notification_id: int | None = None,
          language: str | None = None, channel: str = "email") -> OutboxMessage:
    """Queue one message to ``to_address`` (an e-mail address; a phone for ``channel="sms"``).

    The row commits with the caller's transaction; the sender picks it up after the commit.
    Returns the (flushed) outbox row."""
    message = OutboxMessage(channel=channel, to_address=to_address, subject=subject, text_body=text_body,
                            html_body=html_body, user_id=user_id, notification_id=notification_id,
                            language=language, status="queued")
    db.session.add(message)
    db.session.flush()
    return message
