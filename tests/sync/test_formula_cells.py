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


# --- Google (issue 21 §1) ---------------------------------------------------------------------
# Google computes a formula typed into the sheet and every read but FORMULA answers the result
# (gspread cassette test_get_all_values_date_time_render_options: =4/2 -> 2, =3/2 -> 1.5); the
# sync reads effectiveValue, so the CRM gets what the sheet user sees. The formula itself stays
# in the sheet until the CRM changes that field.

def _type(side: Any, row: int, col: int, text: str) -> None:
    """Type ``text`` into a cell as a person does in the Sheets UI (USER_ENTERED: ``=`` is a formula)."""
    side.fake.spreadsheets["book-123"].sheet(SHEET).write(row, col, [[text]], raw=False)


def _formula(side: Any, row: int, col: int) -> Any:
    return side.fake.values("book-123", SHEET, render="FORMULA")[row][col]


def _quiet(sync: Any, side: Any, target: int) -> None:
    log, backend = sync(target)
    assert log.status == "done", log.message
    assert side.writes(backend) == 0 and backend.calls["read"] == 1


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_formula_cell_gives_the_crm_its_result_and_stays_a_formula(app: Any, side: Any, make_target: Any,
                                                                         sync: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Acme", contact_name="王", contact_phone="13812345678", note="site")
    side.create([HEADERS])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    _type(side, 1, NOTE, '=CONCATENATE("VIP", "客户")')
    assert side.values()[1][NOTE] == "VIP客户"  # what the sheet user sees
    log, backend = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        assert db.session.get(Customer, pk).note == "VIP客户"  # the result, never "#NAME?" or the formula text
    assert side.writes(backend) == 0  # the sheet already shows it: nothing written over the formula
    assert _formula(side, 1, NOTE) == '=CONCATENATE("VIP", "客户")'
    _quiet(sync, side, target)


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_formula_survives_a_crm_edit_of_another_field_and_yields_to_one_of_its_own(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Acme", contact_name="王", contact_phone="13812345678", note="site")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    _type(side, 1, NOTE, '=UPPER("vip")&" "&LEN("abc")')
    sync(target)
    with app.app_context():
        assert db.session.get(Customer, pk).note == "VIP 3"
        customer = db.session.get(Customer, pk)
        customer.contact_name = "王五"  # a CRM edit of another field of the same row
        db.session.commit()
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert side.values()[1][HEADERS.index("联系人姓名")] == "王五"
    assert _formula(side, 1, NOTE) == '=UPPER("vip")&" "&LEN("abc")'  # the formula is not replaced by its value
    with app.app_context():
        customer = db.session.get(Customer, pk)
        customer.note = "改过的备注"  # the CRM changes the formula's own field: the CRM's value is written
        db.session.commit()
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert _formula(side, 1, NOTE) == "改过的备注"
    _quiet(sync, side, target)


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_formula_error_is_read_as_the_error_google_shows(app: Any, side: Any, make_target: Any,
                                                               sync: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Acme", contact_name="王", contact_phone="13812345678", note="site")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    _type(side, 1, NOTE, "=1/0")
    assert side.values()[1][NOTE] == "#DIV/0!"
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        assert db.session.get(Customer, pk).note == "#DIV/0!"  # what the user sees in the cell
    assert _formula(side, 1, NOTE) == "=1/0"
    _quiet(sync, side, target)


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_formula_is_not_overwritten_by_its_normalised_result(app: Any, side: Any, make_target: Any,
                                                                    sync: Any, make_customer: Any) -> None:
    """The CRM stores e-mails lower-cased; the cell shows the formula's upper-cased result and
    is read as the save reads it, so it is no change and the formula stays."""
    pk = make_customer("rep_a", name="Acme", contact_name="王", contact_phone="13812345678")
    side.create([[*HEADERS, "电子邮箱"]])
    target = make_target()
    sync(target)
    _type(side, 1, len(HEADERS), '=UPPER("li@example.com")')  # shows LI@EXAMPLE.COM
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        assert db.session.get(Customer, pk).email == "li@example.com"  # the CRM keeps its canonical form
    assert _formula(side, 1, len(HEADERS)) == '=UPPER("li@example.com")'
    _quiet(sync, side, target)


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_date_typed_into_a_text_column_reaches_the_crm_as_shown(app: Any, side: Any, make_target: Any,
                                                                       sync: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Acme", contact_name="王", contact_phone="13812345678", note="site")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    _type(side, 1, NOTE, "2024-05-01")  # the Sheets UI makes it a date (serial 45413, shown 2024-05-01)
    assert side.values()[1][NOTE] == "2024-05-01" and _formula(side, 1, NOTE) == 45413
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        assert db.session.get(Customer, pk).note == "2024-05-01"
    _quiet(sync, side, target)
