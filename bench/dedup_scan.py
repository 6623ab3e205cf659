"""Dedup scan over 100,000 customers: clusters by credit code, phone, name + contact and
fuzzy name, as an admin (all customers) and as a rep (their ~10,000).

    .venv/bin/python -m bench.dedup_scan [--customers 100000]

About 12 % of the customers are planted duplicates, a quarter of each kind (pairs).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from bench.scratch import add_reps, migrated_app, scratch_env

BATCH = 5000
WORDS = ["华腾", "星河", "远航", "前海", "微众", "白云", "西湖", "长江", "金桥", "海纳", "天成", "恒信", "博远", "锦程"]
KINDS = ["科技", "电子", "贸易", "物流", "机械", "软件", "食品", "医药"]


def build(customers: int) -> tuple[object, int]:
    scratch_env("crm-bench-dedup-")
    from sqlalchemy import insert

    from app.extensions import db
    from app.models import Customer
    from app.services.validation import credit_code_check_char

    app = migrated_app()
    rng = random.Random(3)
    with app.app_context():
        reps = add_reps(10)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    app, rep_id = build(args.customers)
    from app.extensions import db
    from app.models import CrmUser
    from app.security.data_scope import visible_owner_ids
    from app.services import dedup

    with app.app_context():
        for label, owners in (("admin (all)", None), ("rep3 (own)", visible_owner_ids(db.session.get(CrmUser, rep_id)))):
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                clusters = dedup.scan(owners)
                times.append(time.perf_counter() - started)
            by_rule = {rule: sum(1 for c in clusters if rule in c.rules) for rule in dedup.RULE_LABELS}
            print(f"{label}: {len(clusters):,} clusters {by_rule}; median {statistics.median(times):.2f} s, "
                  f"max {max(times):.2f} s over {args.runs} runs")


if __name__ == "__main__":
    main()
