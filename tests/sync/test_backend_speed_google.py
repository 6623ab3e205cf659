"""Issue 12, Google backend: the changed run's ``values:batchUpdate`` carries one range per run
of adjacent cells in a row (``'客户'!B3:C3``), not one per cell: a smaller request for Google to
parse, and less JSON for us to build. The cells still land where they did."""

from __future__ import annotations

from typing import Any

import pytest

from app.extensions import db
from app.models import Customer
from sync.backends import _runs
from tests.sync.conftest import HEADERS, GoogleSide


def test_adjacent_cells_of_a_row_share_one_range() -> None:
    runs = _runs("'客户'", {(3, 2): "'a", (3, 3): "'b", (3, 5): "'c", (4, 3): "'d"})
    assert runs == [{"range": "'客户'!B3:C3", "values": [["'a", "'b"]]},
                    {"range": "'客户'!E3", "values": [["'c"]]},
                    {"range": "'客户'!C4", "values": [["'d"]]}]


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_a_changed_run_writes_a_row_run_as_one_range(app: Any, side: GoogleSide, make_target: Any, sync: Any,
                                                     make_customer: Any) -> None:
    pks = [make_customer("rep_a", name=f"客户{n}", contact_name=f"联系人{n}", contact_phone=f"1380000{n:04d}")
           for n in range(3)]
    side.create([HEADERS])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        customer = db.session.get(Customer, pks[1])
        customer.name, customer.contact_name = "新名字", "新联系人"  # 客户名称 and 联系人姓名: adjacent
        db.session.commit()
    before = len(side.fake.calls)
    log, _ = sync(target)
    assert log.status == "done" and log.counts["sheet_updated"] == 1, log.message
    writes = [call.body for call in side.fake.calls[before:] if call.body and "valueInputOption" in call.body]
    assert [entry["range"] for entry in writes[0]["data"]] == ["'客户'!B3:C3"]
    assert side.values()[2][1:3] == ["新名字", "新联系人"]
