"""Second factor: a user's TOTP credential, recovery codes and step-up grants."""

from __future__ import annotations

from datetime import datetime

from flask_appbuilder import Model
from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from app.models.base import UtcDateTime


class TotpCredential(Model):
    """A confirmed authenticator. The secret is Fernet-encrypted (key from config)."""

    __tablename__ = "totp_credential"

    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True)
    secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    confirmed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    #: Replay guard: the last accepted time step; a code must come from a later one.
    last_used_step: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user = relationship("CrmUser", backref=backref("totp_credential", uselist=False, cascade="all, delete-orphan"))


class RecoveryCode(Model):
    """Single-use fallback codes: salted SHA-256 (40 random bits each; guesses spend the same budget)."""

    __tablename__ = "totp_recovery_code"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), index=True, nullable=False)
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StepUpGrant(Model):
    """A fresh step-up for one login session (browser session id or JWT id), until ``expires_at``."""

    __tablename__ = "step_up_grant"

    session_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, index=True)
