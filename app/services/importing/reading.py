"""Reading uploaded workbooks and CSV files into a header row and data rows — bounded.

Every read goes through here (the import screens, background imports, scheduled folder
imports and the xlsx sync backend) and is held to the same limits (``bounds.Limits``, from
the configuration), checked before anything is materialised:

* xlsx/xlsm/ods: the zip, the XML and the grid are checked and calamine reads the checked
  copy (``bounds.checked_copy``); python-calamine is 5x faster than openpyxl on large files.
  Read "as seen" (imports, the xlsx sync), a merged range's value is the value of every cell
  it covers: calamine reports xlsx merges, ODS merges are read from content.xml's spans
  (``bounds.ods_merged_ranges``; calamine reports none for ODS);
* CSV: decoded as UTF-8 (with or without BOM), else GB18030 (a superset of GBK and GB2312,
  what Chinese Excel saves), delimiter (comma, tab, semicolon) sniffed; records are streamed
  and the read stops past the row or column limit (a line with far too many delimiters is
  refused before it is split). A long cell is data: the file size bounds it.

Above a limit the reader raises ``UnreadableFile`` with a message naming it.
"""

from __future__ import annotations

import csv
import html
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from flask_babel import lazy_gettext as _l
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from python_calamine import CalamineWorkbook

from app.clock import local_naive
from app.services.importing.bounds import (
    MAX_SHEETS,
    Limits,
    MergedRange,
    UnreadableFile,
    check_grid,
    check_merged_cells,
    checked_copy,
    ods_merged_ranges,
    read_file,
)

__all__ = ["UnreadableFile", "Limits", "Table", "Uncached", "cell_text", "check_suffix", "sheet_names", "workbook_rows",
           "read_table", "decode_text"]

WORKBOOK_SUFFIXES = {".xlsx", ".xlsm", ".ods"}
CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
SUFFIXES = WORKBOOK_SUFFIXES | CSV_SUFFIXES
#: Delimiters per physical CSV line before the line is refused unparsed (quoted delimiters
#: make the count an over-estimate, hence the margin over the column limit).
_DELIMITER_MARGIN = 64
#: Longest sheet name kept (the job stores it; Excel allows 31 characters).
MAX_SHEET_NAME = 100


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    sheet: str | None
    blank_rows: int = 0
    #: Line number (as the spreadsheet shows it) of each data row.
    lines: list[int] = field(default_factory=list)
    #: Visible sheets of the workbook (empty for CSV), read with the table.
    sheets: list[str] = field(default_factory=list)
    #: Line number of the header row, and (line, first cells) of the rows that could be it.
    header_line: int = 1
    header_choices: list[tuple[int, str]] = field(default_factory=list)


class Uncached(str):
    """A formula cell the file stores without a result (tools that write formulas but never
    calculate them): its value is unknown, so the import refuses the cell (see
    ``engine.check_number_cell``) rather than store the "0" or "" a reader would make of it.
    As text (previews, the error report) it is the formula as written, ``=HYPERLINK(...)``."""

    __slots__ = ()

    def __new__(cls, formula: str) -> Uncached:
        return super().__new__(cls, "=" + formula)

    @property
    def text(self) -> str:
        """The formula without its '='."""
        return self[1:]


def cell_text(value: Any) -> str:
    """A cell as text, the same for imports and the sync: integral floats lose '.0' (phones
    typed as numbers), dates become ISO, None is empty, nothing is evaluated, and control
    characters (which no workbook can hold) are dropped.

    Date-times are wall-clock text in the CRM's zone, as a sheet shows them: an aware value
    (an instant from the database) is converted with ``app.clock.local_naive``; a naive one is
    a cell's own wall-clock value and is kept (issue 11 §5)."""
    if type(value) is str:  # most cells: straight to the text rule below
        return (value if value.isprintable() else ILLEGAL_CHARACTERS_RE.sub("", value)).strip()
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = local_naive(value)
        return value.isoformat(sep=" ", timespec="minutes") if (value.hour or value.minute) else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)  # an Uncached formula: its text
    return (text if text.isprintable() else ILLEGAL_CHARACTERS_RE.sub("", text)).strip()


def check_suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix == ".xls":
        raise UnreadableFile(_l("Old .xls workbooks are not supported: save the file as .xlsx or CSV in Excel."))
    if suffix not in SUFFIXES:
        raise UnreadableFile(_l("Upload an .xlsx workbook or a CSV file (got %(name)s).", name=filename))
    return suffix


def _visible(workbook: CalamineWorkbook) -> list[str]:
    names = workbook.sheet_names
    if len(names) > MAX_SHEETS:
        raise UnreadableFile(_l("The workbook has more than %(n)s sheets.", n=MAX_SHEETS))
    if any(len(name) > MAX_SHEET_NAME for name in names):
        raise UnreadableFile(_l("A sheet name is longer than %(n)s characters: rename the sheet.", n=MAX_SHEET_NAME))
    return [s.name for s in workbook.sheets_metadata if str(s.visible).endswith("Visible")] or names


def _calamine_failure(exc: BaseException) -> UnreadableFile:
    """calamine's errors (and a Rust panic, which pyo3 raises as a BaseException) as a message."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError)):
        raise exc
    return UnreadableFile(_l("This file is not a readable workbook (%(why)s).", why=str(exc)[:120]))


def sheet_names(path: str | Path) -> list[str]:
    """Visible worksheet names of a workbook (empty for CSV); ``UnreadableFile`` for a file
    that is not a workbook or is above the limits (checked before calamine opens it)."""
    if Path(path).suffix.lower() not in WORKBOOK_SUFFIXES:
        return []
    return _read_workbook(Path(path), None, rows=False)[2]


def workbook_rows(path: str | Path, sheet: str | None, *, as_seen: bool = False) -> tuple[list[list[Any]], str]:
    """All rows of one sheet (the first visible one when ``sheet`` is None) as Python values.

    ``as_seen`` (the xlsx sync, whose header is row 1) reads what a person sees below the first
    row: a merged range's value in every cell it covers (所属行业 merged over rows 2-4 is the
    industry of each), and a formula saved without a result as ``Uncached`` (its text), never
    the "" calamine makes of it. Merges reaching into row 1 are left as stored (the header).

    Bounded: ``UnreadableFile`` when the file is above ``Limits.current()`` (size, unpacked
    size, compression ratio, rows, columns, cells) or holds a DOCTYPE; read ``as_seen``, also
    when its merged ranges cover more than ``Limits.cells`` cells in all (the sync then opens the
    file with openpyxl, which makes an object of every merged cell: a merge of A2:XFD1048576
    would be 17 billion). Used by the importer and by the xlsx sync backend, so both read
    through the same checks."""
    rows, sheet, _names = _read_workbook(Path(path), sheet, as_seen=as_seen, merged_from=1, whole_merges=as_seen)
    return rows, sheet


def _read_workbook(path: Path, sheet: str | None, rows: bool = True, as_seen: bool = False,
                   merged_from: int = 0, whole_merges: bool = False) -> tuple[list[list[Any]], str | None, list[str]]:
    """Rows of ``sheet``; ``as_seen`` also spreads merged values over the cells they cover
    (ranges starting at row index ``merged_from`` or below) and marks formulas stored without
    a result (``Uncached``); ``whole_merges`` bounds the merges' full area, not only what the
    grid read holds."""
    limits = Limits.current()
    with checked_copy(path, limits) as copy:
        try:
            with CalamineWorkbook.from_path(str(copy)) as workbook:
                visible = _visible(workbook)
                if not rows:
                    return [], None, visible
                if sheet is None:
                    sheet = visible[0] if visible else None
                if sheet not in workbook.sheet_names:
                    raise UnreadableFile(_l("The workbook has no sheet named %(sheet)s.", sheet=str(sheet)[:100]))
                found = workbook.get_sheet_by_name(sheet)
                values = found.to_python(skip_empty_area=False)
                if as_seen:
                    merges = (_ods_merges(copy, sheet, limits) if copy.suffix == ".ods"
                              else found.merged_cell_ranges or [])
                    if whole_merges:
                        check_merged_cells(sum((b - t + 1) * (r - lt + 1) for (t, lt), (b, r) in merges), limits)
                    _spread_merged(values, [m for m in merges if m[0][0] >= merged_from], limits)
                    _mark_uncached(values, copy, sheet)
        except UnreadableFile:
            raise
        except BaseException as exc:  # noqa: BLE001 - calamine's errors, and its panics
            raise _calamine_failure(exc) from None
    return values, sheet, visible


def _ods_merges(copy: Path, sheet: str, limits: Limits) -> list[MergedRange]:
    """Merged ranges of an ODS sheet, from the checked copy's content.xml."""
    with zipfile.ZipFile(copy) as book:
        if "content.xml" not in book.namelist():
            return []
        return ods_merged_ranges(book.read("content.xml"), sheet, limits)


def _spread_merged(values: list[list[Any]], ranges: list[MergedRange], limits: Limits) -> None:
    """Every cell a merged range covers gets the range's value (所属行业 merged over rows 2-4
    is the industry of each of them), within the grid read; the cells filled in are counted
    against ``limits.cells`` (overlapping ranges are refused, see ``check_merged_cells``)."""
    spread = 0
    for (top, left), (bottom, right) in ranges:
        if top >= len(values) or left >= len(values[top]):
            continue
        value = values[top][left]
        for row in values[top:bottom + 1]:
            right_edge = min(right + 1, len(row))
            spread += max(right_edge - left, 0)
            check_merged_cells(spread, limits)
            for column in range(left, right_edge):
                row[column] = value


_SHEET_TAG = re.compile(rb"<(?:\w+:)?sheet\b[^>]*>")
_RELATION = re.compile(rb"<(?:\w+:)?Relationship\b[^>]*>")
_CELL = re.compile(rb"<c\b([^>]*?)(?:/>|>(.*?)</c>)", re.S)
_FORMULA = re.compile(rb"<f\b[^>]*?(?:/>|>(.*?)</f>)", re.S)
_VALUE = re.compile(rb"<v>[^<]+</v>|<v></v>")
_CELL_REF = re.compile(rb'\br="([A-Z]{1,3})([0-9]{1,7})"')


def _attr(tag: bytes, name: bytes) -> str:
    match = re.search(rb"(?:^|\s)" + name + rb'="([^"]*)"', tag)
    return html.unescape(match.group(1).decode("utf-8", "replace")) if match else ""


def _sheet_part(book: zipfile.ZipFile, sheet: str) -> str | None:
    """The zip member holding ``sheet`` (workbook.xml names it, its relationships place it)."""
    names = set(book.namelist())
    if "xl/workbook.xml" not in names or "xl/_rels/workbook.xml.rels" not in names:
        return None
    ids = [_attr(tag, rb"r:id") for tag in _SHEET_TAG.findall(book.read("xl/workbook.xml"))
           if _attr(tag, b"name") == sheet]
    for tag in _RELATION.findall(book.read("xl/_rels/workbook.xml.rels")):
        if ids and _attr(tag, b"Id") == ids[0]:
            target = _attr(tag, b"Target")
            return target.lstrip("/") if target.startswith("/") else "xl/" + target
    return None


def _mark_uncached(values: list[list[Any]], copy: Path, sheet: str) -> None:
    """Formula cells of an xlsx sheet stored without a result become ``Uncached`` (only
    sheets holding a formula are searched cell by cell)."""
    with zipfile.ZipFile(copy) as book:
        part = _sheet_part(book, sheet)
        if part is None or part not in book.namelist():
            return
        xml = book.read(part)
    if b"<f" not in xml:
        return
    for attrs, content in _CELL.findall(xml):
        if not content or b"<f" not in content or _VALUE.search(content):
            continue
        ref, formula = _CELL_REF.search(attrs), _FORMULA.search(content)
        if ref is None or formula is None:
            continue
        row, column = int(ref.group(2)) - 1, _column_index(ref.group(1))
        if row < len(values) and column < len(values[row]):
            text = html.unescape((formula.group(1) or b"").decode("utf-8", "replace"))
            values[row][column] = Uncached(text or "(shared formula)")


def _column_index(letters: bytes) -> int:
    index = 0
    for char in letters:
        index = index * 26 + char - 64
    return index - 1


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
    refused = UnreadableFile(
        _l("The CSV file is neither UTF-8 nor GBK/GB18030 text: save it again as 'CSV UTF-8' in Excel."))
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        raise refused from None
    # GB18030 decodes nearly any bytes: Big5 (Taiwan, Hong Kong) and other legacy files come out
    # as private-use characters that no GBK text holds. Refused, not imported as garbage.
    if _PRIVATE_USE.search(text):
        raise refused
    return text


_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


def _csv_rows(path: Path) -> list[list[Any]]:
    """The records of a CSV file, streamed and stopped at the first limit crossed."""
    limits = Limits.current()
    raw = read_file(path, limits)
    text = decode_text(raw)
    del raw
    first_line = text[:20000].split("\n", 1)[0]
    delimiter = max((",", "\t", ";"), key=first_line.count)
    _check_lines(text, delimiter, limits)
    # A long cell is data, not an error; the file's size bounds it (process-wide setting,
    # only ever raised, to the configured file size).
    csv.field_size_limit(max(csv.field_size_limit(), limits.file_bytes))
    rows: list[list[Any]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            _check_record(row, len(rows) + 1, limits)
            rows.append(row)
    except csv.Error as exc:
        raise UnreadableFile(_l("The CSV file cannot be read (%(why)s).", why=str(exc)[:120])) from None
    return rows


def _check_lines(text: str, delimiter: str, limits: Limits) -> None:
    """A line with far more delimiters than columns allowed is refused before the csv module
    builds it into a list (a 20 MB line of commas would be 20 million fields)."""
    most = max(map(lambda line: line.count(delimiter), text.split("\n")), default=0)
    if most > limits.columns * _DELIMITER_MARGIN:
        raise _too_many_columns(most + 1, limits)


def _check_record(row: list[str], number: int, limits: Limits) -> None:
    if number > limits.rows:
        raise UnreadableFile(_l("The file has more than %(limit)s rows. Split it into smaller files.",
                                limit=f"{limits.rows:,}"))
    if len(row) > limits.columns:
        raise _too_many_columns(len(row), limits)


def _too_many_columns(count: int, limits: Limits) -> UnreadableFile:
    return UnreadableFile(_l("The file has more than %(limit)s columns (%(count)s). Delete the unused columns.",
                             limit=f"{limits.columns:,}", count=f"{count:,}"))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _filled(value: Any) -> bool:
    return value is not None and (not isinstance(value, str) or bool(value.strip()))


def _width(rows: list[list[Any]], start: int) -> int:
    """Columns up to the last one holding something in ``rows[start:]`` (checked column by
    column from the right: usually the first row answers)."""
    width = max(map(len, rows), default=0)
    while width and not any(len(row) >= width and _filled(row[width - 1]) for row in islice(rows, start, None)):
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


#: Rows searched for the header (title lines, dates and blank rows come above it).
HEADER_SEARCH_ROWS = 20


def _known_headers() -> set[str]:
    from app.services.importing.columns import MODELS, header_key, known_headers

    return {header_key(text) for model in MODELS.values() for text in known_headers(model)}


def _header_row(rows: list[list[Any]]) -> int:
    """Index of the header row: the row among the first ``HEADER_SEARCH_ROWS`` whose cells
    match the most known headers (columns.py aliases; the first such row wins a tie); when
    none matches, the first row with two or more filled cells. A title in A1 with a date in
    D1 above the table is so skipped, whatever it holds."""
    from app.services.importing.columns import header_key

    known = _known_headers()
    scores = [sum(isinstance(v, str) and header_key(v) in known for v in row) for row in rows[:HEADER_SEARCH_ROWS]]
    if scores and max(scores):
        return scores.index(max(scores))
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if sum(not _blank(v) for v in row) >= 2:
            return index
    return 0


def _choices(rows: list[list[Any]]) -> list[tuple[int, str]]:
    """(line, its first filled cells) of the non-blank rows a user may pick as the header."""
    return [(line, " · ".join(cell_text(v)[:20] for v in row if _filled(v))[:80])
            for line, row in enumerate(rows[:HEADER_SEARCH_ROWS], start=1) if any(map(_filled, row))]


def read_table(path: str | Path, sheet: str | None = None, header_line: int | None = None) -> Table:
    """Header row and data rows; fully blank rows are dropped and counted.

    ``header_line`` (1-based, as the spreadsheet shows it, at most ``HEADER_SEARCH_ROWS``) is
    the header row a user picked; None detects it (``_header_row``). Cells of an xlsx or ODS merged
    range all hold its value; formulas stored without a result are ``Uncached``.
    Bounded by ``Limits.current()`` before anything is materialised (see the module
    docstring); ``UnreadableFile`` with a message otherwise."""
    path = Path(path)
    suffix = check_suffix(path.name)
    sheets: list[str] = []
    if suffix in CSV_SUFFIXES:
        rows, sheet = _csv_rows(path), None
    else:
        rows, sheet, sheets = _read_workbook(path, sheet, as_seen=True)
    if not rows:
        raise UnreadableFile(_l("The file is empty."))
    if header_line is not None and not 1 <= header_line <= min(len(rows), HEADER_SEARCH_ROWS):
        raise UnreadableFile(_l("Row %(line)s cannot be the header row.", line=header_line))
    start = _header_row(rows) if header_line is None else header_line - 1
    headers = [str(v).strip() if not _blank(v) else "" for v in rows[start]]
    width = _width(rows, start)
    if not any(headers):
        raise UnreadableFile(_l("The first rows hold no column headers."))
    check_grid(len(rows), width, Limits.current())  # before rows are padded to the width
    # Cells under no header are kept (and shown as unmapped columns), never dropped.
    headers = [(headers[i] if i < len(headers) else "") or _column_letter(i) for i in range(width)]
    headers = _unique(headers)
    data, lines, blank = [], [], 0
    for line, row in enumerate(islice(rows, start + 1, None), start=start + 2):
        if len(row) != width:
            row = row[:width] + [None] * (width - len(row))
        if not any(map(_filled, row)):
            blank += 1
            continue
        data.append(row)
        lines.append(line)
    return Table(headers, data, sheet, blank, lines, sheets, start + 1, _choices(rows))
