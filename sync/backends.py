"""Where the sheet lives: a local .xlsx file (the default) or a Google Sheet.

A backend reads the whole worksheet once and applies one ``SheetWrite``: cells to
rewrite, rows to append and rows to delete. The xlsx backend keeps the other sheets
and formatting, writes a temp file and renames it, and refuses when the file changed
since it was read (its token: mtime, size and SHA-256, compared before the write and again
just before the rename). It rewrites only its worksheet's XML part (``sync.xlsx_patch``,
issue 12: ~30 times faster than openpyxl's load and save of a 50,000-row workbook), and
falls back to openpyxl for a sheet that writer refuses. The Google backend spends one
read (``spreadsheets.get`` of the worksheet's grid data: values, merges, the grid's size and the worksheet's id), and, only
when something is to be written, one check read, at most one structural ``batchUpdate``
(unmerge, delete rows bottom-up, grow the grid) and one ``values:batchUpdate`` (``USER_ENTERED``
so dates are real dates; every text gets a leading apostrophe, so ``=...`` and digits stay
text; one range per run of adjacent cells in a row) per run, retrying 429/5xx/timeouts a bounded number of times.

**Concurrent edits** (issue 11). The Sheets API has no conditional write, so before writing the
Google backend reads again just the rows it will write or delete, the header row and the rows
its appended rows will fill, and compares them (and the grid's row count and the merges there)
with what the plan was based on (the read's token). Any difference — a colleague typed into one
of those rows, inserted or deleted rows, added a row below the table — and nothing is written:
``SheetChanged``, the run fails with a message saying where, and the next run plans from the new
version (the three-way merge then sees the colleague's edit; an app change meanwhile becomes a
conflict, never a silent overwrite). The run fails whole rather than skipping rows because the
runner has no way to leave a row's agreed snapshot unstored. What the check cannot see is an edit
in the fraction of a second between it and the write; the xlsx backend has the same gap between
its last fingerprint and the rename.

**Merged cells** (issue 11 §3). A value merged over rows 2-4 is the value of each of them: the
xlsx read gets it from ``workbook_rows(as_seen=True)``, the Google read from the merges it
reads with the values. A write that touches a merged range (a cell in it, a row deleted from it,
rows appended under it) first undoes the merge and writes its value into every data cell it
covered, so each row keeps what it showed and the new value is not hidden under the merge;
ranges below a deleted row are merged again where their rows moved (openpyxl does not move
merges; Google does). Merges in the header row are never spread.

Both backends hand number cells over as ``SheetNumber`` (text that remembers the number): the
Google read takes each cell's ``effectiveValue`` (what ``UNFORMATTED_VALUE`` with ``SERIAL_NUMBER``
dates gives), so a phone column formatted as ``13,812,345,678`` or a date column comes back as
the number it is, and the codec (``sync.fields``) turns it into canonical text per field.
Date-times are written as wall-clock time in the CRM's zone (``app.clock.local_naive``): a cell
holds no zone, and Sheets serial numbers are local wall time.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import tempfile
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable
from copy import copy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from flask_babel import lazy_gettext as _l
from gspread.utils import rowcol_to_a1
from openpyxl import load_workbook
from openpyxl.cell.cell import TYPE_STRING

from app.clock import local_naive
from app.services import files
from app.services.exporting import looks_like_formula, workbook_text
from app.services.importing.bounds import Limits, MergedRange, check_merged_cells
from app.services.importing.reading import Uncached, UnreadableFile, cell_text, workbook_rows
from sync import xlsx_patch


class SheetChanged(Exception):
    """The sheet changed between our read and our write: nothing was written."""


class SheetUnavailable(Exception):
    """The sheet could not be reached or read (after retries); the message says why."""


@dataclass
class SheetData:
    headers: list[str]
    rows: list[list[str]]  # data rows (sheet row = index + 2), padded to the header width
    token: Any = None
    modified_at: datetime | None = None


@dataclass
class SheetWrite:
    cells: dict[tuple[int, int], Any] = field(default_factory=dict)  # (data row, column) -> value
    append: list[list[Any]] = field(default_factory=list)
    delete: list[int] = field(default_factory=list)  # data rows to remove
    headers: dict[int, str] = field(default_factory=dict)  # new header cells (e.g. the status column)

    @property
    def empty(self) -> bool:
        return not (self.cells or self.append or self.delete or self.headers)


#: Beyond 15 significant digits a spreadsheet number (an IEEE double) no longer holds what was typed.
EXACT_DIGITS = 15


class SheetNumber(str):
    """A number cell as text (``13812345678``, ``12.5``, ``9.13501001200014E+17``) that keeps the
    number in ``number``: everything that compares or strips text sees text, and the codec can
    tell a number from typed digits. An integral number beyond ``EXACT_DIGITS`` digits is shown
    in exponent form, so its invented low digits can never pass for a code."""

    number: float | int
    #: What the sheet shows for it (Google's ``formattedValue``: ``2024-05-01`` for the serial
    #: 45413 of a date typed into a text column); None when the backend does not say.
    shown: str | None = None

    def __new__(cls, number: float | int) -> SheetNumber:
        if float(number).is_integer() and abs(number) < 10 ** EXACT_DIGITS:
            text = str(int(number))
        else:
            text = format(float(number), f".{EXACT_DIGITS}G")
        cell = super().__new__(cls, text)
        cell.number = number
        return cell

    @property
    def exact(self) -> bool:
        """False when the number has more digits than a double keeps (an 18-digit code)."""
        return abs(self.number) < 10 ** EXACT_DIGITS


def sheet_cell(value: Any) -> str:
    """One cell as the planner sees it: numbers as ``SheetNumber``, a formula saved without a
    result as its ``Uncached`` text (``=HYPERLINK(...)``: what was typed, never the "" a reader
    makes of it; the type stays so that a rule can tell), everything else ``cell_text``."""
    if type(value) is str:  # most cells (issue 12: 300,000 of them in a 50,000-row read): cell_text's rule, inline
        return value.strip() if value.isprintable() else cell_text(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return SheetNumber(value)
    if isinstance(value, (Uncached, SheetNumber)):
        return value
    return cell_text(value)


def _rows_as_text(raw: list[list[Any]]) -> SheetData:
    headers = [str(sheet_cell(v)) for v in raw[0]] if raw else []
    while headers and not headers[-1]:
        headers.pop()
    width = len(headers)
    rows = [[sheet_cell(v) for v in row[:width]] + [""] * (width - len(row[:width])) for row in raw[1:]]
    return SheetData(headers, rows)


def _opened_merges(merges: list[MergedRange], change: SheetWrite, data_rows: int) -> list[MergedRange]:
    """The merged ranges a write must undo first (0-based sheet rows and columns, inclusive; the
    header is row 0, data rows 1..``data_rows``): those holding a cell written, a row deleted,
    or reaching below the data rows when rows are appended. A value written under a merge would
    be hidden, and a merge losing its first row loses its value for the rows it still covers."""
    columns_by_row: dict[int, set[int]] = {}
    for row, column in change.cells:
        columns_by_row.setdefault(row + 1, set()).add(column)
    if change.headers:
        columns_by_row.setdefault(0, set()).update(change.headers)
    written = sorted(columns_by_row)
    deleted = sorted({row + 1 for row in change.delete})
    opened = []
    for merge in merges:
        (top, left), (bottom, right) = merge
        if ((change.append and bottom > data_rows)
                or bisect_right(deleted, bottom) > bisect_left(deleted, top)
                or any(left <= column <= right for row in written[bisect_left(written, top):bisect_right(written, bottom)]
                       for column in columns_by_row[row])):
            opened.append(merge)
    return opened


class XlsxBackend:
    def __init__(self, path: str | Path, worksheet: str) -> None:
        self.path, self.worksheet = Path(path), worksheet
        self.calls: Counter = Counter()
        self.writer = ""  # which writer built the last file: "patch" or "openpyxl" (see _build)

    def _fingerprint(self) -> tuple[int, int, str]:
        """(mtime, size, sha256): streamed in chunks, so a huge file costs no memory here
        (the read that follows refuses it with the importer's size message)."""
        with open(self.path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        stat = self.path.stat()
        return stat.st_mtime_ns, stat.st_size, digest

    def read(self) -> SheetData:
        """The worksheet as a person sees it (merged values on every row they cover, see
        ``workbook_rows``); the token is the file's fingerprint, ``modified_at`` its
        modification time as an aware UTC instant."""
        if not self.path.exists():
            raise SheetUnavailable(str(_l("The file %(path)s does not exist.", path=str(self.path))))
        self.calls["read"] += 1
        token = self._fingerprint()
        try:
            raw, _ = workbook_rows(self.path, self.worksheet, as_seen=True)  # the importer's reader and messages
        except UnreadableFile as exc:
            raise SheetUnavailable(str(exc)) from None
        data = _rows_as_text(raw)
        data.token = token
        data.modified_at = datetime.fromtimestamp(token[0] / 1e9, UTC)
        return data

    def write(self, change: SheetWrite, token: Any) -> None:
        """Apply ``change`` to the file read with ``token``; ``SheetChanged`` (nothing written)
        when the file is not the one read, before the write or just before the rename."""
        if change.empty:
            return
        if self._fingerprint() != token:
            raise SheetChanged(str(_l("%(path)s changed while the sync ran; nothing was written, the next run "
                                      "will take the new version.", path=self.path.name)))
        handle, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}-", suffix=".xlsx")
        os.close(handle)
        try:
            self._build(change, Path(temp))
            if self._fingerprint() != token:  # someone saved while we built the new file
                raise SheetChanged(str(_l("%(path)s changed while the sync ran; nothing was written.",
                                          path=self.path.name)))
            os.replace(temp, self.path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        self.calls["write"] += 1

    def _build(self, change: SheetWrite, temp: Path) -> None:
        """The new file at ``temp``: our worksheet's XML part rewritten (``sync.xlsx_patch``;
        every other part copied as it is), or, for a sheet that writer refuses (``Unpatchable``),
        the whole workbook through openpyxl (~30 times slower: 50,000 rows, 0.8 s against 26 s
        on a loaded machine).
        ``self.writer`` says which ("patch" or "openpyxl")."""
        try:
            xlsx_patch.patch(self.path, temp, self.worksheet, change,
                             lambda merges, data_rows: _opened_merges(merges, change, data_rows))
            self.writer = "patch"
            return
        except xlsx_patch.Unpatchable:
            pass
        book = load_workbook(self.path)  # bounded: the same file the read checked (same fingerprint)
        sheet = book[self.worksheet]
        again = _undo_merges(sheet, change)
        for column, text in change.headers.items():
            sheet.cell(row=1, column=column + 1, value=text)
        for (row, column), value in change.cells.items():
            _set(sheet.cell(row=row + 2, column=column + 1), value)
        for row in sorted(change.delete, reverse=True):
            sheet.delete_rows(row + 2)
        for min_row, min_col, max_row, max_col in again:
            sheet.merge_cells(start_row=min_row, start_column=min_col, end_row=max_row, end_column=max_col)
        next_row = _last_row(sheet) + 1
        for offset, values in enumerate(change.append):
            for column, value in enumerate(values):
                _set(sheet.cell(row=next_row + offset, column=column + 1), value)
        book.save(temp)
        self.writer = "openpyxl"


def _undo_merges(sheet: Any, change: SheetWrite) -> list[tuple[int, int, int, int]]:
    """Undo the merges ``change`` touches (``_opened_merges``), their value written into every
    data cell they covered; undo the merges below a deleted row too and return them (1-based
    min_row, min_col, max_row, max_col, moved up by the rows deleted above them) to be merged
    again after the deletion, since openpyxl's ``delete_rows`` moves cells but not merges."""
    if not sheet.merged_cells.ranges:
        return []
    last = _last_row(sheet)
    ranges = list(sheet.merged_cells.ranges)
    shapes = [((m.min_row - 1, m.min_col - 1), (m.max_row - 1, m.max_col - 1)) for m in ranges]
    opened = set(_opened_merges(shapes, change, last - 1))
    deleted = sorted({row + 2 for row in change.delete})
    again = []
    for merged, shape in zip(ranges, shapes, strict=True):
        above = bisect_left(deleted, merged.min_row)
        if shape in opened:
            _unmerge_filled(sheet, merged, last)
        elif above:
            sheet.unmerge_cells(merged.coord)
            again.append((merged.min_row - above, merged.min_col, merged.max_row - above, merged.max_col))
    return again


def _unmerge_filled(sheet: Any, merged: Any, last: int) -> None:
    """Unmerge ``merged`` and give each cell it covered in the data rows (2..``last``) the
    range's value and style, as the read saw them; a merge reaching into the header row is only
    unmerged (the read spread nothing there)."""
    first = sheet.cell(row=merged.min_row, column=merged.min_col)
    value, style = first.value, copy(first._style)
    top, left, bottom, right = merged.min_row, merged.min_col, merged.max_row, merged.max_col
    sheet.unmerge_cells(merged.coord)
    if top < 2:
        return
    for row in range(top, min(bottom, last) + 1):
        for column in range(left, right + 1):
            if (row, column) != (top, left):
                cell = sheet.cell(row=row, column=column)
                cell.value, cell._style = value, copy(style)


def _last_row(sheet: Any) -> int:
    """The last row holding a value (1 when none), from the cells openpyxl holds: ``sheet[row]``
    would create a cell in every column of every row it looks at (a merge down a whole
    column makes ``max_row`` 1,048,576)."""
    return max((row for (row, _), cell in sheet._cells.items() if cell.value not in (None, "")), default=1)


def _set(cell: Any, value: Any) -> None:
    """Dates as real dates (an instant as the CRM's wall-clock time: a cell holds no zone, and
    openpyxl refuses aware values); text that looks like a formula stays text."""
    if isinstance(value, (date, datetime)):
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = local_naive(value)
        cell.value = value
        cell.number_format = "yyyy-mm-dd" if not isinstance(value, datetime) else "yyyy-mm-dd hh:mm"
        return
    value = workbook_text(value)
    cell.value = value if value != "" else None
    if looks_like_formula(value):
        cell.data_type = TYPE_STRING


# --- Google Sheets --------------------------------------------------------------------


@dataclass
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** attempt) * (0.5 + random.random() / 2)


_RETRYABLE = {429, 500, 502, 503, 504}
#: What a read asks for: the worksheet's id and size, its merges and each cell's effective value.
_FIELDS = ("sheets(properties(sheetId,title,gridProperties(rowCount,columnCount)),merges,"
           "data(startRow,startColumn,rowData(values(effectiveValue,formattedValue))))")
#: An error cell as ``UNFORMATTED_VALUE`` shows it (``ErrorValue.type`` of the API reference).
_ERROR_TEXT = {"ERROR": "#ERROR!", "NULL_VALUE": "#NULL!", "DIVIDE_BY_ZERO": "#DIV/0!", "VALUE": "#VALUE!",
               "REF": "#REF!", "NAME": "#NAME?", "NUM": "#NUM!", "N_A": "#N/A", "LOADING": "Loading..."}
#: Separate row ranges the check before a write asks for; more are read as one span.
MAX_CHECK_RANGES = 1000


@dataclass
class _Snapshot:
    """What a Google run planned from (the read's token, handed back to ``write``): the header,
    the data rows as read (merged values spread), the cells a merge covers (read empty), the
    merges and the grid's row count."""

    headers: list[str]
    rows: list[list[str]]
    covered: set[tuple[int, int]]
    merges: list[MergedRange]
    row_count: int

    def expected(self, row: int, width: int) -> list[str]:
        """Sheet row ``row`` (0-based, >= 1) as a read returned it, before merges were spread."""
        values = self.rows[row - 1]
        return ["" if (row, column) in self.covered else str(values[column]) for column in range(width)]


class GoogleSheetsBackend:
    """The real gspread client; its HTTP session is given (tests pass the emulator's)."""

    def __init__(self, client: Any, key: str, worksheet: str, sheet_id: int | None = None,
                 retry: RetryPolicy | None = None) -> None:
        self.client, self.key, self.worksheet = client, _key_from(key), worksheet
        self.sheet_id, self.retry = sheet_id, retry or RetryPolicy()
        self.calls: Counter = Counter()
        self.grid_rows = self.data_rows = 0

    def _call(self, kind: str, func: Callable[[], Any], idempotent: bool = True) -> Any:
        """One API call with our own bounded, jittered retry (gspread's backoff never gives up)."""
        import gspread
        import requests

        for attempt in range(self.retry.attempts):
            self.calls[kind] += 1
            try:
                return func()
            except gspread.exceptions.APIError as exc:
                status = exc.response.status_code
                if status in (403, 404):  # 403 PERMISSION_DENIED: exists but not shared with us
                    raise SheetUnavailable(str(_l("The Google Sheet was not found or is not shared with the "
                                                  "service account."))) from None
                if status == 400 and "Unable to parse range" in str(exc):
                    raise self._no_worksheet() from None
                retry = status == 429 or (idempotent and status in _RETRYABLE)
                if not retry or attempt == self.retry.attempts - 1:
                    raise SheetUnavailable(f"Google Sheets: {status} {exc}") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not idempotent or attempt == self.retry.attempts - 1:
                    raise SheetUnavailable(f"Google Sheets: {type(exc).__name__}") from None
            self.retry.sleep(self.retry.delay(attempt))
        raise SheetUnavailable("Google Sheets: no attempts left")

    def _no_worksheet(self) -> SheetUnavailable:
        return SheetUnavailable(str(_l("The Google Sheet has no worksheet named %(sheet)s.", sheet=self.worksheet)))

    def _quoted(self) -> str:
        return "'" + self.worksheet.replace("'", "''") + "'"

    def _sheet(self, ranges: list[str], kind: str) -> dict:
        """Our worksheet's part of one read of ``ranges`` (grid data and merges): ``spreadsheets.get``
        for one range, ``spreadsheets.getByDataFilter`` (a POST: any number of ranges, no URL
        length limit) for several."""
        if len(ranges) == 1:
            result = self._call(kind, lambda: self.client.http_client.spreadsheets_get(
                self.key, params={"ranges": ranges, "fields": _FIELDS}))
        else:
            url = f"https://sheets.googleapis.com/v4/spreadsheets/{self.key}:getByDataFilter"
            body = {"dataFilters": [{"a1Range": text} for text in ranges]}
            result = self._call(kind, lambda: self.client.http_client.request(
                "post", url, params={"fields": _FIELDS}, json=body).json())
        for sheet in result.get("sheets", []):
            if sheet.get("properties", {}).get("title") == self.worksheet:
                return sheet
        raise self._no_worksheet()

    def resolve_sheet_id(self) -> int:
        """Worksheet id for structural requests (every read sets it; cached on the target)."""
        if self.sheet_id is None:
            self.sheet_id = self._sheet([f"{self._quoted()}!A1"], "metadata")["properties"].get("sheetId", 0)
        return self.sheet_id

    def read(self) -> SheetData:
        """The worksheet in one call: values (merged values on every data row they cover), the
        grid's size and the worksheet's id; the token (``_Snapshot``) is what ``write`` checks."""
        sheet = self._sheet([self._quoted()], "read")
        props = sheet.get("properties", {})
        self.sheet_id = props.get("sheetId", 0)  # protobuf JSON leaves out a zero id
        self.grid_rows = props.get("gridProperties", {}).get("rowCount", 0)
        grids = sheet.get("data") or [{}]
        data = _rows_as_text(_grid_rows(grids[0]))
        merges = _merges(sheet)
        covered = _spread(data, merges)
        self.data_rows = len(data.rows)
        data.token = _Snapshot(data.headers, data.rows, covered, merges, self.grid_rows)
        return data

    def write(self, change: SheetWrite, token: Any) -> None:
        """Apply ``change``: first the check (``SheetChanged``, nothing written, when the rows it
        touches changed since the read), then one structural ``batchUpdate`` (unmerge what the
        change touches, delete rows bottom-up, grow the grid) and one ``values:batchUpdate``."""
        if change.empty:
            return
        snapshot = token if isinstance(token, _Snapshot) else None
        if snapshot is not None:
            self._check_unchanged(change, snapshot)
        opened = _opened_merges(snapshot.merges, change, self.data_rows) if snapshot is not None else []
        gone = sorted(set(change.delete))
        used = 1 + self.data_rows - len(gone)  # header + surviving data rows
        need = used + len(change.append) - (self.grid_rows - len(gone))
        requests_ = [{"unmergeCells": {"range": self._grid_range(merge)}} for merge in opened]
        requests_ += [{"deleteDimension": {"range": {"sheetId": self.resolve_sheet_id(), "dimension": "ROWS",
                                                     "startIndex": row + 1, "endIndex": row + 2}}}
                      for row in reversed(gone)]
        if need > 0:
            requests_.append({"appendDimension": {"sheetId": self.resolve_sheet_id(), "dimension": "ROWS",
                                                  "length": need}})
        if requests_:
            self._call("structural", lambda: self.client.http_client.batch_update(self.key, {"requests": requests_}),
                       idempotent=False)
        cells = {(1, column + 1): _entered(text) for column, text in change.headers.items()}
        cells.update(self._fills(opened, change, gone, snapshot))
        dropped = set(gone)
        for (row, column), value in change.cells.items():
            if row not in dropped:
                cells[(row - bisect_left(gone, row) + 2, column + 1)] = _entered(value)
        data = _runs(self._quoted(), cells)
        if change.append:
            data.append({"range": f"{self._quoted()}!A{used + 1}",
                         "values": [[_entered(v) for v in row] for row in change.append]})
        if data:
            self._call("values_write", lambda: self.client.http_client.values_batch_update(
                self.key, {"valueInputOption": "USER_ENTERED", "data": data}))

    def _grid_range(self, merge: MergedRange) -> dict:
        (top, left), (bottom, right) = merge
        return {"sheetId": self.resolve_sheet_id(), "startRowIndex": top, "endRowIndex": bottom + 1,
                "startColumnIndex": left, "endColumnIndex": right + 1}

    def _fills(self, opened: list[MergedRange], change: SheetWrite, gone: list[int],
               snapshot: _Snapshot | None) -> dict[tuple[int, int], Any]:
        """Values for the cells an undone merge covered in the data rows, {(1-based sheet row after
        the deletions, 1-based column): value}: the merge's value, as the read saw it on each of
        them (a cell the change writes or a row it deletes excepted)."""
        fills, dropped = {}, set(gone)
        for (top, left), (bottom, right) in opened:
            if snapshot is None or top < 1 or top > len(snapshot.rows) or left >= len(snapshot.headers):
                continue
            value = _entered(_typed(snapshot.rows[top - 1][left]))
            for row in range(top, min(bottom, len(snapshot.rows)) + 1):
                if row - 1 in dropped:
                    continue
                for column in range(left, right + 1):
                    if (row, column) != (top, left) and (row - 1, column) not in change.cells:
                        fills[(row - 1 - bisect_left(gone, row - 1) + 2, column + 1)] = value
        return fills

    def _check_unchanged(self, change: SheetWrite, snapshot: _Snapshot) -> None:
        """Read again the header, the rows ``change`` writes or deletes and the rows its appended
        rows will fill, in one call; ``SheetChanged`` when any differs from the read the plan
        came from (or rows were inserted or deleted, or merges there changed)."""
        rows = {0} | {row + 1 for row, _ in change.cells} | {row + 1 for row in change.delete}
        # Rows past the grid cannot have been typed into (adding rows changes the row count).
        appended = set(range(len(snapshot.rows) + 1,
                             min(len(snapshot.rows) + 1 + len(change.append), snapshot.row_count)))
        spans = _spans(sorted(rows | appended))
        sheet = self._sheet([f"{self._quoted()}!{top + 1}:{bottom + 1}" for top, bottom in spans], "check")
        now: dict[int, list[Any]] = {}
        for grid in sheet.get("data", []):
            start = grid.get("startRow", 0)
            for offset, values in enumerate(_grid_rows(grid)):
                now[start + offset] = values
        where = []
        if sheet.get("properties", {}).get("gridProperties", {}).get("rowCount", 0) != snapshot.row_count:
            where.append(str(_l("rows inserted or deleted")))
        if _meeting(_merges(sheet), spans) != _meeting(snapshot.merges, spans):
            where.append(str(_l("merged cells")))
        if _texts(now.get(0, [])) != snapshot.headers:
            where.append(str(_l("the header row")))
        width = len(snapshot.headers)
        edited = [row + 1 for row in sorted(rows - {0})
                  if row <= len(snapshot.rows) and _texts(now.get(row, []), width) != snapshot.expected(row, width)]
        if edited:
            where.append(str(_l("rows %(rows)s", rows=", ".join(map(str, edited[:10])))))
        if any(any(_texts(now.get(row, []))) for row in appended):
            where.append(str(_l("rows added below the table")))
        if where:
            raise SheetChanged(str(_l("The Google Sheet changed while the sync ran (%(where)s): nothing was "
                                      "written to it. The next run takes the new version.", where="; ".join(where))))


def _runs(quoted: str, cells: dict[tuple[int, int], Any]) -> list[dict]:
    """``values:batchUpdate`` entries for ``cells`` ({(1-based row, 1-based column): value}): one
    per run of adjacent cells in a row (``'客户'!B5:D5``), not one per cell (issue 12: a changed
    run of 50,000 rows sends ~1,000 cells; the request and Google's parsing of it shrink)."""
    data: list[dict] = []
    start = previous = None
    values: list[Any] = []
    for row, column in sorted(cells):
        if previous is not None and row == previous[0] and column == previous[1] + 1:
            values.append(cells[(row, column)])
        else:
            if start is not None:
                data.append(_run_entry(quoted, start, previous, values))
            start, values = (row, column), [cells[(row, column)]]
        previous = (row, column)
    if start is not None:
        data.append(_run_entry(quoted, start, previous, values))
    return data


def _run_entry(quoted: str, start: tuple[int, int], end: tuple[int, int], values: list[Any]) -> dict:
    first = rowcol_to_a1(*start)
    cells = first if start == end else f"{first}:{rowcol_to_a1(*end)}"
    return {"range": f"{quoted}!{cells}", "values": [values]}


def _grid_rows(grid: dict) -> list[list[Any]]:
    """The rows of a ``GridData`` as values (trailing empty rows and cells are left out by the API)."""
    return [[_text_or_effective(cell) for cell in row.get("values", ())] for row in grid.get("rowData", ())]


def _text_or_effective(cell: dict) -> Any:
    """``_effective``, with the common case (a text cell) first: a 50,000-row read has 300,000 cells."""
    value = cell.get("effectiveValue")
    text = value.get("stringValue") if value else None
    if text is not None:
        return text
    found = _effective(cell)
    if isinstance(found, (int, float)) and not isinstance(found, bool):
        found = SheetNumber(found)
        found.shown = cell.get("formattedValue")
    return found


def _effective(cell: dict) -> Any:
    """A cell's ``effectiveValue`` as ``UNFORMATTED_VALUE`` gives it: text, a number (dates as
    serials), a boolean, an error as its ``#NAME?`` text; "" when empty. (``ExtendedValue`` is a
    union: one key at most.)"""
    value = cell.get("effectiveValue")
    if not value:
        return ""
    for kind, found in value.items():
        if kind == "errorValue":
            return _ERROR_TEXT.get(found.get("type"), "#ERROR!")
        return found
    return ""


def _merges(sheet: dict) -> list[MergedRange]:
    """A sheet's merges (``GridRange``: half-open, zero indexes left out) as inclusive corners."""
    return [((m.get("startRowIndex", 0), m.get("startColumnIndex", 0)),
             (m.get("endRowIndex", 1) - 1, m.get("endColumnIndex", 1) - 1)) for m in sheet.get("merges", [])]


def _spread(data: SheetData, merges: list[MergedRange]) -> set[tuple[int, int]]:
    """Each merge starting below the header gives its value to every data cell it covers (within
    the rows read and the header's width); returns the covered cells (0-based sheet rows)."""
    covered: set[tuple[int, int]] = set()
    limits, width = Limits.current(), len(data.headers)
    for (top, left), (bottom, right) in merges:
        if top < 1 or top > len(data.rows) or left >= width:
            continue
        value = data.rows[top - 1][left]
        for row in range(top, min(bottom, len(data.rows)) + 1):
            for column in range(left, min(right, width - 1) + 1):
                if (row, column) != (top, left):
                    data.rows[row - 1][column] = value
                    covered.add((row, column))
        check_merged_cells(len(covered), limits)
    return covered


def _spans(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted rows as runs of consecutive rows (inclusive); one run from the first to the last
    when there would be more than ``MAX_CHECK_RANGES`` (the request stays small)."""
    spans: list[tuple[int, int]] = []
    for row in rows:
        if spans and row == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], row)
        else:
            spans.append((row, row))
    return spans if len(spans) <= MAX_CHECK_RANGES else [(rows[0], rows[-1])]


def _meeting(merges: list[MergedRange], spans: list[tuple[int, int]]) -> set[MergedRange]:
    """The merges that share a row with one of ``spans`` (what a read of those rows reports)."""
    return {m for m in merges if any(m[0][0] <= bottom and top <= m[1][0] for top, bottom in spans)}


def _texts(values: list[Any], width: int | None = None) -> list[str]:
    """A row as the read's text: the whole row without its trailing empty cells, or padded to ``width``."""
    texts = [str(sheet_cell(v)) for v in values]
    if width is None:
        while texts and not texts[-1]:
            texts.pop()
        return texts
    return (texts + [""] * width)[:width]


def _typed(cell: str) -> Any:
    """A read cell back as the value to write: a number cell as its number."""
    return cell.number if isinstance(cell, SheetNumber) else cell


def _entered(value: Any) -> Any:
    """A value for ``USER_ENTERED``: a date as ISO text (Sheets makes it a real date with a date
    format; an instant as the CRM's wall-clock time, which is what a serial number holds), any
    other text behind an apostrophe, the UI's "this is text" mark that is not stored (so ``=...``
    never becomes a formula, and ``0012`` or an 18-digit code never a number)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = local_naive(value)
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value:
        return "'" + value
    return value


def _key_from(location: str) -> str:
    """Spreadsheet key from a key or a browser URL (…/spreadsheets/d/<key>/edit)."""
    match = re.search(r"/spreadsheets/d/([A-Za-z0-9_-]+)", location)
    return match.group(1) if match else location.strip()


def for_target(target: Any) -> XlsxBackend | GoogleSheetsBackend:
    """The backend a target names. Google uses the service account file from the config.

    xlsx: the stored path is checked again at every run (``files.checked_path``: under
    ``CRM_FILES_ROOT``, symlinks followed), so a value saved before the rule, or a link
    changed since, fails the run with ``SheetUnavailable`` instead of being read or written.
    """
    if target.backend == "xlsx":
        try:
            path = files.checked_path(target.location, kind=files.FILE, suffixes=(".xlsx",))
        except ValueError as exc:
            raise SheetUnavailable(str(exc)) from None
        return XlsxBackend(path, target.worksheet)
    import gspread
    from flask import current_app

    account = current_app.config.get("GOOGLE_SERVICE_ACCOUNT_FILE")
    if not account or not Path(account).exists():
        raise SheetUnavailable(str(_l("Set GOOGLE_SERVICE_ACCOUNT_FILE to a service-account JSON file to sync "
                                      "with Google Sheets.")))
    client = gspread.service_account(filename=account, http_client=gspread.http_client.HTTPClient)
    return GoogleSheetsBackend(client, target.location, target.worksheet, target.sheet_id)
