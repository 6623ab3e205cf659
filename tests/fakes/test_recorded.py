"""The emulator against real Google answers (issue 21): each file in ``tests/fakes/recorded/`` is
one run of a gspread test recorded against the live Sheets v4 API (gspread's cassettes, MIT
licence, see ``recorded/README.md``). The test replays its Sheets requests, in order, against a
fresh emulator and fails on the first difference in status code or answer.

Where a run starts: the spreadsheet gspread had just created through Drive (the call is not
in the file); the emulator gets a book with the same key, title, locale, time zone, sheets,
sheet ids and grid sizes as the first metadata answer shows (404 for a key Google did not
know; a book marked ``unshare()`` where Google answered 403).

What is compared: the status code; for an error the whole ``error`` object (code, message,
status, details); for a metadata answer (``spreadsheets.get`` without grid data) the
spreadsheet's id, title, locale and time zone and each sheet's ``sheetId``, ``title``,
``index``, ``sheetType``, ``gridProperties`` and ``merges`` (Google's default formats and
theme are not emulated); for every other answer (values get / update / batchUpdate / append
/ clear / batchGet, batchUpdate replies) the whole JSON. A sheet id Google made up for
``addSheet`` is mapped to the emulator's in later requests and back in answers.

Deliberately skipped (not calls the sync makes, and they do not change values):
- Drive API calls (create, delete, permissions of the test spreadsheet): trimmed out of the files.
- ``setDataValidation`` (``test_add_validation``; 1 of the 278 recorded calls): validation
  rules are not emulated and do not change values. The rule also skips ``autoResizeDimensions``
  and ``fields=sheets.data.columnMetadata`` reads (column widths), should a re-cut file hold them.
Cassettes left out entirely (their subject is not emulated: named and protected ranges,
notes, filters, sorting, formats, column insert/delete, grouping, hiding, tab colours, frozen
rows, copy/paste, CSV import) are listed in ``recorded/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.fakes.sheets import FakeSheets

FOLDER = Path(__file__).parent / "recorded"
RECORDINGS = sorted(path.name for path in FOLDER.glob("*.json"))
_NOT_EMULATED = {"setDataValidation", "autoResizeDimensions"}
_SHEET_KEYS = ("sheetId", "title", "index", "sheetType", "gridProperties")


def _skipped(request: dict) -> bool:
    if "columnMetadata" in unquote(request["uri"]):
        return True
    if request["uri"].endswith(":batchUpdate") and "/values" not in request["uri"]:
        kinds = {name for item in json.loads(request["body"])["requests"] for name in item}
        return kinds <= _NOT_EMULATED
    return False


def _compared(answer: Any) -> Any:
    """The part of an answer the emulator must reproduce (see the module docstring)."""
    if isinstance(answer, dict) and "properties" in answer and "sheets" in answer:
        props = answer["properties"]
        return {"spreadsheetId": answer["spreadsheetId"],
                "properties": {key: props.get(key) for key in ("title", "locale", "timeZone")},
                "sheets": [{"properties": {k: s["properties"][k] for k in _SHEET_KEYS if k in s["properties"]},
                            "merges": s.get("merges", [])} for s in answer["sheets"]]}
    return answer


def _mapped(value: Any, ids: dict[int, int]) -> Any:
    """``value`` with every ``sheetId`` translated through ``ids``."""
    if isinstance(value, dict):
        return {k: (ids.get(v, v) if k == "sheetId" else _mapped(v, ids)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mapped(item, ids) for item in value]
    return value


def _start(fake: FakeSheets, key: str, status: int, answer: Any) -> None:
    """Give the emulator the book the recording starts from (see the module docstring)."""
    if key in fake.spreadsheets or status == 404:
        return
    if status == 403:
        fake.create(key, "not shared")
        fake.unshare(key)
        return
    props = answer["properties"]
    sheets = [s["properties"] for s in answer["sheets"]]
    book = fake.create(key, props["title"], {s["title"]: [] for s in sheets}, locale=props["locale"],
                       time_zone=props["timeZone"], ids=[s["sheetId"] for s in sheets])
    for sheet, recorded in zip(book.sheets, sheets, strict=True):
        sheet.rows, sheet.cols = recorded["gridProperties"]["rowCount"], recorded["gridProperties"]["columnCount"]


@pytest.mark.parametrize("name", RECORDINGS)
def test_the_emulator_answers_as_google_did(name: str) -> None:
    recording = json.loads((FOLDER / name).read_text())
    fake = FakeSheets()
    session = fake.session()
    to_fake: dict[int, int] = {}
    to_google: dict[int, int] = {}
    replayed = 0
    for number, item in enumerate(recording["interactions"]):
        request, response = item["request"], item["response"]
        if _skipped(request):
            continue
        status = response["status"]["code"]
        want = json.loads(response["body"]["string"])
        _start(fake, unquote(urlsplit(request["uri"]).path).split("/")[3].split(":")[0], status, want)
        body = json.dumps(_mapped(json.loads(request["body"]), to_fake)) if request.get("body") else None
        answer = session.request(request["method"], request["uri"], data=body,
                                 headers={"Content-Type": "application/json"} if body else {})
        got = answer.json()
        for recorded, emulated in zip(want.get("replies", []), got.get("replies", []), strict=False):
            if "addSheet" in recorded and "addSheet" in emulated:
                google_id = recorded["addSheet"]["properties"].get("sheetId", 0)
                fake_id = emulated["addSheet"]["properties"].get("sheetId", 0)
                to_fake[google_id], to_google[fake_id] = fake_id, google_id
        where = f"{name} call {number}: {request['method']} {unquote(request['uri'])}"
        assert answer.status_code == status, f"{where}\n{got}"
        assert _compared(_mapped(got, to_google)) == _compared(want), where
        replayed += 1
    assert replayed >= 1
