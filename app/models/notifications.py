"""Notifications (issue 14): the in-app inbox, the e-mail/SMS outbox, preferences.

One service (``app.services.notifications``) turns an event into rows here: one
``Notification`` per recipient (unique per recipient and occasion, so a reminder fires
once however many ticks or workers try) and one ``OutboxMessage`` per e-mail or SMS,
sent and retried by the queue.
"""

from __future__ import annotations

from datetime import datetime

from flask_appbuilder import Model
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import UtcDateTime, now, referrer_index


class Notification(Model):
    """One event for one reader. The text is made when shown, in the reader's language,
    from ``event`` and ``params``; the record (``record_type``, ``record_id``) is shown
    only while the reader may see it."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("user_id", "occasion", name="uq_notification_occasion"),
        Index("ix_notification_inbox", "user_id", "read_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False)
    event: Mapped[str] = mapped_column(String(32), nullable=False)
    record_type: Mapped[str | None] = mapped_column(String(32))
    record_id: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict | None] = mapped_column(JSON)
    #: what makes the event one occasion ("birthday:P…:2026"): a second attempt is dropped
    occasion: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user = relationship("CrmUser", foreign_keys=[user_id])


class OutboxMessage(Model):
    """An e-mail or SMS waiting to be sent, sent, or failed (visible on the outbox page).

    ``status``: queued → sent, or queued → (retry at ``next_attempt_at``) … → failed after
    the last attempt. Sending claims the row (``claimed_until``), so two workers never
    send one message twice."""

    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"), referrer_index("outbox_message", "notification_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), nullable=False, default="email")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notification.id", ondelete="SET NULL"))
    to_address: Mapped[str] = mapped_column(String(200), nullable=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    text_body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    html_body: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user = relationship("CrmUser", foreign_keys=[user_id])
    attachments = relationship("OutboxAttachment", cascade="all, delete-orphan", order_by="OutboxAttachment.id")


class OutboxAttachment(Model):
    """A file sent with an outbox e-mail (a scheduled report's xlsx, issue 17)."""

    __tablename__ = "outbox_attachment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_message.id", ondelete="CASCADE"),
                                            nullable=False, index=True)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class NotificationPreference(Model):
    """Which channels one user wants for one event (no row: the event's defaults).
    ``digest``: its e-mails wait for the morning digest instead of going at once."""

    __tablename__ = "notification_preference"

    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True)
    event: Mapped[str] = mapped_column(String(32), primary_key=True)
    in_app: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    email: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    sms: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    digest: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class DigestSent(Model):
    """A user's daily digest e-mail for one day (local date, ISO) was queued: once per day,
    however many ticks or workers try."""

    __tablename__ = "digest_sent"
    __table_args__ = (UniqueConstraint("user_id", "day", name="uq_digest_user_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False)
    day: Mapped[str] = mapped_column(String(10), nullable=False)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=now)
