"""Organisation: departments (a tree), CRM users, and the data scope of each role."""

from __future__ import annotations

from datetime import date, datetime

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import Role, User
from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, ColumnDefault, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from app.clock import local_today, utc_now
from app.models.base import UtcDateTime

SCOPE_OWN = "own"
SCOPE_DEPARTMENT = "department"
SCOPE_ALL = "all"
#: Narrowest first: a user's scope is the widest of their roles' scopes.
#: Which tickets a role sees (issue 16, ``RoleDataScope.ticket_scope``).
TICKET_SCOPE_CUSTOMER, TICKET_SCOPE_TEAM = "customer", "team"
TICKET_SCOPE_LABELS = {
    TICKET_SCOPE_CUSTOMER: _l("Tickets of customers in its data scope"),
    TICKET_SCOPE_TEAM: _l("Tickets of the user's team"),
}
SCOPES = (SCOPE_OWN, SCOPE_DEPARTMENT, SCOPE_ALL)
#: What the screens call each scope (the role settings, and a role's rows wherever they are listed).
SCOPE_LABELS = {
    SCOPE_OWN: _l("Own records"),
    SCOPE_DEPARTMENT: _l("Department (with sub-departments)"),
    SCOPE_ALL: _l("All records"),
}


class Department(Model):
    __tablename__ = "department"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("ab_user.id", use_alter=True, name="fk_department_manager_id")
    )

    parent = relationship("Department", remote_side=[id], backref="children")
    manager = relationship("CrmUser", foreign_keys=[manager_id])

    def __repr__(self) -> str:
        return self.name


class CrmUser(User):
    """FAB's user plus what the CRM manuals ask for (department, employee number, expiry)."""

    __tablename__ = "ab_user"

    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("department.id"), nullable=True
    )
    employee_no: Mapped[str | None] = mapped_column(String(32), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    job_title: Mapped[str | None] = mapped_column(String(64))
    expires_on: Mapped[date | None] = mapped_column(Date)
    #: Set when an account is deactivated (departure); the purge job counts from here.
    deactivated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: Set when the purge job has re-assigned the records and removed personal data.
    purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: Every browser session and API token carries the value it was issued under; raising
    #: it (logout, password change, deactivation) ends them all server-side
    #: (``app.security.sessions``).
    session_epoch: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    #: The language of e-mails and notifications to this user ("en", "zh"; None: the CRM's
    #: default); set from the language the user last chose on screen (issue 14).
    language: Mapped[str | None] = mapped_column(String(8))
    #: When the user last made a request (UTC, written at most once a minute by
    #: ``app.security.presence``): "users online" on the admin dashboard (issue 17).
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    department = relationship("Department", foreign_keys=[department_id], backref="members")

    @property
    def is_expired(self) -> bool:
        return self.expires_on is not None and self.expires_on < local_today()

    @property
    def is_active(self) -> bool:
        """FAB checks this at login, on session load and for JWTs: expiry ends access."""
        return bool(self.active) and not self.is_expired


def _fab_user_instants() -> None:
    """FAB's own date-times on ``ab_user`` (last login, created, changed) become instants
    like ours: shown in the user admin and weighed by the permission report. Their defaults
    write aware UTC; FAB's own assignments of ``datetime.now()`` are taken as UTC
    (``UtcDateTime``: a server's clock), and the CRM's manager writes the last login itself."""
    for name in FAB_USER_INSTANTS:
        column = User.__table__.c[name]
        column.type = UtcDateTime()
        if column.default is not None:
            column.default = ColumnDefault(utc_now)
            column.default.column = column


#: ab_user columns FAB declares as naive DateTime that the CRM reads and writes as instants.
FAB_USER_INSTANTS = ("last_login", "created_on", "changed_on")
_fab_user_instants()


class RoleDataScope(Model):
    """Per-role settings: which rows it may see (own, department, all), and whether its
    users must enrol a TOTP authenticator."""

    __tablename__ = "role_data_scope"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role_id: Mapped[int] = mapped_column(
        ForeignKey("ab_role.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    scope: Mapped[str] = mapped_column(String(16), nullable=False, default=SCOPE_OWN)
    totp_required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="0")
    #: which tickets it sees beyond the ones assigned to or reported by the user (issue 16):
    #: ``customer`` — those of customers in its scope; ``team`` — those of the user's team
    #: (department and sub-departments), as Customer Service, which reads every customer.
    ticket_scope: Mapped[str] = mapped_column(String(16), nullable=False, default="customer",
                                              server_default="customer")

    role = relationship(Role, backref=backref("data_scope_rows", cascade="all, delete-orphan"))

    def __repr__(self) -> str:
        """The role and its scope's label in the reader's language ("Sales Rep: Own records")."""
        return f"{self.role}: {SCOPE_LABELS.get(self.scope, self.scope)}"
