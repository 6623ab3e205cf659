"""Seconds per reminder tick (issue 14): the first tick that tells, and the next one that finds
everything told already (the once-per-occasion path every minute/day costs).

    .venv/bin/python -m bench.reminders [--customers 10000] [--activities 5000]

SQLite file in a temp dir unless DATABASE_URL is set. Contacts' birthdays are spread over the
year (about 1/120 of them fall in the 3-day window); activities fell due within the last day.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime, timedelta

from bench.scratch import add_reps, migrated_app, scratch_env

NOW = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)


def build(customers: int, activities: int) -> object:
    scratch_env("crm-bench-reminders-")
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import Activity, Customer, CustomerType
    from app.models.sales import Contact

    app = migrated_app()
    with app.app_context():
        reps = add_reps(10)
        kind = db.session.scalar(select(CustomerType.id))
        db.session.execute(insert(Customer), [
            {"code": f"C20240101{n:06d}", "name": f"Bench {n}", "contact_phone": f"138{n:08d}", "owner_id": reps[n % 10].id, "type_id": kind,
             "version": 1} for n in range(customers)])
        ids = db.session.scalars(select(Customer.id).order_by(Customer.id)).all()
        db.session.execute(insert(Contact), [
            {"code": f"P{n:08d}", "customer_id": pk, "name": f"Person {n}", "phone": f"139{n:08d}", "version": 1,
             "birthday": date(1980, 1, 1) + timedelta(days=n % 366)} for n, pk in enumerate(ids)])
        db.session.execute(insert(Activity), [
            {"code": f"A{n:08d}", "subject": f"Call {n}", "kind": "call", "status": "open", "version": 1,
             "assignee_id": reps[n % 10].id, "due_at": NOW - timedelta(minutes=n % 1400)}
            for n in range(activities)])
        db.session.commit()
    return app


def timed(app: object, label: str, func: object) -> None:
    from app.extensions import db

    for tick in ("first", "again"):
        with app.app_context():
            started = time.perf_counter()
            told = func()
            seconds = time.perf_counter() - started
            db.session.remove()
        print(f"{label:<22} {tick:<6} {seconds:7.2f} s  {told} told")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--activities", type=int, default=5000)
    args = parser.parse_args()
    app = build(args.customers, args.activities)
    from app.services import reminders

    timed(app, "activities due", lambda: reminders.activities_due(NOW))
    timed(app, "birthdays (3 days)", lambda: reminders.birthdays(date(2026, 3, 10)))
    timed(app, "morning digest", lambda: reminders.morning_digest(NOW))


if __name__ == "__main__":
    main()
