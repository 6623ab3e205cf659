"""Permission audit report: who holds which roles and scope, and what looks wrong.

Flags, per the CRM manuals' quarterly permission review:
* never logged in;
* no login for more than ``CRM_INACTIVE_DAYS`` days;
* a role the job title does not call for (``CRM_JOB_TITLE_ROLES``);
* a role that requires an authenticator, without one enrolled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import clock
from app.extensions import db
from app.models.org import SCOPE_LABELS, CrmUser
from app.models.security import TotpCredential
from app.security import totp
from app.security.data_scope import user_scope


@dataclass
class ReportRow:
    user: CrmUser
    roles: list[str]
    scope: str
    last_login: datetime | None
    enrolled: bool
    flags: list[str] = field(default_factory=list)

    def cells(self, sheet: bool = False) -> list[Any]:
        """The row's cells (``COLUMNS``): the data scope by its label; the last login as text
        in the CRM's zone (page), or for a spreadsheet (``sheet``) as that zone's wall time
        in a date-time cell."""
        user = self.user
        return [
            user.username, user.get_full_name(), user.department.name if user.department else "",
            user.job_title or "", ", ".join(self.roles), str(SCOPE_LABELS.get(self.scope, self.scope)), bool(user.active),
            self._last_login(sheet), gettext("yes") if self.enrolled else gettext("no"), "; ".join(self.flags),
        ]

    def _last_login(self, sheet: bool) -> Any:
        if self.last_login is None:
            return ""
        return clock.local_naive(self.last_login).replace(microsecond=0) if sheet else clock.local_text(self.last_login)


#: The report's headings, in the reader's language (page and download).
COLUMNS = (_l("Username"), _l("Name"), _l("Department"), _l("Job title"), _l("Roles"), _l("Data scope"),
           _l("Active"), _l("Last login"), _l("Authenticator"), _l("Flags"))


def _excess_roles(user: CrmUser, roles: list[str]) -> list[str]:
    mapping = {title.lower(): allowed for title, allowed in current_app.config["CRM_JOB_TITLE_ROLES"].items()}
    allowed = mapping.get((user.job_title or "").strip().lower())
    if allowed is None:
        return []
    return [role for role in roles if role not in allowed]


def _flags(user: CrmUser, roles: list[str], enrolled: bool, now: datetime) -> list[str]:
    flags = []
    if user.last_login is None:
        flags.append(gettext("never logged in"))
    elif clock.as_utc(user.last_login) < clock.as_utc(now) - timedelta(days=current_app.config["CRM_INACTIVE_DAYS"]):
        flags.append(gettext("inactive for more than %(n)d days", n=current_app.config["CRM_INACTIVE_DAYS"]))
    excess = _excess_roles(user, roles)
    if excess:
        flags.append(gettext("more rights than the job title suggests: %(roles)s", roles=", ".join(excess)))
    if not enrolled and totp.enrolment_required(user):
        flags.append(gettext("role requires an authenticator, none enrolled"))
    return flags


def build_report(now: datetime | None = None) -> list[ReportRow]:
    """One row per account that has not been purged, flagged rows first (``now``: an instant,
    default the current one; naive is taken as UTC)."""
    now = now or clock.utc_now()
    users = db.session.scalars(
        select(CrmUser).where(CrmUser.purged_at.is_(None))
        .options(selectinload(CrmUser.roles), selectinload(CrmUser.department)).order_by(CrmUser.username)
    ).all()
    enrolled = set(db.session.scalars(select(TotpCredential.user_id)).all())
    rows = []
    for user in users:
        roles = sorted(role.name for role in user.roles)
        rows.append(ReportRow(user, roles, user_scope(user), user.last_login, user.id in enrolled,
                              _flags(user, roles, user.id in enrolled, now)))
    rows.sort(key=lambda row: (not row.flags, row.user.username))
    return rows
