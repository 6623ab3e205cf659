"""Pipeline kanban and forecast at 100,000 opportunities over 10 reps: median and max per request.

    .venv/bin/python -m bench.bench_pipeline [--opportunities 100000] [--requests 30] [--db PATH]

Runs in process (Flask test client, SQLite file unless DATABASE_URL is set), as a sales rep
(own scope, ~10,000 opportunities) and as admin (all): the kanban page (``/pipeline/``, 6
columns with totals and 50 cards each) and the forecast page (12 months by owner). Rows are
bulk-inserted (no audit, like the other benches); ``--db PATH`` keeps the SQLite file and
reuses it on the next run when it already holds the opportunities.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bench.scratch import PASSWORD, add_reps, migrated_app, scratch_env

BATCH = 5000
CUSTOMERS_PER_REP = 1000
#: Stage code -> share of the opportunities in it (an ordinary funnel).
FUNNEL = {"contact": 30, "needs": 20, "proposal": 15, "negotiation": 10, "won": 15, "lost": 10}
FORECAST_URL = "/pipeline/forecast?start=2025-01&months=12"


def _point_at(db_path: str | None) -> bool:
    """Use ``db_path`` as the database (kept between runs); True when it already exists."""
    scratch_env("crm-bench-pipeline-")
    if not db_path:
        return False
    path = Path(db_path).resolve()
    os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    return path.exists()


def _seed(count: int) -> None:
    """Departments, 10 reps (5 a department), an admin, customers and ``count`` opportunities."""
    from sqlalchemy import insert, select, update

    from app.extensions import appbuilder, db
    from app.models import Customer, CustomerType
    from app.models.org import Department, RoleDataScope
    from app.models.sales import Opportunity, Stage

    sm = appbuilder.sm
    reps = add_reps(10)
    sm.add_user("admin", "Ad", "Min", "admin@bench.test", sm.find_role("Admin"), password=PASSWORD)
    east, south = Department(name="Bench East"), Department(name="Bench South")
    db.session.add_all([east, south])
    db.session.flush()
    for i, rep in enumerate(reps):
        rep.department_id = (east if i < 5 else south).id
    # The admin logs in with a password only here (the Admin role asks for an authenticator).
    db.session.execute(update(RoleDataScope).values(totp_required=False))
    db.session.commit()
    potential = db.session.scalar(select(CustomerType.id).where(CustomerType.code == "potential"))
    customers = len(reps) * CUSTOMERS_PER_REP
    db.session.execute(insert(Customer), [{
        "code": f"C20240101{n:06d}", "name": f"Bench Customer {n}", "contact_phone": f"138{n:08d}",
        "owner_id": reps[n % 10].id, "type_id": potential, "version": 1} for n in range(customers)])
    stages = {code: (sid, lost) for code, sid, lost in db.session.execute(select(Stage.code, Stage.id, Stage.is_lost))}
    weights = [(stages[code], share) for code, share in FUNNEL.items()]
    rng = random.Random(13)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for first in range(0, count, BATCH):
        rows = []
        for n in range(first, min(first + BATCH, count)):
            (stage_id, lost), = rng.choices([s for s, _ in weights], [w for _, w in weights])
            customer = rng.randrange(customers)
            changed = start + timedelta(minutes=rng.randrange(60 * 24 * 365))
            rows.append({
                "code": f"O2024{n:08d}", "customer_id": customer + 1, "owner_id": reps[customer % 10].id,
                "title": f"Deal {n}", "stage_id": stage_id, "amount": Decimal(rng.randrange(1_000, 5_000_000)) / 100,
                "expected_close": date(2025, 1, 1) + timedelta(days=rng.randrange(400)) if rng.random() > 0.05 else None,
                "probability_override": rng.choice([None] * 9 + [rng.randrange(101)]),
                "lost_reason": "price" if lost else None, "demand": "bench", "proposal_version": "v1",
                "stage_entered_at": changed, "created_on": changed, "changed_on": changed, "version": 1,
            })
        db.session.execute(insert(Opportunity), rows)
    db.session.commit()


def build(count: int, db_path: str | None) -> object:
    """The migrated app with ``count`` opportunities (reused from ``db_path`` when there)."""
    reuse = _point_at(db_path)
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models.sales import Opportunity

    app = migrated_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        have = db.session.scalar(select(func.count(Opportunity.id))) if reuse else 0
        if have != count:
            if have:
                raise SystemExit(f"{db_path} holds {have:,} opportunities, not {count:,}: remove it first")
            _seed(count)
        else:
            print(f"reusing {db_path} ({have:,} opportunities)")
    return app


def measure(app: object, username: str, url: str, requests: int) -> tuple[float, float]:
    client = app.test_client()
    client.post("/login/", data={"username": username, "password": PASSWORD})
    assert client.get(url).status_code == 200, f"{url} as {username}"  # warm up
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--opportunities", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--db", help="SQLite file to keep and reuse between runs")
    args = parser.parse_args()
    started = time.perf_counter()
    app = build(args.opportunities, args.db)
    print(f"ready with {args.opportunities:,} opportunities in {time.perf_counter() - started:.1f} s")
    for page, url in (("kanban", "/pipeline/"), ("forecast", FORECAST_URL)):
        for username in ("rep3", "admin"):
            median, worst = measure(app, username, url, args.requests)
            print(f"{page:<8} as {username:<6} median {median:6.1f} ms   max {worst:6.1f} ms   "
                  f"({args.requests} requests)")


if __name__ == "__main__":
    main()
