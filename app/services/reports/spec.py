"""``parse_spec``: a report definition from a form / JSON mapping, validated."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

from app.services.reports.base import (
    _SQL,
    CHARTS,
    MAX_DIMENSIONS,
    ReportSpec,
    _SourceSql,
)


def _whole(raw: Any, name: str) -> int:
    try:
        number = int(str(raw).strip())
    except (TypeError, ValueError):
        raise _violation(name, _("Choose a valid value.")) from None
    if number < 0 or number > 2**31:
        raise _violation(name, _("Choose a valid value."))
    return number


def _violation(name: str, message: str) -> Exception:
    from app.services.errors import RuleViolation

    return RuleViolation({name: message})


def _day(raw: Any, name: str) -> str | None:
    """A period bound: the CRM's one date rule (``validation.day_value``: the accepted
    formats, nothing after the date, a plausible year), so no bound overflows when it
    becomes a UTC instant."""
    from app.services import validation

    if raw in (None, ""):
        return None
    errors: dict[str, str] = {}
    day = validation.day_value(str(raw), name, errors)
    if errors:
        raise _violation(name, errors[name])
    return day.isoformat() if day is not None else None


def _get(data: Any, key: str) -> Any:
    value = data.get(key) if hasattr(data, "get") else None
    return value.strip() if isinstance(value, str) else value


def _dimension_list(data: Any) -> list[str]:
    if hasattr(data, "getlist"):
        raw = data.getlist("dimensions")
        if len(raw) == 1 and "," in raw[0]:
            raw = raw[0].split(",")
    else:
        raw = data.get("dimensions") or []
        raw = raw.split(",") if isinstance(raw, str) else list(raw)
    return [str(v).strip() for v in raw if str(v).strip()]


def parse_spec(data: Any) -> ReportSpec:
    """A report definition from a form/JSON mapping (see the module CONTRACT).

    Refuses (``RuleViolation({field: message})``, in the reader's language): an unknown
    source; no dimension or more than ``MAX_DIMENSIONS``; an unknown or repeated
    dimension; a measure other than ``count``/``sum:<numeric field>``/``avg:<numeric
    field>`` of the source; an unknown chart; dates that are not ``YYYY-MM-DD`` or a start
    after the end (``period_end`` is the last day, inclusive); an owner, department or
    per-source filter that is not a valid id / choice.
    """
    sql = _SQL.get(str(_get(data, "source") or ""))
    if sql is None:
        raise _violation("source", _("Choose what to report on."))
    dims = _dimension_list(data)
    if not dims:
        raise _violation("dimensions", _("Choose at least one dimension."))
    if len(dims) > MAX_DIMENSIONS:
        raise _violation("dimensions", _("A report has at most %(count)d dimensions.", count=MAX_DIMENSIONS))
    for key in dims:
        if key not in sql.dims:
            raise _violation("dimensions", _("Unknown dimension: %(name)s.", name=key[:40]))
    if len(set(dims)) != len(dims):
        raise _violation("dimensions", _("Choose two different dimensions."))
    measure = str(_get(data, "measure") or "count")
    _check_measure(sql, measure)
    chart = str(_get(data, "chart") or "bar")
    if chart not in CHARTS:
        raise _violation("chart", _("Unknown chart type."))
    return ReportSpec(sql.key, tuple(dims), measure, _parse_filters(sql, data), chart)


def _check_measure(sql: _SourceSql, measure: str) -> None:
    if measure == "count":
        return
    kind, _sep, name = measure.partition(":")
    if kind not in ("sum", "avg") or not name:
        raise _violation("measure", _("Unknown measure: choose a count, a sum or an average."))
    if name not in sql.fields:
        raise _violation("measure", _("%(field)s is not a number field of this record type: only counts, sums "
                                      "and averages of number fields can be measured.", field=name[:40]))


def _parse_filters(sql: _SourceSql, data: Any) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    start, end = _day(_get(data, "period_start"), "period_start"), _day(_get(data, "period_end"), "period_end")
    if start and end and start > end:
        raise _violation("period_end", _("The period ends before it starts."))
    for key, value in (("period_start", start), ("period_end", end)):
        if value:
            filters[key] = value
    for key in ("owner", "department"):
        if _get(data, key) not in (None, ""):
            filters[key] = _whole(_get(data, key), key)
    for key, spec in sql.filters.items():
        raw = _get(data, key)
        if raw in (None, ""):
            continue
        if spec.kind == "choice":
            if str(raw) not in spec.choices:
                raise _violation(key, _("Choose a valid value."))
            filters[key] = str(raw)
        else:
            filters[key] = _whole(raw, key)
    return filters
