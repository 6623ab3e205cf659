"""Customer list view at 100,000 customers over 10 reps: median and max time per request.

    .venv/bin/python -m bench.list_view [--customers 100000] [--requests 60]

Runs in process (Flask test client, SQLite file in a temp dir unless DATABASE_URL is set),
first page with the default sort, as a sales rep (scoped to ~10,000 rows) and as admin.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from bench.scratch import PASSWORD, add_reps, migrated_app, scratch_env

BATCH = 5000


def build(customers: int) -> tuple[object, list[str]]:
    scratch_env("crm-bench-")
    from sqlalchemy import insert, select

    from app.extensions import appbuilder, db
    from app.models import Customer, CustomerLevel, CustomerType, Industry

    app = migrated_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        sm = appbuilder.sm
        reps = add_reps(10)
        sm.add_user("admin", "Ad", "Min", "admin@bench.test", sm.find_role("Admin"), password=PASSWORD)
        types = db.session.scalars(select(CustomerType.id)).all()
        levels = db.session.scalars(select(CustomerLevel.id)).all()
        industries = db.session.scalars(select(Industry.id)).all()
        rng = random.Random(1)
        for start in range(0, customers, BATCH):
            rows = [{
                "code": f"C20240101{n:06d}", "name": f"Bench Customer {n}", "contact_phone": f"138{n:08d}",
                "contact_name": f"Contact {n}", "owner_id": reps[n % 10].id, "type_id": rng.choice(types),
                "level_id": rng.choice(levels), "industry_id": rng.choice(industries), "version": 1,
            } for n in range(start, min(start + BATCH, customers))]
            db.session.execute(insert(Customer), rows)
        db.session.commit()
    return app, ["rep3", "admin"]


def measure(app: object, username: str, requests: int) -> tuple[float, float]:
    client = app.test_client()
    client.post("/login/", data={"username": username, "password": PASSWORD})
    assert client.get("/customerview/list/").status_code == 200  # warm up
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get("/customerview/list/")
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    started = time.perf_counter()
    app, users = build(args.customers)
    print(f"seeded {args.customers:,} customers in {time.perf_counter() - started:.1f} s")
    for username in users:
        median, worst = measure(app, username, args.requests)
        print(f"customer list as {username:<6} median {median:6.1f} ms   max {worst:6.1f} ms   ({args.requests} requests)")


if __name__ == "__main__":
    main()
