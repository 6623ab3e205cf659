"""SLA clock (issue 16): working calendars, policies, deadlines, warnings and escalation.

Manual rules: 000 §二(二) 服务工单流程 ("高优先级工单24小时内响应": every ticket has a first
response and a resolution deadline by type x priority), 000 附录3 (问题反馈: internal
problems answered within 15 minutes).

Business time
    A ``WorkCalendar`` (working weekdays, ``day_start``..``day_end`` less the lunch break,
    in the CRM's zone) with its ``CalendarDay`` exceptions (holidays, make-up working days
    调休) becomes a ``BusinessCalendar``: a table of cumulative working seconds per day.
    An instant maps to its *business second* (working seconds since the table's first day);
    adding minutes or measuring between two instants is arithmetic on those numbers plus a
    binary search, so recomputing 200,000 tickets never touches the database per ticket.
    A policy with ``business_hours=False`` counts round the clock (``calendar=None``).

The contract the tickets module relies on: every function takes aware UTC instants and
sets the ticket's SLA columns (``sla_policy_id``, ``response_due_at``, ``resolve_due_at``,
``*_warn_at``, ``paused_since``, ``paused_minutes``, ``*_warned``, ``*_breached``); none
commits.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from flask import g, has_request_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, bindparam, delete, insert, or_, select, update

from app import clock, scheduler
from app.extensions import db
from app.models.org import Department
from app.models.service import CalendarDay, Priority, SlaPolicy, Ticket, TicketLog, TicketType, WorkCalendar
from app.services import audit, notifications
from app.services.errors import RuleViolation
from app.services.notifications import EMAIL, IN_APP, Event

DAY = 86_400
#: Ticket statuses whose resolution clock no longer runs.
DONE = ("resolved", "closed")
#: How many days a calendar table covers past the latest instant that needed it.
SPAN_DAYS = 800
#: the furthest a deadline is searched for (days of table): a calendar with no working
#: time in ten years is refused instead of searched for ever
MAX_TABLE_DAYS = 366 * 40
#: The first day a calendar table counts from (instants before it count as its start).
EPOCH = date(2000, 1, 1)
#: Seeded names are data in Chinese (the manuals' words), like the other seeded records.
DEFAULT_CALENDAR = "标准工作日"
#: Recompute chunk (tickets per flush).
CHUNK = 2000


# --- business time ------------------------------------------------------------------------


def _seconds(value: time | None) -> int | None:
    return None if value is None else value.hour * 3600 + value.minute * 60 + value.second


class BusinessCalendar:
    """A calendar's day table: working segments of a day (seconds since local midnight),
    working ISO weekdays, exceptions (date -> "holiday" | "workday"); cumulative working
    seconds from ``base`` (a date) built on demand. Immutable rules, grown table."""

    def __init__(self, weekdays: str, day_start: time, day_end: time, lunch_start: time | None,
                 lunch_end: time | None, exceptions: dict[date, str], zone: Any) -> None:
        start, end = _seconds(day_start), _seconds(day_end)
        lunch = (_seconds(lunch_start), _seconds(lunch_end))
        if lunch[0] is not None and lunch[1] is not None and start < lunch[0] < lunch[1] < end:
            self.segments = [(start, lunch[0]), (lunch[1], end)]
        else:
            self.segments = [(start, max(start, end))]
        self.day_seconds = sum(e - s for s, e in self.segments)
        self.weekdays = {int(c) for c in weekdays if c.isdigit()}
        self.exceptions = dict(exceptions)
        self.zone = zone
        #: positions count from this fixed day (earlier instants clamp to it), so a position
        #: taken before the table grows stays valid; ``cum`` is replaced whole (threads).
        self.base = EPOCH
        self.cum: list[int] = [0]

    def works(self, day: date) -> bool:
        """Whether ``day`` is a working day (an exception wins over the weekday)."""
        kind = self.exceptions.get(day)
        if kind is not None:
            return kind == "workday"
        return day.isoweekday() in self.weekdays

    def _grow(self, until: date) -> list[int]:
        """``cum`` covering at least ``until`` plus ``SPAN_DAYS`` (it only grows forward)."""
        cum = self.cum
        hi = until + timedelta(days=SPAN_DAYS)
        if (hi - self.base).days < len(cum):
            return cum
        cum, total = list(cum), cum[-1]
        day = self.base + timedelta(days=len(cum) - 1)
        while day < hi:
            total += self.day_seconds if self.works(day) else 0
            cum.append(total)
            day += timedelta(days=1)
        self.cum = cum
        return cum

    def _within(self, offset: int) -> int:
        """Working seconds of a working day before ``offset`` seconds after midnight."""
        return sum(min(max(offset - s, 0), e - s) for s, e in self.segments)

    def position(self, at: datetime) -> int:
        """The business second of instant ``at`` (aware), counted from ``EPOCH``."""
        local = at.astimezone(self.zone)
        day = local.date()
        if day < self.base:
            return 0
        i = (day - self.base).days
        cum = self.cum if i < len(self.cum) - 1 else self._grow(day)
        offset = local.hour * 3600 + local.minute * 60 + local.second
        return cum[i] + (self._within(offset) if self.works(day) else 0)

    def instant(self, position: int, late: bool = False) -> datetime:
        """The instant whose business second is ``position`` (aware UTC). Where a working
        stretch ends, the earliest such instant (18:00, a deadline) or, ``late``, the start
        of the next stretch (09:00 next working day, a warning counted back)."""
        position = max(position, 1 if not late else 0)
        cum = self.cum
        while position >= cum[-1]:
            if len(cum) > MAX_TABLE_DAYS:
                raise ValueError(str(_l("The working calendar has no working time left: give it working "
                                        "weekdays and hours.")))
            cum = self._grow(self.base + timedelta(days=len(cum) + SPAN_DAYS))
        i = (bisect.bisect_right(cum, position) if late else bisect.bisect_left(cum, position)) - 1
        left = position - cum[i]
        for s, e in self.segments:
            if left < e - s or (not late and left == e - s):
                offset = s + left
                break
            left -= e - s
        local = datetime.combine(self.base, time()) + timedelta(days=i, seconds=offset)
        return local.replace(tzinfo=self.zone).astimezone(UTC)


def check_calendar(item: WorkCalendar) -> None:
    """A calendar's rules before it is saved (``RuleViolation`` field -> message): at least one
    working weekday (ISO digits 1-7), the day's start before its end, a lunch break with both
    ends inside the day, in order, or none."""
    problems = {}
    weekdays = item.weekdays or ""
    if not weekdays or any(c not in "1234567" for c in weekdays):
        problems["weekdays"] = str(_l("Give the working weekdays as digits 1 (Monday) to 7 (Sunday), e.g. 12345."))
    if item.day_start is None or item.day_end is None or item.day_start >= item.day_end:
        problems["day_end"] = str(_l("The day must end after it starts."))
    lunch = (item.lunch_start, item.lunch_end)
    if (lunch[0] is None) != (lunch[1] is None) or (lunch[0] is not None and "day_end" not in problems and not (
            item.day_start < lunch[0] < lunch[1] < item.day_end)):
        problems["lunch_end"] = str(_l("Give both lunch times, inside the working day, or neither."))
    if problems:
        raise RuleViolation(problems)


_TABLES: dict[tuple, BusinessCalendar] = {}


def business_calendar(calendar: WorkCalendar | BusinessCalendar | None) -> BusinessCalendar | None:
    """The cached day table of ``calendar`` (None stays None: round the clock). Reads the
    calendar's exception days (one small query) to notice edits; builds only on change."""
    if calendar is None or isinstance(calendar, BusinessCalendar):
        return calendar
    memo = _request_memo()
    if calendar.id in memo:
        return memo[calendar.id]
    memo[calendar.id] = table = _table_of(calendar)
    return table


def _request_memo() -> dict:
    """Tables already checked in this request (a list page asks once per calendar, not per
    row); outside a request, an empty dict each time (jobs see admin edits at once)."""
    if not has_request_context():
        return {}
    if "sla_tables" not in g:
        g.sla_tables = {}
    return g.sla_tables


def forget_request_tables() -> None:
    """Drop this request's memo (after an admin changed a calendar in the same request)."""
    if has_request_context():
        g.pop("sla_tables", None)


def _table_of(calendar: WorkCalendar) -> BusinessCalendar:
    days = tuple(db.session.execute(select(CalendarDay.day, CalendarDay.kind).where(
        CalendarDay.calendar_id == calendar.id).order_by(CalendarDay.day)).all()) if calendar.id else ()
    key = (calendar.id, clock.zone_name(), calendar.weekdays, calendar.day_start, calendar.day_end,
           calendar.lunch_start, calendar.lunch_end, days)
    table = _TABLES.get(key)
    if table is None:
        if len(_TABLES) > 64:
            _TABLES.clear()
        table = _TABLES[key] = BusinessCalendar(
            calendar.weekdays, calendar.day_start, calendar.day_end, calendar.lunch_start,
            calendar.lunch_end, {d: k for d, k in days}, clock.crm_zone())
    return table


def add_business_minutes(start: datetime, minutes: int, calendar: Any) -> datetime:
    """``start`` (aware) plus ``minutes`` of working time of ``calendar`` (a WorkCalendar,
    a BusinessCalendar, or None = round the clock); negative minutes go back (landing on
    the next stretch's start, not the previous one's end). A start outside working hours
    counts from the next working minute. Returns aware UTC."""
    table = business_calendar(calendar)
    if table is None:
        return clock.as_utc(start) + timedelta(minutes=minutes)
    return table.instant(table.position(start) + minutes * 60, late=minutes < 0)


def business_minutes_between(a: datetime, b: datetime, calendar: Any) -> int:
    """Whole working minutes from ``a`` to ``b`` (negative when ``b`` is before ``a``;
    truncated toward zero) of ``calendar`` (None = round the clock)."""
    table = business_calendar(calendar)
    if table is None:
        seconds = (clock.as_utc(b) - clock.as_utc(a)).total_seconds()
    else:
        seconds = table.position(b) - table.position(a)
    return int(seconds / 60)


# --- policies -----------------------------------------------------------------------------


def _ref(ticket: Any, column: str, relation: str) -> int | None:
    value = getattr(ticket, column, None)
    if value is None and getattr(ticket, relation, None) is not None:
        value = getattr(ticket, relation).id
    return value


def pick_policy(type_id: int | None, priority_id: int | None) -> SlaPolicy | None:
    """The most specific active policy: type+priority, type only, priority only, neither."""
    rows = db.session.scalars(select(SlaPolicy).where(
        SlaPolicy.active.is_(True),
        or_(SlaPolicy.ticket_type_id.is_(None), SlaPolicy.ticket_type_id == type_id),
        or_(SlaPolicy.priority_id.is_(None), SlaPolicy.priority_id == priority_id))).all()
    ranked = sorted(rows, key=lambda p: (p.ticket_type_id is None, p.priority_id is None, p.id))
    return ranked[0] if ranked else None


def default_calendar() -> WorkCalendar | None:
    """The calendar marked default (else the first one)."""
    return db.session.scalars(select(WorkCalendar).order_by(
        WorkCalendar.is_default.desc(), WorkCalendar.id).limit(1)).first()


def policy_calendar(policy: SlaPolicy | None) -> BusinessCalendar | None:
    """The business-time table a policy counts in (None: round the clock, or no calendar)."""
    if policy is None or not policy.business_hours:
        return None
    calendar = policy.calendar or default_calendar()
    return business_calendar(calendar)


def _policy_of(ticket: Any) -> SlaPolicy | None:
    if getattr(ticket, "sla_policy_id", None) is None:
        return None
    policy = getattr(ticket, "sla_policy", None)
    if policy is None or policy.id != ticket.sla_policy_id:
        policy = db.session.get(SlaPolicy, ticket.sla_policy_id)
    return policy


def _warn(due: datetime | None, policy: SlaPolicy, table: BusinessCalendar | None) -> datetime | None:
    if due is None:
        return None
    return add_business_minutes(due, -policy.warn_before_minutes, table)


def _set_deadlines(ticket: Any, policy: SlaPolicy, table: BusinessCalendar | None, anchor: datetime) -> None:
    paused = ticket.paused_minutes or 0
    ticket.response_due_at = add_business_minutes(anchor, policy.first_response_minutes + paused, table)
    ticket.resolve_due_at = add_business_minutes(anchor, policy.resolution_minutes + paused, table)
    ticket.response_warn_at = _warn(ticket.response_due_at, policy, table)
    ticket.resolve_warn_at = _warn(ticket.resolve_due_at, policy, table)


# --- the contract ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaState:
    """What a screen shows about a ticket's SLA at an instant."""

    response_due: datetime | None
    resolve_due: datetime | None
    #: business minutes left (negative: overdue by); None when met or no policy
    response_left: int | None
    resolve_left: int | None
    response_breached: bool
    resolve_breached: bool
    paused: bool


def start(ticket: Any, at: datetime) -> None:
    """A new ticket (or a changed type/priority): pick the most specific active policy and
    set ``sla_policy_id``, both deadlines and both warn instants from ``at`` plus the
    policy's business minutes plus ``paused_minutes`` already spent waiting (pass the
    creation instant again after a change, so time already spent counts). No policy: all
    SLA instants cleared."""
    policy = pick_policy(_ref(ticket, "type_id", "ticket_type"), _ref(ticket, "priority_id", "priority"))
    ticket.sla_policy_id = policy.id if policy else None
    if policy is None:
        ticket.response_due_at = ticket.resolve_due_at = None
        ticket.response_warn_at = ticket.resolve_warn_at = None
        return
    ticket.sla_policy = policy
    _set_deadlines(ticket, policy, policy_calendar(policy), clock.as_utc(at))


def pause(ticket: Any, at: datetime) -> None:
    """The ticket waits for the customer from ``at``: the clock stops (already paused: no-op)."""
    if ticket.paused_since is None:
        ticket.paused_since = clock.as_utc(at)


def _shift(ticket: Any, minutes: int, response: bool, policy: SlaPolicy | None) -> None:
    if policy is None or minutes <= 0:
        return
    table = policy_calendar(policy)
    ticket.paused_minutes = (ticket.paused_minutes or 0) + minutes
    if response and ticket.response_due_at is not None:
        ticket.response_due_at = add_business_minutes(ticket.response_due_at, minutes, table)
        ticket.response_warn_at = _warn(ticket.response_due_at, policy, table)
    if ticket.resolve_due_at is not None:
        ticket.resolve_due_at = add_business_minutes(ticket.resolve_due_at, minutes, table)
        ticket.resolve_warn_at = _warn(ticket.resolve_due_at, policy, table)


def resume(ticket: Any, at: datetime) -> None:
    """The ticket stops waiting at ``at``: the business minutes paused (the policy's
    calendar) go to ``paused_minutes`` and push the open deadlines and their warn instants
    (the response deadline only while not yet responded). Not paused: no-op."""
    since = ticket.paused_since
    if since is None:
        return
    ticket.paused_since = None
    policy = _policy_of(ticket)
    minutes = business_minutes_between(since, at, policy_calendar(policy)) if policy else 0
    _shift(ticket, minutes, ticket.first_response_at is None, policy)


def responded(ticket: Any, at: datetime) -> None:
    """The first response happened at ``at``: sets ``first_response_at`` once (later calls
    keep the first); met or late is ``state``'s comparison with ``response_due_at``."""
    if ticket.first_response_at is None:
        ticket.first_response_at = clock.as_utc(at)


def resolved(ticket: Any, at: datetime) -> None:
    """The ticket was resolved at ``at``: the resolution clock stops (``resolved_at``; the
    clock is held like a pause, ``paused_since``, so a reopen can count the interval even
    when the caller clears ``resolved_at`` first)."""
    ticket.resolved_at = clock.as_utc(at)
    if ticket.paused_since is None:
        ticket.paused_since = clock.as_utc(at)


def reopened(ticket: Any, at: datetime) -> None:
    """A resolved/closed ticket reopened at ``at``: the resolved interval counts as paused
    (adds to ``paused_minutes``, pushes the open deadlines); the clock runs again. The
    resolution warning and breach may come again for a deadline moved past ``at``."""
    since = ticket.paused_since or ticket.resolved_at
    ticket.paused_since = None
    policy = _policy_of(ticket)
    if since is None or policy is None:
        return
    minutes = business_minutes_between(since, at, policy_calendar(policy))
    _shift(ticket, minutes, ticket.first_response_at is None, policy)
    now = clock.as_utc(at)
    if ticket.resolve_due_at is not None and ticket.resolve_due_at > now:
        ticket.resolve_breached = False
        ticket.resolve_warned = ticket.resolve_warn_at is not None and ticket.resolve_warn_at <= now


def _left(now: datetime, due: datetime | None, table: BusinessCalendar | None) -> int | None:
    if due is None:
        return None
    return business_minutes_between(now, due, table)


def state(ticket: Any, at: datetime) -> SlaState:
    """The ticket's SLA as of ``at`` (a paused ticket as of when it paused): deadlines;
    business minutes left (negative: overdue; None when that clock stopped or no policy);
    breached = the deadline passed before the response / resolution (or before ``at``)."""
    policy = _policy_of(ticket)
    done = ticket.status in DONE
    paused = ticket.paused_since is not None and not done
    now = clock.as_utc(ticket.paused_since if paused else at)
    table = policy_calendar(policy)
    response_end = clock.as_utc(ticket.first_response_at or (ticket.resolved_at if done else None))
    resolve_end = clock.as_utc(ticket.resolved_at) if done and ticket.resolved_at else None
    response_due, resolve_due = clock.as_utc(ticket.response_due_at), clock.as_utc(ticket.resolve_due_at)
    return SlaState(
        response_due=response_due, resolve_due=resolve_due,
        response_left=None if response_end or policy is None else _left(now, response_due, table),
        resolve_left=None if done or policy is None else _left(now, resolve_due, table),
        response_breached=response_due is not None and (response_end or now) > response_due,
        resolve_breached=resolve_due is not None and (resolve_end or now) > resolve_due,
        paused=paused,
    )


# --- recompute after an admin change -----------------------------------------------------------


def recompute_open(policy_ids: Iterable[int] | None = None, at: datetime | None = None) -> int:
    """Recompute the deadlines of open tickets (status not resolved/closed) under
    ``policy_ids`` (None: every policy): deadline = created + policy minutes + paused
    minutes, in the policy's current calendar; a warn/breach flag whose instant moved past
    ``at`` (default now) is cleared, so it can fire again. Chunked; one calendar table per
    policy. Returns how many tickets were updated. The caller commits."""
    now = clock.as_utc(at or clock.utc_now())
    forget_request_tables()
    query = select(SlaPolicy)
    if policy_ids is not None:
        query = query.where(SlaPolicy.id.in_(list(policy_ids)))
    count = 0
    for policy in db.session.scalars(query).all():
        table = policy_calendar(policy)
        count += _recompute_policy(policy, table, now)
    return count


def _recompute_policy(policy: SlaPolicy, table: BusinessCalendar | None, now: datetime) -> int:
    columns = (Ticket.id, Ticket.created_on, Ticket.paused_minutes, Ticket.response_warned,
               Ticket.resolve_warned, Ticket.response_breached, Ticket.resolve_breached)
    rows = db.session.execute(select(*columns).where(
        Ticket.sla_policy_id == policy.id, Ticket.status.not_in(DONE)).order_by(Ticket.id)).all()
    for i in range(0, len(rows), CHUNK):
        values = [_recomputed(row, policy, table, now) for row in rows[i:i + CHUNK]]
        db.session.execute(_BULK_UPDATE, values)
    if rows:
        db.session.expire_all()
    return len(rows)


_COLUMNS = ("response_due_at", "resolve_due_at", "response_warn_at", "resolve_warn_at",
            "response_warned", "resolve_warned", "response_breached", "resolve_breached")
#: One statement for a chunk (executemany); Core, so the ticket's edit version stays (an admin's
#: policy change must not make a rep's open form stale).
_BULK_UPDATE = Ticket.__table__.update().where(Ticket.__table__.c.id == bindparam("row_id")).values(
    {name: bindparam(name) for name in _COLUMNS})


def _recomputed(row: Any, policy: SlaPolicy, table: BusinessCalendar | None, now: datetime) -> dict:
    created = clock.as_utc(row.created_on)
    paused = row.paused_minutes or 0
    marks = (policy.first_response_minutes + paused, policy.resolution_minutes + paused)
    if table is None:
        response_due, resolve_due = (created + timedelta(minutes=m) for m in marks)
        response_warn, resolve_warn = (due - timedelta(minutes=policy.warn_before_minutes)
                                       for due in (response_due, resolve_due))
    else:  # one position per ticket, the rest is arithmetic on business seconds
        origin, warn = table.position(created), policy.warn_before_minutes * 60
        response_due, resolve_due = (table.instant(origin + m * 60) for m in marks)
        response_warn, resolve_warn = (table.instant(origin + m * 60 - warn, late=warn > 0) for m in marks)
    return {
        "row_id": row.id, "response_due_at": response_due, "resolve_due_at": resolve_due,
        "response_warn_at": response_warn, "resolve_warn_at": resolve_warn,
        "response_warned": row.response_warned and response_warn <= now,
        "resolve_warned": row.resolve_warned and resolve_warn <= now,
        "response_breached": row.response_breached and response_due <= now,
        "resolve_breached": row.resolve_breached and resolve_due <= now,
    }


# --- warnings, breaches, escalation --------------------------------------------------------------

WARNING, BREACH, ESCALATION = "sla_warning", "sla_breach", "sla_escalated"
notifications.declare_event(Event(
    WARNING, _l("SLA warning"),
    _l("Ticket %(code)s: its %(clock)s deadline is at %(due)s"), (IN_APP,)))
notifications.declare_event(Event(
    BREACH, _l("SLA breached"),
    _l("Ticket %(code)s missed its %(clock)s deadline (%(due)s)"), (IN_APP, EMAIL)))
notifications.declare_event(Event(
    ESCALATION, _l("SLA escalation"),
    _l("Ticket %(code)s missed its %(clock)s deadline (%(due)s) and is escalated to you"), (IN_APP, EMAIL)))
#: clock key -> (its name as a stored message: read in the reader's language, the warn/due/flag columns)
CLOCKS = {
    "response": ({"msgid": "first response", "params": {}}, Ticket.response_warn_at, Ticket.response_due_at,
                 "response_warned", "response_breached"),
    "resolve": ({"msgid": "resolution", "params": {}}, Ticket.resolve_warn_at, Ticket.resolve_due_at,
                "resolve_warned", "resolve_breached"),
}
#: The clocks' names for the catalogue (what ``CLOCKS`` stores by msgid).
CLOCK_NAMES = (_l("first response"), _l("resolution"))


def _claim(ticket_id: int, flag: str) -> bool:
    """Set ``flag`` if still False: True for the one caller that flipped it (the race guard)."""
    column = getattr(Ticket, flag)
    result = db.session.execute(update(Ticket).where(Ticket.id == ticket_id, column.is_(False))
                                .values({flag: True}).execution_options(synchronize_session=False))
    return result.rowcount == 1


def _due_tickets(clock_key: str, kind: str, now: datetime) -> list[int]:
    _label, warn_col, due_col, warned, breached = CLOCKS[clock_key]
    instant, flag = (warn_col, warned) if kind == WARNING else (due_col, breached)
    conditions = [Ticket.status.not_in(DONE), Ticket.paused_since.is_(None), instant.is_not(None),
                  instant <= now, getattr(Ticket, flag).is_(False)]
    if clock_key == "response":
        conditions.append(Ticket.first_response_at.is_(None))
    return list(db.session.scalars(select(Ticket.id).where(and_(*conditions)).order_by(Ticket.id)))


def team_lead(ticket: Ticket) -> int | None:
    """The team lead: the manager of the ticket's team (None without team or manager)."""
    return ticket.team.manager_id if ticket.team is not None else None


def escalation_recipient(ticket: Ticket) -> int | None:
    """Who hears of an escalated breach: the manager of the team's parent department (the
    team lead's manager); None without a team or parent manager."""
    team = ticket.team
    if team is None or team.parent_id is None:
        return None
    parent = db.session.get(Department, team.parent_id)
    return parent.manager_id if parent else None


def _who_may_see(ticket: Ticket, *user_ids: int | None) -> list[int]:
    """Those of ``user_ids`` who may see the ticket: a team lead or manager of another region
    is not told about a customer they cannot see (and could not act on it)."""
    from app.models.org import CrmUser
    from app.security import data_scope

    found = []
    for user_id in dict.fromkeys(uid for uid in user_ids if uid is not None):
        person = db.session.get(CrmUser, user_id)
        if person is not None and person.active and data_scope.can_see(person, ticket):
            found.append(user_id)
    return found


def _fire(ticket: Ticket, clock_key: str, kind: str) -> None:
    label, *_ = CLOCKS[clock_key]
    due = ticket.response_due_at if clock_key == "response" else ticket.resolve_due_at
    params = {"code": ticket.code, "clock": label, "due": clock.local_text(due)}
    stamp = clock.naive_utc(due).isoformat()
    occasion = f"{kind}:{ticket.id}:{clock_key}:{stamp}"
    notifications.notify(kind, _who_may_see(ticket, ticket.assignee_id, team_lead(ticket)), record=ticket,
                         params=params, occasion=occasion)
    db.session.add(TicketLog(ticket_id=ticket.id, kind=kind, note=params["due"]))
    policy = _policy_of(ticket)
    if kind == BREACH and policy is not None and policy.escalate:
        boss = next(iter(_who_may_see(ticket, escalation_recipient(ticket))), None)
        notifications.notify(ESCALATION, [boss], record=ticket, params=params,
                             occasion=f"{ESCALATION}:{ticket.id}:{clock_key}:{stamp}")
        db.session.add(TicketLog(ticket_id=ticket.id, kind=ESCALATION, to_user_id=boss, note=params["due"]))


def check_deadlines(at: datetime | None = None) -> dict[str, int]:
    """The minute job: open, running tickets whose warn instant / deadline passed and are
    not yet flagged get flagged (a conditional UPDATE: two runs at once flag each once),
    notified (assignee and team lead; a breach under an escalating policy also the team
    lead's manager) and logged (``TicketLog`` kinds sla_warning / sla_breach /
    sla_escalated). Commits. Returns counts {"sla_warning": n, "sla_breach": n}."""
    now = clock.as_utc(at or clock.utc_now())
    counts = {WARNING: 0, BREACH: 0}
    for kind in (WARNING, BREACH):
        for clock_key in CLOCKS:
            flag = CLOCKS[clock_key][3 if kind == WARNING else 4]
            for ticket_id in _due_tickets(clock_key, kind, now):
                if not _claim(ticket_id, flag):
                    continue
                ticket = db.session.get(Ticket, ticket_id)
                _fire(ticket, clock_key, kind)
                counts[kind] += 1
                db.session.commit()
    return counts


audit.audited(SlaPolicy)
audit.audited(WorkCalendar)
audit.audited(CalendarDay)
scheduler.register("sla_check", "SLA warnings and breaches", check_deadlines, {"minute": "*"})


# --- seeds ---------------------------------------------------------------------------------------

#: (ticket type key or None, priority key or None, name, first response, resolution, warn) in
#: business minutes (a standard day works 8 h): the manual's "high priority answered within 24
#: hours" is met with room to spare (4 working hours); 附录3: internal problems within 15 minutes.
WORKDAY = 8 * 60
DEFAULT_POLICIES = (
    ("internal", None, "系统问题", 15, WORKDAY, 5),
    (None, "high", "高优先级", 4 * 60, 2 * WORKDAY, 60),
    (None, "medium", "中优先级", WORKDAY, 5 * WORKDAY, 60),
    (None, "low", "低优先级", 2 * WORKDAY, 10 * WORKDAY, 120),
    (None, None, "默认", WORKDAY, 5 * WORKDAY, 60),
)


#: chinese-calendar's holiday names (English) as China's calendars print them.
HOLIDAY_NAMES = {
    "New Year's Day": "元旦", "Spring Festival": "春节", "Tomb-sweeping Day": "清明节", "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节", "Mid-autumn Festival": "中秋节", "National Day": "国庆节",
    "Anti-Fascist 70th Day": "抗战胜利纪念日",
}


@lru_cache(maxsize=32)
def public_days(year: int) -> tuple[tuple[date, str, str], ...]:
    """China's public holidays and make-up working days of ``year`` from chinese-calendar:
    ((day, "holiday" | "workday", Chinese name), ...); empty for a year it does not know."""
    import chinese_calendar

    def name(holiday: Any) -> str:
        english = getattr(holiday, "value", holiday)
        return HOLIDAY_NAMES.get(english, str(english))

    found = [(d, "holiday", name(n)) for d, n in chinese_calendar.holidays.items() if d.year == year]
    found += [(d, "workday", name(n) + "调休") for d, n in chinese_calendar.workdays.items() if d.year == year]
    return tuple(sorted(found))


def known_years() -> list[int]:
    """The years chinese-calendar knows."""
    import chinese_calendar

    return sorted({d.year for d in chinese_calendar.holidays})


def import_public_days(calendar: WorkCalendar, year: int) -> int:
    """Add ``year``'s public holidays and make-up days to ``calendar`` (days already there
    are kept as the admin set them). Returns how many were added; ``ValueError`` for a year
    chinese-calendar does not know. The caller commits."""
    if year not in known_years():
        raise ValueError(year)
    have = set(db.session.scalars(select(CalendarDay.day).where(CalendarDay.calendar_id == calendar.id)))
    rows = [{"calendar_id": calendar.id, "day": d, "kind": k, "name": n}
            for d, k, n in public_days(year) if d not in have]
    if rows:
        db.session.execute(insert(CalendarDay), rows)
        db.session.expire(calendar, ["days"])
        audit.record("calendar_import", calendar, {"year": year, "days": len(rows)})
    return len(rows)


def seed_defaults() -> None:
    """The standard calendar (Mon-Fri 09:00-18:00, lunch 12:00-13:00, China's public days
    of last, this and next year that chinese-calendar knows) and ``DEFAULT_POLICIES``, each
    only when its table is empty. Core inserts (a seed is not an admin's audited change).
    The caller commits."""
    calendar_id = db.session.scalars(select(WorkCalendar.id).order_by(
        WorkCalendar.is_default.desc(), WorkCalendar.id).limit(1)).first()
    if calendar_id is None:
        calendar_id = db.session.execute(insert(WorkCalendar).values(
            name=DEFAULT_CALENDAR, weekdays="12345", day_start=time(9), day_end=time(18), lunch_start=time(12),
            lunch_end=time(13), is_default=True).returning(WorkCalendar.id)).scalar_one()
        year = clock.local_today().year
        rows = [{"calendar_id": calendar_id, "day": d, "kind": k, "name": n}
                for y in (year - 1, year, year + 1) for d, k, n in public_days(y)]
        if rows:
            db.session.execute(insert(CalendarDay), rows)
    if db.session.scalars(select(SlaPolicy.id).limit(1)).first() is None:
        types = dict(db.session.execute(select(TicketType.code, TicketType.id)).all())
        priorities = dict(db.session.execute(select(Priority.code, Priority.id)).all())
        rows = [{"name": name, "ticket_type_id": types.get(type_key), "priority_id": priorities.get(priority_key),
                 "first_response_minutes": first, "resolution_minutes": resolution, "warn_before_minutes": warn,
                 "business_hours": True, "calendar_id": calendar_id, "escalate": True, "active": True}
                for type_key, priority_key, name, first, resolution, warn in DEFAULT_POLICIES
                if not (type_key and type_key not in types) and not (priority_key and priority_key not in priorities)]
        if rows:
            db.session.execute(insert(SlaPolicy), rows)


def reset_to_seed() -> None:
    """Delete every policy and calendar and seed them again (tests: after each test).
    Tickets lose their policy (``SET NULL``). Commits."""
    db.session.execute(update(Ticket).values(sla_policy_id=None))
    db.session.execute(delete(SlaPolicy))
    db.session.execute(delete(CalendarDay))
    db.session.execute(delete(WorkCalendar))
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, (SlaPolicy, CalendarDay, WorkCalendar)):
            db.session.expunge(obj)
    db.session.expire_all()
    seed_defaults()
    db.session.commit()
