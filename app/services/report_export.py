"""Dashboards and reports as files (issue 17): xlsx (a pivot sheet plus each chart's table,
written with pandas over openpyxl) and PDF (fpdf2 with the vendored Noto Sans SC embedded,
so Chinese renders on any reader).

Rules: 001 §四 (自定义报表 ... 导出 Excel/PDF), 003 第三步 4 (月度销售业绩报表; who may
export contact data is the caller's check, see ``views/reports.py``).

CONTRACT:
- ``xlsx(title, figures, pivot=None) -> bytes``: figures are ``metrics.Figure``; pivot a
  pandas DataFrame (the report's dim1 × dim2 table) or None.
- ``pdf(title, figures, pivot=None, subtitle="") -> bytes``.
Both neutralise formula-looking text (``exporting.neutralise``) and are bounded in rows.

Numbers: counts and days are written as numbers; money (Decimal) as numbers with two
decimals; a "percent" figure's values are percentages (``25`` = 25 %) and go into the
workbook as the fraction (0.25) with a ``%`` format, so a spreadsheet computes with them.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from flask_babel import lazy_gettext as _l

from app.services.exporting import neutralise

#: The font embedded in PDFs (TrueType; fpdf2 subsets it to the glyphs used).
FONT = Path(__file__).resolve().parent.parent / "fonts" / "NotoSansSC-Regular.ttf"
#: Bounds of the pivot in a workbook and in a PDF (beyond them the table is cut, with a note).
XLSX_MAX_ROWS, XLSX_MAX_COLUMNS = 10_000, 200
PDF_MAX_ROWS, PDF_MAX_COLUMNS = 300, 14
#: A PDF pivot with more columns than this is laid out on A4 landscape.
PDF_PORTRAIT_COLUMNS = 6
#: A PDF cell shows at most this many characters (the rest is cut with "…").
PDF_CELL_CHARS = 24
#: At most this many categories of one figure in a file.
FIGURE_MAX_ROWS = 1_000

NUMBER_FORMATS = {"count": "#,##0", "money": "#,##0.00", "percent": "0.0%", "days": "#,##0.0"}
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
_CENT = Decimal("0.01")


@dataclass
class Table:
    """A flat table ready for a file: header labels, rows of cells, and whether it was cut."""

    header: list[str]
    rows: list[list[Any]]
    cut_rows: int = 0
    cut_columns: int = 0
    #: the unit of each value column (after the label column) when they differ; None: one unit
    units: list[str] | None = None

    def unit_of(self, column: int, default: str) -> str:
        """The unit of value column ``column`` (0 = the first after the labels)."""
        return self.units[column] if self.units and column < len(self.units) else default


def _plain(value: Any, unit: str, safe: Callable[[Any], Any] = neutralise) -> Any:
    """A cell's value for a file: NaN -> None, money to 2 places, text neutralised."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, Decimal)):
        value = value.item()  # numpy scalar
    if unit == "money" and isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
    if isinstance(value, (int, float, Decimal)):
        return value
    return safe(str(value))


def pivot_table(pivot: Any, unit: str = "count", max_rows: int = XLSX_MAX_ROWS,
                max_columns: int = XLSX_MAX_COLUMNS, safe: Callable[[Any], Any] = neutralise) -> Table:
    """The report's pivot (pandas DataFrame: dim1 labels as index, dim2 labels as columns,
    totals included) as a flat ``Table``: first column the dim1 labels (header: the index's
    name), then at most ``max_columns`` value columns and ``max_rows`` rows (the last row
    and column, the totals, always kept). Labels go through ``safe`` (neutralised for
    files; a page passes them as they are); values follow ``unit`` (see ``_plain``)."""
    frame = pivot if isinstance(pivot, pd.DataFrame) else pd.DataFrame(pivot)
    columns = list(frame.columns)
    cut_columns = max(0, len(columns) - max_columns)
    if cut_columns:  # keep the last column: it is the total
        columns = columns[:max_columns - 1] + columns[-1:]
    header = [safe(str(frame.index.name or frame.columns.name or ""))]
    header += [safe(_label(c)) for c in columns]
    rows = []
    labels = list(frame.index)
    keep = labels if len(labels) <= max_rows else labels[:max_rows - 1] + labels[-1:]
    positions = list(range(len(labels))) if len(labels) <= max_rows else \
        list(range(max_rows - 1)) + [len(labels) - 1]
    for position, label in zip(positions, keep, strict=True):
        record = frame.iloc[position]
        rows.append([safe(_label(label))] + [_plain(record[c], unit, safe) for c in columns])
    return Table(header, rows, max(0, len(labels) - max_rows), cut_columns)


def _label(value: Any) -> str:
    if isinstance(value, tuple):
        return " / ".join(_label(v) for v in value if v not in (None, ""))
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def dimension_label(figure: Any, fallback: str = "") -> str:
    """What the figure's categories are ("Level", "Stage"...): its ``dimension``, else
    ``fallback`` (a report's pivot names its rows), else "Item" — never the title."""
    return str(getattr(figure, "dimension", "") or fallback or _l("Item"))


def _series_unit(figure: Any, series: Any) -> str:
    return getattr(series, "unit", None) or figure.unit


def figure_table(figure: Any, dimension: str = "") -> Table:
    """One figure's numbers (categories × series, the top-left header the dimension's label
    (``dimension_label``), each column in its series' unit; a "number" figure: one row with
    its value and, when known, the previous period's)."""
    unit = figure.unit
    if not figure.categories and figure.value is not None:
        header = [str(_l("Figure")), str(_l("Value"))]
        rows = [[neutralise(str(figure.title)), _plain(figure.value, unit)]]
        if figure.previous is not None:
            rows.append([str(_l("Previous period")), _plain(figure.previous, unit)])
        return Table(header, rows)
    header = [neutralise(dimension_label(figure, dimension))] + [neutralise(str(s.name)) for s in figure.series]
    units = [_series_unit(figure, s) for s in figure.series]
    rows = []
    for index, category in enumerate(figure.categories[:FIGURE_MAX_ROWS]):
        values = [s.values[index] if index < len(s.values) else None for s in figure.series]
        rows.append([neutralise(str(category))] + [_plain(v, u) for v, u in zip(values, units, strict=True)])
    return Table(header, rows, max(0, len(figure.categories) - FIGURE_MAX_ROWS), units=units)


def sheet_name(text: str, taken: set[str]) -> str:
    """A valid, unique worksheet name: no ``[]:*?/\\``, not starting/ending with ``'``, at
    most 31 characters; ``taken`` is updated."""
    base = _SHEET_BAD.sub("_", str(text)).strip("'").strip() or "Sheet"
    name, number = base[:31], 1
    while name.lower() in taken:
        number += 1
        suffix = f" ({number})"
        name = base[:31 - len(suffix)] + suffix
    taken.add(name.lower())
    return name


def figure_sheet_name(title: str, taken: set[str]) -> str:
    """The sheet of a figure: its title when that is a valid sheet name as it is (at most
    31 characters, none of ``[]:*?/\\``, unique), else "Chart" in the reader's language
    ("图表"), numbered "Chart (2)"… — never a title cut mid-word with its ``:`` replaced."""
    text = str(title).strip()
    if text and len(text) <= 31 and not _SHEET_BAD.search(text) and text[0] != "'" and text[-1] != "'" \
            and text.lower() not in taken:
        taken.add(text.lower())
        return text
    return sheet_name(str(_l("Chart")), taken)


def _pivot_rows_label(pivot: Any) -> str:
    """The pivot's row dimension label (a report's figure has the pivot's rows as categories)."""
    return str(getattr(getattr(pivot, "index", None), "name", None) or "") if pivot is not None else ""


# --- xlsx --------------------------------------------------------------------------------

def cut_note(table: Table) -> str | None:
    """The note under a table that was cut to fit (None when complete)."""
    if not (table.cut_rows or table.cut_columns):
        return None
    return str(_l("Cut to fit: %(rows)d more rows and %(columns)d more columns are not shown.",
                  rows=table.cut_rows, columns=table.cut_columns))


def _excel_value(value: Any, unit: str) -> Any:
    if unit == "percent" and isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return Decimal(str(value)) / 100
    return value


def _write_table(writer: pd.ExcelWriter, name: str, title: str, table: Table, unit: str) -> None:
    """``table`` on sheet ``name``: title in A1, header on row 3, numbers formatted by unit."""
    frame = pd.DataFrame([[row[0]] + [_excel_value(v, table.unit_of(i, unit)) for i, v in enumerate(row[1:])]
                          for row in table.rows], columns=range(len(table.header)), dtype=object)
    frame.columns = [f"{i}:{h}" for i, h in enumerate(table.header)]  # unique even if labels repeat
    frame.to_excel(writer, sheet_name=name, index=False, startrow=2)
    sheet = writer.sheets[name]
    sheet["A1"] = neutralise(title)
    for column, label in enumerate(table.header, start=1):
        sheet.cell(row=3, column=column, value=label)
    for row in sheet.iter_rows(min_row=4, min_col=2, max_row=3 + len(table.rows), max_col=len(table.header)):
        for cell in row:
            if isinstance(cell.value, (int, float, Decimal)):
                cell.number_format = NUMBER_FORMATS.get(table.unit_of(cell.column - 2, unit), "General")
    note = cut_note(table)
    if note:
        sheet.cell(row=5 + len(table.rows), column=1, value=note)
    sheet.column_dimensions["A"].width = min(40, max(12, *(len(str(r[0] or "")) * 2 for r in table.rows[:200]), 12))


def xlsx(title: str, figures: list[Any], pivot: Any = None, unit: str | None = None) -> bytes:
    """The workbook: sheet "Pivot" (when ``pivot`` is given: dim1 × dim2 with totals, header
    labels as the pivot carries them, i.e. in the viewer's language), then one sheet per
    figure: its title in A1, its table under it (top-left header the dimension's label, see
    ``figure_table``), the sheet named by ``figure_sheet_name`` (the title when it fits as a
    sheet name, else "Chart"/"图表", numbered). ``unit`` of the pivot's numbers defaults to
    the first figure's. Returns the .xlsx bytes. Bounded: ``XLSX_MAX_ROWS`` ×
    ``XLSX_MAX_COLUMNS`` pivot cells, ``FIGURE_MAX_ROWS`` rows per figure (cut with a note)."""
    unit = unit or (figures[0].unit if figures else "count")
    buffer, taken = io.BytesIO(), set()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        if pivot is not None:
            _write_table(writer, sheet_name("Pivot", taken), title,
                         pivot_table(pivot, unit, XLSX_MAX_ROWS, XLSX_MAX_COLUMNS), unit)
        rows_label = _pivot_rows_label(pivot)
        for figure in figures:
            _write_table(writer, figure_sheet_name(str(figure.title), taken), str(figure.title),
                         figure_table(figure, rows_label), figure.unit)
        if not taken:
            pd.DataFrame([[neutralise(title)]]).to_excel(writer, sheet_name="Report", index=False, header=False)
    return buffer.getvalue()


# --- PDF ---------------------------------------------------------------------------------

def cell_text(value: Any, unit: str, limit: int | None = None) -> str:
    """A cell as a table shows it: money with 2 decimals and thousands separators, percent
    with " %", counts with separators; text cut at ``limit`` characters (with "…")."""
    if value is None:
        return ""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        if unit == "money":
            return f"{Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP):,.2f}"
        if unit == "percent":
            return f"{Decimal(str(value)):.1f} %"
        if isinstance(value, float) or (isinstance(value, Decimal) and value != value.to_integral_value()):
            return f"{Decimal(str(value)):,.2f}"
        return f"{value:,}"
    text = str(value)
    if text.startswith("'"):
        text = text[1:]  # neutralised for spreadsheets; a PDF runs nothing
    return text if limit is None or len(text) <= limit else text[:limit - 1] + "…"


def _new_pdf(landscape: bool) -> Any:
    from fpdf import FPDF

    document = FPDF(orientation="L" if landscape else "P", unit="mm", format="A4")
    document.add_font("noto", "", str(FONT))
    document.add_font("noto", "B", str(FONT))  # one weight shipped: headings use the same face
    document.set_auto_page_break(auto=True, margin=12)
    document.set_margins(12, 12, 12)
    document.add_page()
    return document


#: The company logo's height in the PDF header (mm).
PDF_LOGO_HEIGHT = 12


def _company_header(document: Any) -> None:
    """The company's logo (top left), name and today's date (the company's date format, at
    the right) above the title (Organisation → Company profile); nothing when neither logo nor name
    is set. A logo the PDF library cannot read is left out."""
    from flask import has_app_context

    from app import clock
    from app.services import company  # not at import: the views load it first

    if not has_app_context():  # a file made outside the app (scripts, unit tests): no company
        return
    logo, name = company.logo(), company.name()
    if not logo and not name:
        return
    top, x = document.get_y(), document.l_margin
    if logo:
        try:
            placed = document.image(io.BytesIO(logo[0]), x=x, y=top, h=PDF_LOGO_HEIGHT)
            x += placed.rendered_width + 3
        except Exception:  # noqa: BLE001 - a header picture never stops the export
            pass
    document.set_font("noto", size=11)
    document.set_xy(x, top + (PDF_LOGO_HEIGHT - 6) / 2 if logo else top)
    document.cell(0, 6, name)
    document.set_x(x)
    document.set_font("noto", size=9)
    document.cell(0, 6, clock.local_today().strftime(company.date_format()), align="R")
    document.set_xy(document.l_margin, top + (PDF_LOGO_HEIGHT if logo else 6) + 2)


def _pdf_table(document: Any, table: Table, unit: str) -> None:
    from fpdf.fonts import FontFace

    document.set_font("noto", size=8)
    widths = [2.0] + [1.0] * (len(table.header) - 1)
    with document.table(col_widths=widths, headings_style=FontFace(fill_color=(225, 230, 240)),
                        text_align=["LEFT"] + ["RIGHT"] * (len(table.header) - 1),
                        line_height=4.5, repeat_headings=1) as grid:
        grid.row([cell_text(h, "", PDF_CELL_CHARS) for h in table.header])
        for row in table.rows:
            grid.row([cell_text(row[0], "", PDF_CELL_CHARS)]
                     + [cell_text(v, table.unit_of(i, unit), PDF_CELL_CHARS) for i, v in enumerate(row[1:])])
    note = cut_note(table)
    if note:
        document.set_font("noto", size=8)
        document.multi_cell(0, 5, note, new_x="LMARGIN", new_y="NEXT")
    document.ln(4)


#: Bar colours of a PDF chart's series (ECharts' default palette), in order.
BAR_COLOURS = ((84, 112, 198), (145, 204, 117), (250, 200, 88), (238, 102, 102), (115, 192, 222),
               (59, 162, 114), (252, 132, 82), (154, 96, 180))
#: A PDF bar chart draws at most this many categories (a note says how many are left out).
PDF_BAR_CATEGORIES = 20


def bar_series(figure: Any) -> list[Any]:
    """The series a PDF bar chart draws: every series in the first one's unit (a count beside
    an amount would need another axis: it stays in the table), at most ``len(BAR_COLOURS)``."""
    if not figure.series:
        return []
    first = _series_unit(figure, figure.series[0])
    return [s for s in figure.series if _series_unit(figure, s) == first][:len(BAR_COLOURS)]


def _legend(document: Any, drawn: list[Any], figure: Any) -> None:
    """The chart's legend: a colour swatch and the name of each series drawn, and what is
    left out (other series, categories past ``PDF_BAR_CATEGORIES``)."""
    document.set_font("noto", size=7)
    x, y = document.l_margin, document.get_y()
    for index, series in enumerate(drawn):
        name = cell_text(str(series.name), "", PDF_CELL_CHARS)
        width = document.get_string_width(name) + 8
        if x + width > document.l_margin + document.epw:
            x, y = document.l_margin, y + 5
        document.set_fill_color(*BAR_COLOURS[index])
        document.rect(x, y + 1, 3, 3, style="F")
        document.set_xy(x + 4, y)
        document.cell(width - 4, 5, name)
        x += width
    document.set_xy(document.l_margin, y + 5)
    left_out = [str(s.name) for s in figure.series if all(s is not d for d in drawn)]
    notes = []
    if left_out:
        notes.append(str(_l("Not drawn (see the table): %(series)s", series=", ".join(left_out))))
    if len(figure.categories) > PDF_BAR_CATEGORIES:
        notes.append(str(_l("The chart shows the first %(shown)d of %(total)d rows (all are in the table).",
                            shown=PDF_BAR_CATEGORIES, total=len(figure.categories))))
    for note in notes:
        document.multi_cell(0, 4, note, new_x="LMARGIN", new_y="NEXT")


def _bars(document: Any, figure: Any) -> None:
    """A grouped bar chart of the figure's series in one unit (``bar_series``; positive
    values), drawn with shapes, with a legend naming each series drawn."""
    if figure.chart != "bar" or not figure.categories:
        return
    drawn = bar_series(figure)
    categories = figure.categories[:PDF_BAR_CATEGORIES]
    columns = [[float(v or 0) for v in (s.values[:len(categories)] + [None] * len(categories))[:len(categories)]]
               for s in drawn]
    top = max((v for column in columns for v in column), default=0)
    if top <= 0:
        return
    unit = _series_unit(figure, drawn[0])
    left, width, bar = document.l_margin + 45, document.epw - 65, 3.2
    group = bar * len(drawn) + 1.5
    if document.will_page_break(len(categories) * group + 14):
        document.add_page()
    _legend(document, drawn, figure)
    document.set_font("noto", size=7)
    y = document.get_y() + 1
    for index, category in enumerate(categories):
        document.set_xy(document.l_margin, y)
        document.cell(44, bar * len(drawn), cell_text(str(category), "", PDF_CELL_CHARS), align="R")
        for number, (series, column) in enumerate(zip(drawn, columns, strict=True)):
            value, top_y = column[index], y + number * bar
            if value > 0:
                document.set_fill_color(*BAR_COLOURS[number])
                document.rect(left, top_y + 0.3, width * value / top, bar - 0.6, style="F")
            document.set_xy(left + width * max(value, 0) / top + 1, top_y)
            raw = series.values[index] if index < len(series.values) else None
            document.cell(20, bar, cell_text(raw, unit))
        y += group
    document.set_xy(document.l_margin, y + 3)


def pdf(title: str, figures: list[Any], pivot: Any = None, subtitle: str = "", unit: str | None = None) -> bytes:
    """The report as a PDF (A4; landscape when the pivot has more than
    ``PDF_PORTRAIT_COLUMNS`` columns): title, subtitle (filters, when generated in the CRM
    zone, by whom: the caller writes it), the pivot as a table (headers repeated on each
    page, cells cut at ``PDF_CELL_CHARS``, at most ``PDF_MAX_ROWS`` × ``PDF_MAX_COLUMNS``,
    with a note when cut), then each figure: a grouped bar chart with a legend for bar
    figures (``_bars``) and its table.
    Text is embedded in Noto Sans SC, so Chinese labels render and can be extracted."""
    unit = unit or (figures[0].unit if figures else "count")
    table = pivot_table(pivot, unit, PDF_MAX_ROWS, PDF_MAX_COLUMNS) if pivot is not None else None
    document = _new_pdf(landscape=bool(table and len(table.header) > PDF_PORTRAIT_COLUMNS))
    document.set_title(str(title))
    _company_header(document)
    document.set_font("noto", size=16)
    document.multi_cell(0, 9, str(title), new_x="LMARGIN", new_y="NEXT")
    if subtitle:
        document.set_font("noto", size=9)
        document.set_text_color(90, 90, 90)
        document.multi_cell(0, 5, str(subtitle), new_x="LMARGIN", new_y="NEXT")
        document.set_text_color(0, 0, 0)
    document.ln(3)
    if table is not None:
        _pdf_table(document, table, unit)
    rows_label = _pivot_rows_label(pivot)
    for figure in figures:
        document.set_font("noto", size=11)
        document.multi_cell(0, 7, str(figure.title), new_x="LMARGIN", new_y="NEXT")
        _bars(document, figure)
        _pdf_table(document, figure_table(figure, rows_label), figure.unit)
    return bytes(document.output())
