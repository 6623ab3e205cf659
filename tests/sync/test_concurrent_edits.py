"""Issue 11: a colleague edits the sheet while a sync run is between its read and its write.

Google Sheets has no conditional write, so the backend reads again, in one call, just the rows
it is about to write (the header, the rows it rewrites or deletes, the rows its appended rows
will fill) and compares them with the read its plan came from. On any difference the run
writes nothing, fails with a message saying where, and the next run plans from the new version:
the colleague's edit is never overwritten. The xlsx backend does the same with the file's
fingerprint (checked before the write and again just before the rename)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, SyncConflict
from tests.sync.conftest import HEADERS, SHEET, GoogleSide, XlsxSide

NAME, NOTE = HEADERS.index("客户名称"), HEADERS.index("备注")


def _synced(app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> tuple[int, list[int]]:
    """Five synced customers (sheet rows 2-6), then the CRM renames the third (sheet row 4)."""
    pks = [make_customer("rep_a", name=f"客户{n}", contact_name=f"联系人{n}", contact_phone=f"1380000{n:04d}")
           for n in range(5)]
    side.create([HEADERS])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        db.session.get(Customer, pks[2]).name = "CRM改名"
        db.session.commit()
    return target, pks


def _google_sheet(side: GoogleSide) -> Any:
    return side.fake.spreadsheets["book-123"].sheet(SHEET)


def _names(side: Any) -> list[str]:
    return [row[NAME] for row in side.values()[1:]]


def _colleague_between_read_and_write(side: GoogleSide, action: Any) -> None:
    """``action`` happens once the run's read is answered, before anything else it asks
    (the second request of a run whose worksheet id is cached)."""
    side.fake.on_request(2, action)


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_edit_of_a_row_the_run_writes_is_not_overwritten(app: Any, side: GoogleSide, make_target: Any,
                                                                sync: Any, make_customer: Any) -> None:
    target, pks = _synced(app, side, make_target, sync, make_customer)
    _colleague_between_read_and_write(side, lambda: _google_sheet(side).write(3, NAME, [["同事改名"]], raw=True))
    log, backend = sync(target)
    assert log.status == "failed" and "changed while the sync ran" in log.message and "rows 4" in log.message
    assert backend.calls["values_write"] == backend.calls["structural"] == 0  # nothing written
    assert _names(side)[2] == "同事改名"
    log, _ = sync(target)  # the next run sees both edits: a conflict for a person (policy "review")
    assert log.status == "done" and log.counts["conflicts"] == 1, log.message
    assert _names(side)[2] == "同事改名"
    with app.app_context():
        conflict = db.session.scalars(select(SyncConflict)).one()
        assert (conflict.field, conflict.app_value, conflict.sheet_value) == ("name", "CRM改名", "同事改名")


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_rows_inserted_above_stop_the_write_before_it_lands_on_other_rows(
        app: Any, side: GoogleSide, make_target: Any, sync: Any, make_customer: Any) -> None:
    """A row inserted above moves every row down: writing by the old positions would put the
    CRM's rename on another customer's row."""
    target, pks = _synced(app, side, make_target, sync, make_customer)

    def insert_row() -> None:
        sheet = _google_sheet(side)
        sheet.insert_rows(1, 1)
        sheet.write(1, 0, [["", "同事插入的客户"]], raw=True)

    _colleague_between_read_and_write(side, insert_row)
    log, backend = sync(target)
    assert log.status == "failed" and "rows inserted or deleted" in log.message
    assert backend.calls["values_write"] == 0
    assert _names(side) == ["同事插入的客户", "客户0", "客户1", "客户2", "客户3", "客户4"]
    log, _ = sync(target)
    assert log.status == "done", log.message
    rows = {row[0]: row[NAME] for row in side.values()[1:] if row[0]}
    with app.app_context():
        assert rows == {c.code: c.name for c in db.session.scalars(select(Customer).where(Customer.id.in_(pks)))}


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_row_typed_where_the_run_appends_is_not_overwritten(app: Any, side: GoogleSide, make_target: Any,
                                                                   sync: Any, make_customer: Any) -> None:
    target, pks = _synced(app, side, make_target, sync, make_customer)
    make_customer("rep_a", name="CRM新客户", contact_name="新", contact_phone="13800009999")  # to be appended
    _colleague_between_read_and_write(
        side, lambda: _google_sheet(side).write(6, 0, [["", "同事新加的行", "赵六", "13911110000"]], raw=True))
    log, _ = sync(target)
    assert log.status == "failed" and "rows added below the table" in log.message
    assert _names(side)[-1] == "同事新加的行"
    log, _ = sync(target)
    assert log.status == "done", log.message
    names = _names(side)
    assert "同事新加的行" in names and "CRM新客户" in names
    with app.app_context():
        assert db.session.scalars(select(Customer).where(Customer.name == "同事新加的行")).one()


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_edit_elsewhere_does_not_stop_the_run(app: Any, side: GoogleSide, make_target: Any, sync: Any,
                                                     make_customer: Any) -> None:
    """Only the rows the run writes are compared: a busy sheet still syncs."""
    target, pks = _synced(app, side, make_target, sync, make_customer)
    _colleague_between_read_and_write(side, lambda: _google_sheet(side).write(5, NOTE, [["同事的备注"]], raw=True))
    log, backend = sync(target)
    assert log.status == "done", log.message
    assert dict(backend.calls) == {"read": 1, "check": 1, "values_write": 1}
    assert _names(side)[2] == "CRM改名" and side.values()[5][NOTE] == "同事的备注"
    log, _ = sync(target)
    assert log.status == "done" and log.counts["app_updated"] == 1, log.message
    with app.app_context():
        assert db.session.get(Customer, pks[4]).note == "同事的备注"


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_unchanged_run_costs_no_check(app: Any, side: GoogleSide, make_target: Any, sync: Any,
                                            make_customer: Any) -> None:
    target, _ = _synced(app, side, make_target, sync, make_customer)
    sync(target)
    log, _ = sync(target)
    assert log.api_calls == {"read": 1}


@pytest.mark.parametrize("side", ["xlsx"], indirect=True)
def test_xlsx_saved_while_the_new_file_is_built_is_not_overwritten(app: Any, side: XlsxSide, make_target: Any,
                                                                   sync: Any, make_customer: Any,
                                                                   monkeypatch: Any) -> None:
    """The second fingerprint, just before the rename: a colleague saved after our check."""
    from sync import backends

    target, _ = _synced(app, side, make_target, sync, make_customer)
    real_build = backends.XlsxBackend._build

    def build_then_colleague_saves(self: Any, change: Any, temp: Any) -> None:
        real_build(self, change, temp)
        side.edit({(3, NAME): "同事改名"})

    monkeypatch.setattr(backends.XlsxBackend, "_build", build_then_colleague_saves)
    log, _ = sync(target)
    assert log.status == "failed" and "changed while the sync ran" in log.message
    assert _names(side)[2] == "同事改名"
    monkeypatch.undo()
    log, _ = sync(target)
    assert log.status == "done" and log.counts["conflicts"] == 1, log.message
    assert _names(side)[2] == "同事改名"
