"""Issue 11 §3 in the xlsx sync: a formula cell saved without a result (tools that write
formulas but never calculate them) is read as the formula it is, never as the "" a reader
makes of it, which the sync would take for a cleared cell and clear in the CRM."""

from __future__ import annotations

from typing import Any

import pytest
from openpyxl import load_workbook

from app.extensions import db
from app.models import Customer
from tests.sync.conftest import HEADERS, SHEET, XlsxSide

NOTE = HEADERS.index("备注")
LINK = '=HYPERLINK("http://example.com","site")'


@pytest.mark.parametrize("side", ["xlsx"], indirect=True)
def test_a_formula_without_a_saved_result_is_not_read_as_an_empty_cell(app: Any, side: XlsxSide,
                                                                       make_target: Any, sync: Any,
                                                                       make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Acme", contact_name="王", contact_phone="13812345678", note="site")
    side.create([HEADERS])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    book = load_workbook(side.path)
    book[SHEET].cell(row=2, column=NOTE + 1, value=LINK)  # openpyxl stores no cached value
    book.save(side.path)
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        assert db.session.get(Customer, pk).note in ("site", LINK)  # never the "" nobody saw
