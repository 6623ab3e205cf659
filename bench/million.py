"""Pages at 1,000,000 customers (issue 12): a fixture built fast and reused, then the
screens a team opens all day, timed as a rep, a manager and an admin.

    .venv/bin/python -m bench.million [--customers 1000000] [--requests 9] [--rebuild]
    DATABASE_URL=postgresql+psycopg://... .venv/bin/python -m bench.million

The fixture: 100 reps in 10 departments (a manager each, department scope), every
customer with its primary contact (the ``contact`` row that mirrors 联系人/联系方式) and
one follow-up; every 50th customer repeats its predecessor's phone (duplicates to find).
SQLite keeps the built file in ``bench/out/million-<n>.db`` and reuses it (each start
upgrades it to the migration head, as a deployed database would be); PostgreSQL reuses
the database when it holds the same number of customers. Rows go in through the driver in
chunks (SQLite: ``app.services.bulk``'s executemany; PostgreSQL: ``COPY``), indexes as the
migrations made them.

Each page: ``--requests`` timed GETs after one warm-up, median and max, the size of the
HTML and the process's peak RSS so far (an export that held its rows would raise it), with
the load average at the start (figures on a busy machine are not figures).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.scratch import PASSWORD

OUT = Path(__file__).parent / "out"
CHUNK = 20_000
REPS, DEPARTMENTS = 100, 10
STAMP = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def _database(customers: int, rebuild: bool) -> tuple[str, bool]:
    """(DATABASE_URL, whether the data must be built)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, True  # decided after connecting (``_needs_data``)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"million-{customers}.db"
    if rebuild and path.exists():
        path.unlink()
    return f"sqlite:///{path}", not path.exists()


def _app(url: str) -> Any:
    os.environ["DATABASE_URL"] = url
    os.environ["CRM_SCHEDULER"] = "0"
    os.environ.setdefault("CRM_INSTANCE_DIR", str(OUT / "instance"))
    os.environ["TOTP_AT_LOGIN"] = "off"
    from bench.scratch import migrated_app

    app = migrated_app(WTF_CSRF_ENABLED=False, CRM_IMPORT_INLINE=True)
    with app.app_context():  # the admin signs in with a password only (no authenticator to type)
        from sqlalchemy import update

        from app.extensions import db
        from app.models.org import RoleDataScope

        db.session.execute(update(RoleDataScope).values(totp_required=False))
        db.session.commit()
    return app


def _needs_data(customers: int) -> bool:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Customer

    return db.session.scalar(select(func.count()).select_from(Customer)) != customers


def _people() -> tuple[list[int], list[str]]:
    """100 reps in 10 departments with a manager each, and an admin; (rep ids, usernames to time)."""
    from app.extensions import appbuilder, db
    from app.models import CrmUser, Department

    sm = appbuilder.sm
    reps = []
    for d in range(DEPARTMENTS):
        department = Department(name=f"Bench department {d}")
        db.session.add(department)
        db.session.flush()
        manager = sm.add_user(f"manager{d}", "Manager", str(d), f"manager{d}@bench.test",
                              sm.find_role("Sales Manager"), password=PASSWORD)
        db.session.get(CrmUser, manager.id).department_id = department.id
        department.manager_id = manager.id
        for r in range(REPS // DEPARTMENTS):
            n = d * (REPS // DEPARTMENTS) + r
            rep = sm.add_user(f"rep{n}", "Rep", str(n), f"rep{n}@bench.test", sm.find_role("Sales Rep"),
                              password=PASSWORD)
            db.session.get(CrmUser, rep.id).department_id = department.id
            reps.append(rep.id)
    sm.add_user("admin", "Ad", "Min", "admin@bench.test", sm.find_role("Admin"), password=PASSWORD)
    db.session.commit()
    return reps, ["rep7", "manager0", "admin"]


def _fill(customers: int, reps: list[int]) -> None:
    """Customers, their primary contacts and one follow-up each, in chunks through the driver."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Contact, Customer, CustomerLevel, CustomerType, FollowUp, Industry
    from app.services.bulk import insert_rows

    types = db.session.scalars(select(CustomerType.id)).all()
    levels = db.session.scalars(select(CustomerLevel.id)).all()
    industries = db.session.scalars(select(Industry.id)).all()
    rng = random.Random(12)
    connection = db.session.connection()
    for start in range(0, customers, CHUNK):
        span = range(start + 1, min(start + CHUNK, customers) + 1)
        rows, contacts, follow_ups = [], [], []
        for n in span:
            phone = f"139{(n - 1 if n % 50 == 0 else n):08d}"
            changed = STAMP + timedelta(minutes=n)
            stamp = {"created_on": changed, "changed_on": changed, "version": 1}
            rows.append({"id": n, "code": f"C2026{n:07d}", "name": f"华腾科技{n}有限公司", "contact_name": f"联系人{n}",
                         "contact_phone": phone, "owner_id": reps[n % REPS], "type_id": rng.choice(types),
                         "level_id": rng.choice(levels), "industry_id": rng.choice(industries), **stamp})
            contacts.append({"id": n, "code": f"PC2026{n:07d}", "customer_id": n, "name": f"联系人{n}", "phone": phone,
                             "is_primary": True, "is_decision_maker": False, **stamp})
            follow_ups.append({"id": n, "code": f"G2026{n:07d}", "customer_id": n, "followed_at": changed,
                               "content": f"电话沟通 {n}", "owner_id": reps[n % REPS], **stamp})
        write = copy_rows if connection.dialect.name == "postgresql" else insert_rows
        write(connection, Customer.__table__, rows)
        write(connection, Contact.__table__, contacts)
        write(connection, FollowUp.__table__, follow_ups)
        db.session.commit()
        connection = db.session.connection()
        if start % 200_000 == 0:
            print(f"  {span[-1]:,} customers", flush=True)
    if db.engine.dialect.name == "postgresql":
        for table in ("customer", "contact", "follow_up"):
            db.session.execute(db.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {customers})"))
            db.session.execute(db.text(f"ANALYZE {table}"))
    else:
        db.session.execute(db.text("ANALYZE"))
    db.session.commit()


def copy_rows(connection: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: ``rows`` through ``COPY … FROM STDIN`` (psycopg 3), several times faster than
    an executemany of INSERTs; instants are aware datetimes, which ``timestamptz`` takes as they are."""
    if not rows:
        return
    names = list(rows[0])
    columns = ", ".join(f'"{name}"' for name in names)
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[name] for name in names])


#: Each user's own dashboard page.
DASHBOARDS = {"rep7": "/dashboards/sales", "manager0": "/dashboards/manager", "admin": "/dashboards/admin"}


def _pages(username: str, customer_id: int, follow_up_id: int) -> dict[str, str]:
    return {
        "home page": "/",
        "customer list": "/customerview/list/",
        "customer list, page 40": "/customerview/list/?page_CustomerView=40",
        "customer show": f"/customerview/show/{customer_id}",
        "follow-up list": "/followupview/list/",
        "follow-up list, page 40": "/followupview/list/?page_FollowUpView=40",
        "follow-up add form": "/followupview/add",
        "follow-up show": f"/followupview/show/{follow_up_id}",
        "contact list": "/contactview/list/",
        "quick search, phone": "/search/?q=13900000777",
        "quick search, name": "/search/?q=华腾科技777",
        "quick search, nowhere": "/search/?q=zzz-nowhere",
        "quick search, 2 chars": "/search/?q=华腾",
        "duplicates page": "/duplicates/",
        "dashboard": DASHBOARDS[username],
        "export csv (own list)": "/customerview/export/csv",
        "api customer list": "/api/v1/customer/?q=(page_size:25)",
        "api customer list, page 39": "/api/v1/customer/?q=(page:39,page_size:25)",
        "api customer list, after": f"/api/v1/customer/?q=(after:{customer_id // 2},page_size:25)",
        "api customer list, exact count": "/api/v1/customer/?q=(exact_count:!t,page_size:25)",
        "api follow-up list": "/api/v1/follow_up/?q=(page_size:25)",
    }


def _signed_in(app: Any, username: str) -> Any:
    """A test client signed in to the screens (session) and to the REST API (a JWT sent with
    every request, as an API client would)."""
    client = app.test_client()
    client.post("/login/", data={"username": username, "password": PASSWORD})
    token = client.post("/api/v1/security/login", json={"username": username, "password": PASSWORD,
                                                         "provider": "db"}).get_json()["access_token"]
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def _time(client: Any, url: str, requests: int) -> tuple[float, float, int, int]:
    client.get(url).close()  # warm-up
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        size = len(response.data)  # a download is timed to its last byte (and its context closed)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), size, response.status_code


def _mine(username: str) -> tuple[int, int]:
    """A customer and a follow-up the user may open."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import CrmUser, Customer, FollowUp
    from app.security.data_scope import scope_clause

    user = db.session.scalar(select(CrmUser).where(CrmUser.username == username))
    customer = db.session.scalar(select(Customer.id).where(scope_clause(user, Customer))
                                 .order_by(Customer.id.desc()).limit(1))
    follow_up = db.session.scalar(select(FollowUp.id).where(scope_clause(user, FollowUp))
                                  .order_by(FollowUp.id.desc()).limit(1))
    return customer, follow_up


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=9)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--only", help="time only pages whose name contains one of these texts (comma-separated)")
    args = parser.parse_args()
    url, build = _database(args.customers, args.rebuild)
    app = _app(url)
    with app.app_context():
        if build and _needs_data(args.customers):
            started = time.perf_counter()
            reps, users = _people()
            _fill(args.customers, reps)
            print(f"built {args.customers:,} customers in {time.perf_counter() - started:.0f} s")
        users = ["rep7", "manager0", "admin"]
        targets = {username: _mine(username) for username in users}
    print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}, load average "
          f"{os.getloadavg()[0]:.2f}, {args.customers:,} customers")
    for username in users:
        client = _signed_in(app, username)
        for name, page in _pages(username, *targets[username]).items():
            if args.only and not any(part in name for part in args.only.split(",")):
                continue
            median, worst, size, status = _time(client, page, args.requests)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            print(f"{username:9} {name:24} median {median:8.1f} ms  max {worst:8.1f} ms  "
                  f"{size / 1024:8.1f} KiB  HTTP {status}  peak RSS {peak:6.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
