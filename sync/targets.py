"""Saving a sync target, and which settings make a target (or a hand-started run) sensitive.

A target runs unattended on its schedule, as its run-as user. Two kinds of settings are
as sensitive as the actions they stand for (issue 10, DESIGN "Sensitive actions"):

* **overwrite** — an enabled (scheduled) target that may replace CRM data with the
  sheet's: conflict policy "sheet wins" or "newest change wins" (Google gives no cell
  times: the sheet counts as newest), direction sheet → CRM, or rows deleted in the
  sheet archiving the customer. Every tick would apply the sheet with nobody asked.
* **full phones** — a customer target whose run-as user may reveal contact details
  writes full phone numbers into the sheet: an unmasked export on every tick.

Saving (adding or editing) a target whose resulting settings are either asks for a
step-up (``StepUpRequired``) first; every save is audited with the changed settings and
the sensitive kinds. A scheduled run asks nothing: the person who saved it was asked.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models.org import CrmUser
from app.models.sync import ARCHIVE, PULL, PUSH, SyncTarget
from app.record_types import REGISTRY
from app.security import step_up
from app.services import audit
from sync import merge

OVERWRITE = step_up.declare(
    "sync.target_overwrite", _l("Save a sync target that lets the sheet overwrite CRM data on its schedule"),
    _l("Sync targets: add or edit of an enabled target with 'sheet wins' or 'newest change wins', 'sheet to CRM "
       "only', or 'archive the customer' for rows deleted in the sheet"))
FULL_PHONES = step_up.declare(
    "sync.target_full_phones", _l("Save a sync target that writes full phone numbers into a sheet"),
    _l("Sync targets: add or edit of a customer target whose run-as user may reveal contact details"))
SHEET_WINS = step_up.declare(
    "sync.sheet_wins", _l("Run a sync that lets the sheet overwrite CRM data"),
    _l("Sync targets: Sync now, when the sheet may overwrite or archive CRM data ('sheet wins', 'newest change "
       "wins', 'sheet to CRM only', or 'archive the customer' for rows deleted in the sheet)"))

#: Settings an audit entry compares (run_as_id is read from the relationship when set).
SETTINGS = ("name", "model", "backend", "location", "worksheet", "mapping", "direction", "conflict_policy",
            "deleted_rows", "run_as_id", "cron", "enabled", "max_shrink_percent")


def overwrites_app_data(target: SyncTarget) -> bool:
    """A run may replace CRM values with the sheet's or archive customers from it: "sheet wins"
    or "newest change wins", sheet → CRM only, or deleted rows archiving (never a push-only
    target). A hand-started run of such a target asks for a step-up (``SHEET_WINS``)."""
    if target.direction == PUSH:
        return False
    return (target.conflict_policy in (merge.SHEET_WINS, merge.NEWEST) or target.direction == PULL
            or target.deleted_rows == ARCHIVE)


def overwrites_unattended(target: SyncTarget) -> bool:
    """The schedule (an enabled target) may do what ``overwrites_app_data`` says with nobody there."""
    return bool(target.enabled and (target.cron or "").strip()) and overwrites_app_data(target)


def pushes_full_phones(target: SyncTarget) -> bool:
    """A customer target whose run-as user's roles may reveal contact details (deactivated or
    not: a later reactivation must not make a saved target sensitive unasked)."""
    user = _run_as(target)
    masked = getattr(REGISTRY.get(target.model), "masked", ())  # contacts, leads: phones too
    if user is None or not (target.model == "customer" or masked):
        return False
    return appbuilder.sm.exist_permission_on_roles("Customer", "can_reveal_contact", [r.id for r in user.roles])


def sensitive_actions(target: SyncTarget) -> list[str]:
    """The step-up actions saving ``target`` as it now stands needs (empty: none)."""
    return [name for name, applies in ((OVERWRITE, overwrites_unattended), (FULL_PHONES, pushes_full_phones))
            if applies(target)]


def demand_step_up(target: SyncTarget, user: Any) -> list[str]:
    """Ask for the step-up saving ``target`` needs; raises ``StepUpRequired``. Returns the actions.

    Screens call it on an unsaved copy of the submitted settings before the form touches
    the stored target, so that a refused code (whose attempt is committed) commits nothing else.
    """
    actions = sensitive_actions(target)
    for name in actions:
        step_up.demand(name, user)
    return actions


def save_target(target: SyncTarget, user: Any) -> list[str]:
    """Add or update ``target`` (filled in, not yet committed): step-up when its settings are
    sensitive (``StepUpRequired``, nothing written), then flush and audit ``sync_target_save``
    with the changed settings and the sensitive kinds. The caller commits. Returns the actions.
    """
    with db.session.no_autoflush:  # the stored values, not the ones just filled in
        before = _stored(target.id) if target.id is not None else None
        actions = demand_step_up(target, user)
    if target not in db.session:
        db.session.add(target)
    db.session.flush()
    after = _settings(target)
    changes = {name: [None if before is None else before[name], value] for name, value in after.items()
               if before is None or before[name] != value}
    audit.record("sync_target_save", target, {"created": before is None, "changes": changes,
                                              "sensitive": actions}, user=user)
    return actions


def _run_as(target: SyncTarget) -> CrmUser | None:
    if target.run_as is not None:
        return target.run_as
    return db.session.get(CrmUser, target.run_as_id) if target.run_as_id is not None else None


def _settings(target: SyncTarget) -> dict[str, Any]:
    values = {name: getattr(target, name) for name in SETTINGS}
    user = _run_as(target)
    values["run_as_id"] = user.id if user is not None else None
    return values


def _stored(target_id: int) -> dict[str, Any] | None:
    table = SyncTarget.__table__
    row = db.session.execute(select(*(table.c[name] for name in SETTINGS)).where(table.c.id == target_id)).first()
    return dict(row._mapping) if row is not None else None
