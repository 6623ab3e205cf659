"""TOTP second factor: enrolment, recovery codes, and the one code check everything uses.

``verify`` is the only place a code is accepted. It enforces, in order: enrolment, the
lockout (``TOTP_MAX_FAILURES`` consecutive failures lock the user's codes for
``TOTP_LOCKOUT_MINUTES``), the failed-attempt budgets per user and per IP (kept in
Flask-Limiter's storage, so Redis in production), the ±1 step window, and the replay
guard (a step at or before the last accepted one is refused). Every attempt is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import pyotp
import qrcode
import qrcode.image.svg
from cryptography.fernet import Fernet
from flask import current_app, has_request_context, request
from limits import parse
from sqlalchemy import delete, exists, select

from app.extensions import appbuilder, db
from app.models.org import RoleDataScope
from app.models.security import RecoveryCode, StepUpGrant, TotpCredential
from app.services import audit

STEP_SECONDS = 30
RECOVERY_CODES = 10
_CODE_RE = re.compile(r"^\d{6}$")


class Outcome(Enum):
    OK = "ok"
    WRONG = "wrong"
    REPLAYED = "replayed"
    LOCKED = "locked"
    LIMITED = "limited"
    NOT_ENROLLED = "not_enrolled"


def clock() -> float:
    """Current Unix time (tests move it forward to get the next code)."""
    return time.time()


def now() -> datetime:
    """The current instant (aware UTC) on the same clock as the codes: lockouts and step-up grants use it."""
    return datetime.fromtimestamp(clock(), UTC)


def _fernet() -> Fernet:
    return Fernet(current_app.config["TOTP_ENCRYPTION_KEY"].encode())


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: Any, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=current_app.config["TOTP_ISSUER"])


def qr_svg(uri: str) -> str:
    """The enrolment QR code as inline SVG (rendered here, no external service)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


def credential(user: Any) -> TotpCredential | None:
    return db.session.get(TotpCredential, user.id) if user is not None else None


def is_enrolled(user: Any) -> bool:
    return credential(user) is not None


def enrolment_required(user: Any) -> bool:
    """True when any of the user's roles requires an authenticator."""
    role_ids = [role.id for role in getattr(user, "roles", [])]
    if not role_ids:
        return False
    return bool(db.session.scalar(select(exists().where(
        RoleDataScope.role_id.in_(role_ids), RoleDataScope.totp_required.is_(True)
    ))))


def login_factor_required(user: Any) -> bool:
    """Whether this user types a code after the password (config ``TOTP_AT_LOGIN``)."""
    mode = current_app.config.get("TOTP_AT_LOGIN", "required")
    if mode == "off" or not is_enrolled(user):
        return False
    return mode == "enrolled" or enrolment_required(user)


def _matching_step(secret: str, code: str) -> int | None:
    totp = pyotp.TOTP(secret)
    current = int(clock() // STEP_SECONDS)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _recovery_hash(user_id: int, code: str) -> str:
    normalised = code.replace("-", "").replace(" ", "").lower()
    return hashlib.sha256(f"{user_id}:{normalised}".encode()).hexdigest()


def _new_recovery_codes(user_id: int) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(user_id=user_id, code_hash=_recovery_hash(user_id, raw)))
    return codes


def confirm_enrolment(user: Any, secret: str, code: str) -> list[str] | None:
    """Store the secret once the user proves their app has it; returns the recovery codes."""
    code = (code or "").strip().replace(" ", "")
    step = _matching_step(secret, code) if _CODE_RE.match(code) else None
    if step is None:
        audit.record("totp_enrol_failed", user)
        db.session.commit()
        return None
    existing = credential(user)
    if existing is not None:
        db.session.delete(existing)
        db.session.flush()
    db.session.add(TotpCredential(
        user_id=user.id, secret_encrypted=_fernet().encrypt(secret.encode()).decode(),
        confirmed_at=now(), last_used_step=step,
    ))
    codes = _new_recovery_codes(user.id)
    audit.record("totp_reenrol" if existing else "totp_enrol", user)
    db.session.commit()
    return codes


def reset(user: Any, reason: str | None = None) -> None:
    """Remove a user's authenticator (lost phone); they enrol again at next login if required."""
    db.session.execute(delete(TotpCredential).where(TotpCredential.user_id == user.id))
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.execute(delete(StepUpGrant).where(StepUpGrant.user_id == user.id))
    audit.record("totp_reset", user, reason=reason)
    db.session.commit()


def recovery_codes_left(user: Any) -> int:
    return len(db.session.scalars(select(RecoveryCode.id).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
    )).all())


def _budgets(user: Any) -> list[tuple[Any, tuple[str, ...]]]:
    config = current_app.config
    ip = request.remote_addr if has_request_context() else "local"
    return [
        (parse(config["TOTP_FAIL_LIMIT_PER_USER"]), ("totp-fail-user", str(user.id))),
        (parse(config["TOTP_FAIL_LIMIT_PER_IP"]), ("totp-fail-ip", str(ip))),
    ]


def _within_budget(user: Any) -> bool:
    strategy = appbuilder.sm.limiter.limiter
    return all(strategy.test(item, *keys) for item, keys in _budgets(user))


def _spend_budget(user: Any) -> None:
    strategy = appbuilder.sm.limiter.limiter
    for item, keys in _budgets(user):
        strategy.hit(item, *keys)


def _use_recovery_code(user: Any, code: str) -> bool:
    row = db.session.scalar(select(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
        RecoveryCode.code_hash == _recovery_hash(user.id, code),
    ))
    if row is None:
        return False
    row.used_at = now()
    return True


def _check(cred: TotpCredential, user: Any, code: str) -> Outcome:
    if _CODE_RE.match(code):
        secret = _fernet().decrypt(cred.secret_encrypted.encode()).decode()
        step = _matching_step(secret, code)
        if step is None:
            return Outcome.WRONG
        if step <= cred.last_used_step:
            return Outcome.REPLAYED
        cred.last_used_step = step
        return Outcome.OK
    return Outcome.OK if _use_recovery_code(user, code) else Outcome.WRONG


def _fail(cred: TotpCredential, user: Any, outcome: Outcome, purpose: str, action: str | None) -> None:
    _spend_budget(user)
    cred.failed_count += 1
    detail = {"purpose": purpose, "action": action, "outcome": outcome.value}
    audit.record(f"{purpose}_failure", user, detail, user=user)
    if cred.failed_count >= current_app.config["TOTP_MAX_FAILURES"]:
        cred.locked_until = now() + timedelta(minutes=current_app.config["TOTP_LOCKOUT_MINUTES"])
        cred.failed_count = 0
        audit.record("totp_locked", user, {**detail, "until": cred.locked_until}, user=user)


def verify(user: Any, code: str | None, purpose: str = "step_up", action: str | None = None) -> Outcome:
    """Check a TOTP or recovery code for ``user``; commits the attempt and its audit entry."""
    cred = credential(user)
    if cred is None:
        return Outcome.NOT_ENROLLED
    if cred.locked_until is not None and cred.locked_until > now():
        audit.record(f"{purpose}_failure", user, {"action": action, "outcome": "locked"}, user=user)
        db.session.commit()
        return Outcome.LOCKED
    if not _within_budget(user):
        audit.record(f"{purpose}_failure", user, {"action": action, "outcome": "limited"}, user=user)
        db.session.commit()
        return Outcome.LIMITED
    outcome = _check(cred, user, (code or "").strip().replace(" ", ""))
    if outcome is Outcome.OK:
        cred.failed_count = 0
        cred.locked_until = None
        audit.record(f"{purpose}_success", user, {"action": action}, user=user)
    else:
        _fail(cred, user, outcome, purpose, action)
    db.session.commit()
    return outcome
