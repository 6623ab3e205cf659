"""Custom fields in exports (issue 18): a column per active custom field, labelled in the
reader's language, values as text (choice labels, 是/否, user names), masked fields masked
unless unmasked under the reveal rule; CSV and xlsx."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from flask import g
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models.customers import Customer
from app.security.step_up import StepUpRequired
from app.services import exporting
from tests.conftest import user_id

SIZES = [("large", "Large", "大型"), ("small", "Small", "小型")]
NEEDS = [("price", "Price-sensitive", "价格敏感"), ("service", "Service", "重视服务")]


@pytest.fixture
def customer(make_custom_field: Any, make_customer: Any) -> int:
    make_custom_field("customer", "size", "choice", label_en="Customer size", label_zh="客户规模", choices=SIZES)
    make_custom_field("customer", "needs", "tags", label_en="Key needs", label_zh="关键需求标签", choices=NEEDS)
    make_custom_field("customer", "vip", "boolean", label_en="VIP", label_zh="重点客户")
    make_custom_field("customer", "mobile", "text", label_en="Private mobile", label_zh="私人手机", masked=True)
    make_custom_field("customer", "keeper", "user", label_en="Keeper", label_zh="维护人")
    make_custom_field("customer", "gone", "text", label_en="Gone", label_zh="停用字段", active=False)
    return make_customer("rep_a", custom={"size": "large", "needs": ["price", "service"], "vip": True,
                                          "mobile": "13912345678", "keeper": user_id("rep_b"), "gone": "x"})


def _table(unmasked: frozenset[str] = frozenset(), lang: str = "zh") -> tuple[list[str], list[list[Any]]]:
    headers, cells = exporting.custom_columns(Customer, unmasked, lang)
    rows = [[item.name, *cells(item)] for item in db.session.scalars(select(Customer))]
    return ["客户名称", *headers], rows


def test_csv_has_a_column_per_active_custom_field_with_labels_and_masked_value(ctx: Any, customer: int,
                                                                                tmp_path: Path) -> None:
    header, rows = _table()
    path = tmp_path / "c.csv"
    exporting.write_file(path, "csv", header, rows)
    read = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert read[0] == ["客户名称", "客户规模", "关键需求标签", "重点客户", "私人手机", "维护人"]
    assert read[1][1:] == ["大型", "价格敏感, 重视服务", "是", "139****5678", "rep_b"]


def test_xlsx_in_english_and_unmasked_only_when_asked(ctx: Any, customer: int, tmp_path: Path) -> None:
    header, rows = _table(exporting.masked_custom_names(Customer), "en")
    path = tmp_path / "c.xlsx"
    exporting.write_file(path, "xlsx", header, rows)
    sheet = load_workbook(path).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][1:] == ["Customer size", "Key needs", "VIP", "Private mobile", "Keeper"]
    assert values[1][1:] == ["Large", "Price-sensitive, Service", "Yes", "13912345678", "rep_b"]


def test_a_rep_may_not_export_masked_custom_fields_in_full(app: Any, ctx: Any, customer: int) -> None:
    rep = appbuilder.sm.find_user(username="rep_a")
    names = exporting.masked_custom_names(Customer)
    assert names == frozenset({"cf_mobile"})
    with app.test_request_context("/customers/export/csv?unmasked=1"):
        g.user = rep
        with pytest.raises(StepUpRequired):  # full values: the phone's reveal rule and a step-up
            exporting.authorise(rep, "Customer", names)
        exporting.authorise(rep, "Customer")  # the masked export stays allowed
    header, rows = _table()
    assert rows[0][header.index("私人手机")] == "139****5678"
    assert "13912345678" not in repr(rows)


def test_no_query_per_row(ctx: Any, customer: int, make_customer: Any) -> None:
    from sqlalchemy import event

    for n in range(5):
        make_customer("rep_b", name=f"more {n}", custom={"keeper": user_id("rep_a"), "size": "small"})
    items = db.session.scalars(select(Customer)).all()
    headers, cells = exporting.custom_columns(Customer, lang="zh")
    statements: list[str] = []
    engine = db.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        rendered = [cells(item) for item in items]
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert statements == [] and len(rendered) == 6
    assert sum(row[headers.index("维护人")] == "rep_a" for row in rendered) == 5
