"""Importing customers: the manual's template, bad rows, duplicates, modes, scope, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.clock import to_local
from app.extensions import db
from app.models import AuditLog, Customer
from app.services.validation import credit_code_check_char
from tests.app.services.importing.conftest import MANUAL_HEADERS, write_xlsx
from tests.conftest import user_id


def credit(base: str = "91350100M000100Y4") -> str:
    return base + credit_code_check_char(base)


def manual_rows() -> list[list[Any]]:
    return [
        MANUAL_HEADERS,
        ["", "北京星河科技有限公司", "软件开发", "李娜", "138 0013 8000", "北京市海淀区中关村大街1号", "重要", "官网表单", "2024年广交会接触"],
        ["", "上海远航物流有限公司", "物流", "王强", "021-55667788", "上海市浦东新区", "B", "展会推广", ""],
        ["", "", "物流", "张三", "13900139000", "", "", "展会推广", ""],                           # blank name
        ["", "坏电话贸易公司", "批发", "赵六", "12345", "", "", "展会推广", ""],                   # bad phone
        ["", "未知行业公司", "星际旅行", "钱七", "13700137000", "", "", "展会推广", ""],            # unknown industry
        ["", "公式客户", "金融", "孙八", "13600136000", "", "", "官网表单", "=HYPERLINK(\"http://x\")"],
        ["", "北京星河科技有限公司", "软件开发", "李娜", "13800138000", "", "", "官网表单", ""],    # dup in file
        ["", "Existing Co", "金融", "Zhou", "13500135000", "", "", "官网表单", ""],                # dup in db
    ]


def test_manual_template_dry_run_then_commit(app: Any, run_job: Any, make_customer: Any, tmp_path: Path) -> None:
    make_customer("rep_a", name="Existing Co", contact_name="Zhou", contact_phone="13500135000")
    path = write_xlsx(tmp_path / "客户.xlsx", {"客户信息": manual_rows()})

    dry = run_job("rep_a", path, commit=False)
    assert dry.error is None
    assert (dry.status, dry.total_rows, dry.created, dry.rejected, dry.duplicates) == ("previewed", 8, 3, 5, 2)
    with app.app_context():
        assert db.session.scalar(select(Customer).where(Customer.name == "公式客户")) is None  # dry run saved nothing

    job = run_job("rep_a", path)
    assert job.status == "done"
    assert job.created + job.updated + job.unchanged + job.rejected == job.total_rows == 8
    assert (job.created, job.rejected, job.duplicates) == (3, 5, 2)
    with app.app_context():
        star = db.session.scalar(select(Customer).where(Customer.name == "北京星河科技有限公司"))
        assert star.contact_phone == "13800138000"  # normalised
        assert (star.industry.code, star.level.code, star.source.code) == ("65", "A", "website")
        assert star.owner_id == user_id("rep_a") and star.code.startswith("C")
        formula = db.session.scalar(select(Customer).where(Customer.name == "公式客户"))
        assert formula.note == '=HYPERLINK("http://x")'  # stored as text, never evaluated
        entries = db.session.scalars(select(AuditLog).where(AuditLog.object_type == "Customer",
                                                            AuditLog.action == "create")).all()
        imported = [e for e in entries if e.object_id in {str(star.id), str(formula.id)}]
        assert {e.source for e in imported} == {"import"} and all("import #" in e.reason for e in imported)
        assert "138****8000" in imported[0].changes or "138****8000" in imported[1].changes  # masked
        assert "13800138000" not in "".join(e.changes for e in imported)


def test_error_report_names_column_and_reason_and_reimports(app: Any, run_job: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "customers.xlsx", {"Sheet1": manual_rows()[:6]})
    job = run_job("rep_a", path)
    assert (job.created, job.rejected) == (2, 3)
    report = load_workbook(job.report_path)
    sheet = report.active
    header = [c.value for c in sheet[1]]
    assert header[:9] == MANUAL_HEADERS and "Import errors" in header[9]
    errors = {row[4].value: row[9].value for row in sheet.iter_rows(min_row=2)}
    assert "客户名称" in errors["13900139000"] and "required" in errors["13900139000"]
    assert "联系方式" in errors["12345"] and "phone" in errors["12345"]
    assert "所属行业" in errors["13700137000"] and "星际旅行" in errors["13700137000"]

    for row in sheet.iter_rows(min_row=2):  # the user fixes the three rows in Excel
        if row[1].value in (None, ""):
            row[1].value = "补名称公司"
        if row[4].value == "12345":
            row[4].value = "13312345678"
        if row[2].value == "星际旅行":
            row[2].value = "64"
    fixed = tmp_path / "fixed.xlsx"
    report.save(fixed)
    again = run_job("rep_a", fixed)
    assert (again.total_rows, again.created, again.rejected) == (3, 3, 0)


def test_gbk_csv_with_tabs_and_utf8_bom_csv(app: Any, run_job: Any, tmp_path: Path) -> None:
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("客户名称\t联系方式\t所属行业\n广州白云电子厂\t020-12345678\t电子制造\n".encode("gbk"))
    job = run_job("rep_a", gbk)
    assert (job.created, job.rejected) == (1, 0)
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffCustomer name,Phone,Industry\nAcme Ltd,+86 139 0000 1111,Automotive\n".encode())
    job = run_job("rep_a", bom)
    assert (job.created, job.rejected) == (1, 0)
    with app.app_context():
        names = set(db.session.scalars(select(Customer.name)))
        assert {"广州白云电子厂", "Acme Ltd"} <= names
        assert db.session.scalar(select(Customer.contact_phone).where(Customer.name == "Acme Ltd")) == "13900001111"


def test_second_sheet_of_a_workbook(app: Any, run_job: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "two.xlsx", {
        "说明": [["这张表是说明", ""], ["请看第二张", ""]],
        "客户": [["客户名称", "联系方式"], ["第二张表客户", "13811112222"]],
    })
    job = run_job("rep_a", path, sheet="客户")
    assert (job.sheet, job.created) == ("客户", 1)


def test_rep_cannot_update_another_reps_customer_by_code(app: Any, run_job: Any, make_customer: Any,
                                                         tmp_path: Path) -> None:
    theirs = make_customer("rep_b", name="B's customer")
    mine = make_customer("rep_a", name="A's customer")
    with app.app_context():
        codes = {pk: db.session.get(Customer, pk).code for pk in (theirs, mine)}
    path = write_xlsx(tmp_path / "upd.xlsx", {"s": [
        ["客户编号", "客户名称", "联系方式"],
        [codes[theirs], "Stolen", "13812345678"],
        [codes[mine], "Renamed", "13812345678"],
    ]})
    job = run_job("rep_a", path, mode="upsert")
    assert (job.updated, job.rejected, job.created) == (1, 1, 0)
    assert "data scope" in job.preview["error"][0]["errors"]
    with app.app_context():
        assert db.session.get(Customer, theirs).name == "B's customer"
        assert db.session.get(Customer, mine).name == "Renamed"
    manager_job = run_job("manager", path, mode="update")  # East department sees both
    assert (manager_job.updated, manager_job.rejected) == (1, 0)  # "Renamed" row is now unchanged
    assert manager_job.unchanged == 1


def test_update_by_credit_code_and_unchanged_rows(app: Any, run_job: Any, make_customer: Any, tmp_path: Path) -> None:
    make_customer("rep_a", name="Credit Co", credit_code=credit())
    path = write_xlsx(tmp_path / "c.xlsx", {"s": [
        ["统一社会信用代码", "客户名称", "联系方式", "备注"],
        [credit().lower(), "Credit Co", "13812345678", "new note"],
        [credit("91110000M000200Y4"), "Nobody", "13812345678", ""],
    ]})
    job = run_job("rep_a", path, mode="update", key="credit_code")
    assert (job.updated, job.rejected) == (1, 1)
    assert "No record" in job.preview["error"][0]["errors"]
    again = run_job("rep_a", path, mode="update", key="credit_code")
    assert (again.updated, again.unchanged) == (0, 1)


def test_create_mode_refuses_existing_code(app: Any, run_job: Any, make_customer: Any, tmp_path: Path) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        code = db.session.get(Customer, pk).code
    path = write_xlsx(tmp_path / "c.xlsx", {"s": [["客户编号", "客户名称", "联系方式"], [code, "X", "13812345678"],
                                                  ["C20990101001", "Fake", "13812345678"],
                                                  ["CUS20240501001", "Legacy code", "13812345679"]]})
    job = run_job("rep_a", path)
    assert (job.created, job.rejected) == (1, 2)
    with app.app_context():
        assert db.session.scalar(select(Customer.code).where(Customer.name == "Legacy code")) == "CUS20240501001"


def test_all_or_nothing_imports_nothing_when_a_row_is_bad(app: Any, run_job: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "a.xlsx", {"s": manual_rows()[:5]})
    job = run_job("rep_a", path, all_or_nothing=True)
    assert (job.created, job.rejected, job.total_rows) == (0, 4, 4)
    with app.app_context():
        assert db.session.scalar(select(Customer).where(Customer.name == "北京星河科技有限公司")) is None
    rows = list(load_workbook(job.report_path).active.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 4  # every row comes back, fixable in one file


def test_owner_column_only_within_scope(app: Any, run_job: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "o.xlsx", {"s": [["客户名称", "联系方式", "Owner"],
                                                  ["For B", "13812345678", "rep_b"],
                                                  ["For C", "13812345679", "rep_c"]]})
    job = run_job("manager", path)
    assert (job.created, job.rejected) == (1, 1)
    with app.app_context():
        assert db.session.scalar(select(Customer.owner_id).where(Customer.name == "For B")) == user_id("rep_b")


def test_follow_ups_with_excel_serial_and_text_dates(app: Any, run_job: Any, make_customer: Any,
                                                     tmp_path: Path) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        code = db.session.get(Customer, pk).code
    path = write_xlsx(tmp_path / "f.xlsx", {"s": [
        ["客户编号", "跟进时间", "跟进方式", "跟进内容", "下一步日期"],
        [code, 45413, "电话", "Called", "2024/5/3"],
        [code, "2024-05-01 14:30", "visit", "Visited", "2024年5月4日"],
        [code, "someday", "电话", "Bad date", ""],
    ]})
    job = run_job("rep_a", path, model="follow_up")
    assert (job.created, job.rejected) == (2, 1)
    with app.app_context():
        from app.models import FollowUp

        times = sorted((f.followed_at, f.next_step_date) for f in db.session.scalars(select(FollowUp)))
        assert [to_local(t[0]).date().isoformat() for t in times] == ["2024-05-01", "2024-05-01"]  # CRM days
        assert {t[1].isoformat() for t in times} == {"2024-05-03", "2024-05-04"}


def test_import_is_recorded_with_counts(app: Any, run_job: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "r.xlsx", {"s": manual_rows()[:3]})
    job = run_job("rep_a", path)
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "import"))
        assert json.loads(entry.detail)["created"] == job.created == 2


@pytest.mark.parametrize("overlap", ["0", "thread", "process"])  # in turn; with the writer (``importing.writer``)
def test_a_crash_mid_import_keeps_whole_chunks_and_a_rerun_does_not_double(app: Any, run_job: Any, monkeypatch: Any,
                                                                            tmp_path: Path, overlap: str) -> None:
    from app.services import customers as customer_rules

    rows = [["客户名称", "联系人姓名", "联系方式"]] + [[f"Chunky {n}", f"Li {n}", f"1390000{n:04d}"] for n in range(25)]
    path = write_xlsx(tmp_path / "crash.xlsx", {"s": rows})
    real_store, calls = customer_rules.insert_new_customers, tmp_path / "calls"  # a file: a forked writer's too

    def failing_second_chunk(new: customer_rules.NewCustomers) -> None:
        with calls.open("a") as noted:
            noted.write(f"{len(new.values)}\n")
        if len(calls.read_text().split()) == 2:
            raise OSError("disk full")
        real_store(new)

    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 10)
    monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", overlap)
    monkeypatch.setattr(customer_rules, "insert_new_customers", failing_second_chunk)
    job = run_job("rep_a", path)
    assert job.status == "failed" and "stopped unexpectedly" in job.error
    assert job.processed_rows == job.created == 10  # the first chunk is in, the rest is not
    # nothing is stored after the failed chunk: against a database server the forked writer may
    # have begun the next one beside it (``writer.SIDE_BY_SIDE``), and rolled it back
    tried = calls.read_text().split()
    with app.app_context():
        beside = overlap == "process" and db.engine.dialect.name != "sqlite"
        assert tried[:2] == ["10", "10"] and tried[2:] in (([], ["5"]) if beside else ([],))
        assert db.session.query(Customer).count() == 10

    monkeypatch.setattr(customer_rules, "insert_new_customers", real_store)
    again = run_job("rep_a", path)
    assert (again.created, again.duplicates, again.rejected) == (15, 10, 10)
    with app.app_context():
        assert db.session.query(Customer).count() == 25
