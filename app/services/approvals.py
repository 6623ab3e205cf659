"""Approvals (审批): a change that needs approval is held as an ``ApprovalRequest`` and
applied by its own use case when the last step approves.

CONTRACT (written by the lead; the approvals builder fills the bodies, other modules call
only these names):

- ``register_kind(ChangeKind(...))``: a module that owns a gated change declares it once
  (orders: ``order.confirm``; campaigns: ``campaign.approve``; customers: ``customer.archive``,
  ``customer.level``, ``customer.contact``, ``customer.won``; ``data_change``).
- ``policy_for(kind, amount=, discount=)``: the policy that applies, or None (no approval
  needed: the caller applies the change at once).
- ``submit(kind, record, user, change, before=, reason=)``: hold the change; notifies the
  first step's approvers; returns the request. Raises ``RuleViolation`` when one is already
  pending for that record and kind, or when no approver can be found.
- ``pending(record_type, record_id, kind=None)``: the pending request of a record, or None.

Rules: 000 §三(一), 001 使用规范二, 002 §四(二)2 and §五, 003 第四步.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import g, has_request_context
from flask_appbuilder.security.sqla.models import Role
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, delete, exists, false, func, or_, select, true

from app.clock import utc_now
from app.extensions import db
from app.models.approvals import ApprovalAction, ApprovalApprover, ApprovalPolicy, ApprovalRequest, ApprovalStep
from app.models.org import CrmUser
from app.security import data_scope, step_up
from app.security.request_bounds import db_int
from app.security.rights import admin_ids, is_admin
from app.services import audit, message_text, messages, notifications, numbering, records, validation
from app.services.errors import RuleForbidden, RuleViolation, StaleRecord

PREFIX = "AP"
numbering.register(ApprovalRequest, PREFIX)

#: Request statuses.
PENDING, APPROVED, REJECTED, WITHDRAWN, CONFLICT = "pending", "approved", "rejected", "withdrawn", "conflict"


@dataclass(frozen=True)
class ChangeKind:
    """A change that a policy may gate.

    ``apply(request, record, approver)``: carry the change out through the owning use case
    once the last step approves (rules re-checked then; a ``RuleViolation`` makes the
    request a conflict shown to the approver, nothing written). ``current(record)``: the
    record's values of the held fields now (compared with the request's ``before``: a
    difference is a conflict). ``settle(request, record, outcome)``: undo a waiting state
    when the request ends without applying (outcome ``rejected`` / ``withdrawn`` /
    ``conflict``; e.g. an order goes back to draft). ``conditions``: which policy conditions
    apply (``amount``, ``discount``). ``step_up``: the sensitive action (``step_up.declare``
    name) the approver steps up for, or None.
    """

    name: str
    label: Any
    record_type: str
    apply: Callable[[ApprovalRequest, Any, Any], None] | None = None
    current: Callable[[Any], dict[str, Any]] | None = None
    settle: Callable[[ApprovalRequest, Any, str], None] | None = None
    conditions: tuple[str, ...] = ()
    step_up: str | None = None


#: name -> kind, in registration order (the policy screen's choices).
KINDS: dict[str, ChangeKind] = {}


def register_kind(kind: ChangeKind) -> ChangeKind:
    """Declare a gated change (idempotent: re-registering a name replaces it)."""
    KINDS[kind.name] = kind
    return kind


def _msg(label: Any) -> dict[str, Any]:
    """A lazy label as a stored message (rendered in the reader's language)."""
    args = getattr(label, "_args", None)
    return {"msgid": args[0] if args else str(label), "params": {}}


def kind_of(name: str) -> ChangeKind:
    """The registered kind ``name`` (``RuleViolation`` for an unknown one)."""
    if name not in KINDS:
        raise RuleViolation({"kind": str(_l("Unknown kind of change: %(kind)s", kind=name))})
    return KINDS[name]


def policy_for(kind: str, *, amount: Decimal | None = None, discount: Decimal | None = None) -> ApprovalPolicy | None:
    """The first active policy of ``kind`` (lowest position) whose conditions hold, or None.

    ``amount`` (money, the order's currency) meets ``min_amount`` when at or above it;
    ``discount`` (%, 0–100) meets ``min_discount`` likewise. A policy with a condition
    whose value was not given does not apply. Rules: 002 §四(二)2, §五; 003 第四步."""
    policies = db.session.scalars(select(ApprovalPolicy).where(
        ApprovalPolicy.kind == kind, ApprovalPolicy.active.is_(True))
        .order_by(ApprovalPolicy.position, ApprovalPolicy.id))
    for policy in policies:
        if policy.min_amount is not None and (amount is None or Decimal(amount) < policy.min_amount):
            continue
        if policy.min_discount is not None and (discount is None or Decimal(discount) < policy.min_discount):
            continue
        return policy
    return None


def _manager_of(requester: CrmUser, barred: Collection[int] = ()) -> list[int]:
    """The requester's department manager up the tree (``accounts.manager_above``: past the
    requester, the ``barred`` people and departments without an active manager); []."""
    from app.services.accounts import manager_above

    manager = manager_above(requester, barred)
    return [manager.id] if manager is not None else []


#: A request's outcome when every possible approver is the requester or already decided an earlier step.
NOBODY_LEFT = _l("Nobody left who may approve: everyone who could has asked or already approved an "
                 "earlier step. Ask an administrator.")


def approvers_for(step: dict[str, Any], requester: CrmUser, exclude: Collection[int] = ()) -> list[int]:
    """User ids (active) who decide ``step`` (``{"approver": "manager"|"role"|"user",
    "role_id", "user_id"}``) for ``requester``.

    Never the requester (no self-approval) nor anyone in ``exclude`` (who approved an
    earlier step of the same request, or who left): one person never approves two steps
    (003 第四步, 000 §三(一)). In every branch (named user, role, manager): nobody left →
    the manager up the tree, then the Admin role's active users not excluded.
    ``RuleViolation`` when there is nobody at all (a request in flight then ends in a
    conflict, ``NOBODY_LEFT``)."""
    barred = {requester.id, *exclude}
    found: list[int] = []
    if step.get("approver") == "user" and step.get("user_id"):
        person = db.session.get(CrmUser, step["user_id"])
        found = [person.id] if person is not None and person.active else []
    elif step.get("approver") == "role" and step.get("role_id"):
        found = list(db.session.scalars(select(CrmUser.id).join(CrmUser.roles).where(
            Role.id == step["role_id"], CrmUser.active.is_(True)).order_by(CrmUser.id)))
    found = [uid for uid in found if uid not in barred] or _manager_of(requester, barred) or admin_ids(barred)
    if not found:
        raise RuleViolation({"approval": str(_l("Nobody can approve this change: ask an administrator."))})
    return found


def involved(request: ApprovalRequest) -> set[int]:
    """Who approved a step of ``request`` so far (user ids): barred from its later steps."""
    return {a.user_id for a in request.actions if a.action == "approved" and a.user_id is not None}


def _snapshot_steps(policy: ApprovalPolicy | None) -> list[dict[str, Any]]:
    steps = [{"approver": s.approver, "role_id": s.role_id, "user_id": s.user_id} for s in (policy.steps if policy
                                                                                              else [])]
    return steps or [{"approver": "manager", "role_id": None, "user_id": None}]


def _label(record: Any) -> str:
    parts = [str(getattr(record, name)) for name in ("code", "name") if getattr(record, name, None)]
    return " ".join(parts)[:255] or f"#{record.id}"


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


def _params(request: ApprovalRequest, **extra: Any) -> dict[str, Any]:
    kind = KINDS.get(request.kind)
    return {"code": request.code, "kind": _msg(kind.label) if kind else request.kind,
            "record": request.record_label or "", **extra}


def submit(kind: str, record: Any, user: Any, change: dict[str, Any], *, before: dict[str, Any] | None = None,
           reason: str | None = None, policy: ApprovalPolicy | None = None) -> ApprovalRequest:
    """Hold ``change`` (field -> JSON-able value) on ``record`` for approval under ``policy``
    (default ``policy_for(kind)``; none at all: one step, the requester's manager);
    flushes; the caller commits. ``before`` defaults to ``kind.current(record)``.

    Raises ``RuleViolation`` when a request of this kind is already pending on the record
    or nobody can approve. Notifies the first step's approvers (``approval_waiting``).
    Rules: 000 §三(一), 003 第四步; self-approval never counts."""
    spec = kind_of(kind)
    waiting = pending(spec.record_type, record.id, kind)
    if waiting is not None:
        raise RuleViolation({"approval": str(_l("%(code)s is already waiting for approval of this change.",
                                                code=waiting.code))})
    policy = policy if policy is not None else policy_for(kind)
    if before is None:
        before = spec.current(record) if spec.current else {}
    steps = _snapshot_steps(policy)
    request = ApprovalRequest(kind=kind, policy_id=policy.id if policy else None, record_type=spec.record_type,
                              record_id=record.id, record_label=_label(record), requester_id=user.id,
                              requested_at=utc_now(), reason=validation.clean_block(reason) or None,
                              change=_json(change), before=_json(before), steps=_json(steps), step=0,
                              status=PENDING)
    approvers = approvers_for(steps[0], user)
    request.approvers = [ApprovalApprover(step=0, user_id=uid) for uid in approvers]
    request.actions.append(ApprovalAction(step=0, action="submitted", user_id=user.id, at=utc_now(),
                                          comment=request.reason))
    db.session.add(request)
    db.session.flush()
    audit.record("approval_submitted", request, {"code": request.code, "kind": kind,
                                                 "record": [spec.record_type, record.id], "change": change})
    notifications.notify(WAITING_EVENT, approvers, record=request,
                         params=_params(request, requester=user.username))
    _note_held(request)
    return request


def _note_held(request: ApprovalRequest) -> None:
    if has_request_context():
        g.setdefault("approvals_held", []).append(request)


def held() -> list[ApprovalRequest]:
    """The requests held during this web/API request (screens tell the user about them)."""
    return list(g.get("approvals_held", [])) if has_request_context() else []


def pending(record_type: str, record_id: int, kind: str | None = None) -> ApprovalRequest | None:
    """The pending request on a record (of ``kind`` if given), or None."""
    stmt = select(ApprovalRequest).where(ApprovalRequest.record_type == record_type,
                                         ApprovalRequest.record_id == record_id, ApprovalRequest.status == PENDING)
    if kind is not None:
        stmt = stmt.where(ApprovalRequest.kind == kind)
    return db.session.scalars(stmt.order_by(ApprovalRequest.id.desc()).limit(1)).first()


# --- scope and lists --------------------------------------------------------------------


@data_scope.per_user
def scope_rule(owners: set[int] | None, user: Any) -> Any:
    """A request is seen by its requester, its approvers (every step so far) and admins;
    never through the record's scope (approvers see the stored snapshot only)."""
    if user is None:
        return false()
    if is_admin(user):
        return true()
    mine = select(ApprovalApprover.request_id).where(ApprovalApprover.user_id == user.id)
    return or_(ApprovalRequest.requester_id == user.id, ApprovalRequest.id.in_(mine))


data_scope.register(ApprovalRequest, scope_rule)


def load(pk: Any, user: Any) -> ApprovalRequest:
    """One request ``user`` may see (``NotFound`` otherwise)."""
    return records.load(ApprovalRequest, pk, user)


def _deciding(user: Any) -> Any:
    """SQL condition: ``user`` decides the current step of a pending request — a named
    approver of that step, or (defence in depth) an admin who did not ask and did not
    approve an earlier step, when none of the step's approvers is active any more
    (deactivation re-assigns them, ``reassign_departed``; this covers a user switched off
    outside the ORM)."""
    here = and_(ApprovalApprover.request_id == ApprovalRequest.id, ApprovalApprover.step == ApprovalRequest.step)
    named = exists().where(here, ApprovalApprover.user_id == user.id)
    if not is_admin(user):
        return and_(ApprovalRequest.status == PENDING, named)
    live = exists().where(here, ApprovalApprover.user_id == CrmUser.id, CrmUser.active.is_(True))
    approved = exists().where(ApprovalAction.request_id == ApprovalRequest.id, ApprovalAction.user_id == user.id,
                              ApprovalAction.action == "approved")
    orphan = and_(ApprovalRequest.requester_id != user.id, ~live, ~approved)
    return and_(ApprovalRequest.status == PENDING, or_(named, orphan))


def _decidable(pk: Any, user: Any) -> ApprovalRequest:
    """A pending request whose current step ``user`` decides; ``NotFound`` for anyone else."""
    number = db_int(pk)
    item = db.session.scalars(select(ApprovalRequest).where(ApprovalRequest.id == number, _deciding(user))).first()
    if item is None or number is None:
        raise records.not_found()
    return item


def may_decide(request: ApprovalRequest, user: Any) -> bool:
    """Whether ``user`` decides the request's current step now (see ``_deciding``)."""
    if request.status != PENDING or request.id is None:
        return False
    return db.session.scalar(select(ApprovalRequest.id).where(ApprovalRequest.id == request.id,
                                                              _deciding(user))) is not None


#: At most this many rows on a list (inbox, my requests, a record's history): a page, not a year.
LIST_LIMIT = 200


def waiting_for(user: Any, limit: int = LIST_LIMIT) -> list[ApprovalRequest]:
    """Pending requests whose current step ``user`` decides, oldest first (the inbox), at
    most ``limit``."""
    return list(db.session.scalars(select(ApprovalRequest).where(_deciding(user))
                                   .order_by(ApprovalRequest.requested_at).limit(limit)))


def requested_by(user: Any, limit: int = LIST_LIMIT) -> list[ApprovalRequest]:
    """The user's own requests, newest first, at most ``limit``."""
    return list(db.session.scalars(select(ApprovalRequest).where(ApprovalRequest.requester_id == user.id)
                                   .order_by(ApprovalRequest.id.desc()).limit(limit)))


def for_record(record_type: str, record_id: int, user: Any, limit: int = LIST_LIMIT) -> list[ApprovalRequest]:
    """The requests on a record, newest first (at most ``limit``), for a user who may see
    the record (``NotFound`` otherwise: the record's scope, not the request's)."""
    model = notifications.model_for(record_type)
    if model is None:
        raise records.not_found()
    records.load(model, record_id, user, live=False)
    return list(db.session.scalars(select(ApprovalRequest).where(
        ApprovalRequest.record_type == record_type, ApprovalRequest.record_id == record_id)
        .order_by(ApprovalRequest.id.desc()).limit(limit)))


# --- decisions ----------------------------------------------------------------------------


def _act(request: ApprovalRequest, action: str, user: Any, comment: str | None = None) -> None:
    """One step of the request's history (``comment``: text, or a stored message's column
    value) and its audit entry (the comment's text in the default language)."""
    request.actions.append(ApprovalAction(step=request.step, action=action, user_id=getattr(user, "id", None),
                                          at=utc_now(), comment=comment))
    audit.record(f"approval_{action}", request, {"code": request.code, "kind": request.kind, "step": request.step,
                                                 "comment": message_text.text(comment) if comment else None})


def _check_version(request: ApprovalRequest, version: Any) -> None:
    if version not in (None, ""):
        records.check_version(request, version)


#: The loser of two decisions on one request at the same moment (409).
DECIDED_MEANWHILE = _l("Someone else decided this request at the same moment: reload it to see the outcome.")


def _claim(request: ApprovalRequest) -> None:
    """Write the request's row first (its version moves): of two decisions at the same
    moment only one gets past here, the other is ``StaleRecord`` (409, session rolled
    back) before anything is applied."""
    request.changed_on = utc_now()
    records.flush(DECIDED_MEANWHILE)
    _lock_record(request)


def _lock_record(request: ApprovalRequest) -> None:
    """Take the record's row (``SELECT … FOR UPDATE``; SQLite locks the database anyway)
    before the decision is audited: every audited writer locks its rows first and the
    audit chain head last, so an owner saving the record at the same moment waits or
    wins, never deadlocks with the approval."""
    model = notifications.model_for(request.record_type)
    if model is not None and request.record_id is not None:
        db.session.execute(select(model.id).where(model.id == request.record_id).with_for_update())


def approve(pk: Any, user: Any, comment: str | None = None, version: Any = None) -> ApprovalRequest:
    """Approve the current step of request ``pk`` as ``user`` (a current-step approver;
    ``NotFound`` otherwise). A sensitive kind asks for a step-up first (``StepUpRequired``).
    The next step goes to its approvers minus the requester and everyone who approved an
    earlier step (nobody left: the request ends in a conflict, ``NOBODY_LEFT``). The last
    step applies the change through its kind (``kind.apply``), or marks the request
    ``conflict`` (record changed since the request, or its rules refuse now; nothing
    written, ``outcome`` says why). ``StaleRecord`` (409) when someone decided it at the
    same moment. Flushes; the caller commits."""
    request = _decidable(pk, user)
    _check_version(request, version)
    spec = KINDS.get(request.kind)
    if spec is not None and spec.step_up:
        step_up.demand(spec.step_up, user)
    _claim(request)
    comment = validation.clean_block(comment) or None
    _act(request, "approved", user, comment)
    steps = json.loads(request.steps)
    if request.step + 1 < len(steps):
        request.step += 1
        _start_step(request, steps[request.step], user, involved(request))
    else:
        _finish(request, spec, user)
    records.flush(DECIDED_MEANWHILE)
    return request


def _start_step(request: ApprovalRequest, step: dict[str, Any], actor: Any, barred: Collection[int]) -> list[int]:
    """Resolve and notify the approvers of the request's current ``step`` (not ``barred``,
    already named ones kept); nobody left → the request ends in a conflict. Returns the
    newly named user ids."""
    requester = db.session.get(CrmUser, request.requester_id)
    try:
        found = approvers_for(step, requester, exclude=barred)
    except RuleViolation:
        _nobody_left(request, actor)
        return []
    named = {a.user_id for a in request.approvers if a.step == request.step}
    fresh = [uid for uid in found if uid not in named]
    request.approvers.extend(ApprovalApprover(step=request.step, user_id=uid) for uid in fresh)
    db.session.flush()
    notifications.notify(WAITING_EVENT, fresh, record=request, params=_params(request, requester=requester.username))
    return fresh


def _nobody_left(request: ApprovalRequest, actor: Any) -> None:
    """Nobody may decide the current step: the request ends in a conflict (nothing applied,
    the waiting state undone); the requester (and the actor) are told."""
    problem = _stored(NOBODY_LEFT)
    request.status, request.outcome, request.decided_at = CONFLICT, problem, utc_now()
    _act(request, "conflict", actor, problem)
    _settle(request, CONFLICT)
    notifications.notify(CONFLICT_EVENT, [request.requester_id, getattr(actor, "id", None)], record=request,
                         params=_params(request, outcome=message_text.from_column(problem)))


def reassign_departed(user_ids: Collection[int]) -> list[ApprovalRequest]:
    """Users were deactivated (``user_ids``; those still active are ignored): every pending
    request whose current step names one of them is re-resolved for that step
    (``approvers_for``, without the requester, the earlier steps' approvers and the
    departed), the new approvers notified, an action ``reassigned`` logged (comment: who
    left → who takes over). Nobody left → the request ends in a conflict. Returns the
    requests touched. Flushes; the caller commits (``accounts`` calls it before the commit
    that deactivates)."""
    departed = set(db.session.scalars(select(CrmUser.id).where(CrmUser.id.in_(list(user_ids)),
                                                               CrmUser.active.is_(False))))
    if not departed:
        return []
    current = exists().where(ApprovalApprover.request_id == ApprovalRequest.id,
                             ApprovalApprover.step == ApprovalRequest.step, ApprovalApprover.user_id.in_(departed))
    touched = list(db.session.scalars(select(ApprovalRequest).where(ApprovalRequest.status == PENDING, current)
                                      .order_by(ApprovalRequest.id)))
    for request in touched:
        _reassign(request, departed)
    records.flush()
    return touched


def _reassign(request: ApprovalRequest, departed: set[int]) -> None:
    gone = [a for a in request.approvers if a.step == request.step and a.user_id in departed]
    names = {u.id: u.username for u in db.session.scalars(select(CrmUser).where(CrmUser.id.in_(departed)))}
    for row in gone:
        request.approvers.remove(row)
    staying = any(a.step == request.step for a in request.approvers)
    step = json.loads(request.steps)[request.step]
    requester = db.session.get(CrmUser, request.requester_id)
    try:
        found = approvers_for(step, requester, exclude=involved(request) | departed)
    except RuleViolation:
        found = []
    if not found and not staying:
        _nobody_left(request, None)
        return
    fresh = _start_step(request, step, None, involved(request) | departed) if found else []
    taking = ", ".join(u.username for u in db.session.scalars(select(CrmUser).where(CrmUser.id.in_(fresh))))
    left = ", ".join(names.get(row.user_id, str(row.user_id)) for row in gone)
    _act(request, "reassigned", None, f"{left} → {taking or '-'}")


def _record_of(request: ApprovalRequest) -> Any:
    model = notifications.model_for(request.record_type)
    return db.session.get(model, request.record_id) if model is not None and request.record_id else None


def _finish(request: ApprovalRequest, spec: ChangeKind | None, approver: Any) -> None:
    """Apply on the last approval, or record the conflict."""
    request.decided_at = utc_now()
    record = _record_of(request)
    problem = _conflict(request, spec, record)
    if problem is None and spec is not None and spec.apply is not None:
        problem = _apply(request, spec, record, approver)
    if problem is not None:
        _conflicted(request, spec, record, approver, problem)
        return
    request.status, request.applied_at = APPROVED, utc_now()
    _act(request, "applied", approver)
    notifications.notify(APPROVED_EVENT, [request.requester_id], record=request,
                         params=_params(request, approver=approver.username))


def _stored(problem: Any) -> str:
    """A conflict's reason as stored (the outcome column, the history's comment): a catalogue
    message keeps its id and is read in each reader's language (``message_text``); a rule's
    refusal from ``apply`` is text already (the approver's language)."""
    return message_text.to_column(messages.stored(problem), 10000)


def _conflict(request: ApprovalRequest, spec: ChangeKind | None, record: Any) -> Any:
    """Why the change cannot be applied now (a lazy message), or None."""
    if record is None and request.record_id is not None:
        return _l("The record no longer exists.")
    if spec is None:
        return _l("This kind of change is no longer known.")
    before = json.loads(request.before)
    now = json.loads(_json(spec.current(record))) if spec.current is not None else {}
    if any(now.get(key) != value for key, value in before.items() if key in now):
        return _l("The record was changed after the request was made; nothing was overwritten. "
                  "Ask again with the current values.")
    return None


def _apply(request: ApprovalRequest, spec: ChangeKind, record: Any, approver: Any) -> str | None:
    """Run the kind's apply in a savepoint: its refusal leaves nothing behind."""
    from app.services.importing.declared import savepoint as real_savepoint  # SQLite: a real SAVEPOINT

    savepoint = real_savepoint()
    try:
        with audit.audit_context(reason=str(_l("%(code)s approved by %(approver)s", code=request.code,
                                               approver=approver.username))):
            spec.apply(request, record, approver)
            db.session.flush()
    except StaleRecord:
        raise  # records.flush rolled the whole session back: nothing to undo here
    except RuleViolation as exc:
        savepoint.rollback()
        return "; ".join(str(message) for message in exc.errors.values() if isinstance(message, str)) or str(exc)
    savepoint.commit()
    return None


def _conflicted(request: ApprovalRequest, spec: ChangeKind | None, record: Any, approver: Any, problem: Any) -> None:
    problem = _stored(problem)
    request.status, request.outcome = CONFLICT, problem
    _act(request, "conflict", approver, problem)
    if spec is not None and spec.settle is not None and record is not None:
        spec.settle(request, record, CONFLICT)
    notifications.notify(CONFLICT_EVENT, [request.requester_id, approver.id], record=request,
                         params=_params(request, outcome=message_text.from_column(problem)))


def reject(pk: Any, user: Any, comment: str | None, version: Any = None) -> ApprovalRequest:
    """Reject request ``pk`` as a current-step approver (``NotFound`` otherwise); the
    ``comment`` is required (``RuleViolation``). Nothing is applied; the requester is told.
    ``StaleRecord`` (409) when someone decided it at the same moment."""
    request = _decidable(pk, user)
    _check_version(request, version)
    comment = validation.clean_block(comment) or None
    if not comment:
        raise RuleViolation({"comment": str(_l("Say why you reject the request."))})
    _claim(request)
    request.status, request.decided_at = REJECTED, utc_now()
    _act(request, "rejected", user, comment)
    _settle(request, REJECTED)
    notifications.notify(REJECTED_EVENT, [request.requester_id], record=request,
                         params=_params(request, approver=user.username, comment=comment))
    records.flush(DECIDED_MEANWHILE)
    return request


def withdraw(pk: Any, user: Any) -> ApprovalRequest:
    """The requester takes back a pending request (``NotFound`` for anyone who may not
    see it, ``RuleForbidden`` for an approver, ``RuleViolation`` once decided,
    ``StaleRecord`` (409) when it was decided at the same moment). The current step's
    approvers, whose inbox item goes, are told (``approval_withdrawn``), as of every other
    outcome (issue 15); the requester is not told of their own act."""
    request = load(pk, user)
    if request.requester_id != user.id:
        raise RuleForbidden(str(_l("Only the person who asked can withdraw a request.")))
    if request.status != PENDING:
        raise RuleViolation({"status": str(_l("%(code)s is no longer pending.", code=request.code))})
    _claim(request)
    request.status, request.decided_at = WITHDRAWN, utc_now()
    _act(request, "withdrawn", user)
    _settle(request, WITHDRAWN)
    records.flush(DECIDED_MEANWHILE)
    _tell_withdrawn(request, user, _stored(BY_THE_REQUESTER))
    return request


def withdraw_by(request: ApprovalRequest, actor: Any, reason: Any) -> None:
    """End a pending ``request`` without its requester: withdrawn by the CRM or by an admin
    (``actor``, a user or None) because of ``reason`` (a lazy message; stored and read in each
    reader's language, like a conflict's reason). Status ``withdrawn``, a "withdrawn" step
    in its history with the reason, the kind's ``settle`` undoing a waiting state (an order
    back to draft). The requester and the current step's approvers (whose inbox item goes)
    are told (``approval_withdrawn``) as they are of every other outcome (issue 15:
    notifications to the approver and back to the requester); ``actor`` is not told of
    their own act. ``RuleViolation`` when the request is no longer pending. Flushes
    nothing; the caller does."""
    if request.status != PENDING:
        raise RuleViolation({"status": str(_l("%(code)s is no longer pending.", code=request.code))})
    stored = _stored(reason)
    request.status, request.decided_at = WITHDRAWN, utc_now()
    _act(request, "withdrawn", actor, stored)
    _settle(request, WITHDRAWN)
    _tell_withdrawn(request, actor, stored)


def _tell_withdrawn(request: ApprovalRequest, actor: Any, reason: str) -> None:
    """The requester and the current step's approvers (whose inbox item goes) are told that
    ``request`` was withdrawn by ``actor`` (a user, or None: the CRM) because of ``reason`` (as
    stored, ``_stored``); ``actor`` is not told of their own act."""
    waiting = [a.user_id for a in request.approvers if a.step == request.step]
    told = [uid for uid in (request.requester_id, *waiting) if uid != getattr(actor, "id", None)]
    by = actor.username if actor is not None else messages.stored(BY_THE_CRM)
    notifications.notify(WITHDRAWN_EVENT, told, record=request,
                         params=_params(request, actor=by, reason=message_text.from_column(reason)))


def withdraw_pending(record_type: str, record_id: int, actor: Any, reason: Any) -> list[ApprovalRequest]:
    """Withdraw every pending request on one record (``withdraw_by``: requester and
    approvers told), e.g. when the record ends some other way than through the request.
    A request being decided right now (its approval is what changes the record: pending,
    with ``decided_at`` set by ``_finish``) is left to its decision. Returns the requests
    withdrawn. Flushes nothing; the caller does."""
    if record_id is None:
        return []
    found = list(db.session.scalars(select(ApprovalRequest).where(
        ApprovalRequest.record_type == record_type, ApprovalRequest.record_id == record_id,
        ApprovalRequest.status == PENDING, ApprovalRequest.decided_at.is_(None)).order_by(ApprovalRequest.id)))
    for request in found:
        withdraw_by(request, actor, reason)
    return found


def withdraw_held(request: ApprovalRequest, user: Any, record: Any = None) -> None:
    """Withdraw a pending ``request`` on a record whose personal data an admin erased
    (issue 19: the change it holds would write the person's data back when approved); the
    erasing admin ``user`` is named in its history, requester and approvers are told
    (``withdraw_by``). ``record``: the erased record, already cleared: the request's label
    is read from it again first, so neither the request nor the notice (nor its e-mail,
    rendered when queued) names what was erased. Flushes nothing; the caller does."""
    if record is not None:
        request.record_label = _label(record)
    withdraw_by(request, user, ERASED_REASON)


def _settle(request: ApprovalRequest, outcome: str) -> None:
    spec = KINDS.get(request.kind)
    record = _record_of(request) if spec is not None and spec.settle is not None else None
    if record is not None:
        spec.settle(request, record, outcome)


# --- policies -----------------------------------------------------------------------------


#: Seeded policies (name, kind, note): names in the manuals' words, like the seeded SLA
#: policies (admin-editable data, not interface text).
DEFAULTS = (
    ("删除成交客户审批", "customer.archive", "003 第四步: 删除客户需销售经理审批; 000 §三(一)"),
    ("修改客户等级审批", "customer.level", "003 第四步: 修改客户等级需部门负责人审批"),
    ("数据变更申请", "data_change", "000 §三(一): 数据变更申请, 部门负责人审批"),
    ("市场活动审批", "campaign.approve", "002 §五(一): 活动方案与预算经审批后执行"),
)


def seed_defaults() -> None:
    """The manuals' default policies when there are none (000/003: archive a won customer
    and change a level → the department manager; a data-change request → the manager).
    Key contact data (001 使用规范二) and "make a customer won" are kinds an admin may
    switch on with a policy of their own: not seeded (the owner/admin rule and the
    contract-number rule already hold them)."""
    if db.session.scalar(select(func.count()).select_from(ApprovalPolicy)):
        return
    db.session.execute(delete(ApprovalStep))  # orphans (SQLite enforces no ON DELETE CASCADE)
    for position, (name, kind, note) in enumerate(DEFAULTS):
        policy = ApprovalPolicy(name=name, kind=kind, position=position, active=True, note=note)
        policy.steps = [ApprovalStep(position=0, approver="manager")]
        db.session.add(policy)
    db.session.flush()


def check_policy(policy: ApprovalPolicy) -> None:
    """The policy screen's rules (admins; ``RuleViolation`` field -> message): a name, a
    known kind, conditions typed as money (>= 0, 2 decimals) and a percentage (0-100,
    2 decimals), read like every other amount (``products.money``)."""
    errors: dict[str, str] = {}
    policy.name = validation.clean_line(policy.name)
    if not policy.name:
        errors["name"] = str(_l("Required."))
    if policy.kind not in KINDS:
        errors["kind"] = str(_l("Unknown kind of change: %(kind)s", kind=policy.kind))
    from app.services.opportunities import percent_value
    from app.services.products import money

    # typed text (the screen's fields) read like every money and percentage input
    policy.min_amount = money(policy.min_amount, "min_amount", errors)
    policy.min_discount = percent_value(policy.min_discount, "min_discount", errors, whole=False)
    if errors:
        raise RuleViolation(errors)


def check_step(step: ApprovalStep) -> None:
    """A step names who approves: the manager, or a role / a person when it says so
    (``RuleViolation``); the other choice's field is cleared."""
    if step.approver not in APPROVERS:
        raise RuleViolation({"approver": str(_l("Choose who approves."))})
    if step.approver == "role" and step.role_id is None and step.role is None:
        raise RuleViolation({"role": str(_l("Choose the role whose members approve."))})
    if step.approver == "user" and step.user_id is None and step.user is None:
        raise RuleViolation({"user": str(_l("Choose the person who approves."))})
    if step.approver != "role":
        step.role = None
    if step.approver != "user":
        step.user = None


# Who approves what is a permission: every change of a policy or a step is in the audit log.
audit.audited(ApprovalPolicy)
audit.audited(ApprovalStep)


#: Step approver kinds (the policy screen's choices).
APPROVERS = {"manager": _l("Department manager"), "role": _l("Everyone with a role"), "user": _l("A person")}
#: Status labels.
STATUSES = {PENDING: _l("Pending"), APPROVED: _l("Approved"), REJECTED: _l("Rejected"),
            WITHDRAWN: _l("Withdrawn"), CONFLICT: _l("Conflict")}
#: Action labels (the request's history).
ACTIONS = {"submitted": _l("Submitted"), "approved": _l("Approved"), "rejected": _l("Rejected"),
           "withdrawn": _l("Withdrawn"), "conflict": _l("Conflict"), "applied": _l("Applied"),
           "reassigned": _l("Reassigned (an approver left)")}


def _event(key: str, label: Any, text: Any) -> str:
    notifications.declare_event(notifications.Event(key, label, text, channels=(notifications.IN_APP,
                                                                              notifications.EMAIL)))
    return key


WAITING_EVENT = _event("approval_waiting", _l("Approval waiting for you"),
                       _l("%(code)s: %(kind)s on %(record)s, asked by %(requester)s, waits for your approval."))
APPROVED_EVENT = _event("approval_approved", _l("Your request was approved"),
                        _l("%(code)s: %(kind)s on %(record)s was approved by %(approver)s and applied."))
REJECTED_EVENT = _event("approval_rejected", _l("Your request was rejected"),
                        _l("%(code)s: %(kind)s on %(record)s was rejected by %(approver)s: %(comment)s"))
#: Why the CRM withdrew a request (``withdraw_by``'s reasons) and who did when no user did.
ERASED_REASON = _l("The record's personal data was erased.")
BY_THE_CRM = _l("the CRM")
BY_THE_REQUESTER = _l("The person who asked took it back.")
WITHDRAWN_EVENT = _event("approval_withdrawn", _l("An approval request was withdrawn"),
                         _l("%(code)s: %(kind)s on %(record)s was withdrawn by %(actor)s: %(reason)s Nothing was "
                            "applied; it no longer waits for approval."))
CONFLICT_EVENT = _event("approval_conflict", _l("An approved change could not be applied"),
                        _l("%(code)s: %(kind)s on %(record)s was not applied: %(outcome)s"))
