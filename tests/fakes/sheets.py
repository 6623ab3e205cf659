"""An in-process emulator of the Google Sheets v4 endpoints gspread uses.

Mounted as a ``requests`` transport adapter on the session handed to
``gspread.Client(auth=None, session=...)``, so tests run the real gspread client with
no network. Faithful where the sync depends on it: URL-decoded A1 ranges, trailing
empty rows and cells trimmed from reads, ``gridProperties`` that limit writes (400 like
Google) and grow on append/appendDimension, RAW versus USER_ENTERED input (USER_ENTERED
parses as the UI does: ``=`` a formula, ``'`` text, ``13,812,345,678`` a number with a
thousands format, ``2024-05-01`` a date serial with a date format; JSON numbers are numbers
either way), ``valueRenderOption`` / ``dateTimeRenderOption`` on reads (FORMATTED_VALUE shows the
number format; UNFORMATTED_VALUE gives numbers, and dates as serial numbers unless
FORMATTED_STRING is asked for, as documented for spreadsheets.values.get), Google-shaped
error JSON (404, 400, 429 RESOURCE_EXHAUSTED, 5xx), a log of every request, and fault
injection (fail the Nth request, or the next few, with a status or a timeout).

Merged cells as Google keeps them (``mergeCells`` / ``unmergeCells`` requests, what gspread's
``merge_cells`` sends): merging keeps the top-left value only; a value read returns a merge's
value on its top-left cell and nothing on the cells it covers; a value written into a covered
cell is kept but not shown until the range is unmerged; deleting or inserting rows moves the
merges below (and shrinks or grows a merge they fall inside). ``spreadsheets.get`` with
``ranges`` (and ``getByDataFilter`` with ``a1Range`` filters) answers with the grid data Google
gives under a field mask (``effectiveValue`` per cell, ``merges``, ``gridProperties``; a zero
``startRow`` omitted; a merge's ``GridRange`` with all four indexes and no ``sheetId`` 0, as the
cassettes show). ``on_request`` runs a test's action just before a given
request is answered: a colleague typing into the sheet while a sync run is between its read and
its write.

Issue 21 (the gspread cassettes replayed in ``tests/fakes/test_recorded.py``): formulas typed
with ``USER_ENTERED`` are evaluated (``tests/fakes/formulas.py``: arithmetic, same-sheet
references, simple functions; reads answer the result, ``FORMULA`` the text, the grid data
``userEnteredValue.formulaValue``, ``effectiveValue`` and ``formattedValue``); a book marked
``unshare()`` answers 403 PERMISSION_DENIED; ``spreadsheets:batchUpdate`` is all-or-nothing and
names the failing ``requests[i]``; returned ranges quote a sheet name only when Google does;
``values.append`` finds the table; bodies of the wrong type are refused with ``fieldViolations``;
``fields`` masks are applied to ``spreadsheets.get`` answers.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from requests.adapters import BaseAdapter

from tests.fakes.formulas import DateSerial, ErrorValue, evaluate, number_text, shift_rows

BASE = "https://sheets.googleapis.com/v4/spreadsheets"
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 502: "BAD_GATEWAY", 503: "UNAVAILABLE"}
_CELL = re.compile(r"^([A-Z]*)(\d*)$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_GROUPED = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{1,2}:\d{2}(:\d{2})?)?$")
_EPOCH = datetime(1899, 12, 30)  # serial 0, as the API documents (days since 1899-12-30)
THOUSANDS, DAY, MINUTE = "#,##0", "yyyy-mm-dd", "yyyy-mm-dd hh:mm"
_RENDER = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
_DATE_RENDER = ("SERIAL_NUMBER", "FORMATTED_STRING")
_PLAIN_TITLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CELL_LIKE = re.compile(r"^(?:[A-Za-z]{1,3}\d+|[Rr]\d*[Cc]\d*)$")
NOT_SHARED = "The caller does not have permission"
CELL_FIELDS = frozenset({"userEnteredValue", "effectiveValue", "formattedValue"})  # what a CellData here holds


class SheetsError(Exception):
    def __init__(self, code: int, message: str, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


def _bad_field(name: str, value: Any, kind: str = "ListValue") -> SheetsError:
    """Google's answer to a body field of the wrong JSON type (``"values": "X"``)."""
    text = f"Invalid value at '{name}' (type.googleapis.com/google.protobuf.{kind}), {json.dumps(value)}"
    return SheetsError(400, text, [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                    "fieldViolations": [{"field": name, "description": text}]}])


@dataclass
class Formula:
    """A cell entered with USER_ENTERED that starts with '=' (evaluated on every read)."""

    text: str


def quoted_title(title: str) -> str:
    """A sheet name as Google writes it in a returned range: bare when it is ASCII letters,
    digits and _ and cannot be read as a cell (``Sheet1``), quoted otherwise (``'D3'``,
    ``'My Sheet'``, ``'客户'``; cassettes and a recorded ``'Лист2'!A1``)."""
    if _PLAIN_TITLE.match(title) and not _CELL_LIKE.match(title):
        return title
    return "'" + title.replace("'", "''") + "'"


def box_a1(top: int, left: int, bottom: int, right: int) -> str:
    """A half-open box as A1 text: ``A1`` for one cell, ``A1:D2`` otherwise."""
    first, last = a1(top, left), a1(bottom - 1, right - 1)
    return first if first == last else f"{first}:{last}"


@dataclass
class Worksheet:
    sheet_id: int
    title: str
    rows: int = 1000
    cols: int = 26
    cells: dict[tuple[int, int], Any] = field(default_factory=dict)  # (row, col), 0-based
    formats: dict[tuple[int, int], str] = field(default_factory=dict)  # number format patterns
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)  # (top, left, bottom, right), half-open

    def covered(self, row: int, col: int) -> bool:
        """A cell hidden under a merge (every cell of a merged range but its top-left one)."""
        return any(t <= row < b and lt <= col < r and (row, col) != (t, lt) for t, lt, b, r in self.merges)

    def merge(self, top: int, left: int, bottom: int, right: int) -> None:
        """``mergeCells`` (MERGE_ALL): only the top-left value stays, as in the Sheets UI; merges
        wholly inside the range are replaced (cassette ``CellTest.test_merge_cells``)."""
        if bottom > self.rows or right > self.cols or top >= bottom or left >= right:
            raise SheetsError(400, "the range is outside the grid or empty.")
        inside = [m for m in self.merges if top <= m[0] and m[2] <= bottom and left <= m[1] and m[3] <= right]
        if any(t < bottom and top < b and lt < right and left < r
               for t, lt, b, r in self.merges if (t, lt, b, r) not in inside):
            raise SheetsError(400, "You can't merge cells that overlap another merge.")
        self.merges = [m for m in self.merges if m not in inside]
        for key in [k for k in self.cells if top <= k[0] < bottom and left <= k[1] < right and k != (top, left)]:
            del self.cells[key]
        self.merges.append((top, left, bottom, right))

    def unmerge(self, top: int, left: int, bottom: int, right: int) -> None:
        """``unmergeCells``: every merge inside the range is undone; one only partly inside is an error."""
        kept = []
        for t, lt, b, r in self.merges:
            inside = top <= t and b <= bottom and left <= lt and r <= right
            if not inside and t < bottom and top < b and lt < right and left < r:
                raise SheetsError(400, "You must select all cells in a merged range to merge or unmerge them.")
            if not inside:
                kept.append((t, lt, b, r))
        self.merges = kept

    def used(self) -> tuple[int, int]:
        if not self.cells:
            return 0, 0
        return max(r for r, _ in self.cells) + 1, max(c for _, c in self.cells) + 1

    def grid(self, top: int, left: int, bottom: int, right: int) -> list[list[Any]]:
        """Values of a rectangle, trailing empty cells and rows trimmed as Google does."""
        out = []
        for r in range(top, min(bottom, self.rows)):
            row = [self.cells.get((r, c), "") for c in range(left, min(right, self.cols))]
            if self.merges:  # a covered cell shows nothing, whatever was written into it
                row = ["" if self.covered(r, left + j) else value for j, value in enumerate(row)]
            while row and row[-1] == "":
                row.pop()
            out.append(row)
        while out and not out[-1]:
            out.pop()
        return out

    def write(self, top: int, left: int, values: list[list[Any]], raw: bool) -> tuple[int, int, int]:
        """Write ``values`` from (top, left); null leaves a cell as it is. Returns (rows, columns,
        cells) actually written: a row or column of nulls only is not counted (the API's
        "rows where at least one cell was updated")."""
        height = len(values)
        width = max((len(row) for row in values), default=0)
        if top + height > self.rows or left + width > self.cols:
            raise SheetsError(400, f"Range ({quoted_title(self.title)}!{a1(top + height - 1, left + width - 1)}) "
                                   f"exceeds grid limits. Max rows: {self.rows}, max columns: {self.cols}")
        rows, cols, cells = set(), set(), 0
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if value is None:
                    continue  # null leaves the cell unchanged
                stored, pattern = (value, None) if raw else _entered(value)
                if stored == "":
                    self.cells.pop((top + i, left + j), None)
                else:
                    self.cells[(top + i, left + j)] = stored
                if pattern:  # the UI keeps the format it inferred; RAW never changes formats
                    self.formats[(top + i, left + j)] = pattern
                rows.add(i)
                cols.add(j)
                cells += 1
        return len(rows), len(cols), cells

    def _shift_formulas(self, start: int, delta: int) -> None:
        for key, value in self.cells.items():
            if isinstance(value, Formula):
                self.cells[key] = Formula(shift_rows(value.text, start, delta))

    def computed(self, row: int, col: int, _seen: frozenset = frozenset()) -> Any:
        """A cell's value as Google shows it: a formula's result (``formulas.evaluate``), else
        what is stored ("" when empty). A formula that reaches itself is ``#REF!``."""
        value = self.cells.get((row, col), "")
        if not isinstance(value, Formula):
            return value
        if (row, col) in _seen:
            raise RecursionError
        seen = _seen | {(row, col)}
        return evaluate(value.text, lambda r, c: self.computed(r, c, seen))

    def pattern(self, row: int, col: int, value: Any) -> str | None:
        """The number format a value shows with: the cell's own, or a date's for a date result."""
        return self.formats.get((row, col)) or (DAY if isinstance(value, DateSerial) else None)

    def table(self, top: int, left: int, bottom: int, right: int) -> tuple[int, int, int, int] | None:
        """The table ``values.append`` finds from a range: the block of touching filled cells
        (side by side or one above the other) that meets the range and ends lowest, then
        furthest right; None when every cell of the range is empty. (gspread cassettes
        ``test_append_row*``: row 1 ``x, "", z`` appended to ``Sheet1`` finds ``C1``, to
        ``Sheet1!A1`` finds ``A1``; an empty range is written where it starts.)"""
        filled = set(self.cells)
        start = [cell for cell in filled if top <= cell[0] < bottom and left <= cell[1] < right]
        best, seen = None, set()
        for cell in start:
            if cell in seen:
                continue
            block, todo = [], [cell]
            seen.add(cell)
            while todo:
                r, c = todo.pop()
                block.append((r, c))
                for near in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                    if near in filled and near not in seen:
                        seen.add(near)
                        todo.append(near)
            box = (min(r for r, _ in block), min(c for _, c in block),
                   max(r for r, _ in block) + 1, max(c for _, c in block) + 1)
            if best is None or (box[2], box[3]) > (best[2], best[3]):
                best = box
        return best

    def delete_rows(self, start: int, end: int) -> None:
        if not 0 <= start < end <= self.rows:
            raise SheetsError(400, f"Cannot delete rows {start}-{end} of a grid with {self.rows} rows.")
        if end - start >= self.rows:
            raise SheetsError(400, "You can't delete all the rows on the sheet.")
        self.cells, self.formats = _shifted(self.cells, start, end), _shifted(self.formats, start, end)
        self._shift_formulas(start, start - end)
        self.rows -= end - start
        moved = []
        for t, lt, b, r in self.merges:  # rows deleted inside a merge shrink it, above it move it up
            t2 = t - max(0, min(t, end) - start)
            b2 = b - max(0, min(b, end) - start)
            if b2 - t2 >= 1 and (b2 - t2) * (r - lt) > 1:
                moved.append((t2, lt, b2, r))
        self.merges = moved

    def insert_rows(self, start: int, count: int) -> None:
        """``insertDimension`` (ROWS): rows at and below ``start`` move down, merges with them
        (a merge the new rows fall inside grows, as in the Sheets UI)."""
        if not 0 <= start <= self.rows or count < 1:
            raise SheetsError(400, f"Cannot insert rows at {start} of a grid with {self.rows} rows.")

        def moved(cells: dict[tuple[int, int], Any]) -> dict[tuple[int, int], Any]:
            return {((r + count) if r >= start else r, c): v for (r, c), v in cells.items()}

        self.cells, self.formats = moved(self.cells), moved(self.formats)
        self._shift_formulas(start, count)
        self.merges = [(t + count if t >= start else t, lt, b + count if b > start else b, r)
                       for t, lt, b, r in self.merges]
        self.rows += count

    def rendered(self, top: int, left: int, bottom: int, right: int, render: str,
                 dates: str = "SERIAL_NUMBER") -> list[list[Any]]:
        """``grid`` as a values read returns it under the given render options: a formula as
        its text under ``FORMULA``, as its result otherwise."""
        out = []
        for i, row in enumerate(self.grid(top, left, bottom, right)):
            cells = []
            for j, value in enumerate(row):
                if isinstance(value, Formula):
                    if render == "FORMULA":
                        cells.append(value.text)
                        continue
                    value = self.computed(top + i, left + j)
                cells.append(_render(value, render, self.pattern(top + i, left + j, value), dates))
            out.append(cells)
        return out

    def cell_data(self, row: int, col: int, stored: Any, wanted: frozenset = CELL_FIELDS) -> dict:
        """One ``CellData`` with those of ``userEnteredValue``, ``effectiveValue`` and
        ``formattedValue`` that are ``wanted`` (the field mask; "" -> ``{}``)."""
        if stored == "" or stored is None:
            return {}
        value = self.computed(row, col) if isinstance(stored, Formula) else stored
        data = {}
        if "userEnteredValue" in wanted:
            data["userEnteredValue"] = ({"formulaValue": stored.text} if isinstance(stored, Formula)
                                        else _extended(stored))
        if value != "" and "effectiveValue" in wanted:
            data["effectiveValue"] = _extended(value)
        if value != "" and "formattedValue" in wanted:
            data["formattedValue"] = _render(value, "FORMATTED_VALUE", self.pattern(row, col, value))
        return data

    def grid_data(self, top: int, left: int, bottom: int, right: int, wanted: frozenset = CELL_FIELDS) -> dict:
        """A ``GridData`` as ``spreadsheets.get`` returns it (before the field mask): trailing
        empty rows and cells left out, an empty cell as ``{}``, zero start indexes omitted."""
        data: dict[str, Any] = {}
        if top:
            data["startRow"] = top
        if left:
            data["startColumn"] = left
        rows = [{"values": [self.cell_data(top + i, left + j, v, wanted) for j, v in enumerate(row)]} if row else {}
                for i, row in enumerate(self.grid(top, left, bottom, right))]
        if rows:
            data["rowData"] = rows
        return data

    def grid_range(self, box: tuple[int, int, int, int]) -> dict:
        """A merge as a ``GridRange``, as the cassettes show it: the four indexes always (a 0
        included), ``sheetId`` only when it is not 0."""
        top, left, bottom, right = box
        grid = {"sheetId": self.sheet_id} if self.sheet_id else {}
        grid.update({"startRowIndex": top, "endRowIndex": bottom, "startColumnIndex": left, "endColumnIndex": right})
        return grid


def _shifted(cells: dict[tuple[int, int], Any], start: int, end: int) -> dict[tuple[int, int], Any]:
    moved = {}
    for (r, c), value in cells.items():
        if r < start:
            moved[(r, c)] = value
        elif r >= end:
            moved[(r - (end - start), c)] = value
    return moved


def _entered(value: Any) -> tuple[Any, str | None]:
    """USER_ENTERED parsing as the UI does it: (stored value, inferred number format or None)."""
    if not isinstance(value, str):
        return value, None  # numbers and booleans are taken as they are
    if value.startswith("'"):
        return value[1:], None  # the quote prefix: text, the apostrophe itself is not stored
    if value.startswith("="):
        return Formula(value), None
    if value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE", None
    if _GROUPED.match(value):
        return _number(value.replace(",", "")), THOUSANDS
    if _NUMBER.match(value):
        return _number(value), None
    if _DAY.match(value):
        moment = datetime.fromisoformat(value)
        serial = (moment - _EPOCH) / timedelta(days=1)
        return (int(serial), DAY) if serial.is_integer() and " " not in value else (serial, MINUTE)
    return value, None


def _number(text: str) -> int | float:
    """A double, as Sheets keeps it (an 18-digit integer loses its low digits)."""
    number = float(text)
    return int(number) if number.is_integer() and "." not in text and abs(number) < 2 ** 53 else number


def column_index(letters: str) -> int:
    index = 0
    for char in letters:
        index = index * 26 + ord(char) - 64
    return index - 1


def column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def a1(row: int, col: int) -> str:
    return f"{column_letters(col)}{row + 1}"


@dataclass
class Spreadsheet:
    key: str
    title: str
    sheets: list[Worksheet] = field(default_factory=list)
    locale: str = "zh_CN"
    time_zone: str = "Asia/Shanghai"

    def sheet(self, title: str | None) -> Worksheet:
        if title is None:
            return self.sheets[0]
        for sheet in self.sheets:
            if sheet.title == title:
                return sheet
        raise SheetsError(400, f"Unable to parse range: {title}")

    def by_id(self, sheet_id: int) -> Worksheet:
        for sheet in self.sheets:
            if sheet.sheet_id == sheet_id:
                return sheet
        raise SheetsError(400, f"No grid with id: {sheet_id}")


@dataclass
class Fault:
    status: int | str  # an HTTP status, or "timeout"
    message: str = "injected fault"


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, list[str]]
    body: Any
    kind: str  # "read", "values_write", "structural", "other"
    status: int = 200


class FakeSheets(BaseAdapter):
    """The emulator; ``session()`` gives a requests session routed to it."""

    def __init__(self) -> None:
        super().__init__()
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self.calls: list[Call] = []
        self.faults: dict[int, Fault] = {}  # request number (1-based) -> fault
        self.actions: dict[int, Callable[[], Any]] = {}  # request number (1-based) -> what happens first
        self._next_id = 0
        self.not_shared: set[str] = set()  # keys that answer 403 (the book exists, we may not see it)

    # --- test helpers ---------------------------------------------------------------

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount("https://sheets.googleapis.com/", self)
        session.mount("https://www.googleapis.com/", self)
        return session

    def create(self, key: str, title: str = "CRM", sheets: dict[str, list[list[Any]]] | None = None,
               rows: int = 1000, cols: int = 26, locale: str = "zh_CN", time_zone: str = "Asia/Shanghai",
               ids: list[int] | None = None) -> Spreadsheet:
        """A book with ``sheets`` ({title: rows written RAW}); ``ids`` gives the sheets' ids."""
        spreadsheet = Spreadsheet(key, title, locale=locale, time_zone=time_zone)
        for n, (name, values) in enumerate((sheets or {"Sheet1": []}).items()):
            sheet = self._add_sheet(spreadsheet, name, rows, cols, sheet_id=ids[n] if ids else None)
            sheet.write(0, 0, values, raw=True)
        self.spreadsheets[key] = spreadsheet
        return spreadsheet

    def unshare(self, key: str) -> None:
        """The book is not shared with the service account: every call on it answers what Google
        does, 403 PERMISSION_DENIED "The caller does not have permission" (gspread cassette
        ``test_access_private_spreadsheet``), and nothing in it changes."""
        self.not_shared.add(key)

    def values(self, key: str, title: str | None = None, render: str = "FORMATTED_VALUE",
               dates: str = "SERIAL_NUMBER") -> list[list[Any]]:
        """What a user sees in the sheet (formulas as their result, numbers as text)."""
        sheet = self.spreadsheets[key].sheet(title)
        return sheet.rendered(0, 0, sheet.rows, sheet.cols, render, dates)

    def fail(self, request_number: int, status: int | str = 503, message: str = "injected fault") -> None:
        """Make the Nth request from now on (1 = the next one) fail."""
        self.faults[len(self.calls) + request_number] = Fault(status, message)

    def on_request(self, request_number: int, action: Callable[[], Any]) -> None:
        """Run ``action()`` just before the Nth request from now on (1 = the next one) is answered."""
        self.actions[len(self.calls) + request_number] = action

    def fail_next(self, count: int, status: int | str = 429) -> None:
        for n in range(1, count + 1):
            self.fail(n, status, "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per "
                                 "minute per user'")

    def count(self, kind: str | None = None) -> int:
        return sum(1 for call in self.calls if kind is None or call.kind == kind)

    def _add_sheet(self, spreadsheet: Spreadsheet, title: str, rows: int = 1000, cols: int = 26,
                   index: int | None = None, sheet_id: int | None = None) -> Worksheet:
        if any(s.title == title for s in spreadsheet.sheets):
            raise SheetsError(400, f'A sheet with the name "{title}" already exists. Please enter another name.')
        if sheet_id is None:
            while any(s.sheet_id == self._next_id for s in spreadsheet.sheets):
                self._next_id += 1
            sheet_id = self._next_id
            self._next_id += 1
        elif any(s.sheet_id == sheet_id for s in spreadsheet.sheets):
            raise SheetsError(400, f"A sheet with the id {sheet_id} already exists.")
        sheet = Worksheet(sheet_id, title, rows, cols)
        spreadsheet.sheets.insert(len(spreadsheet.sheets) if index is None else index, sheet)
        return sheet

    # --- transport ------------------------------------------------------------------

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url)
        params = parse_qs(parts.query, keep_blank_values=True)
        body = json.loads(request.body) if request.body else None
        call = Call(request.method, unquote(parts.path), params, body, _kind(request.method, parts.path))
        self.calls.append(call)
        action = self.actions.pop(len(self.calls), None)
        if action is not None:
            action()
        fault = self.faults.pop(len(self.calls), None)
        if fault is not None and fault.status == "timeout":
            call.status = 0
            raise requests.exceptions.ReadTimeout(f"injected timeout on request {len(self.calls)}")
        try:
            if fault is not None:
                raise SheetsError(int(fault.status), fault.message)
            status, payload = 200, self._route(request.method, call.path, params, body)
        except SheetsError as exc:
            status = exc.code
            payload = {"error": {"code": exc.code, "message": exc.message, "status": _STATUS.get(exc.code, "UNKNOWN")}}
            if exc.details:
                payload["error"]["details"] = exc.details
        call.status = status
        return _response(request, status, payload)

    def close(self) -> None:
        pass

    def _route(self, method: str, path: str, params: dict[str, list[str]], body: Any) -> Any:
        prefix = "/v4/spreadsheets/"
        if not path.startswith(prefix):
            raise SheetsError(404, "Requested entity was not found.")
        rest = path[len(prefix):]
        key, _, tail = rest.partition("/")
        if key.endswith(":batchUpdate"):
            return self._batch_update(self._book(key[: -len(":batchUpdate")]), body)
        if key.endswith(":getByDataFilter") and method == "POST":
            ranges = [f["a1Range"] for f in (body or {}).get("dataFilters", []) if "a1Range" in f]
            if not ranges:
                raise SheetsError(400, "Only a1Range data filters are emulated.")
            return self._spreadsheet(self._book(key[: -len(":getByDataFilter")]), {**params, "ranges": ranges})
        book = self._book(key)
        if not tail:
            return self._spreadsheet(book, params)
        if tail == "values:batchGet":
            return {"spreadsheetId": book.key,
                    "valueRanges": [self._get(book, r, params) for r in params.get("ranges", [])]}
        if tail == "values:batchUpdate":
            return self._values_batch_update(book, body)
        if tail.startswith("values/"):
            target = tail[len("values/"):]
            if target.endswith(":append"):
                return self._append(book, target[: -len(":append")], params, body)
            if target.endswith(":clear"):
                return self._clear(book, target[: -len(":clear")])
            if method == "GET":
                return self._get(book, target, params)
            if method == "PUT":
                return self._update(book, target, params, body)
        raise SheetsError(404, "Requested entity was not found.")

    def _book(self, key: str) -> Spreadsheet:
        if key in self.not_shared:
            raise SheetsError(403, NOT_SHARED)
        if key not in self.spreadsheets:
            raise SheetsError(404, "Requested entity was not found.")
        return self.spreadsheets[key]

    # --- endpoints --------------------------------------------------------------------

    @staticmethod
    def _sheet_properties(sheet: Worksheet, index: int) -> dict:
        props: dict[str, Any] = {"sheetId": sheet.sheet_id, "title": sheet.title, "index": index,
                                 "sheetType": "GRID",
                                 "gridProperties": {"rowCount": sheet.rows, "columnCount": sheet.cols}}
        return props  # sheetId 0 and index 0 are given here (cassettes), unlike in a GridRange

    def _metadata(self, book: Spreadsheet) -> dict:
        """The spreadsheet's properties and every sheet's (with its merges, as Google answers
        ``includeGridData=false``)."""
        sheets = []
        for i, sheet in enumerate(book.sheets):
            entry: dict[str, Any] = {"properties": self._sheet_properties(sheet, i)}
            if sheet.merges:
                entry["merges"] = [sheet.grid_range(m) for m in sheet.merges]
            sheets.append(entry)
        return {"spreadsheetId": book.key,
                "properties": {"title": book.title, "locale": book.locale, "timeZone": book.time_zone},
                "sheets": sheets,
                "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.key}/edit"}

    def _spreadsheet(self, book: Spreadsheet, params: dict[str, list[str]]) -> dict:
        """``spreadsheets.get``: the properties (and merges) of every sheet; with ``ranges`` and a
        field mask naming ``data`` (or ``includeGridData=true``), only the sheets the ranges
        name, with each range's grid data and the sheet's merges that meet a requested range.
        A ``fields`` mask is applied to the answer, as Google does."""
        fields = params.get("fields", [""])[0]
        grid = "data" in fields or params.get("includeGridData", ["false"])[0] == "true"
        result = self._metadata(book)
        mask = field_mask(fields) if fields else None
        cells = mask.get("sheets", {}) if mask else None  # which CellData fields to build (speed)
        for name in ("data", "rowData", "values"):
            cells = cells.get(name, {}) if isinstance(cells, dict) else cells
        wanted = CELL_FIELDS if cells is None else frozenset(cells)
        if isinstance(cells, dict) and cells and all(sub is None for sub in cells.values()):
            mask["sheets"]["data"]["rowData"]["values"] = None  # the cells hold just those: no need to cut
        if grid:
            ranges = [parse_range(book, text) for text in params.get("ranges", [])] or [
                (sheet, (0, 0, sheet.rows, sheet.cols)) for sheet in book.sheets]
            sheets = []
            for index, sheet in enumerate(book.sheets):
                boxes = [box for found, box in ranges if found is sheet]
                if not boxes:
                    continue
                entry = result["sheets"][index]
                entry["data"] = [sheet.grid_data(*box, wanted=wanted) for box in boxes]
                met = [m for m in sheet.merges if any(m[0] < b and t < m[2] and m[1] < r and lt < m[3]
                                                      for t, lt, b, r in boxes)]
                entry.pop("merges", None)
                if met:
                    entry["merges"] = [sheet.grid_range(m) for m in met]
                sheets.append(entry)
            result["sheets"] = sheets
        return project(result, mask) if mask else result

    def _get(self, book: Spreadsheet, a1_range: str, params: dict[str, list[str]]) -> dict:
        sheet, (top, left, bottom, right) = parse_range(book, a1_range)
        render = params.get("valueRenderOption", ["FORMATTED_VALUE"])[0]
        dates = params.get("dateTimeRenderOption", ["SERIAL_NUMBER"])[0]
        if render not in _RENDER or dates not in _DATE_RENDER:
            raise SheetsError(400, f"Invalid value at 'value_render_option' or 'date_time_render_option': "
                                   f"{render} / {dates}")
        bottom, right = min(bottom, sheet.rows), min(right, sheet.cols)
        values = sheet.rendered(top, left, bottom, right, render, dates)
        major = params.get("majorDimension", ["ROWS"])[0]
        result = {"range": f"{quoted_title(sheet.title)}!{box_a1(top, left, bottom, right)}", "majorDimension": major}
        if values and major == "COLUMNS":
            values = [[row[c] if c < len(row) else "" for row in values] for c in range(max(map(len, values)))]
            values = [_trimmed(column) for column in values]
        if values:
            result["values"] = values
        return result

    def _written(self, book: Spreadsheet, a1_range: str, body: Any, raw: bool, where: str = "data",
                 at: tuple[int, int] | None = None) -> dict:
        """Write one ``ValueRange`` body (checked first: ``values`` a list of lists of
        scalars) at the range's top-left (or ``at``); the ``UpdateValuesResponse``. The range
        is the area the values span; rows, columns and cells count only what was written
        (not nulls)."""
        values = _checked_values(body, where)
        sheet, (top, left, _, _) = parse_range(book, a1_range)
        if at is not None:
            top, left = at
        rows, cols, cells = sheet.write(top, left, values, raw)
        height, width = len(values), max((len(r) for r in values), default=0)
        area = box_a1(top, left, top + max(height, 1), left + max(width, 1))
        return {"spreadsheetId": book.key, "updatedRange": f"{quoted_title(sheet.title)}!{area}",
                "updatedRows": rows, "updatedColumns": cols, "updatedCells": cells}

    def _update(self, book: Spreadsheet, a1_range: str, params: dict[str, list[str]], body: dict) -> dict:
        raw = _input_option(params.get("valueInputOption", [None])[0])
        return self._written(book, a1_range, body, raw)

    def _values_batch_update(self, book: Spreadsheet, body: dict) -> dict:
        """``values:batchUpdate``: every range and body checked before anything is written; the
        totals count distinct rows and columns per sheet (``totalUpdatedRows`` of a 2x4 and a
        1x4 write on the same rows is 2)."""
        raw = _input_option((body or {}).get("valueInputOption"))
        data = (body or {}).get("data", [])
        if not isinstance(data, list):
            raise _bad_field("data", data)
        parsed = []
        for n, item in enumerate(data):
            values = _checked_values(item, f"data[{n}]")
            try:
                sheet, (top, left, _, _) = parse_range(book, item.get("range", ""))
            except SheetsError as exc:
                raise SheetsError(exc.code, f"Invalid data[{n}]: {exc.message}") from None
            height, width = len(values), max((len(r) for r in values), default=0)
            if top + height > sheet.rows or left + width > sheet.cols:
                raise SheetsError(400, f"Invalid data[{n}]: Range ({quoted_title(sheet.title)}!"
                                       f"{a1(top + height - 1, left + width - 1)}) exceeds grid limits. "
                                       f"Max rows: {sheet.rows}, max columns: {sheet.cols}")
            parsed.append((sheet, top, left, values, item.get("range", "")))
        responses, rows, cols, total = [], set(), set(), 0
        for sheet, top, left, values, text in parsed:
            responses.append(self._written(book, text, {"values": values}, raw))
            for i, row in enumerate(values):
                for j, value in enumerate(row):
                    if value is not None:
                        rows.add((sheet.sheet_id, top + i))
                        cols.add((sheet.sheet_id, left + j))
                        total += 1
        result = {"spreadsheetId": book.key, "totalUpdatedRows": len(rows), "totalUpdatedColumns": len(cols),
                  "totalUpdatedCells": total, "totalUpdatedSheets": len({p[0].sheet_id for p in parsed}),
                  "responses": responses}
        return result if parsed else {"spreadsheetId": book.key}

    def _append(self, book: Spreadsheet, a1_range: str, params: dict[str, list[str]], body: dict) -> dict:
        """``values.append``: the values go under the table the range finds (``Worksheet.table``),
        from its first column; with no table, where the range starts. The grid grows."""
        raw = _input_option(params.get("valueInputOption", [None])[0])
        values = _checked_values(body, "data")
        if (body or {}).get("majorDimension") == "COLUMNS":
            values = [[col[r] if r < len(col) else None for col in values] for r in range(max(map(len, values)))]
        sheet, box = parse_range(book, a1_range)
        table = sheet.table(*box)
        top, left = (table[2], table[1]) if table else box[:2]
        sheet.rows = max(sheet.rows, top + len(values))  # append grows the grid
        sheet.cols = max(sheet.cols, left + max((len(r) for r in values), default=0))
        updates = self._written(book, a1_range, {"values": values}, raw, at=(top, left))
        result: dict[str, Any] = {"spreadsheetId": book.key}
        if table:
            result["tableRange"] = f"{quoted_title(sheet.title)}!{box_a1(*table)}"
        result["updates"] = updates
        return result

    def _clear(self, book: Spreadsheet, a1_range: str) -> dict:
        sheet, (top, left, bottom, right) = parse_range(book, a1_range)
        for key in [k for k in sheet.cells if top <= k[0] < bottom and left <= k[1] < right]:
            del sheet.cells[key]
        bottom, right = min(bottom, sheet.rows), min(right, sheet.cols)
        return {"spreadsheetId": book.key,
                "clearedRange": f"{quoted_title(sheet.title)}!{box_a1(top, left, bottom, right)}"}

    def _batch_update(self, book: Spreadsheet, body: dict) -> dict:
        """``spreadsheets:batchUpdate`` as Google documents it: "if any request is not valid then
        the entire request will fail and nothing will be applied". Requests are applied in order
        to the book; on the first error every sheet is put back as it was and the error names
        that request (``Invalid requests[1].deleteDimension: ...``)."""
        requests_ = (body or {}).get("requests", [])
        if not isinstance(requests_, list):
            raise _bad_field("requests", requests_)
        saved = (list(book.sheets), [(sheet, copy.deepcopy(sheet.__dict__)) for sheet in book.sheets],
                 book.title, self._next_id)
        replies = []
        for n, request in enumerate(requests_):
            name = next(iter(request), "") if isinstance(request, dict) and len(request) == 1 else ""
            try:
                if not name:
                    raise SheetsError(400, "exactly one kind of request must be set.")
                replies.append(self._apply(book, name, request[name]))
            except (SheetsError, KeyError, TypeError) as exc:
                book.sheets[:], states, book.title, self._next_id = saved[0], saved[1], saved[2], saved[3]
                for sheet, state in states:
                    sheet.__dict__.update(state)
                message = exc.message if isinstance(exc, SheetsError) else f"missing or invalid field {exc}"
                raise SheetsError(400, f"Invalid requests[{n}].{name}: {message}") from None
        return {"spreadsheetId": book.key, "replies": replies}

    def _apply(self, book: Spreadsheet, name: str, spec: dict) -> dict:
        """One structural request; its reply (``{}`` for most)."""
        if name == "addSheet":
            props = spec.get("properties", {})
            grid = props.get("gridProperties", {})
            sheet = self._add_sheet(book, props["title"], grid.get("rowCount", 1000), grid.get("columnCount", 26),
                                    props.get("index"), props.get("sheetId"))
            return {"addSheet": {"properties": self._sheet_properties(sheet, book.sheets.index(sheet))}}
        if name == "deleteSheet":
            sheet = book.by_id(spec.get("sheetId", 0))
            if len(book.sheets) == 1:
                raise SheetsError(400, "You can't remove all the sheets in a document.")
            book.sheets.remove(sheet)
        elif name == "deleteDimension":
            dim = spec["range"]
            if dim.get("dimension") != "ROWS":
                raise SheetsError(400, "Only ROWS deletion is emulated.")
            book.by_id(dim.get("sheetId", 0)).delete_rows(dim.get("startIndex", 0), dim["endIndex"])
        elif name == "insertDimension":
            dim = spec["range"]
            if dim.get("dimension") != "ROWS":
                raise SheetsError(400, "Only ROWS insertion is emulated.")
            start = dim.get("startIndex", 0)
            book.by_id(dim.get("sheetId", 0)).insert_rows(start, dim["endIndex"] - start)
        elif name == "appendDimension":
            sheet = book.by_id(spec.get("sheetId", 0))
            if spec.get("length", 0) < 1:
                raise SheetsError(400, "length must be at least 1.")
            if spec.get("dimension") == "ROWS":
                sheet.rows += spec["length"]
            else:
                sheet.cols += spec["length"]
        elif name in ("mergeCells", "unmergeCells"):
            box = spec["range"]
            sheet = book.by_id(box.get("sheetId", 0))
            corners = (box.get("startRowIndex", 0), box.get("startColumnIndex", 0),
                       box.get("endRowIndex", sheet.rows), box.get("endColumnIndex", sheet.cols))
            kind = spec.get("mergeType", "MERGE_ALL") if name == "mergeCells" else "unmerge"
            top, left, bottom, right = corners
            if kind == "MERGE_COLUMNS":  # one merge per column
                for col in range(left, right):
                    sheet.merge(top, col, bottom, col + 1)
            elif kind == "MERGE_ROWS":  # one merge per row
                for row in range(top, bottom):
                    sheet.merge(row, left, row + 1, right)
            else:
                (sheet.merge if name == "mergeCells" else sheet.unmerge)(*corners)
        elif name == "updateSheetProperties":
            props = spec["properties"]
            sheet = book.by_id(props.get("sheetId", 0))
            grid = props.get("gridProperties", {})
            sheet.rows, sheet.cols = grid.get("rowCount", sheet.rows), grid.get("columnCount", sheet.cols)
            sheet.cells = {k: v for k, v in sheet.cells.items() if k[0] < sheet.rows and k[1] < sheet.cols}
            sheet.title = props.get("title", sheet.title)
            if "index" in props:
                book.sheets.remove(sheet)
                book.sheets.insert(props["index"], sheet)
        elif name == "updateSpreadsheetProperties":
            props = spec["properties"]
            book.title = props.get("title", book.title)
            book.locale, book.time_zone = props.get("locale", book.locale), props.get("timeZone", book.time_zone)
        else:
            raise SheetsError(400, f"Invalid JSON payload received. Unknown name \"{name}\"")
        return {}


def _checked_values(body: Any, where: str) -> list[list[Any]]:
    """``values`` of a ValueRange body, refused as Google refuses it when it is not a list of
    lists of strings, numbers, booleans or nulls (``"values": "X"`` -> 400 with a
    ``fieldViolations`` entry for ``data.values``; gspread cassette ``test_add_validation``)."""
    if not isinstance(body, dict):
        raise _bad_field(where, body, "Struct")
    values = body.get("values", [])
    if not isinstance(values, list):
        raise _bad_field(f"{where}.values", values)
    for i, row in enumerate(values):
        if not isinstance(row, list):
            raise _bad_field(f"{where}.values[{i}]", row)
        for j, value in enumerate(row):
            if isinstance(value, (dict, list)):
                kind = "struct_value" if isinstance(value, dict) else "list_value"
                raise SheetsError(400, f"Invalid values[{i}][{j}]: {kind}")
    return values


def _trimmed(values: list[Any]) -> list[Any]:
    while values and values[-1] == "":
        values.pop()
    return values


def field_mask(fields: str) -> dict:
    """A ``fields`` parameter as a tree ({name: subtree, or None for everything below}):
    ``sheets(properties(title),data)`` and ``sheets.data.rowData.values.note`` both work."""
    tree: dict = {}
    depth, start = 0, 0
    parts = []
    for i, char in enumerate(fields + ","):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(fields[start:i].strip())
            start = i + 1
    for part in filter(None, parts):
        path, _, inner = part.partition("(")
        node = tree
        names = path.strip().replace("/", ".").split(".")  # a/b and a.b select the same
        for name in names[:-1]:
            node = node.setdefault(name, {}) if node.get(name, {}) is not None else node[name]
            if node is None:
                break
        if node is None:
            continue
        sub = field_mask(inner[:-1]) if inner else None
        leaf = names[-1]
        if leaf in node and isinstance(node[leaf], dict) and isinstance(sub, dict):
            node[leaf].update(sub)
        else:
            node[leaf] = sub
    return tree


def project(value: Any, tree: dict | None) -> Any:
    """``value`` cut down to the fields ``tree`` names (lists keep every element)."""
    if tree is None:
        return value
    if isinstance(value, list):
        return [project(item, tree) for item in value]
    if isinstance(value, dict):
        return {name: project(value[name], sub) for name, sub in tree.items() if name in value}
    return value


def parse_range(book: Spreadsheet, text: str) -> tuple[Worksheet, tuple[int, int, int, int]]:
    """'Sheet 1'!A2:C, Sheet1!A:C, Sheet1!2:5, Sheet1, A1:B2 -> sheet and a half-open box."""
    title, bang, cells = text.rpartition("!")
    if not bang:
        title, cells = (text, "") if any(s.title == text.strip("'") for s in book.sheets) else ("", text)
    sheet = book.sheet(title.strip("'").replace("''", "'") if title else None)
    if not cells:
        return sheet, (0, 0, sheet.rows, sheet.cols)
    first, _, last = cells.partition(":")
    top, left = _corner(first, 0, 0)
    if not last:
        return sheet, (top, left, top + 1, left + 1)
    bottom, right = _corner(last, sheet.rows - 1, sheet.cols - 1)
    top, bottom = min(top, bottom), max(top, bottom)  # D4:A1 is A1:D4
    left, right = min(left, right), max(left, right)
    if top >= sheet.rows or left >= sheet.cols:
        raise SheetsError(400, f"Range ({quoted_title(sheet.title)}!{cells}) exceeds grid limits. Max rows: {sheet.rows}, "
                               f"max columns: {sheet.cols}")
    return sheet, (top, left, bottom + 1, right + 1)


def _corner(cell: str, default_row: int, default_col: int) -> tuple[int, int]:
    match = _CELL.match(cell.upper().replace("$", ""))
    if not match or not (match.group(1) or match.group(2)):
        raise SheetsError(400, f"Unable to parse range: {cell}")
    letters, digits = match.groups()
    return (int(digits) - 1 if digits else default_row), (column_index(letters) if letters else default_col)


def _input_option(option: str | None) -> bool:
    if option not in ("RAW", "USER_ENTERED"):
        raise SheetsError(400, "Invalid valueInputOption: must be RAW or USER_ENTERED")
    return option == "RAW"


def _render(value: Any, option: str, pattern: str | None = None, dates: str = "SERIAL_NUMBER") -> Any:
    """One computed cell as a values read returns it (gspread cassettes
    ``test_get_all_values_date_time_render_options``, ``test_get_all_records_value_render_options``):
    FORMATTED_VALUE gives text (``2``, ``1.5``, ``TRUE``, a date as its format shows it);
    UNFORMATTED_VALUE and FORMULA give numbers and booleans as JSON, and dates as serial
    numbers (``43831`` for 2020-01-01) unless ``dateTimeRenderOption=FORMATTED_STRING``
    (ignored under FORMATTED_VALUE, API reference); an error is its text (``#DIV/0!``)."""
    if isinstance(value, ErrorValue):
        return value.text
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE") if option == "FORMATTED_VALUE" else value
    if pattern in (DAY, MINUTE) and (option == "FORMATTED_VALUE" or dates == "FORMATTED_STRING"):
        moment = _EPOCH + timedelta(seconds=round(value * 86400))
        return moment.strftime("%Y-%m-%d" if pattern == DAY else "%Y-%m-%d %H:%M")
    if option != "FORMATTED_VALUE":
        return int(value) if float(value).is_integer() else float(value)  # JSON shows 13812345678, not ...0
    if pattern == THOUSANDS:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"
    if float(value).is_integer() and abs(value) >= 1e15:
        return f"{value:.5E}"  # 9.13501E+17, as the UI shows it
    return number_text(value)


def _extended(value: Any) -> dict:
    """A value as an ``ExtendedValue`` (one key: numberValue, stringValue, boolValue or
    errorValue; a date is its serial number)."""
    if isinstance(value, ErrorValue):
        return {"errorValue": {"type": value.type, "message": value.message}}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, (int, float)):
        return {"numberValue": int(value) if float(value).is_integer() and abs(value) < 2 ** 53 else float(value)}
    return {"stringValue": value}


def _kind(method: str, path: str) -> str:
    if method == "GET" or path.endswith(":getByDataFilter"):
        return "read"
    if path.endswith("values:batchUpdate") or method == "PUT" or ":append" in path or ":clear" in path:
        return "values_write"
    if path.endswith(":batchUpdate"):
        return "structural"
    return "other"


def _response(request: requests.PreparedRequest, status: int, payload: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(payload).encode("utf-8")
    response.headers["Content-Type"] = "application/json; charset=UTF-8"
    response.url = request.url
    response.request = request
    response.encoding = "utf-8"
    response.reason = _STATUS.get(status, "OK")
    return response


def rows_of(values: list[list[Any]]) -> Iterator[list[Any]]:
    """Rows padded to the widest row (what a reader of the trimmed grid reconstructs)."""
    width = max((len(r) for r in values), default=0)
    for row in values:
        yield row + [""] * (width - len(row))
