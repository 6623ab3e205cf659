"""Manager dashboard figures at 100,000 customers, 100,000 opportunities, 200,000 follow-ups.

    .venv/bin/python -m bench.dashboard [--customers 100000] [--opportunities 100000]
        [--follow-ups 200000] [--requests 15] [--db PATH]

In process (service calls, no HTTP), SQLite file unless DATABASE_URL is set. Data: 10 reps in
two departments (5 each), a Sales Manager over the first department, an admin; customers,
opportunities (with their stage history), follow-ups, customer status changes (won / lost),
leads, confirmed sales orders with lines and monthly targets, spread over 2025-01..2026-11.
Prints, for the manager dashboard (every ``dashboard == "manager"`` metric, period 2026-06):
the cold figure (the first dashboard after start: no cache of ours, SQLite's page cache
empty) and the warm median over ``--requests`` dashboards, as admin (every owner) and as
the manager (department scope); then each metric's own median as the manager. The indexes
requested for the migration are added when missing and the database is ANALYZEd. Each
dashboard runs in its own request context (the per-request memo starts empty), so "warm"
means warm database pages only: there is no cross-request cache.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.scratch import PASSWORD, add_reps, migrated_app, scratch_env

BATCH = 5000
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_MINUTES = 60 * 24 * 699  # to 2026-11-30
PERIOD = "2026-06"
FUNNEL = {"contact": 30, "needs": 20, "proposal": 15, "negotiation": 10, "won": 15, "lost": 10}


def _point_at(db_path: str | None) -> bool:
    scratch_env("crm-bench-dashboard-")
    if not db_path:
        return False
    path = Path(db_path).resolve()
    os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    return path.exists()


def _insert(model: Any, rows: Any) -> None:
    from sqlalchemy import insert

    from app.extensions import db

    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            db.session.execute(insert(model), batch)
            batch = []
    if batch:
        db.session.execute(insert(model), batch)
    db.session.commit()


def _when(rng: random.Random) -> datetime:
    return START + timedelta(minutes=rng.randrange(SPAN_MINUTES))


def _people() -> list[Any]:
    from sqlalchemy import update

    from app.extensions import appbuilder, db
    from app.models.org import Department, RoleDataScope

    sm = appbuilder.sm
    reps = add_reps(10)
    sm.add_user("admin", "Ad", "Min", "admin@bench.test", sm.find_role("Admin"), password=PASSWORD)
    manager = sm.add_user("boss", "Bo", "Ss", "boss@bench.test", sm.find_role("Sales Manager"), password=PASSWORD)
    east, south = Department(name="Bench East"), Department(name="Bench South")
    db.session.add_all([east, south])
    db.session.flush()
    for i, rep in enumerate(reps):
        rep.department_id = (east if i < 5 else south).id
    manager.department_id = east.id
    db.session.execute(update(RoleDataScope).values(totp_required=False))
    db.session.commit()
    return reps


def _seed(customers: int, opportunities: int, follow_ups: int) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Customer, CustomerType
    from app.models.customers import CustomerStatusChange, FollowUp
    from app.models.orders import OrderLine, SalesOrder
    from app.models.reports import SalesTarget
    from app.models.sales import Lead, Opportunity, OpportunityStageChange, Product, Stage

    reps = [r.id for r in _people()]
    rng = random.Random(17)
    types = dict(db.session.execute(select(CustomerType.code, CustomerType.id)).tuples().all())
    created = [_when(rng) for _ in range(customers)]
    _insert(Customer, ({"code": f"C{n:010d}", "name": f"Bench Customer {n}", "contact_phone": f"138{n:08d}",
                        "owner_id": reps[n % 10], "type_id": types["potential"], "version": 1,
                        "created_on": created[n], "changed_on": created[n]} for n in range(customers)))
    _insert(CustomerStatusChange, ({"customer_id": c + 1, "from_type_id": types["potential"],
                                    "to_type_id": types["won" if n % 3 else "lost"], "changed_at": _when(rng)}
                                   for n, c in enumerate(rng.sample(range(customers), customers // 10))))
    _insert(FollowUp, ({"code": f"F{n:010d}", "customer_id": (c := rng.randrange(customers)) + 1,
                        "owner_id": reps[c % 10], "followed_at": _when(rng), "content": "bench", "version": 1}
                       for n in range(follow_ups)))
    stages = db.session.execute(select(Stage.code, Stage.id, Stage.sort_order)).all()
    by_code = {code: (sid, order) for code, sid, order in stages}
    ladder = sorted((order, sid) for code, sid, order in stages if code not in ("lost",))
    opp_rows, history = [], []
    for n in range(opportunities):
        code = rng.choices(list(FUNNEL), list(FUNNEL.values()))[0]
        customer = rng.randrange(customers)
        when = _when(rng)
        opp_rows.append({"code": f"O{n:010d}", "customer_id": customer + 1, "owner_id": reps[customer % 10],
                         "title": f"Deal {n}", "stage_id": by_code[code][0], "version": 1,
                         "amount": Decimal(rng.randrange(1_000, 5_000_000)) / 100,
                         "expected_close": (when + timedelta(days=rng.randrange(120))).date(),
                         "stage_entered_at": when, "created_on": when, "changed_on": when})
        top = by_code[code][1] if code != "lost" else rng.choice(ladder)[0]
        history.extend({"opportunity_id": n + 1, "to_stage_id": sid, "changed_at": when}
                       for order, sid in ladder if order <= top)
    _insert(Opportunity, opp_rows)
    _insert(OpportunityStageChange, history)
    _insert(Lead, ({"code": f"L{n:010d}", "company": f"Lead {n}", "owner_id": reps[n % 10], "version": 1,
                    "status": rng.choice(["new", "contacted", "qualified", "converted", "invalid"]),
                    "created_on": (w := _when(rng)), "changed_on": w} for n in range(customers // 5)))
    _insert(Product, ({"code": f"P{n:04d}", "name": f"Product {n}", "version": 1} for n in range(50)))
    orders = customers // 5
    _insert(SalesOrder, ({"code": f"S{n:010d}", "customer_id": (c := rng.randrange(customers)) + 1,
                          "owner_id": reps[c % 10], "status": rng.choice(["approved", "delivered", "closed", "draft",
                                                                          "cancelled"]),
                          "order_date": _when(rng).date(), "total": Decimal(rng.randrange(100, 100_000)),
                          "version": 1} for n in range(orders)))
    _insert(OrderLine, ({"order_id": n + 1, "position": 0, "product_id": rng.randrange(50) + 1, "quantity": 1,
                         "unit_price": 1, "amount": Decimal(rng.randrange(100, 100_000)), "discount": 0}
                        for n in range(orders)))
    months = [date(2025 + i // 12, i % 12 + 1, 1) for i in range(23)]
    _insert(SalesTarget, ({"user_id": uid, "month": m, "amount": Decimal(500_000)} for uid in reps for m in months))


def _refuse_a_loaded_config() -> None:
    """The app's config reads DATABASE_URL when first imported: if something imported it
    before ``scratch_env``, the bench would write into the instance database. Refuse."""
    loaded = sys.modules.get("config")
    if loaded is not None and loaded.Config.SQLALCHEMY_DATABASE_URI != os.environ.get("DATABASE_URL"):
        raise SystemExit("config was imported before the bench chose its database: run "
                         "`python -m bench.dashboard` (or set DATABASE_URL and CRM_INSTANCE_DIR first)")


#: Indexes requested for the migration (/work/notes/requests17.md, metrics 2): created here when
#: missing, so the figures are the ones the schema gives once they land.
REQUESTED_INDEXES = {
    "ix_opportunity_stage_owner": "opportunity (stage_id, owner_id, probability_override, amount)",
    "ix_opportunity_created": "opportunity (created_on, owner_id)",
    "ix_customer_created_owner": "customer (created_on, owner_id, archived_at)",
}


def _indexes_and_statistics() -> None:
    """Add the requested indexes that are missing, then ANALYZE (as bench/million.py does)."""
    from sqlalchemy import inspect, text

    from app.extensions import db

    present = {ix["name"] for table in ("opportunity", "customer") for ix in inspect(db.engine).get_indexes(table)}
    for name, spec in REQUESTED_INDEXES.items():
        if name not in present:
            print(f"adding requested index {name} on {spec}")
            db.session.execute(text(f"CREATE INDEX {name} ON {spec}"))
    db.session.execute(text("ANALYZE"))
    db.session.commit()


def build(customers: int, opportunities: int, follow_ups: int, db_path: str | None) -> Any:
    """The migrated app with the data (reused from ``db_path`` when it holds it)."""
    reuse = _point_at(db_path)
    _refuse_a_loaded_config()
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Customer

    app = migrated_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        have = db.session.scalar(select(func.count(Customer.id))) if reuse else 0
        if have != customers:
            if have:
                raise SystemExit(f"{db_path} holds {have:,} customers, not {customers:,}: remove it first")
            _seed(customers, opportunities, follow_ups)
        else:
            print(f"reusing {db_path} ({have:,} customers)")
        _indexes_and_statistics()
    return app


def dashboard(app: Any, username: str, keys: list[str]) -> tuple[float, dict[str, float]]:
    """One manager dashboard for ``username`` in a fresh request: (total ms, ms per metric)."""
    from app.extensions import appbuilder, db
    from app.services import metrics

    with app.test_request_context("/dashboards/manager"):
        user = appbuilder.sm.find_user(username=username)
        each: dict[str, float] = {}
        started = time.perf_counter()
        filters = metrics.parse_filters({"period": PERIOD}, user)
        for key in keys:
            t = time.perf_counter()
            metrics.figure(key, user, filters)
            each[key] = (time.perf_counter() - t) * 1000
        total = (time.perf_counter() - started) * 1000
        db.session.remove()
    return total, each


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--opportunities", type=int, default=100_000)
    parser.add_argument("--follow-ups", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--db", help="SQLite file to keep and reuse between runs")
    args = parser.parse_args()
    started = time.perf_counter()
    app = build(args.customers, args.opportunities, args.follow_ups, args.db)
    print(f"ready: {args.customers:,} customers, {args.opportunities:,} opportunities, "
          f"{args.follow_ups:,} follow-ups in {time.perf_counter() - started:.1f} s")
    from app.services import metrics

    keys = [key for key, found in metrics.METRICS.items() if found.dashboard == "manager"]
    per_metric: dict[str, list[float]] = {key: [] for key in keys}
    for username in ("admin", "boss"):
        cold, _ = dashboard(app, username, keys)
        warm = []
        for _ in range(args.requests):
            total, each = dashboard(app, username, keys)
            warm.append(total)
            if username == "boss":
                for key, ms in each.items():
                    per_metric[key].append(ms)
        print(f"manager dashboard ({len(keys)} figures) as {username:<5}  cold {cold:7.1f} ms   "
              f"warm median {statistics.median(warm):7.1f} ms   max {max(warm):7.1f} ms   ({args.requests} runs)")
    print("per metric, as the manager (median ms):")
    for key in sorted(keys, key=lambda k: -statistics.median(per_metric[k])):
        print(f"  {key:<22} {statistics.median(per_metric[key]):7.1f}")


if __name__ == "__main__":
    main()
