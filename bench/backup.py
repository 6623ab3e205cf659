"""Backups at 100,000 customers and 200,000 follow-ups (issue 19): create, verify, restore.

    .venv/bin/python -m bench.backup [--customers 100000] [--opportunities 100000]
        [--follow-ups 200000] [--runs 3] [--page-requests 40] [--db PATH] [--keep]

Scratch SQLite database built by ``bench.dashboard.build`` (customers, opportunities with
their stage history, follow-ups, leads, orders, targets; ``--db`` keeps the file and reuses
it, so the data is built once and can be shared with ``bench.dashboard``). Archives go to a
scratch ``CRM_BACKUP_DIR`` (removed at the end unless ``--keep``). Everything goes through
the public API of ``app.services.backups``:

- ``create("manual")``: median and max of ``--runs``; the archive's size against the
  database file's (and its ``-wal``, if any);
- ``verify(run, full=False)`` (the after-backup check) and ``verify(run, full=True)``
  (the files' sha256 too): median and max of ``--runs`` each;
- ``restore(run, source="cli")`` once, with what it is made of: its own full verification
  of the archive, the safety backup, and the rest (the swap, migrate, carry, record);
- with ``--page-requests`` > 0: the p50 of the admin's customer list (Flask test client)
  idle, then while a backup runs in a thread of the same process (how long that backup
  took is printed too).

Prints the load average at the start: figures on a busy machine are not figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.dashboard import build
from bench.scratch import PASSWORD

PAGE = "/customerview/list/"


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def _database_bytes() -> tuple[Path, int]:
    """The SQLite file and its size, checkpointed first (the WAL's pages are the database's)."""
    from sqlalchemy import text

    from app.extensions import db
    from app.services.backups import common

    with db.engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    path = common.sqlite_path()
    wal = path.with_name(path.name + "-wal")
    return path, path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _summary(label: str, seconds: list[float]) -> None:
    print(f"{label:<32} median {statistics.median(seconds):7.2f} s   max {max(seconds):7.2f} s   "
          f"({len(seconds)} runs)", flush=True)


def _create(runs: int) -> Any:
    """``runs`` backups; returns the last (verified and restored below)."""
    from app.services import backups

    seconds, run = [], None
    for _ in range(runs):
        took, run = _timed(lambda: backups.create("manual"))
        assert run.status == "ok", run.error
        seconds.append(took)
    _summary("create (manual backup)", seconds)
    return run


def _verify(run: Any, runs: int) -> None:
    from app.services import backups

    for full, label in ((False, "verify (after-backup)"), (True, "verify (full)")):
        seconds = []
        for _ in range(runs):
            took, result = _timed(lambda: backups.verify(run, full=full))  # noqa: B023 - called at once
            assert result.status == "passed", result.message
            seconds.append(took)
        _summary(label, seconds)


def _restore(run: Any) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models.operations import BackupRun, BackupVerification
    from app.services import backups

    run_id = run.id
    took, restored = _timed(lambda: backups.restore(run, None, source="cli"))
    assert restored.status == "ok", restored.error
    check = db.session.scalars(select(BackupVerification).where(BackupVerification.backup_id == run_id)
                               .order_by(BackupVerification.id.desc())).first()
    safety = db.session.scalars(select(BackupRun).where(BackupRun.kind == "safety")
                                .order_by(BackupRun.id.desc())).first()
    verify_s = (check.finished_at - check.started_at).total_seconds()
    safety_s = (safety.finished_at - safety.started_at).total_seconds()
    print(f"{'restore (cli)':<32} total  {took:7.2f} s   = its full verification {verify_s:.2f} s "
          f"+ safety backup {safety_s:.2f} s ({_mib(safety.size_bytes)}) + swap and the rest "
          f"{took - verify_s - safety_s:.2f} s", flush=True)


def _page_p50(app: Any, requests: int) -> None:
    """p50 of the admin's customer list idle, then while a backup runs in a thread."""
    from app.services import backups

    client = app.test_client()
    client.post("/login/", data={"username": "admin", "password": PASSWORD})
    answer = client.get(PAGE)
    assert answer.status_code == 200, answer.status_code

    def get() -> float:
        started = time.perf_counter()
        client.get(PAGE)
        return (time.perf_counter() - started) * 1000

    idle = [get() for _ in range(requests)]
    outcome: dict[str, Any] = {}

    def backup() -> None:
        with app.app_context():
            took, run = _timed(lambda: backups.create("manual"))
            outcome.update(seconds=took, status=run.status, error=run.error)

    worker = threading.Thread(target=backup)
    worker.start()
    busy = []
    while worker.is_alive():
        busy.append(get())
    worker.join()
    assert outcome["status"] == "ok", outcome["error"]
    print(f"page {PAGE} (admin) p50: idle {statistics.median(idle):.1f} ms ({requests} requests), "
          f"while a backup runs {statistics.median(busy):.1f} ms ({len(busy)} requests; max "
          f"{max(busy):.1f} ms); that backup took {outcome['seconds']:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--opportunities", type=int, default=100_000)
    parser.add_argument("--follow-ups", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of create and of each verification")
    parser.add_argument("--page-requests", type=int, default=40,
                        help="idle page requests before the backup-under-load figure (0: skip it)")
    parser.add_argument("--db", help="SQLite file to keep and reuse between runs")
    parser.add_argument("--keep", action="store_true", help="keep the scratch backup folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="crm-bench-backups-"))
    os.environ["CRM_BACKUP_DIR"] = str(folder)  # read with the config, when build imports it
    os.environ.pop("CRM_BACKUP_COPY_DIR", None)  # no second copy: one disk, one figure
    os.environ["TOTP_AT_LOGIN"] = "off"  # the admin signs in with a password only
    started = time.perf_counter()
    app = build(args.customers, args.opportunities, args.follow_ups, args.db)
    print(f"ready: {args.customers:,} customers, {args.opportunities:,} opportunities, "
          f"{args.follow_ups:,} follow-ups in {time.perf_counter() - started:.1f} s", flush=True)
    try:
        with app.app_context():
            from app.services.backups import common

            assert common.backup_dir() == folder.resolve(), common.backup_dir()
            path, size = _database_bytes()
            print(f"load average {os.getloadavg()[0]:.2f}; database {path.name}: {_mib(size)}; "
                  f"backups to {folder}", flush=True)
            run = _create(args.runs)
            print(f"archive {run.file_name}: {_mib(run.size_bytes)} = {run.size_bytes / size:.1%} of the "
                  f"database", flush=True)
            _verify(run, args.runs)
            run_id = run.id
        if args.page_requests:
            _page_p50(app, args.page_requests)
        with app.app_context():
            from app.extensions import db
            from app.models.operations import BackupRun

            _restore(db.session.get(BackupRun, run_id))
            print(f"database after the restore: {_mib(_database_bytes()[1])}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
