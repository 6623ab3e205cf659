"""A list page counts its records up to a cap (issue 12: no page's time grows with the records
in scope beyond its own page).

FAB's list asks for the exact total of the filtered query before it reads the page; at
1,000,000 customers that count is most of the page on PostgreSQL (an unfiltered admin list
145 ms, the page itself a few). ``ListInterface`` counts at most ``COUNT_CAP + 1`` rows: below
the cap the figure is exact, above it the list reads "Record Count: 10,000+" and its pager
reaches the pages of the first 10,001 records (sorting or a filter narrows the rest, as in
Gmail's "1–50 of many"). Exports (``exact_count``) and the REST API (``ExactCountInterface``)
keep exact counts.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from flask_appbuilder.models.sqla.filters import FilterRelationOneToManyEqual
from flask_appbuilder.models.sqla.interface import SQLAInterface
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import selectinload

from app.security import data_scope

#: Records a list counts exactly; above it the total reads "10,000+".
COUNT_CAP = 10_000


class CappedCount(int):
    """A list total above ``COUNT_CAP``: ``COUNT_CAP + 1`` in arithmetic (the pager), shown as
    "10,000+"."""

    def __str__(self) -> str:
        return f"{COUNT_CAP:,}+"

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else super().__format__(spec)


class ListInterface(SQLAInterface):
    """The data model of a list screen: its count is capped (see the module doc); ``capped``
    False (the REST API's lists) counts every row, the same way."""

    capped = True
    #: Relations the list shows (``"customer"``, ``"customer.owner"``): loaded with the page
    #: by one query each (``selectinload``) instead of one per row (``eager_paths``).
    eager: tuple[str, ...] = ()

    def apply_all(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        query = super().apply_all(query, *args, **kwargs)
        return query.options(*(_load_path(self.obj, path) for path in self.eager)) if self.eager else query

    def query_count(self, query: Any, filters: Any = None, select_columns: list[str] | None = None) -> int:
        """Rows of the filtered list up to ``COUNT_CAP`` (exact); a ``CappedCount`` above it
        (every row when not ``capped``). One query reading at most ``COUNT_CAP + 1`` keys."""
        if not self.capped:
            return self.exact_count(query, filters)
        found = self._keys(query, filters).limit(COUNT_CAP + 1).count()
        return CappedCount(found) if found > COUNT_CAP else found

    def exact_count(self, query: Any, filters: Any = None) -> int:
        """Every row of the filtered list (exports: the total they write and show)."""
        return self._keys(query, filters).count()

    def _keys(self, query: Any, filters: Any) -> Any:
        """The filtered list's keys only (SQLite reads them from an index instead of each row);
        a whole list is selected from the records in scope (``data_scope.counting_whole_list``),
        one record's related list (a customer's follow-ups) as it is."""
        with nullcontext() if _narrowed_to_one_record(filters) else data_scope.counting_whole_list():
            keys = query.with_entities(*self.obj.__mapper__.primary_key)
            return self._apply_inner_all(keys, filters, aliases_mapping={})


class ExactCountInterface(ListInterface):
    """A REST API's data model: every row counted (clients page by the total)."""

    capped = False


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


def _narrowed_to_one_record(filters: Any) -> bool:
    """The list is a record's related list (FAB's related view: its rows of one customer)."""
    return any(isinstance(flt, FilterRelationOneToManyEqual) for flt in getattr(filters, "filters", None) or ())


def list_interface(datamodel: Any, kind: type[ListInterface] = ListInterface) -> Any:
    """``datamodel`` as a ``kind`` (the same model and session), or itself when it is a
    ``ListInterface`` already (a screen's own subclass: custom-field lists)."""
    if isinstance(datamodel, ListInterface):
        return datamodel
    return kind(datamodel.obj, datamodel._session)  # None: the app's, looked up when used
