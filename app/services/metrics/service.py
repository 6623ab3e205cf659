"""The service lead's metrics: open tickets, SLA compliance and breaches, satisfaction,
feedback by type."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, case, false, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models.customers import Customer
from app.models.dictionaries import FeedbackType, Priority, TicketType
from app.models.service import ServiceFeedback, Ticket
from app.security.data_scope import scope_clause
from app.security.request_bounds import db_int
from app.services import tickets
from app.services.metrics.base import (
    Figure,
    FigureSeries,
    Filters,
    Period,
    _between,
    _define,
    _fig,
    _grouped,
    _labels,
    _narrow,
    _percent,
)

# --- service lead ----------------------------------------------------------------------------

def _ticket_conditions(user: Any, filters: Filters) -> list[ColumnElement]:
    """Tickets in the viewer's ticket scope; owner/department filters on the assignee."""
    return [scope_clause(user, Ticket), *_narrow(Ticket.assignee_id, filters)]


def _by_column(column: Any, key: Any) -> list[ColumnElement]:
    if key is None:
        return []
    number = db_int(key)
    return [column == (number if number is not None else -1)]


def _open_tickets(user: Any, filters: Filters, key: Any) -> Select:
    return select(Ticket).where(Ticket.status.in_(tickets.OPEN_STATUSES), *_ticket_conditions(user, filters),
                                *_by_column(Ticket.priority_id, key))


@_define("open_tickets_by_priority", _l("Open tickets by priority"),
         _l("Tickets not yet resolved or closed (new, assigned, in progress, waiting), by priority, as of now."),
         "count", "pie", "service",
         records=lambda user, filters, key: _open_tickets(user, filters, key).order_by(Ticket.resolve_due_at),
         dimension=_l("Priority"))
def _open_tickets_by_priority(user: Any, filters: Filters) -> Figure:
    """Tickets in ``tickets.OPEN_STATUSES`` in the viewer's ticket scope (assignee filters),
    per priority; a snapshot now. One query."""
    stmt = (select(Ticket.priority_id, func.count(Ticket.id)).where(_open_tickets(user, filters, None).whereclause)
            .group_by(Ticket.priority_id))
    counts = dict(db.session.execute(stmt).tuples().all())
    order = {p.id: (p.sort_order, p.id) for p in db.session.scalars(select(Priority))}
    keys = sorted(counts, key=lambda k: order.get(k, (0, k)))
    labels = _labels(Priority, keys)
    return _fig("open_tickets_by_priority", categories=[labels[k] for k in keys], keys=keys,
                series=[FigureSeries(str(_l("Tickets")), [int(counts[k]) for k in keys])],
                value=int(sum(counts.values())))


def _resolved_base(user: Any, filters: Filters, key: Any) -> Select:
    breached = {"met": [Ticket.resolve_breached.is_(False)], "breached": [Ticket.resolve_breached.is_(True)]}
    if key is not None and key not in breached:
        return select(Ticket).where(false())
    return select(Ticket).where(Ticket.resolved_at.is_not(None), *_between(Ticket.resolved_at, filters.period),
                                *_ticket_conditions(user, filters), *(breached[key] if key else []))


@_define("sla_compliance", _l("SLA compliance"),
         _l("Of the tickets resolved in the period, the share resolved within their SLA resolution time. "
            "A late first response alone does not make a ticket non-compliant (see SLA breaches)."),
         "percent", "number", "service",
         records=lambda user, filters, key: _resolved_base(user, filters, key).order_by(Ticket.resolved_at.desc()),
         dimension=_l("Result"))
def _sla_compliance(user: Any, filters: Filters) -> Figure:
    """SLA compliance (002 §十(二) 服务质量): tickets whose ``resolved_at`` lies in the period
    (ticket scope, assignee filters); compliant = ``resolve_breached`` false; value = % of
    compliant (1 decimal, None when none was resolved). Response breaches are counted by
    ``sla_breaches``, not here. Categories "met"/"breached" with their counts. One query."""
    met, late = db.session.execute(select(
        func.coalesce(func.sum(case((Ticket.resolve_breached.is_(False), 1), else_=0)), 0),
        func.coalesce(func.sum(case((Ticket.resolve_breached.is_(True), 1), else_=0)), 0))
        .where(_resolved_base(user, filters, None).whereclause)).one()
    return _fig("sla_compliance", categories=[str(_l("Within SLA")), str(_l("Breached"))], keys=["met", "breached"],
                series=[FigureSeries(str(_l("Tickets")), [int(met), int(late)])],
                value=_percent(met, int(met) + int(late)))


def _breach_condition(period: Period) -> ColumnElement:
    """The ticket breached a deadline inside the period: its response (or resolution) was
    due in the period and that clock is marked breached."""
    return or_(and_(Ticket.response_breached.is_(True), *_between(Ticket.response_due_at, period)),
               and_(Ticket.resolve_breached.is_(True), *_between(Ticket.resolve_due_at, period)))


def _breach_base(user: Any, filters: Filters, key: Any) -> Select:
    return select(Ticket).where(_breach_condition(filters.period), *_ticket_conditions(user, filters),
                                *_by_column(Ticket.type_id, key))


@_define("sla_breaches", _l("SLA breaches"),
         _l("Tickets whose first-response or resolution deadline fell in the period and was missed, by ticket type "
            "(a ticket missing both counts once)."),
         "count", "bar", "service",
         records=lambda user, filters, key: _breach_base(user, filters, key).order_by(Ticket.id.desc()),
         dimension=_l("Ticket type"))
def _sla_breaches(user: Any, filters: Filters) -> Figure:
    """Tickets (ticket scope, assignee filters) with ``response_breached`` and
    ``response_due_at`` in the period, or ``resolve_breached`` and ``resolve_due_at`` in the
    period (the breach happens at the deadline), counted once, by ticket type. One query."""
    stmt = (select(Ticket.type_id, func.count(Ticket.id)).where(_breach_base(user, filters, None).whereclause)
            .group_by(Ticket.type_id))
    rows = db.session.execute(stmt).all()
    labels = _labels(TicketType, [r[0] for r in rows])
    keys, categories = _grouped(rows, labels)
    counts = dict(rows)
    return _fig("sla_breaches", categories=categories, keys=keys,
                series=[FigureSeries(str(_l("Tickets")), [int(counts[k]) for k in keys])],
                value=int(sum(counts.values())))


def _rated_base(user: Any, filters: Filters, key: Any) -> Select:
    score = [] if key is None else [Ticket.satisfaction == (db_int(key) if db_int(key) in range(1, 6) else -1)]
    return select(Ticket).where(Ticket.satisfaction.between(1, 5), *_between(Ticket.rated_at, filters.period),
                                *_ticket_conditions(user, filters), *score)


@_define("satisfaction", _l("Satisfaction"),
         _l("满意度: how many tickets rated in the period got each score from 1 (very unhappy) to 5 (very happy)."),
         "count", "bar", "service",
         records=lambda user, filters, key: _rated_base(user, filters, key).order_by(Ticket.rated_at.desc()),
         dimension=_l("Score"))
def _satisfaction(user: Any, filters: Filters) -> Figure:
    """Satisfaction distribution (001 §四 满意度分布): tickets rated (``rated_at``) in the
    period, per score 1–5 (every score listed, zeros included); ``value`` = the mean score,
    1 decimal (None when nothing was rated). One query."""
    stmt = (select(Ticket.satisfaction, func.count(Ticket.id)).where(_rated_base(user, filters, None).whereclause)
            .group_by(Ticket.satisfaction))
    counts = {int(k): int(n) for k, n in db.session.execute(stmt)}
    rated = sum(counts.values())
    mean = (Decimal(sum(k * n for k, n in counts.items())) / rated).quantize(Decimal("0.1"), ROUND_HALF_UP) \
        if rated else None
    return _fig("satisfaction", categories=[str(k) for k in range(1, 6)], keys=list(range(1, 6)),
                series=[FigureSeries(str(_l("Tickets")), [counts.get(k, 0) for k in range(1, 6)])], value=mean)


def _feedback_base(user: Any, filters: Filters, key: Any) -> Select:
    owners = select(Customer.id).where(*_narrow(Customer.owner_id, filters))
    narrowed = [ServiceFeedback.customer_id.in_(owners)] if filters.owner_id or filters.department_id else []
    return select(ServiceFeedback).where(scope_clause(user, ServiceFeedback),
                                         *_between(ServiceFeedback.received_at, filters.period), *narrowed,
                                         *_by_column(ServiceFeedback.type_id, key))


@_define("feedback_by_type", _l("Feedback by type"),
         _l("Customer feedback (服务反馈) received in the period, by feedback type."),
         "count", "pie", "service",
         records=lambda user, filters, key: _feedback_base(user, filters, key).order_by(ServiceFeedback.received_at.desc()),
         dimension=_l("Feedback type"))
def _feedback_by_type(user: Any, filters: Filters) -> Figure:
    """``ServiceFeedback`` whose ``received_at`` lies in the period (customer scope; owner /
    department filters on the customer's owner), per type. One query."""
    stmt = (select(ServiceFeedback.type_id, func.count(ServiceFeedback.id))
            .where(_feedback_base(user, filters, None).whereclause).group_by(ServiceFeedback.type_id))
    rows = db.session.execute(stmt).all()
    labels = _labels(FeedbackType, [r[0] for r in rows])
    keys, categories = _grouped(rows, labels)
    counts = dict(rows)
    return _fig("feedback_by_type", categories=categories, keys=keys,
                series=[FigureSeries(str(_l("Feedback")), [int(counts[k]) for k in keys])],
                value=int(sum(counts.values())))
