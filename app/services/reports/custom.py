"""Custom fields in the report builder (issue 18: "reports and dashboards (dimension or
measure)"): each source whose record type has custom fields gets, as they are defined now,

- a dimension per choice, yes/no, user, integer and text field, and month / quarter / year
  dimensions per date and date-time field;
- sum and average measures per integer and decimal field;
- a filter per choice and tags field (a tag filter keeps records holding the tag).

Multiple choice and tags are not dimensions (a record would count once per tag). Masked
fields take no part: a group of a masked value would show the value (or, masked, its count
and order).
"""

from __future__ import annotations

from typing import Any

from flask_babel import LazyString
from sqlalchemy import Date, DateTime, Integer, Numeric, cast
from sqlalchemy.sql.elements import ColumnElement

from app.services import custom_fields
from app.services.custom_fields import query
from app.services.reports.base import Dimension, Filter, Measure, _Dim, _Field, _Filter, _SourceSql

_lang = custom_fields.reader_lang


def _fields(sql: _SourceSql) -> tuple[custom_fields.FieldDef, ...]:
    record_type = custom_fields.record_type_of(sql.model)
    return custom_fields.fields_of(record_type) if record_type else ()


def _label(field: custom_fields.FieldDef) -> LazyString:
    return LazyString(lambda: field.label(_lang()))


def _choice_labels(field: custom_fields.FieldDef) -> Any:
    def labels(keys: list[Any]) -> dict[Any, str]:
        return {k: (field.choice(k).label(_lang()) if field.choice(k) else str(k)) for k in keys if k is not None}
    return labels


def _boolean_labels(keys: list[Any]) -> dict[Any, str]:
    from flask_babel import gettext

    return {k: gettext("Yes") if k in (1, True, "true", "1") else gettext("No") for k in keys if k is not None}


def _dimension(sql: _SourceSql, field: custom_fields.FieldDef) -> list[_Dim]:
    from app.services.reports.declarations import date_dims, plain_labels, user_labels

    model, kind = sql.model, field.kind
    text = lambda q: query.text_expression(model, field)  # noqa: E731
    if kind in (custom_fields.CHOICE,):
        return [_Dim(field.name, _label(field), text, _choice_labels(field))]
    if kind == custom_fields.BOOLEAN:
        return [_Dim(field.name, _label(field), text, _boolean_labels)]
    if kind == custom_fields.USER:
        return [_Dim(field.name, _label(field), lambda q: cast(query.text_expression(model, field), Integer),
                     user_labels, order="label")]
    if kind in (custom_fields.INTEGER, custom_fields.TEXT):
        return [_Dim(field.name, _label(field), text, plain_labels, order="label")]
    if kind in (custom_fields.DATE, custom_fields.DATETIME):
        instant = kind == custom_fields.DATETIME

        def column() -> ColumnElement:
            value = query.text_expression(model, field)
            if query._dialect() == "postgresql":
                return cast(value, DateTime(timezone=True) if instant else Date)
            # SQLite reads "2026-12-01T08:30:00Z" as that UTC instant: drop the Z for strftime's modifiers
            return value
        return date_dims(field.name, _label(field), column, instant)
    return []


def sql_parts(sql: _SourceSql) -> tuple[dict[str, _Dim], dict[str, _Field], dict[str, _Filter]]:
    """The custom fields' dimensions, number fields and filters of ``sql``'s record type."""
    dims: dict[str, _Dim] = {}
    numbers: dict[str, _Field] = {}
    filters: dict[str, _Filter] = {}
    for field in _fields(sql):
        if field.masked:
            continue  # a masked value is never grouped, summed or filtered on: each group would show it
        for dim in _dimension(sql, field):
            dims[dim.key] = dim
        if field.kind in (custom_fields.INTEGER, custom_fields.DECIMAL):
            numbers[field.name] = _Field(field.name, _label(field),
                                         lambda f=field: cast(query.text_expression(sql.model, f), Numeric))
        if field.kind in custom_fields.CHOOSING:
            choices = {c.code: LazyString(lambda c=c: c.label(_lang())) for c in field.choices}
            condition = None
            if field.is_list:
                condition = lambda value, f=field: query.has(sql.model, f, value)  # noqa: E731
            filters[field.name] = _Filter(field.name, _label(field),
                                          lambda f=field: query.text_expression(sql.model, f), "choice", choices,
                                          condition=condition)
    return dims, numbers, filters


def dimensions(sql: _SourceSql) -> dict[str, Dimension]:
    """``Source.dimensions``' custom part."""
    return {k: Dimension(k, d.label, d.sensitive) for k, d in sql_parts(sql)[0].items()}


def measures(sql: _SourceSql) -> dict[str, Measure]:
    """``Source.measures``' custom part: sum and average per number field."""
    from flask_babel import lazy_gettext as _l

    result = {}
    for key, spec in sql_parts(sql)[1].items():
        result[f"sum:{key}"] = Measure(f"sum:{key}", _l("Sum of %(field)s", field=spec.label))
        result[f"avg:{key}"] = Measure(f"avg:{key}", _l("Average %(field)s", field=spec.label))
    return result


def filters(sql: _SourceSql) -> dict[str, Filter]:
    """``Source.filters``' custom part."""
    from app.services.reports.declarations import filter_options

    return {k: Filter(k, f.label, filter_options(f)) for k, f in sql_parts(sql)[2].items()}
