"""Account lifecycle from the CRM manuals: expiry, deactivation (departure), purge."""

from __future__ import annotations

import logging
import secrets
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, event, select
from werkzeug.security import generate_password_hash

from app.extensions import db
from app.models.base import now
from app.models.customers import Customer, FollowUp
from app.models.org import CrmUser, Department
from app.models.security import RecoveryCode, StepUpGrant, TotpCredential
from app.services import audit

log = logging.getLogger(__name__)


def deactivate_expired(today: date | None = None) -> int:
    """Mark accounts past their expiry date inactive (login already refuses them)."""
    today = today or date.today()
    users = db.session.scalars(
        select(CrmUser).where(CrmUser.active.is_(True), CrmUser.expires_on < today)
    ).all()
    with audit.audit_context(reason="account expired"):
        for user in users:
            user.active = False
        db.session.commit()
    return len(users)


@event.listens_for(CrmUser.active, "set")
def _stamp_deactivation(user: CrmUser, value: Any, old: Any, initiator: Any) -> None:
    """Deactivation time starts the purge clock; re-activation stops it."""
    if value is False and old is not False:
        user.deactivated_at = now()
    elif value:
        user.deactivated_at = None


def successor(user: CrmUser) -> CrmUser | None:
    """Who inherits a departing user's records: the nearest active manager up the
    department tree, else an active administrator."""
    department = user.department
    while department is not None:
        manager = department.manager
        if manager is not None and manager.id != user.id and manager.active and manager.purged_at is None:
            return manager
        department = department.parent
    admin_role = current_app.config["AUTH_ROLE_ADMIN"]
    return db.session.scalars(
        select(CrmUser).where(CrmUser.active.is_(True), CrmUser.id != user.id,
                              CrmUser.roles.any(name=admin_role)).order_by(CrmUser.id)
    ).first()


def reassign_records(user: CrmUser, heir: CrmUser) -> dict[str, int]:
    """Move every customer and follow-up the user owns (archived ones too) to ``heir``."""
    moved = {}
    for model in (Customer, FollowUp):
        items = db.session.scalars(select(model).where(model.owner_id == user.id)).all()
        for item in items:
            item.owner_id = heir.id
        moved[model.__tablename__] = len(items)
    for department in db.session.scalars(select(Department).where(Department.manager_id == user.id)):
        department.manager_id = heir.id
    return moved


def _anonymise(user: CrmUser) -> None:
    user.username = f"purged-{user.id}"
    user.first_name, user.last_name = "Purged", "user"
    user.email = f"purged-{user.id}@invalid.local"
    user.password = generate_password_hash(secrets.token_urlsafe(32))
    user.phone = user.employee_no = user.job_title = None
    user.roles = []
    user.purged_at = now()
    for model in (TotpCredential, RecoveryCode, StepUpGrant):
        db.session.execute(delete(model).where(model.user_id == user.id))


def purge_departed(at: datetime | None = None) -> list[str]:
    """Purge accounts deactivated ``CRM_PURGE_AFTER_DAYS`` ago: re-assign, then anonymise.

    The account row stays (created-by links and the audit chain point at it) but its
    personal data, password, roles and authenticator are gone. Returns the old usernames.
    """
    cutoff = (at or now()) - timedelta(days=current_app.config["CRM_PURGE_AFTER_DAYS"])
    users = db.session.scalars(select(CrmUser).where(
        CrmUser.active.is_(False), CrmUser.deactivated_at <= cutoff, CrmUser.purged_at.is_(None)
    )).all()
    purged = []
    for user in users:
        heir = successor(user)
        if heir is None:
            log.warning("Not purging %s: no active manager or administrator to inherit the records", user.username)
            continue
        name = user.username
        with audit.audit_context(reason=f"departed user {name} purged"):
            moved = reassign_records(user, heir)
            audit.record("reassign", user, {"from": name, "to": heir.username, **moved})
            _anonymise(user)
            db.session.flush()
            audit.record("purge", user, {"username": name})
        db.session.commit()
        purged.append(name)
    return purged
