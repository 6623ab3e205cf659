"""Choices of a related field, one page at a time (issue 12: no form, filter or API answer
materialises every record of a related model).

A related field (a follow-up's customer, a record's owner, a lead's contact ...) offers
the records of its model that the user may choose: in their data scope (``scope_clause``,
always applied here, whatever the caller narrows), narrowed further by the field's own
rules (active entries on new records, not archived ...). ``lookup`` answers one page of
them for a typed text, with the navbar quick search's finders (``app.services.search``:
the exact, indexed lookups first, then the substring match under its time budget), so a
field finds a record the way the search box does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.sql import Select

from app.models.customers import Customer, FollowUp
from app.models.org import CrmUser
from app.security.data_scope import has_scope, scope_clause
from app.services import search

#: Choices a page holds (Select2 asks for the next page as the list is scrolled).
PER_PAGE = 20
#: Pages a text may be scrolled to (deeper pages are an OFFSET scan: type more instead).
MAX_PAGES = 50


@dataclass
class ChoicePage:
    """One page of choices: ``items`` (records, at most the page size), whether ``more``
    follow, and whether the substring search ran out of its time budget (``cut_short``)."""

    items: list[Any] = field(default_factory=list)
    more: bool = False
    cut_short: bool = False


def _is_user_model(model: type) -> bool:
    """``CrmUser``, or FAB's own ``User`` (same table: FAB's group and role screens relate to it)."""
    return isinstance(model, type) and issubclass(CrmUser, model) \
        and getattr(model, "__tablename__", None) == CrmUser.__tablename__


@cache
def _declared_finder(model: type) -> search.Finder | None:
    from app.record_types import for_model

    rt = for_model(model)
    return search.declared_finder(rt) if rt is not None else None


def _by_id(model: type) -> search.Finder:
    """A model without a search of its own: found by its id only."""
    def exact(typed: str, session: Any) -> list[Any]:
        return [model.id == int(typed)] if typed.isdigit() and len(typed) < 12 else []

    return search.Finder(model=model, exact=exact, broad=lambda typed, session: None,
                         newest=lambda: [model.id.desc()])


def finder_for(model: type) -> search.Finder:
    """How records of ``model`` are searched: the quick search's finder for customers,
    follow-ups, users and every declared record type; else by id."""
    if model is Customer:
        return search.CUSTOMERS
    if model is FollowUp:
        return search.FOLLOW_UPS
    if _is_user_model(model):
        return search.USERS
    return _declared_finder(model) or _by_id(model)


def selected_model(model: type) -> type:
    """The class lookups select for a relation to ``model``: ``CrmUser`` for FAB's ``User``
    (same table), else ``model``."""
    return CrmUser if _is_user_model(model) else model


def candidates(user: Any, model: type, narrow: Callable[[Select], Select] | None = None) -> Select:
    """SELECT of the records of ``model`` ``user`` may choose: the data scope (when the
    model has one), then ``narrow`` (the field's own rules) if given. User relations
    select ``CrmUser`` (FAB's ``User`` maps the same table)."""
    model = selected_model(model)
    statement = select(model)
    if has_scope(model):
        statement = statement.where(scope_clause(user, model))
    return narrow(statement) if narrow is not None else statement


def lookup(user: Any, model: type, typed: str | None, session: Any, *,
           narrow: Callable[[Select], Select] | None = None, live: bool = False,
           page: int = 0, per_page: int = PER_PAGE) -> ChoicePage:
    """Page ``page`` (from 0) of the records of ``model`` that ``user`` may choose and
    ``typed`` matches, ``per_page`` at most.

    Empty text: every choice, newest first. Otherwise the finder's exact (indexed) matches
    when there are any, else its substring matches newest first, under the quick search's
    time budget (``cut_short`` when it runs out). ``live``: also the finder's "still in
    use" conditions (not archived), for new records. Raises ``ValueError`` for a text
    longer than ``search.MAX_QUERY_LENGTH`` or a page outside 0..``MAX_PAGES``.
    """
    if not 0 <= page < MAX_PAGES:
        raise ValueError(f"pages are 0 to {MAX_PAGES - 1}")
    text = search.quick_text(typed)
    finder = finder_for(model)
    base = candidates(user, model, narrow)
    if live:
        base = base.where(*finder.live())
    base = base.order_by(*finder.newest())
    if not text:
        return _page(session, base, page, per_page)
    hits = _exact_hits(session, base, finder.exact(text, session), per_page)
    if hits:  # a code, phone or user name matched exactly: that is what was meant (as the quick search)
        return ChoicePage(items=hits if page == 0 else [])
    broad = finder.broad(text, session)
    if broad is None:
        return ChoicePage()
    try:
        with search.time_budget(session, search._budget_ms()):
            return _page(session, base.where(broad), page, per_page)
    except search.SearchCutShort:
        return ChoicePage(cut_short=True)


def _exact_hits(session: Any, base: Select, conditions: list[Any], limit: int) -> list[Any]:
    """The records each indexed condition finds, one query per condition (an OR of them
    would keep the database from using each column's index), without repeats."""
    found: dict[int, Any] = {}
    for condition in conditions:
        for item in session.scalars(base.where(condition).limit(limit)):
            found.setdefault(item.id, item)
    return list(found.values())[:limit]


def _page(session: Any, statement: Select, page: int, per_page: int) -> ChoicePage:
    rows = list(session.scalars(statement.offset(page * per_page).limit(per_page + 1)))
    return ChoicePage(items=rows[:per_page], more=len(rows) > per_page)


def chosen(user: Any, model: type, ids: list[int], session: Any, *,
           narrow: Callable[[Select], Select] | None = None) -> list[Any]:
    """The records among ``ids`` that ``user`` may choose (scope and ``narrow``), by id;
    the ones out of reach or missing are simply absent."""
    if not ids:
        return []
    target = selected_model(model)
    statement = candidates(user, model, narrow).where(target.id.in_(ids))
    return list(session.scalars(statement))
