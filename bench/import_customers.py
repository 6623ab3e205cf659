"""Import of a 100,000-row customer workbook in the manual's template shape (附录1).

    .venv/bin/python -m bench.import_customers [--rows 100000] [--existing 10000] [--runs 3] [--profile FILE(.prof: cProfile in CPU seconds, .txt: pyinstrument)]
    DATABASE_URL=postgresql+psycopg://... .venv/bin/python -m bench.import_customers


Builds the workbook (~2 % bad rows: bad phones, unknown industries, blank names, and
in-file duplicates) and a database already holding ``--existing`` customers, then runs
the import in a fresh process: read + validate + dedup-check + commit (audited), as a
manager with department scope. Prints wall time, CPU time, rows/s and the child's peak
memory per run, then the medians. The workbook is built once per row count
(``bench/out/customers-<rows>.xlsx``); every run starts from a fresh database (on
PostgreSQL the database of ``DATABASE_URL`` is emptied first), with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.scratch import PASSWORD, migrated_app

OUT = Path(__file__).parent / "out"

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


def reset_database() -> None:
    """A PostgreSQL ``DATABASE_URL`` starts empty for every run (SQLite: a new file per run)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def build_database(existing: int, then: Callable[[], None] | None = None) -> None:
    """A migrated database with a manager (department scope) owning ``existing`` customers
    coded ``C20240101000000``...; ``then`` runs inside its app context before it closes."""
    from sqlalchemy import insert

    from app.extensions import appbuilder, db
    from app.models import Customer, Department

    reset_database()
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
        if then is not None:
            then()


def run_import(workbook: Path, profile: str | None = None) -> dict:
    """In the child process: the measured part."""
    return measure(workbook, profile, "customer", "upsert")


def measure(workbook: Path, profile: str | None, kind: str, mode: str) -> dict:
    """Read + validate + commit ``workbook`` as the manager (``kind``: an importer model name);
    the figures as a dict (times in s, peak memory in MiB, the import's summary)."""
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import appbuilder, db
    from app.models import AuditLog
    from app.models.base import acting_user_id
    from app.services.importing import columns
    from app.services.importing.engine import Settings, run_import
    from app.services.importing.reading import read_table
    from config import Config

    app = create_app(Config)
    with app.app_context():
        user = appbuilder.sm.find_user("manager")
        acting_user_id.set(user.id)  # as the import job does: rows stamped created and changed by the manager
        profiler = _profiler(profile)
        started, cpu = time.perf_counter(), time.process_time()
        table = read_table(workbook)
        read_seconds = time.perf_counter() - started
        spec = columns.MODELS[kind]
        mapping = columns.auto_map(spec, table.headers)
        result = run_import(table, mapping, Settings(kind, mode=mode), user, commit=True)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if profiler is not None:
            _write_profile(profiler, profile)
        indexed_s = _search_caught_up()
        stored = db.session.scalar(select(func.count()).select_from(spec.model))
        audited = db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.source == "import"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # a forked writer (importing.writer): its CPU and peak apart (the two peaks may overlap in time)
    writer = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"read_s": read_seconds, "total_s": seconds, "cpu_s": cpu, "peak_mib": peak, "stored": stored,
            "audited": audited, "search_indexed_s": indexed_s, "writer_cpu_s": writer.ru_utime + writer.ru_stime,
            "writer_peak_mib": writer.ru_maxrss / 1024, **result.summary()}


def _search_caught_up() -> float | None:
    """Seconds from the import's end until search has indexed every row it noted
    (``search.index_pending``, which the run also started in the background)."""
    from app.extensions import db
    from app.services import search

    started = time.perf_counter()
    search.index_pending()
    while search.anything_noted(db.session.connection()):  # the background run's share
        db.session.commit()
        time.sleep(0.05)
    return time.perf_counter() - started


def _profiler(path: str | None) -> Any:
    """cProfile (``--profile FILE``), or pyinstrument's sampling profile for a ``.txt`` FILE
    (far less overhead: the shares stay true to an unprofiled run)."""
    if not path:
        return None
    if path.endswith(".txt"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
        return profiler
    import cProfile

    profiler = cProfile.Profile(time.process_time)  # CPU seconds: a shared machine's waits left out
    profiler.enable()
    return profiler


def _write_profile(profiler: Any, path: str) -> None:
    if path.endswith(".txt"):
        profiler.stop()
        Path(path).write_text(profiler.output_text(unicode=True, show_all=False))
        return
    profiler.disable()
    profiler.dump_stats(path)


def workbook_for(rows: int) -> Path:
    """The bench workbook for ``rows`` rows, built once and kept in ``bench/out``."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"customers-{rows}.xlsx"
    if not path.exists():
        make_workbook(path, rows)
    return path


def main() -> None:
    bench(build_database, run_import, lambda args: workbook_for(args.rows), lambda book, args: _one_run(book, args))


def bench(build: Callable[[int], None], child: Callable[[Path, str | None], dict],
          workbook: Callable[[argparse.Namespace], Path],
          one_run: Callable[[Path, argparse.Namespace], dict]) -> None:
    """An import bench's command line: ``--build N`` and ``--child FILE`` are its two child
    processes (the database with N existing customers; the measured import, figures as JSON);
    without them, ``--runs`` fresh runs of the workbook and their medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--existing", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", help="write a profile of the measured part to this file (cProfile in CPU "
                                          "seconds; .txt: pyinstrument, wall)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build is not None:
        build(args.build)
        return
    if args.child:
        print(json.dumps(child(Path(args.child), args.profile)))
        return
    book = workbook(args)
    print_medians([one_run(book, args) for _ in range(args.runs)])


def print_medians(runs: list[dict]) -> None:
    print(f"median of {len(runs)}: {statistics.median(r['total_s'] for r in runs):.2f} s wall, "
          f"{statistics.median(r['cpu_s'] for r in runs):.2f} s CPU, "
          f"{statistics.median(r['rows'] / r['total_s'] for r in runs):,.0f} rows/s, "
          f"peak {max(r['peak_mib'] for r in runs):.0f} MiB")


def fresh_run(workbook: Path, args: argparse.Namespace, module: str) -> tuple[dict, float]:
    """A fresh database (built by ``module --build`` in one child) and one import (``module
    --child`` in another); (its figures, the load average at the start)."""
    load = os.getloadavg()[0]
    env = dict(os.environ)
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-import-"))
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.db'}")
    env.update(CRM_INSTANCE_DIR=str(tmp), CRM_SCHEDULER="0")
    command = [sys.executable, "-m", module]
    subprocess.run([*command, "--build", str(args.existing)], check=True, capture_output=True, env=env)
    child = [*command, "--child", str(workbook)] + (["--profile", args.profile] if args.profile else [])
    output = subprocess.run(child, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1]), load


def _writer_figures(figures: dict) -> str:
    """A forked writer's own figures (``importing.writer``), when there was one, and the time
    search took after the import to index the rows it noted."""
    shown = ""
    if figures.get("writer_cpu_s"):
        shown = f" (writer process: peak {figures['writer_peak_mib']:.0f} MiB, CPU {figures['writer_cpu_s']:.2f} s)"
    if figures.get("search_indexed_s") is not None:
        shown += f"; search indexed {figures['search_indexed_s']:.2f} s after"
    return shown


def _one_run(workbook: Path, args: argparse.Namespace) -> dict:
    """A fresh database (built in one child) and one import (in another); prints and returns its figures."""
    figures, load = fresh_run(workbook, args, "bench.import_customers")
    print(f"rows {figures['rows']:,}: created {figures['created']:,}, updated {figures['updated']:,}, "
          f"unchanged {figures['unchanged']:,}, rejected {figures['rejected']:,} "
          f"(duplicates {figures['duplicates']:,}); customers stored {figures['stored']:,}, "
          f"audit entries {figures['audited']:,}")
    print(f"read {figures['read_s']:.2f} s; read + validate + dedup + commit {figures['total_s']:.2f} s "
          f"({figures['rows'] / figures['total_s']:,.0f} rows/s, CPU {figures['cpu_s']:.2f} s); "
          f"peak memory {figures['peak_mib']:.0f} MiB{_writer_figures(figures)}; load average {load:.2f}",
          flush=True)
    return figures


if __name__ == "__main__":
    main()
