"""The request timer (000 §三(二)): a scripted load through ``timer.record`` at fixed minutes,
flushed, read back per endpoint (count, p50/p95 as bucket bounds, max); two processes'
flushes add up; slow pages listed, alerts throttled; real requests are timed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Notification
from app.models.operations import EndpointTiming, SlowRequest
from app.services.monitoring import responses, timer

MINUTE = datetime(2026, 11, 30, 3, 7, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timer, "TIMINGS", timer.Timings())


def _load(t: timer.Timings, endpoint: str, durations: list[int], at: datetime) -> None:
    for ms in durations:
        t.record(endpoint, ms, at)


def test_scripted_load_gives_count_percentiles_and_max(app: Any) -> None:
    t = timer.Timings()
    # 100 requests: 90 fast (40 ms), 6 at 450 ms, 4 at 2500 ms
    _load(t, "CustomerView.list", [40] * 90 + [450] * 6 + [2500] * 4, MINUTE)
    _load(t, "CustomerView.list", [40] * 10, MINUTE + timedelta(minutes=1))
    _load(t, "HomeView.index", [120, 130, 8000], MINUTE)
    with app.app_context():
        assert timer.flush(t) == 3
        rows = db.session.scalars(select(EndpointTiming).order_by(EndpointTiming.minute)).all()
        assert {(r.endpoint, r.minute, r.count) for r in rows} == {
            ("CustomerView.list", MINUTE, 100), ("CustomerView.list", MINUTE + timedelta(minutes=1), 10),
            ("HomeView.index", MINUTE, 3)}
        figures = {f.endpoint: f for f in responses.endpoint_figures(MINUTE - timedelta(hours=1))}
    lst, home = figures["CustomerView.list"], figures["HomeView.index"]
    assert (lst.count, lst.max_ms, lst.p50, lst.p95) == (110, 2500, 50, 500)
    assert lst.mean_ms == round((100 * 40 + 6 * 450 + 4 * 2500) / 110)
    assert (home.count, home.max_ms, home.p50, home.p95) == (3, 8000, 200, 8000)
    assert [f.endpoint for f in figures.values()][0] == "HomeView.index", "slowest p95 first"


def test_two_processes_flushes_add_up(app: Any) -> None:
    first, second = timer.Timings(), timer.Timings()
    _load(first, "CustomerView.list", [40, 40, 900], MINUTE)
    _load(second, "CustomerView.list", [40, 4000], MINUTE)
    with app.app_context():
        timer.flush(first)
        timer.flush(second)
        row = db.session.scalars(select(EndpointTiming)).one()
        assert (row.count, row.total_ms, row.max_ms) == (5, 5020, 4000)
        assert json.loads(row.buckets) == {"50": 3, "1000": 1, "5000": 1}


def test_nothing_is_written_before_a_minute_passed() -> None:
    t = timer.Timings()
    now = datetime(2026, 11, 30, 3, 7, 30, tzinfo=UTC)
    assert not t.due(now)  # nothing recorded
    t.record("x", 5, now)
    assert t.due(now)  # never flushed yet
    t.flushed_at = now
    t.record("x", 5, now)
    assert not t.due(now + timedelta(seconds=59))
    assert t.due(now + timedelta(seconds=60))


def test_a_slow_page_is_listed_and_its_alert_throttled(app: Any) -> None:
    at = datetime(2026, 11, 30, 3, 7, tzinfo=UTC)
    with app.app_context():
        timer.refresh_limits()
        assert timer.slow("CustomerView.list", 2500, path="/customers/list/") is False  # under 3 s: not listed
        assert timer.slow("CustomerView.list", 3500, path="/customers/list/?q=secret") is False  # listed, no alert
        assert timer.slow("CustomerView.list", 6000, path="/customers/list/", at=at) is True
        assert timer.slow("CustomerView.list", 7000, path="/customers/list/", at=at + timedelta(minutes=10)) is False
        assert timer.slow("HomeView.index", 6000, path="/", at=at) is True  # another page alerts on its own
        assert timer.slow("CustomerView.list", 6500, path="/customers/list/", at=at + timedelta(hours=1, minutes=1))
        rows = db.session.scalars(select(SlowRequest).order_by(SlowRequest.id)).all()
        assert [r.ms for r in rows] == [3500, 6000, 7000, 6000, 6500]
        assert all("?" not in r.path and "secret" not in r.path for r in rows)
        admin_alerts = db.session.scalars(select(Notification).where(Notification.event == "slow_page")).all()
        assert len({n.occasion for n in admin_alerts}) == 3


def test_real_requests_are_timed_and_flushed(app: Any, client: Any, auth: Any) -> None:
    auth.login("admin")
    for _ in range(3):
        assert client.get("/notifications/").status_code in (200, 302)
    client.get("/health/live")
    endpoints = {endpoint for endpoint, _minute in timer.TIMINGS.cells}
    assert not any(e.startswith("health") for e in endpoints), endpoints
    assert endpoints, "no request was timed"
    with app.app_context():
        timer.flush()
        stored = db.session.scalars(select(EndpointTiming)).all()
        assert sum(r.count for r in stored) >= 3


def test_a_due_flush_runs_beside_the_request_not_in_it(app: Any, client: Any, auth: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside tests the minute's flush (~150 ms for a busy minute: bench.request_timer) runs
    on a thread of its own: the request that finds it due answers without waiting for it."""
    import threading

    monkeypatch.setitem(app.config, "CRM_TIMER_FLUSH_INLINE", False)
    flushed = threading.Event()
    release = threading.Event()
    real_flush = timer.flush

    def slow_flush(timings: Any = None) -> int:
        release.wait(10)  # the request must finish while this flush is still held
        written = real_flush(timings)
        flushed.set()
        return written

    monkeypatch.setattr(timer, "flush", slow_flush)
    auth.login("admin")
    timer.TIMINGS.flushed_at = datetime(2000, 1, 1, tzinfo=UTC)  # due at the next request
    assert client.get("/notifications/").status_code in (200, 302)
    assert not flushed.is_set(), "the request waited for the flush"
    release.set()
    assert flushed.wait(10), "the flush thread never ran"
    with app.app_context():
        assert sum(r.count for r in db.session.scalars(select(EndpointTiming))) >= 1


def test_nothing_is_written_while_a_restore_runs(app: Any) -> None:
    from app.services.backups import maintenance

    at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    _load(timer.TIMINGS, "/customers/list/", [120, 80], at)
    with app.app_context():
        flag = maintenance.flag_path()
        flag.touch()
        try:
            assert timer.flush() == 0
            assert timer.TIMINGS.cells, "the figures were dropped instead of kept for later"
        finally:
            flag.unlink()
        assert timer.flush() == 1
        assert [r.count for r in db.session.scalars(select(EndpointTiming))] == [2]
