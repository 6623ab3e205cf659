"""Data retention (issue 19, 003 第一步: e.g. customers kept 10 years after their last
activity): a scheduled job lists records past their period as ``RetentionCase`` rows for
an admin to archive, anonymise or keep; nothing is deleted or changed on its own.

"Last activity" (``LAST_ACTIVITY``), defined once per type, as the latest of:

- customer: its own last change, and the last change of any of its follow-ups, contacts,
  orders, contracts, opportunities, tickets, demands and feedback;
- contact: its own last change and its customer's last activity (a contact of a live
  customer is live);
- lead: its own last change;
- follow-up: when it happened and its own last change;
- ticket: its own last change.

A record is due when the CRM-zone date of its last activity plus the period (calendar
years) is today or earlier. Importing this module registers the job ``retention_review``
(daily 04:30 CRM time) and the ``retention_due`` notification.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select

from app import scheduler
from app.clock import local_today, to_local, utc_now
from app.extensions import db
from app.models.customers import Customer, FollowUp
from app.models.operations import RetentionCase
from app.models.orders import Contract, SalesOrder
from app.models.sales import Contact, Lead, Opportunity
from app.models.service import Demand, ServiceFeedback, Ticket
from app.services import notifications
from app.services import settings as crm_settings

OPEN, ARCHIVED, ANONYMISED, KEPT = None, "archived", "anonymised", "kept"
DECISIONS = (ARCHIVED, ANONYMISED, KEPT)

SECTION = _l("Data retention")


@dataclass(frozen=True)
class RetainedType:
    """A record type with a retention period: ``key`` (as in ``RetentionCase.record_type``),
    its model, the setting holding its period in years, the decisions it allows."""

    key: str
    model: type
    label: Any
    setting: str
    decisions: tuple[str, ...]


def _years(key: str, default: int, label: Any, why: Any) -> str:
    crm_settings.declare(crm_settings.Setting(
        f"retention_years_{key}", crm_settings.INT, default, label, why, low=0, high=100, section=SECTION))
    return f"retention_years_{key}"


TYPES: dict[str, RetainedType] = {t.key: t for t in (
    RetainedType("customer", Customer, _l("Customers"), _years(
        "customer", 10, _l("Keep customers (years after last activity)"),
        _l("003 第一步: customers are kept 10 years after their last activity (follow-ups, orders, tickets, "
           "opportunities count). 0 keeps them forever.")), (ARCHIVED, ANONYMISED, KEPT)),
    RetainedType("contact", Contact, _l("Contacts"), _years(
        "contact", 10, _l("Keep contacts (years after last activity)"),
        _l("A contact lives as long as its customer is active, so the customers' 10 years apply. 0 keeps "
           "them forever.")), (ANONYMISED, KEPT)),
    RetainedType("lead", Lead, _l("Leads"), _years(
        "lead", 3, _l("Keep leads (years after last activity)"),
        _l("A lead that did not become a customer holds a stranger's name and phone: 3 years is enough to "
           "follow it up (keep only what is needed). 0 keeps them forever.")), (ANONYMISED, KEPT)),
    RetainedType("follow_up", FollowUp, _l("Follow-ups"), _years(
        "follow_up", 10, _l("Keep follow-ups (years after they happened)"),
        _l("Follow-ups are the customer's history: kept as long as customers (10 years). 0 keeps them "
           "forever.")), (KEPT,)),
    RetainedType("ticket", Ticket, _l("Tickets"), _years(
        "ticket", 5, _l("Keep tickets (years after last change)"),
        _l("Service tickets matter for warranty and disputes: 5 years. 0 keeps them forever.")), (KEPT,)),
)}

DUE_EVENT = notifications.declare_event(notifications.Event(
    "retention_due", _l("Records past their retention period"),
    _l("%(count)s records are past their retention period: archive, anonymise or keep them.")))


# --- last activity ----------------------------------------------------------------------


def _latest(found: dict[int, datetime], rows: Iterable[tuple[int, datetime | None]]) -> None:
    for pk, moment in rows:
        if pk is not None and moment is not None and (found.get(pk) is None or moment > found[pk]):
            found[pk] = moment


def _grouped(column: Any, moment: Any) -> Any:
    return select(column, func.max(moment)).group_by(column)


def customer_activity() -> dict[int, datetime]:
    """customer id -> its last activity (module doc)."""
    found: dict[int, datetime] = {}
    _latest(found, db.session.execute(select(Customer.id, Customer.changed_on)))
    _latest(found, db.session.execute(_grouped(FollowUp.customer_id, FollowUp.followed_at)))
    for model in (FollowUp, Contact, SalesOrder, Contract, Opportunity, Ticket, Demand, ServiceFeedback):
        _latest(found, db.session.execute(_grouped(model.customer_id, model.changed_on)))
    return found


def _contact_activity() -> dict[int, datetime]:
    customers = customer_activity()
    found: dict[int, datetime] = {}
    for pk, customer_id, changed in db.session.execute(select(Contact.id, Contact.customer_id, Contact.changed_on)):
        _latest(found, [(pk, changed), (pk, customers.get(customer_id))])
    return found


def _own(model: type, *columns: Any) -> Callable[[], dict[int, datetime]]:
    def activity() -> dict[int, datetime]:
        found: dict[int, datetime] = {}
        for column in columns:
            _latest(found, db.session.execute(select(model.id, column)))
        return found

    return activity


LAST_ACTIVITY: dict[str, Callable[[], dict[int, datetime]]] = {
    "customer": customer_activity,
    "contact": _contact_activity,
    "lead": _own(Lead, Lead.changed_on),
    "follow_up": _own(FollowUp, FollowUp.followed_at, FollowUp.changed_on),
    "ticket": _own(Ticket, Ticket.changed_on),
}


# --- the period -------------------------------------------------------------------------


def years(key: str) -> int:
    """The retention period of a type in years (0: kept forever)."""
    return int(crm_settings.get(TYPES[key].setting) or 0)


def due_on(moment: datetime | date, period: int) -> date:
    """The CRM-zone date ``period`` calendar years after ``moment`` (29 Feb -> 28 Feb)."""
    day = to_local(moment).date() if isinstance(moment, datetime) else moment
    try:
        return day.replace(year=day.year + period)
    except ValueError:
        return day.replace(year=day.year + period, day=28)


# --- the job ----------------------------------------------------------------------------


def review() -> int:
    """List what fell due (the job's body): new cases for due records without one, a kept
    case reopened after another full period, an open case dropped when its record had
    activity since (or is gone). Never touches the records. Returns the new cases; admins
    are notified when there are any. The caller commits."""
    today, added = local_today(), 0
    for key in TYPES:
        period = years(key)
        if period > 0:
            added += _review_type(key, period, today)
    if added:
        from app.services.notify_hooks import admin_ids

        notifications.notify(DUE_EVENT.key, admin_ids(), params={"count": open_count()},
                             occasion=f"retention_due:{today.isoformat()}")
    return added


def _review_type(key: str, period: int, today: date) -> int:
    activity = LAST_ACTIVITY[key]()
    cases = {c.record_id: c for c in db.session.scalars(select(RetentionCase).where(RetentionCase.record_type == key))}
    added = 0
    for pk, last in activity.items():
        case = cases.get(pk)
        due = due_on(last, period) <= today
        if case is None:
            if due:
                db.session.add(RetentionCase(record_type=key, record_id=pk, last_activity_at=last, listed_at=utc_now()))
                added += 1
        elif case.decision is OPEN and not due:
            db.session.delete(case)
        elif case.decision is OPEN:
            case.last_activity_at = last
        elif case.decision == KEPT and due and case.decided_at and due_on(case.decided_at, period) <= today:
            case.decision, case.decided_at, case.decided_by_id = OPEN, None, None
            case.last_activity_at, case.listed_at = last, utc_now()
            added += 1
    gone = [pk for pk, case in cases.items() if pk not in activity and case.decision is OPEN]
    if gone:
        db.session.execute(delete(RetentionCase).where(RetentionCase.record_type == key,
                                                       RetentionCase.record_id.in_(gone)))
    return added


def retention_review() -> None:
    """Scheduled job ``retention_review``: ``review`` and commit."""
    review()
    db.session.commit()


def open_count() -> int:
    """Open cases of every type."""
    return db.session.scalar(select(func.count(RetentionCase.id)).where(RetentionCase.decision.is_(None))) or 0


scheduler.register("retention_review", "List records past their retention period (data lifecycle)",
                   retention_review, {"hour": 4, "minute": 30})

from app.services.retention.decisions import decide, open_cases  # noqa: E402  (they need TYPES)

__all__ = ["ANONYMISED", "ARCHIVED", "DECISIONS", "KEPT", "TYPES", "decide", "open_cases", "review", "years"]
