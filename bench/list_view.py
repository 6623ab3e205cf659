"""Customer list view at 100,000 customers over 10 reps: median and max time per request.

    .venv/bin/python -m bench.list_view [--customers 100000] [--requests 60]

Runs in process (Flask test client, SQLite file in a temp dir unless DATABASE_URL is set),
first page with the default sort, as a sales rep (scoped to ~10,000 rows) and as admin.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

BATCH = 5000


def build(customers: int) -> tuple[object, list[str]]:
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.db'}")
    os.environ["CRM_INSTANCE_DIR"] = str(tmp)
    os.environ["CRM_SCHEDULER"] = "0"
    from flask_migrate import upgrade
    from sqlalchemy import insert, select

    from app import create_app
    from app.extensions import appbuilder, db
    from app.models import Customer, CustomerLevel, CustomerType, Industry
    from app.services.setup import initialise
    from config import Config

    Config.WTF_CSRF_ENABLED = False
    app = create_app(Config)
    with app.app_context():
        upgrade()
        initialise()
        sm = appbuilder.sm
        reps = [sm.add_user(f"rep{i}", "Rep", str(i), f"rep{i}@bench.test", sm.find_role("Sales Rep"),
                            password="Bench-Pass-1") for i in range(10)]
        sm.add_user("admin", "Ad", "Min", "admin@bench.test", sm.find_role("Admin"), password="Bench-Pass-1")
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
    client.post("/login/", data={"username": username, "password": "Bench-Pass-1"})
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
