"""Base classes that make every FAB route respect the data scope, masking and the CRM rules."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from flask import abort, current_app, flash, g, jsonify, redirect, request, url_for
from flask_appbuilder import ModelRestApi, ModelView, expose
from flask_appbuilder._compat import as_unicode
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.api import rison, safe
from flask_appbuilder.api.convert import Model2SchemaConverter
from flask_appbuilder.const import API_ORDER_COLUMN_RIS_KEY, FLAMSG_ERR_SEC_ACCESS_DENIED, PERMISSION_PREFIX
from flask_appbuilder.exceptions import InvalidOrderByColumnFABException
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.hooks import before_request
from flask_appbuilder.security.decorators import has_access, protect
from flask_appbuilder.urltools import get_filter_args, get_order_args
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_login import current_user
from marshmallow import ValidationError as SchemaValidationError
from marshmallow import fields
from marshmallow_sqlalchemy.fields import Related, RelatedList
from sqlalchemy import inspect
from werkzeug.datastructures import MultiDict
from wtforms import HiddenField, ValidationError
from wtforms.fields.core import UnboundField

from app import clock
from app.extensions import db
from app.models.base import UtcDateTime
from app.security import masking
from app.security.data_scope import ActiveEntryFilter, DataScopeFilter, has_scope
from app.security.request_bounds import db_int
from app.services import exporting
from app.services import related as related_choices
from app.services.errors import RuleViolation
from views import display
from views import related as related_fields
from views.api_pages import ArgumentRefused, BoundedListApi
from views.list_count import COUNT_CAP, CappedCount, eager_paths, list_interface

SCOPE_FILTER = [["id", DataScopeFilter, lambda: None]]
ACTIVE_ONLY = [["id", ActiveEntryFilter, lambda: None]]

#: View and API methods share permission names: can_read / can_write / can_delete ...
CRUD_PERMISSIONS = ["can_read", "can_write", "can_delete"]
CUSTOMER_PERMISSIONS = CRUD_PERMISSIONS + ["can_export", "can_reveal_contact", "can_archive_won", "can_history"]
READ_WRITE_PERMISSIONS = {
    "list": "read", "show": "read", "get": "read", "get_list": "read", "info": "read", "related": "read",
    "add": "write", "edit": "write", "post": "write", "put": "write",
    "delete": "delete", "download": "export", "export": "export",
}


#: Largest page a list serves (FAB's page-size menu offers 25 to 100).
MAX_PAGE_SIZE = 100
#: Arguments of an API's ``/related/<column>`` (rison ``q``).
RELATED_SCHEMA = {"type": "object", "properties": {
    "filter": {"type": "string"}, "page": {"type": "integer", "minimum": 0}, "page_size": {"type": "integer"}}}
_MAX_PAGE = 1_000_000
_MAX_MESSAGES = 5
# FAB's urltools patterns, matched the same way (``re.findall``), so this check sees
# exactly the arguments FAB would act on.
_PAGE_ARGS = (re.compile("page_(.*)"), re.compile("psize_(.*)"))
_ORDER_ARG = re.compile("_oc_(.*)")
_FILTER_ARG = re.compile(r"_flt_(\d)_(.*)")
#: Handlers whose ``_flt_`` arguments pre-fill a related field (FAB's "add from the
#: parent record" links) instead of filtering the list.
_PREFILL_HANDLERS = ("add", "edit")


def unmasked_columns(model: type, columns: Iterable[str]) -> list[str]:
    """``columns`` without the masked ones (dotted paths followed), order kept."""
    return [c for c in columns if not masking.is_masked_path(model, c)]


def orderable_columns(view: Any) -> set[str]:
    """Columns a list may be ordered by: listed as orderable and not masked, or the default order."""
    model = view.datamodel.obj
    allowed = set(unmasked_columns(model, view.order_columns or []))
    if view.base_order and not masking.is_masked_path(model, view.base_order[0]):
        allowed.add(view.base_order[0])
    return allowed


def _filter_problem(view: Any, handler: str, index: int, column: str) -> bool:
    filters = view._filters
    if handler in _PREFILL_HANDLERS:
        choices = filters._all_filters.get(column) if view.datamodel.is_relation(column) else None
    elif column in view.search_columns and not masking.is_masked_path(view.datamodel.obj, column):
        choices = filters.get_search_filters().get(column)
    else:
        choices = None
    return not choices or index >= len(choices)


def _page_problem(key: str, value: str | None) -> bool:
    for pattern, low, high in zip(_PAGE_ARGS, (0, 1), (_MAX_PAGE, MAX_PAGE_SIZE), strict=True):
        if pattern.findall(key):
            try:
                number = int(value or "")
            except ValueError:
                return True
            return not low <= number <= high
    return False


def _shown(text: str | None) -> str:
    """Echo user input in a message, cut short (messages travel in the session cookie)."""
    text = text or ""
    return text if len(text) <= 60 else text[:57] + "..."


def _arg_problem(view: Any, handler: str, key: str, args: MultiDict) -> str | None:
    value = args.get(key)
    if _page_problem(key, value):
        return str(_l("Invalid page or page size: %(value)s (pages hold 1 to %(most)d rows).",
                      value=_shown(value), most=MAX_PAGE_SIZE))
    views = {type(v).__name__: v for v in (view, *getattr(view, "_related_views", []))}
    order = _ORDER_ARG.findall(key)
    if order and order[0] in views and args.get("_od_" + order[0]) in ("asc", "desc") \
            and value not in orderable_columns(views[order[0]]):
        return str(_l("This list cannot be sorted by %(column)s.", column=_shown(value)))
    found = _FILTER_ARG.findall(key)
    if found and _filter_problem(view, handler, int(found[0][0]), found[0][1]):
        return str(_l("This list cannot be filtered by %(column)s.", column=_shown(found[0][1])))
    return None


def list_arg_problems(view: Any, args: MultiDict, handler: str = "list") -> tuple[list[str], MultiDict]:
    """Check a list URL's arguments (order, filters, page) against what ``view`` allows.

    Allowed: ordering by a column the view lists as orderable (or its default order),
    filtering by a column it lists as searchable (FAB's ``_flt_<n>_<col>`` with an
    existing filter ``n``), pages of 1..``MAX_PAGE_SIZE`` rows; never a masked column
    (``masking.masked_columns``: a sort or filter on it is an oracle for the value).
    ``handler`` ``add``/``edit`` accept relation pre-fill filters instead. Returns the
    messages for the refused arguments and the arguments without them.
    """
    problems, kept = [], MultiDict()
    for key, values in args.lists():
        problem = _arg_problem(view, handler, key, args)
        if problem is None:
            kept.setlist(key, values)
        elif problem not in problems:
            problems.append(problem)
    return problems, kept


def related_field_filters(datamodel: Any, columns: Iterable[str], declared: dict | None,
                          *, new_records: bool) -> dict[str, list]:
    """Related-field query filters derived from the models, merged into ``declared``.

    A relation to a model with a data scope (``data_scope.has_scope``) offers only rows
    in the user's scope; on forms for new records (``new_records``) a relation to a
    model with an ``active`` flag (dictionaries, users) offers only active rows.
    The view's own filters are kept; nothing is added twice.
    """
    result = {name: list(filters) for name, filters in (declared or {}).items()}
    for column in columns:
        if not datamodel.is_relation(column):
            continue
        target = datamodel.get_related_model(column)
        wanted = [*(SCOPE_FILTER if has_scope(target) else []),
                  *(ACTIVE_ONLY if new_records and hasattr(target, "active") else [])]
        present = {flt[1] for flt in result.get(column, [])}
        extra = [flt for flt in wanted if flt[1] not in present]
        if extra:
            result[column] = [*result.get(column, []), *extra]
    return result


def name_blank_choices(form: Any) -> None:
    """Give a form's related selects a translated empty choice (FAB's is "", which WTForms
    shows as the value "__None")."""
    for name in dir(form):
        field = getattr(form, name, None)
        if isinstance(field, UnboundField) and issubclass(field.field_class, QuerySelectField) \
                and not field.kwargs.get("blank_text"):
            field.kwargs["blank_text"] = display.BLANK_CHOICE


def order_choices(form: Any) -> None:
    """Offer a related select's rows in their order (dictionaries and stages: ``sort_order``,
    then id) — the database returns rows in no set order (PostgreSQL: as last written)."""
    for name in dir(form):
        field = getattr(form, name, None)
        query = field.kwargs.get("query_func") if isinstance(field, UnboundField) \
            and issubclass(field.field_class, QuerySelectField) else None
        if query is not None and not getattr(query, "ordered", False):
            field.kwargs["query_func"] = _in_order(query)


def _in_order(query: Any) -> Any:
    def ordered() -> list[Any]:
        rows = list(query())
        if rows and hasattr(rows[0], "sort_order"):
            rows.sort(key=lambda row: (row.sort_order if row.sort_order is not None else 0, row.id))
        return rows

    ordered.ordered = True  # type: ignore[attr-defined]
    return ordered


class UntranslatedView(TypeError):
    """A screen that would show English on a page in another language (raised at start-up)."""


#: The title each page route shows (FAB's default for a missing one is "List/Show/Add/Edit
#: <Model Name>", built from the class name and never translated).
ROUTE_TITLES = {"list": "list_title", "show": "show_title", "add": "add_title", "edit": "edit_title"}
#: The columns each page route shows (the list page also holds the search form).
ROUTE_COLUMNS = {"list": ("list_columns", "search_columns"), "show": ("show_columns",),
                 "add": ("add_columns",), "edit": ("edit_columns",)}
#: Form routes and the extra fields that replace their columns.
ROUTE_EXTRA_FIELDS = {"add": "add_form_extra_fields", "edit": "edit_form_extra_fields"}


def translatable(text: Any) -> bool:
    """Whether ``text`` is rendered in the reader's language (a ``lazy_gettext`` string);
    plain text, including FAB's generated titles and prettified column names, is not."""
    return isinstance(text, LazyString)


def served_routes(view: Any) -> set[str]:
    """Which of list/show/add/edit ``view`` serves: exposed (``include``/``exclude_route_methods``)
    and with a permission it grants (an add route of a read-only view is never shown)."""
    include, exclude = view.include_route_methods, view.exclude_route_methods or set()
    granted = set(view.base_permissions or [])
    return {route for route in ROUTE_TITLES
            if (include is None or route in include) and route not in exclude
            and hasattr(getattr(view, route, None), "_urls")
            and PERMISSION_PREFIX + view.get_method_permission(route) in granted}


def _field_label(field: Any) -> Any:
    if not isinstance(field, UnboundField):
        return None
    return field.args[0] if field.args else field.kwargs.get("label")


def untranslated_parts(view: Any, labels: dict[str, Any] | None = None) -> list[str]:
    """What of ``view`` a page in another language would show in English: the title of a
    route it serves left to FAB's default, a column it shows or searches on such a route
    without a ``lazy_gettext`` label (``labels``: the declared ones, default the view's),
    a form's extra field without one. Empty when every text is translatable."""
    labels = view.label_columns if labels is None else labels
    problems, routes = [], served_routes(view)
    for route in sorted(routes):
        title = getattr(view, ROUTE_TITLES[route], None)
        if not translatable(title):
            problems.append(f"{ROUTE_TITLES[route]} {title!r}")
        extra = getattr(view, ROUTE_EXTRA_FIELDS.get(route, ""), None) or {}
        for name, field in extra.items():
            if not issubclass(field.field_class, HiddenField) and not translatable(_field_label(field)):
                problems.append(f"{route} field {name!r} has no lazy_gettext label")
        for attribute in ROUTE_COLUMNS[route]:
            for column in getattr(view, attribute, None) or []:
                if column not in extra and not translatable(labels.get(column)):
                    problems.append(f"{attribute} {column!r} has no label_columns entry")
    return list(dict.fromkeys(problems))


def refuse_untranslated(view: Any, labels: dict[str, Any] | None = None) -> None:
    """Raise ``UntranslatedView`` naming the view and what it lacks (``untranslated_parts``),
    so a screen cannot ship with English titles or column names on a translated page."""
    problems = untranslated_parts(view, labels)
    if problems:
        raise UntranslatedView(f"{type(view).__name__} would show untranslated text: " + "; ".join(problems)
                               + ". Declare the titles and label_columns with lazy_gettext (_l).")


def fieldset_columns(fieldsets: Any) -> list[str]:
    """The columns of FAB fieldsets (``[(title, {"fields": [...]}), ...]``)."""
    return [column for _, spec in fieldsets or [] for column in spec.get("fields", [])]


class ReadableViewMixin:
    """A FAB model view (ours, or FAB's own security screens) as a person reads it in any
    language: every shown column through ``display.view_formatters`` (no "None", "True",
    microseconds), related selects with a named empty choice (never "__None"), and every
    title and column label translatable, or the view refuses to start (``refuse_untranslated``)."""

    #: Other fieldsets a page of the view shows (FAB's user info page: ``user_show_fieldsets``).
    extra_fieldsets: tuple[str, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        if self.include_route_methods is not None:  # its forms' related fields look up through it
            self.include_route_methods = {*self.include_route_methods, "related"}
        super().__init__(**kwargs)
        refuse_untranslated(self)

    def shown_columns(self) -> set[str]:
        """Every column a list or page of the view shows."""
        shown = {*self.list_columns, *self.show_columns}
        for name in self.extra_fieldsets:
            shown.update(fieldset_columns(getattr(self, name, None)))
        return shown

    def declared_formatters(self, shown: set[str]) -> dict[str, Any]:
        """The view's own formatters (exports keep them; ``display`` fills in the rest)."""
        return dict(self.formatters_columns)

    def _init_properties(self) -> None:
        super()._init_properties()
        shown = self.shown_columns()
        declared = self.declared_formatters(shown)
        #: Exports keep the declared formatters (masking) and their own cell rules.
        self.export_formatters = declared
        # Every shown column reads as a person expects (no "None", no microseconds ...).
        self.formatters_columns = {**declared, **display.view_formatters(shown, declared)}

    def _init_forms(self) -> None:
        super()._init_forms()
        for kind, form in (("add", self.add_form), ("edit", self.edit_form), ("search", self.search_form)):
            related_fields.ajax_fields(self, form, kind)
            name_blank_choices(form)
            order_choices(form)

    @expose("/related/<string:kind>/<string:column>")
    def related(self, kind: str, column: str) -> Any:
        """One page of choices for the AJAX related field ``column`` of the ``kind``
        (add/edit/search) form, for whoever may use that form (``views.related.related_answer``)."""
        if not current_user.is_authenticated:
            return jsonify(message=str(_l("Log in first."))), 401
        return related_fields.related_answer(self, kind, column)


class CrmModelView(ReadableViewMixin, ModelView):
    """A ModelView that cannot leak through its list arguments, forms or actions.

    Derived from the models, never declared per view: masked columns
    (``masking.masked_columns``) are masked in lists, pages, edit forms and exports and
    cannot be ordered or filtered by; related-field choices in add, edit and search
    forms are scoped (``data_scope.has_scope``) and, on add forms, active only. A list
    URL with arguments the view refuses (``list_arg_problems``) is answered with a
    message, never a 500 and never applied. Bulk and single actions load each record
    through the view's base filters; an unknown action or an empty selection is a message.
    Shown values read as a person expects and every title and label is translatable
    (``ReadableViewMixin``).
    """

    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    page_size = 25
    #: FAB's file-column download (no CRM model has file columns; without UPLOAD_FOLDER it is a 500).
    exclude_route_methods = {"download"}

    def __init__(self, **kwargs: Any) -> None:
        self.datamodel = list_interface(self.datamodel)  # the list's total counts up to a cap
        permissions = type(self).method_permission_name or {}
        # "Count all" needs what the list needs, whatever a view calls it.
        self.method_permission_name = {**permissions, "count": permissions.get("list", "list")}
        super().__init__(**kwargs)

    @expose("/count/")
    @has_access
    def count(self) -> Any:
        """The exact number of records of the list with the same arguments (filters, data
        scope): the figure behind a capped "1,000+" (``views.list_count``), asked for by the
        page's "count all" link. JSON ``{"count": 12345, "text": "12,345"}``."""
        get_filter_args(self._filters)
        filters = self._filters.get_joined_filters(self._base_filters)
        total = self.datamodel.exact_count(db.session.query(self.datamodel.obj), filters)
        return jsonify(count=total, text=f"{total:,}")

    def _init_properties(self) -> None:
        super()._init_properties()
        model = self.datamodel.obj
        self.order_columns = unmasked_columns(model, self.order_columns)
        self.search_columns = unmasked_columns(model, self.search_columns)
        self._filters = self.datamodel.get_filters(self.search_columns)
        self.datamodel.eager = eager_paths(model, self.list_columns)

    def declared_formatters(self, shown: set[str]) -> dict[str, Any]:
        """The view's formatters, and masking for every masked column it shows."""
        model = self.datamodel.obj
        return {**self.formatters_columns,
                **{column: masking.mask for column in shown if masking.is_masked_path(model, column)}}

    def _init_forms(self) -> None:
        model = self.datamodel
        self.add_form_query_rel_fields = related_field_filters(
            model, self.add_columns or [], self.add_form_query_rel_fields, new_records=True)
        self.edit_form_query_rel_fields = related_field_filters(
            model, self.edit_columns or [], self.edit_form_query_rel_fields, new_records=False)
        self.search_form_query_rel_fields = related_field_filters(
            model, self.search_columns or [], self.search_form_query_rel_fields, new_records=False)
        super()._init_forms()

    @before_request
    def refuse_bad_list_args(self) -> Any:
        """Refused list arguments: a GET goes to the same page without them, with a
        message (an export is not made); any other method is a 400."""
        handler = (request.endpoint or "").rpartition(".")[2]
        problems, kept = list_arg_problems(self, request.args, handler)
        if not problems:
            return None
        if request.method != "GET":
            abort(400, description=" ".join(problems[:_MAX_MESSAGES]))
        for problem in problems[:_MAX_MESSAGES]:
            flash(problem, "warning")
        if handler == "export":
            flash(str(_l("Nothing was exported.")), "danger")
            handler, view_args = "list", {}
        else:
            view_args = dict(request.view_args or {})
        return redirect(url_for(f"{self.endpoint}.{handler}", **view_args, **kept.to_dict(flat=False)))

    def _get_list_widget(self, filters: Any, actions: Any = None, order_column: str = "",
                         order_direction: str = "", page: Any = None, page_size: Any = None,
                         widgets: Any = None, **kwargs: Any) -> Any:
        # Defence in depth behind ``refuse_bad_list_args``: never apply a refused order.
        if order_column and order_column not in orderable_columns(self):
            order_column, order_direction = "", ""
        page_size = min(page_size or self.page_size, MAX_PAGE_SIZE)
        page = self._reachable_page(filters, page, page_size)
        return super()._get_list_widget(filters, actions=actions, order_column=order_column,
                                        order_direction=order_direction, page=page, page_size=page_size,
                                        widgets=widgets, **kwargs)

    def _reachable_page(self, filters: Any, page: int | None, page_size: int) -> int | None:
        """``page``, or the pager's last page when it asks for records past the first
        ``COUNT_CAP`` of a list holding more (a typed URL: the database would walk every record
        before the page; issue 12), with a message. A list counted exactly (up to the cap, one
        record's related list) keeps the page: past its end it is empty, and reads nothing."""
        if not page or page * page_size <= COUNT_CAP:
            return page
        joined = filters.get_joined_filters(self._base_filters)
        if not isinstance(self.datamodel.query_count(db.session.query(self.datamodel.obj), joined), CappedCount):
            return page
        flash(str(_l("A list pages through its first %(count)s records: sort or filter it to reach the others.",
                     count=f"{COUNT_CAP:,}")), "info")
        return COUNT_CAP // page_size

    def _get_edit_widget(self, form: Any, exclude_cols: Any = None, widgets: Any = None) -> Any:
        if request.method == "GET":  # an edit form is output too: masked like the page
            for column in masking.masked_columns(self.datamodel.obj):
                if column in form and form[column].data and masking.MASK not in str(form[column].data):
                    form[column].data = masking.mask(form[column].data)
        return super()._get_edit_widget(form, exclude_cols=exclude_cols, widgets=widgets)

    @before_request
    def refuse_malformed_pk(self) -> Any:
        """``/show/abc`` on an integer key is a 404 (PostgreSQL would fail on the query)."""
        pk = (request.view_args or {}).get("pk")
        if pk is not None and self._coerce_pk(pk) is None:
            abort(404)
        return None

    def _coerce_pk(self, pk: Any) -> Any:
        pk = self._deserialize_pk_if_composite(pk)
        pk_name = self.datamodel.get_pk_name()
        if isinstance(pk_name, str) and self.datamodel.is_integer(pk_name):
            return db_int(pk)
        return pk

    def scoped_get(self, pk: Any) -> Any:
        """The record ``pk`` through the view's base filters (data scope), or None."""
        pk = self._coerce_pk(pk)
        return None if pk is None else self.datamodel.get(pk, self._base_filters)

    def _action_refusal(self, name: str) -> Any:
        """A redirect with a message when the action is unknown or not permitted, else None."""
        if name not in self.actions:
            flash(str(_l("Unknown action: %(name)s.", name=_shown(name))), "danger")
        elif not self.appbuilder.sm.has_access(self.get_action_permission_name(name), self.class_permission_name):
            flash(as_unicode(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
        else:
            return None
        return redirect(self.get_redirect())

    @expose("/action/<string:name>/<pk>", methods=["GET", "POST"])
    def action(self, name: str, pk: Any) -> Any:
        if request.method == "GET" and not self.is_get_mutation_allowed():
            flash(as_unicode(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(self.get_redirect())
        refusal = self._action_refusal(name)
        if refusal is not None:
            return refusal
        item = self.scoped_get(pk)
        if item is None:
            abort(404)
        return self.actions[name].func(item)

    @expose("/action_post", methods=["POST"])
    def action_post(self) -> Any:
        """Bulk action: every selected pk is loaded through the base filters (FAB's own
        ignores them); one out of reach refuses the whole action (404)."""
        name = request.form.get("action", "")
        pks = request.form.getlist("rowid")
        refusal = self._action_refusal(name)
        if refusal is not None:
            return refusal
        if not pks:
            flash(str(_l("Select at least one record first.")), "warning")
            return redirect(self.get_redirect())
        items = [self.scoped_get(pk) for pk in pks]
        if any(item is None for item in items):
            abort(404)
        return self.actions[name].func(items)


class ScopedModelView(CrmModelView):
    """A CrmModelView over a model with a data scope: lists, pages, edits, deletes and
    every action see only the user's records (``DataScopeFilter`` in ``base_filters``)."""

    base_filters = SCOPE_FILTER

    def _init_properties(self) -> None:
        super()._init_properties()
        if not any(flt[1] is DataScopeFilter for flt in self.base_filters):
            raise TypeError(f"{type(self).__name__}: base_filters must include SCOPE_FILTER")


class ListRefused(ValueError):
    """A list export asked for what the list refuses (its messages, joined, are the text)."""


def _value(item: Any, column: str) -> Any:
    for name in column.split("."):  # dotted list columns: customer.code
        item = getattr(item, name, None) if item is not None else None
    return item


class ListExportMixin:
    """Download the list as shown: base filters (scope), search filters, order, columns.

    ``formatters_columns`` apply, so masked columns stay masked unless ``unmasked``.
    The list's own argument rules apply (``list_arg_problems``): a refused order or
    filter refuses the export. Rows stream from the database (``yield_per``); lists longer
    than ``CRM_EXPORT_BACKGROUND_ROWS`` are written by a background job with a progress page.
    """

    def export_table(self, unmasked: frozenset[str] = frozenset(), only: list[str] | None = None
                     ) -> tuple[list[str], int, Iterator[list[Any]]]:
        """Header, row count and a row iterator of the current list (request args apply).

        ``only`` narrows the columns to some of the list's own (saved-list exports).
        Raises ``ListRefused`` for refused list arguments or unknown columns.
        """
        problems, _ = list_arg_problems(self, request.args)
        unknown = [c for c in only or [] if c not in self.list_columns]
        if unknown:
            problems.append(str(_l("Unknown columns: %(names)s.", names=", ".join(unknown))))
        if problems:
            raise ListRefused(" ".join(problems))
        get_filter_args(self._filters)
        order_column, order_direction = get_order_args().get(self.__class__.__name__, ("", ""))
        if not order_column:
            order_column, order_direction = self.base_order or ("", "")
        filters = self._filters.get_joined_filters(self._base_filters)
        model = self.datamodel.obj
        count = self.datamodel.exact_count(db.session.query(model), filters)
        query = self.datamodel.apply_all(db.session.query(model), filters, order_column, order_direction)
        names = only or self.list_columns
        columns = [(c, str(self.label_columns.get(c, c))) for c in names]
        # Custom fields (issue 18): a column each, masked ones masked unless unmasked; none
        # in a saved list's own columns.
        extra_headers, extra_cells = exporting.custom_columns(model, unmasked, skip=names) if only is None \
            else ([], None)
        rows = ([*(self._export_cell(item, col, unmasked) for col, _ in columns),
                 *(extra_cells(item) if extra_cells else ())]
                for item in query.yield_per(1000))
        return [label for _, label in columns] + extra_headers, count, rows

    def export_response(self, fmt: str, filename: str, unmasked: frozenset[str] = frozenset()) -> Any:
        if fmt not in exporting.FORMATS:
            abort(404)
        try:
            header, count, rows = self.export_table(unmasked)
        except ListRefused as exc:
            flash(str(exc), "warning")
            flash(str(_l("Nothing was exported.")), "danger")
            return redirect(url_for(f"{self.endpoint}.list"))
        if count > current_app.config["CRM_EXPORT_BACKGROUND_ROWS"]:
            from views.exports import start_export

            return start_export(self, fmt, filename, unmasked, count)
        exporting.record(self.datamodel.obj.__name__, fmt, count, unmasked)
        db.session.commit()
        return exporting.response(header, rows, fmt, filename)

    def _export_cell(self, item: Any, column: str, unmasked: frozenset[str]) -> Any:
        value = _value(item, column)
        formatters = getattr(self, "export_formatters", self.formatters_columns)
        if column in formatters and column not in unmasked:
            return formatters[column](value)
        if isinstance(value, datetime):
            return export_time(value)
        return "" if value is None else str(value)


def export_time(value: datetime) -> datetime:
    """An instant as an export cell: wall time in the CRM's zone, to the second, without a
    zone (a spreadsheet cell holds none; openpyxl refuses aware values). CSV writes it as
    ``YYYY-MM-DD HH:MM:SS``, xlsx as a date-time cell."""
    return clock.local_naive(value).replace(microsecond=0)


def _masked_field_class(cls: type) -> type:
    """A subclass of marshmallow field class ``cls`` that dumps the masked value (every
    API answer: get, list, post, put) and loads what is sent."""

    def _serialize(self: Any, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        value = cls._serialize(self, value, attr, obj, **kwargs)
        return value if value in (None, "") else masking.mask(value)

    return type(f"Masked{cls.__name__}", (cls,), {"_serialize": _serialize})


_MASKED_FIELDS: dict[type, type] = {}


class InstantField(fields.DateTime):
    """An instant in the REST API: answered as ISO 8601 in the CRM's zone with its offset
    (``2026-11-30T21:09:00+08:00``, the wall time the screens show); sent with an offset it
    is that instant, sent without one it is wall time in the CRM's zone (``clock.from_local``)."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return super()._serialize(clock.to_local(value) if isinstance(value, datetime) else value, attr, obj, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        try:
            return clock.from_local(super()._deserialize(value, attr, data, **kwargs))
        except OverflowError:  # 0001-01-01T00:00 in a zone east of UTC
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None


def _is_instant(datamodel: Any, name: str) -> bool:
    column = datamodel.list_columns.get(name)
    return column is not None and isinstance(getattr(column, "type", None), UtcDateTime)


class MaskingSchemaConverter(Model2SchemaConverter):
    """FAB's model-to-schema converter, with masked columns (``masking.masked_columns``,
    nested ones too) masked whenever a schema dumps them, including the schemas FAB
    builds per request for ``columns``/``select_columns``; instants in the CRM's zone
    (``InstantField``)."""

    def _column2field(self, datamodel: Any, column: Any, nested: bool = True,
                      parent_schema_name: str | None = None) -> Any:
        field = super()._column2field(datamodel, column, nested, parent_schema_name)
        if type(field) is fields.DateTime and _is_instant(datamodel, column.name):
            field.__class__ = InstantField
        if field is not None and column.name in masking.masked_columns(datamodel.obj):
            cls = type(field)
            if cls not in _MASKED_FIELDS:
                _MASKED_FIELDS[cls] = _masked_field_class(cls)
            field.__class__ = _MASKED_FIELDS[cls]
        return field


class ScopedApi(BoundedListApi, ModelRestApi):
    """A REST API with the data scope, explicit columns and rule errors as 4xx JSON.

    Derived from the models, as for ``CrmModelView``: masked columns are masked in every
    answer and cannot be ordered or filtered by (400); an order column not listed in
    ``order_columns`` is a 400 even when the list is empty; related choices (``_info``)
    are scoped and, for new records, active only; add/edit refuse a related id that does
    not exist or is out of scope with the same 422 (on edit, the stored value may stay).
    """

    base_filters = SCOPE_FILTER
    model2schemaconverter = MaskingSchemaConverter
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    #: JWT only: a session cookie must not authorise CSRF-exempt API calls.
    allow_browser_login = False
    #: Required by the model but defaulted by the rules (the owner is the creator).
    add_optional_columns: tuple[str, ...] = ("owner",)

    def __init__(self, **kwargs: Any) -> None:
        self.datamodel = list_interface(self.datamodel)  # counted from the scope's records, up to a cap
        super().__init__(**kwargs)

    def _init_properties(self) -> None:
        super()._init_properties()
        model = self.datamodel.obj
        self.order_columns = unmasked_columns(model, self.order_columns)
        self.search_columns = unmasked_columns(model, self.search_columns)
        self._filters = self.datamodel.get_filters(search_columns=self.search_columns,
                                                   search_filters=self.search_filters)
        self.add_query_rel_fields = related_field_filters(
            self.datamodel, self.add_columns, self.add_query_rel_fields, new_records=True)
        self.edit_query_rel_fields = related_field_filters(
            self.datamodel, self.edit_columns, self.edit_query_rel_fields, new_records=False)

    def _init_model_schemas(self) -> None:
        super()._init_model_schemas()
        for column in self.add_optional_columns:
            if column in self.add_model_schema.fields:
                self.add_model_schema.fields[column].required = False
        self._check_related_choices(self.add_model_schema, self.add_query_rel_fields, editing=False)
        self._check_related_choices(self.edit_model_schema, self.edit_query_rel_fields, editing=True)

    def _sanitize_page_args(self, page: Any, page_size: Any) -> tuple[Any, Any]:
        """Pages 0..``_MAX_PAGE`` only (a negative or huge page is an invalid offset: 400)."""
        if page is not None and not (isinstance(page, int) and 0 <= page <= _MAX_PAGE):
            raise ArgumentRefused(f"Invalid page: pages are 0 to {_MAX_PAGE:,}.")
        if page_size is not None and not isinstance(page_size, int):
            raise ArgumentRefused("Invalid page size.")
        return super()._sanitize_page_args(page, page_size)

    def _handle_order_args(self, rison_args: dict[str, Any]) -> tuple[str, str]:
        column = rison_args.get(API_ORDER_COLUMN_RIS_KEY, "")
        if column and column not in self.order_columns:  # FAB lets anything through when the list is empty
            raise InvalidOrderByColumnFABException(f"Invalid order by column: {column}")
        return super()._handle_order_args(rison_args)

    def _check_related_choices(self, schema: Any, rel_filters: dict[str, list], editing: bool) -> None:
        """Parsing refuses related ids outside the data scope, like ids that do not exist.
        The other choice rules (active entries and owners, archived customers) are the use
        case's, with its own messages, the same for every entry point."""
        for name, field in schema.fields.items():
            scope = [flt for flt in rel_filters.get(name, []) if flt[1] is DataScopeFilter]
            if isinstance(field, (Related, RelatedList)):
                field.validators.append(self._choice_validator(name, scope, editing))

    def _choice_validator(self, name: str, filters: list, editing: bool) -> Any:
        def check(value: Any) -> None:
            for item in value if isinstance(value, list) else [value]:
                if item is not None and not self._may_choose(name, item, filters, editing):
                    raise SchemaValidationError(str(_l("No such record, or you may not choose it.")))

        return check

    def _may_choose(self, name: str, item: Any, filters: list, editing: bool) -> bool:
        """Whether ``item`` exists and passes ``filters`` (the data scope) or, when editing,
        is the value already stored. Unknown ids load as new objects: refused."""
        state = inspect(item)
        if state.transient or state.pending:
            return False
        if not filters or (editing and self._is_stored_choice(name, item)):
            return True
        related = self.datamodel.get_related_interface(name)
        pk_column = getattr(related.obj, related.get_pk_name())
        query = related.get_filters().add_filter_list(filters).apply_all(db.session.query(related.obj))
        return query.filter(pk_column == related.get_pk_value(item)).first() is not None

    def _is_stored_choice(self, name: str, item: Any) -> bool:
        try:
            pk = int((request.view_args or {}).get("pk"))
        except (TypeError, ValueError):
            return False
        record = self.datamodel.get(pk, self._base_filters)
        stored = getattr(record, name, None) if record is not None else None
        return item in stored if isinstance(stored, list) else item is stored

    def _rule_response(self, exc: RuleViolation) -> Any:
        db.session.rollback()
        return self.response(exc.status, message=exc.errors)

    @api_expose("/related/<column_name>", methods=["GET"])
    @protect()
    @safe
    @rison(RELATED_SCHEMA)
    def related(self, column_name: str, **kwargs: Any) -> Any:
        """One page of the choices of a related field, searched by code / name.
        ---
        get:
          description: >-
            The records a related field of add (else edit) may be set to: in the caller's
            data scope, active ones for new records; matched by code, name or user name.
          parameters:
          - in: path
            name: column_name
            schema:
              type: string
          - in: query
            name: q
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    filter: {type: string}
                    page: {type: integer}
                    page_size: {type: integer}
          responses:
            200:
              description: "{result: [{value: id, text: label}], page, page_size, more}"
            400:
              $ref: '#/components/responses/400'
            404:
              $ref: '#/components/responses/404'
        """
        args = kwargs.get("rison", {})
        adding = column_name in self.add_columns
        if not (adding or column_name in self.edit_columns) or not self.datamodel.is_relation(column_name):
            return self.response_404()
        page, size = args.get("page", 0), args.get("page_size", related_choices.PER_PAGE)
        if not 1 <= size <= MAX_PAGE_SIZE:
            return self.response_400(message=f"Pages hold 1 to {MAX_PAGE_SIZE} choices.")
        rules = (self.add_query_rel_fields if adding else self.edit_query_rel_fields).get(column_name, [])
        try:
            found = related_choices.lookup(
                g.user, self.datamodel.get_related_model(column_name), args.get("filter", ""), db.session,
                narrow=related_fields.filter_narrow(self, column_name, rules), live=adding, page=page, per_page=size)
        except ValueError as exc:
            return self.response_400(message=str(exc))
        result = [{"value": item.id, "text": related_fields.choice_label(item)} for item in found.items]
        return self.response(200, result=result, page=page, page_size=size, more=found.more,
                             cut_short=found.cut_short)

    def post_headless(self) -> Any:
        try:
            with db.session.no_autoflush:  # rules must see the loaded values, not a flushed half-edit
                return super().post_headless()
        except RuleViolation as exc:
            return self._rule_response(exc)

    def delete_headless(self, pk: Any) -> Any:
        try:
            return super().delete_headless(pk)
        except RuleViolation as exc:
            return self._rule_response(exc)

    def put_headless(self, pk: Any) -> Any:
        payload = request.get_json(silent=True)
        # ``version`` is checked by pre_update, never loaded onto the model (it would
        # become the new version instead of guarding the old one).
        g.submitted_version = payload.pop("version", None) if isinstance(payload, dict) else None
        try:
            with db.session.no_autoflush:
                return super().put_headless(pk)
        except RuleViolation as exc:
            return self._rule_response(exc)


def rule_validator(rule: Any) -> Any:
    """Wrap a ``ValueError``-raising service rule as a WTForms validator (same message)."""

    def validate(form: Any, field: Any) -> None:
        try:
            result = rule(form, field)
        except (ValueError, RuleViolation) as exc:
            raise ValidationError(str(exc)) from None
        if result is not None:
            field.data = result

    return validate

