"""Pages and deletions whose work grew with the tables (issue 12), on a database the follow-up
import leaves: 10,000 customers, 97,800 follow-ups, each with its planned activity (open,
overdue, assigned to ``manager``) and their audit entries.

    export DATABASE_URL=sqlite:////tmp/pw.db CRM_SCHEDULER=0
    .venv/bin/python -m bench.import_follow_ups --build 10000
    .venv/bin/python -m bench.import_follow_ups --child bench/out/follow-ups-100000-10000.xlsx
    .venv/bin/python -m bench.page_work /tmp/pw.db [--requests 5]

Works on a copy of the file. It adds ``admin`` and ``rep_a`` (500 of the customers, with their
follow-ups and activities) when missing, then prints the median time of each page (Flask
test client, after one warm-up) and of deleting 20 follow-ups (rolled back).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from typing import Any

from bench.scratch import PASSWORD

PAGES = (
    ("manager", "home page", "/"),
    ("manager", "sales dashboard", "/dashboards/sales"),
    ("rep_a", "home page", "/"),
    ("rep_a", "activity list, subject matching nothing", "/activityview/list/?_flt_0_subject=zzz"),
    ("rep_a", "activity list, typed page 3000", "/activityview/list/?page_ActivityView=3000"),
    ("manager", "my activities", "/activityview/mine/"),
    ("admin", "audit log of one follow-up", "/auditlogview/list/?_flt_0_object_type=FollowUp&_flt_0_object_id=21"),
)


def _people(app: Any) -> None:
    from sqlalchemy import select, update
    from werkzeug.security import generate_password_hash

    from app.extensions import appbuilder, db
    from app.models import Customer
    from app.models.org import RoleDataScope

    with app.app_context():
        db.session.execute(update(RoleDataScope).values(totp_required=False))
        sm = appbuilder.sm
        manager = sm.find_user("manager")
        manager.password = generate_password_hash(PASSWORD)
        if sm.find_user("admin") is None:
            sm.add_user("admin", "Ad", "Min", "admin@bench.test", sm.find_role("Admin"), password=PASSWORD)
        rep = sm.find_user("rep_a") or sm.add_user("rep_a", "Rep", "A", "rep_a@bench.test",
                                                   sm.find_role("Sales Rep"), password=PASSWORD)
        rep.department_id = manager.department_id
        ids = db.session.scalars(select(Customer.id).order_by(Customer.id).limit(500)).all()
        db.session.execute(update(Customer).where(Customer.id.in_(ids)).values(owner_id=rep.id))
        db.session.commit()


def _median_ms(client: Any, url: str, requests: int) -> float:
    client.get(url)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        assert client.get(url).status_code == 200, url
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _delete_ms(path: str) -> float:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA foreign_keys = ON")
    start = time.perf_counter()
    connection.execute("DELETE FROM follow_up WHERE id IN (SELECT id FROM follow_up ORDER BY id LIMIT 20)")
    took = (time.perf_counter() - start) * 1000
    connection.rollback()
    connection.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database", help="SQLite file left by bench.import_follow_ups")
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="crm-page-work-")
    path = os.path.join(work, "pages.db")
    shutil.copy(args.database, path)
    os.environ.update(DATABASE_URL=f"sqlite:///{path}", CRM_SCHEDULER="0", CRM_INSTANCE_DIR=work,
                      TOTP_AT_LOGIN="off")
    from bench.scratch import migrated_app

    app = migrated_app(WTF_CSRF_ENABLED=False)
    _people(app)
    print(f"load average {os.getloadavg()[0]:.2f}")
    for username, name, url in PAGES:
        client = app.test_client()
        client.post("/login/", data={"username": username, "password": PASSWORD})
        print(f"{username:8s} {name:42s} {_median_ms(client, url, args.requests):8.1f} ms")
    print(f"{'':8s} {'delete 20 follow-ups (rolled back)':42s} {_delete_ms(path):8.1f} ms")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
