"""Reading uploaded workbooks and CSV files into a header row and data rows.

xlsx/xlsm/ods go through python-calamine (5x faster than openpyxl on large files);
CSV is decoded as UTF-8 (with or without BOM), else GB18030 (a superset of GBK and
GB2312, what Chinese Excel saves), and its delimiter (comma, tab, semicolon) sniffed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from flask_babel import lazy_gettext as _l
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from python_calamine import CalamineWorkbook

WORKBOOK_SUFFIXES = {".xlsx", ".xlsm", ".ods"}
CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
SUFFIXES = WORKBOOK_SUFFIXES | CSV_SUFFIXES


class UnreadableFile(ValueError):
    """The file cannot be read as a table; the message says why and what to do."""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    sheet: str | None
    blank_rows: int = 0
    #: Line number (as the spreadsheet shows it) of each data row.
    lines: list[int] = field(default_factory=list)


def cell_text(value: Any) -> str:
    """A cell as text, the same for imports and the sync: integral floats lose '.0' (phones
    typed as numbers), dates become ISO, None is empty, nothing is evaluated, and control
    characters (which no workbook can hold) are dropped."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes") if (value.hour or value.minute) else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return (text if text.isprintable() else ILLEGAL_CHARACTERS_RE.sub("", text)).strip()


def check_suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix == ".xls":
        raise UnreadableFile(_l("Old .xls workbooks are not supported: save the file as .xlsx or CSV in Excel."))
    if suffix not in SUFFIXES:
        raise UnreadableFile(_l("Upload an .xlsx workbook or a CSV file (got %(name)s).", name=filename))
    return suffix


def sheet_names(path: str | Path) -> list[str]:
    """Visible worksheet names of a workbook (empty for CSV)."""
    if Path(path).suffix.lower() not in WORKBOOK_SUFFIXES:
        return []
    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for broken zips
        raise UnreadableFile(_l("This file is not a readable workbook (%(why)s).", why=str(exc)[:120])) from None
    return [s.name for s in workbook.sheets_metadata if str(s.visible).endswith("Visible")] or workbook.sheet_names


def decode_text(raw: bytes) -> str:
    """UTF-8 (BOM or not), else GB18030; anything else is refused, never guessed."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        raise UnreadableFile(
            _l("The CSV file is neither UTF-8 nor GBK/GB18030 text: save it again as 'CSV UTF-8' in Excel.")
        ) from None


def _csv_rows(path: Path) -> list[list[Any]]:
    text = decode_text(path.read_bytes())
    sample = text[:20000]
    first_line = sample.split("\n", 1)[0]
    delimiter = max((",", "\t", ";"), key=first_line.count)
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))  # a long cell is data, not an error
    try:
        return [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    except csv.Error as exc:
        raise UnreadableFile(_l("The CSV file cannot be read (%(why)s).", why=str(exc)[:120])) from None


def workbook_rows(path: Path, sheet: str | None) -> tuple[list[list[Any]], str]:
    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception as exc:
        raise UnreadableFile(_l("This file is not a readable workbook (%(why)s).", why=str(exc)[:120])) from None
    names = workbook.sheet_names
    if sheet is None:
        sheet = sheet_names(path)[0] if names else None
    if sheet not in names:
        raise UnreadableFile(_l("The workbook has no sheet named %(sheet)s.", sheet=sheet))
    return workbook.get_sheet_by_name(sheet).to_python(skip_empty_area=False), sheet


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _extent(row: list[Any]) -> int:
    width = len(row)
    while width and _blank(row[width - 1]):
        width -= 1
    return width


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"({get_column_letter(index + 1)})"


def _unique(headers: list[str]) -> list[str]:
    """Two columns with the same header stay two columns: the second becomes 'Name (2)'."""
    seen: dict[str, int] = {}
    result = []
    for header in headers:
        seen[header] = seen.get(header, 0) + 1
        result.append(header if seen[header] == 1 else f"{header} ({seen[header]})")
    return result


def _header_row(rows: list[list[Any]]) -> int:
    """Index of the header row: the first row with two or more filled cells.

    A title line above the table ("客户信息导入模板") is skipped.
    """
    for index, row in enumerate(rows[:20]):
        if sum(not _blank(v) for v in row) >= 2:
            return index
    return 0


def read_table(path: str | Path, sheet: str | None = None) -> Table:
    """Header row and data rows; fully blank rows are dropped and counted."""
    path = Path(path)
    suffix = check_suffix(path.name)
    if suffix in CSV_SUFFIXES:
        rows, sheet = _csv_rows(path), None
    else:
        rows, sheet = workbook_rows(path, sheet)
    if not rows:
        raise UnreadableFile(_l("The file is empty."))
    start = _header_row(rows)
    headers = [str(v).strip() if not _blank(v) else "" for v in rows[start]]
    width = max((_extent(row) for row in rows[start:]), default=0)
    if not any(headers):
        raise UnreadableFile(_l("The first rows hold no column headers."))
    # Cells under no header are kept (and shown as unmapped columns), never dropped.
    headers = [(headers[i] if i < len(headers) else "") or _column_letter(i) for i in range(width)]
    headers = _unique(headers)
    data, lines, blank = [], [], 0
    for line, row in enumerate(rows[start + 1:], start=start + 2):
        row = list(row[:width]) + [None] * (width - len(row))
        if all(_blank(v) for v in row):
            blank += 1
            continue
        data.append(row)
        lines.append(line)
    return Table(headers, data, sheet, blank, lines)
