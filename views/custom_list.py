"""Custom fields on the record screens' lists and pages (issue 18; 001 扩展信息, 003 客户标签).

- show page: one row per custom field holding a value (``values.as_text`` in the page's
  language; tags as coloured chips; a masked field masked, with a link to the recorded
  reveal when one is served);
- list: a column per field the admin put in the list (``in_list``), read for the whole
  page in one query;
- list filters and sorting: the ``cf_`` arguments read by ``custom_fields.filters.read``
  (the REST API's reader too: equals / any of, ``__contains``, ``__from`` / ``__to``,
  ``cf_sort``); a refused one is a message and the filter is ignored. The conditions are
  ANDed to the list's scoped query (``CustomFieldsFilter`` among the base filters), never
  replacing it; masked fields cannot be filtered or sorted by.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from flask import current_app, flash, g, has_request_context, request, url_for
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import select

from app.extensions import db
from app.services import custom_fields
from app.services.custom_fields import filters as cf_filters
from app.services.custom_fields import values as cf_values
from app.services.custom_fields.definitions import FieldDef
from app.services.custom_fields.filters import CONTAINS, FROM, RANGED, SORT_ARG, TO
from views import display
from views.custom_form import page_lang
from views.list_count import ListInterface

_COLOUR = re.compile(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?")
#: Handlers whose list the filters narrow (the list and its download).
FILTERED_HANDLERS = ("list", "export")
REVEAL_PREFIX = "/customfield-reveal/"


# -- values as shown ---------------------------------------------------------------------------

def chips(field: FieldDef, value: Any, lang: str) -> Markup:
    """Choice labels as Bootstrap labels, coloured by the choice's colour (``#rgb``/``#rrggbb``)."""
    parts = []
    for label, colour in cf_values.choice_labels(field, value, lang):
        style = Markup(' style="background-color:{}"').format(colour) if _COLOUR.fullmatch(colour or "") else ""
        parts.append(Markup('<span class="label label-default crm-tag"{}>{}</span>').format(style, label))
    return Markup(" ").join(parts)


def reveal_url(record_type: str, pk: Any, key: str) -> str | None:
    """The recorded reveal of a masked field (builder "api"'s ``/customfield-reveal/…``) when
    the application serves it, else None."""
    for rule in current_app.url_map.iter_rules():
        if rule.rule.startswith(REVEAL_PREFIX):
            return f"{REVEAL_PREFIX}{record_type}/{pk}/{key}"
    return None


def shown_value(field: FieldDef, value: Any, lang: str, reveal: str | None = None) -> Any:
    """A stored value as a page shows it: masked (``masked_text``, plus a reveal link) for a
    masked field, chips for choices, else ``as_text``."""
    if cf_values.empty(value):
        return ""
    if field.masked:
        text = cf_values.masked_text(field, value)
        if reveal:
            return Markup('{} <a class="btn btn-xs btn-default crm-reveal" href="{}">{}</a>').format(
                text, reveal, _l("Reveal"))
        return text
    if field.kind in custom_fields.CHOOSING:
        return chips(field, value, lang)
    try:  # days and instants in the company's date format, like every built-in one
        if field.kind == custom_fields.DATE:
            return display.shown_day(date.fromisoformat(str(value)))
        if field.kind == custom_fields.DATETIME:
            return display.shown_time(datetime.strptime(str(value), cf_values.INSTANT_FORMAT).replace(tzinfo=UTC))
    except ValueError:  # stored before the field's kind changed: as stored
        return str(value)
    return cf_values.as_text(field, value, lang)


# -- filters -----------------------------------------------------------------------------------

def screen_message(problem: cf_filters.Problem) -> str:
    """A refused argument as the list flashes it: a refused value says the filter was ignored."""
    if problem.label:
        return str(_l("%(field)s: %(message)s The filter was ignored.", field=problem.label,
                      message=problem.message))
    return problem.message


def read_list_request(model: type, record_type: str, args: Any) -> cf_filters.ListFilters:
    """The conditions and order the ``cf_`` arguments of a list URL ask for
    (``custom_fields.filters.read``, in the page's language)."""
    return cf_filters.read(args, model, record_type, page_lang())


def _filtered_here(view_name: Any) -> bool:
    """Whether the current request is the list (or its download) of the screen ``view_name``."""
    if not has_request_context():
        return False
    view, _, handler = (request.endpoint or "").partition(".")
    return handler in FILTERED_HANDLERS and view == view_name


def current_list_request(model: type) -> cf_filters.ListFilters:
    """This request's ``ListFilters`` for ``model`` (read once; its problems flashed once)."""
    cache = g.setdefault("custom_list_requests", {})
    if model not in cache:
        record_type = custom_fields.record_type_of(model)
        cache[model] = read_list_request(model, record_type, request.args) if record_type else cf_filters.ListFilters()
        for message in dict.fromkeys(screen_message(problem) for problem in cache[model].problems):
            flash(message, "warning")
    return cache[model]


class CustomFieldsFilter(BaseFilter):
    """Base filter of a screen with custom fields: the ``cf_`` conditions and order of its
    list (and its download), ANDed to the scope and the other base filters. Its value is
    the screen's class name: other screens' lists and every page, edit and action are left alone."""

    name = "Custom fields"
    arg_name = "custom_fields"

    def apply(self, query: Any, value: Any) -> Any:
        if not _filtered_here(value):
            return query
        found = current_list_request(self.model)
        return query.filter(*found.conditions) if found.conditions else query


class CustomFieldsInterface(ListInterface):
    """The data model of a screen with custom fields: its list is ordered by ``cf_sort``
    (``query.order``: the value then the id, one direction) instead of FAB's order column,
    in the page query only — the count stays unordered."""

    view_name = ""

    def apply_order_by(self, query: Any, order_column: str, order_direction: str, *args: Any, **kwargs: Any) -> Any:
        if order_column and _filtered_here(self.view_name):  # "": FAB's count query, left unordered
            found = current_list_request(self.obj)
            if found.order is not None:
                return query.order_by(*found.order)
        return super().apply_order_by(query, order_column, order_direction, *args, **kwargs)


# -- the mixin --------------------------------------------------------------------------------

def list_fields(record_type: str | None) -> list[FieldDef]:
    """The active fields the admin put in the list (``in_list``)."""
    return [f for f in custom_fields.fields_of(record_type, active=True) if f.in_list] if record_type else []


def filter_fields(record_type: str | None) -> list[FieldDef]:
    """The fields the list's filter form offers: active, not masked, searchable or in the list."""
    if not record_type:
        return []
    return [f for f in custom_fields.fields_of(record_type, active=True)
            if not f.masked and (f.searchable or f.in_list) and f.kind != custom_fields.USER]


def _stored(model: type, pks: list[Any]) -> dict[Any, dict[str, Any]]:
    if not pks:
        return {}
    rows = db.session.execute(select(model.id, model.custom).where(model.id.in_(pks)))
    return {pk: custom or {} for pk, custom in rows}


class CustomFieldsListMixin:
    """Custom fields on a screen's show page, list columns, list filters and sorting (see
    the module doc). Goes before ``UseCaseFormMixin`` / ``ScopedModelView`` in the bases."""

    def __init__(self, **kwargs: Any) -> None:
        model = self.datamodel.obj
        if custom_fields.record_type_of(model) is not None and not isinstance(self.datamodel, CustomFieldsInterface):
            self.datamodel = CustomFieldsInterface(model, self.datamodel._session)
            self.datamodel.view_name = type(self).__name__
        super().__init__(**kwargs)

    def _init_properties(self) -> None:
        model = self.datamodel.obj
        if custom_fields.record_type_of(model) is not None:
            self.base_filters = [*self.base_filters, ["id", CustomFieldsFilter, type(self).__name__]]
        super()._init_properties()

    def _get_show_widget(self, pk: Any, item: Any, widgets: Any = None, actions: Any = None,
                         show_fieldsets: Any = None) -> Any:
        widgets = super()._get_show_widget(pk, item, widgets=widgets, actions=actions, show_fieldsets=show_fieldsets)
        record_type = custom_fields.record_type_of(item)
        stored = getattr(item, "custom", None) or {}
        fields = [f for f in custom_fields.fields_of(record_type or "") if not cf_values.empty(stored.get(f.key))]
        if fields:
            _add_show_rows(widgets["show"].template_args, record_type, pk, fields, stored)
        return widgets

    def _get_list_widget(self, filters: Any, **kwargs: Any) -> Any:
        widgets = super()._get_list_widget(filters, **kwargs)
        record_type = custom_fields.record_type_of(self.datamodel.obj)
        widget = widgets.get("list")
        if widget is None or record_type is None:
            return widgets
        if not custom_fields.fields_of(record_type, active=True):
            return widgets
        args = widget.template_args
        columns = list_fields(record_type)
        if columns:
            _add_list_columns(args, self.datamodel.obj, columns)
        args["custom_filters"] = _filter_form(filter_fields(record_type), record_type)
        args["inner_template"] = widget.template
        widget.template = "crm/custom_list.html"
        return widgets


def _add_show_rows(args: dict[str, Any], record_type: str, pk: Any, fields: list[FieldDef],
                   stored: dict[str, Any]) -> None:
    lang = page_lang()
    include = list(args["include_columns"])
    shown = list(args["value_columns"])
    labels = dict(args["label_columns"])
    grouped: dict[str, list[str]] = {}
    for item in fields:
        reveal = reveal_url(record_type, pk, item.key) if item.masked else None
        include.append(item.name)
        shown.append(shown_value(item, stored.get(item.key), lang, reveal))
        labels[item.name] = item.label(lang)
        grouped.setdefault(item.section(lang) or str(_l("More information")), []).append(item.name)
    args.update(include_columns=include, value_columns=shown, label_columns=labels)
    if args.get("fieldsets"):
        args["fieldsets"] = [*args["fieldsets"], *((heading, {"fields": names}) for heading, names in grouped.items())]


def _add_list_columns(args: dict[str, Any], model: type, columns: list[FieldDef]) -> None:
    lang = page_lang()
    pks = list(args.get("pks") or [])
    stored = _stored(model, pks)
    rows = list(args["value_columns"])
    for pk, row in zip(pks, rows, strict=False):
        custom = stored.get(pk, {})
        for item in columns:
            row[item.name] = shown_value(item, custom.get(item.key), lang)
    args.update(value_columns=rows, include_columns=[*args["include_columns"], *(f.name for f in columns)],
                label_columns={**args["label_columns"], **{f.name: f.label(lang) for f in columns}})


def _filter_form(fields: list[FieldDef], record_type: str) -> dict[str, Any]:
    """What ``crm/custom_list.html`` draws: the filter inputs, the sort choices, the other
    arguments kept as hidden inputs, and the list's URL."""
    lang = page_lang()
    inputs = []
    for item in fields:
        entry = {"name": item.name, "label": item.label(lang), "kind": item.kind}
        if item.kind in custom_fields.CHOOSING:
            chosen = set(request.args.getlist(item.name))
            entry["choices"] = [(c.code, c.label(lang), c.code in chosen) for c in item.choices]
        elif item.kind == custom_fields.BOOLEAN:
            entry["choices"] = [("yes", str(_l("Yes")), request.args.get(item.name) == "yes"),
                                ("no", str(_l("No")), request.args.get(item.name) == "no")]
        elif item.kind in RANGED:
            entry["from"], entry["to"] = (request.args.get(f"{item.name}__{FROM}", ""),
                                          request.args.get(f"{item.name}__{TO}", ""))
            entry["input"] = {custom_fields.DATE: "date", custom_fields.DATETIME: "datetime-local"}.get(item.kind, "text")
        else:
            entry["contains"] = request.args.get(f"{item.name}__{CONTAINS}", "")
        inputs.append(entry)
    sortable = [f for f in custom_fields.fields_of(record_type, active=True) if not f.masked and not f.is_list]
    sorts = [(f"{sign}{f.name}", f"{f.label(lang)} {arrow}") for f in sortable
             for sign, arrow in (("", "↑"), ("-", "↓"))]
    kept = [(key, value) for key, values in request.args.lists() for value in values
            if not custom_fields.is_custom(key) and not key.startswith("page_")]
    return {"inputs": inputs, "sorts": sorts, "sort": request.args.get(SORT_ARG, ""), "kept": kept,
            "action": url_for(request.endpoint, **(request.view_args or {})),
            "active": any(custom_fields.is_custom(key) for key in request.args)}
