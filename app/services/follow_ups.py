"""Follow-ups (跟进记录, 001 表2): their rules and the save use case.

A follow-up belongs to a live customer in the writer's scope; its owner follows the
owner rule of every record (active, in scope). Forms and the REST API call
``save_follow_up``; the importer and the sync run ``clean_follow_up`` on the records
they load in bulk, so all entry points give the same answers.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.clock import utc_now
from app.extensions import db
from app.models.customers import Customer, FollowUp
from app.security.data_scope import scope_clause
from app.services import records, validation
from app.services.customers import archived_message
from app.services.errors import RuleViolation

#: Fields a save may set (forms, API).
EDITABLE = ("customer", "followed_at", "method", "content", "next_step", "next_step_date", "owner")


def clean_follow_up(item: FollowUp, user: Any) -> None:
    """Normalise and validate a follow-up in place; ``RuleViolation`` lists every error."""
    with db.session.no_autoflush:
        _clean_follow_up(item, user)


def _clean_follow_up(item: FollowUp, user: Any) -> None:
    errors: dict[str, str] = {}
    try:
        item.content = validation.require_text(item.content, 10000, block=True)
    except ValueError as exc:
        errors["content"] = str(exc)
    item.next_step = validation.clean_line(item.next_step) or None
    if item.followed_at is None:
        errors["followed_at"] = str(_l("A time is required."))
    for name in ("followed_at", "next_step_date"):
        problem = validation.date_problem(getattr(item, name))
        if problem and name not in errors:
            errors[name] = problem
    problem = customer_problem(records.related_id(item, "customer"), user)
    if problem:
        errors["customer"] = problem
    try:
        validation.check_choice(item.method, records.previous(item, "method_id"))
    except ValueError as exc:
        errors["method"] = str(exc)
    if errors:
        raise RuleViolation(errors)
    records.settle_owner(item, user)


def customer_problem(customer_id: int | None, user: Any) -> str | None:
    """Why a follow-up cannot be written for this customer (None: it can).

    The customer must exist in the writer's scope (else "not found", whether or not it
    exists) and must not be archived (a change to an archived customer's history is a
    restore first; the importer and the sync give the same message).
    """
    if customer_id is None:
        return str(_l("A customer is required."))
    row = db.session.execute(select(Customer.code, Customer.archived_at).where(
        Customer.id == customer_id, scope_clause(user, Customer))).first()
    if row is None:
        return str(_l("Customer not found."))
    if row.archived_at is not None:
        return archived_message(row.code)
    return None


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
    return item
