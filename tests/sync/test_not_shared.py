"""Issue 21 §2: a Google Sheet the service account cannot open. Google answers 403
PERMISSION_DENIED ("The caller does not have permission") for a book that exists but is not
shared with it, and 404 for a key that names nothing (gspread cassettes
``test_access_private_spreadsheet`` / ``test_access_non_existing_spreadsheet``). Both runs end
"failed" with the one message that tells the user what to do, write nothing to the sheet or the
CRM, and are not retried (the answer will not change by itself)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer
from tests.sync.conftest import HEADERS

MESSAGE = "The Google Sheet was not found or is not shared with the service account."


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
@pytest.mark.parametrize("answer", ["not shared (403)", "missing (404)"])
def test_a_sheet_not_shared_or_missing_fails_the_run_with_one_clear_message(app: Any, side: Any, make_target: Any,
                                                                            sync: Any, make_customer: Any,
                                                                            answer: str) -> None:
    make_customer("rep_a", name="星河科技", contact_name="李娜", contact_phone="13812345678")
    side.create([HEADERS, ["", "远航贸易", "王强", "13900001111", "", ""]])  # a new row the run would create
    if answer.startswith("not shared"):
        side.fake.unshare("book-123")
    else:
        del side.fake.spreadsheets["book-123"]
    target = make_target()
    log, backend = sync(target)
    assert log.status == "failed" and log.message == MESSAGE
    statuses = [call.status for call in side.fake.calls]
    assert statuses == [403 if answer.startswith("not shared") else 404]  # one call, no retries
    assert side.writes(backend) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 1  # 远航贸易 not created
