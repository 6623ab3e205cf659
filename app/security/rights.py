"""Permissions of a given user outside a request (background jobs, schedules, sync runs).

Screens ask ``appbuilder.sm.has_access`` for the logged-in user; work done on someone's
behalf later must ask the same question about that person, or a schedule would do what
its run-as user may not.
"""

from __future__ import annotations

from typing import Any

from app.extensions import appbuilder


def user_may(user: Any, permission: str, view: str) -> bool:
    """Whether one of the user's roles grants ``permission`` on ``view`` (inactive users: never)."""
    if user is None or not getattr(user, "active", False):
        return False
    return appbuilder.sm.exist_permission_on_roles(view, permission, [role.id for role in user.roles])
