"""Ticket queue at 200,000 tickets (issue 16): median and max time of the queue page for a
team lead ("My team") and an agent ("My open"), rendered in process. Target: median <= 150 ms.

    .venv/bin/python -m bench.ticket_queue [--tickets 200000] [--requests 30]

The org: 20 sales reps owning 20,000 customers; a "Service" department with 5 teams of 10
Customer Service agents each (ticket scope "team"); the lead sits in team 1. Tickets are spread
over the customers and teams, 30 % open (new / assigned / in progress / waiting), the rest
resolved or closed, deadlines spread over two weeks, 2 % breached. SQLite file in a temp dir
unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import timedelta

from bench.scratch import PASSWORD, add_reps, migrated_app, scratch_env

BATCH = 10_000
CUSTOMERS = 20_000
TEAMS, AGENTS = 5, 10


def _org() -> tuple[list[int], dict[int, list[int]]]:
    """Departments, agents and the lead; returns (team ids, team id -> agent ids)."""
    from app.extensions import appbuilder, db
    from app.models.org import CrmUser, Department

    sm = appbuilder.sm
    service = Department(name="Service")
    db.session.add(service)
    db.session.flush()
    teams, members = [], {}
    for t in range(TEAMS):
        team = Department(name=f"Service team {t + 1}", parent_id=service.id)
        db.session.add(team)
        db.session.flush()
        teams.append(team.id)
        members[team.id] = []
        for a in range(AGENTS):
            user = sm.add_user(f"agent{t}_{a}", "Agent", f"{t}-{a}", f"agent{t}_{a}@bench.test",
                               sm.find_role("Customer Service"), password=PASSWORD)
            db.session.get(CrmUser, user.id).department_id = team.id
            members[team.id].append(user.id)
    lead = sm.add_user("lead", "Team", "Lead", "lead@bench.test", sm.find_role("Customer Service"), password=PASSWORD)
    db.session.get(CrmUser, lead.id).department_id = teams[0]
    db.session.commit()
    return teams, members


def _customers(reps: list) -> list[int]:
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import Customer, CustomerType

    kind = db.session.scalar(select(CustomerType.id))
    for start in range(0, CUSTOMERS, BATCH):
        db.session.execute(insert(Customer), [{
            "code": f"C20240101{n:06d}", "name": f"Bench Customer {n}", "contact_phone": f"138{n:08d}",
            "owner_id": reps[n % len(reps)].id, "type_id": kind, "version": 1,
        } for n in range(start, min(start + BATCH, CUSTOMERS))])
    db.session.commit()
    return list(db.session.scalars(select(Customer.id)))


def build(count: int) -> object:
    scratch_env("crm-bench-tickets-")
    from sqlalchemy import insert, select

    from app import clock
    from app.extensions import db
    from app.models.service import Priority, Ticket, TicketType
    from app.services import sla

    app = migrated_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        reps = add_reps(20)
        teams, members = _org()
        customers = _customers(reps)
        types = db.session.scalars(select(TicketType.id)).all()
        priorities = db.session.scalars(select(Priority.id)).all()
        sla.seed_defaults()  # the seeded calendar and policies: the SLA cell computes business time left
        policy_of = {priority: sla.pick_policy(None, priority) for priority in priorities}
        rng = random.Random(16)
        now = clock.utc_now()
        statuses = ["new", "assigned", "in_progress", "waiting"] + ["resolved", "closed"] * 5
        weights = [2, 10, 12, 6] + [14, 56] * 5
        for start in range(0, count, BATCH):
            rows = []
            for n in range(start, min(start + BATCH, count)):
                team = rng.choice(teams)
                status = rng.choices(statuses[:6], weights[:6])[0]
                created = now - timedelta(minutes=rng.randint(0, 60 * 24 * 90))
                priority = rng.choice(priorities)
                policy = policy_of[priority]
                rows.append({
                    "code": f"T20260101{n:07d}", "customer_id": rng.choice(customers), "channel": "phone",
                    "type_id": rng.choice(types), "priority_id": priority, "subject": f"Ticket {n}",
                    "sla_policy_id": policy.id if policy is not None else None,
                    "assignee_id": None if status == "new" else rng.choice(members[team]), "team_id": team,
                    "status": status, "reopen_count": 0, "paused_minutes": 0, "version": 1,
                    "created_on": created, "changed_on": created,
                    "response_due_at": created + timedelta(hours=4), "resolve_due_at": created + timedelta(days=3),
                    "resolve_breached": rng.random() < 0.02, "response_breached": False,
                    "response_warned": False, "resolve_warned": False,
                })
            db.session.execute(insert(Ticket), rows)
        db.session.commit()
    return app


def measure(app: object, username: str, tab: str, requests: int) -> tuple[float, float, int]:
    client = app.test_client()
    client.post("/login/", data={"username": username, "password": PASSWORD})
    first = client.get(f"/service/tickets/?tab={tab}")  # warm up
    assert first.status_code == 200, first.status_code
    rows = first.get_data(as_text=True).count('class="ticket-row"')
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(f"/service/tickets/?tab={tab}")
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return statistics.median(times), max(times), rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    started = time.perf_counter()
    app = build(args.tickets)
    print(f"seeded {args.tickets:,} tickets in {time.perf_counter() - started:.1f} s")
    for username, tab, who in (("lead", "team", "team lead, My team"), ("agent0_3", "mine", "agent, My open"),
                               ("lead", "unassigned", "team lead, Unassigned"), ("lead", "all", "team lead, All")):
        median, worst, rows = measure(app, username, tab, args.requests)
        print(f"ticket queue ({who:<22}) median {median:6.1f} ms   max {worst:6.1f} ms   "
              f"({rows} rows shown, {args.requests} requests)")


if __name__ == "__main__":
    main()
