"""Running a report: one GROUP BY in the viewer's data scope, pivoted and charted, sensitive
dimensions masked (``run``, ``mask_name``, ``may_reveal_contact``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import BigInteger, cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from app.services.reports.base import (
    _SQL,
    MAX_GROUPS,
    MAX_ROWS,
    OTHER,
    SOURCES,
    ReportResult,
    ReportSpec,
    _Dim,
    _Query,
    _SourceSql,
)
from app.services.reports.declarations import sources
from app.services.reports.spec import _violation

# --- running a report -------------------------------------------------------------------


def _period_conditions(sql: _SourceSql, filters: Mapping[str, Any]) -> list[ColumnElement]:
    from app.clock import from_local

    conditions = []
    column = sql.date()
    for key, shift, op in (("period_start", 0, "__ge__"), ("period_end", 1, "__lt__")):
        if not filters.get(key):
            continue
        day = date.fromisoformat(filters[key]) + timedelta(days=shift)
        bound = from_local(datetime.combine(day, time())) if sql.instant else day
        conditions.append(getattr(column, op)(bound))
    return conditions


def _filter_conditions(sql: _SourceSql, filters: Mapping[str, Any]) -> list[ColumnElement]:
    from app.models.dictionaries import Industry
    from app.models.org import CrmUser
    from app.security.data_scope import department_tree_ids

    conditions = _period_conditions(sql, filters)
    if "owner" in filters:
        conditions.append(sql.owner() == filters["owner"])
    if "department" in filters:
        members = select(CrmUser.id).where(CrmUser.department_id.in_(department_tree_ids(filters["department"])))
        conditions.append(sql.owner().in_(members))
    for key, spec in sql.filters.items():
        if key not in filters:
            continue
        if spec.condition is not None:
            conditions.append(spec.condition(filters[key]))
        elif spec.kind == "tree":
            children = select(Industry.id).where(Industry.parent_id == filters[key])
            conditions.append(spec.column().in_(select(literal(filters[key])).union(children)))
        else:
            conditions.append(spec.column() == filters[key])
    return conditions


def _measure_columns(sql: _SourceSql, measure: str) -> tuple[ColumnElement, ColumnElement]:
    """(sum, count) of each group: a count is (count, count); money sums in whole fen."""
    if measure == "count":
        counted = func.count()
        return counted, counted
    kind, _sep, name = measure.partition(":")
    spec = sql.fields[name]
    column = spec.column()
    if spec.money:
        total = func.sum(cast(func.round(column * 100), BigInteger))
    else:
        total = func.sum(column)
    return total, func.count(column)


def _statement(sql: _SourceSql, spec: ReportSpec, user: Any) -> Any:
    from app.security.data_scope import scope_clause

    query = _Query()
    keys = [sql.dims[d].expr(query).label(f"d{i}") for i, d in enumerate(spec.dimensions)]
    total, counted = _measure_columns(sql, spec.measure)
    stmt = sql.joins(select(*keys, total.label("total"), counted.label("counted")).select_from(sql.model))
    for target, onclause in query.joins.values():
        stmt = stmt.outerjoin(target, onclause)
    stmt = stmt.where(scope_clause(user, sql.scope_model), *_filter_conditions(sql, spec.filters))
    return stmt.group_by(*keys).limit(MAX_ROWS + 1)


def _money(value: Any, money: bool) -> Decimal:
    number = Decimal(str(value or 0))
    return (number / 100).quantize(Decimal("0.01")) if money else number


def _value(measure: str, total: Decimal, counted: int, money: bool = False) -> int | Decimal | None:
    """A group's number: a count (int), a sum (money: Decimal 2 places; a whole-number
    sum of integers: int) or an average (Decimal 2 places, None for no values)."""
    if measure == "count":
        return int(counted)
    if measure.startswith("sum:"):
        if not money and total == total.to_integral():
            return int(total)
        return total.quantize(Decimal("0.01"), ROUND_HALF_UP)
    if not counted:
        return None
    return (total / counted).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _aggregate(raw: list[tuple], dims: int, money: bool) -> dict[tuple, list]:
    """(key1, key2) -> [sum as Decimal, count]; key2 None with one dimension."""
    groups: dict[tuple, list] = {}
    for row in raw:
        keys = (row[0], row[1] if dims > 1 else None)
        total, counted = row[dims], row[dims + 1]
        entry = groups.setdefault(keys, [Decimal(0), 0])
        entry[0] += _money(total, money)
        entry[1] += int(counted or 0)
    return groups


def _cap(groups: dict[tuple, list], position: int) -> dict[tuple, list]:
    """At most ``MAX_GROUPS`` values in dimension ``position``; the smallest rest -> OTHER."""
    weight: dict[Any, Decimal] = {}
    for keys, (total, counted) in groups.items():
        weight[keys[position]] = weight.get(keys[position], Decimal(0)) + abs(total) + counted
    if len(weight) <= MAX_GROUPS:
        return groups
    kept = set(sorted(weight, key=lambda k: weight[k], reverse=True)[:MAX_GROUPS - 1])
    capped: dict[tuple, list] = {}
    for keys, (total, counted) in groups.items():
        new = list(keys)
        if new[position] not in kept:
            new[position] = OTHER
        entry = capped.setdefault(tuple(new), [Decimal(0), 0])
        entry[0] += total
        entry[1] += counted
    return capped


def _labels(dim: _Dim, keys: Iterable[Any], masked: bool) -> dict[Any, str]:
    keys = list(keys)
    found = dim.labels([k for k in keys if k not in (None, OTHER)])
    labels = {k: found.get(k, str(k)) for k in keys if k not in (None, OTHER)}
    if masked:
        labels = {k: mask_name(v) for k, v in labels.items()}
    labels[None] = _("(empty)")
    labels[OTHER] = _("Other")
    return _distinct(labels)


def _distinct(labels: dict[Any, str]) -> dict[Any, str]:
    """Labels made distinct: groups that read alike (two reps both named 张伟, masked names
    张****) stay apart in the pivot, whose rows and columns are keyed by label — "张伟 (2)"."""
    seen: dict[str, int] = {}
    result = {}
    for key, label in labels.items():
        seen[label] = seen.get(label, 0) + 1
        result[key] = label if seen[label] == 1 else f"{label} ({seen[label]})"
    return result


def mask_name(value: str | None) -> str:
    """A person's name as shown without the right to reveal contact data: its first
    character and the mask (张三 -> 张****); ``masking.mask`` keeps a phone's digits, which
    for a name would keep most of it."""
    from app.security.masking import MASK

    return f"{value[:1]}{MASK}" if value else ""


def _ordered(dim: _Dim, keys: Iterable[Any], labels: Mapping[Any, str]) -> list[Any]:
    def sort_key(k: Any) -> tuple:
        if k is None or k == OTHER:
            return (1, k == OTHER, "")
        return (0, False, labels[k] if dim.order == "label" else k)
    try:
        return sorted(set(keys), key=sort_key)
    except TypeError:  # mixed key types (never expected): fall back to labels
        return sorted(set(keys), key=lambda k: (k is None, str(labels.get(k, ""))))


def may_reveal_contact(user: Any) -> bool:
    """Whether the user sees contact data unmasked (Customer ``can_reveal_contact``)."""
    from app.security.rights import user_may

    return user_may(user, "can_reveal_contact", "Customer")


def run(spec: ReportSpec, user: Any) -> ReportResult:
    """Run ``spec`` in ``user``'s data scope (one GROUP BY), pivot it and chart it.

    Values: counts are ints, sums and averages Decimal (2 places; money in yuan). The
    pivot has dim1 labels as rows, dim2 labels as columns (one "value" column with one
    dimension) and a "Total" row and column (averages: of all the records, not of the
    groups). A dimension with more than ``MAX_GROUPS`` values keeps the largest and adds
    "Other". Sensitive dimensions are masked unless the user may reveal contact data;
    ``contact_data`` is True when the report has one either way. Raises
    ``RuleViolation`` for a source the user may not read or a result too big to show.
    """
    from app.extensions import db

    sql = _SQL[spec.source]
    if SOURCES[spec.source] not in sources(user):
        from app.services.errors import RuleForbidden

        raise RuleForbidden(_("You may not report on these records."))
    raw = db.session.execute(_statement(sql, spec, user)).all()
    if len(raw) > MAX_ROWS:
        raise _violation("dimensions", _("This report has too many groups to show: narrow the period or the "
                                         "filters, or choose other dimensions."))
    money = _is_money(sql, spec.measure)
    groups = _aggregate(raw, len(spec.dimensions), money)
    for position in range(len(spec.dimensions)):
        groups = _cap(groups, position)
    return _result(sql, spec, user, groups)


def _is_money(sql: _SourceSql, measure: str) -> bool:
    name = measure.partition(":")[2]
    return bool(name) and sql.fields[name].money


def _result(sql: _SourceSql, spec: ReportSpec, user: Any, groups: dict[tuple, list]) -> ReportResult:
    import pandas as pd

    reveal = may_reveal_contact(user)
    dims = [sql.dims[d] for d in spec.dimensions]
    labels = [_labels(d, {k[i] for k in groups}, d.sensitive and not reveal) for i, d in enumerate(dims)]
    order1 = _ordered(dims[0], {k[0] for k in groups}, labels[0])
    order2 = _ordered(dims[1], {k[1] for k in groups}, labels[1]) if len(dims) > 1 else [None]
    measure_label = str(SOURCES[sql.key].measures[spec.measure].label)
    money = _is_money(sql, spec.measure)
    value = lambda entries: _value(spec.measure, *_sum(entries), money)  # noqa: E731
    col_names = [labels[1][k] for k in order2] if len(dims) > 1 else [measure_label]
    total = _("Total")
    table, rows = [], []
    for k1 in order1:
        cells = [value([groups[(k1, k2)]]) if (k1, k2) in groups else None for k2 in order2]
        for k2, cell in zip(order2, cells, strict=True):
            if (k1, k2) in groups:
                rows.append((labels[0][k1], labels[1][k2] if len(dims) > 1 else None, cell))
        table.append([*cells, value([g for k, g in groups.items() if k[0] == k1])])
    table.append([*(value([g for k, g in groups.items() if k[1] == k2]) for k2 in order2),
                  value(list(groups.values()))])
    pivot = pd.DataFrame(table, index=[labels[0][k] for k in order1] + [total], columns=[*col_names, total],
                         dtype=object)
    pivot.index.name = str(dims[0].label)
    pivot.columns.name = str(dims[1].label) if len(dims) > 1 else None
    figure = _figure(sql, spec, dims, labels, order1, order2, table, measure_label, reveal)
    title = _title(sql, spec, measure_label)
    return ReportResult(spec, title, rows, pivot, figure, contact_data=any(d.sensitive for d in dims))


def _sum(entries: list[list]) -> tuple[Decimal, int]:
    return sum((e[0] for e in entries), Decimal(0)), sum(e[1] for e in entries)


def _title(sql: _SourceSql, spec: ReportSpec, measure_label: str) -> str:
    by = " × ".join(str(sql.dims[d].label) for d in spec.dimensions)
    return _("%(records)s: %(measure)s by %(dimensions)s", records=str(sql.label), measure=measure_label,
             dimensions=by)


def _figure(sql: _SourceSql, spec: ReportSpec, dims: list[_Dim], labels: list[dict], order1: list, order2: list,
            table: list[list], measure_label: str, reveal: bool) -> Any:
    from app.services.metrics import Figure, FigureSeries

    unit = "money" if _is_money(sql, spec.measure) else "count"
    series = [FigureSeries(labels[1][k2] if len(dims) > 1 else measure_label, [row[i] for row in table[:-1]])
              for i, k2 in enumerate(order2)]
    hidden = dims[0].sensitive and not reveal  # a masked value's key would be the value itself
    keys = [None if hidden or k == OTHER else k for k in order1]
    return Figure(key=f"report:{spec.source}", title=_title(sql, spec, measure_label), help="", unit=unit,
                  chart=spec.chart, categories=[labels[0][k] for k in order1], keys=keys, series=series,
                  links=[None] * len(order1), dimension=str(dims[0].label))
