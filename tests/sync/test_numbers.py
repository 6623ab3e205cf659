"""Numbers and dates as spreadsheets keep them (issue 11 §2): a phone column formatted as a
number, a phone typed as a number, an 18-digit code that became a number, dates written as
real dates. Each run is followed by a quiet one (1 read, 0 writes)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from tests.sync.conftest import HEADERS, SHEET, GoogleSide

CREDIT = "统一社会信用代码"


def _quiet(sync: Any, side: Any, target: int) -> Any:
    log, backend = sync(target)
    assert log.status == "done", log.message
    assert side.writes(backend) == 0 and backend.calls["read"] == 1
    return log


def _phones(app: Any) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(Customer.contact_phone)))


def _enter(side: GoogleSide, row: int, col: int, text: str) -> None:
    """Type ``text`` into a cell as a person does in the Sheets UI (USER_ENTERED parsing)."""
    side.fake.spreadsheets["book-123"].sheet(SHEET).write(row, col, [[text]], raw=False)


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_google_phone_column_formatted_as_number(app: Any, side: Any, make_target: Any, sync: Any,
                                                 make_customer: Any) -> None:
    make_customer("rep_a", name="星河科技", contact_name="李娜", contact_phone="13812345678")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    _enter(side, 1, 3, "13,812,345,678")  # the column got a number format: the same phone
    assert side.values()[1][3] == "13,812,345,678"
    log = _quiet(sync, side, target)
    assert log.counts.get("app_updated", 0) == 0 and side.values()[1][6:] == []  # no status message
    side.edit(append=[["", "远航贸易", "王强", "", "", ""]])
    _enter(side, 2, 3, "13,900,001,111")
    log, _ = sync(target)
    assert log.counts["app_created"] == 1, log.message
    assert "13900001111" in _phones(app)
    _quiet(sync, side, target)


def test_a_phone_typed_as_a_number_is_the_phone(app: Any, side: Any, make_target: Any, sync: Any) -> None:
    side.create([HEADERS, ["", "远航贸易", "王强", 13900001111.0, "", ""]])  # a number cell, xlsx and Google
    target = make_target()
    log, _ = sync(target)
    assert log.counts["app_created"] == 1, log.message
    assert "13900001111" in _phones(app)
    _quiet(sync, side, target)


def test_an_18_digit_code_that_became_a_number_is_refused(app: Any, side: Any, make_target: Any,
                                                          sync: Any) -> None:
    side.create([[*HEADERS, CREDIT], ["", "远航贸易", "王强", "13900001111", "", "", 913501001200013952.0]])
    target = make_target()
    log, _ = sync(target)
    assert log.counts.get("app_created", 0) == 0 and log.counts["app_rejected"] == 1
    with app.app_context():
        assert db.session.scalar(select(Customer).where(Customer.name == "远航贸易")) is None
    status = side.values()[1][-1]
    assert CREDIT in status and "913501001200013952" not in status
    assert "format the column as text" in status  # what to do about it, not a checksum puzzle
    _quiet(sync, side, target)


def test_codec_reads_numbers_by_field(app: Any) -> None:
    from app.services.importing.columns import CUSTOMER, FOLLOW_UP
    from sync.backends import SheetNumber
    from sync.fields import FieldCodec

    with app.app_context():
        codec = FieldCodec(CUSTOMER, ["contact_phone", "credit_code", "note"], True, True)
        assert codec.sheet_text("contact_phone", SheetNumber(13812345678)) == "13812345678"
        assert codec.sheet_text("contact_phone", SheetNumber(13812345678.0)) == "13812345678"
        lost = SheetNumber(913501001200013952)
        assert codec.sheet_text("credit_code", lost) == "9.13501001200014E+17"  # never invented digits
        assert "format the column as text" in codec.sheet_problem("credit_code", lost)
        assert codec.sheet_problem("credit_code", SheetNumber(12345)) is None
        follow = FieldCodec(FOLLOW_UP, ["followed_at", "next_step_date"], True, True)
        assert follow.sheet_text("next_step_date", SheetNumber(45413)) == "2024-05-01"
        assert follow.sheet_text("followed_at", SheetNumber(45413.4375)) == "2024-05-01 10:30"
        assert follow.sheet_text("followed_at", SheetNumber(45413.43749999)) == "2024-05-01 10:30"


def test_google_writes_dates_as_dates_and_text_as_text(tmp_path: Any) -> None:
    from datetime import date

    from sync.backends import SheetWrite

    side = GoogleSide(tmp_path)
    side.create([["a", "b", "c", "d"], ["x"]])
    backend = side.backend(0)
    backend.read()
    backend.write(SheetWrite(cells={(0, 0): date(2024, 5, 1), (0, 1): "=1+2", (0, 2): "0012",
                                    (0, 3): "913501001200013952"}), None)
    book = side.fake
    assert book.values("book-123", SHEET)[1] == ["2024-05-01", "=1+2", "0012", "913501001200013952"]
    assert book.values("book-123", SHEET, render="UNFORMATTED_VALUE")[1][0] == 45413  # a real date serial
    assert book.calls[-1].body["valueInputOption"] == "USER_ENTERED"
    assert backend.read().rows[0][:4] == ["45413", "=1+2", "0012", "913501001200013952"]
