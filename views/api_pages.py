"""A REST API list's pages cost the same at any size (issue 12: no page's time grows with the
records in scope beyond its own page).

A list's ``count`` is counted as on the screens (``views.list_count``): exact up to
``COUNT_CAP``; above it the answer has ``"count": null, "more_than": 1000`` (GitLab's API drops
its totals above 10,000 records the same way), and ``(exact_count:!t)`` asks for the exact
figure. Pages by number (``page``) reach the first ``COUNT_CAP`` records of a list holding more,
as on the screens; past them a page is a 400 that says how to go on: ``(after:<id>)`` lists the
records with a larger id in id order, ``page_size`` at a time (keyset pagination: an index
range, whatever the depth), and the answer's ``next_after`` is the ``after`` of the next page
(null on the last). A client reads every record with ``(after:0)``, then ``(after:<next_after>)``.
"""

from __future__ import annotations

from typing import Any

import flask_appbuilder.api as fab_api
import jsonschema
from flask import request
from flask_appbuilder.api.schemas import get_list_schema
from flask_appbuilder.const import (
    API_ORDER_COLUMN_RIS_KEY,
    API_ORDER_DIRECTION_RIS_KEY,
    API_PAGE_INDEX_RIS_KEY,
    API_RESULT_RES_KEY,
    API_SELECT_COLUMNS_RIS_KEY,
)
from flask_appbuilder.exceptions import FABException
from flask_appbuilder.models.sqla.filters import FilterGreater
from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect as sa_inspect
from werkzeug.exceptions import BadRequest

from app.extensions import db
from views import list_count
from views.list_count import CappedCount

#: Rison keys of a list request: keyset pagination and the exact count on demand.
AFTER_RIS_KEY = "after"
EXACT_COUNT_RIS_KEY = "exact_count"


#: FAB's list arguments as the OpenAPI document shows them, with this module's two.
LIST_ARGUMENTS = {**get_list_schema, "properties": {
    **get_list_schema["properties"],
    AFTER_RIS_KEY: {"type": "integer", "minimum": 0, "description": (
        "Keyset pages: the records with a larger id, in id order, page_size at a time; the answer's "
        "next_after is the next page's after (null on the last). Not with page, order_column or cf_sort.")},
    EXACT_COUNT_RIS_KEY: {"type": "boolean", "description": (
        "Count every record of the list; without it count is null above 1,000 (more_than: 1000).")},
}}


class BoundedListApi:
    """``get_list`` of a ``ModelRestApi`` whose datamodel is a ``ListInterface``: the count
    capped, deep pages refused, keyset pages by ``after`` (see the module doc). Answers
    ``{"result": [...], "ids": [...], "count": int | None, "more_than"?: 1000,
    "next_after"?: int | None}`` plus FAB's metadata keys."""

    #: The OpenAPI document's ``get_list_schema`` (one component for every API's lists).
    apispec_parameter_schemas = {"get_list_schema": LIST_ARGUMENTS}

    def get_list_headless(self, **kwargs: Any) -> Any:
        args = kwargs.get("rison", {})
        response: dict[str, Any] = {}
        try:
            after, exact = _paging_args(args, request.args)
            select_columns, pruned = self._handle_columns_args(args, self.list_select_columns, self.list_columns)
            filters = self._handle_filters_args(args)
            order = (self.datamodel.get_pk_name(), "asc") if after is not None else self._handle_order_args(args)
        except FABException as exc:
            return self.response_400(message=str(exc))
        self.set_response_key_mappings(response, self.get_list, args, **{API_SELECT_COLUMNS_RIS_KEY: pruned})
        schema = self.model2schemaconverter.convert(pruned) if pruned else self.list_model_schema
        page, page_size = self._handle_page_args(args)
        select_columns = _loaded_columns(self.datamodel.obj, select_columns, schema)
        count = self._list_count(filters, select_columns, exact)
        cap = list_count.COUNT_CAP
        if count > cap and page and page_size and page * page_size >= cap:  # also when counted exactly
            raise ArgumentRefused(str(_l(
                "Pages by number reach the first %(count)s records of a list holding more: filter the list, "
                "or page on with (after:<the last id you have>), which lists the records by id.",
                count=f"{cap:,}")))
        if after is not None:  # one row more than the page: whether a next page exists
            filters.add_filter(self.datamodel.get_pk_name(), FilterGreater, after)
        reading = page_size + 1 if after is not None and page_size else page_size
        rows = self.datamodel.page_rows(count, filters, *order, page=page, page_size=reading,
                                        select_columns=select_columns,
                                        outer_default_load=self.list_outer_default_load)
        more = reading != page_size and len(rows) > page_size
        rows = rows[:page_size] if more else rows
        ids = self.datamodel.get_keys(rows)
        response.update({API_RESULT_RES_KEY: schema.dump(rows, many=True), "ids": ids, **_counted(count)})
        if after is not None:
            response["next_after"] = ids[-1] if more else None
        self.pre_get_list(response)
        return self.response(200, **response)

    def _list_count(self, filters: Any, select_columns: Any, exact: bool) -> int:
        query = db.session.query(self.datamodel.obj)
        if exact:
            return self.datamodel.exact_count(query, filters)
        return self.datamodel.query_count(query, filters, select_columns)


def _loaded_columns(model: type, select_columns: list[str], schema: Any) -> list[str]:
    """The columns a list page loads: ``select_columns``, what the schema reads beyond them
    (``reads_columns``: the custom field values), and every column of the row when one of them
    is a Python property (an opportunity's weighted amount, an order's balance), which would
    otherwise load what it reads one query per row."""
    if not select_columns:
        return select_columns
    wanted = [*select_columns, *(name for name in getattr(schema, "reads_columns", ()) if name not in select_columns)]
    attributes = sa_inspect(model).attrs
    if all("." in name or name in attributes for name in wanted):
        return wanted
    return [*wanted, *(column.key for column in sa_inspect(model).column_attrs if column.key not in wanted)]


class ArgumentRefused(BadRequest):
    """A refused list argument: 400 whose JSON message is the description alone (FAB's
    ``safe`` answers ``str()`` of a ``BadRequest``, "400 Bad Request: …")."""

    def __str__(self) -> str:
        return str(self.description)


def _paging_args(args: dict[str, Any], query_args: Any) -> tuple[int | None, bool]:
    """``(after, exact_count)`` of a list request (``args``: its rison; ``query_args``: the
    URL's, where ``cf_sort`` orders by a custom field); ``ArgumentRefused`` for a wrong type, or
    ``after`` beside a page number or another order (the page would not end at its largest id)."""
    after, exact = args.get(AFTER_RIS_KEY), args.get(EXACT_COUNT_RIS_KEY, False)
    if not isinstance(exact, bool):
        raise ArgumentRefused(str(_l("exact_count is !t or !f.")))
    if after is None:
        return None, exact
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= 2**63 - 1:
        raise ArgumentRefused(str(_l("after is the id of a record (a whole number from 0).")))
    ordered = args.get(API_ORDER_COLUMN_RIS_KEY) not in (None, "", "id") or args.get(
        API_ORDER_DIRECTION_RIS_KEY) not in (None, "asc") or "cf_sort" in query_args
    if args.get(API_PAGE_INDEX_RIS_KEY) or ordered:
        raise ArgumentRefused(str(_l("after lists the records by id from the first page: leave out page, "
                                     "order_column, order_direction and cf_sort.")))
    return after, exact


def _counted(count: int) -> dict[str, Any]:
    """The answer's count keys: ``{"count": 12}``, or ``{"count": None, "more_than": 1000}``."""
    if isinstance(count, CappedCount):
        return {"count": None, "more_than": list_count.COUNT_CAP}
    return {"count": int(count)}


class _SchemasCheckedOnce:
    """``jsonschema`` as FAB's ``@rison`` decorator uses it, with each argument schema checked
    against its meta-schema once, not on every request: ``jsonschema.validate`` checks the
    schema first each time, 15 ms of a 44 ms API list page (cProfile, 1,000,000 customers).
    Validation of the arguments and its errors are ``jsonschema.validate``'s."""

    def __init__(self) -> None:
        self._validators: dict[int, tuple[Any, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(jsonschema, name)

    def validate(self, instance: Any, schema: Any) -> None:
        held = self._validators.get(id(schema))
        if held is None or held[0] is not schema:  # an id outlives its object: check it is the same
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            held = self._validators[id(schema)] = (schema, cls(schema))
        error = jsonschema.exceptions.best_match(held[1].iter_errors(instance))
        if error is not None:
            raise error


fab_api.jsonschema = _SchemasCheckedOnce()
