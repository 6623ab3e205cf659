"""The report builder's limits, its public shapes (``Source``, ``Dimension``, ``Measure``,
``Filter``, ``ReportSpec``, ``ReportResult``, ``SOURCES``) and how each source is queried
(``_SourceSql`` and its parts, ``_SQL``); see the package CONTRACT."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

#: At most this many dimensions in one report.
MAX_DIMENSIONS = 2
#: At most this many values of one dimension are shown; the smallest rest become "Other".
MAX_GROUPS = 500
#: A report whose GROUP BY yields more rows than this is refused (narrow the filters).
MAX_ROWS = 100_000
CHARTS = ("bar", "line", "pie", "table")
GRAINS = ("month", "quarter", "year")
OTHER = "__other__"
SCHEDULES = ("weekly",)
JOB_ID = "report_schedule"


@dataclass(frozen=True)
class Dimension:
    key: str
    label: Any
    sensitive: bool = False


@dataclass(frozen=True)
class Measure:
    key: str
    label: Any


@dataclass(frozen=True)
class Filter:
    """A per-source filter a user picks from (request key ``key``): ``choices`` is
    ``[(value, label)]`` (values as text, as a form sends them; dictionary entries in the
    reader's language, inactive ones included: old records still carry them), read from
    the database at each access (never at import), or ``None`` for a free id."""

    key: str
    label: Any
    options: Callable[[], list[tuple[str, str]]] | None = field(default=None, repr=False, compare=False)

    @property
    def choices(self) -> list[tuple[str, str]] | None:
        return self.options() if self.options is not None else None


@dataclass(frozen=True)
class Source:
    """A source as a user picks from it. ``dimensions``, ``measures`` and ``filters`` are the
    declared ones plus the record type's custom fields (issue 18) as defined now."""

    key: str
    label: Any
    model: Any
    static_dimensions: dict[str, Dimension]
    static_measures: dict[str, Measure]
    static_filters: dict[str, Filter] = field(default_factory=dict)

    @property
    def dimensions(self) -> dict[str, Dimension]:
        from app.services.reports import custom

        return {**self.static_dimensions, **custom.dimensions(_SQL[self.key])}

    @property
    def measures(self) -> dict[str, Measure]:
        from app.services.reports import custom

        return {**self.static_measures, **custom.measures(_SQL[self.key])}

    @property
    def filters(self) -> dict[str, Filter]:
        from app.services.reports import custom

        return {**self.static_filters, **custom.filters(_SQL[self.key])}


@dataclass(frozen=True)
class ReportSpec:
    source: str
    dimensions: tuple[str, ...]
    measure: str = "count"
    filters: dict[str, Any] = field(default_factory=dict)
    chart: str = "bar"


@dataclass
class ReportResult:
    spec: ReportSpec
    title: str
    rows: list[tuple[Any, Any, Any]]
    pivot: Any  # pandas.DataFrame
    figure: Any  # metrics.Figure
    contact_data: bool = False


SOURCES: dict[str, Source] = {}


# --- how each source is queried ---------------------------------------------------------


class _Query:
    """The joins one report needs, each added once (aliased, outer)."""

    def __init__(self) -> None:
        self.joins: dict[str, tuple[Any, ColumnElement]] = {}

    def alias(self, name: str, model: type, on: Callable[[Any], ColumnElement]) -> Any:
        if name not in self.joins:
            target = aliased(model, name=name)
            self.joins[name] = (target, on(target))
        return self.joins[name][0]


@dataclass(frozen=True)
class _Dim:
    """A dimension's SQL (``expr(query)`` -> the grouped key) and its labels
    (``labels(keys)`` -> {key: text}); ``order``: "label" (alphabetical), "key" or "value"."""

    key: str
    label: Any
    expr: Callable[[_Query], ColumnElement]
    labels: Callable[[list[Any]], dict[Any, str]]
    sensitive: bool = False
    order: str = "key"


@dataclass(frozen=True)
class _Field:
    """A numeric field a measure sums or averages: ``money`` sums in fen."""

    key: str
    label: Any
    column: Callable[[], Any]
    money: bool = False


@dataclass(frozen=True)
class _Filter:
    """A per-source filter: ``kind`` "id" (one id of ``model``, a dictionary), "tree" (an
    industry and its divisions), "choice" (one key of ``choices``: key -> label)."""

    key: str
    label: Any
    column: Callable[[], Any]
    kind: str = "id"
    choices: Mapping[str, Any] = field(default_factory=dict)
    model: Any = None
    #: ``condition(value)`` -> the WHERE clause, for filters that are not ``column == value``
    #: (a tag held by a list field).
    condition: Callable[[Any], ColumnElement] | None = None


@dataclass(frozen=True)
class _SourceSql:
    key: str
    label: Any
    model: Any
    permission: str
    scope_model: Any
    date: Callable[[], Any]          # the period filter's column
    instant: bool                    # date is a UTC instant (True) or a calendar day
    owner: Callable[[], Any]         # the owner filter's column (a user id)
    static_dims: dict[str, _Dim]
    static_fields: dict[str, _Field]
    static_filters: dict[str, _Filter]
    joins: Callable[[Any], Any] = lambda stmt: stmt

    @property
    def dims(self) -> dict[str, _Dim]:
        """Declared dimensions plus the custom fields' (``reports.custom``)."""
        from app.services.reports import custom

        return {**self.static_dims, **custom.sql_parts(self)[0]}

    @property
    def fields(self) -> dict[str, _Field]:
        from app.services.reports import custom

        return {**self.static_fields, **custom.sql_parts(self)[1]}

    @property
    def filters(self) -> dict[str, _Filter]:
        from app.services.reports import custom

        return {**self.static_filters, **custom.sql_parts(self)[2]}


_SQL: dict[str, _SourceSql] = {}
