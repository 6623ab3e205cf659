"""The checking process's share of storing imported follow-ups (issue 12): ``prepare_follow_ups``
(stamps, bound values, create entries, planned activities) on 50 chunks of 2,000 rows.

    .venv/bin/python -m bench.prepare_follow_ups [--runs 5]

Prints the best CPU time of ``--runs`` (seconds for 100,000 rows) on a scratch SQLite database.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta
from typing import Any

from bench.scratch import migrated_app, scratch_env

CHUNKS, ROWS = 50, 2000


def _rows(method_id: int) -> list[dict[str, Any]]:
    from app import clock

    start = clock.from_local(datetime(2026, 3, 1, 9))
    return [{"customer_id": n % 1000 + 1, "followed_at": clock.to_local(start + timedelta(minutes=n)),
             "method_id": method_id, "content": f"第{n}次电话沟通，客户对报价有兴趣", "next_step": "发送报价单",
             "next_step_date": (datetime(2026, 3, 8) + timedelta(days=n % 30)).date(), "owner_id": 1, "code": None}
            for n in range(ROWS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scratch_env("crm-bench-prepare-")
    app = migrated_app()
    with app.app_context():
        from sqlalchemy import select

        from app.extensions import db
        from app.models import FollowUpMethod
        from app.services import follow_ups

        method_id = db.session.scalar(select(FollowUpMethod.id))
        best = float("inf")
        for _ in range(args.runs):
            chunks = [_rows(method_id) for _ in range(CHUNKS)]
            started = time.process_time()
            for chunk in chunks:
                follow_ups.prepare_follow_ups(chunk)
            best = min(best, time.process_time() - started)
    print(f"prepare_follow_ups, {CHUNKS * ROWS:,} rows in chunks of {ROWS:,}: best of {args.runs} {best:.2f} s CPU")


if __name__ == "__main__":
    main()
