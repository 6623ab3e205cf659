"""The full duplicate scan at a million (issue 12): it replaces the stored clusters in
short transactions (a save waits for one chunk, not the whole replace), a job delivered
twice runs once, and a scan that fails half-way leaves no stale result to build on."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.duplicates import DuplicateScan, DuplicateState
from app.services import background, bulk, dedup, dedup_clusters
from tests.app.services.test_dedup_clusters import clear_stored, fresh, make, stored


@pytest.fixture(autouse=True)
def fresh_clusters(app: Any) -> Any:
    clear_stored(app)
    dedup_clusters._queued["at"] = None
    yield
    clear_stored(app)
    dedup_clusters._queued["at"] = None


WORDS = ["Orchid", "Granite", "Velvet", "Summit", "Quarry", "Lantern", "Meadow", "Falcon", "Harbor", "Copper"]


def _pairs(count: int) -> None:
    """``count`` clusters of two: same phone, unlike names."""
    for n in range(count):
        make("rep_a", name=f"{WORDS[2 * n]} Holdings", contact_phone=f"1370000{n:04d}")
        make("rep_b", name=f"{WORDS[2 * n + 1]} Supplies", contact_phone=f"1370000{n:04d}")


def _queued_scan(monkeypatch: pytest.MonkeyPatch) -> tuple[int, list]:
    """A scan started with the job captured instead of run: (scan id, the captured jobs)."""
    jobs: list = []
    monkeypatch.setattr(background, "submit", lambda func, *args: jobs.append((func, args)))
    scan = dedup_clusters.start_scan(None)
    monkeypatch.undo()
    return scan.id, jobs


def test_the_scan_writes_in_chunks_with_progress_and_stores_what_the_rule_computes(
        ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _pairs(5)  # 5 clusters, 10 members, 10+ keys
    dedup_clusters.start_scan(None)  # an earlier scan: its rows are replaced too
    written: list[tuple[str, int]] = []
    commits: list[int] = []
    real_insert, real_progress = bulk.insert_rows, dedup_clusters._progress
    monkeypatch.setattr(dedup_clusters, "WRITE_CHUNK", 2)
    monkeypatch.setattr(bulk, "insert_rows", lambda conn, table, rows: (written.append((table.name, len(rows))),
                                                                        real_insert(conn, table, rows)))
    monkeypatch.setattr(dedup_clusters, "_progress", lambda session, scan_id, percent, **values: (
        commits.append(percent), real_progress(session, scan_id, percent, **values)))
    dedup_clusters.start_scan(None)
    # never the whole replace in one statement: clusters and members 2 rows at a time, the
    # keys one customer's at a time (each has more than 2 here; a customer's keys are not split)
    assert max(n for table, n in written if table != "duplicate_key") <= 2
    assert sum(1 for table, _ in written if table == "duplicate_key") == 10
    late = [p for p in commits if p >= 80]
    assert len(late) >= len(written) and late == sorted(late)  # a commit per chunk, progress rises
    assert stored() == fresh() and len(stored()) == 5
    scan = db.session.scalars(select(DuplicateScan).order_by(DuplicateScan.id.desc())).first()
    assert (scan.status, scan.processed, scan.clusters) == ("done", 100, 5)


def test_a_scan_delivered_twice_runs_once(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _pairs(2)
    scan_id, jobs = _queued_scan(monkeypatch)
    assert [func for func, _ in jobs] == [dedup_clusters.run_scan]
    runs: list[int] = []
    real = dedup._components
    monkeypatch.setattr(dedup, "_components", lambda *args: (runs.append(1), real(*args))[1])
    dedup_clusters.run_scan(scan_id)
    dedup_clusters.run_scan(scan_id)  # the queue delivers the same job again
    assert len(runs) == 1
    db.session.expire_all()
    assert db.session.get(DuplicateScan, scan_id).status == "done" and stored() == fresh()


def test_a_scan_failing_half_way_leaves_a_new_scan_to_run(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _pairs(3)
    dedup_clusters.start_scan(None)
    monkeypatch.setattr(dedup_clusters, "WRITE_CHUNK", 1)
    real_insert = bulk.insert_rows
    calls: list[int] = []

    def failing(conn: Any, table: Any, rows: list) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        real_insert(conn, table, rows)

    monkeypatch.setattr(bulk, "insert_rows", failing)
    dedup_clusters.start_scan(None)
    db.session.expire_all()
    state = db.session.get(DuplicateState, 1)
    assert (state.scan_id, state.last_scan_id) == (None, None)  # the page's next load starts a scan
    monkeypatch.undo()
    assert dedup_clusters.refresh(None).started
    assert stored() == fresh() and len(stored()) == 3
