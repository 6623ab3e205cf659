"""Progress and cancel of a running job seen from another web client (as from another
worker): the figures come from the job row, the cancel is a flag the job reads between
chunks. The job is driven chunk by chunk through its own hooks, no waiting."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, TransferJob
from app.services import tasks
from app.services.importing import engine, jobs
from tests.app.services.importing.conftest import write_xlsx
from tests.conftest import AuthActions

HEADERS = ["客户名称", "联系方式"]


def _workbook(path: Path, count: int) -> Path:
    """``count`` customers, one a row, under the manual's two required headers."""
    return write_xlsx(path, {"s": [HEADERS, *([f"Progress Co {n:02d}", f"1391234{n:04d}"] for n in range(count))]})


def _job(app: Any, path: Path) -> int:
    with app.app_context():
        user = appbuilder.sm.find_user(username="rep_a")
        job = jobs.create_job(user, "customer", path.name, path.read_bytes())
        _, job.mapping = jobs.propose_mapping(job)
        db.session.commit()
        job_id = job.id
        db.session.remove()
    return job_id


def _second_client(app: Any, username: str) -> Any:
    other = app.test_client()
    AuthActions(other).login(username)
    return other


def _at_chunk(monkeypatch: Any, chunk: int, action: Any) -> None:
    """Run ``action()`` as another web worker would, when the job is about to start chunk
    ``chunk`` (1-based; the ones before it are committed or reported, the writer's too:
    ``importing.writer``): in a thread of its own, so with its own app context and database
    session; the job waits for it."""
    seen = {"chunks": 0}
    original = engine.ImportRun._chunk

    def hooked(run: Any, rows: list, lines: list) -> None:
        seen["chunks"] += 1
        if seen["chunks"] == chunk:
            run.writer.wait()
            worker = threading.Thread(target=action)
            worker.start()
            worker.join()
        original(run, rows, lines)

    monkeypatch.setattr(engine.ImportRun, "_chunk", hooked)


def test_a_dry_runs_progress_is_seen_by_another_client(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                       monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 2)
    monkeypatch.setattr(tasks, "PROGRESS_EVERY_SECONDS", 0)  # every chunk writes (no clock in the test)
    job_id = _job(app, _workbook(tmp_path / "p.xlsx", 6))
    other = _second_client(app, "rep_a")
    seen = []
    _at_chunk(monkeypatch, 3, lambda: seen.append(other.get(f"/imports/{job_id}/progress").get_json()))
    with app.app_context():
        jobs.start(db.session.get(TransferJob, job_id), commit=False)
    assert [(p["status"], p["processed"], p["total"]) for p in seen] == [("running", 4, 6)]
    final = other.get(f"/imports/{job_id}/progress").get_json()
    assert (final["status"], final["processed"], final["created"]) == ("previewed", 6, 6)


def test_a_committing_imports_progress_is_the_committed_rows(app: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 2)
    job_id = _job(app, _workbook(tmp_path / "c.xlsx", 5))
    with app.app_context():
        job = db.session.get(TransferJob, job_id)
        job.status = "previewed"
        db.session.commit()
        db.session.remove()
    other = _second_client(app, "admin")
    seen = []
    _at_chunk(monkeypatch, 3, lambda: seen.append(other.get(f"/imports/{job_id}/progress").get_json()))
    with app.app_context():
        jobs.start(db.session.get(TransferJob, job_id), commit=True)
    assert [(p["status"], p["processed"], p["created"]) for p in seen] == [("running", 4, 4)]


def test_cancel_from_another_client_keeps_the_committed_chunks(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                                monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 2)
    job_id = _job(app, _workbook(tmp_path / "x.xlsx", 8))
    with app.app_context():
        job = db.session.get(TransferJob, job_id)
        job.status = "previewed"
        db.session.commit()
        db.session.remove()
    owner = _second_client(app, "rep_a")
    outsider = _second_client(app, "rep_b")
    pages = []

    def cancel() -> None:
        pages.append(owner.get(f"/imports/{job_id}").get_data(as_text=True))
        pages.append(outsider.post(f"/imports/{job_id}/cancel").status_code)
        owner.post(f"/imports/{job_id}/cancel")

    _at_chunk(monkeypatch, 3, cancel)  # chunks 1 and 2 committed; 3 stops before its commit
    with app.app_context():
        jobs.start(db.session.get(TransferJob, job_id), commit=True)
        job = db.session.get(TransferJob, job_id)
        names = db.session.scalars(select(Customer.name).where(Customer.name.like("Progress Co %"))).all()
        assert (job.status, job.processed_rows, job.created, job.cancel_requested) == ("cancelled", 4, 4, True), job.error
        assert sorted(names) == [f"Progress Co {n:02d}" for n in range(4)]
        db.session.remove()
    assert 'id="cancel-job"' in pages[0]  # the button on the progress page
    assert pages[1] == 404  # another rep's job: not theirs to see or stop
    auth.login("rep_a")
    page = client.get(f"/imports/{job_id}").get_data(as_text=True)
    assert "Cancelled after 4 rows; those rows were imported and are kept" in page


def test_an_export_can_be_cancelled_from_its_page(app: Any, client: Any, auth: Any, make_customer: Any,
                                                  monkeypatch: Any) -> None:
    from views import exports

    for n in range(3):
        make_customer("rep_a", name=f"Export Co {n}")
    monkeypatch.setitem(app.config, "CRM_EXPORT_BACKGROUND_ROWS", 1)
    held: list[tuple] = []
    monkeypatch.setattr(exports.background, "submit", lambda func, *args: held.append((func, args)))
    auth.login("rep_a")
    page = client.get("/customerview/export/xlsx", follow_redirects=True)
    job_id = held[0][1][0]
    assert 'id="cancel-job"' in page.get_data(as_text=True)
    client.post(f"/exports/{job_id}/cancel")
    with app.app_context():
        job = exports.run_export(job_id)
        assert (job.status, job.error) == ("cancelled", "Cancelled; no file was written.")
        db.session.remove()
    assert "Cancelled; no file was written." in client.get(f"/exports/{job_id}").get_data(as_text=True)
