"""Sync runs over a customer sheet: Google Sheets (emulator, real gspread) and xlsx.

    .venv/bin/python -m bench.sync_run [--rows 10000] [--backend gsheets|xlsx|both] [--repeat 3]
                                       [--profile DIR] [--xlsx-writer patch|openpyxl] [--no-skip]

After a first run that fills the sheet and a second that checks it (the first to store the
rows' digests), each round edits 1 % of rows in the CRM, 1 % in the
sheet and types 50 new rows into the sheet; the next run (``changed``) is timed with its API
calls, its CPU seconds (steadier than the wall clock on a shared machine) and the seconds
spent in the backend's read and write, then an unchanged run. ``--repeat N`` runs N rounds on the same target and prints the
median of each kind (issue 12: medians of 3). ``--profile DIR`` writes a cProfile of every
timed run to DIR (``<backend>-<label>-<round>.prof``; read with ``python -m pstats``) and
prints where the changed run's time went (the emulator, ``sync.backends``, the rest).
The emulator answers in-process, so Google network latency (~100-300 ms per call in practice)
is not included: the figure is our own work plus the emulator's. For Google the bench also prints
the emulator's own share (``FakeSheets.send``: Google's side, building its JSON response included)
and the CRM process without it ("crm": the gspread client, its parsing of the response, the sync);
issue 12's Google target is on the CRM's side. Profiles count CPU seconds (``time.process_time``).
Each backend gets its own database (one after the other would find the other's customers).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import statistics
import time
from pathlib import Path
from typing import Any

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


def _edit_both_sides(kind: str, rows: int, round_: int, rng: random.Random, fake: Any, location: str) -> None:
    """1 % of customers edited in the CRM, 1 % of sheet rows edited, 50 new sheet rows."""
    from openpyxl import load_workbook
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Customer

    ids = db.session.scalars(select(Customer.id)).all()
    for pk in rng.sample(ids, rows // 100):
        db.session.get(Customer, pk).note = f"CRM edit {round_} for {kind}"
    db.session.commit()
    edited = rng.sample(range(rows), rows // 100)
    new_rows = [["", f"新客户{round_}-{n}", f"新联系人{n}", f"13{round_ % 10}{n:08d}", "物流", ""] for n in range(50)]
    if kind == "gsheets":
        sheet = fake.spreadsheets["bench"].sheet("客户")
        for index in edited:
            sheet.write(index + 1, 5, [[f"sheet edit {round_} for {kind}"]], raw=True)
        start = sheet.used()[0]
        sheet.rows = max(sheet.rows, start + len(new_rows))
        sheet.write(start, 0, new_rows, raw=True)
    else:
        book = load_workbook(location)
        ws = book["客户"]
        for index in edited:
            ws.cell(row=index + 2, column=6, value=f"sheet edit {round_} for {kind}")
        for row in new_rows:
            ws.append(row)
        book.save(location)


def _clocked(backend: Any) -> dict[str, float]:
    """Seconds spent in ``backend.read`` / ``backend.write`` (wrapped on the instance)."""
    spent = {"read": 0.0, "write": 0.0}
    for name in spent:
        real = getattr(backend, name)

        def wrapper(*args: Any, _real: Any = real, _name: str = name) -> Any:
            started = time.perf_counter()
            try:
                return _real(*args)
            finally:
                spent[_name] += time.perf_counter() - started

        setattr(backend, name, wrapper)
    return spent


def _timed(target: Any, backend: Any, profile: Path | None, name: str) -> tuple[float, Any, Any]:
    from sync import runner

    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU seconds: the machine is shared
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    log = runner.run(target, backend)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    backend.cpu_seconds = time.process_time() - cpu
    stats = None
    if profiler:
        profiler.dump_stats(profile / f"{name}.prof")
        stats = pstats.Stats(profiler)
    return seconds, log, stats


def _where(stats: pstats.Stats) -> str:
    """Cumulative seconds in the emulator, in sync.backends (ours) and in the planner."""
    found: dict[str, float] = {}
    wanted = {"emulator (tests/fakes/sheets.py send)": ("tests/fakes/sheets.py", "send"),
              "backend read": ("sync/backends.py", "read"), "backend write": ("sync/backends.py", "write"),
              "build_plan": ("sync/plan.py", "build_plan"), "apply app": ("sync/runner.py", "_apply_app"),
              "store bases": ("sync/runner.py", "_store_bases")}
    for (path, _line, func), (_cc, _nc, _tt, cumulative, _callers) in stats.stats.items():
        for label, (suffix, name) in wanted.items():
            if path.endswith(suffix) and func == name:
                found[label] = max(found.get(label, 0.0), cumulative)
    return ", ".join(f"{label} {seconds:.2f} s" for label, seconds in found.items())


def _clock_emulator(fake: Any) -> dict[str, float]:
    """Wall and CPU seconds spent answering requests in the emulator (``FakeSheets.send``, Google's
    side: building the response body included, the gspread client's parsing of it not), summed
    over the process's life; read before and after a run."""
    spent = {"wall": 0.0, "cpu": 0.0}
    real = fake.send

    def send(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return real(*args, **kwargs)
        finally:
            spent["wall"] += time.perf_counter() - started
            spent["cpu"] += time.process_time() - cpu

    fake.send = send  # the session calls the mounted adapter's send: the instance's attribute
    return spent


def _force_openpyxl() -> None:
    """The writer before issue 12, for a before/after in one process: the patch always refuses."""
    from sync import xlsx_patch

    def refuse(*args: Any) -> None:
        raise xlsx_patch.Unpatchable("bench: --xlsx-writer openpyxl")

    xlsx_patch.patch = refuse


def _never_skip() -> None:
    """Every row compared field by field, as before issue 12's row digests (for a before/after)."""
    import secrets

    from sync import plan

    plan.row_digest = lambda *args: secrets.token_hex(16)  # never the stored one


def one_backend(app: object, admin_id: int, kind: str, rows: int, tmp: str, repeat: int,
                profile: Path | None) -> None:
    import gspread
    from openpyxl import Workbook

    from app.extensions import db
    from app.models import SyncRow, SyncRun, SyncTarget
    from sync import runner
    from sync.backends import GoogleSheetsBackend, RetryPolicy, XlsxBackend
    from tests.fakes.sheets import FakeSheets

    rng = random.Random(kind)
    fake = None
    with app.app_context():
        emulator = {"wall": 0.0, "cpu": 0.0}
        if kind == "gsheets":
            fake = FakeSheets()
            fake.create("bench", "CRM", {"客户": [HEADERS]}, rows=rows + 200, cols=8)
            emulator = _clock_emulator(fake)
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
        # The run after the fill compares every row field by field once (rows written by a run have
        # no digest yet); the scheduled runs that follow are what the rounds time (issue 12).
        target = db.session.get(SyncTarget, target.id)
        started = time.perf_counter()
        runner.run(target, backend())
        settle = time.perf_counter() - started
        timings: dict[str, list[float]] = {f"{label}{part}": [] for label in ("changed", "unchanged") for part in (
            "", " cpu", " read", " write", " emulator", " emulator cpu", " crm", " crm cpu")}
        lines = []
        for round_ in range(repeat):
            _edit_both_sides(kind, rows, round_, rng, fake, location)
            for label in ("changed", "unchanged"):
                target = db.session.get(SyncTarget, target.id)
                used = backend()
                spent, google = _clocked(used), dict(emulator)
                seconds, log, stats = _timed(target, used, profile, f"{kind}-{label}-{round_}")
                google = {key: emulator[key] - google[key] for key in google}
                timings[f"{label} emulator"].append(google["wall"])
                timings[f"{label} emulator cpu"].append(google["cpu"])
                timings[f"{label} crm"].append(seconds - google["wall"])
                timings[f"{label} crm cpu"].append(used.cpu_seconds - google["cpu"])
                timings[label].append(seconds)
                timings[f"{label} cpu"].append(used.cpu_seconds)
                timings[f"{label} write"].append(spent["write"])
                timings[f"{label} read"].append(spent["read"])
                writer = getattr(used, "writer", "")
                lines.append(f"  {label:9} run {seconds:.2f} s, cpu {used.cpu_seconds:.2f} s (read {spent['read']:.2f} s, write {spent['write']:.2f} s"
                             f"{' by ' + writer if writer else ''}, the rest {seconds - sum(spent.values()):.2f} s)  "
                             f"status {log.status}  counts {log.counts}  calls {log.api_calls}")
                if kind == "gsheets":
                    lines.append(f"      emulator (Google's side) {google['wall']:.2f} s, cpu {google['cpu']:.2f} s; "
                                 f"CRM process without it {seconds - google['wall']:.2f} s, "
                                 f"cpu {used.cpu_seconds - google['cpu']:.2f} s")
                if stats is not None:
                    lines.append(f"      where: {_where(stats)}")
        agreed = db.session.query(SyncRow).count()
        print(f"{kind}: first fill of {rows:,} rows {fill:.2f} s ({first.status}), first check {settle:.2f} s; "
              f"synced rows {agreed:,}")
        print("\n".join(lines))
        print(f"  median of {repeat}: " + ", ".join(f"{key} {statistics.median(values):.2f} s"
                                                  for key, values in timings.items()
                                                  if kind == "gsheets" or not key.endswith(("emulator", "emulator cpu", "crm", "crm cpu"))))
        print(f"  load average at the end: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
        db.session.query(SyncRun).delete()
        db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--backend", choices=("gsheets", "xlsx", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of (edit, changed run, unchanged run)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of every timed run into this folder")
    parser.add_argument("--xlsx-writer", choices=("patch", "openpyxl"), default="patch",
                        help="openpyxl: the whole-workbook writer used before issue 12 (for a before/after)")
    parser.add_argument("--no-skip", action="store_true",
                        help="compare every row field by field (no row digests: the planner before issue 12)")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    import tempfile

    tmp = tempfile.mkdtemp(prefix="crm-bench-sync-xlsx-")
    kinds = ("gsheets", "xlsx") if args.backend == "both" else (args.backend,)
    if len(kinds) == 1:
        app, admin_id = seed(args.rows)  # first: it points the app at a scratch database
        if args.xlsx_writer == "openpyxl":
            _force_openpyxl()
        if args.no_skip:
            _never_skip()
        one_backend(app, admin_id, kinds[0], args.rows, tmp, args.repeat, args.profile)
        return
    import subprocess
    import sys

    for kind in kinds:  # a fresh process and database each: the app is configured once per process
        command = [sys.executable, "-m", "bench.sync_run", "--rows", str(args.rows), "--backend", kind,
                   "--repeat", str(args.repeat), "--xlsx-writer", args.xlsx_writer]
        command += ["--profile", str(args.profile)] if args.profile else []
        command += ["--no-skip"] if args.no_skip else []
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
