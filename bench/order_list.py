"""Sales > Orders list and Sales > Overdue deliveries at 20,000 orders over 10 reps: median
and max time per request.

    .venv/bin/python -m bench.order_list [--orders 20000] [--requests 40]

Runs in process (Flask test client, SQLite file in a temp dir unless DATABASE_URL is set),
first page with the default sort, as a sales rep (scoped to ~2,000 orders) and as a Read Only
user (every order; an admin would first have to enrol an authenticator).
Half the orders are approved with a delivery date in the past (overdue).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date, timedelta
from decimal import Decimal

from bench.scratch import PASSWORD, add_reps, migrated_app, scratch_env

BATCH = 5000
PAGES = ("/salesorderview/list/", "/sales/orders/overdue/deliveries")


def build(orders: int) -> object:
    """A migrated scratch app with ``orders`` orders (one customer per 10 orders)."""
    scratch_env("crm-bench-orders-")
    from sqlalchemy import insert

    from app.extensions import appbuilder, db
    from app.models import Customer
    from app.models.orders import SalesOrder

    app = migrated_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        sm = appbuilder.sm
        reps = add_reps(10)
        sm.add_user("reader", "Read", "Only", "reader@bench.test", sm.find_role("Read Only"), password=PASSWORD)
        customers = max(1, orders // 10)
        db.session.execute(insert(Customer), [{
            "code": f"C20240101{n:06d}", "name": f"Bench Customer {n}", "contact_phone": f"138{n:08d}",
            "owner_id": reps[n % 10].id, "version": 1} for n in range(customers)])
        first = db.session.scalar(db.select(db.func.min(Customer.id)))
        past = date.today() - timedelta(days=3)
        for start in range(0, orders, BATCH):
            db.session.execute(insert(SalesOrder), [{
                "code": f"SO20240101{n:06d}", "customer_id": first + n % customers, "owner_id": reps[n % customers % 10].id,
                "title": f"Order {n}", "status": "approved" if n % 2 else "draft", "currency": "CNY",
                "delivery_date": past, "payment_due": past, "total": Decimal("1000.00"),
                "delivered_amount": Decimal("250.00"), "paid_amount": Decimal(0), "version": 1,
            } for n in range(start, min(start + BATCH, orders))])
        db.session.commit()
    return app


def measure(app: object, username: str, url: str, requests: int) -> tuple[float, float]:
    """(median, max) milliseconds of ``requests`` GETs of ``url`` as ``username``."""
    client = app.test_client()
    client.post("/login/", data={"username": username, "password": PASSWORD})
    warm = client.get(url)  # warm up
    assert warm.status_code == 200, (username, url, warm.status_code, warm.headers.get("Location"))
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    app = build(args.orders)
    for username in ("rep3", "reader"):
        for url in PAGES:
            median, worst = measure(app, username, url, args.requests)
            print(f"{username:6} {url:36} median {median:7.1f} ms  max {worst:7.1f} ms")


if __name__ == "__main__":
    main()
