"""Duplicates at scale (issue 12): the background scan over 108,000 customers, the
duplicates page reading the stored clusters (admin: all; a manager: 3 reps of 10), and the
incremental cost of one saved customer.

    .venv/bin/python -m bench.dedup_scan [--customers 108000] [--runs 3]
    .venv/bin/python -m bench.dedup_scan --database sqlite:////tmp/copy-of-million.db

About 12 % of the customers are planted duplicates, a quarter of each kind (pairs).

``--database URL`` times only the full scan on an existing database (e.g. a copy of the
``bench.million`` fixture): wall time, the process's peak RSS, and how long a writer on
another connection waited at most while the scan ran (a probe commits one row every 100 ms:
SQLite has one writer, so this is the longest write lock the scan held).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import threading
import time

from sqlalchemy import func, select

from bench.scratch import PASSWORD, add_reps, migrated_app, scratch_env

BATCH = 5000
WORDS = ["华腾", "星河", "远航", "前海", "微众", "白云", "西湖", "长江", "金桥", "海纳", "天成", "恒信", "博远", "锦程"]
KINDS = ["科技", "电子", "贸易", "物流", "机械", "软件", "食品", "医药"]


def build(customers: int) -> tuple[object, int]:
    scratch_env("crm-bench-dedup-")
    os.environ["TOTP_AT_LOGIN"] = "off"  # the bench signs in without an authenticator
    from sqlalchemy import insert

    from app.extensions import db
    from app.models import Customer
    from app.services.validation import credit_code_check_char

    app = migrated_app(CRM_IMPORT_INLINE=True, WTF_CSRF_ENABLED=False)  # the scan runs here, timed
    rng = random.Random(3)
    with app.app_context():
        from app.extensions import appbuilder
        from app.models import Department

        reps = add_reps(10)
        east = Department(name="East")
        db.session.add(east)
        db.session.flush()
        for rep in reps[:3]:
            db.session.get(type(rep), rep.id).department_id = east.id
        sm = appbuilder.sm
        sm.add_user("boss", "Bo", "Ss", "boss@bench.test", sm.find_role("Admin"), password=PASSWORD)
        lead = sm.add_user("lead", "Le", "Ad", "lead@bench.test", sm.find_role("Sales Manager"), password=PASSWORD)
        db.session.get(type(lead), lead.id).department_id = east.id
        from sqlalchemy import update

        from app.models import RoleDataScope

        db.session.execute(update(RoleDataScope).values(totp_required=False))  # a bench signs in without codes
        rows = []
        for n in range(customers):
            city, word, kind = rng.choice(WORDS), rng.choice(WORDS), rng.choice(KINDS)
            base = f"91{n:09d}M{n % 97:05d}"[:17]
            row = {"code": f"C20240101{n:06d}", "name": f"{city}{word}{kind}{n}有限公司", "contact_name": f"联系人{n}",
                   "contact_phone": f"139{n:08d}", "credit_code": base + credit_code_check_char(base),
                   "owner_id": reps[n % 10].id, "version": 1}
            planted = n % 33  # rows 1, 3, 5, 7 of every 33 copy the row before them (unplanted)
            if planted == 1:
                row["credit_code"] = rows[-1]["credit_code"]
            elif planted == 3:
                row["contact_phone"] = rows[-1]["contact_phone"]
            elif planted == 5:
                row["name"], row["contact_name"] = rows[-1]["name"], rows[-1]["contact_name"]
            elif planted == 7:
                row["name"] = rows[-1]["name"].replace("有限公司", "公司")
            rows.append(row)
        for start in range(0, customers, BATCH):
            db.session.execute(insert(Customer), rows[start:start + BATCH])
        db.session.commit()
        return app, reps[3].id


def page_times(app: object, username: str, runs: int) -> list[tuple[str, float, int]]:
    """(url, median ms over ``runs``, bytes) of the duplicates page, first and fifth page."""
    client = app.test_client()
    client.post("/login/", data={"username": username, "password": PASSWORD})
    found = []
    for url in ("/duplicates/", "/duplicates/?page=5"):
        assert client.get(url).status_code == 200  # warm up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        found.append((url, statistics.median(times), len(response.data)))
    return found


def save_cost(app: object, runs: int) -> tuple[float, float]:
    """Median ms of one customer save (edit + commit, the incremental update applied in
    ``after_commit``) and of the incremental update alone, over ``runs`` customers."""
    from app.extensions import db
    from app.models import Customer
    from app.services import dedup_clusters

    saves, updates = [], []
    with app.app_context():
        for n in range(runs):
            item = db.session.get(Customer, 1000 + n * 37)
            started = time.perf_counter()
            item.contact_phone = f"139{n:08d}"  # now shares a phone with customer n
            db.session.commit()
            saves.append((time.perf_counter() - started) * 1000)
            with dedup_clusters._writer() as session:
                started = time.perf_counter()
                dedup_clusters.recompute(session, {item.id})
                updates.append((time.perf_counter() - started) * 1000)
                session.rollback()
        db.session.remove()
    return statistics.median(saves), statistics.median(updates)


def _probe(url: str, stop: threading.Event, waits: list[float]) -> None:
    """Commit one row every 100 ms on its own connection, noting how long each took."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"timeout": 600} if url.startswith("sqlite") else {})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_probe (at VARCHAR(40))"))
    while not stop.is_set():
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_probe (at) VALUES (:at)"), {"at": str(started)})
        waits.append(time.perf_counter() - started)
        stop.wait(0.1)
    engine.dispose()


def scan_existing(url: str) -> None:
    """The full scan on an existing database, with a writer probing the lock meanwhile."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("CRM_INSTANCE_DIR", tempfile.mkdtemp(prefix="crm-bench-dedup-"))
    os.environ["CRM_SCHEDULER"] = "0"
    app = migrated_app(CRM_IMPORT_INLINE=True)
    from app.extensions import db
    from app.models.duplicates import DuplicateScan
    from app.services import dedup_clusters

    stop, waits = threading.Event(), []
    probe = threading.Thread(target=_probe, args=(url, stop, waits))
    with app.app_context():
        print(f"load average {os.getloadavg()[0]:.2f}; scanning", flush=True)
        probe.start()
        started = time.perf_counter()
        dedup_clusters.start_scan(None)
        took = time.perf_counter() - started
        stop.set()
        probe.join()
        scan = db.session.scalars(select(DuplicateScan).order_by(DuplicateScan.id.desc())).first()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"full scan {took:.1f} s, {scan.customers:,} customers, {scan.clusters:,} clusters, status "
              f"{scan.status}; peak RSS {peak:.0f} MiB; writer waits over {len(waits)} probes: "
              f"median {statistics.median(waits) * 1000:.1f} ms, max {max(waits) * 1000:.1f} ms; "
              f"load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=108_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", help="time the full scan on this existing database only")
    args = parser.parse_args()
    if args.database:
        scan_existing(args.database)
        return
    app, rep_id = build(args.customers)
    from app.extensions import db
    from app.models.duplicates import DuplicateKey, DuplicateScan
    from app.services import dedup, dedup_clusters

    with app.app_context():
        started = time.perf_counter()
        clusters = dedup.scan(None)
        print(f"rule in memory over all: {len(clusters):,} clusters in {time.perf_counter() - started:.2f} s "
              f"{ {rule: sum(1 for c in clusters if rule in c.rules) for rule in dedup.RULE_LABELS} }")
        started = time.perf_counter()
        dedup_clusters.start_scan(None)
        scan = db.session.scalar(select(DuplicateScan))
        keys = db.session.scalar(select(func.count()).select_from(DuplicateKey))
        print(f"background scan: {time.perf_counter() - started:.2f} s, {scan.customers:,} customers, "
              f"{scan.clusters:,} clusters, {keys:,} keys, status {scan.status}")
        db.session.remove()
    for username in ("boss", "lead"):
        for url, median, size in page_times(app, username, args.runs):
            print(f"page {url:<22} as {username:<5} median {median:6.1f} ms over {args.runs}  ({size:,} bytes)")
    save, update = save_cost(app, 20)
    print(f"one saved customer: save + commit {save:.1f} ms (median of 20), incremental update alone {update:.1f} ms")
    with app.app_context():
        assert {tuple(c.ids) for c in dedup.scan(None)} == {
            tuple(sorted(m)) for m in _stored_members(db)}, "stored clusters differ from a fresh scan"
        print("stored clusters after the saves == a fresh full scan")


def _stored_members(db: object) -> list[list[int]]:
    from app.models.duplicates import DuplicateMember

    found: dict[int, list[int]] = {}
    for cluster_id, cid in db.session.execute(select(DuplicateMember.cluster_id, DuplicateMember.customer_id)):
        found.setdefault(cluster_id, []).append(cid)
    return list(found.values())


if __name__ == "__main__":
    main()
