"""The navbar bell's cost: one COUNT of a user's unread notifications, on every page (issue 14).

    .venv/bin/python -m bench.notifications_bell [--users 50] [--per-user 4000] [--repeat 200]

Fills ``notification`` with users x per-user rows (a quarter unread), then prints the median
time of ``notifications.unread_count`` for one user, the query plan (it must use
``ix_notification_inbox``), and the median of one inbox page (20 rows, scope checked).
SQLite file in a temp folder unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.scratch import add_reps, migrated_app, scratch_env


def median_ms(func: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--per-user", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    scratch_env("crm-bell-")
    app = migrated_app()
    from sqlalchemy import insert, text

    from app.clock import utc_now
    from app.extensions import db
    from app.models import Notification
    from app.services import notifications

    with app.app_context():
        reps = add_reps(args.users)
        db.session.commit()
        now = utc_now()
        for rep in reps:
            db.session.execute(insert(Notification), [
                {"user_id": rep.id, "event": "import_finished", "params": {"file": f"f{i}.xlsx", "summary": "ok"},
                 "created_at": now, "read_at": None if i % 4 == 0 else now} for i in range(args.per_user)])
        db.session.commit()
        user = reps[0]
        total = args.users * args.per_user
        count = notifications.unread_count(user.id)
        plan = db.session.execute(text(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM notification WHERE user_id = :u AND read_at IS NULL"),
            {"u": user.id}).all() if db.engine.dialect.name == "sqlite" else []
        bell = median_ms(lambda: notifications.unread_count(user.id), args.repeat)
        with app.test_request_context():
            page = median_ms(lambda: notifications.inbox(user, 1), max(args.repeat // 10, 5))
        print(f"notifications: {total} rows ({args.users} users x {args.per_user}); user's unread: {count}")
        print(f"bell COUNT median: {bell:.3f} ms over {args.repeat} runs")
        print(f"inbox page (20 rows) median: {page:.3f} ms")
        for row in plan:
            print("plan:", row[-1])


if __name__ == "__main__":
    main()
