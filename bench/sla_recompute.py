"""Recomputing the SLA deadlines of 200,000 open tickets (issue 16) after an admin changed a
working calendar: ``sla.recompute_open()`` (created + policy minutes + paused minutes, in
business time, written back in chunks). Target: <= 10 s. Also the pure clock: instants per
second of ``add_business_minutes`` over the standard calendar.

    .venv/bin/python -m bench.sla_recompute [--tickets 200000]

Tickets are spread over the seeded policies (type x priority), created over the last 60
days, some with paused minutes. SQLite file in a temp dir unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import timedelta

from bench.scratch import migrated_app, scratch_env

BATCH = 10_000


def build(count: int) -> object:
    """A scratch app with the seeded SLA policies and ``count`` open tickets."""
    scratch_env("crm-bench-sla-")
    from sqlalchemy import insert, select

    from app import clock
    from app.extensions import db
    from app.models.service import Priority, Ticket, TicketType
    from app.services import sla

    app = migrated_app()
    with app.app_context():
        sla.seed_defaults()
        db.session.commit()
        types = db.session.scalars(select(TicketType.id)).all()
        priorities = db.session.scalars(select(Priority.id)).all()
        rng, now = random.Random(16), clock.utc_now()
        for start in range(0, count, BATCH):
            rows = [{"code": f"T{n:08d}", "subject": "bench", "status": rng.choice(("new", "assigned", "in_progress")),
                     "type_id": rng.choice(types), "priority_id": rng.choice(priorities),
                     "created_on": now - timedelta(minutes=rng.randrange(60 * 24 * 60)),
                     "paused_minutes": rng.choice((0, 0, 0, 30, 600))}
                    for n in range(start, min(start + BATCH, count))]
            db.session.execute(insert(Ticket), rows)
        for type_id in types:  # every ticket under the policy start() would pick
            for priority_id in priorities:
                policy = sla.pick_policy(type_id, priority_id)
                db.session.execute(Ticket.__table__.update().where(
                    Ticket.__table__.c.type_id == type_id, Ticket.__table__.c.priority_id == priority_id)
                    .values(sla_policy_id=policy.id if policy else None))
        db.session.commit()
    return app


def clock_rate(app: object, count: int = 200_000) -> float:
    """``add_business_minutes`` calls per second on the standard calendar's cached table."""
    from app import clock
    from app.extensions import db
    from app.models.service import WorkCalendar
    from app.services import sla

    with app.app_context():  # type: ignore[attr-defined]
        table = sla.business_calendar(db.session.query(WorkCalendar).first())
        start, rng = clock.utc_now(), random.Random(1)
        instants = [start - timedelta(minutes=rng.randrange(90 * 24 * 60)) for _ in range(count)]
        began = time.perf_counter()
        for at in instants:
            sla.add_business_minutes(at, 2400, table)
        return count / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200_000)
    args = parser.parse_args()
    began = time.perf_counter()
    app = build(args.tickets)
    print(f"built {args.tickets} open tickets in {time.perf_counter() - began:.1f} s")
    print(f"add_business_minutes: {clock_rate(app):,.0f} per second")
    from app.extensions import db
    from app.services import sla

    with app.app_context():  # type: ignore[attr-defined]
        began = time.perf_counter()
        updated = sla.recompute_open()
        db.session.commit()
        took = time.perf_counter() - began
    verdict = "OK" if took <= 10 else "TOO SLOW"
    print(f"recompute_open: {updated} tickets in {took:.2f} s (target <= 10 s) {verdict}")


if __name__ == "__main__":
    main()
