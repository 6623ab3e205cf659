"""Related-field widgets at ~100,000 customers (issue 12): the follow-up list page (its
search filters), the add and edit forms, and the AJAX lookup behind the customer field.

    .venv/bin/python -m bench.related_widgets [--customers 100000] [--requests 9]

Runs in process (Flask test client, SQLite file in a temp dir unless DATABASE_URL is set):
10 reps, every customer with one follow-up. Each URL: ``--requests`` timed GETs after one
warm-up, median and max in ms and the size of the answer, as a rep (~10 % of the customers
in scope) and as the admin (everything), with the load average at the start; the customer
list is measured too, as the yardstick the follow-up pages are compared with.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime

from bench.scratch import PASSWORD, add_reps, migrated_app, scratch_env

BATCH = 5000
STAMP = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def build(customers: int) -> object:
    scratch_env("crm-bench-related-")
    os.environ["TOTP_AT_LOGIN"] = "off"
    from sqlalchemy import insert, select, update

    from app.extensions import appbuilder, db
    from app.models import Customer, CustomerType, FollowUp, RoleDataScope

    app = migrated_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        sm = appbuilder.sm
        db.session.execute(update(RoleDataScope).values(totp_required=False))
        reps = add_reps(10)
        sm.add_user("admin", "Ad", "Min", "admin@bench.test", sm.find_role("Admin"), password=PASSWORD)
        kind = db.session.scalars(select(CustomerType.id)).first()
        for start in range(0, customers, BATCH):
            numbers = range(start, min(start + BATCH, customers))
            db.session.execute(insert(Customer), [{
                "code": f"C20240101{n:06d}", "name": f"Bench Customer {n}", "contact_phone": f"138{n:08d}",
                "contact_name": f"Contact {n}", "owner_id": reps[n % 10].id, "type_id": kind, "version": 1,
            } for n in numbers])
            db.session.execute(insert(FollowUp), [{
                "code": f"G20240101{n:06d}", "customer_id": n + 1, "owner_id": reps[n % 10].id,
                "content": f"Called customer {n}", "followed_at": STAMP, "version": 1,
            } for n in numbers])
        db.session.commit()
    return app


def measure(client: object, url: str, requests: int) -> tuple[float, float, int]:
    """(median ms, max ms, bytes) of ``requests`` GETs of ``url`` after a warm-up."""
    first = client.get(url)
    assert first.status_code == 200, (url, first.status_code)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), len(response.data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=9)
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    started = time.perf_counter()
    app = build(args.customers)
    print(f"seeded {args.customers:,} customers and follow-ups in {time.perf_counter() - started:.1f} s")
    # the customer list (no customer select of its own) is the yardstick on a noisy machine
    urls = ["/customerview/list/", "/followupview/list/", "/followupview/add", "/followupview/edit/3",
            "/followupview/related/add/customer?q=", "/followupview/related/add/customer?q=Bench%20Customer%2099",
            "/followupview/related/add/customer?q=C20240101000003"]
    for username in ("rep3", "admin"):
        client = app.test_client()
        client.post("/login/", data={"username": username, "password": PASSWORD})
        for url in urls:
            try:
                median, worst, size = measure(client, url, args.requests)
            except AssertionError as exc:  # the code before issue 12 has no lookup route
                print(f"{username:<6} {url:<62} not served ({exc.args[0][1]})")
                continue
            print(f"{username:<6} {url:<62} median {median:8.1f} ms  max {worst:8.1f} ms  {size / 1024:9.1f} KiB")


if __name__ == "__main__":
    main()
