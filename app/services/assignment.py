"""Lead assignment rules (分配规则, 000 §二(二) 按区域+行业分配; 003 分配规则).

A new lead without an owner goes to the first active rule (lowest ``position``, then id)
whose conditions all match: each condition a rule sets (province, city, industry,
source) must hold; a rule on an industry section (制造业) matches its divisions too.
The rule's pool is its users plus the active members of its department; deactivated or
expired users are skipped; the pool takes turns (round robin): the next user after the
stored cursor (``last_user_id``) in id order, wrapping around.

The cursor is read and moved under a lock held until the caller commits, so two leads
assigned at the same moment never go to the same person out of turn: PostgreSQL locks
the rule row (``SELECT … FOR UPDATE``); SQLite takes its database write lock with an
``UPDATE`` of the rule before reading it (readers there never hold an old snapshot:
pysqlite begins the transaction at the first write).

No rule matches, or its pool is empty: the fallback owner (``CRM_LEAD_FALLBACK_OWNER``, a
user name, when active), else the creator. Every decision is audited with the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import false, or_, select, update

from app.clock import local_today
from app.extensions import db
from app.models.dictionaries import Industry
from app.models.org import CrmUser
from app.models.sales import AssignmentRule, AssignmentRuleUser
from app.services import audit, validation

#: How a decision was made (audit detail ``how``).
BY_RULE, BY_FALLBACK, BY_CREATOR, UNASSIGNED = "rule", "fallback", "creator", "unassigned"
_REGION_SUFFIXES = ("特别行政区", "自治区", "省", "市")


@dataclass(frozen=True)
class Decision:
    """Who gets a lead: ``owner`` (None: nobody could be found), the ``rule`` that fired
    (None for the fallback), and ``how`` (``BY_RULE`` …)."""

    owner: Any
    rule: AssignmentRule | None
    how: str


def region_key(text: str | None) -> str:
    """Province/city as compared: cleaned, case-folded, without 省/市/自治区 (广东省 = 广东)."""
    value = validation.clean_line(text).casefold()
    for suffix in _REGION_SUFFIXES:
        if value.endswith(suffix) and len(value) > len(suffix):
            return value[: -len(suffix)]
    return value


def _entry(item: Any, relation: str, model: type) -> Any:
    entry = getattr(item, relation)
    if entry is None and getattr(item, f"{relation}_id", None) is not None:
        entry = db.session.get(model, getattr(item, f"{relation}_id"))
    return entry


def rule_matches(rule: AssignmentRule, lead: Any) -> bool:
    """Whether every condition ``rule`` sets holds for ``lead`` (a rule with none matches all)."""
    for name in ("province", "city"):
        wanted = getattr(rule, name)
        if wanted and region_key(wanted) != region_key(getattr(lead, name)):
            return False
    if rule.industry_id is not None:
        industry = _entry(lead, "industry", Industry)
        if industry is None or rule.industry_id not in (industry.id, industry.parent_id):
            return False
    if rule.source_id is not None:
        source = lead.source
        source_id = source.id if source is not None else lead.source_id
        if source_id != rule.source_id:
            return False
    return True


def pool_ids(rule: AssignmentRule) -> list[int]:
    """Ids (ascending) of the rule's users and its department's members that are active and
    not expired: the people who take turns."""
    today = local_today()
    members = select(CrmUser.id).where(
        CrmUser.active.is_(True), or_(CrmUser.expires_on.is_(None), CrmUser.expires_on >= today),
        or_(CrmUser.id.in_(select(AssignmentRuleUser.user_id).where(AssignmentRuleUser.rule_id == rule.id)),
            CrmUser.department_id == rule.department_id if rule.department_id is not None else false()),
    ).order_by(CrmUser.id)
    return list(db.session.scalars(members))


def _locked_cursor(rule_id: int) -> int | None:
    """The rule's cursor, read under a lock that lasts until the transaction ends."""
    session = db.session
    column = select(AssignmentRule.last_user_id).where(AssignmentRule.id == rule_id)
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(column.with_for_update()).scalar()
    # SQLite: a write first takes the database write lock (others wait on it), then read.
    session.execute(update(AssignmentRule).where(AssignmentRule.id == rule_id)
                    .values(last_user_id=AssignmentRule.last_user_id)
                    .execution_options(synchronize_session=False))
    return session.execute(column).scalar()


def next_in_turn(pool: list[int], cursor: int | None) -> int:
    """Round robin: the first id after ``cursor`` in ``pool`` (ascending), wrapping around."""
    return next((uid for uid in pool if cursor is None or uid > cursor), pool[0])


def take_turn(rule: AssignmentRule) -> CrmUser | None:
    """The next user of the rule's pool, moving its cursor (locked; the caller commits).
    None when nobody in the pool is active."""
    pool = pool_ids(rule)
    if not pool:
        return None
    chosen = next_in_turn(pool, _locked_cursor(rule.id))
    db.session.execute(update(AssignmentRule).where(AssignmentRule.id == rule.id)
                       .values(last_user_id=chosen).execution_options(synchronize_session=False))
    db.session.expire(rule, ["last_user_id"])
    return db.session.get(CrmUser, chosen)


def active_rules() -> list[AssignmentRule]:
    """Active rules in the order they are tried."""
    return list(db.session.scalars(select(AssignmentRule).where(AssignmentRule.active.is_(True))
                                   .order_by(AssignmentRule.position, AssignmentRule.id)))


def fallback_owner(creator: Any) -> tuple[Any, str]:
    """``CRM_LEAD_FALLBACK_OWNER`` when that user is active, else the creator (when a
    logged-in, active user), else nobody."""
    name = current_app.config.get("CRM_LEAD_FALLBACK_OWNER") if has_app_context() else None
    if name:
        person = db.session.scalar(select(CrmUser).where(CrmUser.username == name))
        if person is not None and person.is_active:
            return person, BY_FALLBACK
    if creator is not None and getattr(creator, "id", None) is not None and getattr(creator, "is_active", False):
        return creator, BY_CREATOR
    return None, UNASSIGNED


def choose_owner(lead: Any, creator: Any) -> Decision:
    """Who gets ``lead``: the first matching rule with someone active in its pool (its cursor
    moves), else the fallback (``fallback_owner``). Does not set the owner."""
    with db.session.no_autoflush:
        for rule in active_rules():
            if rule_matches(rule, lead):
                person = take_turn(rule)
                if person is not None:
                    return Decision(person, rule, BY_RULE)
        owner, how = fallback_owner(creator)
    return Decision(owner, None, how)


def assign_lead(lead: Any, session: Any = None, creator: Any = None) -> Decision:
    """Assign ``lead`` by the rules (``choose_owner``), set its owner and rule, audit it.
    ``session``: the lead's session (default ``db.session``). The caller commits."""
    decision = choose_owner(lead, creator)
    lead.owner, lead.assigned_by_rule = decision.owner, decision.rule
    (session or db.session).flush()
    audit_decision(lead, decision)
    return decision


def audit_decision(lead: Any, decision: Decision, action: str = "assign") -> None:
    """One audit entry per assignment: the owner, the rule that fired (or the fallback)."""
    rule = decision.rule
    reason = (str(_l("Assignment rule %(name)s", name=rule.name)) if rule is not None
              else str(_l("No assignment rule matched: %(how)s", how=decision.how)))
    audit.record(action, lead, {
        "owner": getattr(decision.owner, "username", None), "how": decision.how,
        "rule_id": getattr(rule, "id", None), "rule": getattr(rule, "name", None),
    }, reason=reason)
