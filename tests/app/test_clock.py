"""The CRM's clock (issue 11 §5): instants in UTC, wall time and days in CRM_TIMEZONE."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app import clock
from app.services import numbering

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: 21:09 in Shanghai.
AT = datetime(2026, 11, 30, 13, 9, tzinfo=UTC)


def test_an_instant_reads_as_wall_time_in_the_crm_zone(ctx: Any) -> None:
    assert clock.to_local(AT) == datetime(2026, 11, 30, 21, 9, tzinfo=SHANGHAI)
    assert clock.local_text(AT) == "2026-11-30 21:09"
    assert clock.local_naive(AT) == datetime(2026, 11, 30, 21, 9)
    assert clock.local_text(None) == "" and clock.to_local(None) is None


def test_typed_wall_time_is_an_instant_and_an_offset_is_kept(ctx: Any) -> None:
    assert clock.from_local(datetime(2026, 11, 30, 21, 9)) == AT
    berlin = datetime(2026, 11, 30, 14, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    assert clock.from_local(berlin) == AT and clock.from_local(berlin).tzinfo is UTC


def test_a_frozen_clock_moves_every_reading(ctx: Any) -> None:
    with clock.frozen(AT):
        assert clock.utc_now() == AT and clock.utc_now().tzinfo is UTC
        assert clock.local_now().strftime("%H:%M %z") == "21:09 +0800"
    assert clock.utc_now() != AT


def test_today_and_record_codes_use_the_crm_day(ctx: Any) -> None:
    """At 23:30 UTC on 30 November it is already 1 December in Shanghai."""
    with clock.frozen(datetime(2026, 11, 30, 23, 30, tzinfo=UTC)):
        assert clock.local_today() == date(2026, 12, 1)
        assert numbering.today_key() == "20261201"


def test_the_zone_is_the_configured_one(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with app.app_context():
        monkeypatch.setitem(app.config, "CRM_TIMEZONE", "Europe/Berlin")
        assert clock.local_text(AT) == "2026-11-30 14:09"


def test_an_unknown_zone_name_stops_the_configuration() -> None:
    from config import _zone_name

    with pytest.raises(ValueError, match="CRM_TIMEZONE='Mars/Olympus'"):
        _zone_name("Mars/Olympus")
    assert _zone_name("Asia/Shanghai") == "Asia/Shanghai"
