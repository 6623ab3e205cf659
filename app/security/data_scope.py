"""The one data-scope rule: which rows of a model a user may see.

A role carries a scope (own / department / all); a user's scope is the widest of their
roles'. ``scope_clause(user, model)`` is the only place that turns that into SQL; list,
show, edit, delete, bulk actions, the REST API, downloads and related-field choices all
call it (via ``DataScopeFilter`` or directly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import g, has_request_context
from flask_appbuilder.models.filters import BaseFilter
from sqlalchemy import and_, false, or_, select, true
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from app.clock import local_today
from app.extensions import db
from app.models.customers import Customer, CustomerStatusChange, FollowUp
from app.models.org import SCOPE_ALL, SCOPE_DEPARTMENT, SCOPE_OWN, SCOPES, CrmUser, Department, RoleDataScope

_job_cache: ContextVar[dict | None] = ContextVar("scope_cache", default=None)
_counting: ContextVar[bool] = ContextVar("scope_counting", default=False)


@contextmanager
def scope_cache() -> Iterator[None]:
    """Cache scope lookups for a background job, as a request does (imports, sync runs)."""
    token = _job_cache.set({})
    try:
        yield
    finally:
        _job_cache.reset(token)


def user_scope(user: Any) -> str:
    """Widest scope among the user's roles; ``own`` if none is configured."""
    if user is None or getattr(user, "is_anonymous", True):
        return SCOPE_OWN
    role_ids = [r.id for r in user.roles]
    if not role_ids:
        return SCOPE_OWN
    scopes = db.session.scalars(
        select(RoleDataScope.scope).where(RoleDataScope.role_id.in_(role_ids))
    ).all()
    return max(scopes, key=SCOPES.index, default=SCOPE_OWN)


def department_tree_ids(root_id: int) -> set[int]:
    """The department and all its sub-departments (departments are few: one query)."""
    children: dict[int | None, list[int]] = {}
    for dep_id, parent_id in db.session.execute(select(Department.id, Department.parent_id)):
        children.setdefault(parent_id, []).append(dep_id)
    found, stack = set(), [root_id]
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(children.get(current, []))
    return found


def visible_owner_ids(user: Any) -> set[int] | None:
    """Owner ids whose records the user may see; ``None`` means every owner.

    Cached per request: a list page asks several times.
    """
    cache_key = ("visible_owner_ids", getattr(user, "id", None))
    if has_request_context():
        cache = g.setdefault("_crm_scope_cache", {})
    else:
        cache = _job_cache.get()
        cache = {} if cache is None else cache
    if cache_key in cache:
        return cache[cache_key]
    scope = user_scope(user)
    if scope == SCOPE_ALL:
        result = None
    elif scope == SCOPE_DEPARTMENT and getattr(user, "department_id", None):
        deps = department_tree_ids(user.department_id)
        result = set(
            db.session.scalars(select(CrmUser.id).where(CrmUser.department_id.in_(deps)))
        ) | {user.id}
    elif user is None or getattr(user, "is_anonymous", True):
        result = set()
    else:
        result = {user.id}
    cache[cache_key] = result
    return result


def owner_in(column: Any, owners: Iterable[int] | None) -> ColumnElement:
    """SQL: ``column`` (a user id) is one of ``owners`` (None: every owner; empty: none)."""
    if owners is None:
        return true()
    owners = sorted(owners)
    if not owners:
        return false()
    return column == owners[0] if len(owners) == 1 else column.in_(owners)


@contextmanager
def counting_whole_list() -> Iterator[None]:
    """Scope conditions built inside select rows scoped through their customer from the
    customers in scope instead of a correlated EXISTS: joined for a type's own rule
    (``of_customer_in_scope``), ``customer_id IN (customers in scope)`` inside other rules. A
    capped count then walks the scope's customers by owner and stops at the cap (issue 12, a
    rep's follow-ups at 1M on SQLite: 1.1 s with EXISTS, 42 ms with IN, which lists every
    customer in scope first, ~2 ms joined). For a whole list's total only: a page in date order
    and one customer's rows stay fast with EXISTS."""
    token = _counting.set(True)
    try:
        yield
    finally:
        _counting.reset(token)


def via_customer(model: type, owners: set[int] | None) -> ColumnElement:
    if owners is None:
        return true()
    if _counting.get():
        return model.customer_id.in_(select(Customer.id).where(owner_in(Customer.owner_id, owners)))
    # A correlated EXISTS on the row's own customer: an IN over every customer in scope made SQLite
    # list a department's 100,000 ids to show one customer's follow-ups (issue 12: 304 ms -> 2 ms of
    # SQL at 1M). Its own alias, so a query that joins Customer itself is not correlated with it.
    own = aliased(Customer)
    return select(own.id).where(own.id == model.customer_id, owner_in(own.owner_id, owners)) \
        .correlate_except(own).exists()


def of_customer_in_scope(model: type, owners: set[int] | None) -> ColumnElement:
    """The whole scope rule of a type scoped through its customer: ``via_customer``, except
    while a list's total is counted (``counting_whole_list``), where it joins the customers in
    scope (the query's FROM gains ``customer``, one row per record): only as a rule of its own,
    never inside an OR (tickets and activities use ``via_customer``)."""
    if owners is not None and _counting.get():
        # its own alias: a search condition's subquery on Customer must not correlate with it
        own = aliased(Customer, name="customer_in_scope")
        return and_(own.id == model.customer_id, owner_in(own.owner_id, owners))
    return via_customer(model, owners)


#: model -> SQL condition over the visible owner ids (``None`` = every owner). The one
#: list of scoped models: views and APIs derive related-field scoping from it.
_RULES: dict[type, Callable[[set[int] | None], ColumnElement]] = {
    Customer: lambda owners: owner_in(Customer.owner_id, owners),
    # Follow-ups and status history belong to their customer's owner (the manuals: a rep
    # may not read follow-ups of customers someone else is responsible for).
    FollowUp: lambda owners: of_customer_in_scope(FollowUp, owners),
    CustomerStatusChange: lambda owners: of_customer_in_scope(CustomerStatusChange, owners),
    CrmUser: lambda owners: owner_in(CrmUser.id, owners),
}


#: models whose rule also takes the user: ``rule(owners, user)`` (``per_user``)
_PER_USER: set[type] = set()


def per_user(rule: Callable[[set[int] | None, Any], ColumnElement]) -> Callable:
    """Mark a scope rule that needs the user besides the visible owner ids (tickets: the
    user's own and team's rows, ``rule(owners, user)``)."""
    rule.per_user = True  # type: ignore[attr-defined]
    return rule


def register(model: type, kind: str | Callable[[set[int] | None], ColumnElement],
             owner_column: str = "owner_id") -> None:
    """Declare whose rows of ``model`` a user sees (``app.record_types``): ``"owner"`` —
    rows whose ``owner_column`` is a visible owner (a lead without an owner is visible to
    those who see every owner); ``"customer"`` — rows of a customer in scope (contacts,
    like follow-ups); ``"everyone"`` — reference data every user may read (products); or
    a function of the visible owner ids (None: every owner) giving the SQL condition, for
    a type scoped like the record it belongs to (activities); a function marked
    ``per_user`` is called as ``rule(owners, user)``."""
    _PER_USER.discard(model)
    if callable(kind):
        _RULES[model] = kind
        if getattr(kind, "per_user", False):
            _PER_USER.add(model)
    elif kind == "owner":
        _RULES[model] = lambda owners: owner_in(getattr(model, owner_column), owners)
    elif kind == "customer":
        _RULES[model] = lambda owners: of_customer_in_scope(model, owners)
    elif kind == "everyone":
        _RULES[model] = lambda owners: true()
    else:
        raise ValueError(f"unknown data scope kind {kind!r} for {model.__name__}")


def _rule_for(model: type) -> Callable[[set[int] | None], ColumnElement] | None:
    if model in _RULES:
        return _RULES[model]
    if isinstance(model, type) and issubclass(CrmUser, model) and hasattr(model, "__tablename__") \
            and model.__tablename__ == CrmUser.__tablename__:
        # FAB's own ``User`` maps the same table: relations to it list the same people.
        return lambda owners: owner_in(model.id, owners)
    return None


def has_scope(model: type | None) -> bool:
    """Whether ``model`` has a data-scope rule (its rows are per user: related-field
    choices of it must be scoped)."""
    return model is not None and _rule_for(model) is not None


def scope_clause(user: Any, model: type) -> ColumnElement:
    """SQL condition selecting the rows of ``model`` that ``user`` may see.

    Raises ``LookupError`` for a model without a rule (fail closed: a new record type
    must declare its rule here before any screen can list it).
    """
    rule = _rule_for(model)
    if rule is None:
        raise LookupError(f"No data scope rule for {model.__name__}")
    if model in _PER_USER:
        return rule(visible_owner_ids(user), user)
    return rule(visible_owner_ids(user))


def current_user_obj() -> Any:
    return getattr(g, "user", None) if has_request_context() else None


def can_see(user: Any, item: Any) -> bool:
    """Whether one loaded record is in the user's scope (for bulk actions and services)."""
    model = type(item)
    pk = item.id
    stmt = select(model.id).where(model.id == pk, scope_clause(user, model))
    return db.session.execute(stmt).first() is not None


class DataScopeFilter(BaseFilter):
    """FAB filter applying ``scope_clause`` for the current user (use in base_filters)."""

    name = "Data scope"
    arg_name = "data_scope"

    def apply(self, query: Any, value: Any) -> Any:
        return query.filter(scope_clause(current_user_obj(), self.model))


class ActiveEntryFilter(BaseFilter):
    """Only active entries (dictionaries, users; users also not expired): the choices
    offered on new records."""

    name = "Active"
    arg_name = "active_entry"

    def apply(self, query: Any, value: Any) -> Any:
        query = query.filter(self.model.active.is_(True))
        expires = getattr(self.model, "expires_on", None)
        if expires is not None:
            query = query.filter(or_(expires.is_(None), expires >= local_today()))
        return query
