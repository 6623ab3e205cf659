"""Every workbook and CSV read is bounded before anything is materialised (issue 10, "Files and
paths"): the attack files are built here, small on disk. Reads that would try to allocate the
impossible run in a child process with capped memory (on unbounded code the child dies, and
the test fails without taking the test run with it)."""

from __future__ import annotations

import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from app.extensions import db
from app.models import Customer, TransferJob, TransferSchedule
from app.services import schedules
from app.services.importing import bounds, reading
from app.services.importing.reading import UnreadableFile, read_table, sheet_names
from sync.backends import SheetUnavailable, XlsxBackend
from tests.app.services.importing.conftest import write_xlsx
from tests.app.services.importing.crafted import ods, ods_cell, read_in_child, sheet_xml, xlsx
from tests.conftest import user_id


def _cell(ref: bytes, value: int = 1) -> bytes:
    return b'<c r="' + ref + b'"><v>%d</v></c>' % value


def _limits(app: Any, monkeypatch: pytest.MonkeyPatch, **values: int) -> None:
    for key, value in values.items():
        monkeypatch.setitem(app.config, key, value)


# --- the grid: positions are read from the cells, never trusted from <dimension> ---------------

def test_a_far_cell_behind_a_lying_dimension_is_refused_before_calamine(tmp_path: Path) -> None:
    """The 1.6 KB file that killed the server: A1 and XFD1048576, <dimension ref="A1"/>."""
    path = xlsx(tmp_path / "far.xlsx", sheet_xml(b'<row r="1">' + _cell(b"A1") + b'</row><row r="1048576">'
                                                 + _cell(b"XFD1048576") + b"</row>",
                                                 dimension=b'<dimension ref="A1"/>'))
    assert path.stat().st_size < 2000
    code, lines = read_in_child(path)
    assert code == 0, lines
    assert lines[0].startswith("REFUSED") and "1,048,576" in lines[0]
    assert int(lines[-1].split()[1]) < 400  # MiB: refused from the XML, nothing allocated


HIDDEN_POSITIONS = {
    # each puts a cell at column XFD (16,384) or row 1,048,576 in a way a quick look would miss
    "second r attribute wins": b'<row r="1"><c r="A1"><v>1</v></c><c r="B1" r="XFD1"><v>2</v></c></row>',
    "r without spaces": b'<row r="1"><c r="A1"><v>1</v></c><c r="B1"r="XFD1"><v>2</v></c></row>',
    "'>' inside another value": b'<row r="1"><c r="A1"><v>1</v></c><c s=">" r="XFD1"><v>2</v></c></row>',
    "namespace prefix": b'<row r="1"><c r="A1"><v>1</v></c><x:c r="XFD1"><x:v>2</x:v></x:c></row>',
    "lower-case reference": b'<row r="1"><c r="A1"><v>1</v></c><c r="xfd1"><v>2</v></c></row>',
    "cells without r, right of a far one": b'<row r="1"><c r="XFA1"/>' + b"<c><v>1</v></c>" * 10 + b"</row>",
    "cell row below its row": b'<row r="1"><c r="A1"><v>1</v></c><c r="B1048576"><v>2</v></c></row>',
    "rows without r after a far row": b'<row r="1048575"/><row><c><v>1</v></c><c><v>2</v></c></row>',
    "single quotes and spaces": b"<row r='1'><c r='A1'><v>1</v></c><c  r = 'XFD1048576' ><v>2</v></c></row>",
    "r hidden in a value, real r far": b'<row r="1"><c r="A1"><v>1</v></c><c t="n r=\'A2\'" r="XFD9"><v>2</v></c>'
                                       b"</row>",
    "leading zeros": b'<row r="1"><c r="A1"><v>1</v></c><c r="A000001048576"><v>2</v></c></row>',
    "a '/' inside the element name": b'<row r="1"><c r="A1"><v>1</v></c><x/:c r="XFD1"><v>2</v></x/:c></row>',
}


def test_cell_positions_hidden_from_a_quick_look_still_bound_the_grid(tmp_path: Path) -> None:
    paths = []
    for number, rows in enumerate(HIDDEN_POSITIONS.values()):
        head = b'<worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"' if b":c" in rows \
            else b""
        part = sheet_xml(rows) if not head else sheet_xml(rows).replace(b"<worksheet ", head + b" ", 1)
        paths.append(xlsx(tmp_path / f"hidden{number}.xlsx", part))
    code, lines = read_in_child(*paths)
    assert code == 0, lines
    for name, line in zip(HIDDEN_POSITIONS, lines, strict=False):
        assert line.startswith("REFUSED") and ("more than 256 columns" in line or "more than 200,000 rows" in line), \
            (name, line)


def test_the_fast_check_covers_what_spreadsheet_programs_write(app: Any, ctx: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """openpyxl's (and Excel's) cell shape is proved in one pass, without the tag-by-tag replay."""
    rows = [["客户名称", "联系方式", "备注"]] + [[f"Co {n}", f"139{n:08d}", None if n % 3 else "x"] for n in range(500)]
    path = write_xlsx(tmp_path / "plain.xlsx", {"客户": rows})
    monkeypatch.setattr(bounds, "_exact_grid", _fail)
    table = read_table(path)
    assert len(table.rows) == 500 and table.rows[1][:2] == ["Co 1", "13900000001"] and table.sheets == ["客户"]


def _fail(*args: Any) -> None:
    raise AssertionError("the exact pass ran on a plain workbook")


def test_cells_without_r_are_read_where_calamine_puts_them(ctx: Any, tmp_path: Path) -> None:
    """A legitimate writer may leave out r: the exact replay measures such a sheet, which is read."""
    rows = ('<row><c t="inlineStr"><is><t>客户名称</t></is></c><c t="inlineStr"><is><t>联系方式</t></is></c></row>'
            '<row><c t="inlineStr"><is><t>Acme</t></is></c><c><v>13812345678</v></c></row>').encode()
    table = read_table(xlsx(tmp_path / "no-r.xlsx", sheet_xml(rows)))
    assert table.headers == ["客户名称", "联系方式"] and table.rows == [["Acme", 13812345678.0]]


def test_too_many_cell_tags_at_one_position_are_refused(app: Any, ctx: Any, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _limits(app, monkeypatch, CRM_IMPORT_MAX_CELLS=1000)
    path = xlsx(tmp_path / "same.xlsx", sheet_xml(b'<row r="1">' + _cell(b"A1") * 5000 + b"</row>"))
    with pytest.raises(UnreadableFile, match="more than 1,000 cells"):
        read_table(path)


def test_rows_columns_and_cells_follow_the_configuration(app: Any, ctx: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [[f"h{c}" for c in range(6)]] + [[n] * 6 for n in range(30)]
    path = write_xlsx(tmp_path / "grid.xlsx", {"s": rows})
    assert len(read_table(path).rows) == 30
    _limits(app, monkeypatch, CRM_IMPORT_MAX_ROWS=20)
    with pytest.raises(UnreadableFile, match="more than 20 rows"):
        read_table(path)
    _limits(app, monkeypatch, CRM_IMPORT_MAX_ROWS=100, CRM_IMPORT_MAX_COLUMNS=5)
    with pytest.raises(UnreadableFile, match="more than 5 columns"):
        read_table(path)
    _limits(app, monkeypatch, CRM_IMPORT_MAX_COLUMNS=10, CRM_IMPORT_MAX_CELLS=100)
    with pytest.raises(UnreadableFile, match="31 rows x 6 columns"):
        sheet_names(path)  # opening a workbook is bounded too (calamine reads shared strings then)


# --- the zip ---------------------------------------------------------------------------------

def _bomb(path: Path, megabytes: int) -> Path:
    """A sheet of ``megabytes`` MB of repeated rows, deflated to a few hundred KB."""
    row = b'<row><c t="inlineStr"><is><t>' + b"x" * 1000 + b"</t></is></c></row>"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("xl/workbook.xml", b"<workbook/>")
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as part:
            part.write(b"<worksheet><sheetData>")
            for _ in range(megabytes * 1000):
                part.write(row)
            part.write(b"</sheetData></worksheet>")
    return path


def test_a_zip_bomb_is_refused_by_its_declared_size_and_ratio(app: Any, ctx: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = _bomb(tmp_path / "bomb.xlsx", 40)
    assert path.stat().st_size < 500_000
    _limits(app, monkeypatch, CRM_WORKBOOK_MAX_UNZIPPED_BYTES=8_000_000)
    tracemalloc.start()
    with pytest.raises(UnreadableFile, match="unpacks to more than 8 MB"):
        read_table(path)
    assert tracemalloc.get_traced_memory()[1] < 20_000_000  # refused before inflating
    tracemalloc.stop()
    _limits(app, monkeypatch, CRM_WORKBOOK_MAX_UNZIPPED_BYTES=100_000_000)
    with pytest.raises(UnreadableFile, match="compressed more than 200 times"):
        read_table(path)


def test_the_issue_zip_bomb_is_refused_at_the_default_limits(tmp_path: Path) -> None:
    """A few hundred KB holding 300 MB of sheet XML (the issue's had 933 MB in 3.8 MB)."""
    path = _bomb(tmp_path / "bomb.xlsx", 300)
    assert path.stat().st_size < 2_000_000
    code, lines = read_in_child(path)
    assert code == 0, lines
    assert lines[0].startswith("REFUSED") and "unpacks to more than 268 MB" in lines[0]
    assert int(lines[-1].split()[1]) < 400  # MiB


def _lie_about_size(path: Path, member: str, size: int) -> None:
    """Rewrite ``member``'s declared size (and CRC, to match the first ``size`` bytes) in both
    headers: a reader that trusts the declaration sees a small harmless part."""
    with zipfile.ZipFile(path) as book:
        info = book.getinfo(member)
        crc = zlib.crc32(book.read(member)[:size])
    data = bytearray(path.read_bytes())
    local = info.header_offset
    struct.pack_into("<I", data, local + 14, crc)
    struct.pack_into("<I", data, local + 22, size)
    central = bytes(data).find(b"PK\x01\x02", bytes(data).find(b"PK\x01\x02"))
    while central >= 0:
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + name_length].decode() == member:
            struct.pack_into("<I", data, central + 16, crc)
            struct.pack_into("<I", data, central + 24, size)
        central = bytes(data).find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def test_a_part_that_lies_about_its_size_is_never_read_past_it(tmp_path: Path) -> None:
    head = b'<row r="1">' + _cell(b"A1") + _cell(b"B1") + b"</row>"
    path = xlsx(tmp_path / "liar.xlsx", sheet_xml(head + b'<row r="1048576">' + _cell(b"XFD1048576") + b"</row>"))
    _lie_about_size(path, "xl/worksheets/sheet1.xml", 200)
    code, lines = read_in_child(path)
    assert code == 0, lines
    assert lines[0].startswith("REFUSED")  # calamine reads the checked copy: 200 bytes of broken XML


def test_a_zip_with_a_part_stored_twice_is_refused(ctx: Any, tmp_path: Path) -> None:
    path = xlsx(tmp_path / "twice.xlsx", sheet_xml(b'<row r="1">' + _cell(b"A1") + b"</row>"))
    with zipfile.ZipFile(path, "a") as book, pytest.warns(UserWarning):
        book.writestr("xl/worksheets/sheet1.xml", sheet_xml(b'<row r="9">' + _cell(b"XFD9") + b"</row>"))
    with pytest.raises(UnreadableFile, match="stored twice"):
        read_table(path)


def test_a_file_that_is_not_a_zip_is_a_message(ctx: Any, tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0 an old .xls renamed")
    with pytest.raises(UnreadableFile, match="not a readable workbook"):
        read_table(path)


# --- the XML ---------------------------------------------------------------------------------

LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
          b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]>')
XXE = b'<?xml version="1.0"?><!-- harmless --><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'


@pytest.mark.parametrize("where", ["sheet", "shared strings", "xxe"])
def test_a_doctype_or_entity_is_refused_with_a_message(ctx: Any, tmp_path: Path, where: str) -> None:
    rows = b'<row r="1"><c r="A1" t="inlineStr"><is><t>&lol3;</t></is></c><c r="B1"><v>1</v></c></row>'
    shared = None
    if where == "sheet":
        part = sheet_xml(rows).replace(b'<?xml version="1.0" encoding="UTF-8"?>', LAUGHS)
    elif where == "xxe":
        part = sheet_xml(rows.replace(b"&lol3;", b"&e;")).replace(b'<?xml version="1.0" encoding="UTF-8"?>', XXE)
    else:
        part = sheet_xml(b'<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1"><v>1</v></c></row>')
        shared = LAUGHS + b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>&lol3;' \
                          b"</t></si></sst>"
    path = xlsx(tmp_path / "entities.xlsx", part, shared=shared)
    with pytest.raises(UnreadableFile, match="document type declaration"):
        read_table(path)


# --- ODS -------------------------------------------------------------------------------------

def test_ods_repeated_rows_and_columns_are_counted_before_calamine(tmp_path: Path) -> None:
    bomb = ods(tmp_path / "bomb.ods", '<table:table-row table:number-rows-repeated="1000000"><table:table-cell '
                                      'table:number-columns-repeated="3000" office:value-type="float" '
                                      'office:value="1"/></table:table-row>')
    wide = ods(tmp_path / "wide.ods", "<table:table-row>" + ods_cell("a")
               + '<table:table-cell table:number-columns-repeated="5000"/>' + ods_cell("b") + "</table:table-row>")
    code, lines = read_in_child(bomb, wide)
    assert code == 0, lines
    assert lines[0].startswith("REFUSED") and "1,000,000" in lines[0]
    assert lines[1].startswith("REFUSED") and "5,002" in lines[1]


def test_an_ods_with_libreoffice_filler_rows_is_read(ctx: Any, tmp_path: Path) -> None:
    """LibreOffice pads a sheet with empty repeated rows and cells: they are not data."""
    filler = '<table:table-cell table:style-name="ce1" table:number-columns-repeated="1022"/>'
    rows = (f"<table:table-row>{ods_cell('客户名称')}{ods_cell('联系方式')}{filler}</table:table-row>"
            f"<table:table-row>{ods_cell('Acme')}{ods_cell('13812345678')}{filler}</table:table-row>"
            '<table:table-row table:number-rows-repeated="1048574"><table:table-cell '
            'table:number-columns-repeated="1024"/></table:table-row>')
    table = read_table(ods(tmp_path / "libre.ods", rows))
    assert table.headers == ["客户名称", "联系方式"] and table.rows == [["Acme", "13812345678"]]


# --- CSV -------------------------------------------------------------------------------------

def test_a_csv_with_a_million_columns_is_refused_without_building_the_row(ctx: Any, tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(["x"] * 1_000_000) + "\n1,2\n")
    tracemalloc.start()
    with pytest.raises(UnreadableFile, match="more than 256 columns"):
        read_table(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 30_000_000  # the text and its lines, never a million-field list


def test_a_csv_with_18000_columns_is_refused(ctx: Any, tmp_path: Path) -> None:
    path = tmp_path / "18k.csv"
    path.write_text(",".join(f"c{n}" for n in range(18_000)) + "\n")
    with pytest.raises(UnreadableFile, match=r"more than 256 columns \(18,000\)"):
        read_table(path)


def test_csv_rows_stop_at_the_limit_and_a_wide_row_cannot_pad_the_rest(app: Any, ctx: Any, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.csv"
    path.write_text("name,phone\n" + "Acme,13812345678\n" * 50)
    _limits(app, monkeypatch, CRM_IMPORT_MAX_ROWS=20)
    with pytest.raises(UnreadableFile, match="more than 20 rows"):
        read_table(path)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(",".join(["h"] * 200) + "\n" + "x\n" * 50)  # one wide header, narrow rows
    _limits(app, monkeypatch, CRM_IMPORT_MAX_ROWS=1000, CRM_IMPORT_MAX_CELLS=5000)
    with pytest.raises(UnreadableFile, match="51 rows x 200 columns"):
        read_table(ragged)


def test_a_huge_single_line_csv_is_one_long_cell_not_a_crash(ctx: Any, tmp_path: Path) -> None:
    path = tmp_path / "line.csv"
    path.write_text("名" * 3_000_000)
    table = read_table(path)
    assert len(table.headers) == 1 and len(table.headers[0]) == 3_000_000 and table.rows == []


# --- every caller reads through the same bounds ------------------------------------------------

def test_the_xlsx_sync_backend_reads_through_the_bounds(app: Any, ctx: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_xlsx(tmp_path / "team.xlsx", {"客户": [["客户编号", "客户名称"]] + [["", f"Co {n}"] for n in range(30)]})
    assert len(XlsxBackend(path, "客户").read().rows) == 30
    _limits(app, monkeypatch, CRM_IMPORT_MAX_ROWS=10)
    with pytest.raises(SheetUnavailable, match="more than 10 rows"):
        XlsxBackend(path, "客户").read()
    doctype = xlsx(tmp_path / "dt.xlsx", sheet_xml(b"").replace(b'<?xml version="1.0" encoding="UTF-8"?>', XXE))
    with pytest.raises(SheetUnavailable, match="document type declaration"):
        XlsxBackend(doctype, "S").read()


def test_a_scheduled_folder_import_sets_an_oversized_file_aside(app: Any, ctx: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_xlsx(inbox / "big.xlsx", {"s": [["客户名称", "联系方式"]] + [[f"Co {n}", "13812345678"] for n in range(30)]})
    _limits(app, monkeypatch, CRM_IMPORT_MAX_ROWS=10)
    schedule = TransferSchedule(name="s", kind="folder_import", model="customer", cron="* * * * *", mode="upsert",
                                run_as_id=user_id("rep_a"), path=str(inbox))
    db.session.add(schedule)
    db.session.commit()
    done = schedules.run(schedule)
    assert "more than 10 rows" in done.last_message and (inbox / "failed" / "big.xlsx").exists()
    assert db.session.query(Customer).count() == 0
    assert db.session.query(TransferJob).one().status == "failed"


def test_reading_module_exports_the_bounded_error() -> None:
    assert reading.UnreadableFile is bounds.UnreadableFile and issubclass(UnreadableFile, ValueError)
