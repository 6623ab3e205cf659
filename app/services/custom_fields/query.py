"""Custom fields in SQL: the expression a filter or an order reads, the same one the
expression index of a searchable field is built on (``indexes``), on both databases.

SQLite: ``json_extract(custom, '$.key')`` (JSON1); PostgreSQL: ``custom ->> 'key'`` on
JSONB, cast for numbers. Lists (multiple choice, tags) are matched by containment:
``json_each`` on SQLite, ``@>`` on PostgreSQL (GIN ``jsonb_path_ops``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Numeric,
    String,
    and_,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.services.custom_fields.definitions import BOOLEAN, DECIMAL, INTEGER, LISTS, USER, FieldDef

#: Filter operations: equals, contains (text), range (from/to, inclusive), in (any of).
EQUALS, CONTAINS, RANGE, IN = "eq", "contains", "range", "in"


def _dialect() -> str:
    return db.engine.dialect.name


def text_expression(model: type, field: FieldDef) -> ColumnElement:
    """The field's value as text (choices' codes, ISO days and instants sort as text)."""
    # The key is written into the SQL (checked [a-z][a-z0-9_]* by the definition's rule), not
    # bound: an expression index is used only by a query with the very same expression.
    if _dialect() == "postgresql":
        return model.custom.op("->>")(literal_column(f"'{field.key}'", String))
    return func.json_extract(model.custom, literal_column(f"'$.{field.key}'", String))


def expression(model: type, field: FieldDef) -> ColumnElement:
    """The field's value for ordering and comparing: numeric for integer, decimal, user;
    text for the rest. Index expressions use ``index_sql`` (the same SQL)."""
    value = text_expression(model, field)
    if field.kind in (INTEGER, DECIMAL, USER):
        return cast(value, Numeric)
    return value


def index_sql(table: str, field: FieldDef, dialect: str) -> str:
    """The indexed expression's SQL text, matching ``expression`` exactly (key checked by
    the definition's rule: ``[a-z][a-z0-9_]*``)."""
    key = field.key
    if dialect == "postgresql":
        if field.kind in LISTS:
            return "custom jsonb_path_ops"
        base = f"(custom ->> '{key}')"
        return f"(CAST({base} AS NUMERIC))" if field.kind in (INTEGER, DECIMAL, USER) else base
    base = f"json_extract(custom, '$.{key}')"
    return f"CAST({base} AS NUMERIC)" if field.kind in (INTEGER, DECIMAL, USER) else base


def has(model: type, field: FieldDef, code: str) -> ColumnElement:
    """Records whose list field (multiple choice, tags) holds ``code``."""
    if _dialect() == "postgresql":
        return model.custom.op("@>")(func.jsonb_build_object(field.key, func.jsonb_build_array(code)))
    each = func.json_each(model.custom, f"$.{field.key}").table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == code))


def condition(model: type, field: FieldDef, op: str, value: Any, upper: Any = None) -> ColumnElement:
    """A filter on ``field``: ``EQUALS`` a stored value, ``CONTAINS`` text (case-insensitive),
    ``RANGE`` from ``value`` to ``upper`` (either may be None), ``IN`` any of a list. Values
    are stored values (``values.clean`` them first). Lists (tags) match when they hold the
    value (``EQUALS``) or any of the values (``IN``)."""
    if field.kind in LISTS:
        wanted = value if isinstance(value, list) else [value]
        if op in (EQUALS, IN):
            return or_(*[has(model, field, code) for code in wanted]) if wanted else false()
        if op == CONTAINS:  # the field's own JSON text, never the rest of the record's values
            return func.lower(cast(text_expression(model, field), String)).contains(str(value).lower(),
                                                                                      autoescape=True)
        return true()
    column = expression(model, field)
    if field.kind == BOOLEAN:
        stored = text_expression(model, field)
        if _dialect() == "postgresql":
            return stored == ("true" if value else "false")
        return stored == (1 if value else 0)
    if op == EQUALS:
        return column == _compare(field, value)
    if op == IN:
        values = value if isinstance(value, list) else [value]
        return column.in_([_compare(field, item) for item in values])
    if op == CONTAINS:
        return func.lower(text_expression(model, field)).contains(str(value).lower(), autoescape=True)
    if op == RANGE:
        parts = []
        if value is not None:
            parts.append(column >= _compare(field, value))
        if upper is not None:
            parts.append(column <= _compare(field, upper))
        return and_(*parts) if parts else true()
    raise ValueError(op)


def _compare(field: FieldDef, value: Any) -> Any:
    from decimal import Decimal

    if field.kind in (INTEGER, DECIMAL, USER) and value is not None:
        return Decimal(str(value))
    return value


def order(model: type, field: FieldDef, descending: bool = False) -> tuple[ColumnElement, ...]:
    """ORDER BY terms for the field: its value, then the id, both in the same direction, so
    the field's expression index (in id order within a value) gives the page without a sort.
    Empty values come as each database orders NULL (SQLite first ascending, PostgreSQL last)."""
    column = expression(model, field)
    if descending:
        return column.desc(), model.id.desc()
    return column.asc(), model.id.asc()
