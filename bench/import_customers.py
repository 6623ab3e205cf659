"""Import of a 100,000-row customer workbook in the manual's template shape (附录1).

    .venv/bin/python -m bench.import_customers [--rows 100000] [--existing 10000]

Builds the workbook (~2 % bad rows: bad phones, unknown industries, blank names, and
in-file duplicates) and a database already holding ``--existing`` customers, then runs
the import in a fresh process: read + validate + dedup-check + commit (audited), as a
manager with department scope. Prints wall time, rows/s and the child's peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.scratch import PASSWORD, migrated_app, scratch_env

HEADERS = ["客户编号", "客户名称", "所属行业", "联系人姓名", "联系方式", "客户地址", "客户等级", "信息来源", "备注"]
INDUSTRIES = ["汽车制造", "电子制造", "软件开发", "64", "批发业", "物流", "金融"]
LEVELS = ["A 重要", "一般", "C", ""]
SOURCES = ["展会推广", "官网表单", "referral", "电话咨询"]


def make_workbook(path: Path, rows: int) -> None:
    from openpyxl import Workbook

    rng = random.Random(7)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("客户信息")
    sheet.append(HEADERS)
    for n in range(rows):
        row = ["", f"测试科技有限公司{n:06d}", rng.choice(INDUSTRIES), f"联系人{n % 5000}", f"139{n:08d}",
               f"北京市海淀区中关村大街{n}号", rng.choice(LEVELS), rng.choice(SOURCES), "2024年广交会接触"]
        bad = n % 150  # 2 % bad rows: three kinds in 150
        if bad == 7:
            row[4] = "12345"
        elif bad == 19 and n % 200 == 19:
            row[2] = "信息技术"
        elif bad == 19:
            row[1] = ""
        elif bad == 33:
            row[1], row[3], row[4] = f"测试科技有限公司{n - 1:06d}", f"联系人{(n - 1) % 5000}", f"139{n - 1:08d}"
        sheet.append(row)
    workbook.save(path)


def build_database(existing: int) -> None:
    from sqlalchemy import insert

    from app.extensions import appbuilder, db
    from app.models import Customer, Department

    app = migrated_app()
    with app.app_context():
        sm = appbuilder.sm
        department = Department(name="East")
        db.session.add(department)
        db.session.flush()
        manager = sm.add_user("manager", "Man", "Ager", "m@bench.test", sm.find_role("Sales Manager"),
                              password=PASSWORD)
        manager.department_id = department.id
        rows = [{"code": f"C20240101{n:06d}", "name": f"已有客户{n}", "contact_phone": f"137{n:08d}",
                 "contact_name": f"张{n}", "owner_id": manager.id, "version": 1} for n in range(existing)]
        if rows:
            db.session.execute(insert(Customer), rows)
        db.session.commit()


def run_import(workbook: Path) -> dict:
    """In the child process: the measured part."""
    from app import create_app
    from app.extensions import appbuilder, db
    from app.services.importing import columns
    from app.services.importing.engine import Settings, run_import
    from app.services.importing.reading import read_table
    from config import Config

    app = create_app(Config)
    with app.app_context():
        user = appbuilder.sm.find_user("manager")
        started = time.perf_counter()
        table = read_table(workbook)
        read_seconds = time.perf_counter() - started
        mapping = columns.auto_map(columns.CUSTOMER, table.headers)
        result = run_import(table, mapping, Settings("customer", mode="upsert"), user, commit=True)
        seconds = time.perf_counter() - started
        from sqlalchemy import func, select

        from app.models import AuditLog, Customer

        stored = db.session.scalar(select(func.count(Customer.id)))
        audited = db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.source == "import"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"read_s": read_seconds, "total_s": seconds, "peak_mib": peak, "stored": stored,
            "audited": audited, **result.summary()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--existing", type=int, default=10_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_import(Path(args.child))))
        return
    tmp = scratch_env("crm-bench-import-")
    workbook = tmp / "customers.xlsx"
    make_workbook(workbook, args.rows)
    build_database(args.existing)
    output = subprocess.run([sys.executable, "-m", "bench.import_customers", "--child", str(workbook)],
                            check=True, capture_output=True, text=True, env=os.environ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    print(f"rows {figures['rows']:,}: created {figures['created']:,}, updated {figures['updated']:,}, "
          f"unchanged {figures['unchanged']:,}, rejected {figures['rejected']:,} "
          f"(duplicates {figures['duplicates']:,}); customers stored {figures['stored']:,}, "
          f"audit entries {figures['audited']:,}")
    print(f"read {figures['read_s']:.2f} s; read + validate + dedup + commit {figures['total_s']:.2f} s "
          f"({figures['rows'] / figures['total_s']:,.0f} rows/s); peak memory {figures['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
