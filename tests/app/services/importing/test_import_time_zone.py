"""Imported times are CRM-zone wall time (issue 11 §5): a CSV or xlsx follow-up time
"2026-11-30 21:09" is stored as 13:09 UTC; a date stays the day it names."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, FollowUp
from tests.app.services.importing.conftest import write_xlsx

HEADERS = ["客户编号", "跟进时间", "跟进方式", "跟进内容", "下一步日期"]
AT = datetime(2026, 11, 30, 13, 9, tzinfo=UTC)  # 21:09 in Shanghai


pytestmark = pytest.mark.usefixtures("shanghai")


def _stored(app: Any) -> dict[str, tuple[datetime, date | None]]:
    with app.app_context():
        return {f.content: (f.followed_at, f.next_step_date) for f in db.session.scalars(select(FollowUp))}


def _code(app: Any, pk: int) -> str:
    with app.app_context():
        return db.session.get(Customer, pk).code


def test_csv_times_are_shanghai_wall_time(app: Any, run_job: Any, make_customer: Any, tmp_path: Path) -> None:
    code = _code(app, make_customer("rep_a"))
    path = tmp_path / "follow-ups.csv"
    path.write_text(",".join(HEADERS) + "\n" + f"{code},2026-11-30 21:09,电话,Typed,2026-12-01\n"
                    + f"{code},2026-11-30T13:09:00+00:00,电话,With offset,\n", encoding="utf-8")
    job = run_job("rep_a", path, model="follow_up")
    assert (job.created, job.rejected) == (2, 0), job.preview
    stored = _stored(app)
    assert stored["Typed"] == (AT, date(2026, 12, 1))  # 13:09 UTC; the date is the day typed
    assert stored["With offset"][0] == AT


def test_xlsx_date_time_cells_and_serials_are_shanghai_wall_time(app: Any, run_job: Any, make_customer: Any,
                                                                  tmp_path: Path) -> None:
    code = _code(app, make_customer("rep_a"))
    serial = 46356 + (21 * 60 + 9) / 1440  # 2026-11-30 21:09 as an Excel serial
    path = write_xlsx(tmp_path / "f.xlsx", {"s": [
        HEADERS,
        [code, datetime(2026, 11, 30, 21, 9), "电话", "Cell", date(2026, 12, 1)],
        [code, serial, "电话", "Serial", ""],
    ]})
    job = run_job("rep_a", path, model="follow_up")
    assert (job.created, job.rejected) == (2, 0), job.preview
    stored = _stored(app)
    assert stored["Cell"] == (AT, date(2026, 12, 1))
    assert stored["Serial"][0] == AT
