"""Tickets (工单, issue 16; 000 §二(二) 服务工单流程, 附录3 问题反馈): the record type, its
scope, its use cases, the transfer rules (转派规则) and the queue.

Scope (``scope_rule``): a user sees a ticket assigned to them or reported by them
(``created_by_fk``), and by their roles' ``RoleDataScope.ticket_scope`` (union over the
roles): ``customer`` — tickets whose customer is in their customer scope (every ticket,
internal ones too, when they see every owner: admins); ``team`` — tickets of their
department or a sub-department, **and the general queue** (customers' tickets in no
team and with no assignee: no transfer rule matched), which the service desk works from. A ticket without a
customer (an internal problem report) is seen only by its assignee, its reporter, its
team and admins (not in the general queue of team-scoped roles): never by a sales rep.

Status (``TRANSITIONS``): new → assigned → in_progress ⇄ waiting (for the customer) →
resolved → closed; resolved / closed → in_progress is a reopen. The SLA clock is
``app.services.sla`` (its contract functions only). Every use case loads in scope
(``NotFound``), checks the version when given (``StaleRecord``), applies its rules
(``RuleViolation`` field -> message; 409 for an illegal move), writes the process log
(记录处理过程, ``TicketLog``) and flushes; the caller commits. Field changes are audited
by the declaration.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import g, has_request_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select, true, update
from sqlalchemy.orm import Session, joinedload

from app import clock
from app.extensions import db
from app.models.customers import Customer
from app.models.org import TICKET_SCOPE_CUSTOMER, TICKET_SCOPE_TEAM, CrmUser, Department, RoleDataScope
from app.models.sales import Contact
from app.models.service import Priority, ServiceFeedback, Ticket, TicketLog, TicketType, TransferRule
from app.record_types import RecordType, declare
from app.security import data_scope
from app.security.request_bounds import db_int
from app.security.rights import is_admin
from app.services import audit, mentions, notifications, records, sla, validation
from app.services.errors import RuleForbidden, RuleViolation
from app.services.importing.columns import CUSTOMER, DICT, USER, ImportField

PREFIX = "T"
NEW, ASSIGNED, IN_PROGRESS, WAITING, RESOLVED, CLOSED = "new", "assigned", "in_progress", "waiting", "resolved", \
    "closed"
STATUSES = {NEW: _l("New"), ASSIGNED: _l("Assigned"), IN_PROGRESS: _l("In progress"),
            WAITING: _l("Waiting for customer"), RESOLVED: _l("Resolved"), CLOSED: _l("Closed")}
OPEN_STATUSES = (NEW, ASSIGNED, IN_PROGRESS, WAITING)
#: status -> statuses it may move to (resolved / closed -> in_progress is a reopen)
TRANSITIONS = {
    NEW: (ASSIGNED, IN_PROGRESS),
    ASSIGNED: (IN_PROGRESS,),
    IN_PROGRESS: (WAITING, RESOLVED),
    WAITING: (IN_PROGRESS, RESOLVED),
    RESOLVED: (CLOSED, IN_PROGRESS),
    CLOSED: (IN_PROGRESS,),
}
#: channel -> label; the aliases an import or API may use for it (both languages)
CHANNELS = {"phone": _l("Phone"), "email": _l("E-mail"), "online": _l("Online"), "in_person": _l("In person"),
            "internal": _l("Internal")}
CHANNEL_ALIASES = {
    "phone": ("phone", "telephone", "call", "电话", "来电"), "email": ("email", "e-mail", "mail", "邮件", "电子邮件"),
    "online": ("online", "web", "chat", "在线", "网络"), "in_person": ("in_person", "in person", "visit", "现场", "面谈"),
    "internal": ("internal", "内部", "系统"),
}
#: strategies of a transfer rule
STRATEGIES = {"round_robin": _l("Round robin"), "least_loaded": _l("Least loaded"), "none": _l("Team queue")}
#: process-log kinds
LOG_KINDS = {"created": _l("Created"), "assigned": _l("Assigned"), "transferred": _l("Transferred"),
             "status": _l("Status changed"), "note": _l("Note"), "resolved": _l("Resolved"),
             "reopened": _l("Reopened"), "rated": _l("Rated"), "edited": _l("Edited"),
             "sla_warning": _l("SLA warning"), "sla_breach": _l("SLA breached"), "sla_escalated": _l("Escalated")}
EDITABLE = ("customer", "contact", "channel", "ticket_type", "priority", "category", "subject", "description",
            "steps", "assignee", "team", "feedback")
SUBJECT_LIMIT = Ticket.__table__.c.subject.type.length
CATEGORY_LIMIT = Ticket.__table__.c.category.type.length
TEXT_LIMIT = 10000
#: characters of a transfer rule's keywords (one a line): every new ticket is matched against them
KEYWORDS_LIMIT = 2000
INTERNAL_TYPE = "internal"
TICKET_PERMISSION = "Ticket"


# --- scope ----------------------------------------------------------------------------

def ticket_scopes(user: Any) -> set[str]:
    """The ticket scopes of the user's roles (``customer`` / ``team``), cached per request."""
    if user is None or getattr(user, "is_anonymous", True):
        return set()
    key = ("ticket_scopes", user.id)
    cache = g.setdefault("_crm_scope_cache", {}) if has_request_context() else {}
    if key not in cache:
        role_ids = {role.id for role in user.roles}
        rows = dict(db.session.execute(select(RoleDataScope.role_id, RoleDataScope.ticket_scope)
                                       .where(RoleDataScope.role_id.in_(role_ids))).all()) if role_ids else {}
        # a role without a settings row reads tickets like its customers (the column's default)
        cache[key] = {rows.get(role_id, TICKET_SCOPE_CUSTOMER) for role_id in role_ids}
    return cache[key]


def team_ids(user: Any) -> set[int]:
    """The user's department and its sub-departments (empty without a department)."""
    department_id = getattr(user, "department_id", None)
    return data_scope.department_tree_ids(department_id) if department_id else set()


@data_scope.per_user
def scope_rule(owners: set[int] | None, user: Any) -> Any:
    """SQL: the tickets ``user`` may see (module docstring). ``owners``: the visible owner
    ids of their customer scope (None: every owner)."""
    if user is None or getattr(user, "is_anonymous", True):
        return Ticket.id.is_(None)
    if is_admin(user):
        return true()
    scopes = ticket_scopes(user)
    parts = [Ticket.assignee_id == user.id, Ticket.created_by_fk == user.id]
    if TICKET_SCOPE_CUSTOMER in scopes:
        # every customer's tickets for a role that sees every owner (Read Only too): still
        # never someone else's internal problem report (000 附录3: the reporter and the admins)
        parts.append(and_(Ticket.customer_id.isnot(None), data_scope.via_customer(Ticket, owners)))
    if TICKET_SCOPE_TEAM in scopes:
        teams = sorted(team_ids(user))
        # the general queue: customers' tickets nobody works yet and no transfer rule placed in a team
        parts.append(and_(Ticket.team_id.is_(None), Ticket.assignee_id.is_(None), Ticket.customer_id.isnot(None)))
        if teams:
            parts.append(Ticket.team_id.in_(teams))
    return or_(*parts)


def may_see_customer(person: Any, customer_id: int | None) -> bool:
    """Whether ``person`` may see the customer (None: no customer, anyone may)."""
    if customer_id is None:
        return True
    stmt = select(Customer.id).where(Customer.id == customer_id, data_scope.scope_clause(person, Customer))
    return db.session.execute(stmt).first() is not None


# --- values ---------------------------------------------------------------------------

def fold(text: Any) -> str:
    """Text as compared by rules and aliases: full-width to half-width (NFKC), case-folded."""
    return unicodedata.normalize("NFKC", validation.clean_block(text)).casefold()


def channel_code(raw: Any) -> str:
    """A channel from its code or an alias in either language (电话 -> phone); empty ->
    phone. ``ValueError`` naming the choices otherwise."""
    text = fold(raw)
    if not text:
        return "phone"
    for code, aliases in CHANNEL_ALIASES.items():
        if text == code or text in aliases or text == fold(CHANNELS[code]):
            return code
    raise ValueError(str(_l("Pick one of: %(kinds)s.", kinds=", ".join(str(v) for v in CHANNELS.values()))))


def _optional_text(raw: Any, limit: int, block: bool = True) -> str | None:
    text = (validation.clean_block(raw) if block else validation.clean_line(raw)) or None
    if text is not None and len(text) > limit:
        raise ValueError(str(_l("At most %(n)d characters.", n=limit)))
    return text


def _clean_fields(item: Ticket) -> dict[str, str]:
    errors: dict[str, str] = {}
    steps = {
        "channel": lambda: channel_code(item.channel),
        "subject": lambda: validation.require_text(item.subject, SUBJECT_LIMIT),
        "category": lambda: _optional_text(item.category, CATEGORY_LIMIT, block=False),
        "description": lambda: _optional_text(item.description, TEXT_LIMIT),
        "steps": lambda: _optional_text(item.steps, TEXT_LIMIT),
    }
    for name, step in steps.items():
        try:
            setattr(item, name, step())
        except ValueError as exc:
            errors[name] = str(exc)
    return errors


#: relation -> its foreign-key column where the names differ
_COLUMN_OF = {"ticket_type": "type_id"}


def rel_id(item: Ticket, relation: str) -> int | None:
    """Id the ticket points to now through ``relation``, whether the relation or its column was set."""
    from sqlalchemy import inspect

    if inspect(item).attrs[relation].history.has_changes():
        target = getattr(item, relation)
        return target.id if target is not None else None
    return getattr(item, _COLUMN_OF.get(relation, f"{relation}_id"))


def _entry(item: Ticket, relation: str, model: type) -> Any:
    pk = rel_id(item, relation)
    return db.session.get(model, pk) if pk is not None else None


def _settle_dictionaries(item: Ticket, before: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    kind = _entry(item, "ticket_type", TicketType)
    if kind is None:
        errors["ticket_type"] = str(_l("This field is required."))
    if rel_id(item, "priority") is None:
        item.priority = db.session.scalar(select(Priority).where(Priority.code == "medium"))
    for name, entry in (("ticket_type", kind), ("priority", _entry(item, "priority", Priority))):
        try:
            validation.check_choice(entry, before.get(name))
        except ValueError as exc:
            errors[name] = str(exc)
    return errors


def is_internal(item: Ticket) -> bool:
    """Whether the ticket is an internal problem report (type 系统问题)."""
    kind = _entry(item, "ticket_type", TicketType)
    return kind is not None and kind.code == INTERNAL_TYPE


def _settle_customer(item: Ticket, user: Any) -> dict[str, str]:
    """Customer live and in scope (not required for an internal problem report), the
    contact of that customer, the feedback of that customer."""
    from app.services.follow_ups import customer_problem

    customer_id = rel_id(item, "customer")
    if customer_id is None and is_internal(item):
        if rel_id(item, "contact") is not None:
            return {"contact": str(_l("An internal problem report has no contact."))}
        return {}
    problem = customer_problem(customer_id, user)
    if problem:
        return {"customer": problem}
    contact = _entry(item, "contact", Contact)
    if contact is not None and contact.customer_id != customer_id:
        return {"contact": str(_l("The contact must belong to the ticket's customer."))}
    feedback = _entry(item, "feedback", ServiceFeedback)
    if feedback is not None and feedback.customer_id != customer_id:
        return {"feedback": str(_l("The feedback must belong to the ticket's customer."))}
    return {}


def check_assignee(user: Any, assignee_id: int, customer_id: int | None) -> CrmUser:
    """A ticket's new assignee: an active user in the writer's scope (``RuleForbidden``
    out of it, as owners) who may see the ticket's customer (``RuleViolation``)."""
    try:
        records.check_owner(user, assignee_id)
    except RuleForbidden as exc:
        raise RuleForbidden({"assignee": str(exc.errors.get("owner", exc))}) from None
    except RuleViolation as exc:
        raise RuleViolation({"assignee": str(exc.errors.get("owner", exc))}) from None
    person = db.session.get(CrmUser, assignee_id)
    if not may_see_customer(person, customer_id):
        raise RuleViolation({"assignee": str(_l("%(name)s cannot see this record; pick someone who can.",
                                                name=person.get_full_name()))})
    return person


# --- transfer rules (转派规则) ----------------------------------------------------------

@dataclass(frozen=True)
class Routing:
    """Where a new ticket goes: ``team`` (None: the general queue), ``assignee`` (None:
    the team's queue) and the ``rule`` that decided (None: no rule matched)."""

    team: Department | None
    assignee: CrmUser | None
    rule: TransferRule | None


def rule_matches(rule: TransferRule, item: Ticket) -> bool:
    """Whether every condition the rule sets holds: the type; the category (case/width
    folded); any one keyword (one a line) in the subject or description, folded."""
    if rule.ticket_type_id is not None and rule.ticket_type_id != rel_id(item, "ticket_type"):
        return False
    if rule.ticket_type_id is None and is_internal(item):
        return False  # someone's problem report goes only where a rule for that type sends it
    if rule.category and fold(rule.category) != fold(item.category):
        return False
    words = [fold(word) for word in (rule.keywords or "").splitlines() if fold(word)]
    if words:
        text = fold(item.subject) + "\n" + fold(item.description)
        return any(word in text for word in words)
    return True


def member_ids(team_id: int, customer_id: int | None = None) -> list[int]:
    """Ids (ascending) of the users of that department who may work its tickets: active,
    not expired, with a role that may write tickets (``can_write`` on Ticket; a read-only
    member of the team never gets one) and who may see the ticket's customer (a rep of
    another region is no one to route it to)."""
    from app.extensions import appbuilder

    today = clock.local_today()
    people = db.session.scalars(select(CrmUser).where(
        CrmUser.department_id == team_id, CrmUser.active.is_(True),
        or_(CrmUser.expires_on.is_(None), CrmUser.expires_on >= today)).order_by(CrmUser.id))
    allowed: dict[tuple[int, ...], bool] = {}
    chosen = []
    for person in people:
        roles = tuple(sorted(role.id for role in person.roles))
        if roles not in allowed:
            allowed[roles] = bool(roles) and appbuilder.sm.exist_permission_on_roles(
                TICKET_PERMISSION, "can_write", list(roles))
        if allowed[roles] and may_see_customer(person, customer_id):
            chosen.append(person.id)
    return chosen


def _locked_cursor(rule_id: int) -> int | None:
    """The rule's round-robin cursor under a lock lasting until the transaction ends
    (PostgreSQL: FOR UPDATE; SQLite: a no-op UPDATE takes the write lock first), as
    ``assignment._locked_cursor``."""
    session = db.session
    column = select(TransferRule.cursor_user_id).where(TransferRule.id == rule_id)
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(column.with_for_update()).scalar()
    session.execute(update(TransferRule).where(TransferRule.id == rule_id)
                    .values(cursor_user_id=TransferRule.cursor_user_id).execution_options(synchronize_session=False))
    return session.execute(column).scalar()


def _round_robin(rule: TransferRule, pool: list[int]) -> int:
    from app.services.assignment import next_in_turn

    chosen = next_in_turn(pool, _locked_cursor(rule.id))
    db.session.execute(update(TransferRule).where(TransferRule.id == rule.id).values(cursor_user_id=chosen)
                       .execution_options(synchronize_session=False))
    db.session.expire(rule, ["cursor_user_id"])
    return chosen


def _least_loaded(pool: list[int]) -> int:
    """The member with the fewest open tickets (ties: the lowest id)."""
    load = dict(db.session.execute(select(Ticket.assignee_id, func.count(Ticket.id)).where(
        Ticket.assignee_id.in_(pool), Ticket.status.in_(OPEN_STATUSES)).group_by(Ticket.assignee_id)).all())
    return min(pool, key=lambda uid: (load.get(uid, 0), uid))


def route(item: Ticket) -> Routing:
    """The first active rule (by ``position``, then id) matching the ticket decides its
    team, then a member by the rule's strategy (``round_robin``: the next after the
    cursor, locked; ``least_loaded``; ``none``: the team's queue). No member: the team's
    queue; members, but none who may see the ticket's customer: the rule is passed over
    (a ticket is never parked where nobody can work it). No rule: the general queue (no
    team, nobody)."""
    with db.session.no_autoflush:
        rules = db.session.scalars(select(TransferRule).where(TransferRule.active.is_(True))
                                   .order_by(TransferRule.position, TransferRule.id))
        customer_id = rel_id(item, "customer")
        for rule in rules:
            if not rule_matches(rule, item):
                continue
            pool = member_ids(rule.team_id, customer_id) if rule.strategy != "none" else []
            if not pool and customer_id is not None and rule.strategy != "none" and member_ids(rule.team_id):
                continue  # nobody of that team may see this customer: not theirs to work, try the next rule
            chosen = None
            if pool:
                chosen = _round_robin(rule, pool) if rule.strategy == "round_robin" else _least_loaded(pool)
            return Routing(rule.team, db.session.get(CrmUser, chosen) if chosen else None, rule)
    return Routing(None, None, None)


# --- log ------------------------------------------------------------------------------

def log(item: Ticket, user: Any, kind: str, **fields: Any) -> TicketLog:
    """Append one step to the ticket's process log (now, by ``user``)."""
    row = TicketLog(ticket=item, at=clock.utc_now(), user_id=getattr(user, "id", None), kind=kind, **fields)
    db.session.add(row)
    return row


def tell_assignee(item: Ticket, writer: Any) -> None:
    """Notify the ticket's assignee that it is theirs (not when they took it themselves)."""
    if item.assignee_id is None or item.assignee_id == getattr(writer, "id", None):
        return
    notifications.notify("ticket_assigned", [item.assignee_id], record=item, params={
        "code": item.code, "subject": item.subject, "by": mentions._full_name(writer) if writer else ""})


def _first_response(item: Ticket, user: Any, at: datetime) -> None:
    """The first note or status change by someone other than the reporter, once the ticket
    has left ``new``, is its first response (``sla.responded``)."""
    if item.first_response_at is None and item.status != NEW and getattr(user, "id", None) != item.created_by_fk:
        sla.responded(item, at)


# --- use cases ------------------------------------------------------------------------

def flush(item: Ticket) -> None:
    """Flush the ticket's changes; a concurrent save of the same ticket in between (the
    version moved under us) is ``StaleRecord`` (409), never a 500."""
    records.flush(_l("Someone else changed this ticket just now: reload it and try again."))


def save_ticket(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> Ticket:
    """Add (``pk`` None) or edit a ticket: the use case behind the form, the API, the
    importer, a complaint's "open a ticket" (``feedback``) and 问题反馈 (no customer, type
    internal, channel internal).

    ``values``: fields of ``EDITABLE`` (related records loaded or as ids through the
    relation's ``*_id``; ``channel`` a code or alias). Rules: customer live and in scope
    (except internal), contact/feedback of that customer, subject required, type required,
    priority default medium. A new ticket without assignee and team is routed by the
    transfer rules (``route``); its SLA starts (``sla.start``); the log says created (and
    assigned); the assignee is told (``ticket_assigned``). An edit cannot change the
    assignee or team (``transfer`` does, with a reason); a new type or priority re-runs
    ``sla.start`` from the creation instant, keeping the paused minutes. ``NotFound``,
    ``StaleRecord``, ``RuleViolation``/``RuleForbidden`` (field -> message). Flushes.
    """
    is_new = pk is None
    item = Ticket(status=NEW, paused_minutes=0, reopen_count=0) if is_new else records.load(Ticket, pk, user)
    if not is_new:
        records.check_version(item, version)
    before = {name: getattr(item, f"{column}_id") for name, column in
              (("ticket_type", "type"), ("priority", "priority"), ("assignee", "assignee"), ("team", "team"))}
    with db.session.no_autoflush:
        records.assign(item, values, EDITABLE)
        errors = _clean_fields(item)
        errors.update(_settle_dictionaries(item, before))
        if "ticket_type" not in errors:
            errors.update(_settle_customer(item, user))
        if errors:
            raise RuleViolation(errors)
        _settle_people(item, user, is_new, before)
    return _created(item, user) if is_new else _edited(item, user, before)


def _settle_people(item: Ticket, user: Any, is_new: bool, before: dict[str, Any]) -> None:
    assignee_id, team_id = rel_id(item, "assignee"), rel_id(item, "team")
    if not is_new:
        if (assignee_id, team_id) != (before["assignee"], before["team"]):
            raise RuleViolation({"assignee": str(_l("Use Transfer (with a reason) to change the assignee or team."))})
        return
    if team_id is not None and db.session.get(Department, team_id) is None:
        raise RuleViolation({"team": str(_l("Record not found."))})
    if assignee_id is not None:
        check_assignee(user, assignee_id, rel_id(item, "customer"))


def _created(item: Ticket, user: Any) -> Ticket:
    routed = None
    if rel_id(item, "assignee") is None and rel_id(item, "team") is None:
        routed = route(item)
        item.team, item.assignee, item.transfer_rule = routed.team, routed.assignee, routed.rule
    if rel_id(item, "assignee") is not None:
        item.status = ASSIGNED
    item.created_by_fk = getattr(user, "id", None)  # the reporter, whoever calls (a job, the API)
    db.session.add(item)
    flush(item)
    now = clock.utc_now()
    sla.start(item, now)
    note = str(_l("Transfer rule %(name)s", name=routed.rule.name)) if routed and routed.rule else None
    log(item, user, "created", to_status=item.status, to_user_id=item.assignee_id, to_team_id=item.team_id, note=note)
    if item.assignee_id is not None:
        log(item, user, "assigned", to_user_id=item.assignee_id, to_team_id=item.team_id, note=note)
        tell_assignee(item, user)
    flush(item)
    return item


def _edited(item: Ticket, user: Any, before: dict[str, Any]) -> Ticket:
    if (rel_id(item, "ticket_type"), rel_id(item, "priority")) != \
            (before["ticket_type"], before["priority"]):
        paused_minutes, paused_since = item.paused_minutes, item.paused_since
        flush(item)
        sla.start(item, item.created_on or clock.utc_now())
        item.paused_minutes, item.paused_since = paused_minutes, paused_since
    flush(item)
    return item


def _load_checked(pk: Any, user: Any, version: Any) -> Ticket:
    item = records.load(Ticket, pk, user)
    if version not in (None, ""):
        records.check_version(item, version)
    return item


def transfer(pk: Any, user: Any, *, assignee: Any = None, team: Any = None, reason: str | None = None,
             version: Any = None) -> Ticket:
    """Manual transfer (转派): to ``assignee`` and/or ``team`` (users / departments or
    their ids). A reason is required (kept in the log with the previous and the new
    assignee and team) — except taking an unassigned ticket yourself ("assign to me").
    The new assignee: active, in the writer's scope, able to see the ticket's customer; they
    are told. A team without an assignee puts the ticket back in that team's queue.
    ``NotFound``, ``StaleRecord``, 409 on a closed ticket, ``RuleViolation``. Flushes."""
    item = _load_checked(pk, user, version)
    assignee_id = _id(assignee)
    team_id = _id(team)
    if item.status == CLOSED:
        raise RuleViolation(str(_l("%(code)s is closed; reopen it first.", code=item.code)), status=409)
    if assignee_id is None and team_id is None:
        raise RuleViolation({"assignee": str(_l("Pick an assignee or a team."))})
    text = validation.clean_block(reason) or None
    taking = item.assignee_id is None and assignee_id == user.id
    if text is None and not taking:
        raise RuleViolation({"reason": str(_l("A transfer needs a reason."))})
    if text is not None and len(text) > TEXT_LIMIT:
        raise RuleViolation({"reason": str(_l("At most %(n)d characters.", n=TEXT_LIMIT))})
    if team_id is not None and db.session.get(Department, team_id) is None:
        raise RuleViolation({"team": str(_l("Record not found."))})
    if assignee_id is not None:
        check_assignee(user, assignee_id, item.customer_id)
    previous = item.assignee_id
    item.assignee_id = assignee_id
    if team_id is not None:
        item.team_id = team_id
    if item.status in (NEW, ASSIGNED):
        item.status = ASSIGNED if assignee_id is not None else NEW
    log(item, user, "assigned" if taking else "transferred", from_user_id=previous, to_user_id=assignee_id,
        to_team_id=item.team_id, note=text)
    flush(item)
    if assignee_id is not None and assignee_id != previous:
        tell_assignee(item, user)
    return item


def _id(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if hasattr(value, "id"):
        return value.id
    from app.security.request_bounds import db_int

    number = db_int(value)
    if number is None:
        raise RuleViolation(str(_l("Record not found.")), status=404)
    return number


def change_status(pk: Any, user: Any, to_status: str, *, note: str | None = None, resolution: str | None = None,
                  version: Any = None) -> Ticket:
    """Move a ticket along ``TRANSITIONS`` (``to_status`` a status, or ``reopen``).

    Waiting pauses the SLA clock (``sla.pause``), leaving waiting resumes it; resolved
    needs a ``resolution`` (or the stored one) and stops the resolution clock
    (``sla.resolved``), telling the customer's owner (the reporter for an internal
    ticket); resolved / closed -> in_progress is a reopen (``reopen_count`` + 1,
    ``sla.reopened``); starting an unassigned ticket assigns it to ``user``. An illegal
    move is 409 naming the allowed ones. The first change by someone other than the
    reporter is the first response. Logged with ``note``. Flushes."""
    item = _load_checked(pk, user, version)
    target = IN_PROGRESS if to_status == "reopen" else to_status
    if target not in STATUSES:
        raise RuleViolation({"status": str(_l("Unknown status."))})
    current = item.status
    if target not in TRANSITIONS.get(current, ()):
        allowed = ", ".join(str(STATUSES[s]) for s in TRANSITIONS.get(current, ())) or "-"
        raise RuleViolation({"status": str(_l("A ticket that is %(now)s cannot become %(to)s (allowed: %(allowed)s).",
                                              now=STATUSES[current], to=STATUSES[target], allowed=allowed))},
                            status=409)
    text = _checked_note(note)
    if target == ASSIGNED and item.assignee_id is None:
        raise RuleViolation({"assignee": str(_l("Assign the ticket to someone first."))})
    if target == RESOLVED:
        item.resolution = _resolution(resolution, item.resolution)
    now = clock.utc_now()
    if target == IN_PROGRESS and item.assignee_id is None:  # whoever starts an unassigned ticket takes it
        check_assignee(user, user.id, item.customer_id)
        item.assignee_id = user.id
        log(item, user, "assigned", to_user_id=user.id, to_team_id=item.team_id)
    if current == WAITING:
        sla.resume(item, now)
    item.status = target
    kind = _apply_status(item, current, target, now)
    log(item, user, kind, from_status=current, to_status=target,
        note=item.resolution if kind == "resolved" and text is None else text)
    _first_response(item, user, now)
    flush(item)
    if target == RESOLVED:
        _tell_resolved(item, user)
    return item


def _apply_status(item: Ticket, current: str, target: str, now: datetime) -> str:
    """The SLA and stamps of one move; the log kind."""
    if target == WAITING:
        sla.pause(item, now)
        return "status"
    if target == RESOLVED:
        item.resolved_at = now
        sla.resolved(item, now)
        return "resolved"
    if target == CLOSED:
        item.closed_at = now
        return "status"
    if current in (RESOLVED, CLOSED):
        item.reopen_count = (item.reopen_count or 0) + 1
        item.resolved_at = item.closed_at = None
        sla.reopened(item, now)
        return "reopened"
    return "status"


def _checked_note(note: Any) -> str | None:
    text = validation.clean_block(note) or None
    if text is not None and len(text) > TEXT_LIMIT:
        raise RuleViolation({"note": str(_l("At most %(n)d characters.", n=TEXT_LIMIT))})
    return text


def _resolution(raw: Any, stored: str | None) -> str:
    text = validation.clean_block(raw) or validation.clean_block(stored) or None
    if text is None:
        raise RuleViolation({"resolution": str(_l("Describe the resolution."))})
    if len(text) > TEXT_LIMIT:
        raise RuleViolation({"resolution": str(_l("At most %(n)d characters.", n=TEXT_LIMIT))})
    return text


def _tell_resolved(item: Ticket, user: Any) -> None:
    who = item.customer.owner_id if item.customer is not None else item.created_by_fk
    if who is None or who == getattr(user, "id", None):
        return
    notifications.notify("ticket_resolved", [who], record=item, params={
        "code": item.code, "subject": item.subject, "by": mentions._full_name(user)})


def add_note(pk: Any, user: Any, note: str | None) -> TicketLog:
    """记录处理过程: one note in the ticket's log (required, at most ``TEXT_LIMIT``
    characters). People @mentioned who may see the ticket are told; the first note by
    someone other than the reporter (ticket not new) is the first response. Flushes."""
    item = records.load(Ticket, pk, user)
    text = _checked_note(note)
    if text is None:
        raise RuleViolation({"note": str(_l("This field is required."))})
    row = log(item, user, "note", note=text)
    _first_response(item, user, clock.utc_now())
    flush(item)
    mentions.notify_mentions(text, item, user, lambda person: data_scope.can_see(person, item), item.code)
    return row


def rate(pk: Any, user: Any, satisfaction: Any, comment: str | None = None) -> Ticket:
    """满意度 1-5 with an optional comment, only on a resolved or closed ticket. Rating
    again replaces the rating (both audited; logged). ``RuleViolation`` for a value out
    of 1-5 (422) or an open ticket (409). Flushes."""
    item = records.load(Ticket, pk, user)
    try:
        score = int(str(satisfaction).strip())
    except (TypeError, ValueError):
        score = 0
    if not 1 <= score <= 5 or isinstance(satisfaction, bool) or isinstance(satisfaction, float):
        raise RuleViolation({"satisfaction": str(_l("Enter a number from %(low)d to %(high)d.", low=1, high=5))})
    if item.status not in (RESOLVED, CLOSED):
        raise RuleViolation({"satisfaction": str(_l("A ticket is rated once it is resolved."))}, status=409)
    text = validation.clean_block(comment) or None
    if text is not None and len(text) > TEXT_LIMIT:
        raise RuleViolation({"comment": str(_l("At most %(n)d characters.", n=TEXT_LIMIT))})
    previous = item.satisfaction
    item.satisfaction, item.satisfaction_comment, item.rated_at = score, text, clock.utc_now()
    note = f"{score}/5" + (f" ({previous}/5 →)" if previous is not None else "") + (f": {text}" if text else "")
    log(item, user, "rated", note=note)
    flush(item)
    if previous is not None:
        audit.record("rate", item, {"from": previous, "to": score}, reason=str(_l("Rating replaced")))
    return item


# --- queue ----------------------------------------------------------------------------

TABS = {"mine": _l("My open"), "team": _l("My team"), "unassigned": _l("Unassigned"), "breached": _l("Breached"),
        "all": _l("All in scope")}
PAGE_SIZE = 50


def queue(user: Any, tab: str = "mine", page: int = 1, per_page: int = PAGE_SIZE) -> tuple[list[Ticket], int]:
    """One page of the ticket queue in ``user``'s scope: ``tab`` of ``TABS`` (mine: my open
    tickets; team: open tickets of my department tree; unassigned: open without assignee;
    breached: open with a breached deadline; all: every ticket in scope), most urgent first
    (resolution deadline, then id). Returns (tickets with customer, type, priority,
    assignee loaded; total). ``page`` from 1."""
    stmt = select(Ticket).where(data_scope.scope_clause(user, Ticket))
    if tab != "all":
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
    if tab == "mine":
        stmt = stmt.where(Ticket.assignee_id == user.id)
    elif tab == "team":
        teams = sorted(team_ids(user))
        stmt = stmt.where(Ticket.team_id.in_(teams) if teams else Ticket.id.is_(None))
    elif tab == "unassigned":
        stmt = stmt.where(Ticket.assignee_id.is_(None))
    elif tab == "breached":
        stmt = stmt.where(or_(Ticket.response_breached.is_(True), Ticket.resolve_breached.is_(True)))
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    page = max(1, page)
    rows = db.session.scalars(stmt.options(
        joinedload(Ticket.customer), joinedload(Ticket.ticket_type), joinedload(Ticket.priority),
        joinedload(Ticket.assignee)).order_by(Ticket.resolve_due_at.is_(None), Ticket.resolve_due_at, Ticket.id)
        .limit(per_page).offset((page - 1) * per_page)).unique().all()
    return list(rows), total


def transfer_choices(user: Any, limit: int = 500) -> tuple[list[CrmUser], list[Department]]:
    """Whom ``user`` may hand a ticket to (active users in their scope, by name, at most
    ``limit``) and the departments (teams), for the ticket page's transfer form. Whether
    the chosen one may take this ticket is ``transfer``'s answer."""
    owners = data_scope.visible_owner_ids(user)
    people = select(CrmUser).where(CrmUser.active.is_(True), data_scope.owner_in(CrmUser.id, owners)) \
        .order_by(CrmUser.first_name, CrmUser.last_name, CrmUser.id).limit(limit)
    return list(db.session.scalars(people)), list(db.session.scalars(select(Department).order_by(Department.name)))


def for_customer(user: Any, customer_id: int, limit: int = 50) -> list[Ticket]:
    """The tickets of one customer that ``user`` may see (the customer page's tab): open ones
    first, then newest; type, priority and assignee loaded."""
    stmt = select(Ticket).where(Ticket.customer_id == customer_id, data_scope.scope_clause(user, Ticket)).options(
        joinedload(Ticket.ticket_type), joinedload(Ticket.priority), joinedload(Ticket.assignee)).order_by(
        Ticket.status.in_((RESOLVED, CLOSED)), Ticket.id.desc()).limit(limit)
    return list(db.session.scalars(stmt).unique())


#: Steps of the process log on one page of the ticket.
LOG_PAGE = 200


@dataclass(frozen=True)
class LogPage:
    """One page of a ticket's process log, oldest first: ``rows``, ``page`` (1-based),
    ``pages`` and ``total`` steps."""

    rows: list[TicketLog]
    page: int
    pages: int
    total: int


def log_rows(item: Ticket, page: Any = None, per_page: int = LOG_PAGE) -> LogPage:
    """A page of the ticket's process log, oldest first, people loaded. ``page``: 1-based;
    None or anything not a page number is the last page (the newest steps); past the end
    is the last page too. A log of thousands of steps never renders at once."""
    total = db.session.scalar(select(func.count(TicketLog.id)).where(TicketLog.ticket_id == item.id)) or 0
    pages = max(1, -(-total // per_page))
    number = db_int(page) if page is not None else None
    number = pages if number is None or number < 1 or number > pages else number
    rows = list(db.session.scalars(select(TicketLog).where(TicketLog.ticket_id == item.id).options(
        joinedload(TicketLog.user), joinedload(TicketLog.from_user), joinedload(TicketLog.to_user),
        joinedload(TicketLog.to_team)).order_by(TicketLog.id).offset((number - 1) * per_page).limit(per_page))
        .unique())
    return LogPage(rows, number, pages, total)


def sla_state(item: Ticket, at: datetime | None = None) -> Any:
    """``sla.state`` of the ticket now (None while the SLA clock is not available)."""
    try:
        return sla.state(item, at or clock.utc_now())
    except NotImplementedError:
        return None


# --- demo -----------------------------------------------------------------------------

DEMO_SUBJECTS = (("consult", "产品价格咨询"), ("complaint", "发货延迟投诉"), ("after_sales", "设备无法开机"),
                 ("consult", "如何导出报表"), ("after_sales", "系统登录报错"), ("complaint", "服务态度投诉"))


def build_demo(session: Session, owners: list[Any], count: int = 36) -> int:
    """Demo tickets on the first customers of each owner (types and priorities in turn,
    some in progress, waiting, resolved and rated), each with its log. Flushes."""
    kinds = {t.code: t for t in session.scalars(select(TicketType))}
    priorities = list(session.scalars(select(Priority).order_by(Priority.id)))
    customers = session.scalars(select(Customer).where(Customer.archived_at.is_(None)).order_by(Customer.id)
                                .limit(count)).all()
    made, demo = 0, []
    # every other ticket is worked by customer service (in its team), the rest by the customer's owner
    agents = [person for person in owners if ticket_scopes(person) == {TICKET_SCOPE_TEAM}]
    for index, customer in enumerate(customers):
        code, subject = DEMO_SUBJECTS[index % len(DEMO_SUBJECTS)]
        owner = agents[index // 2 % len(agents)] if agents and index % 2 == 0 else customer.owner
        created = clock.utc_now() - timedelta(hours=3 * index)
        status = (NEW, ASSIGNED, IN_PROGRESS, WAITING, RESOLVED, CLOSED)[index % 6]
        item = Ticket(customer=customer, channel=list(CHANNELS)[index % 4], ticket_type=kinds.get(code),
                      priority=priorities[index % len(priorities)] if priorities else None, subject=subject,
                      description=f"{customer.name}: {subject}", status=status, created_on=created,
                      assignee=owner if status != NEW else None, paused_minutes=0, reopen_count=0,
                      team=owner.department if owner in agents and status != NEW else None,
                      resolution="已远程处理" if status in (RESOLVED, CLOSED) else None,
                      satisfaction=5 - index % 3 if status == CLOSED else None)
        session.add(item)
        session.add(TicketLog(ticket=item, at=created, kind="created", to_status=status,
                              to_user_id=getattr(owner, "id", None)))
        if status in (RESOLVED, CLOSED):
            session.add(TicketLog(ticket=item, at=created + timedelta(hours=2), kind="resolved",
                                  from_status=IN_PROGRESS, to_status=RESOLVED, note="已远程处理"))
        made += 1
        demo.append((item, created))
    session.flush()
    for item, created in demo:
        try:
            sla.start(item, created)
        except NotImplementedError:  # the SLA clock is not available: no deadlines
            break
    session.flush()
    return made


def _search(text: str) -> Any:
    like = f"%{text}%"
    return Ticket.code.ilike(like) | Ticket.subject.ilike(like)


for _event in (
    notifications.Event("ticket_assigned", _l("Ticket assigned to you"),
                        _l("%(by)s gave you ticket %(code)s %(subject)s."), (notifications.IN_APP, notifications.EMAIL)),
    notifications.Event("ticket_resolved", _l("Ticket resolved"),
                        _l("Ticket %(code)s %(subject)s was resolved by %(by)s.")),
):
    notifications.declare_event(_event)


TICKET = declare(RecordType(
    name="ticket", model=Ticket, label=_l("Ticket"), plural=_l("Tickets"), plural_en="Tickets",
    permission=TICKET_PERMISSION, scope=scope_rule, code_prefix=PREFIX,
    editable=EDITABLE, save=save_ticket, delete=None,
    list_columns=("code", "customer", "subject", "ticket_type", "priority", "status", "assignee", "team",
                  "resolve_due_at"),
    show_columns=("code", "customer", "contact", "channel", "ticket_type", "priority", "category", "subject",
                  "description", "steps", "assignee", "team", "status", "resolution", "satisfaction",
                  "satisfaction_comment", "reopen_count", "feedback", "transfer_rule", "response_due_at",
                  "resolve_due_at", "first_response_at", "resolved_at", "closed_at"),
    search_columns=("code", "customer", "subject", "ticket_type", "priority", "status", "assignee", "team",
                    "channel", "category"),
    order_columns=("code", "status", "resolve_due_at", "changed_on"),
    labels={"customer": _l("Customer"), "contact": _l("Contact"), "channel": _l("Channel"),
            "ticket_type": _l("Type"), "priority": _l("Priority"), "category": _l("Category"),
            "subject": _l("Subject"), "description": _l("Description"), "steps": _l("Steps to reproduce"),
            "assignee": _l("Assignee"), "team": _l("Team"), "status": _l("Status"), "resolution": _l("Resolution"),
            "satisfaction": _l("Satisfaction"), "satisfaction_comment": _l("Rating comment"),
            "reopen_count": _l("Reopened"), "feedback": _l("Feedback"), "transfer_rule": _l("Transfer rule"),
            "response_due_at": _l("Response due"), "resolve_due_at": _l("Resolution due"),
            "first_response_at": _l("First response"), "resolved_at": _l("Resolved at"),
            "closed_at": _l("Closed at")},
    descriptions={"channel": _l("phone, email, online, in_person or internal"),
                  "assignee": _l("Empty: the transfer rules decide the team and the assignee."),
                  "description": _l("Type @user name to tell a colleague who can see the ticket.")},
    fields=(
        ImportField("code", _l("Ticket code"), "工单编号", ("code", "ticket no", "编号", "工单号"), max_length=20,
                    note=_l("Leave empty for new tickets: the CRM numbers them.")),
        ImportField("customer", _l("Customer code"), "客户编号", ("customer", "customer no", "客户代码", "客户"),
                    CUSTOMER),
        ImportField("channel", _l("Channel"), "渠道", ("channel", "来源渠道", "渠道"), max_length=16,
                    note=_l("phone, email, online, in_person or internal (电话, 邮件, 在线, 现场, 内部).")),
        ImportField("ticket_type", _l("Type"), "工单类型", ("type", "ticket type", "类型"), DICT, required=True,
                    dictionary=TicketType),
        ImportField("priority", _l("Priority"), "优先级", ("priority", "优先级"), DICT, dictionary=Priority),
        ImportField("category", _l("Category"), "问题分类", ("category", "分类"), max_length=CATEGORY_LIMIT),
        ImportField("subject", _l("Subject"), "主题", ("subject", "title", "标题", "问题"), required=True,
                    max_length=SUBJECT_LIMIT),
        ImportField("description", _l("Description"), "问题描述", ("description", "描述", "详细描述"),
                    max_length=TEXT_LIMIT),
        ImportField("assignee", _l("Assignee"), "处理人", ("assignee", "处理人", "负责人"), USER,
                    note=_l("Leave empty to route by the transfer rules.")),
    ),
    roles={"Sales Rep": "read|write|export", "Sales Manager": "read|write|export",
           "Customer Service": "read|write|export", "Read Only": "read"},
    menu_category="Service", menu_icon="fa-ticket",
    search=_search,
    demo=build_demo,
))
