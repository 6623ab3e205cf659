"""The one reader of a list's custom-field filters and sort (issue 18: "search filters
(equals / contains / range / in), sorting"), used by the screens and the REST API alike."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models.customers import Customer
from app.models.org import CrmUser
from app.services.custom_fields import filters

SIZES = [("small", "Small", "小型"), ("large", "Large", "大型"),
         {"code": "old", "label_en": "Old", "label_zh": "旧", "active": False}]
NEEDS = [("price", "Price", "价格敏感"), ("service", "Service", "重视服务")]


@pytest.fixture
def listed(make_custom_field: Any, make_customer: Any) -> dict[str, int]:
    make_custom_field("customer", "size", "choice", label_en="Company size", label_zh="客户规模", choices=SIZES)
    make_custom_field("customer", "years", "integer", label_en="Years", label_zh="合作年限")
    make_custom_field("customer", "needs", "tags", choices=NEEDS)
    make_custom_field("customer", "note", "text")
    make_custom_field("customer", "buddy", "user")
    make_custom_field("customer", "secret", "text", masked=True)
    return {
        "small": make_customer("rep_a", name="small", custom={"size": "small", "years": 2, "note": "Big Deal"}),
        "large": make_customer("rep_a", name="large", custom={"size": "large", "years": 9, "needs": ["price"]}),
        "old": make_customer("rep_a", name="old", custom={"size": "old", "years": 9, "secret": "x"}),
        "none": make_customer("rep_a", name="none", custom={"needs": ["service", "price"]}),
    }


def _names(found: filters.ListFilters) -> list[str]:
    statement = select(Customer.name).where(*found.conditions)
    statement = statement.order_by(*found.order) if found.order is not None else statement.order_by(Customer.name)
    return list(db.session.scalars(statement))


def _read(query: dict[str, Any] | MultiDict, lang: str = "en") -> filters.ListFilters:
    return filters.read(query, Customer, "customer", lang)


def test_every_operator_reads_by_the_fields_rule(ctx: Any, listed: dict[str, int]) -> None:
    assert _names(_read(MultiDict([("cf_size", "大型"), ("cf_size", "Small")]))) == ["large", "small"]
    assert _names(_read({"cf_size": "old"})) == ["old"]  # a retired choice still finds old records
    assert _names(_read({"cf_needs": "价格敏感"})) == ["large", "none"]
    assert _names(_read({"cf_note__contains": "deal"})) == ["small"]
    assert _names(_read({"cf_years__from": "５", "cf_years__to": "9"})) == ["large", "old"]
    assert _names(_read({"cf_years": ["", " "], "other": "x"})) == ["large", "none", "old", "small"]


def test_sort_is_the_value_then_the_id_and_a_pinned_value_is_id_order(ctx: Any, listed: dict[str, int]) -> None:
    ordered = _names(_read({"cf_sort": "-cf_years"}))
    nulls_last_desc = db.engine.dialect.name == "sqlite"  # each database's NULL place, as the screens
    assert ordered[:3] == ["old", "large", "small"] if nulls_last_desc else ordered[1:] == ["old", "large", "small"]
    pinned = _read({"cf_years": "9", "cf_sort": "cf_years"})
    assert pinned.sort_field == "years" and _names(pinned) == ["large", "old"]  # ids going up


def test_refused_arguments_name_themselves_and_never_a_masked_field(ctx: Any, listed: dict[str, int]) -> None:
    found = _read(MultiDict([("cf_secret", "x"), ("cf_sort", "cf_secret"), ("cf_nope", "1"),
                             ("cf_size__contains", "a"), ("cf_years__from", "many"), ("cf_needs__from", "1"),
                             ("cf_note", "x" * 201), ("cf_size", "small")]), "zh")
    refused = {problem.argument: problem for problem in found.problems}
    assert set(refused) == {"cf_secret", "cf_sort", "cf_nope", "cf_size__contains", "cf_years__from",
                            "cf_needs__from", "cf_note"}
    assert refused["cf_years__from"].label == "合作年限" and refused["cf_years__from"].text().startswith("合作年限: ")
    assert refused["cf_secret"].label == "" and found.order is None
    assert _names(found) == ["small"]  # the accepted argument still filters
    sorted_by_tags = _read({"cf_sort": "cf_needs"})
    assert sorted_by_tags.order is None and [p.argument for p in sorted_by_tags.problems] == ["cf_sort"]
    assert [p.argument for p in filters.read({"cf_x": "1"}, Customer, None).problems] == ["cf_x"]


def test_a_user_field_finds_users_by_name_or_id_active_or_not(ctx: Any, listed: dict[str, int]) -> None:
    rep_b = db.session.scalar(select(CrmUser).where(CrmUser.username == "rep_b"))
    db.session.get(Customer, listed["small"]).custom = {"buddy": rep_b.id}
    db.session.commit()
    assert _names(_read({"cf_buddy": "rep_b"})) == ["small"]
    assert _names(_read({"cf_buddy": str(rep_b.id)})) == ["small"]
    found = _read({"cf_buddy": "nobody"})  # no message: a name nobody has finds nothing, like an unused one
    assert found.problems == [] and _names(found) == []
