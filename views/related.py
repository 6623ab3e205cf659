"""One AJAX select for every related field of every screen (issue 12).

FAB renders a related field as a ``<select>`` holding every record of the related model
(``QuerySelectField``): the follow-up list's search filters and forms carried every
customer in scope (13 MB of HTML at 108k customers). Here a related field of a model
that is not small by design (``is_bounded``) renders only its current value; the browser
(``static/crm/related.js``, Select2 as FAB serves it) asks the view's ``related`` route
for one page of choices as the user types (``related_answer``), through
``app.services.related.lookup``: the data scope always, plus the field's own rules (the
view's ``*_form_query_rel_fields``: active entries on new records ...). A posted id is
loaded through the same rules, so an id the user could not have been offered is "Not a
valid choice", as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import g, jsonify, request, url_for
from flask_appbuilder.const import PERMISSION_PREFIX
from flask_appbuilder.fields import QuerySelectField
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy.sql import Select
from wtforms import Field
from wtforms.fields.core import UnboundField
from wtforms.validators import StopValidation, ValidationError
from wtforms.widgets import html_params

from app.extensions import db
from app.models.dictionaries import DictionaryMixin
from app.models.org import Department, RoleDataScope
from app.models.sales import AssignmentRule
from app.models.sync import SyncTarget
from app.models.transfers import TransferSchedule
from app.security import masking
from app.security.request_bounds import db_int
from app.services import related

#: Models small by design (dictionaries, the org chart, configuration, FAB's roles and
#: permissions): their fields stay plain selects.
_BOUNDED: tuple[type, ...] = (DictionaryMixin, Department, RoleDataScope, AssignmentRule, SyncTarget,
                              TransferSchedule)
#: Form kinds and the route whose permission a lookup needs.
KIND_ROUTES = {"add": "add", "edit": "edit", "search": "list"}
#: Ids one multiple select (or the search filters of one column) may carry.
MAX_CHOSEN = 100
_BLANK = ("", "__None")
_FILTER_ARG = re.compile(r"_flt_\d+_(.+)")

PLACEHOLDER = _l("Type to search…")
CUT_SHORT = _l("The search took too long: type more of the name or the code.")
TOO_LONG = _l("Type at most %(n)d characters.")


def is_bounded(model: type) -> bool:
    """Whether ``model``'s rows are few by design (a plain select may list them all):
    dictionary entries, departments, configuration rows, FAB's roles and permissions.
    Customers, contacts, leads, opportunities, products, users ... are not."""
    if related._is_user_model(model):
        return False
    return issubclass(model, _BOUNDED) or model.__module__.startswith("flask_appbuilder.security")


def choice_label(item: Any) -> str:
    """How a record reads in a related field: its own text (code and name), plus for a
    customer or contact whose phone is masked the contact and the masked phone, for a user
    the user name. Never a full phone (``masking``)."""
    if related._is_user_model(type(item)):
        name = f"{item.first_name or ''} {item.last_name or ''}".strip()
        return f"{name} ({item.username})" if name else item.username
    parts = [str(getattr(item, "contact_name", None) or "")]
    parts += [masking.mask(getattr(item, column)) for column in sorted(masking.masked_columns(type(item)))
              if getattr(item, column, None)]
    extra = ", ".join(part for part in parts if part)
    return f"{item} ({extra})" if extra else str(item)


def _filter_column(key: str) -> str | None:
    """The column a list filter argument (``_flt_<n>_<column>``) is on, or None."""
    match = _FILTER_ARG.fullmatch(key)
    return match.group(1) if match else None


class RelatedSelectWidget:
    """A ``<select>`` with only the chosen records as options; ``related.js`` turns it
    into a Select2 that asks ``data-related-url`` for the others."""

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        kwargs.setdefault("id", field.id)
        attrs = {"name": field.name, "class": "crm-related form-control", "data-related-url": field.url(),
                 "data-placeholder": str(PLACEHOLDER), "style": "width: 100%"}
        if field.multiple:
            attrs["multiple"] = True
        elif field.allow_blank:
            attrs["data-allow-clear"] = "true"
        options = [] if field.multiple else [Markup('<option value=""></option>')]
        chosen = {item.id for item in field.chosen()}
        for item in field.shown():
            selected = " selected" if item.id in chosen else ""
            options.append(Markup('<option value="{}"{}>{}</option>').format(
                item.id, Markup(selected), choice_label(item)))
        return Markup("<select {}>{}</select>").format(Markup(html_params(**attrs, **kwargs)), Markup("").join(options))


class RelatedSelectField(Field):
    """A many-to-one related field chosen by AJAX (see the module doc).

    ``model``: the related model; ``narrow``: the field's own rules over a SELECT of it
    (the data scope is always added); ``source``: ``(view, kind)`` whose ``related`` route
    answers the lookups; ``accept_any``: parse any existing id and let the use case judge
    it (owners: the rule and its message are the use case's, the same for every entry point).
    """

    widget = RelatedSelectWidget()
    multiple = False

    def __init__(self, label: Any = None, validators: Any = None, *, model: type,
                 narrow: Callable[[Select], Select] | None = None, allow_blank: bool = False,
                 blank_text: Any = "", source: tuple[str, str] | None = None, accept_any: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(label, validators, **kwargs)
        self.model, self.narrow, self.source, self.accept_any = model, narrow, source, accept_any
        self.allow_blank, self.blank_text = allow_blank, blank_text
        self._posted: list[str] | None = None
        self._loaded = False

    # -- values ------------------------------------------------------------------------------
    def process_data(self, value: Any) -> None:
        self._set(value)

    def _set(self, value: Any) -> None:
        self._data, self._posted, self._loaded = value, None, True

    def process_formdata(self, valuelist: list[str]) -> None:
        if valuelist:
            self._posted = [value for value in valuelist if value not in _BLANK]
            self._data, self._loaded = None, False

    def _ids(self) -> list[int] | None:
        """The posted ids as integers, or None when one is no id at all."""
        ids = [db_int(value) if value.isdigit() else None for value in self._posted or []]
        return None if None in ids or len(ids) > MAX_CHOSEN else ids

    def _load(self, ids: list[int]) -> list[Any]:
        if self.accept_any:
            model = related.selected_model(self.model)
            return [item for item in (db.session.get(model, pk) for pk in ids) if item is not None]
        return related.chosen(g.user, self.model, ids, db.session, narrow=self.narrow)

    def _get_data(self) -> Any:
        if not self._loaded:
            ids = self._ids() or []
            found = self._load(ids)
            self._data = found[0] if found else None
            self._loaded = True
        return self._data

    data = property(_get_data, _set)

    def chosen(self) -> list[Any]:
        """The chosen record(s), as a list."""
        data = self.data
        return [] if data is None else [data]

    def shown(self) -> list[Any]:
        """The options the select carries: the chosen value(s), and on a search form the
        values the active filters of this column name (FAB's filter script selects them);
        only records in the user's data scope, whatever put them on the form (FAB's "add
        from the parent record" link sets any id from the URL, an owner field parses any
        user id): a label is never an oracle for a record out of scope."""
        ids = [item.id for item in self.chosen()]
        if self.source and self.source[1] == "search":
            ids += [db_int(value) for key, values in request.args.lists() for value in values
                    if _filter_column(key) == self.short_name and value.isdigit()]
        wanted = [pk for pk in dict.fromkeys(ids) if pk is not None][:MAX_CHOSEN]
        found = {item.id: item for item in related.chosen(g.user, self.model, wanted, db.session)}
        return [found[pk] for pk in wanted if pk in found]

    def pre_validate(self, form: Any) -> None:
        # StopValidation: "required" would hide why a chosen id was refused
        if self._posted and (self._ids() is None or not self.chosen()):
            raise StopValidation(self.gettext("Not a valid choice"))
        if not self._posted and self.data is None and not self.allow_blank:
            raise ValidationError(self.gettext("Not a valid choice"))

    def _value(self) -> str:
        return ",".join(str(item.id) for item in self.chosen())

    def url(self) -> str:
        """Where the browser asks for choices (the view's ``related`` route)."""
        if self.source is None:
            return ""
        view, kind = self.source
        return url_for(f"{view}.related", kind=kind, column=self.short_name)


class RelatedSelectMultipleField(RelatedSelectField):
    """A many-to-many related field chosen by AJAX (at most ``MAX_CHOSEN`` records)."""

    multiple = True

    def __init__(self, *args: Any, default: Any = None, **kwargs: Any) -> None:
        kwargs.pop("allow_blank", None)
        super().__init__(*args, default=default if default is not None else [], allow_blank=True, **kwargs)

    def _get_data(self) -> Any:
        if not self._loaded:
            ids = self._ids()
            self._data = self._load(ids) if ids else []
            self._invalid = ids is None or len(self._data) != len(set(ids))
            self._loaded = True
        return self._data

    data = property(_get_data, RelatedSelectField._set)

    def chosen(self) -> list[Any]:
        return list(self.data or [])

    def pre_validate(self, form: Any) -> None:
        self._get_data()
        if self._posted and getattr(self, "_invalid", False):
            raise StopValidation(self.gettext("Not a valid choice"))


def filter_narrow(view: Any, column: str, filters: list) -> Callable[[Select], Select] | None:
    """The view's related-field filters (FAB ``[column, filter class, value]`` lists) as a
    function over a SELECT of the related model."""
    if not filters:
        return None
    interface = view.datamodel.get_related_interface(column)

    def narrow(statement: Select) -> Select:
        return interface.get_filters().add_filter_list(filters).apply_all(statement)

    return narrow


_KIND_FILTERS = {"add": "add_form_query_rel_fields", "edit": "edit_form_query_rel_fields",
                 "search": "search_form_query_rel_fields"}


def _ajax_field(view: Any, kind: str, name: str, field: UnboundField) -> UnboundField | None:
    """The AJAX replacement of FAB's related select ``field`` (None: keep it)."""
    cls = field.field_class
    if issubclass(cls, RelatedSelectField):
        return UnboundField(cls, *field.args, **{**field.kwargs, "source": (type(view).__name__, kind)})
    if not issubclass(cls, QuerySelectField) or not view.datamodel.is_relation(name):
        return None
    model = view.datamodel.get_related_model(name)
    if is_bounded(model):
        return None
    kwargs = {key: field.kwargs[key] for key in ("description", "validators", "allow_blank", "blank_text")
              if key in field.kwargs}
    filters = (getattr(view, _KIND_FILTERS[kind], None) or {}).get(name, [])
    many = view.datamodel.is_relation_many_to_many(name) or view.datamodel.is_relation_one_to_many(name)
    label = field.args[0] if field.args else field.kwargs.get("label")
    return UnboundField(RelatedSelectMultipleField if many else RelatedSelectField, label, model=model,
                        narrow=filter_narrow(view, name, filters), source=(type(view).__name__, kind), **kwargs)


def ajax_fields(view: Any, form: Any, kind: str) -> None:
    """Replace, on form class ``form`` of ``view`` (``kind`` add/edit/search), every related
    select of a model that is not small by design with its AJAX field."""
    if form is None:
        return
    for name in [n for n in dir(form) if isinstance(getattr(form, n, None), UnboundField)]:
        replacement = _ajax_field(view, kind, name, getattr(form, name))
        if replacement is not None:
            setattr(form, name, replacement)


def _unbound(view: Any, kind: str, column: str) -> UnboundField | None:
    form = getattr(view, f"{kind}_form", None)
    field = getattr(form, column, None) if form is not None and not column.startswith("_") else None
    if isinstance(field, UnboundField) and issubclass(field.field_class, RelatedSelectField):
        return field
    return None


def may_look_up(view: Any, kind: str) -> bool:
    """Whether the current user may use ``view``'s ``kind`` form: the view serves its route
    and the user's roles grant that route's permission."""
    from views.base import served_routes

    route = KIND_ROUTES.get(kind)
    if route is None or route not in served_routes(view):
        return False
    permission = PERMISSION_PREFIX + view.get_method_permission(route)
    return view.appbuilder.sm.has_access(permission, view.class_permission_name)


def related_answer(view: Any, kind: str, column: str) -> Any:
    """The lookup of ``view``'s ``kind`` form's ``column``, as Select2 reads it:
    ``{"results": [{"id", "text"}], "pagination": {"more"}}``, plus ``message`` when the
    search was cut short or the text refused. 403 without the form's permission, 404 for
    a field that is not an AJAX related field, 400 for a page that is no number."""
    if not may_look_up(view, kind):
        return jsonify(message=str(_l("You may not use this form."))), 403
    unbound = _unbound(view, kind, column)
    if unbound is None:
        return jsonify(message=str(_l("No such field."))), 404
    page = request.args.get("page", "0") or "0"
    if not page.isdigit() or int(page[:6]) >= related.MAX_PAGES:
        return jsonify(message=str(_l("Pages are 0 to %(last)d: type more to narrow the choices.",
                                      last=related.MAX_PAGES - 1))), 400
    kwargs = unbound.kwargs
    try:
        found = related.lookup(g.user, kwargs["model"], request.args.get("q", ""), db.session,
                               narrow=kwargs.get("narrow"), live=kind == "add", page=int(page))
    except ValueError:
        return jsonify(results=[], pagination={"more": False},
                       message=str(TOO_LONG % {"n": related.search.MAX_QUERY_LENGTH})), 200
    answer: dict[str, Any] = {"results": [{"id": str(item.id), "text": choice_label(item)} for item in found.items],
                              "pagination": {"more": found.more}}
    if found.cut_short:
        answer["message"] = str(CUT_SHORT)
    return jsonify(answer)
