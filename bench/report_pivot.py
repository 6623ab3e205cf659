"""Report builder pivots over 1,000,000 follow-ups (issue 17: a 2-dimension pivot <= 2 s).

    .venv/bin/python -m bench.report_pivot [--rows 1000000] [--runs 5] [--rebuild]
    DATABASE_URL=postgresql+psycopg://... .venv/bin/python -m bench.report_pivot

The fixture is ``bench.million``'s (100 reps in 10 departments; every customer with one
follow-up, so N customers = N follow-ups, followed over ~23 months), built into its own
SQLite file ``bench/out/report-pivot-<n>.db`` and reused. Each pivot runs
``reports.run`` (one GROUP BY in scope + the pandas pivot + the chart figure) ``--runs``
times after one warm-up, as the admin (every record) and as a manager (one department);
the median and max are printed, with the first (cold) run separately.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from bench import million

PIVOTS = [
    ("follow_ups", ["owner", "followed_month"], "count"),
    ("follow_ups", ["department", "followed_quarter"], "count"),
    ("customers", ["level", "industry"], "count"),
    ("customers", ["level", "industry_section"], "count"),
    ("customers", ["owner", "created_month"], "count"),
]


def _database(rows: int, rebuild: bool) -> tuple[str, bool]:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, True
    million.OUT.mkdir(exist_ok=True)
    path = million.OUT / f"report-pivot-{rows}.db"
    if rebuild and path.exists():
        path.unlink()
    return f"sqlite:///{path}", not path.exists()


def _time(spec: Any, user: Any, runs: int) -> tuple[float, float, float, int]:
    """(cold ms, median ms, max ms, groups) of ``reports.run``."""
    from app.extensions import db
    from app.services import reports

    timings = []
    for _ in range(runs + 1):
        db.session.expire_all()
        start = time.perf_counter()
        result = reports.run(spec, user)
        timings.append((time.perf_counter() - start) * 1000)
    cold, warm = timings[0], timings[1:]
    return cold, statistics.median(warm), max(warm), len(result.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    url, build = _database(args.rows, args.rebuild)
    app = million._app(url)
    with app.app_context():
        from app.extensions import appbuilder
        from app.services import reports

        if build and million._needs_data(args.rows):
            started = time.perf_counter()
            reps, _ = million._people()
            million._fill(args.rows, reps)
            print(f"fixture built in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f}; {args.rows:,} follow-ups and customers; {url.split(':')[0]}")
        print(f"{'as':10} {'pivot':45} {'cold ms':>8} {'median':>8} {'max':>8} {'groups':>7}")
        for username in ("admin", "manager0"):
            user = appbuilder.sm.find_user(username=username)
            for source, dims, measure in PIVOTS:
                spec = reports.parse_spec({"source": source, "dimensions": dims, "measure": measure})
                cold, median, worst, groups = _time(spec, user, args.runs)
                name = f"{source}: {' x '.join(dims)} ({measure})"
                print(f"{username:10} {name:45} {cold:8.0f} {median:8.0f} {worst:8.0f} {groups:7d}", flush=True)


if __name__ == "__main__":
    main()
