"""Shared column mixins for CRM models."""

from __future__ import annotations

import contextvars
from datetime import datetime

from flask import g, has_app_context
from sqlalchemy import DateTime, ForeignKey, Integer
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

#: The user a script, job or sync run acts for (web requests use ``g.user``).
acting_user_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "acting_user_id", default=None
)


def current_user_id() -> int | None:
    """Id of whoever is making the change: the logged-in user, or the acting user."""
    if has_app_context():
        user = getattr(g, "user", None)
        uid = getattr(user, "id", None)
        if uid is not None and not getattr(user, "is_anonymous", False):
            return uid
    return acting_user_id.get()


def now() -> datetime:
    return datetime.now()


class StampMixin:
    """Created/changed by+at. Nullable users, unlike FAB's AuditMixin, so jobs can write."""

    created_on: Mapped[datetime] = mapped_column(DateTime, default=now, nullable=False)
    changed_on: Mapped[datetime] = mapped_column(
        DateTime, default=now, onupdate=now, nullable=False
    )

    @declared_attr
    def created_by_fk(cls) -> Mapped[int | None]:
        return mapped_column(Integer, ForeignKey("ab_user.id"), default=current_user_id)

    @declared_attr
    def changed_by_fk(cls) -> Mapped[int | None]:
        return mapped_column(
            Integer, ForeignKey("ab_user.id"), default=current_user_id, onupdate=current_user_id
        )

    @declared_attr
    def created_by(cls):
        return relationship("CrmUser", foreign_keys=[cls.created_by_fk], viewonly=True)

    @declared_attr
    def changed_by(cls):
        return relationship("CrmUser", foreign_keys=[cls.changed_by_fk], viewonly=True)


class VersionMixin:
    """Optimistic locking: SQLAlchemy bumps ``version`` and refuses stale UPDATEs."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict:
        return {"version_id_col": cls.version}
