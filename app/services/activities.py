"""Activities (待办 / 活动, issue 14): planned calls, visits, meetings, e-mails and tasks on a
record, their use cases, and the activity a follow-up's 下一步计划 creates.

Scope: an activity is visible like the record it belongs to — a customer's (also a
contact's or an opportunity's, which carry their customer) through the customer, a
lead's through the lead's owner, and a personal task (no record) to whoever sees its
assignee. Writing one checks the linked record as its own use cases do (in the writer's
scope, a live customer, a lead not converted) and that the assignee is an active user in
the writer's scope who may see that record.

Done with an outcome, an activity on a customer records the follow-up (001 跟进记录) through
``follow_ups.save_follow_up``. A follow-up whose 下一步计划 has a date plans one activity for
the follow-up's owner, due that day at 09:00 in the CRM's zone, from every entry point
(form, API and sync through the flush hook below; imports through ``insert_follow_ups``);
editing the next step moves it while it is open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, event, inspect, or_, select, true, update
from sqlalchemy.orm import Session, aliased, selectinload

from app import clock
from app.extensions import db
from app.models.activities import Activity, ActivityTemplate
from app.models.customers import Customer, FollowUp
from app.models.dictionaries import FollowUpMethod
from app.models.org import CrmUser
from app.models.sales import Contact, Lead, Opportunity
from app.record_types import RecordType, declare
from app.security import data_scope
from app.services import audit, bulk, mentions, notifications, numbering, records, validation
from app.services.errors import NotFound, RuleForbidden, RuleViolation

OPEN, DONE, CANCELLED = "open", "done", "cancelled"
#: kind -> label (the manual's 类型: 电话, 拜访, 会议, 邮件, 任务).
KINDS = {"call": _l("Call"), "visit": _l("Visit"), "meeting": _l("Meeting"), "email": _l("E-mail"),
         "task": _l("Task")}
STATUSES = {OPEN: _l("Open"), DONE: _l("Done"), CANCELLED: _l("Cancelled")}
#: activity kind -> follow-up method code (dictionary FollowUpMethod); a task has none.
METHOD_OF_KIND = {"call": "phone", "visit": "visit", "meeting": "meeting", "email": "email"}
KIND_OF_METHOD = {method: kind for kind, method in METHOD_OF_KIND.items()}
#: When a next step's activity is due on its day, in the CRM's zone.
NEXT_STEP_TIME = time(9, 0)
PREFIX = "A"
EDITABLE = ("kind", "subject", "note", "due_at", "duration_minutes", "assignee", "customer", "contact", "lead",
            "opportunity", "template")
LINKS = ("customer", "contact", "lead", "opportunity")
SUBJECT_LIMIT = Activity.__table__.c.subject.type.length
NOTE_LIMIT = 10000


# --- scope ----------------------------------------------------------------------------

def scope_rule(owners: set[int] | None) -> Any:
    """The data-scope condition of activities over the visible owner ids (None: all):
    the customer's scope when it has a customer, else the lead's owner, else its assignee."""
    if owners is None:
        return true()
    lead = aliased(Lead)
    lead_visible = select(lead.id).where(lead.id == Activity.lead_id, data_scope.owner_in(lead.owner_id, owners)) \
        .correlate_except(lead).exists()
    return or_(
        and_(Activity.customer_id.isnot(None), data_scope.via_customer(Activity, owners)),
        and_(Activity.customer_id.is_(None), Activity.lead_id.isnot(None), lead_visible),
        and_(Activity.customer_id.is_(None), Activity.lead_id.is_(None),
             data_scope.owner_in(Activity.assignee_id, owners)),
    )


def visible_to(person: Any, customer_id: int | None, lead_id: int | None) -> bool:
    """Whether ``person`` may see an activity on that customer / lead (the scope rule on
    values, before the activity is stored: the assignee check)."""
    if customer_id is not None:
        stmt = select(Customer.id).where(Customer.id == customer_id, data_scope.scope_clause(person, Customer))
    elif lead_id is not None:
        stmt = select(Lead.id).where(Lead.id == lead_id, data_scope.scope_clause(person, Lead))
    else:
        return True
    return db.session.execute(stmt).first() is not None


# --- values ---------------------------------------------------------------------------

def due_instant(raw: Any) -> datetime | None:
    """A due time as an aware UTC instant: a datetime (naive = wall time in the CRM zone,
    as follow-ups' followed_at) or text such as 2026-12-01 14:30 (``validation.parse_datetime``).
    ``ValueError`` with a hint for anything else."""
    if isinstance(raw, datetime):
        return clock.from_local(raw)
    moment = validation.parse_datetime(raw)
    return None if moment is None else clock.from_local(moment)


def next_step_due(day: date) -> datetime:
    """A next step's date as the activity's due instant: that day at 09:00 in the CRM's zone."""
    return clock.from_local(datetime.combine(day, NEXT_STEP_TIME))


def _clean_fields(item: Activity) -> dict[str, str]:
    errors: dict[str, str] = {}
    steps = {
        "kind": lambda: _kind(item.kind),
        "subject": lambda: validation.require_text(item.subject, SUBJECT_LIMIT),
        "note": lambda: _note(item.note),
        "due_at": lambda: _due(item.due_at),
        "duration_minutes": lambda: _duration(item.duration_minutes),
    }
    for name, step in steps.items():
        try:
            setattr(item, name, step())
        except ValueError as exc:
            errors[name] = str(exc)
    return errors


def _kind(raw: Any) -> str:
    kind = validation.clean_line(raw).casefold() or "task"
    if kind not in KINDS:
        raise ValueError(str(_l("Pick one of: %(kinds)s.", kinds=", ".join(str(v) for v in KINDS.values()))))
    return kind


def _note(raw: Any) -> str | None:
    text = validation.clean_block(raw) or None
    if text is not None and len(text) > NOTE_LIMIT:
        raise ValueError(str(_l("At most %(n)d characters.", n=NOTE_LIMIT)))
    return text


def _due(raw: Any) -> datetime:
    moment = due_instant(raw)
    if moment is None:
        raise ValueError(str(_l("A due time is required.")))
    problem = validation.date_problem(moment)
    if problem:
        raise ValueError(problem)
    return moment


def _duration(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    try:
        minutes = int(str(raw).strip())
    except ValueError:
        raise ValueError(str(_l("Enter a whole number."))) from None
    if not 1 <= minutes <= 24 * 60:
        raise ValueError(str(_l("Enter a number from %(low)d to %(high)d.", low=1, high=24 * 60)))
    return minutes


# --- the linked record ----------------------------------------------------------------

def _load_link(model: type, pk: int | None, user: Any) -> Any:
    if pk is None:
        return None
    try:
        return records.load(model, pk, user)
    except NotFound:
        raise ValueError(str(_l("Record not found."))) from None


def _settle_links(item: Activity, user: Any) -> dict[str, str]:
    """Check the record the activity belongs to and derive its customer: a contact's and
    an opportunity's customer is the activity's; a lead stands alone. Field -> message."""
    from app.services.follow_ups import customer_problem
    from app.services.leads import CONVERTED

    ids = {name: records.related_id(item, name) for name in LINKS}
    loaded, errors = {}, {}
    for name, model in (("contact", Contact), ("opportunity", Opportunity), ("lead", Lead)):
        try:
            loaded[name] = _load_link(model, ids[name], user)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        return errors
    lead = loaded["lead"]
    if lead is not None:
        if any(ids[name] is not None for name in ("customer", "contact", "opportunity")):
            return {"lead": str(_l("An activity belongs to a lead or to a customer, not both."))}
        if lead.converted_at is not None or lead.status == CONVERTED:
            return {"lead": str(_l("%(code)s was converted; plan the activity on its customer.", code=lead.code))}
        return {}
    customers = {loaded[name].customer_id for name in ("contact", "opportunity") if loaded[name] is not None}
    if ids["customer"] is not None:
        customers.add(ids["customer"])
    if len(customers) > 1:
        return {"customer": str(_l("The contact and the opportunity must belong to the activity's customer."))}
    customer_id = next(iter(customers), None)
    if customer_id is not None:
        problem = customer_problem(customer_id, user)
        if problem:
            return {"customer": problem}
    item.customer = db.session.get(Customer, customer_id) if customer_id is not None else None
    return {}


def _settle_assignee(item: Activity, user: Any, is_new: bool, links_changed: bool) -> dict[str, str]:
    """No assignee: the writer. A new or changed assignee (or a new record) is checked:
    active, in the writer's scope (``records.check_owner``), and able to see the record."""
    if records.related_id(item, "assignee") is None:
        item.assignee = db.session.get(CrmUser, user.id)
    assignee_id = records.related_id(item, "assignee")
    if not (is_new or links_changed or assignee_id != records.previous(item, "assignee_id")):
        return {}
    try:
        records.check_owner(user, assignee_id)
    except RuleForbidden as exc:  # out of the writer's scope: 403, as for owners
        raise RuleForbidden({"assignee": str(exc.errors.get("owner", exc))}) from None
    except RuleViolation as exc:
        return {"assignee": str(exc.errors.get("owner", exc))}
    person = db.session.get(CrmUser, assignee_id)
    if not visible_to(person, records.related_id(item, "customer"), records.related_id(item, "lead")):
        return {"assignee": str(_l("%(name)s cannot see this record; pick someone who can.",
                                   name=person.get_full_name()))}
    return {}


# --- use cases ------------------------------------------------------------------------

def _refuse_closed(item: Activity) -> None:
    if item.status != OPEN:
        raise RuleViolation(str(_l("%(code)s is done or cancelled; it can no longer be changed.", code=item.code)),
                            status=409)


def save_activity(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> Activity:
    """Add (``pk`` None) or change one open activity: the use case behind the form and the API.

    ``values``: field -> value of ``EDITABLE`` (related records as loaded objects;
    ``due_at`` a datetime, naive = CRM wall time, or its text; ``kind`` one of ``KINDS``).
    Loads the activity in ``user``'s scope (``NotFound``), refuses a stale ``version``
    (``StaleRecord``) and a closed one (409), checks fields, the linked record and the
    assignee (``RuleViolation``, field -> message). A new assignee other than the writer
    is told (event ``activity_assigned``); people @mentioned in the note who may see it
    too. Flushes (numbered A + date + sequence, audited); the caller commits.
    """
    is_new = pk is None
    item = Activity(status=OPEN) if is_new else records.load(Activity, pk, user)
    if not is_new:
        records.check_version(item, version)
        _refuse_closed(item)
    before = {name: getattr(item, f"{name}_id") for name in (*LINKS, "assignee")}
    with db.session.no_autoflush:
        records.assign(item, values, EDITABLE)
        errors = _clean_fields(item)
        errors.update(_settle_links(item, user))
        if not errors:
            links_changed = any(records.related_id(item, name) != before[name] for name in LINKS)
            errors.update(_settle_assignee(item, user, is_new, links_changed))
        if errors:
            raise RuleViolation(errors)
    if is_new:
        db.session.add(item)
    db.session.flush()
    if item.assignee_id != before["assignee"]:
        tell_assignee(item, user)
    mentions.notify_mentions(item.note, item, user, lambda person: data_scope.can_see(person, item), item.code)
    return item


def tell_assignee(item: Activity, writer: Any) -> None:
    """Notify the activity's assignee that ``writer`` gave it to them (not when they
    planned it themselves)."""
    if writer is not None and item.assignee_id == getattr(writer, "id", None):
        return
    notifications.notify("activity_assigned", [item.assignee_id], record=item, params={
        "code": item.code, "subject": item.subject, "due": clock.local_text(item.due_at),
        "by": mentions._full_name(writer) if writer is not None else ""})


def complete_activity(pk: Any, user: Any, outcome: str | None = None, version: Any = None, *,
                      next_step: str | None = None, next_step_date: Any = None) -> Activity:
    """Mark an open activity in ``user``'s scope done (now). An ``outcome`` on an activity
    with a customer records the follow-up (``follow_ups.save_follow_up``: method from the
    kind, content = outcome, ``next_step`` and ``next_step_date`` (a date or ISO text) as
    its 下一步计划 — which plans the next activity; the follow-up rules and the admin's
    required fields apply, each error under its own field) and links it. ``NotFound``,
    ``StaleRecord`` (with a ``version``), 409 when not open. Flushes; the caller commits."""
    from app.services import follow_ups

    item = records.load(Activity, pk, user)
    _refuse_closed(item)  # first: a second click on Done is "already done", not "someone else changed it"
    if version not in (None, ""):
        records.check_version(item, version)
    text = validation.clean_block(outcome) or None
    if text is not None and len(text) > NOTE_LIMIT:
        raise RuleViolation({"outcome": str(_l("At most %(n)d characters.", n=NOTE_LIMIT))})
    item.status, item.done_at, item.outcome = DONE, clock.utc_now(), text
    if text is not None and item.customer_id is not None:
        method = db.session.scalar(select(FollowUpMethod).where(
            FollowUpMethod.code == METHOD_OF_KIND.get(item.kind, "")))
        values = {"customer": item.customer, "method": method, "content": text, "next_step": next_step,
                  "next_step_date": _day(next_step_date)}
        try:
            follow_up = follow_ups.save_follow_up(values, user)
        except RuleViolation as exc:  # the follow-up's fields are the Done form's (content is the outcome)
            raise RuleViolation({("outcome" if name == "content" else name): message
                                 for name, message in exc.errors.items()}) from None
        item.follow_up = follow_up
    db.session.flush()
    return item


def _day(raw: Any) -> date | None:
    """A next step's date from a form or the API (a date, or text as the importer reads it:
    2024-05-01, 2024/5/1, 2024年5月1日); ``RuleViolation`` under ``next_step_date``."""
    if raw in (None, "") or isinstance(raw, date):
        return raw or None
    try:
        return validation.parse_date(raw)
    except ValueError as exc:
        raise RuleViolation({"next_step_date": str(exc)}) from None


def cancel_activity(pk: Any, user: Any, version: Any = None) -> Activity:
    """Cancel an open activity in ``user``'s scope (kept, status cancelled). ``NotFound``,
    ``StaleRecord`` (with a ``version``), 409 when not open. Flushes; the caller commits."""
    item = records.load(Activity, pk, user)
    _refuse_closed(item)
    if version not in (None, ""):
        records.check_version(item, version)
    item.status = CANCELLED
    db.session.flush()
    return item


# --- lists ----------------------------------------------------------------------------

def my_open(user: Any, horizon_days: int = 7, limit: int = 200) -> dict[str, list[Activity]]:
    """The user's open activities in scope as ``{"overdue", "today", "upcoming"}`` (upcoming:
    the next ``horizon_days`` days after today), days in the CRM's zone, oldest first;
    at most ``limit`` per group (a page, not unbounded work)."""
    start = clock.from_local(datetime.combine(clock.local_today(), time()))
    tomorrow, end = start + timedelta(days=1), start + timedelta(days=1 + horizon_days)
    base = select(Activity).where(Activity.assignee_id == user.id, Activity.status == OPEN,
                                  data_scope.scope_clause(user, Activity)).order_by(Activity.due_at, Activity.id)
    groups = {"overdue": (None, start), "today": (start, tomorrow), "upcoming": (tomorrow, end)}
    result = {}
    for name, (low, high) in groups.items():
        stmt = base.where(Activity.due_at < high)
        if low is not None:
            stmt = stmt.where(Activity.due_at >= low)
        result[name] = list(db.session.scalars(stmt.options(selectinload(Activity.customer)).limit(limit)))
    return result


#: Longest range the calendar may ask for (a month view shows up to six weeks).
MAX_RANGE_DAYS = 62
MAX_EVENTS = 1000


def in_range(user: Any, start: datetime, end: datetime, mine_only: bool = False,
             limit: int = MAX_EVENTS) -> list[Activity]:
    """Activities in ``user``'s scope due in [start, end) (instants), not cancelled, for the
    calendar, earliest first, at most ``limit`` (ask for one more to learn that there are more).

    ``RuleViolation`` when the range is reversed or longer than ``MAX_RANGE_DAYS``."""
    if end <= start:
        raise RuleViolation({"end": str(_l("The end must come after the start."))})
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise RuleViolation({"end": str(_l("Ask for at most %(n)d days at a time.", n=MAX_RANGE_DAYS))})
    stmt = select(Activity).where(Activity.due_at >= start, Activity.due_at < end, Activity.status != CANCELLED,
                                  data_scope.scope_clause(user, Activity))
    if mine_only:
        stmt = stmt.where(Activity.assignee_id == user.id)
    return list(db.session.scalars(stmt.order_by(Activity.due_at, Activity.id).limit(limit)))


def for_record(user: Any, kind: str, pk: int, limit: int = 50) -> list[Activity]:
    """The activities of one record (``kind``: customer, lead or opportunity) that ``user``
    may see, open ones first by due time, then the latest closed ones."""
    column = {"customer": Activity.customer_id, "lead": Activity.lead_id,
              "opportunity": Activity.opportunity_id}[kind]
    stmt = select(Activity).where(column == pk, data_scope.scope_clause(user, Activity)).order_by(
        (Activity.status != OPEN), Activity.due_at).limit(limit)
    return list(db.session.scalars(stmt))


def open_due(user: Any, *, today: bool) -> Select:
    """The ids of the user's own open activities in scope due today (``today``) or overdue
    (due before today), days in the CRM zone (``my_open``'s groups): a ``select`` to count
    (the home page counts at most a page's worth)."""
    start = clock.from_local(datetime.combine(clock.local_today(), time()))
    due = [Activity.due_at >= start, Activity.due_at < start + timedelta(days=1)] if today else [Activity.due_at < start]
    return select(Activity.id).where(Activity.assignee_id == user.id, Activity.status == OPEN, *due,
                                     data_scope.scope_clause(user, Activity))


# --- a follow-up's next step (下一步计划) -----------------------------------------------

def _kind_of_method(method_id: int | None) -> str:
    if method_id is None:
        return "task"
    code = db.session.scalar(select(FollowUpMethod.code).where(FollowUpMethod.id == method_id))
    return KIND_OF_METHOD.get(code, "task")


def _subject(next_step: str | None, code: str | None) -> str:
    text = validation.clean_line(next_step) or str(_l("Next step of %(code)s", code=code or ""))
    return text[:SUBJECT_LIMIT]


def _id_of(obj: Any, relation: str) -> int | None:
    target = getattr(obj, relation, None)
    return target.id if target is not None else getattr(obj, f"{relation}_id")


def _follow_up_changed(session: Session, follow_up: FollowUp) -> None:
    """Plan or move the activity of one new or changed follow-up (inside a flush)."""
    state = inspect(follow_up)
    watched = ("next_step", "next_step_date", "method_id", "owner_id", "owner", "method")
    if not state.pending and not any(state.attrs[name].history.has_changes() for name in watched):
        return
    planned = None
    if not state.pending:
        with session.no_autoflush:
            planned = session.scalar(select(Activity).where(Activity.from_follow_up_id == follow_up.id))
    day = follow_up.next_step_date
    if planned is not None:
        if planned.status != OPEN:
            return
        if day is None:
            planned.status = CANCELLED  # the next step was taken off: nothing is planned any more
            return
        planned.due_at, planned.subject = next_step_due(day), _subject(follow_up.next_step, follow_up.code)
        planned.assignee_id = _id_of(follow_up, "owner")
        return
    if day is None:
        return
    with session.no_autoflush:
        kind = _kind_of_method(_id_of(follow_up, "method"))
    session.add(Activity(
        code=numbering.allocate(session, PREFIX, 1)[0], kind=kind, subject=_subject(follow_up.next_step, follow_up.code),
        due_at=next_step_due(day), assignee_id=_id_of(follow_up, "owner"), customer_id=_id_of(follow_up, "customer"),
        status=OPEN, from_follow_up=follow_up))


@event.listens_for(Session, "before_flush")
def _plan_next_steps(session: Session, flush_context: Any, instances: Any) -> None:
    """Every ORM writer of follow-ups (form, API, sync, import updates, scripts): a next
    step with a date plans its activity; a changed one moves it. Codes are allocated here
    (this hook runs after the numbering hook)."""
    for obj in [*session.new, *session.dirty]:
        if isinstance(obj, FollowUp):
            _follow_up_changed(session, obj)


@event.listens_for(Session, "after_flush")
def _keep_next_steps_closed(session: Session, flush_context: Any) -> None:
    """Every ORM writer of activities (done, cancelled, deleted, moved; screens, API, the
    planning hook above): the follow-up that planned an activity has ``next_step_closed``
    while that activity is done or cancelled, and not once it is open again, deleted or
    planned by another follow-up (``follow_ups.next_step_open``). A plain UPDATE: the
    follow-up's version and history are not the activity's business."""
    closed: dict[int, bool] = {}
    for obj in session.deleted:
        if isinstance(obj, Activity) and obj.from_follow_up_id is not None:
            closed[obj.from_follow_up_id] = False
    for obj in [*session.new, *session.dirty]:
        if not isinstance(obj, Activity):
            continue
        state = inspect(obj)
        moved = state.attrs.from_follow_up_id.history
        for before in moved.deleted or ():
            if before is not None:
                closed.setdefault(before, False)
        if obj.from_follow_up_id is None:
            continue
        if state.pending and obj.status == OPEN:
            continue  # a new plan: the follow-up's next step is open, as it was
        if state.pending or moved.has_changes() or state.attrs.status.history.has_changes():
            closed[obj.from_follow_up_id] = obj.status != OPEN
    for value in (True, False):
        ids = [pk for pk, is_closed in closed.items() if is_closed is value]
        if ids:
            # its own stamps kept: a Core UPDATE applies the columns' onupdate, and the sync's
            # "newest" conflict policy reads changed_on (a cancelled call is not an edit)
            session.connection().execute(update(FollowUp).where(FollowUp.id.in_(ids)).values(
                next_step_closed=value, changed_on=FollowUp.changed_on, changed_by_fk=FollowUp.changed_by_fk))


@dataclass
class PlannedActivities:
    """The activities of follow-ups inserted in bulk, ready to store (``plan_ahead``), in
    plain values (an import's writer process stores them, ``follow_ups.NewFollowUps``)."""

    names: list[str]  #: ``activity`` columns, in the order of each row of ``values``
    values: list[list[Any]]  #: each activity's bound values; code, subject, follow-up ``audit.later``
    changes: list[str | None]  #: each activity's create entry (``audit.created_changes``)
    of_row: list[int]  #: the follow-up (its index among the rows) each activity comes from
    untitled: list[int]  #: the activities without a next step text: named after the follow-up's code
    codes: list[str] = field(default_factory=list)  #: set by ``number_planned``
    sources: list[int] = field(default_factory=list)  #: the follow-ups' ids, set by ``insert_planned``
    subjects: list[str] = field(default_factory=list)  #: the subjects filled in, set by ``insert_planned``
    ids: list[int] = field(default_factory=list)  #: drawn by ``number_planned`` (PostgreSQL), set by ``insert_planned``


def plan_ahead(rows: list[dict[str, Any]]) -> PlannedActivities | None:
    """The activities of follow-ups about to be inserted in bulk (``follow_ups.prepare_follow_ups``:
    rows with ``customer_id``, ``owner_id``, ``method_id``, ``next_step``, ``next_step_date``
    and their stamps), as the flush plans one (下一步计划 with a date), but for what storing
    decides (``number_planned``, ``insert_planned``). None when no row has a next step date."""
    wanted = [index for index, row in enumerate(rows) if row.get("next_step_date") is not None]
    if not wanted:
        return None
    kinds = dict(db.session.execute(select(FollowUpMethod.id, FollowUpMethod.code)).all())
    stamp = clock.utc_now()
    due = {day: next_step_due(day) for day in {rows[index]["next_step_date"] for index in wanted}}  # few days
    code, source = audit.later("code"), audit.later("from_follow_up_id")
    planned, untitled = [], []
    for position, index in enumerate(wanted):
        row = rows[index]
        subject = validation.clean_line(row.get("next_step"))[:SUBJECT_LIMIT]
        if not subject:
            subject = audit.later("subject")
            untitled.append(position)
        # the columns left out (note, contact, lead, done_at, ...) are NULL: none has a default
        planned.append({
            "code": code, "kind": KIND_OF_METHOD.get(kinds.get(row.get("method_id")), "task"),
            "subject": subject, "due_at": due[row["next_step_date"]],
            "assignee_id": row["owner_id"], "customer_id": row["customer_id"], "status": OPEN,
            "from_follow_up_id": source, "created_on": stamp, "changed_on": stamp,
            "created_by_fk": row.get("created_by_fk"), "changed_by_fk": row.get("changed_by_fk"), "version": 1})
    names = list(planned[0])
    return PlannedActivities(names=names, values=bulk.bound_values(db.session.get_bind().dialect,
                                                                   Activity.__table__, names, planned),
                             changes=audit.created_changes(Activity, planned, ahead=("id",)), of_row=wanted,
                             untitled=untitled)


def number_planned(planned: PlannedActivities, session: Any) -> None:
    """The codes of ``planned``, counted in ``session`` (see ``customers.number_customers``)."""
    at_code = planned.names.index("code")
    planned.codes = numbering.allocate(session, PREFIX, len(planned.values))
    for values, code in zip(planned.values, planned.codes, strict=True):
        values[at_code] = code
    planned.ids = bulk.draw_ids(session.connection(), Activity.__table__, len(planned.values)) or []


def insert_planned(planned: PlannedActivities, ids: list[int], codes: list[str]) -> None:
    """Insert the numbered ``planned`` for the follow-ups stored with ``ids`` and ``codes``
    (by row); no audit entry yet (``audit_planned``)."""
    at_subject, at_source = (planned.names.index(name) for name in ("subject", "from_follow_up_id"))
    planned.sources = [ids[index] for index in planned.of_row]
    planned.subjects = [""] * len(planned.values)  # filled in only where the entry holds a stand-in
    for values, source in zip(planned.values, planned.sources, strict=True):
        values[at_source] = source
    for position in planned.untitled:
        values = planned.values[position]
        values[at_subject] = planned.subjects[position] = _subject(None, codes[planned.of_row[position]])
    planned.ids = bulk.insert_bound(db.session.connection(), Activity.__table__, planned.names, planned.values,
                                    ids=planned.ids or None)


def audit_planned(planned: PlannedActivities) -> None:
    """The "create" entries of the activities ``insert_planned`` stored: one chain step."""
    audit.append_created(Activity, planned.ids, audit.filled_rows(planned.changes, {
        "code": planned.codes, "from_follow_up_id": planned.sources, "subject": planned.subjects, "id": planned.ids}))


# --- task templates (任务模板, 003) ----------------------------------------------------

#: The manual's examples (003 第三步 3): name, kind, content, next step, days to the next step.
SEED_TEMPLATES = (
    ("初次电话沟通", "call", "介绍公司与产品，了解客户基本情况、联系人及决策流程。", "发送产品资料并约拜访时间", 3),
    ("产品介绍", "visit", "上门或线上演示产品，记录客户关注点和疑问。", "根据反馈准备方案要点", 5),
    ("需求调研", "meeting", "调研客户业务流程、痛点、预算和时间计划。", "整理需求分析并内部评审", 7),
    ("方案讲解", "meeting", "向客户决策人讲解解决方案和报价，确认异议。", "跟进方案反馈与报价确认", 3),
    ("合同跟进", "call", "确认合同条款、审批进度和签约时间。", "跟进合同签署与回款计划", 2),
)


def seed_templates() -> int:
    """Add the manual's task templates when there are none yet (a zh-speaking team's start;
    names stored as typed). Returns how many were added; flushes, the caller commits."""
    if db.session.scalar(select(ActivityTemplate.id).limit(1)) is not None:
        return 0
    for position, (name, kind, content, next_step, days) in enumerate(SEED_TEMPLATES, start=1):
        db.session.add(ActivityTemplate(name=name, kind=kind, content=content, next_step=next_step,
                                        next_step_days=days, position=position, active=True))
    db.session.flush()
    return len(SEED_TEMPLATES)


def template_prefill(pk: Any, today: date | None = None) -> dict[str, Any]:
    """What an active template pre-fills on a form: ``{"id", "name", "kind", "subject",
    "content", "next_step", "next_step_date" (ISO day or None, from today in the CRM zone)}``.
    ``NotFound`` for a missing or inactive one."""
    from app.security.request_bounds import db_int

    template = db.session.get(ActivityTemplate, db_int(pk)) if db_int(pk) is not None else None
    if template is None or not template.active:
        raise records.not_found()
    day = None
    if template.next_step_days is not None:
        day = ((today or clock.local_today()) + timedelta(days=template.next_step_days)).isoformat()
    return {"id": template.id, "name": template.name, "kind": template.kind, "subject": template.name,
            "content": template.content or "", "next_step": template.next_step or "", "next_step_date": day}


# --- demo data -------------------------------------------------------------------------

def build_demo(session: Session, owners: list[Any], count: int = 60) -> int:
    """Demo activities: for the first customers of each owner, calls, visits and meetings
    spread over the past week and the next two (some overdue, some today), at office hours
    in the CRM zone. Flushes; returns how many."""
    kinds = ("call", "visit", "meeting", "email", "task")
    subjects = ("电话回访", "上门拜访", "方案讲解会", "发送报价邮件", "整理需求清单")
    today = clock.local_today()
    made = 0
    for owner in owners:
        customers = session.scalars(select(Customer).where(Customer.owner_id == owner.id,
                                                           Customer.archived_at.is_(None))
                                    .order_by(Customer.id).limit(max(1, count // max(1, len(owners))))).all()
        for index, customer in enumerate(customers):
            day = today + timedelta(days=(index % 21) - 7)
            due = clock.from_local(datetime.combine(day, time(9 + index % 8, 30 if index % 2 else 0)))
            session.add(Activity(kind=kinds[index % 5], subject=f"{subjects[index % 5]} {customer.name}"[:SUBJECT_LIMIT],
                                 due_at=due, assignee_id=owner.id, customer_id=customer.id,
                                 status=DONE if day < today and index % 3 == 0 else OPEN,
                                 done_at=due if day < today and index % 3 == 0 else None))
            made += 1
    session.flush()
    return made


ACTIVITY = declare(RecordType(
    name="activity", model=Activity, label=_l("Activity"), plural=_l("Activities"), plural_en="Activities",
    permission="Activity", scope=scope_rule, code_prefix=PREFIX,
    editable=EDITABLE, save=save_activity, delete=None,
    list_columns=("code", "kind", "subject", "due_at", "assignee", "customer", "lead", "status"),
    show_columns=("code", "kind", "subject", "note", "due_at", "duration_minutes", "assignee", "customer", "contact",
                  "lead", "opportunity", "template", "status", "done_at", "outcome", "follow_up", "from_follow_up"),
    search_columns=("code", "kind", "subject", "due_at", "assignee", "customer", "lead", "opportunity", "status"),
    order_columns=("code", "due_at", "kind", "status"),
    base_order=("due_at", "desc"),
    labels={"kind": _l("Type"), "subject": _l("Subject"), "note": _l("Note"), "due_at": _l("Due"),
            "duration_minutes": _l("Duration (minutes)"), "assignee": _l("Assignee"), "customer": _l("Customer"),
            "contact": _l("Contact"), "lead": _l("Lead"), "opportunity": _l("Opportunity"),
            "template": _l("Template"), "status": _l("Status"), "done_at": _l("Done at"),
            "outcome": _l("Outcome"), "follow_up": _l("Follow-up"), "from_follow_up": _l("Planned by follow-up")},
    descriptions={
        "kind": _l("call, visit, meeting, email or task"),
        "due_at": _l("Date and time in the CRM's time zone, e.g. 2026-12-01 14:30."),
        "assignee": _l("Empty: you. The assignee must be able to see the record."),
        "note": _l("Type @user name to tell a colleague who can see the record."),
    },
    roles={"Sales Rep": "read|write|export", "Sales Manager": "read|write|export", "Customer Service": "read",
           "Read Only": "read"},
    menu_icon="fa-calendar-check-o",
    demo=build_demo,
))
