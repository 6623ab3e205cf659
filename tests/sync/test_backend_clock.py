"""Issue 11 §5 in the sheet backends: instants (aware UTC) are written to cells as the CRM's
wall-clock time, and the xlsx file's modification time is an aware UTC instant, so the
"newest" conflict policy compares it with a record's change time (aware UTC) instead of
crashing on naive-versus-aware."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from openpyxl import Workbook

from app.extensions import db
from app.models import Customer
from app.services.importing.reading import cell_text
from sync.backends import XlsxBackend, _entered, _set
from tests.sync.conftest import HEADERS, SHEET

FOLLOW_UP_HEADERS = ["记录编号", "客户编号", "跟进时间", "跟进方式", "跟进内容", "下一步日期"]
NOTE = HEADERS.index("备注")
#: 13:09 UTC is 21:09 in Asia/Shanghai (CRM_TIMEZONE's default).
INSTANT = datetime(2024, 5, 1, 13, 9, tzinfo=UTC)


def test_an_instant_is_written_as_the_crms_wall_clock_time(app: Any, side: Any, make_target: Any, sync: Any,
                                                           make_customer: Any, make_follow_up: Any) -> None:
    customer = make_customer("rep_a", name="Acme")
    make_follow_up(customer, "rep_a", content="Called", followed_at=INSTANT)
    side.create([FOLLOW_UP_HEADERS])
    target = make_target(model="follow_up")
    log, backend = sync(target)
    assert log.status == "done" and log.counts["sheet_added"] == 1, log.message
    assert side.values()[1][2].startswith("2024-05-01 21:09")
    log, backend = sync(target)
    assert log.status == "done" and side.writes(backend) == 0, log.message  # read back as the same instant


def test_cell_values_of_instants_are_local_and_naive(app: Any) -> None:
    with app.app_context():
        cell = Workbook().active["A1"]
        _set(cell, INSTANT)  # openpyxl refuses aware values; a serial number holds wall time
        assert cell.value == datetime(2024, 5, 1, 21, 9) and cell.number_format == "yyyy-mm-dd hh:mm"
        assert _entered(INSTANT) == "2024-05-01 21:09"
        assert cell_text(INSTANT) == "2024-05-01 21:09"
        assert cell_text(datetime(2024, 5, 1, 21, 9)) == "2024-05-01 21:09"  # a cell's own value: kept
        assert _entered(datetime(2024, 5, 1, 21, 9)) == "2024-05-01 21:09"


def test_xlsx_modified_at_is_an_aware_utc_instant(app: Any, tmp_path: Any) -> None:
    path = tmp_path / "book.xlsx"
    book = Workbook()
    book.active.title = SHEET
    book.active.append(HEADERS)
    book.save(path)
    stamp = datetime(2024, 5, 1, 13, 9, tzinfo=UTC)
    os.utime(path, (stamp.timestamp(), stamp.timestamp()))
    with app.app_context():
        data = XlsxBackend(path, SHEET).read()
    assert data.modified_at == stamp and data.modified_at.utcoffset() == timedelta(0)


def test_newest_policy_compares_the_file_time_with_the_record_time(app: Any, side: Any, make_target: Any,
                                                                   sync: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Acme", contact_name="王", contact_phone="13812345678")
    side.create([HEADERS])
    target = make_target(conflict_policy="newest")
    log, _ = sync(target)
    assert log.status == "done", log.message
    side.edit({(1, NOTE): "sheet note"})
    if side.name == "xlsx":  # the sheet was saved a day ago: the CRM's edit (now) is newer
        past = (datetime.now(UTC) - timedelta(days=1)).timestamp()
        os.utime(side.path, (past, past))
    with app.app_context():
        db.session.get(Customer, pk).note = "crm note"
        db.session.commit()
    log, _ = sync(target)
    assert log.status == "done", log.message
    winner = "crm note" if side.name == "xlsx" else "sheet note"  # Google: the sheet counts as read-time new
    assert side.values()[1][NOTE] == winner
    with app.app_context():
        assert db.session.get(Customer, pk).note == winner
