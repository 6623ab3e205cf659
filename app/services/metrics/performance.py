"""The sales manager's sales figures (月度销售业绩报表): sales by rep, region and product,
and target attainment."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, select

from app.extensions import db
from app.models.orders import OrderLine, SalesOrder
from app.models.org import CrmUser
from app.models.reports import SalesTarget
from app.models.sales import Product
from app.security.data_scope import owner_in, scope_clause, visible_owner_ids
from app.security.request_bounds import db_int
from app.services.metrics.base import (
    CONFIRMED,
    Figure,
    FigureSeries,
    Filters,
    _define,
    _departments,
    _fen,
    _fig,
    _grouped,
    _narrow,
    _on_days,
    _people,
    _percent,
    _yuan,
)

# --- manager: sales (月度销售业绩报表) --------------------------------------------------------------

def _orders_base(user: Any, filters: Filters) -> Select:
    return select(SalesOrder).where(SalesOrder.status.in_(CONFIRMED), scope_clause(user, SalesOrder),
                                    *_on_days(SalesOrder.order_date, filters.period),
                                    *_narrow(SalesOrder.owner_id, filters))


def _targets(user: Any, filters: Filters) -> dict[int, Decimal]:
    """Sales targets (yuan) per rep for the period's months, of the people in view."""
    stmt = (select(SalesTarget.user_id, func.sum(_fen(SalesTarget.amount)))
            .where(SalesTarget.month >= filters.period.start, SalesTarget.month < filters.period.end,
                   owner_in(SalesTarget.user_id, visible_owner_ids(user)), *_narrow(SalesTarget.user_id, filters))
            .group_by(SalesTarget.user_id))
    return {uid: _yuan(fen) for uid, fen in db.session.execute(stmt)}


def _orders_by(column: Any) -> Callable[[Any, Filters, Any], Select]:
    def records(user: Any, filters: Filters, key: Any) -> Select:
        stmt = _orders_base(user, filters)
        if key is not None:
            number = db_int(key)
            stmt = stmt.where(column.is_(None) if key == "none" else column == (number if number is not None else -1))
        return stmt.order_by(SalesOrder.order_date.desc(), SalesOrder.id.desc())
    return records


@_define("sales_by_rep", _l("Sales by rep"),
         _l("月度销售业绩: confirmed sales orders (approved onward; not draft, waiting or cancelled) by order date in "
            "the period, total per owner, beside the owner's sales target for the period."),
         "money", "bar", "manager", records=_orders_by(SalesOrder.owner_id), dimension=_l("Sales rep"))
def _sales_by_rep(user: Any, filters: Filters) -> Figure:
    """月度销售业绩 by rep (003 第三步 4): Σ ``total`` of orders in ``CONFIRMED`` statuses
    (approved, in production, delivering, delivered, closed) whose ``order_date`` lies in
    the period, per owner (yuan Decimal; amounts as recorded, whatever their currency);
    series "Sales" and "Target" (``SalesTarget`` of the period's months; None when the rep
    has none). Reps with a target and no sales are listed. Two queries."""
    stmt = (select(SalesOrder.owner_id, func.sum(_fen(SalesOrder.total)))
            .where(_orders_base(user, filters).whereclause).group_by(SalesOrder.owner_id))
    sales = {uid: _yuan(fen) for uid, fen in db.session.execute(stmt)}
    targets = _targets(user, filters)
    names = _people(set(sales) | set(targets))
    keys, categories = _grouped([(k,) for k in set(sales) | set(targets)], names)
    return _fig("sales_by_rep", categories=categories, keys=keys,
                series=[FigureSeries(str(_l("Sales")), [sales.get(k, Decimal("0.00")) for k in keys]),
                        FigureSeries(str(_l("Target")), [targets.get(k) for k in keys])],
                value=sum(sales.values(), Decimal("0.00")))


@_define("sales_by_department", _l("Sales by region"),
         _l("Confirmed sales orders by order date in the period, total per region (the order owner's department)."),
         "money", "bar", "manager",
         records=lambda user, filters, key: _orders_by(SalesOrder.owner_id)(user, filters, None).where(
             SalesOrder.owner_id.in_(select(CrmUser.id).where(
                 CrmUser.department_id.is_(None) if key == "none" else CrmUser.department_id == (db_int(key) or -1))))
         if key is not None else _orders_by(SalesOrder.owner_id)(user, filters, None), dimension=_l("Region"))
def _sales_by_department(user: Any, filters: Filters) -> Figure:
    """``sales_by_rep``'s orders per region = the owner's department (its own, not rolled
    up to parents); key "none" for owners without one. One query."""
    stmt = (select(CrmUser.department_id, func.sum(_fen(SalesOrder.total)))
            .join(CrmUser, CrmUser.id == SalesOrder.owner_id)
            .where(_orders_base(user, filters).whereclause).group_by(CrmUser.department_id))
    rows = db.session.execute(stmt).all()
    names = _departments(row[0] for row in rows)
    keys, categories = _grouped(rows, names)
    sums = dict(rows)
    return _fig("sales_by_department", categories=categories, keys=["none" if k is None else k for k in keys],
                series=[FigureSeries(str(_l("Sales")), [_yuan(sums[k]) for k in keys])])


def _product_records(user: Any, filters: Filters, key: Any) -> Select:
    """The ORDER LINES behind ``sales_by_product`` (their amounts add up to the product's
    number), newest order first; a whole order would list its other products too."""
    stmt = (select(OrderLine).join(SalesOrder, SalesOrder.id == OrderLine.order_id)
            .where(_orders_base(user, filters).whereclause))
    if key is not None:
        number = db_int(key)
        stmt = stmt.where(OrderLine.product_id == (number if number is not None else -1))
    return stmt.order_by(SalesOrder.order_date.desc(), SalesOrder.id.desc(), OrderLine.position)


@_define("sales_by_product", _l("Sales by product"),
         _l("Confirmed sales orders by order date in the period: the sum of their line amounts per product "
            "(the drill-down lists those order lines)."),
         "money", "bar", "manager", records=_product_records, dimension=_l("Product"))
def _sales_by_product(user: Any, filters: Filters) -> Figure:
    """Σ ``OrderLine.amount`` per product over ``sales_by_rep``'s orders (yuan Decimal); the
    drill-down lists those order lines (``_product_records``). One query."""
    stmt = (select(OrderLine.product_id, func.sum(_fen(OrderLine.amount)))
            .join(SalesOrder, SalesOrder.id == OrderLine.order_id)
            .where(_orders_base(user, filters).whereclause).group_by(OrderLine.product_id))
    rows = db.session.execute(stmt).all()
    names = dict(db.session.execute(select(Product.id, Product.name).where(
        Product.id.in_([r[0] for r in rows] or [-1]))).tuples().all())
    keys, categories = _grouped(rows, names)
    sums = dict(rows)
    return _fig("sales_by_product", categories=categories, keys=keys,
                series=[FigureSeries(str(_l("Sales")), [_yuan(sums[k]) for k in keys])])


@_define("target_attainment", _l("Target attainment"),
         _l("Sales (confirmed orders by order date in the period) ÷ sales target for the period, in %; per rep "
            "and in total. Empty when there is no target."),
         "percent", "bar", "manager", records=_orders_by(SalesOrder.owner_id), dimension=_l("Sales rep"))
def _target_attainment(user: Any, filters: Filters) -> Figure:
    """Target attainment (002 §十(二)): per rep with a target, ``sales_by_rep``'s sales /
    target in % (1 decimal); ``value`` = all those reps' sales / all their targets; None
    where the target is missing or 0 (no denominator, no rate)."""
    sales_figure = _sales_by_rep(user, filters)
    sales = dict(zip(sales_figure.keys, sales_figure.series[0].values, strict=True))
    targets = _targets(user, filters)
    keys = [k for k in sales_figure.keys if targets.get(k)]
    total_sales = sum((sales.get(k, Decimal(0)) for k in keys), Decimal("0.00"))
    return _fig("target_attainment", categories=[sales_figure.categories[sales_figure.keys.index(k)] for k in keys],
                keys=keys, series=[FigureSeries(str(_l("Attainment %")),
                                                [_percent(sales.get(k, 0), targets[k]) for k in keys])],
                value=_percent(total_sales, sum(targets[k] for k in keys)))
