"""The navbar's quick search: one box, the first matches of every record type the user may read.

``SEARCHABLE`` is the registry: one ``SearchEntry`` per record type (model and clause
builders in ``app.services.search``, the permission that lets a role read the type, the
title, the record's page and the list a "See all" link opens). A new record type adds one
entry. The page is a plain GET form (works without JavaScript); every query is scoped and
bounded by ``search.quick_find_all`` (one time budget for the whole page).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose
from flask_appbuilder.models.sqla.filters import FilterContains
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.clock import to_local
from app.extensions import db
from app.security import masking
from app.services import search
from views import display

#: Characters of a follow-up's content shown on its result line.
SNIPPET = 80


@dataclass(frozen=True)
class SearchEntry:
    """One searchable record type.

    ``permission``: (permission, view menu) a role needs to read the type (FAB names);
    ``finder``: how it is searched (``search.Finder``: model, exact and substring clauses);
    ``show_endpoint``: the record's page (``<endpoint>`` with ``pk``);
    ``see_all``: the type's list with the search applied (text -> URL);
    ``describe``: the parts of one result line (record -> texts, masked where needed).
    """

    key: str
    title: Any
    permission: tuple[str, str]
    finder: search.Finder
    show_endpoint: str
    see_all: Callable[[str], str]
    describe: Callable[[Any], list[str]]


def _view(name: str) -> Any:
    return next((v for v in current_app.appbuilder.baseviews if type(v).__name__ == name), None)


def list_url(view_name: str, typed: str, column: str) -> str:
    """``view_name``'s list narrowed to ``typed``: its search box (``?q=``) when the list has
    one (a base filter named ``quick_search``), else FAB's "contains" filter on ``column``."""
    view = _view(view_name)
    endpoint = f"{view_name}.list"
    if view is None:
        return url_for(endpoint)
    if any(getattr(flt[1], "arg_name", None) == "quick_search" for flt in view.base_filters or []):
        return url_for(endpoint, q=typed)
    choices = view._filters.get_search_filters().get(column, [])
    index = next((i for i, flt in enumerate(choices) if isinstance(flt, FilterContains)), None)
    return url_for(endpoint) if index is None else url_for(endpoint, **{f"_flt_{index}_{column}": typed})


def _snippet(text: str | None) -> str:
    plain = " ".join((text or "").split())
    return plain if len(plain) <= SNIPPET else plain[:SNIPPET - 1] + "…"


def declared_entries() -> list[SearchEntry]:
    """One entry per declared record type (contacts, leads, opportunities, products)."""
    from app.record_types import REGISTRY

    entries = []
    for rt in REGISTRY.values():
        view = f"{rt.model.__name__}View"
        shown = [c for c in rt.list_columns if c not in rt.masked][:4]
        entries.append(SearchEntry(
            key=rt.name, title=rt.plural, permission=("can_read", rt.permission), finder=search.declared_finder(rt),
            show_endpoint=f"{view}.show", see_all=lambda typed, view=view: list_url(view, typed, "code"),
            describe=lambda item, shown=shown: _parts(*(display.display(getattr(item, c)) for c in shown)),
        ))
    return entries


def _parts(*values: Any) -> list[str]:
    return [str(value) for value in values if value not in (None, "")]


SEARCHABLE: tuple[SearchEntry, ...] = (
    SearchEntry(
        key="customer", title=_l("Customers"), permission=("can_read", "Customer"), finder=search.CUSTOMERS,
        show_endpoint="CustomerView.show", see_all=lambda typed: list_url("CustomerView", typed, "name"),
        describe=lambda c: _parts(c.code, c.name, c.contact_name, masking.mask_phone(c.contact_phone)),
    ),
    SearchEntry(
        key="follow_up", title=_l("Follow-ups"), permission=("can_read", "FollowUp"), finder=search.FOLLOW_UPS,
        show_endpoint="FollowUpView.show", see_all=lambda typed: list_url("FollowUpView", typed, "content"),
        describe=lambda f: _parts(f.code, f.customer.name if f.customer else None,
                                  display.display(to_local(f.followed_at)), _snippet(f.content)),
    ),
    SearchEntry(
        key="user", title=_l("Users"), permission=("can_list", "CrmUserDBModelView"), finder=search.USERS,
        show_endpoint="CrmUserDBModelView.show",
        see_all=lambda typed: list_url("CrmUserDBModelView", typed, "username"),
        describe=lambda u: _parts(u.username, f"{u.first_name or ''} {u.last_name or ''}".strip(), u.department),
    ),
)


class QuickSearchView(BaseView):
    """``/search/?q=…``: open to every logged-in user; each record type shows only if the
    user's roles may read it (``SearchEntry.permission``) and only records in their scope."""

    route_base = "/search"
    default_view = "index"

    @expose("/")
    def index(self) -> Any:
        if not current_user.is_authenticated:
            return redirect(url_for("AuthDBView.login", next=request.full_path))
        raw = request.args.get("q", "")
        entries = [e for e in (*SEARCHABLE, *declared_entries()) if self.appbuilder.sm.has_access(*e.permission)]
        try:
            typed = search.quick_text(raw)
        except ValueError:
            return self._page(raw, entries, problem=_l("Type at most %(n)d characters.", n=search.MAX_QUERY_LENGTH))
        if not typed:
            return self._page(raw, entries, problem=_l("Type a name, code, phone number or other text to search."))
        found = search.quick_find_all(g.user, [entry.finder for entry in entries], typed, db.session)
        sections = list(zip(entries, found, strict=True))
        return self._page(typed, entries, sections=sections)

    def _page(self, typed: str, entries: list[SearchEntry], problem: Any = None,
              sections: list | None = None) -> Any:
        return self.render_template(
            "crm/quick_search.html", typed=typed, problem=problem, sections=sections or [],
            searchable=entries, limit=search.QUICK_LIMIT, max_length=search.MAX_QUERY_LENGTH,
            title=_l("Search"),
        )
