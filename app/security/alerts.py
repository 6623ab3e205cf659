"""Security alerts: the audit entries an administrator must look at.

``audit.ALERT_ACTIONS`` lists the audit log's own (TOTP lockout, broken chain); the
login throttle adds its alert here. The home page banner and *Security → Security
alerts* both read ``actions()``.
"""

from __future__ import annotations

from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.clock import utc_now
from app.extensions import db
from app.models.audit import AuditLog
from app.security import login_guard
from app.services import audit

#: What each alert is called (the audit log's labels, and the admins' notification).
LABELS = {
    "totp_locked": _l("Authenticator locked"), "audit_chain_broken": _l("Audit chain broken"),
    login_guard.ALERT: _l("Logins limited after wrong passwords"),
}


def actions() -> tuple[str, ...]:
    """Every audit action that is a security alert (no duplicates)."""
    return tuple(dict.fromkeys((*audit.ALERT_ACTIONS, login_guard.ALERT)))


def recent_count(hours: int = 24) -> int:
    """Alerts raised in the last ``hours`` hours."""
    since = utc_now() - timedelta(hours=hours)
    return db.session.scalar(select(func.count(AuditLog.id)).where(
        AuditLog.action.in_(actions()), AuditLog.created_at >= since
    )) or 0
