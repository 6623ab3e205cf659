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
gives under a field mask (``effectiveValue`` per cell, ``merges``, ``gridProperties``; zero
indexes omitted as protobuf JSON does). ``on_request`` runs a test's action just before a given
request is answered: a colleague typing into the sheet while a sync run is between its read and
its write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from requests.adapters import BaseAdapter

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


class SheetsError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Formula:
    """A cell entered with USER_ENTERED that starts with '=' (never evaluated here)."""

    text: str


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
        """``mergeCells`` (MERGE_ALL): only the top-left value stays, as in the Sheets UI."""
        if bottom > self.rows or right > self.cols or top >= bottom or left >= right:
            raise SheetsError(400, "Invalid requests[0].mergeCells: the range is outside the grid or empty.")
        if any(t < bottom and top < b and lt < right and left < r for t, lt, b, r in self.merges):
            raise SheetsError(400, "Invalid requests[0].mergeCells: You can't merge cells that overlap another "
                                   "merge.")
        for key in [k for k in self.cells if top <= k[0] < bottom and left <= k[1] < right and k != (top, left)]:
            del self.cells[key]
        self.merges.append((top, left, bottom, right))

    def unmerge(self, top: int, left: int, bottom: int, right: int) -> None:
        """``unmergeCells``: every merge inside the range is undone; one only partly inside is an error."""
        kept = []
        for t, lt, b, r in self.merges:
            inside = top <= t and b <= bottom and left <= lt and r <= right
            if not inside and t < bottom and top < b and lt < right and left < r:
                raise SheetsError(400, "Invalid requests[0].unmergeCells: You must select all cells in a merged "
                                       "range to merge or unmerge them.")
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
        height = len(values)
        width = max((len(row) for row in values), default=0)
        if top + height > self.rows or left + width > self.cols:
            raise SheetsError(400, f"Range ('{self.title}'!{a1(top + height - 1, left + width - 1)}) exceeds grid "
                                   f"limits. Max rows: {self.rows}, max columns: {self.cols}")
        cells = 0
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
                cells += 1
        return height, width, cells

    def delete_rows(self, start: int, end: int) -> None:
        if not 0 <= start < end <= self.rows:
            raise SheetsError(400, f"Invalid requests[0].deleteDimension: Cannot delete rows {start}-{end} "
                                   f"of a grid with {self.rows} rows.")
        self.cells, self.formats = _shifted(self.cells, start, end), _shifted(self.formats, start, end)
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
            raise SheetsError(400, f"Invalid requests[0].insertDimension: Cannot insert rows at {start} of a grid "
                                   f"with {self.rows} rows.")

        def moved(cells: dict[tuple[int, int], Any]) -> dict[tuple[int, int], Any]:
            return {((r + count) if r >= start else r, c): v for (r, c), v in cells.items()}

        self.cells, self.formats = moved(self.cells), moved(self.formats)
        self.merges = [(t + count if t >= start else t, lt, b + count if b > start else b, r)
                       for t, lt, b, r in self.merges]
        self.rows += count

    def rendered(self, top: int, left: int, bottom: int, right: int, render: str,
                 dates: str = "SERIAL_NUMBER") -> list[list[Any]]:
        """``grid`` as a values read returns it under the given render options."""
        return [[_render(v, render, self.formats.get((top + i, left + j)), dates) for j, v in enumerate(row)]
                for i, row in enumerate(self.grid(top, left, bottom, right))]

    def grid_data(self, top: int, left: int, bottom: int, right: int) -> dict:
        """A ``GridData`` as ``spreadsheets.get`` returns it for the field mask
        ``data(startRow,startColumn,rowData(values(effectiveValue)))``: trailing empty rows and
        cells left out, an empty cell as ``{}``, zero start indexes omitted."""
        data: dict[str, Any] = {}
        if top:
            data["startRow"] = top
        if left:
            data["startColumn"] = left
        rows = [{"values": [_effective(v) for v in row]} if row else {} for row in self.grid(top, left, bottom, right)]
        if rows:
            data["rowData"] = rows
        return data

    def grid_range(self, box: tuple[int, int, int, int]) -> dict:
        """A merge as a ``GridRange`` (zero indexes omitted)."""
        names = ("startRowIndex", "startColumnIndex", "endRowIndex", "endColumnIndex")
        grid = {"sheetId": self.sheet_id} if self.sheet_id else {}
        grid.update({name: value for name, value in zip(names, box, strict=True) if value})
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

    # --- test helpers ---------------------------------------------------------------

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount("https://sheets.googleapis.com/", self)
        session.mount("https://www.googleapis.com/", self)
        return session

    def create(self, key: str, title: str = "CRM", sheets: dict[str, list[list[Any]]] | None = None,
               rows: int = 1000, cols: int = 26) -> Spreadsheet:
        spreadsheet = Spreadsheet(key, title)
        for name, values in (sheets or {"Sheet1": []}).items():
            sheet = self._add_sheet(spreadsheet, name, rows, cols)
            sheet.write(0, 0, values, raw=True)
        self.spreadsheets[key] = spreadsheet
        return spreadsheet

    def values(self, key: str, title: str | None = None, render: str = "FORMATTED_VALUE") -> list[list[Any]]:
        """What a user sees in the sheet (formulas as their result, numbers as text)."""
        sheet = self.spreadsheets[key].sheet(title)
        return sheet.rendered(0, 0, sheet.rows, sheet.cols, render)

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

    def _add_sheet(self, spreadsheet: Spreadsheet, title: str, rows: int = 1000, cols: int = 26) -> Worksheet:
        if any(s.title == title for s in spreadsheet.sheets):
            raise SheetsError(400, f'Invalid requests[0].addSheet: A sheet with the name "{title}" already exists. '
                                   "Please enter another name.")
        sheet = Worksheet(self._next_id, title, rows, cols)
        self._next_id += 1
        spreadsheet.sheets.append(sheet)
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
        if key not in self.spreadsheets:
            raise SheetsError(404, "Requested entity was not found.")
        return self.spreadsheets[key]

    # --- endpoints --------------------------------------------------------------------

    @staticmethod
    def _metadata(book: Spreadsheet) -> dict:
        return {
            "spreadsheetId": book.key,
            "properties": {"title": book.title, "locale": "zh_CN", "timeZone": "Asia/Shanghai"},
            "sheets": [{"properties": {"sheetId": s.sheet_id, "title": s.title, "index": i, "sheetType": "GRID",
                                       "gridProperties": {"rowCount": s.rows, "columnCount": s.cols}}}
                       for i, s in enumerate(book.sheets)],
        }

    def _spreadsheet(self, book: Spreadsheet, params: dict[str, list[str]]) -> dict:
        """``spreadsheets.get``: the properties; with ``ranges`` and a field mask naming ``data`` or
        ``merges`` (or ``includeGridData=true``), only the sheets the ranges name, with each
        range's grid data and the sheet's merges that meet a requested range."""
        fields = params.get("fields", [""])[0]
        grid = "data" in fields or "merges" in fields or params.get("includeGridData", ["false"])[0] == "true"
        if not grid:
            return self._metadata(book)
        ranges = [parse_range(book, text) for text in params.get("ranges", [])] or [
            (sheet, (0, 0, sheet.rows, sheet.cols)) for sheet in book.sheets]
        result = self._metadata(book)
        sheets = []
        for index, sheet in enumerate(book.sheets):
            boxes = [box for found, box in ranges if found is sheet]
            if not boxes:
                continue
            entry = result["sheets"][index]
            entry["data"] = [sheet.grid_data(*box) for box in boxes]
            met = [m for m in sheet.merges if any(m[0] < b and t < m[2] and m[1] < r and lt < m[3]
                                                  for t, lt, b, r in boxes)]
            if met:
                entry["merges"] = [sheet.grid_range(m) for m in met]
            sheets.append(entry)
        result["sheets"] = sheets
        return result

    def _get(self, book: Spreadsheet, a1_range: str, params: dict[str, list[str]]) -> dict:
        sheet, (top, left, bottom, right) = parse_range(book, a1_range)
        render = params.get("valueRenderOption", ["FORMATTED_VALUE"])[0]
        dates = params.get("dateTimeRenderOption", ["SERIAL_NUMBER"])[0]
        if render not in _RENDER or dates not in _DATE_RENDER:
            raise SheetsError(400, f"Invalid value at 'value_render_option' or 'date_time_render_option': "
                                   f"{render} / {dates}")
        values = sheet.rendered(top, left, bottom, right, render, dates)
        bottom, right = min(bottom, sheet.rows), min(right, sheet.cols)
        result = {"range": f"'{sheet.title}'!{a1(top, left)}:{a1(bottom - 1, right - 1)}", "majorDimension": "ROWS"}
        if values:
            result["values"] = values
        return result

    def _update(self, book: Spreadsheet, a1_range: str, params: dict[str, list[str]], body: dict) -> dict:
        raw = _input_option(params.get("valueInputOption", [None])[0])
        sheet, (top, left, _, _) = parse_range(book, a1_range)
        rows, cols, cells = sheet.write(top, left, body.get("values", []), raw)
        return {"spreadsheetId": book.key, "updatedRange": f"'{sheet.title}'!{a1(top, left)}",
                "updatedRows": rows, "updatedColumns": cols, "updatedCells": cells}

    def _values_batch_update(self, book: Spreadsheet, body: dict) -> dict:
        raw = _input_option(body.get("valueInputOption"))
        parsed = [(parse_range(book, item["range"]), item.get("values", [])) for item in body.get("data", [])]
        for (sheet, (top, left, _, _)), values in parsed:  # validate every range before writing any
            height, width = len(values), max((len(r) for r in values), default=0)
            if top + height > sheet.rows or left + width > sheet.cols:
                sheet.write(top, left, values, raw)  # raises the grid-limit error
        responses, total = [], 0
        for (sheet, (top, left, _, _)), values in parsed:
            rows, cols, cells = sheet.write(top, left, values, raw)
            total += cells
            responses.append({"spreadsheetId": book.key, "updatedRange": f"'{sheet.title}'!{a1(top, left)}",
                              "updatedRows": rows, "updatedColumns": cols, "updatedCells": cells})
        return {"spreadsheetId": book.key, "totalUpdatedCells": total, "totalUpdatedSheets": len(parsed),
                "responses": responses}

    def _append(self, book: Spreadsheet, a1_range: str, params: dict[str, list[str]], body: dict) -> dict:
        raw = _input_option(params.get("valueInputOption", [None])[0])
        sheet, (_, left, _, _) = parse_range(book, a1_range)
        values = body.get("values", [])
        start = sheet.used()[0]
        sheet.rows = max(sheet.rows, start + len(values))  # append grows the grid
        sheet.cols = max(sheet.cols, left + max((len(r) for r in values), default=0))
        rows, cols, cells = sheet.write(start, left, values, raw)
        return {"spreadsheetId": book.key, "updates": {"updatedRange": f"'{sheet.title}'!{a1(start, left)}",
                                                       "updatedRows": rows, "updatedCells": cells}}

    def _clear(self, book: Spreadsheet, a1_range: str) -> dict:
        sheet, (top, left, bottom, right) = parse_range(book, a1_range)
        for key in [k for k in sheet.cells if top <= k[0] < bottom and left <= k[1] < right]:
            del sheet.cells[key]
        return {"spreadsheetId": book.key, "clearedRange": a1_range}

    def _batch_update(self, book: Spreadsheet, body: dict) -> dict:
        replies = []
        for request in body.get("requests", []):
            (name, spec), = request.items()
            if name == "addSheet":
                props = spec.get("properties", {})
                grid = props.get("gridProperties", {})
                sheet = self._add_sheet(book, props["title"], grid.get("rowCount", 1000), grid.get("columnCount", 26))
                replies.append({"addSheet": self._metadata(Spreadsheet(book.key, book.title, [sheet]))["sheets"][0]})
            elif name == "deleteDimension":
                dim = spec["range"]
                if dim.get("dimension") != "ROWS":
                    raise SheetsError(400, "Only ROWS deletion is emulated.")
                book.by_id(dim["sheetId"]).delete_rows(dim["startIndex"], dim["endIndex"])
                replies.append({})
            elif name == "insertDimension":
                dim = spec["range"]
                if dim.get("dimension") != "ROWS":
                    raise SheetsError(400, "Only ROWS insertion is emulated.")
                start = dim.get("startIndex", 0)
                book.by_id(dim.get("sheetId", 0)).insert_rows(start, dim["endIndex"] - start)
                replies.append({})
            elif name == "appendDimension":
                sheet = book.by_id(spec["sheetId"])
                if spec.get("dimension") == "ROWS":
                    sheet.rows += spec["length"]
                else:
                    sheet.cols += spec["length"]
                replies.append({})
            elif name in ("mergeCells", "unmergeCells"):
                box = spec["range"]
                sheet = book.by_id(box.get("sheetId", 0))
                corners = (box.get("startRowIndex", 0), box.get("startColumnIndex", 0),
                           box.get("endRowIndex", sheet.rows), box.get("endColumnIndex", sheet.cols))
                (sheet.merge if name == "mergeCells" else sheet.unmerge)(*corners)
                replies.append({})
            elif name == "updateSheetProperties":
                props = spec["properties"]
                sheet = book.by_id(props["sheetId"])
                grid = props.get("gridProperties", {})
                sheet.rows, sheet.cols = grid.get("rowCount", sheet.rows), grid.get("columnCount", sheet.cols)
                sheet.title = props.get("title", sheet.title)
                replies.append({})
            else:
                raise SheetsError(400, f"Invalid JSON payload received. Unknown name \"{name}\"")
        return {"spreadsheetId": book.key, "replies": replies}


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
    if top >= sheet.rows or left >= sheet.cols:
        raise SheetsError(400, f"Range ('{sheet.title}'!{cells}) exceeds grid limits. Max rows: {sheet.rows}, "
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
    """One cell as a read returns it. ``dates`` is ignored under FORMATTED_VALUE (API reference)."""
    if isinstance(value, Formula):
        return value.text if option == "FORMULA" else "#NAME?"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE") if option == "FORMATTED_VALUE" else value
    if pattern in (DAY, MINUTE) and (option == "FORMATTED_VALUE" or dates == "FORMATTED_STRING"):
        moment = _EPOCH + timedelta(seconds=round(value * 86400))
        return moment.strftime("%Y-%m-%d" if pattern == DAY else "%Y-%m-%d %H:%M")
    if option != "FORMATTED_VALUE":
        return int(value) if float(value).is_integer() else value  # JSON shows 13812345678, not ...0
    if pattern == THOUSANDS:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"
    if float(value).is_integer():
        return str(int(value)) if abs(value) < 1e15 else f"{value:.5E}"  # 9.13501E+17, as the UI shows it
    return str(value)


def _effective(value: Any) -> dict:
    """A stored value as a ``CellData`` holding its ``effectiveValue`` (an unevaluated formula is
    the #NAME? error it shows here)."""
    if value == "" or value is None:
        return {}
    if isinstance(value, Formula):
        return {"effectiveValue": {"errorValue": {"type": "NAME", "message": "Unknown function"}}}
    if isinstance(value, bool):
        return {"effectiveValue": {"boolValue": value}}
    if isinstance(value, (int, float)):
        return {"effectiveValue": {"numberValue": value}}
    return {"effectiveValue": {"stringValue": value}}


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
