"""The one reader of a list's custom-field filter and sort arguments (issue 18: "search
filters (equals / contains / range / in), sorting"), for the screens' lists
(``views.custom_list``) and the REST API's lists (``views.custom_api``) alike.

Arguments (each value read by the field's own rule, ``values.clean``):

- ``cf_<key>=v``: equals; several values (repeated, or several choices in one) of a
  choice, multiple choice or tags field: any of them; a user field by user name or id;
- ``cf_<key>__contains=t``: a part of a text or long text (case-insensitive);
- ``cf_<key>__from=a`` / ``cf_<key>__to=b``: a range (inclusive) of a number, day or instant;
- ``cf_sort=cf_<key>`` (``-cf_<key>``: descending): the value, then the id in the same
  direction (stable pages); empty values where the database puts NULL (SQLite first going
  up, PostgreSQL last), the same on every list.

Masked fields are never filtered or sorted by (a filter or an order on a hidden value is an
oracle for it); multiple choice and tags are not sorted by. A retired choice, or a
deactivated field, still filters (old records hold them). The conditions are meant to be
ANDed to the list's scoped query, never to replace it. Pure: no Flask request here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.models.org import CrmUser
from app.services.custom_fields import query as cf_query
from app.services.custom_fields import values as cf_values
from app.services.custom_fields.definitions import (
    CHOOSING,
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    LONG_TEXT,
    TEXT,
    USER,
    FieldDef,
    field_named,
    is_custom,
)

SORT_ARG = "cf_sort"
#: Operations after ``__``: "" is equals / any of.
EQUALS, CONTAINS, FROM, TO = "", "contains", "from", "to"
#: Kinds a range (from / to) applies to; kinds ``contains`` applies to.
RANGED = (INTEGER, DECIMAL, DATE, DATETIME)
TEXTUAL = (TEXT, LONG_TEXT)
#: The longest value one argument may carry (characters).
VALUE_LIMIT = 200


@dataclass(frozen=True)
class Problem:
    """One refused argument: ``argument`` as given (``cf_years__from``), ``message`` in the
    reader's language, ``label`` the field's label when its value was refused ("" when the
    argument itself was: unknown, masked, an operation the kind has not)."""

    argument: str
    message: str
    label: str = ""

    def text(self) -> str:
        """The message naming the field: "<label>: <message>" (or the message alone)."""
        return f"{self.label}: {self.message}" if self.label else self.message


@dataclass
class ListFilters:
    """What the ``cf_`` arguments of one list request ask for: SQL conditions (to AND to the
    scoped query), ORDER BY terms (None: the list's own order) and the refused arguments."""

    conditions: list[ColumnElement] = field(default_factory=list)
    order: tuple[ColumnElement, ...] | None = None
    problems: list[Problem] = field(default_factory=list)
    #: Fields filtered to one value (``cf_<key>=v``): sorting by one of them is sorting by id.
    pinned: set[str] = field(default_factory=set)
    sort_field: str = ""
    descending: bool = False


def _pairs(args: Any) -> Iterable[tuple[str, list[str]]]:
    """``(name, [values])`` of a MultiDict (``lists()``) or a plain mapping."""
    if hasattr(args, "lists"):
        return args.lists()
    return ((name, value if isinstance(value, list | tuple) else [value]) for name, value in args.items())


def _cleaned(item: FieldDef, raw: str) -> Any:
    """``raw`` by the field's rule; every choice counts (retired ones find old records)."""
    everything = [c.code for c in item.choices]
    return cf_values.clean(item, raw, everything if item.is_list else raw)


def _user_condition(model: type, item: FieldDef, raws: list[str]) -> ColumnElement:
    """Records naming any of the users given by user name or id (active or not: old records).
    Looked up inside the SQL, so a name nobody has finds nothing, the same as an unused one."""
    texts = [raw.strip() for raw in raws]
    ids = [int(text) for text in texts if text.isdigit() and len(text) < 10]
    wanted = select(CrmUser.id).where(or_(CrmUser.username.in_(texts), CrmUser.id.in_(ids)))
    return cf_query.expression(model, item).in_(wanted)


def _equals(model: type, item: FieldDef, raws: list[str]) -> ColumnElement | None:
    if item.kind == USER:
        return _user_condition(model, item, raws)
    cleaned: list[Any] = []
    for raw in raws:
        value = _cleaned(item, raw)
        cleaned.extend(value if isinstance(value, list) else [value])
    cleaned = [v for v in cleaned if v is not None]
    if not cleaned:
        return None
    if item.kind in CHOOSING and len(cleaned) > 1:
        return cf_query.condition(model, item, cf_query.IN, cleaned)
    return cf_query.condition(model, item, cf_query.EQUALS, cleaned[0])


def condition(model: type, item: FieldDef, op: str, raws: list[str]) -> ColumnElement | None:
    """The SQL condition of one argument (``op``: ``EQUALS``, ``CONTAINS``, ``FROM``, ``TO``;
    ``raws``: its non-blank values). ``LookupError`` for an operation ``item``'s kind has
    not; ``ValueError(message)`` for a value its rule refuses; None when nothing is asked."""
    if op == EQUALS:
        return _equals(model, item, raws)
    if op == CONTAINS and item.kind in TEXTUAL:
        return cf_query.condition(model, item, cf_query.CONTAINS, _cleaned(item, raws[0]))
    if op in (FROM, TO) and item.kind in RANGED:
        value = _cleaned(item, raws[0])
        lower, upper = (value, None) if op == FROM else (None, value)
        return cf_query.condition(model, item, cf_query.RANGE, lower, upper)
    raise LookupError(op)


def _filterable(record_type: str, name: str) -> FieldDef | None:
    item = field_named(record_type, name) if is_custom(name) else None
    return None if item is None or item.masked else item


def _sort(model: type, record_type: str, raw: str, found: ListFilters) -> None:
    descending = raw.startswith("-")
    item = _filterable(record_type, raw.lstrip("-"))
    if item is None or item.is_list:
        found.problems.append(Problem(SORT_ARG, str(_l("This list cannot be sorted by %(column)s.",
                                                       column=raw[:60]))))
        return
    found.order = cf_query.order(model, item, descending)
    found.sort_field, found.descending = item.key, descending


def _refused(argument: str) -> Problem:
    return Problem(argument, str(_l("This list cannot be filtered by %(column)s.", column=argument[:60])))


def _read_one(model: type, record_type: str, argument: str, raws: list[str], lang: str | None,
              found: ListFilters) -> None:
    name, _, op = argument.partition("__")
    item = _filterable(record_type, name)
    if item is None:
        found.problems.append(_refused(argument))
        return
    if any(len(raw) > VALUE_LIMIT for raw in raws):
        found.problems.append(Problem(argument, str(_l("At most %(n)d characters.", n=VALUE_LIMIT)),
                                      item.label(lang)))
        return
    try:
        wanted = condition(model, item, op, raws)
    except LookupError:
        found.problems.append(_refused(argument))
        return
    except ValueError as exc:
        found.problems.append(Problem(argument, str(exc), item.label(lang)))
        return
    if wanted is not None:
        found.conditions.append(wanted)
        if op == EQUALS and not item.is_list and len(raws) == 1:
            found.pinned.add(item.key)


def read(args: Any, model: type, record_type: str | None, lang: str | None = None) -> ListFilters:
    """The conditions and order the ``cf_`` arguments of ``args`` (a MultiDict such as
    ``request.args``, or ``{name: value | [values]}``) ask of a list of ``model`` (a record
    type's model, ``record_type`` its name; None: every ``cf_`` argument is refused), and a
    ``Problem`` per refused argument, in the reader's language ``lang`` ("en"/"zh": field
    labels). Other arguments are ignored; blank values are no filter."""
    found = ListFilters()
    for argument, values in _pairs(args):
        raws = [str(raw) for raw in values if raw is not None and str(raw).strip()]
        if not is_custom(argument) or not raws:
            continue
        if record_type is None:
            found.problems.append(_refused(argument))
        elif argument == SORT_ARG:
            _sort(model, record_type, raws[0], found)
        else:
            _read_one(model, record_type, argument, raws, lang, found)
    if found.order is not None and found.sort_field in found.pinned:
        # One value: its rows in id order. SQLite would sort every matching row for an ORDER BY
        # on the expression the WHERE pins (1M customers, one of four values: 320 ms -> 1 ms).
        found.order = (model.id.desc() if found.descending else model.id.asc(),)
    return found
