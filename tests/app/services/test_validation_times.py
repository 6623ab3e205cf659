"""``validation.parse_datetime`` reads cells and sheet text as CRM-zone wall time (issue 11 §5)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.services import validation

AT = datetime(2026, 11, 30, 13, 9, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["2026-11-30 21:09", "2026/11/30 21:09:00", datetime(2026, 11, 30, 21, 9),
                                 46356 + (21 * 60 + 9) / 1440, "2026-11-30T13:09:00Z",
                                 datetime(2026, 11, 30, 14, 9, tzinfo=ZoneInfo("Europe/Berlin"))])
def test_wall_time_and_offsets_are_the_same_instant(ctx: Any, raw: Any) -> None:
    parsed = validation.parse_datetime(raw)
    assert parsed == AT and parsed.utcoffset().total_seconds() == 8 * 3600  # shown in the CRM's zone


def test_a_date_is_the_crm_day_even_when_sent_as_a_utc_instant(ctx: Any) -> None:
    assert validation.parse_date("2026-12-01") == date(2026, 12, 1)
    assert validation.parse_date("2026-11-30T17:00:00+00:00") == date(2026, 12, 1)  # 01:00 in Shanghai


@pytest.mark.parametrize("raw", ["0001-01-01", "someday", "2026-11-30T25:00:00+00:00"])
def test_unreadable_or_unrepresentable_times_are_a_message(ctx: Any, raw: str) -> None:
    with pytest.raises(ValueError, match="Not a date"):
        validation.parse_datetime(raw)
