"""Permissions of a given user outside a request (background jobs, schedules, sync runs).

Screens ask ``appbuilder.sm.has_access`` for the logged-in user; work done on someone's
behalf later must ask the same question about that person, or a schedule would do what
its run-as user may not.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.extensions import appbuilder, db


def user_may(user: Any, permission: str, view: str) -> bool:
    """Whether one of the user's roles grants ``permission`` on ``view`` (inactive users: never)."""
    if user is None or not getattr(user, "active", False):
        return False
    return appbuilder.sm.exist_permission_on_roles(view, permission, [role.id for role in user.roles])


def is_admin(user: Any) -> bool:
    """Whether the user has the Admin role (``AUTH_ROLE_ADMIN``): every ticket and approval
    request, any attachment's removal, key contact data without approval."""
    admin = current_app.config.get("AUTH_ROLE_ADMIN", "Admin")
    return any(role.name == admin for role in getattr(user, "roles", ()) or ())


def admin_ids(barred: Collection[int] = ()) -> list[int]:
    """Active users with the Admin role, by id, except ``barred``: who is left when nobody
    else may act (approvals, a data-change request to carry out)."""
    from app.models.org import CrmUser

    admin = current_app.config.get("AUTH_ROLE_ADMIN", "Admin")
    return [uid for uid in db.session.scalars(
        select(CrmUser.id).where(CrmUser.active.is_(True), CrmUser.roles.any(name=admin)).order_by(CrmUser.id))
        if uid not in barred]
