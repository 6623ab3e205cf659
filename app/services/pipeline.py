"""The sales pipeline read side: the kanban board and the weighted forecast (issue 13).

Rules from the manuals (002 §四, 003 第二步–第三步): each stage carries a weight (%); an
opportunity's probability is its manual override, else its stage's weight; a won
opportunity counts at 100 % and a lost one at 0 % (it never enters the forecast).
Weighted amount = amount × probability / 100.

Everything here is scoped (``app.security.data_scope.scope_clause``) and bounded: the
board is one GROUP BY query for the column totals plus one ``LIMIT CARDS`` query per
active stage; the forecast is one GROUP BY query over at most ``MAX_MONTHS`` months. The
aggregates read ``opportunity`` alone (stage weights go into the SQL as a CASE), so the
indexes of migration a4c6e8f0b2d5 ((stage_id, changed_on), (owner_id, stage_id, changed_on),
covering ones for totals and the forecast) serve them and give the cards in order
(BENCHMARKS.md: 100,000 opportunities).
Money is summed as integer fen in SQL (exact on SQLite, whose NUMERIC is a float, and on
PostgreSQL), then turned into ``Decimal`` yuan.

Stage moves are not here: they go through ``app.services.opportunities.move_stage``
(``move`` only refuses a target the kanban does not offer, then calls it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, case, cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from app.clock import local_today
from app.extensions import db
from app.models.customers import Customer
from app.models.org import CrmUser, Department
from app.models.sales import Opportunity, Stage
from app.security.data_scope import department_tree_ids, scope_clause, visible_owner_ids
from app.security.request_bounds import db_int
from app.services.errors import RuleViolation
from app.services.opportunities import OPPORTUNITY, REQUIRABLE, move_stage

#: Cards shown per column (newest changed first); the rest is "n more".
CARDS = 50
#: Longest forecast (months) one request may ask for.
MAX_MONTHS = 24
DEFAULT_MONTHS = 6
GROUPS = ("owner", "department")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class BoardFilters:
    """What the kanban shows: one owner, one department (with its sub-departments) and/or
    one expected-close month (first day of that month). None = no filter."""

    owner_id: int | None = None
    department_id: int | None = None
    close_month: date | None = None

    def as_args(self) -> dict[str, str]:
        """The filters as the page's query arguments (links, the move endpoint's URL)."""
        args = {}
        if self.owner_id is not None:
            args["owner"] = str(self.owner_id)
        if self.department_id is not None:
            args["department"] = str(self.department_id)
        if self.close_month is not None:
            args["close_month"] = self.close_month.strftime("%Y-%m")
        return args


@dataclass
class Card:
    """One opportunity on the board (what the card shows and what a drag sends back)."""

    id: int
    code: str
    title: str
    customer: str
    amount: Decimal | None
    owner: str
    expected_close: date | None
    version: int
    probability: int


@dataclass
class Column:
    """One active stage: totals over every opportunity in it (within scope and filters),
    and its first ``CARDS`` cards. Amounts in yuan (``Decimal``, 2 decimals)."""

    stage: Stage
    count: int = 0
    total: Decimal = Decimal("0.00")
    weighted: Decimal = Decimal("0.00")
    cards: list[Card] = field(default_factory=list)

    @property
    def more(self) -> int:
        """Opportunities in the column beyond the cards shown."""
        return max(self.count - len(self.cards), 0)

    def totals(self) -> dict[str, Any]:
        """The column's figures as JSON-ready values (the move endpoint sends these back)."""
        return {"stage_id": self.stage.id, "count": self.count, "total": str(self.total),
                "weighted": str(self.weighted), "more": self.more}


def month_start(text: str | None, field_name: str) -> date | None:
    """``YYYY-MM`` -> the first day of that month; empty -> None.

    Raises ``RuleViolation({field_name: message})`` for anything else.
    """
    if text is None or not str(text).strip():
        return None
    match = _MONTH.match(str(text).strip())
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1900:
        raise RuleViolation({field_name: str(_l("Enter a month as YYYY-MM, e.g. 2024-05."))}, status=400)
    return date(int(match.group(1)), int(match.group(2)), 1)


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def filter_id(raw: Any, field_name: str, message: Any) -> int | None:
    """A filter's record id from request args: None when empty; ``RuleViolation({field_name:
    message}, status=400)`` when it is not an id a database column can hold. The pipeline's
    and the dashboards' filter bars read owner and department this way."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    number = db_int(raw.strip() if isinstance(raw, str) else raw)
    if number is None:
        raise RuleViolation({field_name: str(message)}, status=400)
    return number


def owner_choices(user: Any) -> list[tuple[int, str]]:
    """Active-or-not users whose opportunities ``user`` may see, as (id, name), by name."""
    owners = visible_owner_ids(user)
    stmt = select(CrmUser.id, CrmUser.first_name, CrmUser.last_name).order_by(
        CrmUser.first_name, CrmUser.last_name, CrmUser.id)
    if owners is not None:
        stmt = stmt.where(CrmUser.id.in_(sorted(owners) or [-1]))
    return [(uid, _name(first, last)) for uid, first, last in db.session.execute(stmt)]


def department_choices(user: Any) -> list[tuple[int, str]]:
    """Departments worth filtering by: every one for a user who sees every owner, else the
    departments of the owners in scope (and their sub-departments)."""
    owners = visible_owner_ids(user)
    stmt = select(Department.id, Department.name).order_by(Department.name)
    if owners is not None:
        own = set(db.session.scalars(select(CrmUser.department_id).where(
            CrmUser.id.in_(sorted(owners) or [-1]), CrmUser.department_id.is_not(None))))
        reachable = set().union(*(department_tree_ids(dep) for dep in own)) if own else set()
        stmt = stmt.where(Department.id.in_(sorted(reachable) or [-1]))
    return list(db.session.execute(stmt).tuples())


def parse_filters(args: Any, user: Any) -> BoardFilters:
    """The board filters from query arguments (``owner``, ``department``, ``close_month``).

    An owner must be someone whose opportunities ``user`` may see and a department one of
    ``department_choices``: anything else is refused (``RuleViolation``, status 400) rather
    than ignored, so a filtered board never silently shows everything.
    """
    owner_id = filter_id(args.get("owner"), "owner", _l("Choose an owner from the list."))
    department_id = filter_id(args.get("department"), "department", _l("Choose a department from the list."))
    close_month = month_start(args.get("close_month"), "close_month")
    if owner_id is not None:
        owners = visible_owner_ids(user)
        if owners is not None and owner_id not in owners:
            raise RuleViolation({"owner": str(_l("Choose an owner from the list."))}, status=400)
    if department_id is not None and department_id not in {dep for dep, _ in department_choices(user)}:
        raise RuleViolation({"department": str(_l("Choose a department from the list."))}, status=400)
    return BoardFilters(owner_id, department_id, close_month)


def probability(stage: Stage, override: int | None) -> int:
    """Probability (%) of an opportunity in ``stage``: 100 when won, 0 when lost, else the
    manual override, else the stage's weight."""
    if stage.is_won:
        return 100
    if stage.is_lost:
        return 0
    return override if override is not None else (stage.weight or 0)


def probability_expr(stages: list[Stage]) -> ColumnElement:
    """``probability`` in SQL over ``Opportunity`` alone: the stages' flags and weights are
    written into a CASE on ``stage_id`` (stages are a short dictionary), so the aggregates
    need no join and an index holding (stage, override, amount) covers them."""
    fixed = {stage.id: 100 if stage.is_won else 0 for stage in stages if stage.is_won or stage.is_lost}
    weights = {stage.id: stage.weight or 0 for stage in stages if stage.id not in fixed}
    by_weight = case(weights, value=Opportunity.stage_id, else_=0) if weights else literal(0)
    own = func.coalesce(Opportunity.probability_override, by_weight)
    return case(fixed, value=Opportunity.stage_id, else_=own) if fixed else own


def all_stages() -> list[Stage]:
    """Every stage (active or not: an opportunity may sit in a retired one), in order."""
    return list(db.session.scalars(select(Stage).order_by(Stage.sort_order, Stage.id)))


def _fen() -> ColumnElement:
    """The amount in whole fen (integer), 0 when empty: sums stay exact on every database."""
    return cast(func.round(func.coalesce(Opportunity.amount, 0) * 100), BigInteger)


def _yuan(fen: Any, scale: int = 100) -> Decimal:
    """Integer fen (× ``scale``/100) from SQL -> yuan with 2 decimals."""
    return (Decimal(int(fen or 0)) / scale).quantize(Decimal("0.01"))


def _conditions(user: Any, filters: BoardFilters) -> list[ColumnElement]:
    conditions = [scope_clause(user, Opportunity)]
    if filters.owner_id is not None:
        conditions.append(Opportunity.owner_id == filters.owner_id)
    if filters.department_id is not None:
        members = select(CrmUser.id).where(CrmUser.department_id.in_(sorted(department_tree_ids(filters.department_id))))
        conditions.append(Opportunity.owner_id.in_(members))
    if filters.close_month is not None:
        conditions.append(Opportunity.expected_close >= filters.close_month)
        conditions.append(Opportunity.expected_close < add_months(filters.close_month, 1))
    return conditions


def column_totals(user: Any, filters: BoardFilters) -> list[Column]:
    """One ``Column`` per active stage (in order) with count, total and weighted total, no cards.

    One GROUP BY stage query over ``Opportunity`` alone (``probability_expr``): no stage
    filter either, so the planner takes the (owner, stage, …) or (stage, …) covering index;
    retired stages' rows are dropped here.
    """
    stages = all_stages()
    fen = _fen()
    stmt = (select(Opportunity.stage_id, func.count(Opportunity.id), func.sum(fen),
                   func.sum(fen * probability_expr(stages)))
            .where(*_conditions(user, filters))
            .group_by(Opportunity.stage_id))
    sums = {stage_id: (count, total, weighted) for stage_id, count, total, weighted in db.session.execute(stmt)}
    columns = []
    for stage in stages:
        if stage.active:
            count, total, weighted = sums.get(stage.id, (0, 0, 0))
            columns.append(Column(stage, int(count), _yuan(total), _yuan(weighted, 10_000)))
    return columns


def _cards(user: Any, filters: BoardFilters, stage: Stage, limit: int) -> list[Card]:
    stmt = (select(Opportunity.id, Opportunity.code, Opportunity.title, Customer.name, Opportunity.amount,
                   CrmUser.first_name, CrmUser.last_name, Opportunity.expected_close, Opportunity.version,
                   Opportunity.probability_override)
            .join(Customer, Customer.id == Opportunity.customer_id)
            .join(CrmUser, CrmUser.id == Opportunity.owner_id)
            .where(Opportunity.stage_id == stage.id, *_conditions(user, filters))
            .order_by(Opportunity.changed_on.desc(), Opportunity.id.desc())
            .limit(limit))
    return [Card(pk, code, title, customer, amount, _name(first, last), close, version, probability(stage, override))
            for pk, code, title, customer, amount, first, last, close, version, override
            in db.session.execute(stmt)]


def board(user: Any, filters: BoardFilters | None = None, *, cards: int = CARDS) -> list[Column]:
    """The kanban: one ``Column`` per active stage (in order) with count, total amount,
    weighted total and its first ``cards`` cards (newest changed first).

    Scoped to ``user``; ``filters`` narrow every figure alike. Queries: one for the totals,
    one per column with ``cards`` (skipped for an empty column).
    """
    filters = filters or BoardFilters()
    columns = column_totals(user, filters)
    for column in columns:
        if column.count and cards > 0:
            column.cards = _cards(user, filters, column.stage, cards)
    return columns


@dataclass
class Forecast:
    """Weighted amounts (yuan) by group and month.

    ``months``: first days of the months shown; ``rows``: (group key, label, {month: amount},
    row total), by label; ``month_totals`` and ``total`` sum the rows; ``undated``: open or
    won opportunities in scope with no expected close date (not placed in any month).
    """

    group_by: str
    months: list[date]
    rows: list[tuple[Any, str, dict[date, Decimal], Decimal]]
    month_totals: dict[date, Decimal]
    total: Decimal
    undated: int


def forecast(user: Any, group_by: str = "owner", months: int = DEFAULT_MONTHS, start: date | None = None) -> Forecast:
    """Σ amount × probability / 100 by expected-close month and owner (or the owner's
    department), over ``months`` months from ``start``'s month (default: this month, CRM zone).

    Scoped to ``user``; lost opportunities are left out, won ones count at 100 %. One GROUP
    BY query (plus one count of undated ones). Raises ``RuleViolation`` (400) for an unknown
    ``group_by`` or ``months`` outside 1..``MAX_MONTHS``.
    """
    if group_by not in GROUPS:
        raise RuleViolation({"group_by": str(_l("Group by owner or by department."))}, status=400)
    if not isinstance(months, int) or isinstance(months, bool) or not 1 <= months <= MAX_MONTHS:
        raise RuleViolation({"months": str(_l("Choose between 1 and %(max)d months.", max=MAX_MONTHS))},
                            status=400)
    first = (start or local_today()).replace(day=1)
    shown = [add_months(first, i) for i in range(months)]
    key = CrmUser.department_id if group_by == "department" else Opportunity.owner_id
    stages = all_stages()
    lost = [stage.id for stage in stages if stage.is_lost]
    open_or_won = [scope_clause(user, Opportunity)] + ([Opportunity.stage_id.not_in(lost)] if lost else [])
    # Grouped by day, folded into months here: a month expression per row (strftime /
    # date_trunc) costs more than the ≤ 31 × months rows per group it saves, and is not portable.
    stmt = (select(key, Opportunity.expected_close, func.sum(_fen() * probability_expr(stages)))
            .select_from(Opportunity)
            .where(*open_or_won, Opportunity.expected_close >= first,
                   Opportunity.expected_close < add_months(first, months))
            .group_by(key, Opportunity.expected_close))
    if group_by == "department":
        stmt = stmt.join(CrmUser, CrmUser.id == Opportunity.owner_id)
    sums: dict[Any, dict[date, int]] = {}
    for group, day, weighted in db.session.execute(stmt):
        month = _as_date(day).replace(day=1)
        row = sums.setdefault(group, {})
        row[month] = row.get(month, 0) + int(weighted or 0)
    cells = {group: {m: _yuan(v, 10_000) for m, v in row.items()} for group, row in sums.items()}
    undated = db.session.scalar(select(func.count(Opportunity.id))
                                .where(*open_or_won, Opportunity.expected_close.is_(None)))
    labels = _group_labels(group_by, set(cells))
    rows = sorted(((group, labels[group], values, sum(values.values(), Decimal("0.00")))
                   for group, values in cells.items()), key=lambda row: (row[1], str(row[0])))
    month_totals = {m: sum((row[2].get(m, Decimal(0)) for row in rows), Decimal("0.00")) for m in shown}
    return Forecast(group_by, shown, rows, month_totals, sum(month_totals.values(), Decimal("0.00")),
                    int(undated or 0))


def _as_date(value: Any) -> date:
    """A Date column's value (``date``; SQLite may hand back ISO text in aggregates)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _group_labels(group_by: str, keys: set[Any]) -> dict[Any, str]:
    ids = sorted(k for k in keys if k is not None)
    labels: dict[Any, str] = {None: str(_l("(no department)"))}
    if group_by == "department":
        labels.update(list(db.session.execute(
            select(Department.id, Department.name).where(Department.id.in_(ids or [-1]))).tuples()))
    else:
        labels.update((uid, _name(first, last)) for uid, first, last in db.session.execute(
            select(CrmUser.id, CrmUser.first_name, CrmUser.last_name).where(CrmUser.id.in_(ids or [-1]))))
    return labels


def _name(first: str | None, last: str | None) -> str:
    return " ".join(part for part in (first, last) if part)


#: The input the kanban's small form offers for a field a stage requires (anything else
#: in ``opportunities.REQUIRABLE`` gets a one-line text input).
FIELD_KINDS = {"demand": "textarea", "expected_close": "date", "amount": "amount", "unit_price": "amount",
               "quantity": "amount", "probability_override": "amount"}


def field_labels() -> dict[str, str]:
    """Opportunity field -> label as the opportunity screen shows it (its declaration's
    labels), in the current language."""
    return {name: str(label) for name, label in OPPORTUNITY.labels.items()}


def missing_fields(errors: dict[str, str]) -> list[dict[str, str]]:
    """The fields of a refused move that can be filled in on the kanban and sent along with
    the move (``opportunities.REQUIRABLE``): name, label, input kind and the message."""
    labels = field_labels()
    return [{"name": name, "label": labels.get(name, name), "kind": FIELD_KINDS.get(name, "text"),
             "message": str(message)}
            for name, message in errors.items() if name in REQUIRABLE]


def move(pk: Any, stage_id: Any, user: Any, *, version: Any, values: dict[str, Any] | None = None) -> Opportunity:
    """A kanban drop: ``app.services.opportunities.move_stage`` to an active stage.

    Refuses (``RuleViolation``, 422) a stage that does not exist or is inactive (the board
    offers neither), and ``values`` naming fields a drop cannot set (only
    ``opportunities.REQUIRABLE``). Everything else is the use case's: ``NotFound`` for a
    missing or out-of-scope opportunity, ``StaleRecord`` (409) for a stale ``version``,
    ``RuleViolation({field: message})`` for required fields the target stage still misses.
    The caller commits.
    """
    target = db_int(stage_id)
    stage = db.session.get(Stage, target) if target is not None else None
    if stage is None or not stage.active:
        raise RuleViolation({"stage": str(_l("Unknown stage: reload the page."))})
    unknown = sorted(set(values or {}) - set(REQUIRABLE))
    if unknown:
        raise RuleViolation({name: str(_l("This field cannot be set from the pipeline.")) for name in unknown})
    return move_stage(pk, stage.id, user, version=version, values=values)
