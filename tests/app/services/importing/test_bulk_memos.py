"""Issue 12: the importer parses each distinct date cell once per run (``ImportRun._when``);
what it gives must be what ``validation.parse_datetime`` gives for the cell, every time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from app.extensions import appbuilder, db
from app.services import validation
from app.services.importing import columns
from app.services.importing.engine import ImportRun, Settings
from app.services.importing.reading import Table

EAST = timezone(timedelta(hours=8))


@pytest.fixture
def run(app: Any) -> Any:
    with app.app_context():
        user = appbuilder.sm.find_user(username="rep_a")
        table = Table(["客户编号", "跟进时间"], [], None)
        importer = ImportRun(table, columns.auto_map(columns.FOLLOW_UP, table.headers), Settings("follow_up"), user,
                             commit=False)
        yield importer
        db.session.rollback()


def test_a_date_cell_parsed_once_is_the_cell_parsed_each_time(run: ImportRun, shanghai: None) -> None:
    cells = [datetime(2026, 5, 1, 9, 30), datetime(2026, 5, 1, 9, 30), date(2026, 5, 1), "2026-05-01",
             "2026/5/1 09:30", 46143, 46143.0, 46143.5, datetime(2026, 5, 1, 9, 30, tzinfo=UTC),
             datetime(2026, 5, 1, 17, 30, tzinfo=EAST), "", None]
    for cell in cells * 2:
        assert run._when(cell) == validation.parse_datetime(cell)
        assert getattr(run._when(cell), "tzinfo", None) == getattr(validation.parse_datetime(cell), "tzinfo", None)
    for _ in range(2):  # a refusal is not kept: the same message every time
        with pytest.raises(ValueError) as refused:
            run._when("not a date")
        with pytest.raises(ValueError) as expected:
            validation.parse_datetime("not a date")
        assert str(refused.value) == str(expected.value)
