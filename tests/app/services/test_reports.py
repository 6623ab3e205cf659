"""Report builder (自定义报表, 001 §四): pivots against hand-computed fixtures, the Asia/Shanghai
month boundary, and parse_spec's refusals."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models.customers import Customer, FollowUp
from app.models.dictionaries import CustomerLevel, Industry
from app.models.orders import SalesOrder
from app.services import reports
from app.services.errors import RuleViolation
from tests.conftest import user_id

pytestmark = pytest.mark.usefixtures("shanghai")


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def levels() -> list[CustomerLevel]:
    return list(db.session.scalars(select(CustomerLevel).order_by(CustomerLevel.sort_order, CustomerLevel.id)))[:2]


def industries() -> list[Industry]:
    """Two divisions of one section, and another section's division."""
    divisions = list(db.session.scalars(select(Industry).where(Industry.parent_id.is_not(None)).order_by(Industry.id)))
    first = divisions[0]
    sibling = next(d for d in divisions if d.parent_id == first.parent_id and d.id != first.id)
    other = next(d for d in divisions if d.parent_id != first.parent_id)
    return [first, sibling, other]


def spec(**data: Any) -> reports.ReportSpec:
    return reports.parse_spec(data)


@pytest.fixture
def level_industry(app: Any, make_customer: Any) -> dict[str, Any]:
    """rep_a: 2 × (L1, I1), 1 × (L2, I1), 1 × (L1, I3); rep_c: 1 × (L1, I1); one without level."""
    with app.app_context():
        (l1, l2), (i1, i2, i3) = levels(), industries()
        ids = {"l1": l1.id, "l2": l2.id, "i1": i1.id, "i2": i2.id, "i3": i3.id,
               "l1_label": l1.label_en, "l2_label": l2.label_en, "i1_label": i1.label, "i3_label": i3.label,
               "section": i1.parent_id}
    for owner, level, industry in [("rep_a", "l1", "i1"), ("rep_a", "l1", "i1"), ("rep_a", "l2", "i1"),
                                   ("rep_a", "l1", "i3"), ("rep_c", "l1", "i1"), ("rep_a", "l2", "i2")]:
        make_customer(owner, level_id=ids[level], industry_id=ids[industry])
    make_customer("rep_a")
    return ids


def test_sources_contract(ctx: Any) -> None:
    customers = reports.SOURCES["customers"]
    assert {"level", "industry", "industry_section", "owner", "department", "created_month"} <= set(customers.dimensions)
    assert customers.dimensions["contact_name"].sensitive
    for source in reports.SOURCES.values():  # no phone or e-mail dimension anywhere
        assert not [k for k in source.dimensions if "phone" in k or "mail" in k]
    assert "sum:total" in reports.SOURCES["orders"].measures and "avg:satisfaction" in reports.SOURCES["tickets"].measures
    assert [s.key for s in reports.sources(user("viewer"))]  # read-only users report too


def test_per_source_filters_are_public_with_choices_in_the_readers_language(app: Any) -> None:
    """Each source names the filters a user may pick; dictionary choices are read when asked
    (a new entry appears at once) and labelled in the reader's language."""
    from flask_babel import force_locale

    assert set(reports.SOURCES["customers"].filters) == {"level", "industry", "type", "customer_source"}
    assert "status" in reports.SOURCES["leads"].filters and "stage" in reports.SOURCES["opportunities"].filters
    level_filter = reports.SOURCES["customers"].filters["level"]
    with app.app_context():
        first = levels()[0]
        with force_locale("zh"):
            assert (str(first.id), first.label_zh) in level_filter.choices
        with force_locale("en"):
            assert (str(first.id), first.label_en) in level_filter.choices
            statuses = dict(reports.SOURCES["leads"].filters["status"].choices)
            assert statuses["qualified"] == "Qualified"
        db.session.add(CustomerLevel(code="ZZ-NEW", label_en="Brand new", label_zh="全新", sort_order=999))
        db.session.flush()
        assert "Brand new" in dict(level_filter.choices).values()  # not frozen at import
        db.session.rollback()
        industry = dict(reports.SOURCES["customers"].filters["industry"].choices)
        division = industries()[0]
        assert industry[str(division.id)] == division.label and " > " in division.label
        assert str(division.parent_id) in industry  # a section: it takes its divisions


def test_level_by_industry_counts(ctx: Any, level_industry: dict[str, Any]) -> None:
    ids = level_industry
    result = reports.run(spec(source="customers", dimensions=["level", "industry"]), user("admin"))
    pivot = result.pivot
    assert pivot.loc[ids["l1_label"], ids["i1_label"]] == 3  # 2 of rep_a + 1 of rep_c
    assert pivot.loc[ids["l1_label"], ids["i3_label"]] == 1
    assert pivot.loc[ids["l2_label"], ids["i1_label"]] == 1
    assert pivot.loc[ids["l1_label"], "Total"] == 4
    assert pivot.loc["Total", "Total"] == 7
    assert pivot.loc["(empty)", "(empty)"] == 1  # the customer with neither
    assert (ids["l1_label"], ids["i1_label"], 3) in result.rows
    figure = result.figure
    assert figure.categories[:2] == [ids["l1_label"], ids["l2_label"]] or ids["l1"] in figure.keys
    series = {s.name: s.values for s in figure.series}
    assert series[ids["i1_label"]][figure.keys.index(ids["l1"])] == 3
    assert result.contact_data is False


def test_industry_section_groups_divisions(ctx: Any, level_industry: dict[str, Any]) -> None:
    ids = level_industry
    result = reports.run(spec(source="customers", dimensions=["industry_section"]), user("admin"))
    values = dict(zip(result.figure.keys, result.figure.series[0].values, strict=True))
    assert values[ids["section"]] == 5  # i1 (4) and its sibling i2 (1)


def test_industry_filter_takes_divisions(ctx: Any, level_industry: dict[str, Any]) -> None:
    ids = level_industry
    result = reports.run(spec(source="customers", dimensions=["level"], industry=ids["section"]), user("admin"))
    assert result.pivot.loc["Total", "Total"] == 5


def test_labels_in_chinese(app: Any, level_industry: dict[str, Any]) -> None:
    from flask_babel import force_locale

    with app.app_context(), force_locale("zh"):
        result = reports.run(spec(source="customers", dimensions=["level"]), user("admin"))
        zh = db.session.get(CustomerLevel, level_industry["l1"]).label_zh
        assert zh in result.figure.categories
        assert "合计" in result.pivot.index or "Total" in result.pivot.index


def _order(owner: str, customer_id: int, day: date, total: str, paid: str = "0") -> None:
    db.session.add(SalesOrder(code=f"SO{owner}{day:%m%d}{total}", customer_id=customer_id, owner_id=user_id(owner),
                              status="approved", order_date=day, total=Decimal(total), paid_amount=Decimal(paid)))


def test_sum_and_average_of_money(ctx: Any, make_customer: Any) -> None:
    cid = make_customer("rep_a")
    for day, total in [(date(2026, 3, 1), "100.10"), (date(2026, 3, 31), "200.05"), (date(2026, 4, 1), "0.01"),
                       (date(2026, 4, 2), "0.02")]:
        _order("rep_a", cid, day, total)
    db.session.commit()
    result = reports.run(spec(source="orders", dimensions=["order_month"], measure="sum:total"), user("admin"))
    assert result.pivot.loc["2026-03", "Total"] == Decimal("300.15")
    assert result.pivot.loc["2026-04", "Total"] == Decimal("0.03")
    assert result.pivot.loc["Total", "Total"] == Decimal("300.18")
    avg = reports.run(spec(source="orders", dimensions=["order_month"], measure="avg:total"), user("admin"))
    assert avg.pivot.loc["2026-03", "Total"] == Decimal("150.08")  # 150.075 half up
    assert avg.pivot.loc["2026-04", "Total"] == Decimal("0.02")  # 0.015 half up
    assert avg.pivot.loc["Total", "Total"] == Decimal("75.05")  # 300.18 / 4 = 75.045: of records, not of months
    assert avg.figure.unit == "money"


def test_month_buckets_at_the_shanghai_boundary(ctx: Any, make_customer: Any) -> None:
    """2026-03-31 16:00 UTC is 2026-04-01 00:00 in Shanghai: April; 15:59 is March."""
    cid = make_customer("rep_a")
    for at in [datetime(2026, 3, 31, 15, 59, tzinfo=UTC), datetime(2026, 3, 31, 16, 0, tzinfo=UTC),
               datetime(2026, 3, 31, 23, 0, tzinfo=UTC), datetime(2025, 12, 31, 16, 30, tzinfo=UTC)]:
        db.session.add(FollowUp(code=f"G{at:%Y%m%d%H%M}", customer_id=cid, owner_id=user_id("rep_a"), content="x",
                                followed_at=at))
    db.session.commit()
    months = reports.run(spec(source="follow_ups", dimensions=["followed_month"]), user("admin"))
    values = dict(zip(months.figure.keys, months.figure.series[0].values, strict=True))
    assert values == {"2026-01": 1, "2026-03": 1, "2026-04": 2}
    quarters = reports.run(spec(source="follow_ups", dimensions=["followed_quarter"]), user("admin"))
    assert dict(zip(quarters.figure.keys, quarters.figure.series[0].values, strict=True)) == {
        "2026-Q1": 2, "2026-Q2": 2}
    april = reports.run(spec(source="follow_ups", dimensions=["owner"], period_start="2026-04-01",
                             period_end="2026-04-30"), user("admin"))
    assert april.pivot.loc["Total", "Total"] == 2
    march = reports.run(spec(source="follow_ups", dimensions=["owner"], period_start="2026-03-01",
                             period_end="2026-03-31"), user("admin"))
    assert march.pivot.loc["Total", "Total"] == 1


def test_owner_and_department_filters(ctx: Any, level_industry: dict[str, Any]) -> None:
    east = db.session.scalar(select(Customer.id).limit(1)) and user("manager").department_id
    by_owner = reports.run(spec(source="customers", dimensions=["level"], owner=user_id("rep_c")), user("admin"))
    assert by_owner.pivot.loc["Total", "Total"] == 1
    by_dept = reports.run(spec(source="customers", dimensions=["owner"], department=east), user("admin"))
    assert by_dept.pivot.loc["Total", "Total"] == 6  # rep_a's 6 (East); rep_c is South


def test_too_many_groups_become_other(ctx: Any, monkeypatch: pytest.MonkeyPatch, level_industry: dict) -> None:
    monkeypatch.setattr(reports.running, "MAX_GROUPS", 2)  # looked up where ``_cap`` runs
    result = reports.run(spec(source="customers", dimensions=["industry"]), user("admin"))
    assert "Other" in result.figure.categories and len(result.figure.categories) == 2
    assert result.pivot.loc["Total", "Total"] == 7  # nothing lost


@pytest.mark.parametrize(("data", "field", "words"), [
    ({"source": "customers", "dimensions": ["level", "industry", "owner"]}, "dimensions", "at most 2"),
    ({"source": "customers", "dimensions": []}, "dimensions", "at least one"),
    ({"source": "customers", "dimensions": ["shoe_size"]}, "dimensions", "Unknown dimension: shoe_size"),
    ({"source": "customers", "dimensions": ["contact_phone"]}, "dimensions", "Unknown dimension"),
    ({"source": "customers", "dimensions": ["level", "level"]}, "dimensions", "different"),
    ({"source": "customers", "dimensions": ["level"], "measure": "sum:name"}, "measure", "not a number field"),
    ({"source": "orders", "dimensions": ["status"], "measure": "median:total"}, "measure", "Unknown measure"),
    ({"source": "customers", "dimensions": ["level"], "period_start": "2026-13-01"}, "period_start", "Not a date"),
    ({"source": "customers", "dimensions": ["level"], "period_start": "2026-05-01", "period_end": "2026-04-01"},
     "period_end", "ends before"),
    ({"source": "customers", "dimensions": ["level"], "level": "x"}, "level", "valid value"),
    ({"source": "customers", "dimensions": ["level"], "chart": "radar"}, "chart", "chart"),
    ({"source": "passwords", "dimensions": ["level"]}, "source", "Choose what"),
])
def test_parse_spec_refusals(ctx: Any, data: dict, field: str, words: str) -> None:
    with pytest.raises(RuleViolation) as refused:
        reports.parse_spec(data)
    assert field in refused.value.errors
    assert words in refused.value.errors[field]


def test_parse_spec_from_a_form(ctx: Any) -> None:
    from werkzeug.datastructures import MultiDict

    parsed = reports.parse_spec(MultiDict([("source", "opportunities"), ("dimensions", "owner"),
                                           ("dimensions", "created_month"), ("measure", "sum:amount"),
                                           ("chart", "line"), ("period_start", "2026-01-01"), ("stage", "")]))
    assert parsed == reports.ReportSpec("opportunities", ("owner", "created_month"), "sum:amount",
                                        {"period_start": "2026-01-01"}, "line")


def test_every_source_and_dimension_runs(ctx: Any, level_industry: dict) -> None:
    """Each declared dimension is valid SQL on this database (no rows needed)."""
    for source in reports.SOURCES.values():
        for key in source.dimensions:
            measure = next(iter(m for m in source.measures if m.startswith("avg:")), "count")
            result = reports.run(spec(source=source.key, dimensions=[key], measure=measure), user("admin"))
            assert "Total" in result.pivot.index


def test_satisfaction_distribution_and_average(ctx: Any, make_customer: Any) -> None:
    """001 §四 满意度分布: feedback counted per score; the average of a type over its scored rows."""
    from app.models.dictionaries import FeedbackType
    from app.models.service import ServiceFeedback

    cid = make_customer("rep_a")
    kinds = list(db.session.scalars(select(FeedbackType).order_by(FeedbackType.id)))[:2]
    for n, (kind, score) in enumerate([(0, 5), (0, 4), (0, 4), (1, 1), (1, None)]):
        db.session.add(ServiceFeedback(code=f"F{n}", customer_id=cid, type_id=kinds[kind].id, description="x",
                                       satisfaction=score))
    db.session.commit()
    spread = reports.run(spec(source="feedback", dimensions=["satisfaction"]), user("admin"))
    assert dict(zip(spread.figure.keys, spread.figure.series[0].values, strict=True)) == {
        1: 1, 4: 2, 5: 1, None: 1}
    avg = reports.run(spec(source="feedback", dimensions=["type"], measure="avg:satisfaction"), user("admin"))
    values = dict(zip(avg.figure.keys, avg.figure.series[0].values, strict=True))
    assert values == {kinds[0].id: Decimal("4.33"), kinds[1].id: Decimal("1.00")}
    assert avg.pivot.loc["Total", "Total"] == Decimal("3.50")  # (5+4+4+1)/4: the unscored row is left out
    summed = reports.run(spec(source="feedback", dimensions=["type"], measure="sum:satisfaction"), user("admin"))
    assert summed.pivot.loc["Total", "Total"] == 14


def test_money_sum_has_two_places(ctx: Any, make_customer: Any) -> None:
    cid = make_customer("rep_a")
    _order("rep_a", cid, date(2026, 5, 5), "100", "40")
    db.session.commit()
    result = reports.run(spec(source="orders", dimensions=["status"], measure="sum:paid_amount"), user("admin"))
    assert str(result.pivot.loc["Total", "Total"]) == "40.00"
    assert result.figure.as_dict()["series"][0]["values"] == ["40.00"]
