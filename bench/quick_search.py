"""The navbar's quick search over many customers and follow-ups, as an admin (all) and a rep
(their tenth): a common word, a rare word, a text found nowhere, a code and a phone.

    .venv/bin/python -m bench.quick_search [--customers 200000] [--budget-ms 1500]

Prints the median time per query and whether the time budget cut the substring search short.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.dedup_scan import build


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget-ms", type=int, default=1500)
    args = parser.parse_args()
    app, rep_id = build(args.customers)
    app.config["CRM_QUICK_SEARCH_MS"] = args.budget_ms
    from app.extensions import appbuilder, db
    from app.models import CrmUser
    from app.services import search

    last = args.customers - 3
    queries = {"common word": "科技", "rare word": f"科技{last}有限", "nowhere": "zzz-nowhere",
               "code": f"c20240101{last:06d}", "phone": f"139 {last:08d}"}
    with app.app_context():
        sm = appbuilder.sm
        admin = sm.add_user("benchadmin", "Bench", "Admin", "admin@bench.test", sm.find_role("Admin"),
                            password="Bench-Pass-1")
        users = {"rep (own)": db.session.get(CrmUser, rep_id), "admin (all)": admin}
        for who, user in users.items():
            for label, typed in queries.items():
                for kind, finder in (("customers", search.CUSTOMERS), ("follow-ups", search.FOLLOW_UPS)):
                    times, result = [], None
                    for _ in range(args.runs):
                        started = time.perf_counter()
                        result = search.quick_find(user, finder, search.quick_text(typed), db.session)
                        times.append(time.perf_counter() - started)
                    print(f"{who:12} {label:12} {kind:10} {typed!r:22} median "
                          f"{statistics.median(times) * 1000:7.1f} ms, {len(result.items)} hits"
                          f"{', cut short' if result.cut_short else ''}")


if __name__ == "__main__":
    main()
