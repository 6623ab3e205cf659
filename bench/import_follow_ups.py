"""Import of a 100,000-row follow-up workbook (issue 12: follow-up import >= 10,000 rows/s).

    .venv/bin/python -m bench.import_follow_ups [--rows 100000] [--existing 10000] [--runs 3] [--profile FILE]
    DATABASE_URL=postgresql+psycopg://... .venv/bin/python -m bench.import_follow_ups

The database holds ``--existing`` customers of a manager with department scope (the same
fixture as ``bench.import_customers``; one in 500 archived); the workbook has one
follow-up per row for those customers by code, in the template's headers, with ~2 % bad
rows (an unknown customer code, an archived customer, empty content, an unknown method).
Each run starts from a fresh database and imports in a fresh child process: read +
validate + commit (numbered, audited), as the manager. Prints wall time, CPU time,
rows/s and peak memory per run, then the medians.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from bench.import_customers import OUT, _writer_figures, bench, fresh_run, measure
from bench.import_customers import build_database as build_customers

HEADERS = ["客户编号", "跟进时间", "跟进方式", "跟进内容", "下一步计划", "下一步日期", "跟进人"]
METHODS = ["电话", "拜访", "email", "会议", ""]


def make_workbook(path: Path, rows: int, existing: int) -> None:
    from datetime import datetime, timedelta

    from openpyxl import Workbook

    rng = random.Random(11)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("跟进记录")
    sheet.append(HEADERS)
    start = datetime(2026, 3, 1, 9, 0)
    for n in range(rows):
        customer = f"C20240101{n % existing:06d}"
        row = [customer, start + timedelta(minutes=n), rng.choice(METHODS), f"第{n}次电话沟通，客户对报价有兴趣",
               "发送报价单", (start + timedelta(days=7 + n % 30)).date(), ""]
        bad = n % 200  # ~2 % bad rows: four kinds
        if bad == 11:
            row[0] = f"C20990101{n:06d}"  # no such customer
        elif bad == 23:
            row[3] = ""
        elif bad == 37:
            row[2] = "飞鸽传书"
        elif bad == 41:
            row[0] = f"C20240101{(n // 500 * 500) % existing:06d}"  # archived (see build_database)
        sheet.append(row)
    workbook.save(path)


def build_database(existing: int) -> None:
    """The customer bench's database, with every 500th customer archived."""

    def archive() -> None:
        from sqlalchemy import update

        from app.clock import utc_now
        from app.extensions import db
        from app.models import Customer

        codes = [f"C20240101{n:06d}" for n in range(0, existing, 500)]
        db.session.execute(update(Customer).where(Customer.code.in_(codes)).values(archived_at=utc_now()))
        db.session.commit()

    build_customers(existing, then=archive)


def run_import(workbook: Path, profile: str | None = None) -> dict:
    """In the child process: the measured part."""
    return measure(workbook, profile, "follow_up", "create")


def main() -> None:
    bench(build_database, run_import, _workbook, _one_run)


def _workbook(args: argparse.Namespace) -> Path:
    """The bench workbook, built once and kept in ``bench/out``."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"follow-ups-{args.rows}-{args.existing}.xlsx"
    if not path.exists():
        make_workbook(path, args.rows, args.existing)
    return path


def _one_run(workbook: Path, args: argparse.Namespace) -> dict:
    """A fresh database (built in one child) and one import (in another); prints and returns its figures."""
    figures, load = fresh_run(workbook, args, "bench.import_follow_ups")
    print(f"rows {figures['rows']:,}: created {figures['created']:,}, rejected {figures['rejected']:,}; "
          f"follow-ups stored {figures['stored']:,}, audit entries {figures['audited']:,}")
    print(f"read {figures['read_s']:.2f} s; read + validate + commit {figures['total_s']:.2f} s "
          f"({figures['rows'] / figures['total_s']:,.0f} rows/s, CPU {figures['cpu_s']:.2f} s); "
          f"peak memory {figures['peak_mib']:.0f} MiB{_writer_figures(figures)}; load average {load:.2f}",
          flush=True)
    return figures


if __name__ == "__main__":
    main()
