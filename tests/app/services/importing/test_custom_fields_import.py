"""Custom fields in imports (issue 18): template columns with dropdowns, headers in either
language, cells read by the field's rule into ``custom``, refusals per row with the
field's label, required custom fields, on customers (bulk path) and a declared type (leads)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, select

from app.extensions import appbuilder, db
from app.models.customers import Customer
from app.models.sales import Lead, LeadStatusChange
from app.services import messages
from app.services.importing import columns, engine, reading, template
from tests.app.services.importing.conftest import write_xlsx

SIZES = [("large", "Large", "大型"), ("medium", "Medium", "中型"), ("small", "Small", "小型")]
NEEDS = [("price", "Price-sensitive", "价格敏感", "#f00"), ("service", "Service", "重视服务", "#0f0"),
         ("tech", "Technical", "技术要求高", "#00f")]


@pytest.fixture
def fields(make_custom_field: Any) -> None:
    make_custom_field("customer", "size", "choice", label_en="Customer size", label_zh="客户规模", choices=SIZES,
                      help_en="Head count band", help_zh="按人数划分")
    make_custom_field("customer", "years", "integer", label_en="Years of cooperation", label_zh="合作年限")
    make_custom_field("customer", "needs", "tags", label_en="Key needs", label_zh="关键需求标签", choices=NEEDS)


@pytest.fixture(autouse=True)
def _no_leads(app: Any) -> Any:
    yield
    with app.app_context():
        db.session.rollback()
        db.session.execute(delete(LeadStatusChange))
        db.session.execute(delete(Lead))
        db.session.commit()
        db.session.remove()


def _run(path: Path, model: str = "customer", commit: bool = True, mode: str = "create",
         username: str = "rep_a") -> engine.Result:
    table = reading.read_table(path)
    mapping = columns.auto_map(columns.MODELS[model], table.headers)
    user = appbuilder.sm.find_user(username=username)
    return engine.run_import(table, mapping, engine.Settings(model, mode, "code", chunk_size=2), user, commit)


def _errors(result: engine.Result, language: str = "zh") -> dict[int, str]:
    return {line: messages.render(message, language) for line, _raw, message in result.rejected_rows}


def test_template_has_a_column_per_custom_field_with_the_choice_dropdown(ctx: Any, fields: None,
                                                                          make_custom_field: Any) -> None:
    make_custom_field("customer", "budget", "decimal", label_en="Budget", label_zh="预算", required=True)
    make_custom_field("customer", "old", "text", label_en="Old", label_zh="旧字段", active=False)
    for lang, size, needs, first in (("zh", "客户规模", "关键需求标签", "大型"), ("en", "Customer size", "Key needs", "Large")):
        book = load_workbook(io.BytesIO(template.build_template(columns.CUSTOMER, lang)))
        sheet = book.worksheets[0]
        headers = [cell.value for cell in sheet[1]]
        assert size in headers and needs in headers and ("预算 *" if lang == "zh" else "Budget *") in headers
        assert not any(h.startswith(("旧字段", "Old")) for h in headers)  # inactive: not importable
        column = headers.index(size) + 1
        lists = book["lists"]
        assert [lists.cell(row=r, column=column).value for r in (1, 2, 3)] == \
            [first, "中型" if lang == "zh" else "Medium", "小型" if lang == "zh" else "Small"]
        letter = sheet.cell(row=1, column=column).column_letter
        assert any(f"{letter}2" in str(v.sqref) and "lists" in v.formula1 for v in sheet.data_validations.dataValidation)
        assert "按人数划分" in sheet.cell(row=1, column=column).comment.text if lang == "zh" else \
            "Head count band" in sheet.cell(row=1, column=column).comment.text
        tags_note = sheet.cell(row=1, column=headers.index(needs) + 1).comment.text
        assert "，" in tags_note


def test_customer_workbook_imports_custom_values_and_refuses_bad_cells_by_label(ctx: Any, fields: None,
                                                                                 tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "客户.xlsx", {"客户": [
        ["客户名称", "联系方式", "客户规模", "合作年限", "关键需求标签"],
        ["甲公司", "13812345671", "大型", "１２", "价格敏感，重视服务"],
        ["乙公司", "13812345672", "Medium", 3, "tech; price"],
        ["丙公司", "13812345673", "巨型", "2", ""],           # not a choice
        ["丁公司", "13812345674", "小型", "两年", ""],         # not a number
        ["戊公司", "13812345675", "", "", "无此标签"],          # unknown tag
    ]})
    dry = _run(path, commit=False)
    assert db.session.scalar(select(Customer).where(Customer.name == "甲公司")) is None
    result = _run(path)
    assert result.summary()["created"] == 2 and result.rejected == 3
    assert _errors(dry) == _errors(result)  # the preview promises what the commit does
    errors = _errors(result)
    assert "客户规模" in errors[4] and "巨型" in errors[4]
    assert "合作年限" in errors[5]
    assert "关键需求标签" in errors[6] and "无此标签" in errors[6]
    assert "Years of cooperation" in _errors(result, "en")[5]  # read later in another language
    stored = {c.name: c.custom for c in db.session.scalars(select(Customer))}
    assert stored["甲公司"] == {"size": "large", "years": 12, "needs": ["price", "service"]}
    assert stored["乙公司"] == {"size": "medium", "years": 3, "needs": ["tech", "price"]}


def test_english_headers_and_the_key_map_too(ctx: Any, fields: None) -> None:
    mapping = columns.auto_map(columns.CUSTOMER, ["Customer name", "Customer size", "YEARS", "关键需求标签"])
    assert mapping == {"Customer name": "name", "Customer size": "cf_size", "YEARS": "cf_years",
                       "关键需求标签": "cf_needs"}


def test_required_custom_field_missing_refuses_the_row(ctx: Any, fields: None, make_custom_field: Any,
                                                       tmp_path: Path) -> None:
    make_custom_field("customer", "budget", "decimal", label_en="Budget", label_zh="预算", required=True)
    assert "cf_budget" in {f.name for f in columns.missing_required(columns.CUSTOMER, {"客户名称": "name"})}
    path = write_xlsx(tmp_path / "c.xlsx", {"客户": [
        ["客户名称", "联系方式", "预算"],
        ["有预算", "13812345676", "1200.5"],
        ["无预算", "13812345677", ""],
    ]})
    result = _run(path)
    assert result.summary()["created"] == 1 and result.rejected == 1
    assert "预算" in _errors(result)[3]
    assert db.session.scalar(select(Customer.custom).where(Customer.name == "有预算")) == {"budget": "1200.50"}


def test_update_rows_change_custom_values_and_keep_other_fields(ctx: Any, fields: None, tmp_path: Path) -> None:
    first = write_xlsx(tmp_path / "a.xlsx", {"客户": [["客户名称", "联系方式", "客户规模", "合作年限"],
                                                      ["甲公司", "13812345671", "大型", "5"]]})
    assert _run(first).summary()["created"] == 1
    code = db.session.scalar(select(Customer.code).where(Customer.name == "甲公司"))
    again = write_xlsx(tmp_path / "b.xlsx", {"客户": [["客户编号", "客户名称", "联系方式", "客户规模"],
                                                      [code, "甲公司", "13812345671", "small"],
                                                      [code + "X", "x", "13812345672", "坏"]]})
    result = _run(again, mode="upsert")
    assert result.summary()["updated"] == 1, _errors(result)
    db.session.expire_all()
    assert db.session.scalar(select(Customer.custom).where(Customer.code == code)) == {"size": "small", "years": 5}


def test_declared_type_imports_custom_fields_through_its_save(ctx: Any, make_custom_field: Any, tmp_path: Path) -> None:
    make_custom_field("lead", "size", "choice", label_en="Customer size", label_zh="客户规模", choices=SIZES)
    make_custom_field("lead", "tags", "tags", label_en="Key needs", label_zh="关键需求标签", choices=NEEDS)
    make_custom_field("lead", "since", "date", label_en="First contact", label_zh="首次接触", required=True)
    path = write_xlsx(tmp_path / "线索.xlsx", {"线索": [
        ["公司名称", "电话", "客户规模", "关键需求标签", "首次接触"],
        ["线索甲", "13812345671", "大型", "价格敏感、技术要求高", "2024/5/1"],
        ["线索乙", "13812345672", "巨型", "", "2024-05-02"],
        ["线索丙", "13812345673", "小型", "", ""],
    ]})
    dry = _run(path, model="lead", commit=False, username="manager")
    result = _run(path, model="lead", username="manager")
    assert result.summary()["created"] == 1 and result.rejected == 2, _errors(result)
    assert _errors(dry) == _errors(result)
    errors = _errors(result)
    assert "客户规模" in errors[3] and "首次接触" in errors[4]
    lead = db.session.scalar(select(Lead).where(Lead.company == "线索甲"))
    assert lead.custom == {"size": "large", "tags": ["price", "tech"], "since": "2024-05-01"}


def test_follow_ups_carry_custom_values_and_people_by_name(ctx: Any, make_custom_field: Any, make_customer: Any,
                                                           tmp_path: Path) -> None:
    from app.models.customers import FollowUp
    from tests.conftest import user_id

    make_custom_field("follow_up", "mood", "choice", label_en="Mood", label_zh="客户态度",
                      choices=[("warm", "Warm", "积极"), ("cold", "Cold", "冷淡")])
    make_custom_field("follow_up", "helper", "user", label_en="Helper", label_zh="协助人")
    code = db.session.get(Customer, make_customer("rep_a")).code
    path = write_xlsx(tmp_path / "跟进.xlsx", {"跟进": [
        ["客户编号", "跟进时间", "跟进方式", "跟进内容", "下一步计划", "客户态度", "协助人"],
        [code, "2024-05-01 10:00", "电话", "谈了价格", "报价", "积极", "rep_b"],
        [code, "2024-05-02 10:00", "电话", "再谈", "报价", "热情", ""],
        [code, "2024-05-03 10:00", "电话", "三谈", "报价", "", "nobody"],
    ]})
    result = _run(path, model="follow_up")
    assert result.summary()["created"] == 1 and result.rejected == 2, _errors(result)
    errors = _errors(result)
    assert "客户态度" in errors[3] and "协助人" in errors[4]
    stored = db.session.scalar(select(FollowUp.custom).where(FollowUp.content == "谈了价格"))
    assert stored == {"mood": "warm", "helper": user_id("rep_b")}


def test_the_import_screens_map_custom_columns_and_report_their_errors(app: Any, client: Any, auth: Any,
                                                                       fields: None, tmp_path: Path) -> None:
    from tests.views.test_imports import _job_id, _mapping_form, _upload

    auth.login("rep_a")
    template_book = load_workbook(io.BytesIO(client.get("/imports/template/customer").data))
    assert "Customer size" in [c.value for c in template_book.worksheets[0][1]]
    path = write_xlsx(tmp_path / "客户.xlsx", {"客户": [
        ["客户名称", "联系方式", "客户规模", "关键需求标签"],
        ["甲公司", "13812345671", "大型", "价格敏感|重视服务"],
        ["乙公司", "13812345672", "巨型", ""],
    ]})
    job_id = _job_id(_upload(client, path))
    page = client.get(f"/imports/{job_id}/mapping")
    assert page.status_code == 200
    form = _mapping_form(page.get_data(as_text=True))
    assert list(form.values()) == ["name", "contact_phone", "cf_size", "cf_needs"]
    response = client.post(f"/imports/{job_id}/mapping", data={**form, "mode": "create", "key": "code"})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1 to create" in page and "1 rejected" in page
    response = client.post(f"/imports/{job_id}/commit")
    assert "1 created" in client.get(response.headers["Location"]).get_data(as_text=True)
    rows = list(load_workbook(io.BytesIO(client.get(f"/imports/{job_id}/report").data)).active.iter_rows(values_only=True))
    assert rows[1][0] == "乙公司" and "Customer size" in rows[1][-1] and "巨型" in rows[1][-1]
    with app.app_context():
        assert db.session.scalar(select(Customer.custom).where(Customer.name == "甲公司")) == \
            {"size": "large", "needs": ["price", "service"]}
