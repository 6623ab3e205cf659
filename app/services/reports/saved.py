"""Saved reports: who may open, change, share and receive them (``save``, ``delete``,
``visible``, ``load``, ``spec_of``, ``share_roles``, ``may_open``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from app.services.reports.base import (
    SCHEDULES,
    ReportSpec,
)
from app.services.reports.spec import _violation, _whole, parse_spec

# --- saved reports ----------------------------------------------------------------------


def spec_of(report: Any) -> ReportSpec:
    """The ReportSpec a SavedReport holds (its definition re-validated: a source or field
    that no longer exists raises ``RuleViolation``)."""
    data = json.loads(report.definition or "{}")
    data["source"] = report.record_type
    return parse_spec(data)


def _definition(spec: ReportSpec) -> str:
    return json.dumps({"dimensions": list(spec.dimensions), "measure": spec.measure, "chart": spec.chart,
                       **spec.filters}, ensure_ascii=False, sort_keys=True)


def visible(user: Any) -> list[Any]:
    """Saved reports ``user`` may open: their own and those shared with one of their roles
    (admins: all), by name."""
    from app.extensions import db
    from app.models.reports import SavedReport

    return list(db.session.scalars(_visible_query(user).order_by(SavedReport.name, SavedReport.id)))


def _visible_query(user: Any) -> Any:
    from app.models.reports import SavedReport
    from app.security.rights import is_admin

    stmt = select(SavedReport)
    if is_admin(user):
        return stmt
    role_ids = [r.id for r in getattr(user, "roles", ())] or [-1]
    return stmt.where((SavedReport.owner_id == getattr(user, "id", -1))
                      | SavedReport.roles.any(_role_model().id.in_(role_ids)))


def _role_model() -> Any:
    from flask_appbuilder.security.sqla.models import Role

    return Role


def load(pk: Any, user: Any) -> Any:
    """The saved report ``pk`` if ``user`` may open it, else ``NotFound`` (the same answer
    for a missing report and someone else's private one)."""
    from app.extensions import db
    from app.models.reports import SavedReport
    from app.security.request_bounds import db_int
    from app.services.records import not_found

    number = db_int(pk)
    if number is None:
        raise not_found()
    item = db.session.scalars(_visible_query(user).where(SavedReport.id == number)).first()
    if item is None:
        raise not_found()
    return item


def _owned(pk: Any, user: Any) -> Any:
    """A saved report the user may change: their own (admins: any)."""
    from app.security.rights import is_admin
    from app.services.errors import RuleForbidden

    item = load(pk, user)
    if item.owner_id != user.id and not is_admin(user):
        raise RuleForbidden(_("Only the report's owner may change or delete it."))
    return item


def _check_write(user: Any) -> None:
    from app.security.rights import user_may
    from app.services.errors import RuleForbidden

    if not user_may(user, "can_write", "Reports"):
        raise RuleForbidden(_("You may not save reports."))


def share_roles(user: Any) -> list[Any]:
    """Roles ``user`` may share a report with: every role but "Admin" (an admin: every
    role). Safe because each reader runs a shared report in their OWN data scope: sharing
    hands over the definition, never records."""
    from app.extensions import db
    from app.security.rights import is_admin

    Role = _role_model()
    stmt = select(Role).order_by(Role.name)
    if not is_admin(user):
        stmt = stmt.where(Role.name != _admin_role_name())
    return list(db.session.scalars(stmt))


def _admin_role_name() -> str:
    from flask import current_app

    return str(current_app.config.get("AUTH_ROLE_ADMIN", "Admin"))


def _roles(user: Any, role_ids: Iterable[Any]) -> list[Any]:
    from app.extensions import db

    wanted = {_whole(r, "roles") for r in role_ids if str(r).strip()}
    if not wanted:
        return []
    Role = _role_model()
    found = list(db.session.scalars(select(Role).where(Role.id.in_(wanted))))
    if len(found) != len(wanted):
        raise _violation("roles", _("Choose a valid value."))
    allowed = {r.id for r in share_roles(user)}
    if not all(r.id in allowed for r in found):
        raise _violation("roles", _("Only administrators may share a report with the %(role)s role.",
                                    role=_admin_role_name()))
    return found


def may_open(report: Any, user: Any, roles: Iterable[Any] | None = None) -> bool:
    """Whether ``user`` may open ``report``: its owner, an admin, or a holder of one of the
    roles it is shared with (``roles``: those about to be saved; default: the stored ones)."""
    from app.security.rights import is_admin

    shared = {r.id for r in (report.roles if roles is None else roles)}
    return user.id == report.owner_id or is_admin(user) or any(r.id in shared for r in user.roles)


def _recipients(report: Any, ids: Iterable[Any], roles: list[Any]) -> list[Any]:
    """The recipients of a scheduled e-mail: active users who may open the report (its
    owner, an admin, or a holder of a role it is shared with) and reports at all; others
    are refused by name."""
    from app.extensions import db
    from app.models.org import CrmUser
    from app.security.rights import user_may

    wanted = {_whole(r, "recipients") for r in ids if str(r).strip()}
    found = list(db.session.scalars(select(CrmUser).where(CrmUser.id.in_(wanted or [-1])).order_by(CrmUser.id)))
    if len(found) != len(wanted):
        raise _violation("recipients", _("Choose a valid value."))
    inactive = [u for u in found if not u.is_active]
    if inactive:
        raise _violation("recipients", _("Recipients must be active users: %(names)s.", names=_names(inactive)))
    barred = [u for u in found if not may_open(report, u, roles) or not user_may(u, "can_read", "Reports")]
    if barred:
        raise _violation("recipients", _(
            "Recipients must be able to open the report (you, or people holding a role it is shared with): "
            "%(names)s cannot. Share the report with one of their roles, or remove them.", names=_names(barred)))
    return found


def _names(users: Iterable[Any]) -> str:
    return ", ".join(f"{' '.join(filter(None, (u.first_name, u.last_name)))} ({u.username})" for u in users)


def _schedule(schedule: Any, weekday: Any, recipients: list[Any]) -> tuple[str | None, int | None]:
    if schedule in (None, ""):
        return None, None
    if schedule not in SCHEDULES:
        raise _violation("schedule", _("Choose a valid value."))
    day = _whole(weekday, "schedule_weekday") if weekday not in (None, "") else None
    if day is None or day > 6:
        raise _violation("schedule_weekday", _("Choose the weekday the report is sent on."))
    if not recipients:
        raise _violation("recipients", _("Choose who receives the report."))
    return schedule, day


def save(user: Any, name: str, spec: ReportSpec, **options: Any) -> Any:
    """Save a report (new, or ``pk`` with its ``version``: optimistic locking).

    Options: ``roles`` (role ids to share with: any role but "Admin", unless admin; see
    ``share_roles``), ``schedule`` ("weekly" or None), ``weekday`` (0 = Monday),
    ``recipients`` (user ids: active users who may open this report — the owner, an admin
    or a holder of one of ``roles`` — and reports; others refused by name), ``pk``,
    ``version``. Needs Reports ``can_write``;
    only the owner (or an admin) changes a report. The name is required and unique per
    owner. Audited (``report_saved``). Raises ``RuleViolation``/``RuleForbidden``/
    ``NotFound``/``StaleRecord``. The caller commits.
    """
    from app.extensions import db
    from app.models.reports import SavedReport
    from app.services import audit, records

    _check_write(user)
    name = " ".join(str(name or "").split())
    if not name:
        raise _violation("name", _("Give the report a name."))
    if len(name) > 100:
        raise _violation("name", _("At most %(count)d characters.", count=100))
    spec = parse_spec({**_spec_data(spec)})
    pk = options.get("pk")
    item = _owned(pk, user) if pk not in (None, "") else SavedReport(owner_id=user.id)
    if item.id is not None:
        records.check_version(item, options.get("version"))
    clash = select(SavedReport.id).where(SavedReport.owner_id == item.owner_id, SavedReport.name == name)
    if item.id is not None:
        clash = clash.where(SavedReport.id != item.id)
    if db.session.execute(clash).first():
        raise _violation("name", _("You already have a report with this name."))
    roles = _roles(user, options.get("roles") or ())
    recipients = _recipients(item, options.get("recipients") or (), roles)
    schedule, weekday = _schedule(options.get("schedule"), options.get("weekday"), recipients)
    before = _snapshot(item) if item.id is not None else None
    item.name, item.record_type, item.definition = name, spec.source, _definition(spec)
    item.roles, item.recipients = roles, recipients
    item.schedule, item.schedule_weekday = schedule, weekday
    db.session.add(item)
    db.session.flush()
    audit.record("report_saved", item, {"before": before, "after": _snapshot(item)}, user=user)
    return item


def _spec_data(spec: ReportSpec) -> dict[str, Any]:
    return {"source": spec.source, "dimensions": list(spec.dimensions), "measure": spec.measure,
            "chart": spec.chart, **spec.filters}


def _snapshot(item: Any) -> dict[str, Any]:
    return {"name": item.name, "record_type": item.record_type, "definition": item.definition,
            "roles": sorted(r.name for r in item.roles), "schedule": item.schedule,
            "weekday": item.schedule_weekday, "recipients": sorted(u.username for u in item.recipients)}


def delete(pk: Any, user: Any) -> None:
    """Delete a saved report: its owner or an admin (``NotFound`` if not visible,
    ``RuleForbidden`` if shared but not theirs). Audited (``report_deleted``)."""
    from app.extensions import db
    from app.services import audit

    item = _owned(pk, user)
    audit.record("report_deleted", item, {"before": _snapshot(item)}, user=user)
    db.session.delete(item)
    db.session.flush()
