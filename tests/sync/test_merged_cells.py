"""Issue 11 §3, merged cells in a synced sheet (both backends): 所属行业 merged over rows 2-4 with
软件开发 is the industry of each of the three rows, and a write that touches the merge (a cell in
it, a row deleted from it or above it) keeps every row's value instead of crashing, hiding the
new value under the merge or shifting the merge onto other rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from app.models.dictionaries import Industry
from sync.plan import STATUS_HEADER
from tests.sync.conftest import HEADERS, SHEET, GoogleSide, XlsxSide

INDUSTRY = HEADERS.index("所属行业")
SOFTWARE = "软件和信息技术服务业"  # 软件开发 is one of its aliases (GB/T 4754 division 65)


def _merge(side: Any, cells: str) -> None:
    """Merge ``cells`` as a person does: in Excel (openpyxl), or in Google Sheets (gspread's request)."""
    if isinstance(side, XlsxSide):
        book = load_workbook(side.path)
        book[SHEET].merge_cells(cells)
        book.save(side.path)
    else:
        side.client.open_by_key("book-123").worksheet(SHEET).merge_cells(cells)


def _merges(side: Any) -> list[str]:
    if isinstance(side, XlsxSide):
        return sorted(str(r) for r in load_workbook(side.path)[SHEET].merged_cells.ranges)
    from tests.fakes.sheets import a1

    sheet = side.fake.spreadsheets["book-123"].sheet(SHEET)
    return sorted(f"{a1(t, lt)}:{a1(b - 1, r - 1)}" for t, lt, b, r in sheet.merges)


def _rows(n: int, first: int = 0) -> list[list[Any]]:
    return [["", f"Merged {k}", "王", f"1381234560{k}", "软件开发" if k == first else None, ""]
            for k in range(first, first + n)]


def _industries(app: Any) -> dict[str, str | None]:
    with app.app_context():
        return {c.name: (c.industry.label_zh if c.industry else None)
                for c in db.session.scalars(select(Customer).where(Customer.name.like("Merged %")))}


def _quiet(sync: Any, side: Any, target: int) -> None:
    log, backend = sync(target)
    assert log.status == "done", log.message
    assert side.writes(backend) == 0 and backend.calls["read"] == 1, log.api_calls


def _merged_and_synced(app: Any, side: Any, make_target: Any, sync: Any, rows: list[list[Any]],
                       cells: str) -> int:
    side.create([HEADERS] + rows)
    _merge(side, cells)
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    return target


def test_a_merged_industry_is_the_industry_of_every_row_it_covers(app: Any, side: Any, make_target: Any,
                                                                   sync: Any) -> None:
    target = _merged_and_synced(app, side, make_target, sync, _rows(3), "E2:E4")
    assert _industries(app) == {"Merged 0": SOFTWARE, "Merged 1": SOFTWARE, "Merged 2": SOFTWARE}
    assert _merges(side) == ["E2:E4"]  # the codes written back leave the merge alone
    _quiet(sync, side, target)


def test_an_app_change_inside_a_merge_unmerges_it_and_keeps_the_other_rows(app: Any, side: Any,
                                                                            make_target: Any, sync: Any) -> None:
    target = _merged_and_synced(app, side, make_target, sync, _rows(3), "E2:E4")
    with app.app_context():
        other = db.session.scalars(select(Industry).where(Industry.label_zh == "批发业")).one()
        db.session.scalars(select(Customer).where(Customer.name == "Merged 1")).one().industry = other
        db.session.commit()
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert [row[INDUSTRY] for row in side.values()[1:4]] == ["软件开发", "批发业", "软件开发"]
    assert _merges(side) == []
    assert _industries(app) == {"Merged 0": SOFTWARE, "Merged 1": "批发业", "Merged 2": SOFTWARE}
    _quiet(sync, side, target)


@pytest.mark.parametrize("archived", ["Before", "Merged 0", "Merged 1"])
def test_a_row_deleted_above_or_inside_a_merge_leaves_every_row_its_value(
        app: Any, side: Any, make_target: Any, sync: Any, archived: str) -> None:
    """The app archives a customer, so its row leaves the sheet: above the merge (the merge
    moves up with its rows) or inside it, its first row included (the value stays on the others)."""
    rows = [["", "Before", "李", "13812345699", "批发业", ""]] + _rows(3)
    target = _merged_and_synced(app, side, make_target, sync, rows, "E3:E5")
    with app.app_context():
        db.session.scalars(select(Customer).where(Customer.name == archived)).one().archived_at = datetime.now(UTC)
        db.session.commit()
    log, _ = sync(target)
    assert log.status == "done" and log.counts["sheet_removed"] == 1, log.message
    left = {row[1]: row[INDUSTRY] if len(row) > INDUSTRY else "" for row in side.values()[1:]}
    assert archived not in left
    if archived == "Before":  # the merge moved up with its rows: shown on its first row, covering the others
        assert _merges(side) == ["E2:E4"] and [left[f"Merged {k}"] for k in range(3)] == ["软件开发", "", ""]
    else:  # undone, its value on every row left
        assert _merges(side) == [] and set(left.values()) == {"批发业", "软件开发"}
    _quiet(sync, side, target)
    expected = {f"Merged {k}": SOFTWARE for k in range(3)}
    assert _industries(app) == expected


@pytest.mark.parametrize("side", ["xlsx"], indirect=True)
def test_a_merge_covering_millions_of_cells_is_refused_before_openpyxl_builds_it(
        app: Any, side: XlsxSide, make_target: Any, sync: Any, monkeypatch: Any) -> None:
    """openpyxl makes an object of every merged cell when the sync opens the workbook to write:
    a merge down whole columns is held to the cell limit at the read, with a message."""
    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_CELLS", 20_000)
    side.create([HEADERS] + _rows(3))
    _merge(side, "E2:F50000")
    log, _ = sync(make_target())
    assert log.status == "failed" and "merged cells cover more than 20,000 cells" in log.message
    assert _industries(app) == {}


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_merge_in_the_header_row_is_not_spread(app: Any, side: GoogleSide, make_target: Any,
                                                      sync: Any) -> None:
    """A header merged over the next column stays one header (only merges below the header row
    are spread); the status column the run adds there is not hidden under the merge."""
    side.create([HEADERS] + _rows(1))
    _merge(side, "F1:G1")
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done" and log.counts["app_created"] == 1, log.message
    assert side.values()[0] == [*HEADERS, STATUS_HEADER] and _merges(side) == []
    _quiet(sync, side, target)
