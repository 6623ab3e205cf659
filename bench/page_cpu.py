"""CPU ms per page for the customer list and show pages, as a sales rep and a manager.

    .venv/bin/python -m bench.page_cpu [--customers 10000] [--requests 40] [--profile list-rep]

In process (Flask test client, SQLite file in a temp dir unless DATABASE_URL is set).
CPU time is ``time.process_time`` around each request (the web worker's cost, the
figure issue 20's load test is bound by); the median of N requests is printed.
``--profile`` prints the cProfile top 25 for one of the pages.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

from bench.list_view import build
from bench.scratch import PASSWORD


def add_manager(app: object) -> str:
    """A Sales Manager of one department holding all reps (sees every customer)."""
    from sqlalchemy import select

    from app.extensions import appbuilder, db
    from app.models import CrmUser, Department

    with app.app_context():
        sm = appbuilder.sm
        sm.add_user("mgr", "Man", "Ager", "mgr@bench.test", sm.find_role("Sales Manager"), password=PASSWORD)
        dept = Department(name="Bench")
        db.session.add(dept)
        for user in db.session.scalars(select(CrmUser).where(CrmUser.username.like("rep%") | (CrmUser.username == "mgr"))):
            user.department = dept
        db.session.commit()
    return "mgr"


def pages(app: object) -> dict[str, str]:
    """The list page and the show page of one customer owned by rep3."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Customer

    with app.app_context():
        pk = db.session.scalars(select(Customer.id).where(Customer.code == "C20240101000003")).one()
    return {"list": "/customerview/list/", "show": f"/customerview/show/{pk}"}


def measure(app: object, username: str, url: str, requests: int, profile: bool = False) -> float:
    """Median CPU ms of ``requests`` GETs of ``url`` after one warm-up."""
    client = app.test_client()
    client.post("/login/", data={"username": username, "password": PASSWORD})
    if client.get(url).status_code != 200:  # out of this user's scope
        return float("nan")
    profiler = cProfile.Profile() if profile else None
    times = []
    for _ in range(requests):
        if profiler:
            profiler.enable()
        start = time.process_time()
        response = client.get(url)
        times.append((time.process_time() - start) * 1000)
        if profiler:
            profiler.disable()
        assert response.status_code == 200, url
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(r"templates|views/|app/", 30)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--profile", default="", help="page-user, e.g. list-rep")
    args = parser.parse_args()
    app, _ = build(args.customers)
    users = {"rep": "rep3", "manager": add_manager(app)}
    urls = pages(app)
    for page, url in urls.items():
        for who, username in users.items():
            cpu = measure(app, username, url, args.requests, args.profile == f"{page}-{who}")
            print(f"{page:<4} as {who:<7} CPU median {cpu:6.1f} ms  ({args.requests} requests)")


if __name__ == "__main__":
    main()
