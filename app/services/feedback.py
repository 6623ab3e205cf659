"""Service feedback (客户服务反馈, 001 表4, issue 16): what a customer told us — a complaint,
a suggestion or praise — numbered F + date + sequence, how it was handled and how satisfied
the customer was.

The manual's table, field by field (required as it says): 反馈编号 (the CRM numbers it),
客户编号 (required: a live customer in the writer's scope), 反馈类型 (required: 产品投诉 /
服务建议 / 表扬), 问题描述 (required, long text), 处理过程 and 处理结果 (optional long
texts), 满意度评分 (optional, a whole number 1 = 非常不满意 … 5 = 非常满意), 反馈时间
(required: the instant the customer gave it, typed and shown in the CRM's zone; empty =
now).

A complaint can open a ticket (``open_ticket``), once: the ticket points back at it
(``Ticket.feedback_id``). Scope: visible like its customer (``VIA_CUSTOMER``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app import clock
from app.extensions import db
from app.models.customers import Customer
from app.models.service import FeedbackType, Priority, ServiceFeedback, Ticket, TicketType
from app.record_types import VIA_CUSTOMER, RecordType, declare
from app.security import data_scope
from app.services import records, validation
from app.services.demands import check_choices, check_customer, clean_text, required_message
from app.services.errors import RuleViolation
from app.services.importing.columns import CUSTOMER, DATETIME, DICT, ImportField

PREFIX = "F"
EDITABLE = ("customer", "feedback_type", "description", "process", "result", "satisfaction", "received_at")
LOW, HIGH = 1, 5
#: The feedback type that may open a ticket, and what the ticket gets.
COMPLAINT = "complaint"
TICKET_TYPE, TICKET_PRIORITY, TICKET_CHANNEL = "complaint", "high", "phone"
SUBJECT_LIMIT = Ticket.__table__.c.subject.type.length

LABELS = {
    "customer": _l("Customer"), "feedback_type": _l("Feedback type"), "description": _l("Problem description"),
    "process": _l("Handling process"), "result": _l("Handling result"), "satisfaction": _l("Satisfaction (1-5)"),
    "received_at": _l("Feedback time"),
}
REQUIRED = ("customer", "feedback_type", "description", "received_at")


def satisfaction_value(raw: Any) -> int | None:
    """满意度评分 as a whole number 1..5 (None when empty). Text such as "4" or "4分" is
    read; ``ValueError`` with a message for anything else (4.5, 0, 6, "good")."""
    if raw in (None, ""):
        return None
    if isinstance(raw, bool):
        raise ValueError(str(_l("Enter a whole number from %(low)d to %(high)d.", low=LOW, high=HIGH)))
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = validation.clean_line(raw).removesuffix("分").strip()
    if not text.isdigit() or not LOW <= int(text) <= HIGH:
        raise ValueError(str(_l("Enter a whole number from %(low)d to %(high)d.", low=LOW, high=HIGH)))
    return int(text)


def received_instant(raw: Any) -> datetime | None:
    """反馈时间 as an aware UTC instant: a datetime (naive = wall time in the CRM's zone) or
    text such as 2026-12-01 14:30 (``validation.parse_datetime``); ``ValueError`` otherwise."""
    if raw in (None, ""):
        return None
    if isinstance(raw, datetime):
        return clock.from_local(raw)
    moment = validation.parse_datetime(raw)
    return None if moment is None else clock.from_local(moment)


def _clean_numbers(item: ServiceFeedback, is_new: bool, errors: dict[str, str]) -> None:
    try:
        item.satisfaction = satisfaction_value(item.satisfaction)
    except ValueError as exc:
        errors["satisfaction"] = str(exc)
    try:
        moment = received_instant(item.received_at)
    except ValueError as exc:
        errors["received_at"] = str(exc)
        return
    if moment is None and is_new:
        moment = clock.utc_now().replace(microsecond=0)
    item.received_at = moment
    if moment is None:
        errors["received_at"] = required_message("received_at", LABELS)
    elif moment > clock.utc_now() + timedelta(minutes=5):
        errors["received_at"] = str(_l("The feedback time cannot be in the future."))
    else:
        problem = validation.date_problem(moment)
        if problem:
            errors["received_at"] = problem


def save_feedback(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> ServiceFeedback:
    """Add (``pk`` None) or change one service feedback (反馈): the use case behind the form,
    the API, import and sync.

    ``values``: field -> value of ``EDITABLE`` (``customer``, ``feedback_type`` as loaded
    objects; ``satisfaction`` an int or its text, 1..5; ``received_at`` a datetime, naive =
    CRM wall time, or its text; empty on a new feedback = now). Loads it in ``user``'s scope
    (``NotFound``), refuses a stale ``version`` (``StaleRecord``), checks 001 表4's required
    fields (each missing one named with its label), the customer (live, in scope), the
    score and the time (``RuleViolation`` field -> message). Flushes (numbered F + date +
    sequence, audited); the caller commits.
    """
    is_new = pk is None
    item = ServiceFeedback() if is_new else records.load(ServiceFeedback, pk, user)
    if not is_new:
        records.check_version(item, version)
    errors: dict[str, str] = {}
    with db.session.no_autoflush:
        records.assign(item, values, EDITABLE)
        check_customer(item, user, errors, LABELS)
        clean_text(item, "description", errors, LABELS, required=True)
        clean_text(item, "process", errors, LABELS, required=False)
        clean_text(item, "result", errors, LABELS, required=False)
        check_choices(item, ("feedback_type",), errors, LABELS, REQUIRED)
        _clean_numbers(item, is_new, errors)
        if errors:
            raise RuleViolation(errors)
    if is_new:
        db.session.add(item)
    db.session.flush()
    return item


def ticket_of(item: ServiceFeedback) -> Ticket | None:
    """The ticket this feedback opened, if any."""
    return db.session.scalar(select(Ticket).where(Ticket.feedback_id == item.id).order_by(Ticket.id).limit(1))


def ticket_subject(description: str | None) -> str:
    """A ticket subject from a description: its first non-empty line, cut to the column."""
    line = next((part.strip() for part in (description or "").splitlines() if part.strip()), "")
    return line[:SUBJECT_LIMIT]


def _entry(model: type, code: str) -> Any:
    return db.session.scalar(select(model).where(model.code == code))


def _claim(item: ServiceFeedback) -> None:
    """Write the feedback first (its version guard): of two requests opening a ticket for it
    at the same moment, the second one's UPDATE finds a newer version and is refused (409)
    instead of opening a second ticket."""
    item.changed_on = clock.utc_now()
    try:
        db.session.flush()
    except StaleDataError:
        db.session.rollback()
        raise RuleViolation({"_": str(_l("This complaint already opened a ticket."))}, status=409) from None


def open_ticket(feedback_pk: Any, user: Any) -> Ticket:
    """Open a ticket (工单) for a complaint (反馈类型 产品投诉): the use case behind the feedback
    page's button and ``POST /api/v1/service_feedback/<id>/open_ticket``.

    Loads the feedback in ``user``'s scope (``NotFound``); refuses feedback that is not a
    complaint and a complaint that already opened one (``RuleViolation`` 409, naming the
    ticket's code). The ticket is written by ``tickets.save_ticket`` (its rules: SLA,
    transfer rules, audit): the feedback's customer, type complaint, priority high, channel
    phone, subject = the description's first line, description, ``feedback``. Flushes; the
    caller commits.
    """
    from app.services import tickets

    item = records.load(ServiceFeedback, feedback_pk, user)
    if item.feedback_type is None or item.feedback_type.code != COMPLAINT:
        raise RuleViolation({"feedback_type": str(_l(
            "Only a complaint can open a ticket; this feedback is %(type)s.", type=item.feedback_type))},
            status=409)
    existing = ticket_of(item)
    if existing is not None:
        raise RuleViolation({"_": str(_l("This complaint already opened ticket %(code)s.", code=existing.code))},
                            status=409)
    _claim(item)
    values = {"customer": item.customer, "channel": TICKET_CHANNEL, "ticket_type": _entry(TicketType, TICKET_TYPE),
              "priority": _entry(Priority, TICKET_PRIORITY), "subject": ticket_subject(item.description),
              "description": item.description, "feedback": item}
    return tickets.save_ticket(values, user)


def for_customer(user: Any, customer_id: int, limit: int = 50) -> list[ServiceFeedback]:
    """The feedback of one customer that ``user`` may see, newest first (the customer page)."""
    stmt = select(ServiceFeedback).where(ServiceFeedback.customer_id == customer_id,
                                         data_scope.scope_clause(user, ServiceFeedback)) \
        .order_by(ServiceFeedback.received_at.desc(), ServiceFeedback.id.desc()).limit(limit)
    return list(db.session.scalars(stmt))


def _search(text: str) -> Any:
    """Quick search: code or description contains ``text`` (wildcards typed are literal)."""
    return or_(ServiceFeedback.code.icontains(text, autoescape=True),
               ServiceFeedback.description.icontains(text, autoescape=True))


#: Demo feedback (001 表4's kinds): type code, description, process, result, score.
DEMO_ROWS = (
    ("complaint", "收到的产品外包装破损，部分配件缺失。", "客服致电确认，安排补发配件。", "已补发，客户确认收到。", 4),
    ("suggestion", "建议在手机端增加订单进度查询。", None, None, None),
    ("praise", "售后工程师响应及时，问题当天解决。", None, None, 5),
)


def build_demo(session: Session, owners: list[Any], count: int = 30) -> int:
    """Demo feedback on the first customers of each owner, over the past weeks. Flushes;
    returns how many."""
    types = {entry.code: entry for entry in session.scalars(select(FeedbackType))}
    now = clock.utc_now().replace(microsecond=0)
    made = 0
    per_owner = max(1, count // max(1, len(owners)))
    for owner in owners:
        customers = session.scalars(select(Customer).where(Customer.owner_id == owner.id,
                                                           Customer.archived_at.is_(None))
                                    .order_by(Customer.id.desc()).limit(per_owner)).all()
        for index, customer in enumerate(customers):
            kind, description, process, result, score = DEMO_ROWS[index % len(DEMO_ROWS)]
            session.add(ServiceFeedback(customer_id=customer.id, feedback_type=types.get(kind),
                                        description=description, process=process, result=result,
                                        satisfaction=score, received_at=now - timedelta(days=index * 3 + 1)))
            made += 1
    session.flush()
    return made


SERVICE_FEEDBACK = declare(RecordType(
    name="service_feedback", model=ServiceFeedback, label=_l("Service feedback"), plural=_l("Service feedback"),
    plural_en="Service feedback", permission="ServiceFeedback", scope=VIA_CUSTOMER, code_prefix=PREFIX,
    editable=EDITABLE, save=save_feedback, delete=None,
    list_columns=("code", "customer", "feedback_type", "satisfaction", "received_at"),
    show_columns=("code", "customer", "feedback_type", "description", "process", "result", "satisfaction",
                  "received_at"),
    search_columns=("code", "customer", "feedback_type", "description", "satisfaction", "received_at"),
    order_columns=("code", "received_at", "satisfaction"),
    base_order=("received_at", "desc"),
    labels=dict(LABELS),
    descriptions={
        "satisfaction": _l("1 = very dissatisfied … 5 = very satisfied; empty if not asked."),
        "received_at": _l("When the customer gave it, in the CRM's time zone; empty = now."),
    },
    fields=(
        ImportField("code", _l("Feedback code"), "反馈编号", ("code", "feedback no", "feedback code", "编号"),
                    max_length=20, note=_l("Leave empty for new feedback: the CRM numbers it.")),
        ImportField("customer", _l("Customer code"), "客户编号", ("customer", "customer no", "客户代码"), CUSTOMER,
                    required=True),
        ImportField("feedback_type", _l("Feedback type"), "反馈类型", ("type", "feedback type", "类型"), DICT,
                    dictionary=FeedbackType, required=True),
        ImportField("description", _l("Problem description"), "问题描述",
                    ("description", "problem", "feedback", "反馈内容", "问题"), required=True, max_length=10000),
        ImportField("process", _l("Handling process"), "处理过程", ("process", "handling", "处理步骤"),
                    max_length=10000),
        ImportField("result", _l("Handling result"), "处理结果", ("result", "outcome", "resolution", "解决方案"),
                    max_length=10000),
        ImportField("satisfaction", _l("Satisfaction (1-5)"), "满意度评分",
                    ("satisfaction", "score", "rating", "满意度", "评分"), note=_l("A whole number from 1 to 5.")),
        ImportField("received_at", _l("Feedback time"), "反馈时间", ("received", "feedback time", "time", "时间"),
                    DATETIME, required=True, note=_l("Date and time in the CRM's time zone, e.g. 2026-12-01 14:30.")),
    ),
    roles={"Sales Rep": "read|write|export", "Sales Manager": "read|write|export",
           "Customer Service": "read|write|export", "Read Only": "read"},
    menu_category="Service", menu_icon="fa-comment",
    search=_search,
    demo=build_demo,
))
