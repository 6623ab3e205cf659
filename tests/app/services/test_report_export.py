"""Reports as files (issue 17, 001 §四 导出 Excel/PDF): the xlsx holds the pivot and each
chart's table as numbers with formats, formula-looking text neutralised, valid sheet
names; the PDF carries the Chinese labels as text and its glyphs are drawn (ink where the
title is)."""

from __future__ import annotations

import io
from decimal import Decimal

import openpyxl
import pandas as pd
import pypdf
import pypdfium2

from app.services import report_export
from app.services.metrics import Figure, FigureSeries


def _pivot() -> pd.DataFrame:
    frame = pd.DataFrame([[2, 1, 3], [None, 4, 4], [2, 5, 7]], index=["A 重要", "=HYPERLINK(\"x\")", "合计"],
                         columns=["制造业", "批发和零售业", "合计"], dtype=object)
    frame.index.name, frame.columns.name = "客户等级", "行业"
    return frame


def _figure(unit: str = "count", chart: str = "bar", title: str = "客户等级 × 行业") -> Figure:
    values = {"count": [[2, None], [1, 4]], "money": [[Decimal("1234.565"), Decimal("0")], [Decimal("7"), None]],
              "percent": [[Decimal("25.0"), Decimal("100")], [Decimal("12.5"), None]]}[unit]
    return Figure(key="report:customers", title=title, help="", unit=unit, chart=chart,
                  categories=["A 重要", "+cmd"], keys=[1, 2],
                  series=[FigureSeries("制造业", [values[0][0], values[1][0]]),
                          FigureSeries("批发和零售业", [values[0][1], values[1][1]])])


def _book(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


def _rows(sheet: openpyxl.worksheet.worksheet.Worksheet) -> list[list]:
    return [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]


def test_xlsx_has_the_pivot_with_totals_then_each_figure() -> None:
    book = _book(report_export.xlsx("客户报表", [_figure()], _pivot()))
    assert book.sheetnames == ["Pivot", "客户等级 × 行业"]
    pivot = book["Pivot"]
    assert pivot["A1"].value == "客户报表"
    assert _rows(pivot) == [["客户等级", "制造业", "批发和零售业", "合计"], ["A 重要", 2, 1, 3],
                            ["'=HYPERLINK(\"x\")", None, 4, 4], ["合计", 2, 5, 7]]
    assert pivot["B4"].number_format == "#,##0" and isinstance(pivot["B4"].value, int)
    figure = _rows(book["客户等级 × 行业"])
    assert figure[0] == ["客户等级", "制造业", "批发和零售业"]  # the rows' dimension (the pivot's), not the title
    assert figure[2][0] == "'+cmd"  # neutralised: shown, never run


def test_money_is_a_number_with_two_decimals_and_percent_a_fraction_with_percent_format() -> None:
    book = _book(report_export.xlsx("Sales", [_figure("money", title="Amount"), _figure("percent", title="Rate")]))
    money = book["Amount"]
    assert money["B4"].value == 1234.57  # ROUND_HALF_UP, stored as a number
    assert money["B4"].number_format == "#,##0.00"
    rate = book["Rate"]
    assert rate["B4"].value == 0.25 and rate["C4"].value == 1
    assert rate["B4"].number_format == "0.0%"


def test_sheet_names_are_valid_and_unique() -> None:
    long = "Sales by rep: [East]/South * who? " * 3
    book = _book(report_export.xlsx("x", [_figure(title=long), _figure(title=long), _figure(title="Pivot")],
                                    _pivot()))
    names = book.sheetnames
    assert len(set(n.lower() for n in names)) == len(names) == 4
    assert all(len(n) <= 31 and not set(n) & set("[]:*?/\\") for n in names)


def test_a_huge_pivot_is_cut_with_a_note_and_keeps_its_totals(monkeypatch) -> None:
    monkeypatch.setattr(report_export, "XLSX_MAX_ROWS", 3)
    frame = pd.DataFrame({"n": list(range(10))}, index=[f"r{i}" for i in range(9)] + ["合计"])
    sheet = _book(report_export.xlsx("big", [], frame))["Pivot"]
    rows = _rows(sheet)
    assert [r[0] for r in rows[1:4]] == ["r0", "r1", "合计"]
    assert "7 more rows" in str(sheet.cell(row=8, column=1).value)


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_pdf_has_the_chinese_labels_as_text() -> None:
    data = report_export.pdf("客户等级 × 行业 报表", [_figure()], _pivot(), subtitle="生成于 2026-12-01 10:00 · manager")
    assert data.startswith(b"%PDF")
    text = _pdf_text(data)
    for label in ("客户等级", "制造业", "批发和零售业", "合计", "生成于", "=HYPERLINK"):
        assert label in text


def test_pdf_chinese_title_is_drawn_not_blank() -> None:
    data = report_export.pdf("客户等级报表", [], _pivot())
    page = pypdfium2.PdfDocument(data)[0]
    image = page.render(scale=2).to_pil().convert("L")
    width, height = image.size
    # the title sits in the first ~20 mm of an A4 page, left-aligned from the 12 mm margin
    title = image.crop((int(width * 0.05), int(height * 0.03), int(width * 0.45), int(height * 0.07)))
    ink = sum(title.histogram()[:128])
    assert ink > 200, "the Chinese title renders as glyphs (not blank / tofu-free boxes)"
    # and the same region of a page without the title stays blank: the measure can fail
    blank = pypdfium2.PdfDocument(report_export.pdf("", [], None))[0].render(scale=2).to_pil().convert("L")
    empty = blank.crop((int(width * 0.05), int(height * 0.03), int(width * 0.45), int(height * 0.07)))
    assert sum(empty.histogram()[:128]) == 0


def test_a_wide_pivot_is_landscape_and_long_cells_are_cut() -> None:
    frame = pd.DataFrame([[i for i in range(10)]], index=["x" * 80], columns=[f"列{i}" for i in range(10)])
    data = report_export.pdf("宽表", [], frame)
    page = pypdf.PdfReader(io.BytesIO(data)).pages[0]
    assert page.mediabox.width > page.mediabox.height
    assert "x" * 80 not in _pdf_text(data) and "…" in _pdf_text(data)


def test_a_long_title_names_the_sheet_chart_and_the_header_is_the_dimension() -> None:
    """The story: "Customers: Count by Level × Industry" became the sheet "Customers_ Count by
    Level × Ind" with the title again in A3."""
    title = "Customers: Count by Level × Industry"
    figure = _figure(title=title)
    figure.dimension = "Level"
    book = _book(report_export.xlsx(title, [figure, _figure(title=title + " again")], _pivot()))
    assert book.sheetnames == ["Pivot", "Chart", "Chart (2)"]
    sheet = book["Chart"]
    assert sheet["A1"].value == title and sheet["A3"].value == "Level"
    assert book["Chart (2)"]["A3"].value == "客户等级"  # no dimension on the figure: the pivot's rows


def test_a_series_in_another_unit_keeps_its_unit_in_the_files() -> None:
    """The funnel: counts, and the conversion % beside them."""
    funnel = Figure(key="funnel", title="Sales funnel", help="", unit="count", chart="funnel",
                    categories=["Leads", "Qualified"], keys=["leads", "qualified"], dimension="Step",
                    series=[FigureSeries("Count", [4, 2]), FigureSeries("Conversion %", [None, Decimal("50.0")],
                                                                         unit="percent")])
    sheet = _book(report_export.xlsx("Funnel", [funnel]))["Sales funnel"]
    assert sheet["A3"].value == "Step"
    assert sheet["B5"].value == 2 and sheet["B5"].number_format == "#,##0"
    assert sheet["C5"].value == 0.5 and sheet["C5"].number_format == "0.0%"
    assert "50.0 %" in _pdf_text(report_export.pdf("Funnel", [funnel]))


def _colour_pixels(data: bytes, colour: tuple[int, int, int]) -> int:
    image = pypdfium2.PdfDocument(data)[0].render(scale=2).to_pil().convert("RGB")
    raw = image.tobytes()
    return sum(1 for i in range(0, len(raw), 3) if all(abs(raw[i + k] - colour[k]) <= 8 for k in range(3)))


def test_pdf_bar_chart_draws_every_series_with_a_legend() -> None:
    data = report_export.pdf("客户", [_figure()])
    first, second = report_export.BAR_COLOURS[:2]
    assert _colour_pixels(data, first) > 50 and _colour_pixels(data, second) > 50  # both industries drawn
    text = _pdf_text(data)
    # the legend names each series once above the bars, then the table repeats them
    assert text.count("制造业") >= 2 and text.count("批发和零售业") >= 2


def test_pdf_bar_chart_says_what_it_leaves_out() -> None:
    figure = Figure(key="pipeline_by_stage", title="Pipeline", help="", unit="money", chart="bar",
                    categories=[f"S{i}" for i in range(25)], keys=list(range(25)),
                    series=[FigureSeries("Amount", [Decimal(i + 1) for i in range(25)]),
                            FigureSeries("Count", list(range(25)), unit="count")])
    text = _pdf_text(report_export.pdf("Pipeline", [figure]))
    assert "Not drawn (see the table): Count" in text
    assert "first 20 of 25" in text
