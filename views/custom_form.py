"""Custom fields on the add and edit forms of every record screen (issue 18; 001 基础配置
扩展信息, 003 第三步 1 字段设置: text / number / date / dropdown, required).

``CustomFieldsFormMixin`` (before ``UseCaseFormMixin`` in a view's bases) gives each request
a subclass of the view's form with one field ``cf_<key>`` per active custom field of the
record type (plus, on edit, an inactive field that still holds a value, read-only). The
form only carries what was typed: ``records.assign`` -> ``custom_fields.apply`` checks it
and its ``RuleViolation({"cf_key": msg})`` shows under the field. Fields render under the
built-in ones, grouped by section (``crm/custom_form.html``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, BS3TextFieldWidget, Select2ManyWidget, Select2Widget
from flask_babel import lazy_gettext as _l
from wtforms import SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.core import UnboundField

from app import clock
from app.extensions import db
from app.models.org import CrmUser
from app.services import custom_fields
from app.services.custom_fields import values as cf_values
from app.services.custom_fields.definitions import FieldDef
from views import display
from views.forms import active_users
from views.related import RelatedSelectField

#: The heading of custom fields without a section.
MORE_INFORMATION = _l("More information")
YES, NO = _l("Yes"), _l("No")
#: ``<input type="datetime-local">`` text (wall time in the CRM's zone, to the minute).
LOCAL_MINUTE = "%Y-%m-%dT%H:%M"


#: The page's language code ("en", "zh" …).
page_lang = custom_fields.reader_lang


class RequiredMarker:
    """Marks a field required (the red star, ``required`` in HTML) without checking it: the
    use case's rule and message decide (``custom_fields.apply``)."""

    field_flags = {"required": True}

    def __call__(self, form: Any, field: Any) -> None:
        return None


class UserLookupField(RelatedSelectField):
    """A custom field holding a user, looked up as typed through the view's owner lookup
    (active users in the caller's data scope; any existing user id parses, the use case judges)."""

    def url(self) -> str:
        if self.source is None:
            return ""
        from flask import url_for

        view, kind = self.source
        return url_for(f"{view}.related", kind=kind, column="owner")


def form_text(field: FieldDef, value: Any) -> Any:
    """A stored value as the form shows it: text for inputs, "yes"/"no" for a yes/no select,
    codes for choices, a CRM-zone ``YYYY-MM-DDTHH:MM`` for an instant."""
    if cf_values.empty(value):
        return [] if field.is_list else None
    if field.kind == custom_fields.BOOLEAN:
        return "yes" if value else "no"
    if field.kind == custom_fields.DATETIME:
        moment = datetime.strptime(str(value), cf_values.INSTANT_FORMAT).replace(tzinfo=clock.UTC)
        return clock.to_local(moment).strftime(LOCAL_MINUTE)
    if field.is_list:
        return [str(code) for code in (value if isinstance(value, list) else [value])]
    return str(value)


def _choices(field: FieldDef, stored: Any, lang: str) -> list[tuple[str, str]]:
    kept = set(stored if isinstance(stored, list) else [stored])
    return [(c.code, c.label(lang)) for c in field.choices if c.active or c.code in kept]


def unbound_field(field: FieldDef, stored: Any, lang: str, source: tuple[str, str], *,
                  may_reveal: bool = False) -> UnboundField:
    """The WTForms field of ``field`` (label in ``lang``, help as description, required
    marker), prefilled with ``stored`` (a masked field shows ``masked_text`` unless
    ``may_reveal``; ``source``: ``(view name, "add"|"edit")`` for the user lookup)."""
    options: dict[str, Any] = {"description": field.help(lang),
                               "validators": [RequiredMarker()] if field.required and field.active else []}
    label, kind = field.label(lang), field.kind
    if not field.active:
        return StringField(label, default=cf_values.as_text(field, stored, lang),
                           render_kw={"readonly": True, "disabled": True}, widget=BS3TextFieldWidget(), **options)
    if field.masked and not may_reveal and not cf_values.empty(stored):
        return StringField(label, default=cf_values.masked_text(field, stored), widget=BS3TextFieldWidget(), **options)
    default = form_text(field, stored)
    if kind == custom_fields.LONG_TEXT:
        return TextAreaField(label, default=default, widget=BS3TextAreaFieldWidget(), **options)
    if kind in (custom_fields.INTEGER, custom_fields.DECIMAL):
        return StringField(label, default=default, widget=BS3TextFieldWidget(),
                           render_kw={"inputmode": "decimal"}, **options)
    if kind in (custom_fields.DATE, custom_fields.DATETIME):
        kind_attr = "date" if kind == custom_fields.DATE else "datetime-local"
        return StringField(label, default=default, widget=BS3TextFieldWidget(), render_kw={"type": kind_attr},
                           **options)
    if kind == custom_fields.BOOLEAN:
        return SelectField(label, default=default, choices=[("", display.BLANK_CHOICE), ("yes", YES), ("no", NO)],
                           validate_choice=False, render_kw={"class": "form-control"}, **options)
    if kind == custom_fields.CHOICE:
        return SelectField(label, default=default, choices=[("", display.BLANK_CHOICE), *_choices(field, stored, lang)],
                           validate_choice=False, widget=Select2Widget(), **options)
    if field.is_list:
        return SelectMultipleField(label, default=default, choices=_choices(field, stored, lang),
                                   validate_choice=False, widget=Select2ManyWidget(), **options)
    if kind == custom_fields.USER:
        user = db.session.get(CrmUser, stored) if isinstance(stored, int) else None
        return UserLookupField(label, model=CrmUser, narrow=active_users, allow_blank=True, accept_any=True,
                               source=source, default=user, **options)
    return StringField(label, default=default, widget=BS3TextFieldWidget(),
                       render_kw={"maxlength": field.limit}, **options)


def form_fields(record_type: str | None, item: Any = None) -> list[FieldDef]:
    """The custom fields a form of ``record_type`` carries: active ones, and on edit
    (``item``) inactive ones that hold a value on the record (read-only)."""
    if record_type is None:
        return []
    stored = (getattr(item, "custom", None) or {}) if item is not None else {}
    return [f for f in custom_fields.fields_of(record_type)
            if f.active or (item is not None and not cf_values.empty(stored.get(f.key)))]


def sections(fields: list[FieldDef], lang: str) -> list[tuple[str, list[str]]]:
    """``[(heading, [cf_<key> …])]`` in form order: one per section, first seen first."""
    grouped: dict[str, list[str]] = {}
    for field in fields:
        grouped.setdefault(field.section(lang) or str(MORE_INFORMATION), []).append(field.name)
    return list(grouped.items())


def may_reveal_custom(view: Any) -> bool:
    """Whether a form may show masked custom values in full: never — a full value is
    revealed only through the explicit, recorded reveal (as phones are)."""
    return False


class CustomFieldsFormMixin:
    """Add/edit forms with the record type's custom fields (see the module doc). Goes
    before ``UseCaseFormMixin`` in a view's bases."""

    def custom_record_type(self) -> str | None:
        """The record type custom fields are defined on for this view's model (or None)."""
        return custom_fields.record_type_of(self.datamodel.obj)

    def form_class(self, form_cls: Any, item: Any = None) -> Any:
        """``form_cls`` plus one field per custom field (``form_fields``), made per request."""
        form_cls = super().form_class(form_cls, item)
        fields = form_fields(self.custom_record_type(), item)
        if not fields:
            return form_cls
        lang, stored = page_lang(), (getattr(item, "custom", None) or {}) if item is not None else {}
        if item is None:  # a new record's form starts from the fields' defaults, as its save does
            stored = {f.key: f.default for f in fields if f.default is not None}
        source = (type(self).__name__, "add" if item is None else "edit")
        attrs = {f.name: unbound_field(f, stored.get(f.key), lang, source, may_reveal=may_reveal_custom(self))
                 for f in fields}
        attrs["custom_field_defs"] = tuple(fields)
        return type(form_cls.__name__, (form_cls,), attrs)

    def form_values(self, form: Any) -> dict[str, Any]:
        """The built-in values, plus each active custom field on the form as submitted
        (a user field as its id; a list as its codes)."""
        values = super().form_values(form)
        for field in getattr(form, "custom_field_defs", ()):
            if not field.active or field.name not in form:
                continue
            data = form[field.name].data
            if isinstance(data, CrmUser):
                data = data.id
            elif field.kind == custom_fields.USER and data is None and form[field.name]._posted:
                continue  # refused by the field itself
            values[field.name] = data
        return values

    def _custom_widget(self, widgets: dict[str, Any], key: str, form: Any) -> dict[str, Any]:
        fields = list(getattr(form, "custom_field_defs", ()))
        widget = widgets.get(key)
        if widget is None or not fields:
            return widgets
        widget.template_args["custom_sections"] = sections(fields, page_lang())
        widget.template_args["inner_fieldsets"] = widget.template_args.get("fieldsets")
        widget.template = "crm/custom_form.html"
        return widgets

    def _get_add_widget(self, form: Any, exclude_cols: Any = None, widgets: Any = None) -> Any:
        widgets = super()._get_add_widget(form, exclude_cols=exclude_cols, widgets=widgets)
        return self._custom_widget(widgets, "add", form)

    def _get_edit_widget(self, form: Any, exclude_cols: Any = None, widgets: Any = None) -> Any:
        widgets = super()._get_edit_widget(form, exclude_cols=exclude_cols, widgets=widgets)
        return self._custom_widget(widgets, "edit", form)

