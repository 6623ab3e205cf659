"""A list page counts its records up to a cap (issue 12: no page's time grows with the records
in scope beyond its own page).

FAB's list asks for the exact total of the filtered query before it reads the page; at
1,000,000 customers that count is most of the page on PostgreSQL (an unfiltered admin list
145 ms, the page itself a few). ``ListInterface`` counts at most ``COUNT_CAP + 1`` rows: below
the cap the figure is exact, above it the list reads "Record Count: 1,000+ (count all)" and
its pager reaches the pages of the first 1,001 records (sorting or a filter narrows the rest;
Odoo's pager does the same with "1-80 / 10000+"). "Count all" asks the view's ``count``
endpoint for the exact figure on demand. Counting follow-ups of a rep's 10,000 customers
costs 40-50 ms at any cap above them (an index probe per customer), so the cap is 1,000.
One record's related list (a customer's follow-ups) and exports (``exact_count``) count
exactly; the REST API's lists count the same way (``views.api_pages``).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from flask import request, url_for
from flask_appbuilder.models.sqla.filters import FilterRelationOneToManyEqual
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext
from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import selectinload
from werkzeug.routing import BuildError

from app.extensions import db
from app.models.org import CrmUser
from app.security import data_scope

#: Records a list counts exactly; above it the total reads "1,000+".
COUNT_CAP = 1_000


class CappedCount(int):
    """A list total above ``COUNT_CAP``: ``COUNT_CAP + 1`` in arithmetic (the pager), shown as
    "1,000+" and, in a page, with a "count all" link to ``count_url`` (crm/list_count.js)."""

    count_url: str | None = None

    def __str__(self) -> str:
        return f"{COUNT_CAP:,}+"

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else super().__format__(spec)

    def __html__(self) -> str:
        if not self.count_url:
            return str(escape(str(self)))
        return str(Markup('<span class="crm-count">{} <a href="#" class="crm-count-all" data-url="{}" '
                          'data-counting="{}" data-failed="{}">{}</a></span>').format(
            str(self), self.count_url, gettext("Counting…"), gettext("Could not count; try again."),
            gettext("count all")))


def capped_count(keys: Any) -> int:
    """Rows of ``keys`` (a ``select`` or ORM query of one column) up to ``COUNT_CAP``, exact; a
    ``CappedCount`` above it. One query reading at most ``COUNT_CAP + 1`` rows: a figure on a
    page (the home page's follow-ups due) costs the same at any size. Build ``keys`` inside
    ``data_scope.counting_whole_list`` for the scope's counting form."""
    found = db.session.scalar(select(func.count()).select_from(keys.limit(COUNT_CAP + 1).subquery()))
    return CappedCount(found) if found > COUNT_CAP else found


def _count_url() -> str | None:
    """The current list's exact-count URL with the same arguments (None outside a list page)."""
    endpoint = request.endpoint or ""
    if not endpoint.endswith(".list"):
        return None
    try:
        path = url_for(endpoint[: -len("list")] + "count", **(request.view_args or {}))
    except BuildError:  # a list view without the endpoint (not a CrmModelView)
        return None
    query = request.query_string.decode("utf-8", "replace")
    return f"{path}?{query}" if query else path


class ListInterface(SQLAInterface):
    """The data model of a list screen or a REST API's list: its count is capped (see the
    module doc)."""

    #: Relations the list shows (``"customer"``, ``"customer.owner"``): loaded with the page
    #: by one query each (``selectinload``) instead of one per row (``eager_paths``).
    eager: tuple[str, ...] = ()

    def get_related_interface(self, col_name: str) -> Any:
        """The related model's interface, made once per column: FAB's forms ask for it for
        every option of a related select (the primary key of each industry, level, owner …),
        and each new interface re-reads the model's columns and filters (~130 per list page)."""
        made = self.__dict__.setdefault("_related", {})
        if col_name not in made:
            made[col_name] = super().get_related_interface(col_name)
        return made[col_name]

    def apply_all(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        query = super().apply_all(query, *args, **kwargs)
        return query.options(*(_load_path(self.obj, path) for path in self.eager)) if self.eager else query

    def query(self, filters: Any = None, order_column: str = "", order_direction: str = "",
              page: int | None = None, page_size: int | None = None, select_columns: list[str] | None = None,
              outer_default_load: bool = False) -> tuple[int, list[Any]]:
        """FAB's ``(count, rows of the page)``: the count capped (``query_count``), then the
        page's rows (``page_rows``)."""
        count = self.query_count(self.session.query(self.obj), filters, select_columns)
        return count, self.page_rows(count, filters, order_column, order_direction, page, page_size,
                                     select_columns, outer_default_load)

    def page_rows(self, count: int, filters: Any = None, order_column: str = "", order_direction: str = "",
                  page: int | None = None, page_size: int | None = None,
                  select_columns: list[str] | None = None, outer_default_load: bool = False) -> list[Any]:
        """The rows of one page of a list holding ``count`` records; none read when the page has
        no record to show (a filter matching nothing, a page past the end): the database would
        walk every record in scope to learn that it has no match (issue 12: a rep's "subject
        zzz" over 98,000 activities, 160 ms for the page after a 9 ms count)."""
        past_end = page and page_size and not isinstance(count, CappedCount) and page * page_size >= count
        if count == 0 or past_end:
            return []
        if self._keys_first(page_size, select_columns, order_column):
            return self._rows_by_keys(filters, order_column, order_direction, page, page_size)
        query = self.apply_all(self.session.query(self.obj), filters, order_column, order_direction, page,
                               page_size, select_columns, outer_default_load)
        rows = query.all()
        if rows and not hasattr(rows[0], self.obj.__name__):
            return rows
        return [getattr(row, self.obj.__name__) for row in rows]

    def _keys_first(self, page_size: int | None, select_columns: list[str] | None, order_column: str) -> bool:
        """Whether a page is read keys first (``_rows_by_keys``): a page of whole records of a
        one-column key, ordered by a column of its own (a list without an order keeps the order
        the whole-row query gives), on SQLite."""
        return bool(page_size) and not select_columns and bool(order_column) and "." not in order_column \
            and len(self.obj.__mapper__.primary_key) == 1 and self.session.get_bind().dialect.name == "sqlite"

    def _rows_by_keys(self, filters: Any, order_column: str, order_direction: str, page: int | None,
                      page_size: int | None) -> list[Any]:
        """SQLite: the page's keys first (filtered, ordered and paged; read from an index where
        one serves them), then its rows by key, in that order. Selecting whole rows, SQLite read
        every record in scope from the table to sort them (a rep's customer list at 1,000,000:
        24-33 ms of SQL for 25 rows, 2-5 ms this way). PostgreSQL sorts the top rows as it reads
        them: there the second query gained nothing (page 40: 12 ms one way, 16 ms the other)."""
        mapper = self.obj.__mapper__
        pk = mapper.primary_key[0]
        # filtered and ordered as the page (a filter may order only a query of records:
        # custom_api.CustomFieldCondition), then narrowed to the key
        keys = self._apply_inner_all(self.session.query(self.obj), filters, order_column, order_direction, page,
                                     page_size, aliases_mapping={}).with_entities(pk)
        ids = [key for key, in keys]
        if not ids:
            return []
        name = mapper.get_property_by_column(pk).key
        found = {getattr(row, name): row for row in self.apply_all(self.session.query(self.obj).filter(pk.in_(ids)))}
        return [found[key] for key in ids if key in found]

    def query_count(self, query: Any, filters: Any = None, select_columns: list[str] | None = None) -> int:
        """Rows of the filtered list up to ``COUNT_CAP`` (exact); a ``CappedCount`` above it
        (every row for one record's related list). One query reading at most ``COUNT_CAP + 1``
        keys."""
        if narrowed_to_one_record(filters):
            return self.exact_count(query, filters)
        found = capped_count(self._keys(query, filters))
        if isinstance(found, CappedCount):
            found.count_url = _count_url()
        return found

    def exact_count(self, query: Any, filters: Any = None) -> int:
        """Every row of the filtered list (exports: the total they write and show)."""
        return self._keys(query, filters).count()

    def _keys(self, query: Any, filters: Any) -> Any:
        """The filtered list's keys only (SQLite reads them from an index instead of each row);
        a whole list is selected from the records in scope (``data_scope.counting_whole_list``),
        one record's related list (a customer's follow-ups) as it is."""
        with nullcontext() if narrowed_to_one_record(filters) else data_scope.counting_whole_list():
            keys = query.with_entities(*self.obj.__mapper__.primary_key)
            return self._apply_inner_all(keys, filters, aliases_mapping={})


def eager_paths(model: type, columns: list[str]) -> tuple[str, ...]:
    """The relation paths among ``columns`` (list columns, dotted for a related value's
    column): ``["code", "customer", "owner.department.name"]`` -> ``("customer",
    "owner.department")``."""
    paths = []
    for column in columns:
        current, walked = model, []
        for part in column.split("."):
            relation = sa_inspect(current).relationships.get(part)
            if relation is None:
                break
            walked.append(part)
            current = relation.mapper.class_
        if walked and ".".join(walked) not in paths:
            paths.append(".".join(walked))
    return tuple(paths)


def _load_path(model: type, path: str) -> Any:
    option, current = None, model
    for part in path.split("."):
        attribute = getattr(current, part)
        option = selectinload(attribute) if option is None else option.selectinload(attribute)
        current = attribute.property.mapper.class_
    return option


def narrowed_to_one_record(filters: Any) -> bool:
    """The list is one record's related list: FAB's related view on the record's page (its
    filter is marked ``is_related_view``) or a filter equal to one record (a customer, a lead:
    a model with a data scope), the rows of that record. A filter on a person (an owner, an
    assignee) or a dictionary entry is not: that list may hold every row, so it is counted up
    to the cap like any other."""
    return any(isinstance(flt, FilterRelationOneToManyEqual) and (flt.is_related_view or _one_record(flt))
               for flt in getattr(filters, "filters", None) or ())


def _one_record(flt: Any) -> bool:
    related = flt.datamodel.get_related_model(flt.column_name)
    return related is not CrmUser and data_scope.has_scope(related)


def list_interface(datamodel: Any, kind: type[ListInterface] = ListInterface) -> Any:
    """``datamodel`` as a ``kind`` (the same model and session), or itself when it is a
    ``ListInterface`` already (a screen's own subclass: custom-field lists)."""
    if isinstance(datamodel, ListInterface):
        return datamodel
    return kind(datamodel.obj, datamodel._session)  # None: the app's, looked up when used
