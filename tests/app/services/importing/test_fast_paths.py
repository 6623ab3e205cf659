"""Issue 12: ``clock.zone_pinned`` — the CRM zone read once per import chunk answers as a
look-up per call would, for its own thread, until the block ends."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from app import clock
from app.services import validation

EAST = timezone(timedelta(hours=8))

# --- the zone, once per chunk ---------------------------------------------------------

CELLS = [datetime(2026, 5, 1, 9, 30), date(2026, 5, 1), "2026-05-01 09:30", 46143.5,
         datetime(2026, 5, 1, 9, 30, tzinfo=UTC), datetime(2026, 5, 1, 17, 30, tzinfo=EAST), "", None]


def _readings() -> list[Any]:
    moments = [validation.parse_datetime(cell) for cell in CELLS]
    return [*moments, [validation.date_problem(m) for m in moments], clock.zone_name(),
            clock.to_local(CELLS[4]), clock.from_local(CELLS[0]), clock.local_text(CELLS[4])]


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "America/New_York"])
def test_a_pinned_zone_reads_as_the_zone_looked_up(app: Any, monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    monkeypatch.setitem(app.config, "CRM_TIMEZONE", zone)
    with app.app_context():
        expected = _readings()
        with clock.zone_pinned() as pinned:
            assert pinned == clock.crm_zone() and str(pinned) == zone
            assert _readings() == expected
            assert [getattr(m, "tzinfo", None) for m in _readings()[:len(CELLS)]] == \
                [getattr(m, "tzinfo", None) for m in expected[:len(CELLS)]]


def test_a_zone_saved_during_a_pinned_block_applies_from_the_next(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_TIMEZONE", "Asia/Shanghai")
    with app.app_context():
        try:
            with clock.zone_pinned():
                clock.set_company_zone("Europe/Berlin")
                assert clock.zone_name() == "Asia/Shanghai"
            assert clock.zone_name() == "Europe/Berlin"
        finally:
            clock.set_company_zone(None)
        assert clock.zone_name() == "Asia/Shanghai"


def test_a_pin_holds_for_its_own_thread_only(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_TIMEZONE", "Asia/Shanghai")
    seen: list[str] = []
    with app.app_context(), clock.zone_pinned():
        clock.set_company_zone("Europe/Berlin")
        try:
            thread = threading.Thread(target=lambda: seen.append(clock.zone_name()))
            thread.start()
            thread.join()
            assert clock.zone_name() == "Asia/Shanghai"
        finally:
            clock.set_company_zone(None)
    assert seen == ["Europe/Berlin"]
