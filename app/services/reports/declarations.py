"""The sources a report is built on: their dimensions, measures and filters (``_build``,
run once when the package is imported), their labels, and ``sources(user)``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from app.services.reports.base import (
    _SQL,
    GRAINS,
    SOURCES,
    Dimension,
    Filter,
    Measure,
    Source,
    _Dim,
    _Field,
    _Filter,
    _Query,
    _SourceSql,
)


def _label_rows(stmt: Any) -> dict[Any, str]:
    from app.extensions import db

    return {key: text for key, text in db.session.execute(stmt).tuples()}


def _dictionary_labels(model: type) -> Callable[[list[Any]], dict[Any, str]]:
    def labels(keys: list[Any]) -> dict[Any, str]:
        from app.extensions import db

        ids = [k for k in keys if k is not None]
        return {item.id: item.label for item in db.session.scalars(select(model).where(model.id.in_(ids or [-1])))}
    return labels


def _section_labels(keys: list[Any]) -> dict[Any, str]:
    """Industries' own label (a section's, not "section > division")."""
    from app.extensions import db
    from app.models.dictionaries import DictionaryMixin, Industry

    ids = [k for k in keys if k is not None]
    return {item.id: DictionaryMixin.label.fget(item)
            for item in db.session.scalars(select(Industry).where(Industry.id.in_(ids or [-1])))}


def user_labels(keys: list[Any]) -> dict[Any, str]:
    """User ids -> full names (the id when a user has none)."""
    from app.models.org import CrmUser

    ids = [k for k in keys if k is not None]
    rows = _label_rows(select(CrmUser.id, func.trim(func.coalesce(CrmUser.first_name, "") + " "
                                                    + func.coalesce(CrmUser.last_name, "")))
                       .where(CrmUser.id.in_(ids or [-1])))
    return {k: v or str(k) for k, v in rows.items()}


def _department_labels(keys: list[Any]) -> dict[Any, str]:
    from app.models.org import Department

    ids = [k for k in keys if k is not None]
    return _label_rows(select(Department.id, Department.name).where(Department.id.in_(ids or [-1])))


def _choice_labels(choices: Mapping[str, Any]) -> Callable[[list[Any]], dict[Any, str]]:
    return lambda keys: {k: str(choices.get(k, k)) for k in keys if k is not None}


def plain_labels(keys: list[Any]) -> dict[Any, str]:
    """Keys shown as they are (provinces, numbers, names)."""
    return {k: str(k) for k in keys if k is not None}


def _product_labels(keys: list[Any]) -> dict[Any, str]:
    from app.models.sales import Product

    ids = [k for k in keys if k is not None]
    return _label_rows(select(Product.id, Product.name).where(Product.id.in_(ids or [-1])))


def _dict_dim(key: str, label: Any, column: Callable[[], Any], model: type) -> _Dim:
    return _Dim(key, label, lambda q: column(), _dictionary_labels(model))


def _owner_dims(owner: Callable[[], Any], label: Any = None) -> list[_Dim]:
    from app.models.org import CrmUser

    def department(q: _Query) -> ColumnElement:
        return q.alias("owner_user", CrmUser, lambda u: u.id == owner()).department_id
    # ``+ 0``: grouped as an expression, so SQLite scans the table once instead of walking the
    # (owner, archived_at) index and fetching each row for its other columns (2.2 s -> 0.6 s at 1M)
    return [_Dim("owner", label or _l("Owner"), lambda q: owner() + 0, user_labels, order="label"),
            _Dim("department", _l("Owner's department"), department, _department_labels, order="label")]


def _industry_dims(column: Callable[[], Any]) -> list[_Dim]:
    from app.models.dictionaries import Industry

    def section(q: _Query) -> ColumnElement:
        industry = q.alias("industry", Industry, lambda i: i.id == column())
        return func.coalesce(industry.parent_id, industry.id)
    return [_dict_dim("industry", _l("Industry"), column, Industry),
            _Dim("industry_section", _l("Industry section"), section, _section_labels)]


def _bucket(column: Callable[[], Any], instant: bool, grain: str) -> Callable[[_Query], ColumnElement]:
    """The CRM-zone month ("2026-03"), quarter ("2026-Q1") or year ("2026") of a column."""
    def expr(q: _Query) -> ColumnElement:
        from app.clock import crm_zone, zone_name
        from app.extensions import db

        col = column()
        if db.engine.dialect.name == "postgresql":
            local = func.timezone(zone_name(), col) if instant else col
            return func.to_char(local, {"month": "YYYY-MM", "quarter": 'YYYY-"Q"Q', "year": "YYYY"}[grain])
        args = [col]
        if instant:  # SQLite keeps UTC wall time: shift by the zone's offset (a zone without DST)
            offset = datetime.now(UTC).astimezone(crm_zone()).utcoffset() or timedelta(0)
            args.append(f"{int(offset.total_seconds() // 60):+d} minutes")
        if grain == "month":
            return func.strftime("%Y-%m", *args)
        if grain == "year":
            return func.strftime("%Y", *args)
        month = cast(func.strftime("%m", *args), Integer)
        return func.strftime("%Y", *args).op("||")(literal("-Q")).op("||")(cast((month + 2) / 3, Integer))
    return expr


def date_dims(prefix: str, label: Any, column: Callable[[], Any], instant: bool) -> list[_Dim]:
    """``<prefix>_month``, ``_quarter`` and ``_year`` dimensions of a day or (``instant``) a UTC
    instant column, bucketed in the CRM's zone."""
    words = {"month": _l("%(what)s (month)", what=label), "quarter": _l("%(what)s (quarter)", what=label),
             "year": _l("%(what)s (year)", what=label)}
    return [_Dim(f"{prefix}_{grain}", words[grain], _bucket(column, instant, grain), plain_labels)
            for grain in GRAINS]


def _build() -> None:
    """Declare the sources (called once, at import, after the models)."""
    from app.models.customers import Customer, FollowUp
    from app.models.dictionaries import (
        CustomerLevel,
        CustomerSource,
        CustomerType,
        FeedbackType,
        FollowUpMethod,
        Industry,
        Priority,
        TicketType,
    )
    from app.models.orders import OrderLine, SalesOrder
    from app.models.sales import Lead, Opportunity, Stage
    from app.models.service import ServiceFeedback, Ticket
    from app.services import leads, orders, tickets

    def industry_filter(column: Callable[[], Any]) -> _Filter:
        return _Filter("industry", _l("Industry"), column, "tree", model=Industry)

    def dict_filter(key: str, label: Any, column: Callable[[], Any], model: type) -> _Filter:
        return _Filter(key, label, column, model=model)

    def choice_filter(key: str, label: Any, column: Callable[[], Any], choices: Mapping[str, Any]) -> _Filter:
        return _Filter(key, label, column, "choice", choices)

    def customer_of(q: _Query, model: Any) -> Any:
        return q.alias("customer", Customer, lambda c: c.id == model.customer_id)

    _add(_SourceSql(
        "customers", _l("Customers"), Customer, "Customer", Customer, lambda: Customer.created_on, True,
        lambda: Customer.owner_id,
        _dims(_dict_dim("level", _l("Level"), lambda: Customer.level_id, CustomerLevel),
              *_industry_dims(lambda: Customer.industry_id),
              _dict_dim("type", _l("Customer status"), lambda: Customer.type_id, CustomerType),
              _dict_dim("source", _l("Source"), lambda: Customer.source_id, CustomerSource),
              *_owner_dims(lambda: Customer.owner_id),
              *date_dims("created", _l("Created"), lambda: Customer.created_on, True),
              _Dim("contact_name", _l("Contact person"), lambda q: Customer.contact_name, plain_labels,
                   sensitive=True, order="label")),
        {},
        _filters(dict_filter("level", _l("Level"), lambda: Customer.level_id, CustomerLevel),
                 industry_filter(lambda: Customer.industry_id),
                 dict_filter("type", _l("Customer status"), lambda: Customer.type_id, CustomerType),
                 dict_filter("customer_source", _l("Source"), lambda: Customer.source_id, CustomerSource)),
        joins=lambda stmt: stmt.where(Customer.archived_at.is_(None))))

    _add(_SourceSql(
        "follow_ups", _l("Follow-ups"), FollowUp, "FollowUp", FollowUp, lambda: FollowUp.followed_at, True,
        lambda: FollowUp.owner_id,
        _dims(_dict_dim("method", _l("Method"), lambda: FollowUp.method_id, FollowUpMethod),
              *_owner_dims(lambda: FollowUp.owner_id, _l("Followed by")),
              *date_dims("followed", _l("Followed"), lambda: FollowUp.followed_at, True),
              _Dim("customer_level", _l("Customer level"), lambda q: customer_of(q, FollowUp).level_id,
                   _dictionary_labels(CustomerLevel)),
              _Dim("customer_industry", _l("Customer industry"), lambda q: customer_of(q, FollowUp).industry_id,
                   _dictionary_labels(Industry)),
              _Dim("contact_name", _l("Contact person"), lambda q: customer_of(q, FollowUp).contact_name,
                   plain_labels, sensitive=True, order="label")),
        {}, _filters(dict_filter("method", _l("Method"), lambda: FollowUp.method_id, FollowUpMethod))))

    _add(_SourceSql(
        "leads", _l("Leads"), Lead, "Lead", Lead, lambda: Lead.created_on, True, lambda: Lead.owner_id,
        _dims(_Dim("status", _l("Status"), lambda q: Lead.status, _choice_labels(leads.STATUS_LABELS)),
              _dict_dim("source", _l("Source"), lambda: Lead.source_id, CustomerSource),
              *_industry_dims(lambda: Lead.industry_id),
              _Dim("province", _l("Province"), lambda q: Lead.province, plain_labels, order="label"),
              *_owner_dims(lambda: Lead.owner_id),
              *date_dims("created", _l("Created"), lambda: Lead.created_on, True),
              _Dim("contact_name", _l("Contact person"), lambda q: Lead.contact_name, plain_labels,
                   sensitive=True, order="label")),
        {},
        _filters(choice_filter("status", _l("Status"), lambda: Lead.status, leads.STATUS_LABELS),
                 dict_filter("customer_source", _l("Source"), lambda: Lead.source_id, CustomerSource),
                 industry_filter(lambda: Lead.industry_id))))

    _add(_SourceSql(
        "opportunities", _l("Opportunities"), Opportunity, "Opportunity", Opportunity,
        lambda: Opportunity.created_on, True, lambda: Opportunity.owner_id,
        _dims(_dict_dim("stage", _l("Stage"), lambda: Opportunity.stage_id, Stage),
              *_owner_dims(lambda: Opportunity.owner_id),
              *date_dims("created", _l("Created"), lambda: Opportunity.created_on, True),
              *date_dims("close", _l("Expected close"), lambda: Opportunity.expected_close, False),
              _Dim("customer_level", _l("Customer level"), lambda q: customer_of(q, Opportunity).level_id,
                   _dictionary_labels(CustomerLevel))),
        _fields(_Field("amount", _l("Amount"), lambda: Opportunity.amount, True),
                _Field("quantity", _l("Quantity"), lambda: Opportunity.quantity)),
        _filters(dict_filter("stage", _l("Stage"), lambda: Opportunity.stage_id, Stage))))

    _add(_SourceSql(
        "tickets", _l("Tickets"), Ticket, "Ticket", Ticket, lambda: Ticket.created_on, True,
        lambda: Ticket.assignee_id,
        _dims(_dict_dim("type", _l("Type"), lambda: Ticket.type_id, TicketType),
              _dict_dim("priority", _l("Priority"), lambda: Ticket.priority_id, Priority),
              _Dim("status", _l("Status"), lambda q: Ticket.status, _choice_labels(tickets.STATUSES)),
              _Dim("channel", _l("Channel"), lambda q: Ticket.channel, _choice_labels(tickets.CHANNELS)),
              _Dim("satisfaction", _l("Satisfaction"), lambda q: Ticket.satisfaction, plain_labels),
              *_owner_dims(lambda: Ticket.assignee_id, _l("Assignee")),
              *date_dims("created", _l("Created"), lambda: Ticket.created_on, True)),
        _fields(_Field("satisfaction", _l("Satisfaction"), lambda: Ticket.satisfaction),
                _Field("reopen_count", _l("Times reopened"), lambda: Ticket.reopen_count)),
        _filters(dict_filter("priority", _l("Priority"), lambda: Ticket.priority_id, Priority),
                 dict_filter("type", _l("Type"), lambda: Ticket.type_id, TicketType),
                 choice_filter("status", _l("Status"), lambda: Ticket.status, tickets.STATUSES))))

    _add(_SourceSql(
        "feedback", _l("Service feedback"), ServiceFeedback, "ServiceFeedback", ServiceFeedback,
        lambda: ServiceFeedback.received_at, True, lambda: customer_owner(ServiceFeedback),
        _dims(_dict_dim("type", _l("Type"), lambda: ServiceFeedback.type_id, FeedbackType),
              _Dim("satisfaction", _l("Satisfaction"), lambda q: ServiceFeedback.satisfaction, plain_labels),
              *date_dims("received", _l("Received"), lambda: ServiceFeedback.received_at, True)),
        _fields(_Field("satisfaction", _l("Satisfaction"), lambda: ServiceFeedback.satisfaction)),
        _filters(dict_filter("type", _l("Type"), lambda: ServiceFeedback.type_id, FeedbackType))))

    _add(_SourceSql(
        "orders", _l("Sales orders"), SalesOrder, "SalesOrder", SalesOrder, lambda: SalesOrder.order_date, False,
        lambda: SalesOrder.owner_id,
        _dims(_Dim("status", _l("Status"), lambda q: SalesOrder.status, _choice_labels(orders.STATUSES)),
              *_owner_dims(lambda: SalesOrder.owner_id),
              *date_dims("order", _l("Order date"), lambda: SalesOrder.order_date, False),
              _Dim("customer_level", _l("Customer level"), lambda q: customer_of(q, SalesOrder).level_id,
                   _dictionary_labels(CustomerLevel)),
              _Dim("customer_industry", _l("Customer industry"), lambda q: customer_of(q, SalesOrder).industry_id,
                   _dictionary_labels(Industry))),
        _fields(_Field("total", _l("Total"), lambda: SalesOrder.total, True),
                _Field("paid_amount", _l("Paid amount"), lambda: SalesOrder.paid_amount, True),
                _Field("delivered_amount", _l("Delivered amount"), lambda: SalesOrder.delivered_amount, True)),
        _filters(choice_filter("status", _l("Status"), lambda: SalesOrder.status, orders.STATUSES))))

    _add(_SourceSql(
        "order_lines", _l("Order lines (by product)"), OrderLine, "SalesOrder", SalesOrder,
        lambda: SalesOrder.order_date, False, lambda: SalesOrder.owner_id,
        _dims(_Dim("product", _l("Product"), lambda q: OrderLine.product_id, _product_labels, order="label"),
              *_owner_dims(lambda: SalesOrder.owner_id),
              *date_dims("order", _l("Order date"), lambda: SalesOrder.order_date, False),
              _Dim("status", _l("Order status"), lambda q: SalesOrder.status, _choice_labels(orders.STATUSES))),
        _fields(_Field("amount", _l("Amount"), lambda: OrderLine.amount, True),
                _Field("quantity", _l("Quantity"), lambda: OrderLine.quantity)),
        _filters(choice_filter("status", _l("Order status"), lambda: SalesOrder.status, orders.STATUSES)),
        joins=lambda stmt: stmt.join(SalesOrder, SalesOrder.id == OrderLine.order_id)))


def customer_owner(model: Any) -> Any:
    """The owner of a record's customer (feedback has no owner of its own), as a scalar subquery."""
    from app.models.customers import Customer

    return select(Customer.owner_id).where(Customer.id == model.customer_id).scalar_subquery()


def _dims(*dims: _Dim) -> dict[str, _Dim]:
    return {d.key: d for d in dims}


def _fields(*fields: _Field) -> dict[str, _Field]:
    return {f.key: f for f in fields}


def _filters(*filters: _Filter) -> dict[str, _Filter]:
    return {f.key: f for f in filters}


def _add(sql: _SourceSql) -> None:
    _SQL[sql.key] = sql
    measures = {"count": Measure("count", _l("Count"))}
    for f in sql.static_fields.values():
        measures[f"sum:{f.key}"] = Measure(f"sum:{f.key}", _l("Sum of %(field)s", field=f.label))
        measures[f"avg:{f.key}"] = Measure(f"avg:{f.key}", _l("Average %(field)s", field=f.label))
    SOURCES[sql.key] = Source(sql.key, sql.label, sql.model,
                              {k: Dimension(k, d.label, d.sensitive) for k, d in sql.static_dims.items()}, measures,
                              {k: Filter(k, f.label, filter_options(f)) for k, f in sql.static_filters.items()})


def filter_options(spec: _Filter) -> Callable[[], list[tuple[str, str]]] | None:
    """The loader of a filter's choices (run per access, in the reader's language)."""
    if spec.kind == "choice":
        return lambda: [(key, str(label)) for key, label in spec.choices.items()]
    if spec.model is None:
        return None
    return lambda: _dictionary_choices(spec.model, tree=spec.kind == "tree")


def _dictionary_choices(model: type, *, tree: bool = False) -> list[tuple[str, str]]:
    """A dictionary's entries as (id, label) by sort order; ``tree``: each section followed by
    its divisions ("section > division"), as the industry filter takes a section with them."""
    from app.extensions import db

    items = list(db.session.scalars(select(model).order_by(model.sort_order, model.id)))
    if not tree:
        return [(str(item.id), item.label) for item in items]
    children: dict[Any, list[Any]] = {}
    for item in items:
        children.setdefault(item.parent_id, []).append(item)
    ordered = []
    for section in children.get(None, []):
        ordered += [section, *children.get(section.id, [])]
    return [(str(item.id), item.label) for item in ordered]


# --- sources and specs ------------------------------------------------------------------


def sources(user: Any) -> list[Source]:
    """The sources ``user`` may report on: those whose records they may read (``can_read`` on
    the record type's permission view)."""
    from app.security.rights import user_may

    return [SOURCES[key] for key, sql in _SQL.items() if user_may(user, "can_read", sql.permission)]
