"""The request timer's cost per request (issue 19, ``app/services/monitoring/timer.py``).

    .venv/bin/python -m bench.request_timer [--records 1000000] [--endpoints 50] [--cells 300]
        [--flush-runs 5] [--requests 2000] [--batch 100]

Scratch SQLite instance (``bench.scratch``), nothing seeded but an admin. Prints:

(a) microbenchmarks: ``Timings.record(endpoint, ms)`` in µs per call over ``--records``
    calls spread over ``--endpoints`` endpoints (a fresh ``Timings``, the class of
    ``TIMINGS``); ``flush()`` of a table of ``--cells`` (endpoint, minute) cells in ms, median
    of ``--flush-runs``, once into new ``endpoint_timing`` rows and once adding to existing
    ones (several processes flushing the same minute); the ``_before``/``_after`` hooks
    alone in µs per request (called in a request context, ``record`` included).
(b) end to end: ``--requests`` GETs through the Flask test client, logged in as admin, to
    the activity calendar's events JSON (an empty week: a cheap page the timer does time),
    half with the timer's hooks in ``before_request_funcs``/``after_request_funcs`` and half
    with them removed, alternating in batches of ``--batch`` so machine noise hits both;
    the median and mean µs of each and the difference. A flush falls due once a minute
    during the run (as in production); the median leaves it out, the mean includes it.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.million import _app
from bench.scratch import PASSWORD, scratch_env

WEEK = "?start=2026-01-05&end=2026-01-12"


def _events_path(app: Any) -> str:
    """The activity calendar's events JSON (its URL comes from the view's declared name)."""
    found = [rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.endswith(".events")]
    assert len(found) == 1, found
    return found[0]


def _record_us(records: int, endpoints: int) -> float:
    from app.services.monitoring import timer

    names = [f"/bench/page{n}/<int:pk>" for n in range(endpoints)]
    rng = random.Random(19)
    calls = [(names[n % endpoints], rng.choice((3, 12, 40, 80, 150, 260, 420, 900, 2500))) for n in range(records)]
    timings = timer.Timings()
    started = time.perf_counter()
    for endpoint, ms in calls:
        timings.record(endpoint, ms)
    return (time.perf_counter() - started) / records * 1e6


def _table(cells: int, base: datetime) -> Any:
    """A ``Timings`` holding ``cells`` cells: 50 endpoints x cells/50 minutes from ``base``."""
    from app.services.monitoring import timer

    timings = timer.Timings()
    for n in range(cells):
        at = base + timedelta(minutes=n // 50)
        for ms in (20, 90, 400):
            timings.record(f"/bench/page{n % 50}/<int:pk>", ms, at)
    return timings


def _flush_ms(cells: int, runs: int) -> tuple[float, float]:
    """(median ms of a flush into new rows, median ms adding to existing rows)."""
    from app.services.monitoring import timer

    new, existing = [], []
    for run in range(runs):
        base = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(hours=run)
        for into in (new, existing):  # the same minutes twice: first inserted, then added to
            timings = _table(cells, base)
            started = time.perf_counter()
            written = timer.flush(timings)
            into.append((time.perf_counter() - started) * 1000)
            assert written == cells, written
    return statistics.median(new), statistics.median(existing)


def _hooks_us(app: Any, path: str, repeat: int) -> float:
    """``_before`` + ``_after`` alone, per request, in a request context of the events page."""
    from flask import Response

    from app.services.monitoring import timer

    response = Response("[]")
    with app.test_request_context(path + WEEK) as context:
        context.match_request()  # url_rule and endpoint, as in a dispatched request
        started = time.perf_counter()
        for _ in range(repeat):
            timer._before()
            timer._after(response)
        return (time.perf_counter() - started) / repeat * 1e6


def _end_to_end(app: Any, url: str, requests: int, batch: int) -> dict[str, list[float]]:
    from app.services.monitoring import timer

    on_before = list(app.before_request_funcs[None])
    on_after = list(app.after_request_funcs[None])
    assert timer._before in on_before and timer._after in on_after, "the timer is not installed"
    off_before = [f for f in on_before if f is not timer._before]
    off_after = [f for f in on_after if f is not timer._after]
    client = app.test_client()
    answer = client.post("/login/", data={"username": "admin", "password": PASSWORD})
    assert answer.status_code in (200, 302), answer.status_code
    check = client.get(url)
    assert check.status_code == 200 and check.is_json, (check.status_code, check.data[:200])
    for _ in range(50):  # warm-up
        client.get(url)
    times: dict[str, list[float]] = {"with timer": [], "without": []}
    modes = [("with timer", on_before, on_after), ("without", off_before, off_after)]
    for n in range(requests // (2 * batch)):
        for name, before, after in modes if n % 2 == 0 else modes[::-1]:
            app.before_request_funcs[None], app.after_request_funcs[None] = list(before), list(after)
            for _ in range(batch):
                started = time.perf_counter()
                client.get(url)
                times[name].append((time.perf_counter() - started) * 1e6)
    app.before_request_funcs[None], app.after_request_funcs[None] = on_before, on_after
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--flush-runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    scratch_env("crm-bench-timer-")
    app = _app(os.environ["DATABASE_URL"])  # migrated, CSRF and TOTP off (bench.million)
    from app.extensions import appbuilder, db

    with app.app_context():
        sm = appbuilder.sm
        sm.add_user("admin", "Ad", "Min", "admin@bench.test", sm.find_role("Admin"), password=PASSWORD)
        db.session.commit()
    print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}, "
          f"load average {os.getloadavg()[0]:.2f}")
    per_call = _record_us(args.records, args.endpoints)
    print(f"record(endpoint, ms): {per_call:.2f} µs per call ({args.records:,} calls, {args.endpoints} endpoints)")
    with app.app_context():
        new, existing = _flush_ms(args.cells, args.flush_runs)
    print(f"flush() of {args.cells} cells: {new:.1f} ms into new rows, {existing:.1f} ms adding to existing "
          f"rows (median of {args.flush_runs})")
    path = _events_path(app)
    print(f"_before + _after alone: {_hooks_us(app, path, 100_000):.2f} µs per request")
    times = _end_to_end(app, path + WEEK, args.requests, args.batch)
    for name, found in times.items():
        print(f"GET {path + WEEK} {name:<10}: median {statistics.median(found):7.1f} µs   "
              f"mean {statistics.fmean(found):7.1f} µs   ({len(found)} requests)")
    on, off = times["with timer"], times["without"]
    print(f"difference (with - without): median {statistics.median(on) - statistics.median(off):+.1f} µs, "
          f"mean {statistics.fmean(on) - statistics.fmean(off):+.1f} µs")


if __name__ == "__main__":
    main()
