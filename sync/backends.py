"""Where the sheet lives: a local .xlsx file (the default) or a Google Sheet.

A backend reads the whole worksheet once and applies one ``SheetWrite``: cells to
rewrite, rows to append and rows to delete. The xlsx backend keeps the other sheets
and formatting, writes a temp file and renames it, and refuses when the file changed
since it was read. The Google backend spends one values read, at most one structural
``batchUpdate`` (delete rows bottom-up, grow the grid) and one ``values:batchUpdate``
(``USER_ENTERED`` so dates are real dates; every text gets a leading apostrophe, so ``=...``
and digits stay text) per run, retrying 429/5xx/timeouts a bounded number of times. The worksheet's id (for
structural requests) is read once, on a target's first run, and cached on the target.

Both backends hand number cells over as ``SheetNumber`` (text that remembers the number): the
Google read asks for ``UNFORMATTED_VALUE`` with ``SERIAL_NUMBER`` dates, so a phone column
formatted as ``13,812,345,678`` or a date column comes back as the number it is, and the codec
(``sync.fields``) turns it into canonical text per field (issue 11).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from flask_babel import lazy_gettext as _l
from gspread.utils import rowcol_to_a1
from openpyxl import load_workbook
from openpyxl.cell.cell import TYPE_STRING

from app.services import files
from app.services.exporting import looks_like_formula, workbook_text
from app.services.importing.reading import UnreadableFile, cell_text, workbook_rows


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
    """One cell as the planner sees it: numbers as ``SheetNumber``, everything else ``cell_text``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return SheetNumber(value)
    return cell_text(value)


def _rows_as_text(raw: list[list[Any]]) -> SheetData:
    headers = [str(sheet_cell(v)) for v in raw[0]] if raw else []
    while headers and not headers[-1]:
        headers.pop()
    width = len(headers)
    rows = [[sheet_cell(v) for v in row[:width]] + [""] * (width - len(row[:width])) for row in raw[1:]]
    return SheetData(headers, rows)


class XlsxBackend:
    def __init__(self, path: str | Path, worksheet: str) -> None:
        self.path, self.worksheet = Path(path), worksheet
        self.calls: Counter = Counter()

    def _fingerprint(self) -> tuple[int, int, str]:
        """(mtime, size, sha256): streamed in chunks, so a huge file costs no memory here
        (the read that follows refuses it with the importer's size message)."""
        with open(self.path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        stat = self.path.stat()
        return stat.st_mtime_ns, stat.st_size, digest

    def read(self) -> SheetData:
        if not self.path.exists():
            raise SheetUnavailable(str(_l("The file %(path)s does not exist.", path=str(self.path))))
        self.calls["read"] += 1
        token = self._fingerprint()
        try:
            raw, _ = workbook_rows(self.path, self.worksheet)  # the importer's reader and messages
        except UnreadableFile as exc:
            raise SheetUnavailable(str(exc)) from None
        data = _rows_as_text(raw)
        data.token = token
        data.modified_at = datetime.fromtimestamp(token[0] / 1e9)
        return data

    def write(self, change: SheetWrite, token: Any) -> None:
        if change.empty:
            return
        if self._fingerprint() != token:
            raise SheetChanged(str(_l("%(path)s changed while the sync ran; nothing was written, the next run "
                                      "will take the new version.", path=self.path.name)))
        book = load_workbook(self.path)
        sheet = book[self.worksheet]
        for column, text in change.headers.items():
            sheet.cell(row=1, column=column + 1, value=text)
        for (row, column), value in change.cells.items():
            _set(sheet.cell(row=row + 2, column=column + 1), value)
        for row in sorted(change.delete, reverse=True):
            sheet.delete_rows(row + 2)
        next_row = _last_row(sheet) + 1
        for offset, values in enumerate(change.append):
            for column, value in enumerate(values):
                _set(sheet.cell(row=next_row + offset, column=column + 1), value)
        handle, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}-", suffix=".xlsx")
        os.close(handle)
        try:
            book.save(temp)
            if self._fingerprint() != token:  # someone saved while we built the new file
                raise SheetChanged(str(_l("%(path)s changed while the sync ran; nothing was written.",
                                          path=self.path.name)))
            os.replace(temp, self.path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        self.calls["write"] += 1


def _last_row(sheet: Any) -> int:
    for row in range(sheet.max_row, 1, -1):
        if any(cell.value not in (None, "") for cell in sheet[row]):
            return row
    return 1


def _set(cell: Any, value: Any) -> None:
    """Dates as real dates; text that looks like a formula stays text."""
    if isinstance(value, (date, datetime)):
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
_GRID = re.compile(r"!([A-Z]+)(\d+):([A-Z]+)(\d+)$")


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
                if status == 404:
                    raise SheetUnavailable(str(_l("The Google Sheet was not found or is not shared with the "
                                                  "service account."))) from None
                retry = status == 429 or (idempotent and status in _RETRYABLE)
                if not retry or attempt == self.retry.attempts - 1:
                    raise SheetUnavailable(f"Google Sheets: {status} {exc}") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not idempotent or attempt == self.retry.attempts - 1:
                    raise SheetUnavailable(f"Google Sheets: {type(exc).__name__}") from None
            self.retry.sleep(self.retry.delay(attempt))
        raise SheetUnavailable("Google Sheets: no attempts left")

    def _quoted(self) -> str:
        return "'" + self.worksheet.replace("'", "''") + "'"

    def resolve_sheet_id(self) -> int:
        """Worksheet id for structural requests (cached on the target after the first run)."""
        if self.sheet_id is None:
            meta = self._call("metadata", lambda: self.client.http_client.request(
                "get", f"https://sheets.googleapis.com/v4/spreadsheets/{self.key}",
                params={"fields": "sheets.properties"}).json())
            for sheet in meta.get("sheets", []):
                if sheet["properties"]["title"] == self.worksheet:
                    self.sheet_id = sheet["properties"]["sheetId"]
            if self.sheet_id is None:
                raise SheetUnavailable(str(_l("The Google Sheet has no worksheet named %(sheet)s.",
                                              sheet=self.worksheet)))
        return self.sheet_id

    def read(self) -> SheetData:
        self.resolve_sheet_id()  # first run only: the id is cached on the target afterwards
        result = self._call("read", lambda: self.client.http_client.values_get(
            self.key, self._quoted(), params={"valueRenderOption": "UNFORMATTED_VALUE",
                                              "dateTimeRenderOption": "SERIAL_NUMBER"}))
        grid = _GRID.search(result.get("range", ""))
        self.grid_rows = int(grid.group(4)) if grid else 0
        data = _rows_as_text(result.get("values", []))
        self.data_rows = len(data.rows)
        return data

    def write(self, change: SheetWrite, token: Any) -> None:
        if change.empty:
            return
        deleted = sorted(set(change.delete), reverse=True)
        kept = self._surviving_rows(change)
        used = 1 + self.data_rows - len(deleted)  # header + surviving data rows
        need = used + len(change.append) - (self.grid_rows - len(deleted))
        requests_ = [{"deleteDimension": {"range": {"sheetId": self.resolve_sheet_id(), "dimension": "ROWS",
                                                    "startIndex": row + 1, "endIndex": row + 2}}}
                     for row in deleted]
        if need > 0:
            requests_.append({"appendDimension": {"sheetId": self.resolve_sheet_id(), "dimension": "ROWS",
                                                  "length": need}})
        if requests_:
            self._call("structural", lambda: self.client.http_client.batch_update(self.key, {"requests": requests_}),
                       idempotent=False)
        data = [{"range": f"{self._quoted()}!{rowcol_to_a1(1, c + 1)}", "values": [[_entered(text)]]}
                for c, text in change.headers.items()]
        for (row, column), value in change.cells.items():
            if row in kept:
                data.append({"range": f"{self._quoted()}!{rowcol_to_a1(kept[row] + 2, column + 1)}",
                             "values": [[_entered(value)]]})
        if change.append:
            data.append({"range": f"{self._quoted()}!A{used + 1}",
                         "values": [[_entered(v) for v in row] for row in change.append]})
        if data:
            self._call("values_write", lambda: self.client.http_client.values_batch_update(
                self.key, {"valueInputOption": "USER_ENTERED", "data": data}))

    @staticmethod
    def _surviving_rows(change: SheetWrite) -> dict[int, int]:
        """Data row before the deletions -> data row after them (for the values write)."""
        gone = set(change.delete)
        rows = sorted({row for row, _ in change.cells} | gone)
        top = max(rows, default=-1)
        mapping, shift = {}, 0
        for row in range(top + 1):
            if row in gone:
                shift += 1
            else:
                mapping[row] = row - shift
        return mapping


def _entered(value: Any) -> Any:
    """A value for ``USER_ENTERED``: a date as ISO text (Sheets makes it a real date with a date
    format), any other text behind an apostrophe, the UI's "this is text" mark that is not
    stored (so ``=...`` never becomes a formula, and ``0012`` or an 18-digit code never a number)."""
    if isinstance(value, datetime):
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
