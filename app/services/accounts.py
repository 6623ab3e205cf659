"""Accounts: who may log in and what they may do, and the lifecycle from the CRM manuals.

* Use cases for passwords: ``change_own_password`` (the current password first) and
  ``reset_password`` (an administrator, with a step-up).
* One rule, by kind, for every write to accounts and permissions, whatever route carries
  it (FAB's user, role and group screens and actions, the reset-password form, FAB's REST
  security API if enabled, future code): creating a user, deleting one, changing their
  roles, groups, active flag or expiry date, setting someone else's password, and any
  write to roles, groups or role settings needs a fresh step-up in the request that does
  it (``_guard_access_writes``, a flush hook). The screens ask first (``changes_access``),
  so the hook is the backstop that makes a forgotten route fail closed.
* A password change, a deactivation or an expiry date in the past ends every session and
  API token of the account (``app.security.sessions``), in the same flush.
* Lifecycle: expiry, deactivation (departure), purge.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app, g, has_request_context
from flask_appbuilder.exceptions import PasswordComplexityValidationError
from flask_appbuilder.security.sqla.models import Group, Role
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, event, func, inspect, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.clock import as_utc, local_today, utc_now
from app.extensions import db
from app.models.customers import Customer, FollowUp
from app.models.org import CrmUser, Department, RoleDataScope
from app.models.security import RecoveryCode, StepUpGrant, TotpCredential
from app.security import login_guard, sessions, step_up
from app.security.passwords import password_policy
from app.security.step_up import StepUpRequired, declare
from app.services import audit, records
from app.services.errors import NotFound, RuleForbidden, RuleViolation

USER_CREATE = declare("user.create", _l("Create a user account (with its roles)"), _l("Security > List Users"))
USER_ACCESS = declare(
    "user.access_change",
    _l("Change who may log in or what they may do: delete a user, deactivate or re-activate them, "
       "change their roles, groups or account expiry date"),
    _l("Security > List Users"),
)
PASSWORD_RESET = declare("user.password_reset", _l("Set another user's password"),
                         _l("Security > List Users > Reset Password"))
ROLE_CHANGE = declare("role.change", _l("Add, edit, copy or delete a role and its permissions"),
                      _l("Security > List Roles"))
GROUP_CHANGE = declare("group.change", _l("Add, edit or delete a group (its members get the group's roles)"),
                       _l("Security > List Groups"))
SCOPE_CHANGE = declare("role.scope_change", _l("Change a role's data scope or authenticator requirement"),
                       _l("Organisation > Role settings"))
#: When one flush carries several kinds, the refusal names the first of these.
_PRIORITY = (USER_CREATE, PASSWORD_RESET, USER_ACCESS, GROUP_CHANGE, ROLE_CHANGE, SCOPE_CHANGE)
#: What decides whether a user may log in and what they may do.
ACCESS_FIELDS = ("roles", "groups", "active", "expires_on")
_OWN_PASSWORD = "_crm_own_password_change"

log = logging.getLogger(__name__)


def deactivate_expired(today: date | None = None) -> int:
    """Mark accounts past their expiry date inactive (login already refuses them)."""
    today = today or local_today()  # expiry dates are days in the CRM's zone
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
        user.deactivated_at = utc_now()
    elif value:
        user.deactivated_at = None


def manager_above(user: CrmUser | None, barred: Collection[int] = ()) -> CrmUser | None:
    """The nearest active manager up ``user``'s department tree — the department's own
    manager first, then its parents' — skipping ``user`` and ``barred`` people and
    departments without one; None at the top. The one walk for a successor, an approver
    (requester's manager, 003 第四步) and a reminder's manager (contract expiry)."""
    department, seen = (user.department if user is not None else None), set()
    barred = {getattr(user, "id", None), *barred}
    while department is not None and department.id not in seen:
        seen.add(department.id)
        manager = department.manager
        if manager is not None and manager.id not in barred and manager.is_active and manager.purged_at is None:
            return manager
        department = department.parent
    return None


def successor(user: CrmUser) -> CrmUser | None:
    """Who inherits a departing user's records: the nearest active manager up the
    department tree, else an active administrator."""
    manager = manager_above(user)
    if manager is not None:
        return manager
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
    user.purged_at = utc_now()
    for model in (TotpCredential, RecoveryCode, StepUpGrant):
        db.session.execute(delete(model).where(model.user_id == user.id))


def check_delete(user: CrmUser) -> None:
    """Refuse to delete an account that rows still name (owner, assignee, author of a
    record, requester, a schedule's "run as" ...): ``RuleViolation`` (409) pointing to
    deactivation, which ends its sessions now and, ``CRM_PURGE_AFTER_DAYS`` later, hands its
    records to the department manager (``purge_departed``). PostgreSQL would fail the
    delete on those foreign keys, and SQLite (``app.models.on_delete``) does too; an
    account nothing names yet (created by mistake) can be deleted."""
    count = records.references(user, blocking=True)
    if count:
        raise RuleViolation(str(_l("%(name)s is named on %(n)d records (as owner, assignee or author) and cannot be "
                                   "deleted: untick Active instead. The account is purged later and its records "
                                   "go to the department manager.", name=user.username, n=count)), status=409)


def purge_departed(at: datetime | None = None) -> list[str]:
    """Purge accounts deactivated ``CRM_PURGE_AFTER_DAYS`` ago: re-assign, then anonymise.

    The account row stays (created-by links and the audit chain point at it) but its
    personal data, password, roles and authenticator are gone. Returns the old usernames.
    """
    cutoff = (as_utc(at) or utc_now()) - timedelta(days=current_app.config["CRM_PURGE_AFTER_DAYS"])
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


# --- passwords ------------------------------------------------------------------------


def _hash(password: str) -> str:
    config = current_app.config
    return generate_password_hash(password, method=config.get("FAB_PASSWORD_HASH_METHOD", "scrypt"),
                                  salt_length=config.get("FAB_PASSWORD_HASH_SALT_LENGTH", 16))


def _check_policy(password: str | None, field: str = "password") -> None:
    try:
        password_policy(password)
    except PasswordComplexityValidationError as exc:
        raise RuleViolation({field: str(exc)}) from exc


def check_current_password(user: CrmUser, password: str | None, purpose: str) -> None:
    """Prove the person at the keyboard knows ``user``'s password (own password change,
    enrolment of a first authenticator).

    Wrong guesses spend the same budgets as wrong logins (``login_guard``) and are audited
    as ``login_failed`` with ``purpose``. Raises ``RuleViolation`` on field
    ``current_password`` (status 429 while the budget is spent).
    """
    throttle = login_guard.throttled(user, user.username)
    if throttle is not None:
        raise RuleViolation({"current_password": throttle.message()}, status=429)
    if password and user.password and check_password_hash(user.password, password):
        login_guard.succeeded(user, user.username)
        return
    login_guard.failed(user, user.username)
    audit.record("login_failed", user, {"purpose": purpose}, user=user)
    db.session.commit()
    raise RuleViolation({"current_password": _l("That is not your current password.")})


def change_own_password(user: CrmUser, current: str | None, new: str | None) -> None:
    """The logged-in user changes their password: current password, then the policy.

    Every other session and API token of the account ends; the current browser session
    stays. Audited (the password as "changed"). Raises ``RuleViolation`` (field -> message).
    """
    check_current_password(user, current, purpose="password_change")
    _check_policy(new)
    user.password = _hash(new)
    g.setdefault(_OWN_PASSWORD, user.id)  # lets this one write through _guard_access_writes
    db.session.commit()
    sessions.stamp(user)


def reset_password(target_id: Any, new: str | None, actor: Any = None) -> CrmUser:
    """An administrator sets another user's password (``user.password_reset``, step-up).

    The target's sessions and tokens end (even when it is the administrator's own
    account, which then logs in again). Raises ``NotFound`` for an unknown id,
    ``RuleViolation`` for a weak password and ``StepUpRequired`` without a fresh code.
    """
    try:
        target = db.session.get(CrmUser, int(target_id))
    except (TypeError, ValueError):
        target = None
    if target is None or target.purged_at is not None:
        raise NotFound(_l("No such user."))
    _check_policy(new)
    step_up.demand(PASSWORD_RESET, actor)
    with audit.audit_context(reason="password reset by an administrator"):
        target.password = _hash(new)
        db.session.commit()
    return target


# --- one rule for every write to accounts and permissions -------------------------------


def changes_access(user: CrmUser, proposed: Mapping[str, Any]) -> bool:
    """Whether writing ``proposed`` (form data: ``roles``/``groups`` as lists of objects,
    ``active``, ``expires_on``; missing keys are left alone) into ``user`` changes who may
    log in or what they may do. The screens ask this before a write; the flush hook
    applies the same rule to what is actually written."""
    for name in ("roles", "groups"):
        if name in proposed and {item.id for item in proposed[name] or []} != {item.id for item in getattr(user, name)}:
            return True
    if "active" in proposed and bool(proposed["active"]) != bool(user.active):
        return True
    return "expires_on" in proposed and proposed["expires_on"] != user.expires_on


def _changed(obj: Any, name: str) -> bool:
    state = inspect(obj)
    return name in state.attrs and state.attrs[name].history.has_changes()


def _own_password_change(user: CrmUser) -> bool:
    return has_request_context() and g.get(_OWN_PASSWORD) == user.id


def _user_action(user: CrmUser, session: Session) -> str | None:
    if user in session.new:
        return USER_CREATE
    if user in session.deleted or any(_changed(user, name) for name in ACCESS_FIELDS):
        return USER_ACCESS
    if _changed(user, "password") and not _own_password_change(user):
        return PASSWORD_RESET
    return None


def _action_of(obj: Any, session: Session) -> str | None:
    if isinstance(obj, CrmUser):
        return _user_action(obj, session)
    kinds = ((Role, ROLE_CHANGE), (Group, GROUP_CHANGE), (RoleDataScope, SCOPE_CHANGE))
    for model, action in kinds:
        if isinstance(obj, model) and (obj in session.new or obj in session.deleted or session.is_modified(obj)):
            return action
    return None


def pending_access_action(session: Session) -> str | None:
    """The sensitive kind of write the session is about to flush, if any."""
    found = {_action_of(obj, session) for obj in (*session.new, *session.dirty, *session.deleted)}
    return next((action for action in _PRIORITY if action in found), None)


def _ends_sessions(user: CrmUser) -> bool:
    if _changed(user, "password"):
        return True
    if _changed(user, "active") and not user.active:
        return True
    return _changed(user, "expires_on") and user.expires_on is not None and user.expires_on < local_today()


@event.listens_for(Session, "before_flush")
def _guard_access_writes(session: Session, flush_context: Any, instances: Any) -> None:
    """Refuse a sensitive account/permission write without a fresh step-up (requests only:
    scheduled jobs and scripts are not asked, like ``step_up.demand``); raise the session
    epoch of accounts whose password changed or that lost access."""
    for obj in list(session.dirty):
        if isinstance(obj, CrmUser) and _ends_sessions(obj):
            obj.session_epoch = sessions.current_epoch(obj) + 1
        if isinstance(obj, CrmUser) and _changed(obj, "active") and not obj.active:
            session.info.setdefault(_DEPARTED, set()).add(obj.id)
    if not has_request_context():
        return
    action = pending_access_action(session)
    if action is None:
        return
    actor = getattr(g, "user", None)
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise RuleForbidden(_l("Sign in to change accounts or permissions."))
    if not step_up.has_fresh_grant(actor):
        raise StepUpRequired(action)


_DEPARTED = "_crm_departed_users"


def licence_refusal(session: Session) -> str | None:
    """The message refusing the pending flush when it would take the count of active users
    beyond the licensed count (``company.licensed_users``, 0: not limited; 000 §三(二)):
    a new active user or a re-activation. None when allowed."""
    joining = [obj for obj in session.new if isinstance(obj, CrmUser) and obj.active]
    joining += [obj for obj in session.dirty
                if isinstance(obj, CrmUser) and obj.active and _changed(obj, "active")]
    if not joining:
        return None
    from app.services import company  # not at import: company loads the settings

    known = [obj.id for obj in joining if obj.id is not None]
    with session.no_autoflush:
        limit = company.licensed_users()
        if not limit:
            return None
        query = select(func.count()).select_from(CrmUser).where(CrmUser.active.is_(True))
        if known:
            query = query.where(CrmUser.id.not_in(known))
        active = session.scalar(query) or 0
    if active + len(joining) <= limit:
        return None
    return str(_l("The licence allows %(n)d active users; deactivate a user or raise the licensed count "
                  "on Organisation → Company profile first.", n=limit))


@event.listens_for(Session, "before_flush")
def _check_licence(session: Session, flush_context: Any, instances: Any) -> None:
    """Refuse (``RuleViolation`` on "active") a user created or re-activated beyond the
    licensed count, whatever route carries it."""
    message = licence_refusal(session)
    if message:
        raise RuleViolation({"active": message})


@event.listens_for(Session, "before_commit")
def _hand_over_approvals(session: Session) -> None:
    """A deactivation, whatever route carries it (the user screen, the expiry job, a
    script), hands the departed users' pending approvals to the next approvers in the
    same commit (``approvals.reassign_departed``): no request waits for someone who left."""
    if any(isinstance(obj, CrmUser) for obj in session.dirty):
        session.flush()
    departed = session.info.pop(_DEPARTED, None)
    if departed:
        from app.services import approvals  # not at import: approvals loads the record types

        approvals.reassign_departed(departed)


@event.listens_for(Session, "after_rollback")
def _forget_departed(session: Session) -> None:
    session.info.pop(_DEPARTED, None)
