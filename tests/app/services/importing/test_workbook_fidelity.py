"""Issue 11 §2-3: numbers a spreadsheet made of text, merged cells, title rows and formulas
without a saved result — each through the real import job path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from app.services.importing import reading
from tests.app.services.importing.conftest import MANUAL_HEADERS, write_xlsx

HEADERS = ["客户名称", "所属行业", "联系人姓名", "联系方式", "统一社会信用代码", "备注"]


def _customers(app: Any) -> dict[str, Customer]:
    with app.app_context():
        found = {c.name: c for c in db.session.scalars(select(Customer))}
        for customer in found.values():
            _ = customer.industry
            db.session.expunge(customer)
        return found


def _errors(job: Any) -> list[str]:
    return [row["errors"] for row in job.preview.get("error", [])]


def test_credit_code_typed_as_a_number_is_refused_never_rounded(app: Any, run_job: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "f.xlsx", {"S": [HEADERS, ["Float Co", "", "王", "13812345678", 9.13501001200014E+17, ""],
                                                  ["Text Co", "", "李", "13812345677", "91350100M000100Y43", ""]]})
    job = run_job("rep_a", path)
    assert (job.created, job.rejected) == (1, 1)
    assert "format the column as text" in _errors(job)[0] and "统一社会信用代码" in _errors(job)[0]
    assert "Float Co" not in _customers(app)


def test_customer_code_as_a_number_and_long_numbers_in_text_fields_are_refused(app: Any, run_job: Any,
                                                                               tmp_path: Path) -> None:
    headers = ["客户编号", "客户名称", "联系方式", "客户地址"]
    path = write_xlsx(tmp_path / "c.xlsx", {"S": [headers, [1234, "Coded", "13812345678", ""],
                                                  ["", "Long", "13812345676", 1234567890123456789.0],
                                                  ["", "Short", "13812345675", 42]]})
    job = run_job("rep_a", path)
    assert (job.created, job.rejected) == (1, 2)
    assert all("format the column as text" in e for e in _errors(job))
    assert _customers(app)["Short"].address == "42"


def test_phone_through_a_float_is_the_number_and_a_fraction_is_an_error(app: Any, run_job: Any,
                                                                        tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "p.xlsx", {"S": [HEADERS, ["Cell Co", "", "王", 13812345679.0, "", ""],
                                                  ["Frac Co", "", "李", 13812345679.5, "", ""]]})
    job = run_job("rep_a", path)
    assert (job.created, job.rejected) == (1, 1)
    assert _customers(app)["Cell Co"].contact_phone == "13812345679"
    assert "fraction" in _errors(job)[0]
    csv = tmp_path / "p.csv"
    csv.write_text("客户名称,联系人姓名,联系方式\nCsv Co,王,13812345679.0\n", encoding="utf-8")
    assert run_job("rep_a", csv).created == 1
    assert _customers(app)["Csv Co"].contact_phone == "13812345679"


def test_merged_industry_is_the_industry_of_every_row_it_covers(app: Any, run_job: Any, tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADERS)
    for n in range(3):
        sheet.append([f"Merged {n}", "软件开发" if n == 0 else None, "王", f"1381234560{n}", "", ""])
    sheet.merge_cells("B2:B4")
    workbook.save(tmp_path / "m.xlsx")
    job = run_job("rep_a", tmp_path / "m.xlsx")
    assert (job.created, job.rejected) == (3, 0)
    customers = _customers(app)
    industries = {customers[f"Merged {n}"].industry.label_zh for n in range(3)}  # 软件开发 is an alias
    assert industries == {"软件和信息技术服务业"}


def test_title_date_and_blank_rows_above_the_header(app: Any, run_job: Any, tmp_path: Path) -> None:
    rows = [["客户信息导入", None, None, "2024-05-01"], [], MANUAL_HEADERS,
            ["", "Titled Co", "", "王", "13812345674", "", "", "", "note"]]
    path = write_xlsx(tmp_path / "t.xlsx", {"S": rows})
    with app.app_context():
        table = reading.read_table(path)
        assert (table.header_line, table.headers[:2], table.lines) == (3, ["客户编号", "客户名称"], [4])
        assert [line for line, _ in table.header_choices] == [1, 3, 4]
    job = run_job("rep_a", path)
    assert (job.created, job.rejected) == (1, 0)
    assert _customers(app)["Titled Co"].note == "note"


def test_a_picked_header_row_is_read(app: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "h.xlsx", {"S": [["name", "phone"], ["客户名称", "联系方式"], ["Acme", "13812345678"]]})
    with app.app_context():
        assert reading.read_table(path, header_line=2).rows == [["Acme", "13812345678"]]
        for bad in (0, 4, 21):
            try:
                reading.read_table(path, header_line=bad)
            except reading.UnreadableFile as exc:
                assert "header row" in str(exc)
            else:
                raise AssertionError(bad)


def test_formula_without_a_saved_result_is_refused_on_its_row(app: Any, run_job: Any, tmp_path: Path) -> None:
    workbook = Workbook()  # openpyxl writes formulas without a cached value, like the tools in the issue
    sheet = workbook.active
    sheet.append(HEADERS)
    sheet.append(["Link Co", "", "王", "13812345673", "", '=HYPERLINK("http://example.com","site")'])
    sheet.append(["Plain Co", "", "李", "13812345672", "", "plain"])
    workbook.save(tmp_path / "f.xlsx")
    job = run_job("rep_a", tmp_path / "f.xlsx")
    assert (job.created, job.rejected) == (1, 1)
    assert "HYPERLINK" in _errors(job)[0] and "without a saved result" in _errors(job)[0]
    assert "Link Co" not in _customers(app)


def test_formula_with_a_saved_result_keeps_it(app: Any, tmp_path: Path) -> None:
    from tests.app.services.importing.crafted import sheet_xml, xlsx

    rows = (b'<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c><c r="B1" t="inlineStr"><is><t>note</t>'
            b'</is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>A</t></is></c><c r="B2" t="str">'
            b'<f>"x"&amp;"y"</f><v>xy</v></c></row><row r="3"><c r="A3" t="inlineStr"><is><t>B</t></is></c>'
            b'<c r="B3"><f>1+1</f></c></row>')
    with app.app_context():
        table = reading.read_table(xlsx(tmp_path / "v.xlsx", sheet_xml(rows)))
    assert table.rows[0] == ["A", "xy"]
    assert table.rows[1][1] == reading.Uncached("1+1") and reading.cell_text(table.rows[1][1]) == "=1+1"
