"""Issue 11 §3, merged cells beyond .xlsx: an OpenDocument sheet (python-calamine reports merges
for xlsx/xls only, so the spans are read from content.xml), and merged ranges crafted to
multiply the work of filling them in (bounded like every other part of a read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from app.services.importing.reading import UnreadableFile, check_suffix, read_table
from tests.app.services.importing.crafted import MAIN, ods, ods_cell, xlsx

HEADERS = ["客户名称", "所属行业", "联系人姓名", "联系方式", "统一社会信用代码", "备注"]


def _merged_ods(path: Path) -> Path:
    """As LibreOffice saves it: 所属行业 merged over rows 2-4 with 软件开发 (the first cell spans
    three rows, the cells under it are covered cells), and 备注 merged over rows 3-4 and two
    columns (a covered cell repeated; the second column has a header nothing maps)."""
    def row(name: str, phone: str, industry: str, note: str) -> str:
        return f"<table:table-row>{ods_cell(name)}{industry}{ods_cell('王')}{ods_cell(phone)}" \
               f"<table:table-cell/>{note}</table:table-row>"

    covered = "<table:covered-table-cell/>"
    spanned = ('<table:table-cell table:number-rows-spanned="3" table:number-columns-spanned="1" '
               'office:value-type="string"><text:p>软件开发</text:p></table:table-cell>')
    note = ('<table:table-cell table:number-rows-spanned="2" table:number-columns-spanned="2" '
            'office:value-type="string"><text:p>同一批</text:p></table:table-cell>')
    rows = ("<table:table-row>" + "".join(map(ods_cell, [*HEADERS, "附注"])) + "</table:table-row>"
            + row("Ods 0", "13812345600", spanned, ods_cell("first") + ods_cell("x"))
            + row("Ods 1", "13812345601", covered, note)
            + row("Ods 2", "13812345602", covered, '<table:covered-table-cell table:number-columns-repeated="2"/>'))
    return ods(path, rows)


def test_ods_merged_industry_is_the_industry_of_every_row_it_covers(app: Any, run_job: Any,
                                                                    tmp_path: Path) -> None:
    path = _merged_ods(tmp_path / "merged.ods")
    with app.app_context():
        table = read_table(path)
    assert [row[1] for row in table.rows] == ["软件开发"] * 3
    assert [row[5:] for row in table.rows] == [["first", "x"], ["同一批", "同一批"], ["同一批", "同一批"]]
    job = run_job("rep_a", path)
    assert (job.created, job.rejected) == (3, 0)
    with app.app_context():
        customers = {c.name: c for c in db.session.scalars(select(Customer))}
        assert {customers[f"Ods {n}"].industry.label_zh for n in range(3)} == {"软件和信息技术服务业"}
        assert [customers[f"Ods {n}"].note for n in range(3)] == ["first", "同一批", "同一批"]


def _overlapping_xlsx(path: Path, count: int) -> Path:
    rows = b"".join(b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>x%d</t></is></c><c r="Z%d" t="inlineStr"><is>'
                    b"<t>z</t></is></c></row>" % (n, n, n, n) for n in range(1, 201))
    merges = b'<mergeCells count="%d">' % count + b'<mergeCell ref="A1:Z200"/>' * count + b"</mergeCells>"
    sheet = (b'<?xml version="1.0" encoding="UTF-8"?><worksheet ' + MAIN + b"><sheetData>" + rows
             + b"</sheetData>" + merges + b"</worksheet>")
    return xlsx(path, sheet)


def _overlapping_ods(path: Path, count: int) -> Path:
    """An ODS cell spans from its own position, so overlap takes many of them: each cell of the
    first ``count`` rows claims 200 rows x 26 columns."""
    span = ('<table:table-cell table:number-rows-spanned="200" table:number-columns-spanned="26" '
            'office:value-type="string"><text:p>x</text:p></table:table-cell>')
    plain = ods_cell("y") + '<table:table-cell table:number-columns-repeated="24"/>' + ods_cell("z")
    rows = "".join(f"<table:table-row>{span * 26 if n < count else plain}</table:table-row>" for n in range(200))
    return ods(path, rows)


@pytest.mark.parametrize("make", [_overlapping_xlsx, _overlapping_ods], ids=["xlsx", "ods"])
def test_overlapping_merged_ranges_are_refused_not_filled_again_and_again(ctx: Any, tmp_path: Path,
                                                                           make: Any) -> None:
    """Ranges over the same 200 x 26 grid that would fill it again and again (5.2 and 7 million
    cells, from files of a few hundred KB) are refused; a few are read as usual."""
    suffix = ".ods" if make is _overlapping_ods else ".xlsx"
    with pytest.raises(UnreadableFile, match="merged cells cover more than 3,000,000 cells"):
        read_table(make(tmp_path / f"overlap{suffix}", 1000 if suffix == ".xlsx" else 200))
    assert len(read_table(make(tmp_path / f"few{suffix}", 1)).rows) == 199


def test_old_xls_is_refused_with_a_message() -> None:
    """.xls is not read at all (so no merge of one can be lost): the user is told to save as .xlsx."""
    with pytest.raises(UnreadableFile, match="save the file as .xlsx"):
        check_suffix("客户.xls")
