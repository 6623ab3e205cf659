"""Sync runs over a 10,000-row customer sheet: Google Sheets (emulator, real gspread) and xlsx.

    .venv/bin/python -m bench.sync_run [--rows 10000]

After a first run that fills the sheet, 1 % of rows are edited in the CRM, 1 % in the
sheet and 50 new rows typed into the sheet; the next run is timed with its API calls,
then an unchanged run. The emulator answers in-process, so Google network latency
(~100-300 ms per call in practice) is not included: the figure is our own work.
"""

from __future__ import annotations

import argparse
import random
import time

from bench.scratch import add_reps, migrated_app, scratch_env

HEADERS = ["客户编号", "客户名称", "联系人姓名", "联系方式", "所属行业", "备注"]


def seed(rows: int) -> tuple[object, int]:
    scratch_env("crm-bench-sync-")
    from sqlalchemy import insert

    from app.extensions import appbuilder, db
    from app.models import Customer

    app = migrated_app()
    with app.app_context():
        add_reps(1)
        admin = appbuilder.sm.add_user("admin", "Ad", "Min", "admin@bench.test", appbuilder.sm.find_role("Admin"),
                                       password="Bench-Pass-1")
        db.session.execute(insert(Customer), [
            {"code": f"C20240101{n:05d}", "name": f"客户{n}", "contact_name": f"联系人{n}",
             "contact_phone": f"139{n:08d}", "owner_id": admin.id, "version": 1} for n in range(rows)])
        db.session.commit()
        return app, admin.id


def one_backend(app: object, admin_id: int, kind: str, rows: int, tmp: str) -> None:

    import gspread
    from openpyxl import Workbook, load_workbook
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Customer, SyncRow, SyncRun, SyncTarget
    from sync import runner
    from sync.backends import GoogleSheetsBackend, RetryPolicy, XlsxBackend
    from tests.fakes.sheets import FakeSheets

    rng = random.Random(kind)
    with app.app_context():
        if kind == "gsheets":
            fake = FakeSheets()
            fake.create("bench", "CRM", {"客户": [HEADERS]}, rows=rows + 200, cols=8)
            client = gspread.Client(auth=None, session=fake.session())
            location = "bench"
        else:
            location = f"{tmp}/sync-bench.xlsx"
            book = Workbook()
            book.active.title = "客户"
            book.active.append(HEADERS)
            book.save(location)
        target = SyncTarget(name=f"bench-{kind}", backend=kind, location=location, worksheet="客户",
                            run_as_id=admin_id, conflict_policy="app")
        db.session.add(target)
        db.session.commit()

        def backend() -> object:
            if kind == "gsheets":
                return GoogleSheetsBackend(client, location, "客户", target.sheet_id, RetryPolicy(sleep=lambda s: 0))
            return XlsxBackend(location, "客户")

        started = time.perf_counter()
        first = runner.run(target, backend())
        fill = time.perf_counter() - started
        ids = db.session.scalars(select(Customer.id)).all()
        for pk in rng.sample(ids, rows // 100):
            db.session.get(Customer, pk).note = f"CRM edit for {kind}"
        db.session.commit()
        edited = rng.sample(range(rows), rows // 100)
        new_rows = [["", f"新客户{n}", f"新联系人{n}", f"137{n:08d}", "物流", ""] for n in range(50)]
        if kind == "gsheets":
            sheet = fake.spreadsheets["bench"].sheet("客户")
            for index in edited:
                sheet.write(index + 1, 5, [[f"sheet edit for {kind}"]], raw=True)
            sheet.write(rows + 1, 0, new_rows, raw=True)
        else:
            book = load_workbook(location)
            ws = book["客户"]
            for index in edited:
                ws.cell(row=index + 2, column=6, value=f"sheet edit for {kind}")
            for row in new_rows:
                ws.append(row)
            book.save(location)
        timings = []
        for label in ("changed", "unchanged"):
            target = db.session.get(SyncTarget, target.id)
            started = time.perf_counter()
            log = runner.run(target, backend())
            timings.append((label, time.perf_counter() - started, log))
        agreed = db.session.query(SyncRow).count()
        print(f"{kind}: first fill of {rows:,} rows {fill:.2f} s ({first.status}); synced rows {agreed:,}")
        for label, seconds, log in timings:
            print(f"  {label:9} run {seconds:.2f} s  status {log.status}  counts {log.counts}  calls {log.api_calls}")
        db.session.query(SyncRun).delete()
        db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    app, admin_id = seed(args.rows)
    import tempfile

    tmp = tempfile.mkdtemp(prefix="crm-bench-sync-xlsx-")
    for kind in ("gsheets", "xlsx"):
        one_backend(app, admin_id, kind, args.rows, tmp)


if __name__ == "__main__":
    main()
