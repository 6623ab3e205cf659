"""Custom fields in the REST API (issue 18): ``cf_<key>`` properties in every answer, in
the request bodies, in list filters and ``cf_sort`` (the screens' reader,
``custom_fields.filters``) and in the OpenAPI document.

Rules (001 基础配置 自定义字段类型, 扩展信息; 003 第三步 1 字段设置): a field travels as
``cf_<key>`` next to the built-in columns; answers carry the stored value (a list for
multiple choice and tags, decimals as text such as ``"12.50"``, instants as UTC text);
a masked field is always answered masked (``values.masked_text``), like the customer's
phone: its full value only comes from the recorded reveal
(``POST /api/v1/<type>/<id>/custom/<key>/reveal``).
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_appbuilder.models.filters import BaseFilter
from marshmallow import post_dump

from app.services import custom_fields
from app.services.custom_fields import filters as cf_filters
from app.services.custom_fields.definitions import (
    BOOLEAN,
    CHOOSING,
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    LISTS,
    USER,
    FieldDef,
)
from views.api_pages import ArgumentRefused
from views.base import MaskingSchemaConverter
from views.custom_form import page_lang


def answer_values(item: Any, record_type: str) -> dict[str, Any]:
    """``{cf_<key>: value}`` of ``item`` for an API answer: every active field (None when
    unset) and a deactivated one that still holds a value; masked fields masked."""
    stored = getattr(item, "custom", None) or {}
    shown: dict[str, Any] = {}
    for field in custom_fields.fields_of(record_type):
        value = stored.get(field.key)
        if not field.active and custom_fields.empty(value):
            continue
        if field.masked and not custom_fields.empty(value):
            value = custom_fields.masked_text(field, value)
        shown[field.name] = value
    return shown


def _schema_with_custom(schema: Any, record_type: str) -> Any:
    """``schema`` (an instance) whose dumps also carry the custom fields of ``record_type``."""
    base = type(schema)
    if getattr(base, "_custom_record_type", None) == record_type:
        return schema

    def add_custom(self: Any, data: dict[str, Any], original: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(data, dict) and original is not None:
            data.update(answer_values(original, record_type))
        return data

    # the same class name: FAB's OpenAPI resolver names "MetaSchema" classes by their Meta
    cls = type(base.__name__, (base,), {
        "_custom_record_type": record_type,
        "reads_columns": ("custom",),  # loaded with a list's page (``api_pages``), not once per row
        "_add_custom": post_dump(pass_original=True)(add_custom),
    })
    schema.__class__ = cls  # same fields and options; the hook is resolved on the class
    return schema


class CustomFieldsConverter(MaskingSchemaConverter):
    """The API's schema converter: schemas of a record type with custom fields dump them
    as ``cf_<key>`` (also the per-request schemas of ``?q=(columns:!(…))``); nested
    schemas of related records do not."""

    def convert(self, columns: list[str], model: Any = None, nested: bool = True,
                parent_schema_name: str | None = None) -> Any:
        schema = super().convert(columns, model=model, nested=nested, parent_schema_name=parent_schema_name)
        own = self.datamodel.obj
        if model is not None and model is not own:
            return schema
        record_type = custom_fields.record_type_of(own)
        return schema if record_type is None else _schema_with_custom(schema, record_type)


def split_custom(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request body as (built-in fields, ``cf_…`` fields); the latter go to the use case
    untouched (``records.assign`` → ``custom_fields.apply`` checks them, unknown ones too)."""
    custom = {name: value for name, value in payload.items() if custom_fields.is_custom(name)}
    return {name: value for name, value in payload.items() if name not in custom}, custom


# --- list filters -------------------------------------------------------------------


class FilterRefused(ArgumentRefused):
    """A refused ``cf_`` argument of a list request (400, the message alone)."""


class CustomFieldCondition(BaseFilter):
    """A FAB filter holding the custom-field conditions and order of one list request
    (``value``: a ``filters.ListFilters``); the column name is unused. The order goes on the
    page's query only: the count (FAB's, or ``ListInterface``'s key query) stays unordered."""

    name = "Custom field"
    arg_name = "custom_field"

    def apply(self, query: Any, value: Any) -> Any:
        model = self.datamodel.obj
        if value.conditions:
            query = query.filter(*value.conditions)
        if value.order is not None and _selects_records(query, model):
            query = query.order_by(*value.order)
        return query


def _selects_records(query: Any, model: type) -> bool:
    """Whether ``query`` reads whole records of ``model`` (the page), not keys or a count."""
    return any(entry.get("type") is model for entry in query.column_descriptions)


def list_conditions(model: type, args: Any) -> cf_filters.ListFilters:
    """The custom-field conditions and order of a list request's arguments
    (``custom_fields.filters.read``: equals / any of, ``cf_<key>__contains``,
    ``cf_<key>__from`` / ``__to``, ``cf_sort``). ``FilterRefused`` (400, the message naming
    the argument: "cf_years: Years of cooperation: Give a whole number.") for an unknown or
    masked field (a filter on a masked value would reveal it), an operation its kind has
    not, or a value the field cannot hold."""
    found = cf_filters.read(args, model, custom_fields.record_type_of(model), page_lang())
    if found.problems:
        raise FilterRefused(" ".join(f"{problem.argument}: {problem.text()}" for problem in found.problems))
    return found


def add_list_conditions(api: Any, filters: Any) -> Any:
    """``filters`` (FAB's joined filters of a list request) with the request's custom field
    conditions and ``cf_sort`` order added (ANDed to the data scope, a base filter)."""
    found = list_conditions(api.datamodel.obj, request.args)
    if found.conditions or found.order is not None:
        filters.add_filter("id", CustomFieldCondition, found)
    return filters


# --- OpenAPI --------------------------------------------------------------------------


def property_of(field: FieldDef) -> dict[str, Any]:
    """The OpenAPI (JSON schema) property of one custom field."""
    kind = field.kind
    codes = [choice.code for choice in field.offered]
    if kind in LISTS:
        items: dict[str, Any] = {"type": "string"}
        if codes:
            items["enum"] = codes
        spec: dict[str, Any] = {"type": "array", "items": items}
    elif kind in CHOOSING:
        spec = {"type": "string", **({"enum": codes} if codes else {})}
    elif kind in (INTEGER, USER):
        spec = {"type": "integer"}
    elif kind == DECIMAL:
        spec = {"type": "string", "format": "decimal", "description": f"up to {field.places} decimal places"}
    elif kind == BOOLEAN:
        spec = {"type": "boolean"}
    elif kind == DATE:
        spec = {"type": "string", "format": "date"}
    elif kind == DATETIME:
        spec = {"type": "string", "format": "date-time"}
    else:
        spec = {"type": "string", "maxLength": field.limit}
    label = f"{field.label_en} / {field.label_zh}" if field.label_zh != field.label_en else field.label_en
    spec["description"] = "; ".join(filter(None, [label, spec.get("description"), field.help_en,
                                                  "masked in answers" if field.masked else ""]))
    spec["nullable"] = True
    return spec


def info_fields(api: Any) -> list[dict[str, Any]]:
    """The active custom fields of ``api``'s record type as FAB's ``_info`` describes a field:
    name, label and help in the caller's language, kind, required; choices as ``values``
    (``{"id": code, "value": label}``, offered ones only)."""
    record_type = custom_fields.record_type_of(api.datamodel.obj)
    if record_type is None:
        return []
    found = []
    for field in custom_fields.fields_of(record_type, active=True):
        info: dict[str, Any] = {"name": field.name, "label": field.label(), "description": field.help(),
                                "type": field.kind, "required": field.required, "unique": False}
        if field.kind in CHOOSING:
            info["count"] = len(field.offered)
            info["values"] = [{"id": choice.code, "value": choice.label()} for choice in field.offered]
        found.append(info)
    return found


def add_openapi_properties(api: Any, api_spec: Any) -> None:
    """Add the active custom fields of ``api``'s record type to its four schemas in
    ``api_spec`` (built per request by FAB: always the current definitions); required
    ones are listed as required on POST."""
    record_type = custom_fields.record_type_of(api.datamodel.obj)
    if record_type is None:
        return
    active = custom_fields.fields_of(record_type, active=True)
    schemas = api_spec.components.schemas
    for name in (api.list_model_schema_name, api.show_model_schema_name, api.add_model_schema_name,
                 api.edit_model_schema_name):
        component = schemas.get(name)
        if component is None:
            continue
        properties = component.setdefault("properties", {})
        for field in active:
            properties[field.name] = property_of(field)
        if name == api.add_model_schema_name:
            required = [f.name for f in active if f.required and f.default is None]
            if required:
                component["required"] = sorted({*component.get("required", []), *required})
