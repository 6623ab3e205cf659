"""Account lifecycle rules (expiry); the purge of departed users comes with the security issue."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from app.extensions import db
from app.models.org import CrmUser
from app.services import audit


def deactivate_expired(today: date | None = None) -> int:
    """Mark accounts past their expiry date inactive (login already refuses them)."""
    today = today or date.today()
    users = db.session.scalars(
        select(CrmUser).where(CrmUser.active.is_(True), CrmUser.expires_on < today)
    ).all()
    for user in users:
        user.active = False
        audit.record("deactivate", user, {"reason": "account expired", "expires_on": user.expires_on})
    db.session.commit()
    return len(users)
