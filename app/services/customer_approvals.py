"""The customer approval gates and the 001 won rule: ONE place every entry point calls.

Forms and the API (``customers.save_customer``), imports (``importing.engine``) and the
sheet sync (``sync.records``) all ask this module, so a rule cannot hold in one and not
in another:

- **Gates** (003 第四步 修改客户等级需部门负责人审批; 001 使用规范二 key contact data;
  "make a customer won"): ``hold_gated`` puts back a gated field that changed while an
  active policy covers it and returns what to hold; ``submit_held`` holds it in one
  ``ApprovalRequest`` per kind. A pending request with the same change counts as held
  (a second import of the same file, or the next sync run, asks nothing twice).
- **Won rule** (001: 成交客户 only with a contract number; setting
  ``won_needs_contract``): ``check_won`` (a loaded customer) and ``check_won_row`` (an
  import's bulk-insert row). The number comes with the change or from the customer's
  signed contract (``signed_numbers``, one query for a batch) and is written into the
  status history reason "合同编号 …".
- ``Gates.now()`` reads which kinds are gated and whether the won rule is on once per run
  (imports and syncs of thousands of rows ask no per-row query when no row is won).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models.customers import Customer
from app.models.dictionaries import CustomerType
from app.models.orders import SIGNED_STATUSES, Contract
from app.security.rights import admin_ids, is_admin
from app.services import approvals, bulk, records, validation
from app.services import settings as crm_settings
from app.services.errors import NotFound, RuleViolation

WON = "won"
ARCHIVE_KIND, LEVEL_KIND, CONTACT_KIND, WON_KIND, DATA_CHANGE_KIND = (
    "customer.archive", "customer.level", "customer.contact", "customer.won", "data_change")
#: kind -> the customer fields it holds (relations by their ``<name>_id`` in the request).
GATED = {LEVEL_KIND: ("level",), CONTACT_KIND: ("contact_name", "contact_phone", "email"), WON_KIND: ("type",)}
_DICTIONARIES = {name: Customer.__mapper__.relationships[name].mapper.class_ for name in ("type", "level")}
#: Longest contract number kept in a reason (``Contract.number``).
NUMBER_LIMIT = Contract.__table__.c.number.type.length or 60

WON_NEEDS_CONTRACT = crm_settings.declare(crm_settings.Setting(
    "won_needs_contract", crm_settings.BOOL, True, _l("A customer becomes won only with a contract number"),
    _l("001: a customer is made 成交客户 only with a signed contract's number (given with the change, "
       "or a signed contract of the customer)."), section=_l("Customers")))


@dataclass(frozen=True)
class Gates:
    """What holds right now, read once per save / import run / sync run.

    ``kinds``: the gated kinds with an active policy; ``won_rule``: the setting
    ``won_needs_contract``; ``won_ids``: ids of the 成交客户 type entries."""

    kinds: frozenset[str]
    won_rule: bool
    won_ids: frozenset[int]

    @classmethod
    def now(cls) -> Gates:
        """Three policy look-ups, one setting and one dictionary query."""
        kinds = frozenset(kind for kind in GATED if approvals.policy_for(kind) is not None)
        won_rule = bool(crm_settings.get(WON_NEEDS_CONTRACT.key))
        won_ids = frozenset(db.session.scalars(select(CustomerType.id).where(CustomerType.code == WON))) \
            if won_rule else frozenset()
        return cls(kinds, won_rule, won_ids)


@dataclass(frozen=True)
class Held:
    """One gated change put back: ``kind``, ``change`` and ``before`` (request key -> value)."""

    kind: str
    change: dict[str, Any]
    before: dict[str, Any]


# --- 001: 成交客户 only with a contract number ----------------------------------------------


def signed_numbers(customer_ids: Iterable[int]) -> dict[int, str]:
    """customer id -> number of its newest signed contract (active or expired), for many
    customers in one query; customers without one are left out."""
    found: dict[int, str] = {}
    for chunk in bulk.id_chunks((pk for pk in customer_ids if pk is not None), 1000):
        rows = db.session.execute(select(Contract.customer_id, Contract.number).where(
            Contract.customer_id.in_(chunk), Contract.status.in_(SIGNED_STATUSES),
            Contract.number.is_not(None)).order_by(Contract.id))
        found.update(dict(rows.all()))  # ordered by id: the newest wins
    return found


def won_refusal() -> str:
    """The message of a refused move to won (under the type field / column)."""
    return str(_l("A customer becomes won only with a signed contract: give its contract number."))


def _number(given: Any, signed: str | None) -> str:
    number = validation.clean_line(given) if given else None
    if number and len(number) > NUMBER_LIMIT:
        raise RuleViolation({"contract_number": str(_l("At most %(n)d characters.", n=NUMBER_LIMIT))})
    if number and not any(char.isalnum() for char in number):  # "-" or "/" is no contract's number
        raise RuleViolation({"contract_number": str(_l("A contract number has letters or digits."))})
    number = number or signed
    if not number:
        raise RuleViolation({"type": won_refusal()})
    return number


def stamp(reason: str | None, number: str) -> str:
    """The status history reason with "合同编号 …" added."""
    mark = f"合同编号 {number}"
    return f"{reason}; {mark}" if reason else mark


_LOOK_UP = object()


def check_won(item: Customer, contract_number: str | None, gates: Gates | None = None,
              signed: Any = _LOOK_UP) -> str | None:
    """001 使用规范: moving a loaded customer to won (or adding one as won) needs a contract
    number: ``contract_number`` (the change's own; at most ``NUMBER_LIMIT`` characters) or
    the customer's signed contract (``signed``: its number or None when the caller looked
    it up in a batch; looked up here otherwise). Returns the number, also added to
    ``item.status_reason`` (the status history's "合同编号 …"); None when the rule does not
    apply. ``RuleViolation`` on ``type`` (or ``contract_number``)."""
    gates = gates or Gates.now()
    if not gates.won_rule:
        return None
    now = records.related_id(item, "type")
    if now not in gates.won_ids or (item.id is not None and records.previous(item, "type_id") == now):
        return None
    if signed is _LOOK_UP:
        signed = signed_numbers([item.id]).get(item.id) if item.id is not None else None
    number = _number(contract_number, signed)
    item.status_reason = stamp(item.status_reason, number)
    return number


def check_won_row(row: dict[str, Any], contract_number: str | None, gates: Gates) -> str | None:
    """``check_won`` for a new customer as a bulk-insert row (``type_id``): the number must
    come with the row (a new customer has no contract). Sets ``row["status_reason"]``
    (``customers.insert_customers`` writes it into the status history)."""
    if not gates.won_rule or row.get("type_id") not in gates.won_ids:
        return None
    number = _number(contract_number, None)
    row["status_reason"] = stamp(None, number)
    return number


# --- gates ------------------------------------------------------------------------------------


def _field_now(item: Customer, name: str) -> tuple[str, Any, Any]:
    """(request key, value before, value now) of one gated field of a loaded customer."""
    if name in _DICTIONARIES:
        return f"{name}_id", records.previous(item, f"{name}_id"), records.related_id(item, name)
    return name, records.previous(item, name), getattr(item, name)


def _exempt(kind: str, item: Customer, user: Any) -> bool:
    """001 使用规范二: key contact data changed by the owner or an admin needs nobody else."""
    return kind == CONTACT_KIND and (records.previous(item, "owner_id") == user.id or is_admin(user))


def is_gated(kind: str, item: Customer, user: Any) -> bool:
    """Whether a change of ``kind`` on the loaded customer waits for approval when ``user``
    makes it (an active policy; key contact data by its owner or an admin does not)."""
    return kind in Gates.now().kinds and not _exempt(kind, item, user)


def refuse_gated(kind: str, item: Customer, user: Any, fields: Iterable[str]) -> None:
    """For writers that would change a customer's gated ``fields`` in a way an approval
    cannot carry out later (another contact becoming the primary one): when ``kind`` is
    gated for ``user`` (``is_gated``), ``RuleViolation`` pointing to the customer's page,
    where such a change is sent for approval. Nothing is ever changed unapproved."""
    if is_gated(kind, item, user):
        raise RuleViolation({name: str(_l("This changes the customer's key contact data, which needs approval: "
                                          "change it on the customer's page, where it is sent for approval."))
                             for name in fields})


def hold_gated(item: Customer, user: Any, gates: Gates | None = None) -> list[Held]:
    """Put back the gated fields of a loaded customer that changed (and that ``user`` may
    not change alone) while an active policy covers them; returns what to hold, one
    ``Held`` per kind. A new customer (no id) has nothing to approve: []."""
    gates = gates or Gates.now()
    if item.id is None or not gates.kinds:
        return []
    held = []
    for kind, fields in GATED.items():
        if kind not in gates.kinds or _exempt(kind, item, user):
            continue
        moved = {name: _field_now(item, name) for name in fields}
        moved = {name: entry for name, entry in moved.items() if entry[1] != entry[2]}
        if not moved:
            continue
        for name, (_, before, _) in moved.items():
            _put_back(item, name, before)
        if kind == WON_KIND:
            item.status_reason = None  # the type stays: no history entry now
        held.append(Held(kind, {key: now for key, _, now in moved.values()},
                         {key: before for key, before, _ in moved.values()}))
    return held


def _put_back(item: Customer, name: str, before: Any) -> None:
    if name in _DICTIONARIES:
        setattr(item, name, db.session.get(_DICTIONARIES[name], before) if before is not None else None)
    else:
        setattr(item, name, before)


def _same(stored: str, change: dict[str, Any]) -> bool:
    wanted = json.loads(json.dumps(change, default=str))
    have = json.loads(stored)
    have.pop("contract_number", None)
    return have == wanted


def waiting_conflict(item: Customer, held: list[Held]) -> str | None:
    """Why ``held`` cannot be held now: a pending request of the same kind asks for a
    different change (the message names it); None when each is new or already pending as is."""
    for entry in held:
        waiting = approvals.pending("customer", item.id, entry.kind)
        if waiting is not None and not _same(waiting.change, entry.change):
            return str(_l("%(code)s is already waiting for approval of this change.", code=waiting.code))
    return None


def submit_held(item: Customer, user: Any, held: list[Held], number: str | None = None, *,
                again: bool = False) -> list[Any]:
    """Hold each change in an ``ApprovalRequest`` (``approvals.submit``; flushes). A pending
    request of the kind: ``RuleViolation`` (a form says so), except with ``again`` (imports
    and syncs, which meet the same row again) when it asks the very same change: that
    request is the answer (nothing asked twice). ``number``: the contract number of a held
    move to won, kept in its request (applied with it)."""
    requests = []
    for entry in held:
        waiting = approvals.pending("customer", item.id, entry.kind) if again else None
        if waiting is not None and _same(waiting.change, entry.change):
            requests.append(waiting)
            continue
        change = {**entry.change, "contract_number": number} if number and entry.kind == WON_KIND else entry.change
        requests.append(approvals.submit(entry.kind, item, user, change, before=entry.before))
    return requests


def held_notes(requests: list[Any]) -> list[Any]:
    """What an import report or a sync status cell says of held changes, one lazy string per
    request, e.g. "Change a customer's level: sent for approval (AP20260101-0001)"."""
    return [_l("%(kind)s: sent for approval (%(code)s)", kind=approvals.KINDS[r.kind].label, code=r.code)
            for r in requests]


def will_hold_notes(held: list[Held]) -> list[Any]:
    """The dry run's notes: what the commit will send for approval (lazy strings)."""
    return [_l("%(kind)s: will be sent for approval", kind=approvals.KINDS[h.kind].label) for h in held]


def joined(notes: list[Any]) -> str:
    """Notes as one text in the current language."""
    return "; ".join(str(note) for note in notes)


# --- the kinds: applied through the customer use case --------------------------------------------


def _current(fields: tuple[str, ...]) -> Any:
    def current(item: Customer) -> dict[str, Any]:
        keys = [f"{name}_id" if name in _DICTIONARIES else name for name in fields]
        return {key: getattr(item, key) for key in keys}
    return current


def _apply_fields(request: Any, item: Customer, approver: Any) -> None:
    """Apply an approved field change: the same use case, as the requester's change
    (rules re-checked; a requester who lost the customer: a conflict)."""
    from app.models.org import CrmUser
    from app.services import customers

    change = json.loads(request.change)
    number = change.pop("contract_number", None)
    values = {}
    for key, value in change.items():
        name = key[:-3] if key.endswith("_id") and key[:-3] in _DICTIONARIES else key
        if name != key:
            value = db.session.get(_DICTIONARIES[name], value) if value is not None else None
        values[name] = value
    requester = db.session.get(CrmUser, request.requester_id)
    try:
        customers.save_customer(values, requester, pk=item.id, version=item.version, contract_number=number,
                                approved=True, allow_duplicate=True)
    except NotFound as exc:
        raise RuleViolation(str(_l("The requester can no longer see this customer."))) from exc


def _apply_archive(request: Any, item: Customer, approver: Any) -> None:
    """An approved archive of a won customer: the manager's act, carried out as an admin would (000)."""
    from app.services import customers

    customers.archive(item, may_delete_won=True, user=approver)


def _notify_data_change(request: Any, item: Customer, approver: Any) -> None:
    """An approved 数据变更申请 is carried out by the administrators (000 §三(一)): tell them."""
    from app.services import notifications

    notifications.notify(DATA_CHANGE_EVENT, admin_ids(), record=request,
                         params={"code": request.code, "record": request.record_label or "",
                                 "approver": approver.username})


def _declare_data_change_event() -> str:
    from app.services import notifications

    notifications.declare_event(notifications.Event(
        "approval_data_change", _l("Data-change request to carry out"),
        _l("%(code)s: the data-change request on %(record)s was approved by %(approver)s; carry it out."),
        channels=(notifications.IN_APP, notifications.EMAIL)))
    return "approval_data_change"


DATA_CHANGE_EVENT = _declare_data_change_event()


def register_kinds(archive_step_up: str) -> None:
    """Declare the customer kinds (``customers`` calls it once, with its step-up name)."""
    approvals.register_kind(approvals.ChangeKind(
        ARCHIVE_KIND, _l("Archive a won customer"), "customer", apply=_apply_archive,
        current=lambda item: {"archived": item.archived_at is not None}, step_up=archive_step_up))
    approvals.register_kind(approvals.ChangeKind(LEVEL_KIND, _l("Change a customer's level"), "customer",
                                                 apply=_apply_fields, current=_current(GATED[LEVEL_KIND])))
    approvals.register_kind(approvals.ChangeKind(CONTACT_KIND, _l("Change a customer's key contact data"),
                                                 "customer", apply=_apply_fields,
                                                 current=_current(GATED[CONTACT_KIND])))
    approvals.register_kind(approvals.ChangeKind(WON_KIND, _l("Make a customer won"), "customer",
                                                 apply=_apply_fields, current=_current(GATED[WON_KIND])))
    approvals.register_kind(approvals.ChangeKind(DATA_CHANGE_KIND, _l("Data-change request"), "customer",
                                                 apply=_notify_data_change))


def hold_archive(item: Customer, user: Any, won: bool) -> bool:
    """A won customer the user may not archive: held for approval when a policy covers it
    (003 第四步 删除客户需销售经理审批); a second request while one waits is refused."""
    if item.archived_at is not None or not won or approvals.policy_for(ARCHIVE_KIND) is None:
        return False
    approvals.submit(ARCHIVE_KIND, item, user, {"archived": True}, before={"archived": False})
    return True
