"""Custom fields in the report builder (issue 18): a choice field is a dimension, an integer
field a measure, a tag a filter — in the reader's scope, masked fields masked."""

from __future__ import annotations

from typing import Any

import pytest

from app.extensions import appbuilder
from app.services import reports
from app.services.errors import RuleViolation

pytestmark = pytest.mark.usefixtures("shanghai")
SIZES = [("small", "Small", "小型"), ("large", "Large", "大型")]
NEEDS = [("price", "Price", "价格敏感", "#d9534f"), ("service", "Service", "重视服务", "#5cb85c")]


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


@pytest.fixture
def sized(app: Any, make_customer: Any, make_custom_field: Any) -> None:
    make_custom_field("customer", "size", "choice", label_en="Company size", label_zh="客户规模", choices=SIZES)
    make_custom_field("customer", "years", "integer", label_en="Years together", label_zh="合作年限")
    make_custom_field("customer", "needs", "tags", label_en="Key needs", label_zh="关键需求标签", choices=NEEDS)
    make_custom_field("customer", "secret", "text", masked=True)
    for owner, custom in [("rep_a", {"size": "large", "years": 3, "needs": ["price"], "secret": "13912345678"}),
                          ("rep_a", {"size": "large", "years": 5, "needs": ["price", "service"]}),
                          ("rep_a", {"size": "small", "years": 1}),
                          ("rep_c", {"size": "large", "years": 10, "needs": ["price"]})]:
        make_customer(owner, custom=custom)


def test_choice_dimension_integer_measure_tag_filter(app: Any, sized: None) -> None:
    with app.test_request_context():
        source = reports.SOURCES["customers"]
        assert "cf_size" in source.dimensions and "sum:cf_years" in source.measures
        assert "cf_needs" in source.filters and "cf_needs" not in source.dimensions
        result = reports.run(reports.parse_spec({"source": "customers", "dimensions": ["cf_size"],
                                                 "measure": "sum:cf_years"}), user("admin"))
        assert ("Large", None, 18) in [(r[0], None, int(r[-1])) for r in result.rows]
        scoped = reports.run(reports.parse_spec({"source": "customers", "dimensions": ["cf_size"],
                                                 "cf_needs": "price"}), user("rep_a"))
        assert [(r[0], r[-1]) for r in scoped.rows] == [("Large", 2)]  # rep_c's customer is not in scope


def test_masked_fields_take_no_part_in_reports(app: Any, sized: None, make_custom_field: Any) -> None:
    """Grouping by a masked value shows it to whoever may reveal contacts (no code, no audit)
    and, masked, still its count and order: a masked field is no dimension, measure or filter."""
    make_custom_field("customer", "salary", "integer", masked=True)
    make_custom_field("customer", "born", "date", masked=True)
    with app.test_request_context():
        source = reports.SOURCES["customers"]
        assert not [k for k in (*source.dimensions, *source.measures, *source.filters)
                    if "secret" in k or "salary" in k or "born" in k]
        with pytest.raises(RuleViolation):
            reports.parse_spec({"source": "customers", "dimensions": ["cf_secret"]})


def test_groups_that_read_alike_stay_apart(app: Any, make_customer: Any) -> None:
    """Two contact names masked alike (张三, 张四 -> 张****) for a reader without the reveal
    right are two rows, not one pivot label (which failed the page)."""
    make_customer("rep_a", contact_name="张三")
    make_customer("rep_a", contact_name="张四")
    with app.test_request_context():
        result = reports.run(reports.parse_spec({"source": "customers", "dimensions": ["contact_name", "level"]}),
                             user("viewer"))
        labels = {row[0] for row in result.rows}
        assert labels == {"张****", "张**** (2)"}
