"""The error report: the rejected rows as they were, plus a column saying what is wrong.

Cells are written as text exactly as read (a cell holding ``=1+2`` stays that text),
so the user fixes the rows in Excel and uploads the same file again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask_babel import lazy_gettext as _l
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font, PatternFill

from app.services.exporting import looks_like_formula, workbook_text
from app.services.importing.engine import Result
from app.services.importing.reading import Table

ERROR_HEADER = _l("Import errors")


def _cell(sheet: Any, value: Any) -> WriteOnlyCell:
    value = workbook_text(value)
    cell = WriteOnlyCell(sheet, value=value)
    if looks_like_formula(value):
        cell.data_type = "s"  # the text as read, not a formula
    return cell


def write_error_report(path: str | Path, table: Table, result: Result, every_row: bool = False) -> Path:
    """xlsx of rejected rows (or every row, for a rolled-back all-or-nothing import)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("errors")
    bold = Font(bold=True)
    header_cells = []
    for text in [*table.headers, str(ERROR_HEADER)]:
        cell = _cell(sheet, text)  # headers come from the file too: text, never a formula
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    red = PatternFill("solid", fgColor="FFF2CC")
    errors = {line: message for line, _, message in result.rejected_rows}
    rows = zip(table.lines, table.rows, strict=True) if every_row else \
        [(line, raw) for line, raw, _ in result.rejected_rows]
    for line, raw in rows:
        message = errors.get(line, "")
        note = WriteOnlyCell(sheet, value=str(_l("[row %(line)s] %(message)s", line=line, message=message)) if message else "")
        if message:
            note.fill = red
        sheet.append([_cell(sheet, value) for value in raw] + [note])
    path = Path(path)
    workbook.save(path)
    return path
