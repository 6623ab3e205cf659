"""Problem reports (问题反馈, 000 附录3): any user tells the admins about a problem with the
CRM itself — 问题描述, 操作步骤, 错误截图 — and the admins answer within 15 minutes.

A report is a ticket (``tickets.save_ticket``) of type ``internal`` (系统问题), channel
``internal``, no customer: the SLA policy for that type gives the 15-minute first
response, the ticket queue and its log do the rest. The screenshot is an attachment of the
ticket (images only, judged by content). Every active admin is told (event
``problem_reported``, in the CRM and by e-mail).

The reporter sees their own reports and their status (``my_reports``, ``load_own``), and
the screenshot they sent; nobody else's reports (admins and the service team see them
through the ticket queue's own scope).
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models.service import Priority, Ticket, TicketType
from app.security.request_bounds import db_int
from app.services import attachments, notifications, records, validation
from app.services.errors import RuleViolation
from app.services.notifications import EMAIL, IN_APP, Event

TYPE, CHANNEL, PRIORITY = "internal", "internal", "medium"
TEXT_LIMIT = 10000
SUBJECT_LIMIT = Ticket.__table__.c.subject.type.length
LABELS = {"description": _l("Problem description"), "steps": _l("Steps to reproduce"),
          "screenshot": _l("Screenshot")}

REPORTED = notifications.declare_event(Event(
    "problem_reported", _l("Problem reported"), _l("%(by)s reported a problem with the CRM: %(code)s %(subject)s."),
    (IN_APP, EMAIL)))


def _clean(values: dict[str, Any]) -> tuple[str, str | None]:
    unknown = sorted(set(values) - {"description", "steps"})
    if unknown:
        raise RuleViolation({name: str(_l("This field cannot be set.")) for name in unknown})
    errors: dict[str, str] = {}
    description = validation.clean_block(values.get("description")) or None
    steps = validation.clean_block(values.get("steps")) or None
    if description is None:
        errors["description"] = str(_l("%(label)s is required.", label=LABELS["description"]))
    for name, text in (("description", description), ("steps", steps)):
        if text is not None and len(text) > TEXT_LIMIT:
            errors[name] = str(_l("At most %(n)d characters.", n=TEXT_LIMIT))
    if errors:
        raise RuleViolation(errors)
    return description, steps


def _subject(description: str) -> str:
    line = next(part.strip() for part in description.splitlines() if part.strip())
    return line[:SUBJECT_LIMIT]


def _entry(model: type, code: str) -> Any:
    return db.session.scalar(select(model).where(model.code == code))


def _open(description: str, steps: str | None, user: Any) -> Ticket:
    from app.services import tickets

    values = {"channel": CHANNEL, "ticket_type": _entry(TicketType, TYPE), "priority": _entry(Priority, PRIORITY),
              "subject": _subject(description), "description": description, "steps": steps}
    try:
        ticket = tickets.save_ticket(values, user)
    except RuleViolation as exc:  # the ticket's subject is the report's description
        raise RuleViolation({("description" if name == "subject" else name): message
                             for name, message in exc.errors.items()}, status=exc.status) from None
    ticket.created_by_fk = user.id  # the reporter, whoever the session's user is (jobs, tests)
    return ticket


def report_problem(values: dict[str, Any], user: Any, screenshot: Any = None) -> Ticket:
    """Report a problem with the CRM (问题反馈): the use case behind Service > Report a problem.

    ``values``: ``description`` (required, 问题描述) and ``steps`` (操作步骤), texts as typed;
    ``screenshot``: an uploaded file (werkzeug ``FileStorage``) or None/empty — an image
    (png, jpeg, gif, webp by content, ``attachments.SCREENSHOT``) within the attachment size
    setting. Opens an internal ticket through ``tickets.save_ticket`` (type internal,
    channel internal, no customer), stores the screenshot as its attachment and tells every
    active admin (``problem_reported``). ``RuleViolation`` field -> message (description
    missing, a screenshot refused: 413 too large, 415 not an image). Flushes; the caller
    commits (a refusal leaves nothing behind once the caller rolls back).
    """
    from app.services.notify_hooks import admin_ids

    description, steps = _clean(values)
    ticket = _open(description, steps, user)
    db.session.flush()
    if screenshot is not None and getattr(screenshot, "filename", None):
        try:
            attachments.store(ticket, screenshot, user, kinds=attachments.SCREENSHOT)
        except RuleViolation as exc:
            raise RuleViolation({"screenshot": "; ".join(str(m) for m in exc.errors.values())},
                                status=exc.status) from None
    by = user.get_full_name() if hasattr(user, "get_full_name") else str(user)
    notifications.notify(REPORTED.key, admin_ids(), record=ticket,
                         params={"by": by, "code": ticket.code, "subject": ticket.subject})
    return ticket


def _mine(user: Any) -> Any:
    kind = select(TicketType.id).where(TicketType.code == TYPE).scalar_subquery()
    return select(Ticket).where(Ticket.type_id == kind, Ticket.created_by_fk == user.id, Ticket.customer_id.is_(None))


def my_reports(user: Any, limit: int = 100) -> list[Ticket]:
    """The problems ``user`` reported, newest first (their code, subject, status), at most
    ``limit``."""
    return list(db.session.scalars(_mine(user).order_by(Ticket.id.desc()).limit(limit)))


def load_own(pk: Any, user: Any) -> Ticket:
    """One problem ``user`` reported; ``NotFound`` for anyone else's (or a missing one)."""
    number = db_int(pk)
    item = db.session.scalar(_mine(user).where(Ticket.id == number)) if number is not None else None
    if item is None:
        raise records.not_found()
    return item
