"""Sales targets: each rep's target for each month (admin-set), the "target" series of the
manager dashboard's sales by rep and its target attainment.

Rules: 002 §七 and §十(二) (销售业绩, 目标达成), 003 第三步 4 (月度销售业绩报表 against targets).
A target is a Decimal amount in yuan (2 places, >= 0) for one user and one month (the
month's first day in the CRM's zone). Only admins set targets; every change is audited with
its before and after.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from app.extensions import db
from app.models.org import CrmUser
from app.models.reports import SalesTarget
from app.security.request_bounds import db_int
from app.security.rights import is_admin, user_may
from app.services import audit
from app.services.errors import RuleForbidden, RuleViolation

#: The largest target accepted (the Money column holds 16 digits, 2 after the point).
MAX_AMOUNT = Decimal("99999999999999.99")
CENTS = Decimal("0.01")


def month_of(day: date) -> date:
    """The first day of ``day``'s month (any day of the month names it)."""
    return day.replace(day=1)


def parse_amount(raw: Any, field: str = "amount") -> Decimal:
    """A target amount from text or a number: Decimal, 2 places (half up), 0 .. MAX_AMOUNT.

    Raises ``RuleViolation({field: message})``."""
    try:
        amount = Decimal(str(raw).replace(",", "").strip()) if not isinstance(raw, Decimal) else raw
    except (InvalidOperation, ValueError):
        raise RuleViolation({field: _("Enter an amount such as 50000 or 50000.00.")}) from None
    if not amount.is_finite() or amount < 0:
        raise RuleViolation({field: _("A target cannot be negative.")})
    if amount > MAX_AMOUNT:
        raise RuleViolation({field: _("This amount is too large.")})
    return amount.quantize(CENTS, ROUND_HALF_UP)


def _check_admin(user: Any) -> None:
    if not is_admin(user):
        raise RuleForbidden(_("Only administrators set sales targets."))


def _rep(rep_id: Any) -> CrmUser:
    """The seller a target is for: a user who may work opportunities (as ``target_reps``;
    one who has left keeps the targets of their months). Anyone else is refused."""
    pk = db_int(rep_id)
    rep = db.session.get(CrmUser, pk) if pk is not None else None
    if rep is None or not user_may(rep, "can_write", "Opportunity"):
        raise RuleViolation({"user_id": _("Choose a sales rep: only people who sell have targets.")})
    return rep


def set_target(user: Any, rep_id: int, month: date, amount: Any) -> SalesTarget:
    """Set ``rep_id``'s target for ``month`` (any day of it) to ``amount`` (yuan, >= 0).

    Admin only (``RuleForbidden``); an unknown user or a bad amount raises
    ``RuleViolation``. Audited (``sales_target_set``, before and after). Returns the row;
    the caller commits.
    """
    _check_admin(user)
    rep = _rep(rep_id)
    value = parse_amount(amount)
    first = month_of(month)
    item = db.session.scalars(select(SalesTarget).where(SalesTarget.user_id == rep.id,
                                                        SalesTarget.month == first)).first()
    before = None if item is None else str(Decimal(item.amount).quantize(CENTS))
    if item is None:
        item = SalesTarget(user_id=rep.id, month=first, amount=value)
        db.session.add(item)
    elif before == str(value):
        return item
    item.amount = value
    db.session.flush()
    audit.record("sales_target_set", item, {"user": rep.username, "month": first.isoformat(),
                                            "before": before, "after": str(value)}, user=user)
    return item


def set_year(user: Any, year: int, values: Mapping[tuple[int, int], Any]) -> int:
    """The targets screen's one save: ``values`` maps (rep id, month 1..12) -> amount text;
    a blank amount leaves a month as it is. Every amount is checked before any is written
    (``RuleViolation`` names the cells ``target-<rep>-<month>``). Returns how many changed."""
    _check_admin(user)
    parsed: dict[tuple[int, int], Decimal] = {}
    errors: dict[str, str] = {}
    for (rep_id, month), raw in values.items():
        if raw is None or str(raw).strip() == "":
            continue
        try:
            parsed[(rep_id, month)] = parse_amount(raw, f"target-{rep_id}-{month}")
        except RuleViolation as exc:
            errors.update(exc.errors)
    if errors:
        raise RuleViolation(errors)
    current = targets_for_year(year, {rep for rep, _month in parsed})
    changed = 0
    for (rep_id, month), amount in sorted(parsed.items()):
        if current.get((rep_id, month)) != amount:
            set_target(user, rep_id, date(year, month, 1), amount)
            changed += 1
    return changed


def targets_for(month: date, user_ids: Iterable[int] | None = None) -> dict[int, Decimal]:
    """user id -> target (Decimal yuan) for ``month`` (any day of it); users without a
    target are absent. ``user_ids`` None: every user."""
    stmt = select(SalesTarget.user_id, SalesTarget.amount).where(SalesTarget.month == month_of(month))
    if user_ids is not None:
        stmt = stmt.where(SalesTarget.user_id.in_(list(user_ids) or [-1]))
    return {uid: Decimal(amount).quantize(CENTS) for uid, amount in db.session.execute(stmt).tuples()}


def targets_for_year(year: int, user_ids: Iterable[int] | None = None) -> dict[tuple[int, int], Decimal]:
    """(user id, month number) -> target for every month of ``year``."""
    stmt = select(SalesTarget.user_id, SalesTarget.month, SalesTarget.amount).where(
        SalesTarget.month >= date(year, 1, 1), SalesTarget.month <= date(year, 12, 1))
    if user_ids is not None:
        stmt = stmt.where(SalesTarget.user_id.in_(list(user_ids) or [-1]))
    return {(uid, month.month): Decimal(amount).quantize(CENTS)
            for uid, month, amount in db.session.execute(stmt).tuples()}


def target_reps() -> list[CrmUser]:
    """Who gets a target: active users who may work opportunities (``can_write`` on
    Opportunity: the sales roles), by name."""
    users = db.session.scalars(select(CrmUser).where(CrmUser.active.is_(True))
                               .order_by(CrmUser.first_name, CrmUser.last_name, CrmUser.id))
    return [u for u in users if not u.is_expired and user_may(u, "can_write", "Opportunity")]
