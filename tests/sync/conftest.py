"""Both sheet backends behind one test interface: a local workbook, and a Google Sheet
served by the in-process emulator to the real gspread client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gspread
import pytest
from openpyxl import Workbook, load_workbook

from app.extensions import db
from app.models import SyncTarget
from sync.backends import GoogleSheetsBackend, RetryPolicy, XlsxBackend, _set
from tests.conftest import user_id
from tests.fakes.sheets import FakeSheets

HEADERS = ["客户编号", "客户名称", "联系人姓名", "联系方式", "所属行业", "备注"]
SHEET = "客户"


class XlsxSide:
    name = "xlsx"

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "customers.xlsx"
        self.location = str(self.path)

    def create(self, rows: list[list[Any]]) -> None:
        book = Workbook()
        book.active.title = SHEET
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                _set(book.active.cell(row=r, column=c), value)  # typed text, as a user would
        other = book.create_sheet("说明")
        other["A1"] = "keep me"
        book.save(self.path)

    def values(self) -> list[list[str]]:
        sheet = load_workbook(self.path)[SHEET]
        rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        while rows and not any(rows[-1]):
            rows.pop()
        return [_trim(r) for r in rows]

    def edit(self, changes: dict[tuple[int, int], Any] | None = None, delete: list[int] | None = None,
             append: list[list[Any]] | None = None) -> None:
        book = load_workbook(self.path)
        sheet = book[SHEET]
        for (row, col), value in (changes or {}).items():
            _set(sheet.cell(row=row + 1, column=col + 1), value)
        for row in sorted(delete or [], reverse=True):
            sheet.delete_rows(row + 1)
        for values in append or []:
            next_row = sheet.max_row + 1
            for col, value in enumerate(values, start=1):
                _set(sheet.cell(row=next_row, column=col), value)
        book.save(self.path)

    def backend(self, sheet_id: int | None = None) -> XlsxBackend:
        return XlsxBackend(self.path, SHEET)

    def writes(self, backend: Any) -> int:
        return backend.calls["write"]


class GoogleSide:
    name = "gsheets"

    def __init__(self, tmp_path: Path) -> None:
        self.fake = FakeSheets()
        self.location = "https://docs.google.com/spreadsheets/d/book-123/edit#gid=0"
        self.client = gspread.Client(auth=None, session=self.fake.session())

    def create(self, rows: list[list[Any]]) -> None:
        self.fake.create("book-123", "CRM", {SHEET: rows, "说明": [["keep me"]]}, rows=max(len(rows) + 5, 20))

    def values(self) -> list[list[str]]:
        return [_trim([str(v) for v in row]) for row in self.fake.values("book-123", SHEET)]

    def edit(self, changes: dict[tuple[int, int], Any] | None = None, delete: list[int] | None = None,
             append: list[list[Any]] | None = None) -> None:
        sheet = self.fake.spreadsheets["book-123"].sheet(SHEET)
        for (row, col), value in (changes or {}).items():
            sheet.write(row, col, [[value]], raw=True)
        for row in sorted(delete or [], reverse=True):
            sheet.delete_rows(row, row + 1)
        for values in append or []:
            start = sheet.used()[0]
            sheet.rows = max(sheet.rows, start + 1)
            sheet.write(start, 0, [values], raw=True)

    def backend(self, sheet_id: int | None = None) -> GoogleSheetsBackend:
        return GoogleSheetsBackend(self.client, self.location, SHEET, sheet_id, RetryPolicy(sleep=lambda s: None))

    def writes(self, backend: Any) -> int:
        return backend.calls["values_write"] + backend.calls["structural"]


def _trim(row: list[str]) -> list[str]:
    while row and row[-1] in ("", "None"):
        row.pop()
    return row


@pytest.fixture(params=["xlsx", "gsheets"])
def side(request: Any, tmp_path: Path) -> Any:
    return XlsxSide(tmp_path) if request.param == "xlsx" else GoogleSide(tmp_path)


@pytest.fixture
def make_target(app: Any, side: Any) -> Any:
    def make(run_as: str = "manager", **fields: Any) -> int:
        with app.app_context():
            target = SyncTarget(name=f"t-{side.name}", backend=side.name, location=side.location, worksheet=SHEET,
                                run_as_id=user_id(run_as), **fields)
            db.session.add(target)
            db.session.commit()
            return target.id

    return make


@pytest.fixture
def sync(app: Any, side: Any) -> Any:
    """``sync(target_id)`` -> (run log, backend) after one run."""
    from sync import runner

    def run(target_id: int, dry_run: bool = False, backend: Any = None) -> tuple[Any, Any]:
        with app.app_context():
            target = db.session.get(SyncTarget, target_id)
            backend = backend or side.backend(target.sheet_id)  # as for_target() builds it
            log = runner.run(target, backend, dry_run=dry_run)
            db.session.refresh(log)
            db.session.expunge(log)
            db.session.remove()
            return log, backend

    return run


KILL_POINTS = ["before_sheet_write", "before_bases"]


class Killed(Exception):
    """The process died here (raised from inside a run)."""


def run_killed_then_again(app: Any, side: Any, sync: Any, target: int, monkeypatch: Any, point: str) -> Any:
    """One run killed at ``point`` (before the sheet write, or before the new snapshot is
    stored), then a normal run; returns the second run's log (it must converge)."""
    from sync import runner

    backend = side.backend()
    if point == "before_sheet_write":
        monkeypatch.setattr(backend, "write", lambda change, token: (_ for _ in ()).throw(Killed()))
    else:
        monkeypatch.setattr(runner, "_store_bases", lambda target, plan: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        sync(target, backend=backend)
    monkeypatch.undo()
    with app.app_context():
        db.session.rollback()
    log, _ = sync(target)
    return log
