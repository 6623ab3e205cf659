"""Follow-ups (跟进记录, 001 表2): their rules and the save use case.

A follow-up belongs to a live customer in the writer's scope; its owner follows the
owner rule of every record (active, in scope). Forms and the REST API call
``save_follow_up``; the importer and the sync run ``clean_follow_up`` on the records
they load in bulk, so all entry points give the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, false, func, select
from sqlalchemy.orm import aliased

from app.clock import utc_now
from app.extensions import db
from app.models.base import current_user_id
from app.models.customers import Customer, FollowUp
from app.security.data_scope import scope_clause
from app.services import audit, bulk, numbering, records, settings, validation
from app.services.customers import archived_message
from app.services.errors import RuleViolation

#: Fields a save may set (forms, API).
EDITABLE = ("customer", "followed_at", "method", "content", "next_step", "next_step_date", "owner")

#: 000 跟进记录必填字段 (沟通内容, 下一步计划 and its date; the method too if the team wants it):
#: which fields a follow-up must carry, from every entry point (``check_follow_up``).
REQUIRED_FIELDS = settings.declare(settings.Setting(
    "follow_up_required", settings.CHOICES, default=["content"], label=_l("Required follow-up fields"),
    help=_l("Fields every follow-up must fill in, in forms, the API, imports and the sync (000 跟进记录必填字段)."),
    options={"content": _l("Content"), "next_step": _l("Next step"), "next_step_date": _l("Next step date"),
             "method": _l("Method")},
    section=_l("Follow-ups")))


def required_fields() -> frozenset[str]:
    """The follow-up fields the admin made required (setting ``follow_up_required``)."""
    return frozenset(settings.get(REQUIRED_FIELDS.key))


#: The message of each field ``_required_problems`` may ask for (lazy: read in the reader's language).
_REQUIRED_MESSAGES = {"next_step": _l("A next step is required (下一步计划)."),
                      "next_step_date": _l("A next step date is required (下一步计划的日期)."),
                      "method": _l("A follow-up method is required.")}


def _required_problems(values: dict[str, Any], errors: dict[str, str], required: frozenset[str]) -> None:
    """A message per required field left empty (content is checked with its own rule)."""
    for name, message in _REQUIRED_MESSAGES.items():
        if name in required and name not in errors and values.get(name) in (None, ""):
            errors[name] = str(message)


def next_step_open(entity: Any = FollowUp) -> Any:
    """SQL: the follow-up's 下一步计划 is still to do — the activity it planned (if any) was
    neither done nor cancelled (``FollowUp.next_step_closed``, kept by ``activities``).
    ``entity``: ``FollowUp`` or an alias of it."""
    return entity.next_step_closed == false()


#: SQLite: open, dated next steps up to which ``next_steps_open`` reads them first.
FEW_OPEN = 5_000


def next_steps_open(before: date | None = None) -> Any:
    """SQL: the follow-up has a dated next step still to do (``next_step_open``), dated before
    ``before`` (a day in the CRM's zone) if given: the home page's "next step due" count and
    the follow-up list it opens (``?next_step_open=1``) read this one condition.

    Which rows the database reads first is chosen here on SQLite, which plans without
    statistics and walked every follow-up in the scope (issue 12, 1,000,000 customers and not
    one open next step: a manager's count 365 ms). When at most ``FEW_OPEN`` such next steps
    exist (a bounded count of ``ix_follow_up_next_step_open``), they are read first, as
    ``id IN (…)``; when more (an import of old next steps, all still open), the scope's rows
    are, and the count stops at its cap among them. PostgreSQL chooses by its statistics.
    """
    open_step = aliased(FollowUp)
    dated = open_step.next_step_date.is_not(None) if before is None else open_step.next_step_date < before
    steps = select(open_step.id).where(dated, next_step_open(open_step))
    if db.session.get_bind().dialect.name == "sqlite" and db.session.scalar(
            select(func.count()).select_from(steps.limit(FEW_OPEN + 1).subquery())) <= FEW_OPEN:
        return FollowUp.id.in_(steps)
    here = FollowUp.next_step_date.is_not(None) if before is None else FollowUp.next_step_date < before
    return and_(here, next_step_open())


def clean_follow_up(item: FollowUp, user: Any, customers: CustomerFacts | None = None) -> None:
    """Normalise and validate a follow-up in place; ``RuleViolation`` lists every error.

    ``customers``: the facts of the customers in question loaded in one go by
    ``customer_facts`` (the importer, per chunk); None asks the database for this one."""
    with db.session.no_autoflush:
        _clean_follow_up(item, user, customers)


def _clean_follow_up(item: FollowUp, user: Any, customers: CustomerFacts | None) -> None:
    values = {name: getattr(item, name) for name in CHECKED if name != "customer_id"}
    values["customer_id"] = records.related_id(item, "customer")
    errors = check_follow_up(values, user, {"method_id": records.previous(item, "method_id")}, customers)
    if "content" not in errors:
        item.content = values["content"]
    item.next_step = values["next_step"]
    if errors:
        raise RuleViolation(errors)
    records.settle_owner(item, user)


#: The values ``check_follow_up`` reads (``method`` an entry object, the rest plain).
CHECKED = ("content", "next_step", "followed_at", "next_step_date", "customer_id", "method")


def check_follow_up(values: dict[str, Any], user: Any, previous: dict[str, Any] | None = None,
                    customers: CustomerFacts | None = None,
                    required: frozenset[str] | None = None) -> dict[str, str]:
    """The follow-up field rules on plain values (``CHECKED``): normalise ``content`` and
    ``next_step`` in place, return field -> message for every error (empty: valid).

    ``previous``: the stored ``method_id`` of the follow-up being edited (None: new);
    ``customers``: see ``clean_follow_up``. Forms and the API reach this through
    ``clean_follow_up``; the importer calls it on the rows of a chunk directly, so all
    entry points give the same answers. The owner rule is ``records.check_owner``.
    ``required``: ``required_fields()`` as the caller read it (the importer: once per
    chunk); None reads the setting now.
    """
    if required is None:
        required = required_fields()
    errors: dict[str, str] = {}
    try:
        values["content"] = validation.require_text(values.get("content"), 10000, block=True)
    except ValueError as exc:
        if "content" in required or validation.clean_block(values.get("content")):
            errors["content"] = str(exc)
        else:
            values["content"] = ""  # not required here: an empty note (the column holds text)
    values["next_step"] = validation.clean_line(values.get("next_step")) or None
    _required_problems(values, errors, required)
    if values.get("followed_at") is None:
        errors["followed_at"] = str(_l("A time is required."))
    for name in ("followed_at", "next_step_date"):
        problem = validation.date_problem(values.get(name))
        if problem and name not in errors:
            errors[name] = problem
    problem = customer_problem(values.get("customer_id"), user, customers)
    if problem:
        errors["customer"] = problem
    try:
        validation.check_choice(values.get("method"), (previous or {}).get("method_id"))
    except ValueError as exc:
        errors["method"] = str(exc)
    return errors


#: customer id -> (code, archived) of the customers in the writer's scope among those asked.
CustomerFacts = dict[int, tuple[str, bool]]
#: Customer ids per query (bounded IN lists on every database).
_FACTS_BATCH = 1000


def customer_facts(customer_ids: Iterable[int | None], user: Any) -> CustomerFacts:
    """What ``customer_problem`` needs of each customer, in one query per 1,000 ids: the
    ones in ``user``'s scope with their code and whether they are archived (a customer
    not in the answer is "not found" to this writer, whether or not it exists)."""
    facts: CustomerFacts = {}
    for chunk in bulk.id_chunks((pk for pk in customer_ids if pk is not None), _FACTS_BATCH):
        # "archived or not" as the database answers it: no instant parsed per customer
        rows = db.session.execute(select(Customer.id, Customer.code, Customer.archived_at.is_not(None)).where(
            Customer.id.in_(chunk), scope_clause(user, Customer)))
        facts.update((pk, (code, bool(archived))) for pk, code, archived in rows)
    return facts


def customer_problem(customer_id: int | None, user: Any, customers: CustomerFacts | None = None) -> str | None:
    """Why a follow-up cannot be written for this customer (None: it can).

    The customer must exist in the writer's scope (else "not found", whether or not it
    exists) and must not be archived (a change to an archived customer's history is a
    restore first; the importer and the sync give the same message). ``customers``: the
    facts already loaded by ``customer_facts`` for this writer (else one query).
    """
    if customer_id is None:
        return str(_l("A customer is required."))
    if customers is None:
        customers = customer_facts([customer_id], user)
    fact = customers.get(customer_id)
    if fact is None:
        return str(_l("Customer not found."))
    code, archived = fact
    if archived:
        return archived_message(code)
    return None


def insert_follow_ups(rows: list[dict[str, Any]]) -> None:
    """Insert many checked new follow-ups at once (imports); codes and ids land in ``rows``.

    ``rows``: ``FollowUp`` columns (``customer_id``, ``followed_at``, ``method_id``,
    ``content``, ``next_step``, ``next_step_date``, ``owner_id``; ``code`` None for the
    CRM to number): ``prepare_follow_ups`` then ``store_follow_ups``.
    """
    bulk.insert_prepared(rows, prepare_follow_ups, store_follow_ups)


@dataclass
class NewFollowUps:
    """Checked new follow-ups ready to store (``prepare_follow_ups``), in plain values only:
    an import's checking process prepares a chunk and its writer process stores it
    (``importing.writer``), so the writer's share of the Python work is numbering and the
    database's. ``codes`` and ``ids`` are set by ``number_follow_ups``, ``insert_new_follow_ups``."""

    names: list[str]  #: ``follow_up`` columns, in the order of each row of ``values``
    values: list[list[Any]]  #: each row's bound values (``bulk.bound_values``)
    changes: list[str | None]  #: each row's create entry (``audit.created_changes``)
    blank: list[int]  #: the rows the CRM numbers as they are stored (code ``audit.later``)
    planned: Any  #: their planned activities (``activities.PlannedActivities``), or None
    mentioned: list[int]  #: the rows whose content has an "@"
    codes: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    numbered: bool = False  #: by ``number_follow_ups`` (see ``customers.NewCustomers``)


def prepare_follow_ups(rows: list[dict[str, Any]]) -> NewFollowUps:
    """``rows`` (as ``insert_follow_ups``) stamped, bound for the database and audited as the
    flush hooks would (the create entry, the planned activity of a next step with a date),
    all but what storing decides: codes, ids. Queries nothing but the follow-up methods."""
    from app.services import activities

    stamp, uid = utc_now(), current_user_id()
    blank = []
    for index, row in enumerate(rows):
        if not row.get("code"):
            row["code"] = audit.later("code")
            blank.append(index)
        row.update(created_on=stamp, changed_on=stamp, created_by_fk=uid, changed_by_fk=uid, version=1)
    names = list(rows[0])
    return NewFollowUps(
        names=names, values=bulk.bound_values(db.session.get_bind().dialect, FollowUp.__table__, names, rows),
        changes=audit.created_changes(FollowUp, rows, ahead=("id",)), blank=blank,
        planned=activities.plan_ahead(rows),  # 下一步计划 with a date: its activity, as the flush plans it
        mentioned=[index for index, row in enumerate(rows) if "@" in (row.get("content") or "")])


def store_follow_ups(new: NewFollowUps) -> None:
    """Number, insert and audit the follow-ups ``new`` (``prepare_follow_ups``) and their
    planned activities in the session's transaction (the caller commits); tell the people
    they @mention. The G + date + sequence codes and the ids land in ``new``."""
    number_follow_ups(new, db.session)
    insert_new_follow_ups(new)
    audit_new_follow_ups(new)


def number_follow_ups(new: NewFollowUps, session: Any) -> None:
    """The codes of ``new``'s follow-ups without one and of their planned activities, counted
    in ``session`` (see ``customers.number_customers``)."""
    new.codes = numbering.number_bound(session, numbering.FOLLOW_UP_PREFIX, new.names, new.values, new.blank)
    new.ids = bulk.draw_ids(session.connection(), FollowUp.__table__, len(new.values)) or []  # PostgreSQL
    if new.planned is not None:
        from app.services import activities

        activities.number_planned(new.planned, session)
    new.numbered = True


def insert_new_follow_ups(new: NewFollowUps) -> None:
    """Insert the numbered ``new`` (``number_follow_ups``) and their planned activities; the
    ids land in ``new``. No audit entry yet."""
    new.ids = bulk.insert_bound(db.session.connection(), FollowUp.__table__, new.names, new.values,
                                ids=new.ids or None)
    if new.planned is not None:
        from app.services import activities

        activities.insert_planned(new.planned, new.ids, new.codes)


def audit_new_follow_ups(new: NewFollowUps) -> None:
    """The "create" entries of what ``insert_new_follow_ups`` stored (a chain step for the
    follow-ups, one for their activities); the people they @mention are told."""
    audit.append_created(FollowUp, new.ids, audit.filled_rows(new.changes, {"code": new.codes, "id": new.ids}))
    if new.planned is not None:
        from app.services import activities

        activities.audit_planned(new.planned)
    _tell_mentioned_ids([new.ids[index] for index in new.mentioned])


def save_follow_up(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> FollowUp:
    """Add (``pk`` None) or change one follow-up: the use case behind the form and the API.

    ``values``: field -> value (``customer``/``method``/``owner`` as loaded objects).
    Loads the follow-up in ``user``'s scope (``NotFound``), refuses a stale ``version``
    (``StaleRecord``), applies ``clean_follow_up`` (``RuleViolation``) and flushes; the
    flush hooks number (G + date + sequence) and audit. The caller commits.
    """
    item = FollowUp() if pk is None else records.load(FollowUp, pk, user)
    if pk is not None:
        records.check_version(item, version)
    with db.session.no_autoflush:
        records.assign(item, values, EDITABLE)
        if pk is None and item.followed_at is None:
            item.followed_at = utc_now()
        clean_follow_up(item, user)
    if pk is None:
        db.session.add(item)
    db.session.flush()
    _tell_mentioned(item, user)
    return item


def _tell_mentioned_ids(ids: list[int]) -> None:
    """@mentions in follow-ups inserted in bulk (imports) tell people as a saved one does;
    ``ids``: only the rows whose content has an "@" (an import without mentions pays nothing)."""
    if not ids:
        return
    from app.models.org import CrmUser

    writer = db.session.get(CrmUser, current_user_id()) if current_user_id() is not None else None
    for chunk in bulk.id_chunks(ids, _FACTS_BATCH):
        for item in db.session.scalars(select(FollowUp).where(FollowUp.id.in_(chunk))):
            _tell_mentioned(item, writer)


def _tell_mentioned(item: FollowUp, user: Any) -> None:
    """People @mentioned in the content who may see the customer are told (``mentions``)."""
    from app.services import mentions

    mentions.notify_mentions(item.content, item, user,
                             lambda person: bool(customer_facts([item.customer_id], person)), item.code)
