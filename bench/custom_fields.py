"""The customer list filtered and sorted by a custom choice field at 1,000,000 customers
(issue 18: median <= 80 ms as admin), on the fixture of ``bench.million``.

    .venv/bin/python -m bench.custom_fields [--customers 1000000] [--requests 9]
    DATABASE_URL=postgresql+psycopg://... .venv/bin/python -m bench.custom_fields

Adds (once) the custom fields 客户规模 (choice: small / medium / large / group, searchable:
its expression index is made by the admin use case) and 合作年限 (integer) to customers,
fills every customer's values in one UPDATE, then times the list page filtered by 客户规模
and sorted by it, and by 合作年限, as a rep, a manager and the admin (median and max of
``--requests`` GETs after a warm-up), with the load average at the start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from bench import million
from bench.scratch import PASSWORD

SIZES = [("small", "Small", "小型"), ("medium", "Medium", "中型"), ("large", "Large", "大型"), ("group", "Group", "集团")]


def _fields() -> None:
    """The two fields, made through the admin use case (which makes the expression index)."""
    from sqlalchemy import select

    from app.extensions import appbuilder, db
    from app.models.custom_fields import CustomField
    from app.services.custom_fields import admin

    if db.session.scalar(select(CustomField.id).where(CustomField.record_type == "customer",
                                                      CustomField.key == "size")):
        return
    user = appbuilder.sm.find_user(username="admin")
    admin.save_field({"record_type": "customer", "key": "size", "label_en": "Company size", "label_zh": "客户规模",
                      "kind": "choice", "searchable": True, "in_list": True,
                      "choices": "\n".join(f"{c} | {en} | {zh}" for c, en, zh in SIZES)}, user)
    admin.save_field({"record_type": "customer", "key": "years", "label_en": "Years together",
                      "label_zh": "合作年限", "kind": "integer", "searchable": True}, user)
    db.session.commit()


def _values() -> None:
    """Every customer's 客户规模 and 合作年限 in one UPDATE (skipped when already there)."""
    from app.extensions import db

    if db.session.scalar(db.text("SELECT count(*) FROM customer WHERE custom IS NULL")) == 0:
        return
    started = time.perf_counter()
    case = " ".join(f"WHEN {n} THEN '{code}'" for n, (code, _en, _zh) in enumerate(SIZES))
    if db.engine.dialect.name == "postgresql":
        sql = (f"UPDATE customer SET custom = jsonb_build_object('size', CASE id % 4 {case} END, "
               "'years', id % 30) WHERE custom IS NULL")
    else:
        sql = (f"UPDATE customer SET custom = json_object('size', CASE id % 4 {case} END, "
               "'years', id % 30) WHERE custom IS NULL")
    db.session.execute(db.text(sql))
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # what autovacuum does after a bulk change: statistics, and the visibility map that lets
        # a count be read from an index alone (a freshly loaded table has none)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(db.text("VACUUM ANALYZE customer"))
    else:
        db.session.execute(db.text("ANALYZE"))
        db.session.commit()
    print(f"custom values filled in {time.perf_counter() - started:.0f} s", flush=True)


PAGES = {
    "list, 客户规模 = large, sorted by 客户规模": "/customerview/list/?cf_size=large&cf_sort=cf_size",
    "list, sorted by 客户规模": "/customerview/list/?cf_sort=cf_size",
    "list, sorted by 合作年限 desc": "/customerview/list/?cf_sort=-cf_years",
    "list, 合作年限 10-12, 客户规模 = group": "/customerview/list/?cf_years__from=10&cf_years__to=12&cf_size=group",
    "list, unfiltered (for comparison)": "/customerview/list/",
}


def _time(client: Any, url: str, requests: int) -> tuple[float, float, int, int]:
    client.get(url).close()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        size = len(response.data)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), size, response.status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=9)
    args = parser.parse_args()
    url, build = million._database(args.customers, False)
    app = million._app(url)
    with app.app_context():
        if build and million._needs_data(args.customers):
            started = time.perf_counter()
            reps, _users = million._people()
            million._fill(args.customers, reps)
            print(f"built {args.customers:,} customers in {time.perf_counter() - started:.0f} s", flush=True)
        _fields()
        _values()
    print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}, load average "
          f"{os.getloadavg()[0]:.2f}, {args.customers:,} customers")
    for username in ("rep7", "manager0", "admin"):
        client = app.test_client()
        client.post("/login/", data={"username": username, "password": PASSWORD})
        for name, page in PAGES.items():
            median, worst, size, status = _time(client, page, args.requests)
            print(f"{username:9} {name:42} median {median:7.1f} ms  max {worst:7.1f} ms  "
                  f"{size / 1024:7.1f} KiB  HTTP {status}", flush=True)


if __name__ == "__main__":
    main()
