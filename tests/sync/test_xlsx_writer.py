"""Issue 12: the xlsx sync writes only its own worksheet's XML part (``sync.xlsx_patch``) instead
of loading and saving the whole workbook with openpyxl (11 s for a 50,000-row sheet). What a
person sees must not change: other sheets and every other part of the file stay byte for byte,
written cells keep their style, dates are real dates, text that looks like a formula stays
text, rows deleted move the rows and merges below them, and the file stays a valid workbook
for openpyxl and calamine (rows and cells in ascending order, ``dimension`` covering them).
A sheet the patch cannot rewrite safely goes through openpyxl as before; the fingerprint is
still checked before the write and just before the rename."""

from __future__ import annotations

import re
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Font, PatternFill
from python_calamine import CalamineWorkbook

from sync import backends, xlsx_patch
from sync.backends import SheetChanged, SheetWrite, XlsxBackend
from tests.sync.conftest import HEADERS, SHEET

YELLOW = PatternFill("solid", fgColor="FFFF00")
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def _book(path: Path, rows: int = 6) -> None:
    """Our sheet (header + ``rows`` customers, 备注 of row 3 filled yellow, column B wide) and a
    formatted notes sheet (bold, yellow, a number format) that the sync must not touch."""
    book = Workbook()
    sheet = book.active
    sheet.title = SHEET
    sheet.append(HEADERS)
    for n in range(rows):
        sheet.append([f"C{n:04d}", f"客户{n}", f"联系人{n}", f"1380000{n:04d}", "批发业", f"备注{n}"])
    sheet["F3"].fill = YELLOW
    sheet.column_dimensions["B"].width = 40
    notes = book.create_sheet("说明")
    notes["A1"] = "keep me"
    notes["A1"].font = Font(bold=True)
    notes["B2"] = 0.25
    notes["B2"].number_format = "0.00%"
    notes["B2"].fill = YELLOW
    book.save(path)


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as book:
        return {name: book.read(name) for name in book.namelist()}


def _calamine(path: Path, sheet: str = SHEET) -> list[list[Any]]:
    with CalamineWorkbook.from_path(str(path)) as book:
        return book.get_sheet_by_name(sheet).to_python(skip_empty_area=False)


def _sheet_xml_in_order(path: Path) -> ElementTree.Element:
    """Our worksheet part, checked against the ordering rules of ECMA-376 (row numbers and the
    cells of each row ascending, each cell's reference on its row) and the dimension."""
    with zipfile.ZipFile(path) as book:
        root = ElementTree.fromstring(book.read("xl/worksheets/sheet1.xml"))
    numbers = [int(row.get("r")) for row in root.iterfind("m:sheetData/m:row", NS)]
    assert numbers == sorted(set(numbers))
    last_column = 0
    for row in root.iterfind("m:sheetData/m:row", NS):
        refs = [cell.get("r") for cell in row.iterfind("m:c", NS)]
        columns = [xlsx_patch.column_index_from_string(ref.rstrip("0123456789")) for ref in refs]
        assert columns == sorted(set(columns)) and all(ref.endswith(row.get("r")) for ref in refs)
        last_column = max([last_column, *columns])
    dimension = root.find("m:dimension", NS).get("ref")
    assert dimension == f"A1:{xlsx_patch.get_column_letter(last_column)}{numbers[-1]}"
    return root


def _no_openpyxl_load(monkeypatch: Any) -> None:
    def refuse(path: Any) -> Any:
        raise AssertionError("the whole workbook was loaded with openpyxl")

    monkeypatch.setattr(backends, "load_workbook", refuse)


def test_a_write_rewrites_only_our_sheet_and_keeps_every_other_part(app: Any, tmp_path: Path,
                                                                    monkeypatch: Any) -> None:
    path = tmp_path / "customers.xlsx"
    _book(path)
    before = _members(path)
    _no_openpyxl_load(monkeypatch)  # the cost this issue removes: openpyxl load + save of every sheet
    with app.app_context():
        backend = XlsxBackend(path, SHEET)
        data = backend.read()
        change = SheetWrite(cells={(1, 5): "CRM的备注", (3, 1): "改名"}, headers={6: "同步状态"},
                            append=[["C9999", "新客户", "王五", "13911112222", "物流", "新"]])
        backend.write(change, data.token)
    assert backend.writer == "patch" and backend.calls["write"] == 1
    after = _members(path)
    assert list(after) == list(before)
    assert {name for name in after if after[name] != before[name]} == {"xl/worksheets/sheet1.xml"}
    rows = _calamine(path)
    assert rows[0] == [*HEADERS, "同步状态"]
    assert rows[2][5] == "CRM的备注" and rows[4][1] == "改名" and rows[3][5] == "备注2"
    assert rows[7] == ["C9999", "新客户", "王五", "13911112222", "物流", "新", ""]
    book = load_workbook(path)
    assert book[SHEET]["F3"].fill.fgColor.rgb == "00FFFF00" and book[SHEET]["F3"].value == "CRM的备注"
    assert book[SHEET].column_dimensions["B"].width == 40
    assert book["说明"]["A1"].font.bold and book["说明"]["B2"].number_format == "0.00%"
    _sheet_xml_in_order(path)


def test_formula_text_stays_text_and_dates_are_dates_with_their_cells_style(app: Any, tmp_path: Path) -> None:
    path = tmp_path / "customers.xlsx"
    _book(path)
    with app.app_context():
        backend = XlsxBackend(path, SHEET)
        data = backend.read()
        # 13:09 UTC is 21:09 in Asia/Shanghai (CRM_TIMEZONE's default): a cell holds wall time
        change = SheetWrite(cells={(1, 5): date(2024, 5, 1), (2, 5): datetime(2024, 5, 1, 13, 9, tzinfo=UTC),
                                   (0, 1): "=HYPERLINK(\"http://x\")", (0, 2): "a & <b> \"c\"", (0, 3): ""})
        backend.write(change, data.token)
    assert backend.writer == "patch"
    sheet = load_workbook(path)[SHEET]
    assert sheet["F3"].value == datetime(2024, 5, 1) and sheet["F3"].number_format == "yyyy-mm-dd"
    assert sheet["F3"].fill.fgColor.rgb == "00FFFF00"  # the yellow 备注 cell stays yellow
    assert sheet["F4"].value == datetime(2024, 5, 1, 21, 9) and sheet["F4"].number_format == "yyyy-mm-dd hh:mm"
    assert sheet["B2"].value == "=HYPERLINK(\"http://x\")" and sheet["B2"].data_type == "s"
    assert sheet["C2"].value == "a & <b> \"c\"" and sheet["D2"].value is None
    rows = _calamine(path)
    assert rows[2][5] == date(2024, 5, 1) and rows[3][5] == datetime(2024, 5, 1, 21, 9)
    assert rows[1][1] == "=HYPERLINK(\"http://x\")"
    _sheet_xml_in_order(path)


def test_deleted_rows_move_the_rows_and_merges_below_them(app: Any, tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "customers.xlsx"
    _book(path, rows=8)
    book = load_workbook(path)
    book[SHEET].merge_cells("E6:E8")  # 所属行业 of customers 4-6 (sheet rows 6-8)
    book[SHEET]["F9"].fill = YELLOW
    book.save(path)
    _no_openpyxl_load(monkeypatch)
    with app.app_context():
        backend = XlsxBackend(path, SHEET)
        data = backend.read()
        backend.write(SheetWrite(delete=[0, 2], cells={(7, 1): "最后一行"}), data.token)
    assert backend.writer == "patch"
    rows = _calamine(path)
    assert [row[0] for row in rows[1:]] == ["C0001", "C0003", "C0004", "C0005", "C0006", "C0007"]
    assert rows[-1][1] == "最后一行"
    monkeypatch.undo()
    sheet = load_workbook(path)[SHEET]
    assert [str(r) for r in sheet.merged_cells.ranges] == ["E4:E6"]  # moved up with its rows
    assert sheet["F7"].fill.fgColor.rgb == "00FFFF00"  # the style moved with its row
    _sheet_xml_in_order(path)


def test_a_merge_the_change_touches_is_undone_and_filled(app: Any, tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "customers.xlsx"
    _book(path)
    book = load_workbook(path)
    book[SHEET].merge_cells("E2:E4")
    book.save(path)
    _no_openpyxl_load(monkeypatch)
    with app.app_context():
        backend = XlsxBackend(path, SHEET)
        data = backend.read()
        backend.write(SheetWrite(cells={(1, 4): "零售业"}), data.token)
    assert backend.writer == "patch"
    assert [row[4] for row in _calamine(path)[1:4]] == ["批发业", "零售业", "批发业"]
    monkeypatch.undo()
    assert not load_workbook(path)[SHEET].merged_cells.ranges


def test_a_sheet_the_patch_cannot_move_goes_through_openpyxl(app: Any, tmp_path: Path) -> None:
    """Conditional formats name rows: deleting rows there is left to openpyxl, as before."""
    path = tmp_path / "customers.xlsx"
    _book(path)
    book = load_workbook(path)
    book[SHEET].conditional_formatting.add("F2:F7", CellIsRule(operator="equal", formula=['"x"'], fill=YELLOW))
    book.save(path)
    with app.app_context():
        backend = XlsxBackend(path, SHEET)
        data = backend.read()
        backend.write(SheetWrite(delete=[0]), data.token)
    assert backend.writer == "openpyxl"
    assert [row[0] for row in _calamine(path)[1:]] == ["C0001", "C0002", "C0003", "C0004", "C0005"]


def test_a_colleague_saving_while_the_patch_is_built_is_not_overwritten(app: Any, tmp_path: Path,
                                                                         monkeypatch: Any) -> None:
    """The second fingerprint, just before the rename, also guards the patch writer."""
    path = tmp_path / "customers.xlsx"
    _book(path)
    real_patch = xlsx_patch.patch

    def patch_then_colleague_saves(*args: Any) -> None:
        real_patch(*args)
        book = load_workbook(path)
        book[SHEET]["B2"] = "同事改名"
        book.save(path)

    monkeypatch.setattr(xlsx_patch, "patch", patch_then_colleague_saves)
    with app.app_context():
        backend = XlsxBackend(path, SHEET)
        data = backend.read()
        with pytest.raises(SheetChanged):
            backend.write(SheetWrite(cells={(0, 1): "CRM改名"}), data.token)
    assert _calamine(path)[1][1] == "同事改名"
    assert backend.calls["write"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["customers.xlsx"]  # no temp file left behind


def test_rows_appended_onto_formatted_empty_rows_keep_their_format(app: Any, tmp_path: Path,
                                                                    monkeypatch: Any) -> None:
    """Rows a person formatted below the table (no values yet) take the appended rows, as the
    openpyxl writer did: the new values go into those rows, in order, with their fill."""
    path = tmp_path / "customers.xlsx"
    _book(path, rows=2)
    book = load_workbook(path)
    for column in range(1, 7):
        book[SHEET].cell(row=4, column=column).fill = YELLOW
    book[SHEET]["A6"].fill = YELLOW
    book.save(path)
    _no_openpyxl_load(monkeypatch)
    with app.app_context():
        backend = XlsxBackend(path, SHEET)
        data = backend.read()
        backend.write(SheetWrite(append=[["C8000", "甲"], ["C8001", "乙"], ["C8002", "丙"]]), data.token)
    assert backend.writer == "patch"
    assert [row[:2] for row in _calamine(path)[3:6]] == [["C8000", "甲"], ["C8001", "乙"], ["C8002", "丙"]]
    monkeypatch.undo()
    sheet = load_workbook(path)[SHEET]
    assert sheet["A4"].fill.fgColor.rgb == "00FFFF00" and sheet["F4"].fill.fgColor.rgb == "00FFFF00"
    assert sheet["A6"].fill.fgColor.rgb == "00FFFF00" and sheet["A6"].value == "C8002"
    _sheet_xml_in_order(path)


def test_a_sheet_whose_rows_have_no_numbers_goes_through_openpyxl(app: Any, tmp_path: Path) -> None:
    """``r`` is optional on rows and cells (some tools leave it out): rows would be guessed, so
    the patch refuses and openpyxl, which counts them, writes the file."""
    path = tmp_path / "customers.xlsx"
    _book(path)
    with zipfile.ZipFile(path) as book:
        members = {info: book.read(info) for info in book.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        for info, data in members.items():
            if info.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<row r="\d+"', b"<row", data)
            book.writestr(info, data)
    with app.app_context():
        backend = XlsxBackend(path, SHEET)
        data = backend.read()
        backend.write(SheetWrite(cells={(0, 1): "改名"}), data.token)
    assert backend.writer == "openpyxl"
    assert _calamine(path)[1][:2] == ["C0000", "改名"]


def test_a_row_holding_a_formula_goes_through_openpyxl(app: Any, tmp_path: Path) -> None:
    """Overwriting or moving a formula cell would leave Excel's calculation chain naming a cell
    without one: rows with formulas the change touches are left to openpyxl, as before."""
    path = tmp_path / "customers.xlsx"
    _book(path)
    book = load_workbook(path)
    book[SHEET]["G3"] = "=LEN(B3)"
    book.save(path)
    with app.app_context():
        backend = XlsxBackend(path, SHEET)
        data = backend.read()
        backend.write(SheetWrite(cells={(1, 5): "新备注"}), data.token)
    assert backend.writer == "openpyxl"
    sheet = load_workbook(path)[SHEET]
    assert sheet["F3"].value == "新备注" and sheet["G3"].value == "=LEN(B3)"
