"""Issue 12: a committing import stores its chunks of new rows on a second connection while
it checks the next chunk (``importing.writer``), in a forked child or a thread, each forced
here on both databases: the outcome is the one the run gives in turn, and the writer acts
as the importer. A failed chunk: test_engine's crash test; changes made while the writer
stores a chunk: test_chunk_freshness and test_import_speed, both run in turn and overlapped."""

from __future__ import annotations

import threading
import traceback
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import appbuilder, db
from app.models import AuditLog, Customer, FollowUp
from app.services import audit
from app.services.importing import jobs, writer
from tests.app.services.importing.conftest import write_xlsx

REAL_MAY_FORK = writer._may_fork  # before the conftest fixture replaces it
HEADERS = ["客户编号", "客户名称", "联系人姓名", "联系方式"]


def _rows(prefix: str, count: int) -> list[list[Any]]:
    rows = [["", f"{prefix} {n:02d}", f"Li {n}", f"1391{abs(hash(prefix)) % 1000:03d}{n:04d}"] for n in range(count)]
    rows[3][3] = "12345"  # a bad phone
    rows[7] = ["", rows[6][1], rows[6][2], rows[6][3]]  # a duplicate of the row before, in the file
    return rows


@pytest.fixture
def overlap(app: Any, monkeypatch: Any) -> Any:
    monkeypatch.setitem(app.config, "CRM_IMPORT_CHUNK_ROWS", 4)

    def set_to(value: str) -> None:
        monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", value)

    return set_to


def _stored(app: Any, prefix: str) -> list[tuple[str, str | None, int]]:
    with app.app_context():
        rows = db.session.execute(select(Customer.name, Customer.contact_phone, Customer.created_by_fk)
                                  .where(Customer.name.like(f"{prefix} %")).order_by(Customer.name)).all()
        db.session.remove()
    return [tuple(row) for row in rows]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_the_outcome_is_the_same_with_and_without_the_writer(app: Any, run_job: Any, overlap: Any,
                                                             tmp_path: Path, mode: str) -> None:
    outcomes = {}
    for setting, prefix in (("0", "InTurn"), (mode, "Overlap")):
        overlap(setting)
        path = write_xlsx(tmp_path / f"{prefix}.xlsx", {"s": [HEADERS, *_rows(prefix, 14)]})
        job = run_job("rep_a", path)
        stored = _stored(app, prefix)
        outcomes[setting] = ((job.status, job.processed_rows, job.created, job.rejected, job.duplicates),
                             [(name.split(" ")[1], phone[-4:], by) for name, phone, by in stored])
    assert outcomes[mode] == outcomes["0"]
    assert outcomes[mode][0] == ("done", 14, 12, 2, 1)
    with app.app_context():
        rep = appbuilder.sm.find_user(username="rep_a")
        assert {by for _name, _phone, by in _stored(app, "Overlap")} == {rep.id}  # the writer acts as the importer
        entries = db.session.scalars(select(AuditLog).where(AuditLog.source == "import",
                                                            AuditLog.object_type == "Customer")).all()
        assert len(entries) == 24 and {entry.user_name for entry in entries} == {"rep_a"}
        assert audit.verify_chain(db.session).ok
        db.session.remove()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_chunks_that_update_records_wait_for_the_writer(app: Any, run_job: Any, overlap: Any, make_customer: Any,
                                                        tmp_path: Path, mode: str) -> None:
    """New rows, then rows updating customers, then new rows: the updates are stored by the
    run's own session after the writer's chunk, and every row lands."""
    overlap(mode)
    pks = [make_customer("rep_a", name=f"Kept {n}") for n in range(4)]
    with app.app_context():
        codes = [db.session.get(Customer, pk).code for pk in pks]
        db.session.remove()
    new = [["", f"Mixed {n:02d}", f"Xu {n}", f"1393000{n:04d}"] for n in range(8)]
    updates = [[code, f"Renamed {n}", f"Xu {n}", f"1394000{n:04d}"] for n, code in enumerate(codes)]
    path = write_xlsx(tmp_path / "mixed.xlsx", {"s": [HEADERS, *new[:4], *updates, *new[4:]]})
    job = run_job("rep_a", path, mode="upsert")
    assert (job.status, job.created, job.updated, job.rejected) == ("done", 8, 4, 0), job.error
    assert len(_stored(app, "Mixed")) == 8
    assert [name for name, _phone, _by in _stored(app, "Renamed")] == [f"Renamed {n}" for n in range(4)]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_follow_ups_through_the_writer(app: Any, run_job: Any, overlap: Any, make_customer: Any,
                                      tmp_path: Path, mode: str) -> None:
    overlap(mode)
    pk = make_customer("rep_a")
    with app.app_context():
        code = db.session.get(Customer, pk).code
        db.session.remove()
    rows = [[code, f"2024-05-{n + 1:02d} 10:00", "电话", f"Call {n}"] for n in range(10)]
    path = write_xlsx(tmp_path / "calls.xlsx", {"s": [["客户编号", "跟进时间", "跟进方式", "跟进内容"], *rows]})
    job = run_job("rep_a", path, model="follow_up")
    assert (job.status, job.created, job.rejected) == ("done", 10, 0), job.error
    with app.app_context():
        contents = db.session.scalars(select(FollowUp.content).where(FollowUp.customer_id == pk)
                                      .order_by(FollowUp.followed_at)).all()
        assert contents == [f"Call {n}" for n in range(10)]
        assert db.session.scalar(select(func.count(func.distinct(FollowUp.code))).where(FollowUp.customer_id == pk)) == 10
        db.session.remove()


def test_only_a_process_with_no_other_thread_forks(app: Any, monkeypatch: Any) -> None:
    """A fork copies the forking thread alone: what another thread holds then (an SQLite
    write, a lock) stays held in the child for good. So the embedded web process, whose
    pool runs imports beside request threads, uses a thread (a server) or stores in turn."""
    monkeypatch.setattr(writer, "_may_fork", REAL_MAY_FORK)
    monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", "auto")
    with app.app_context():
        sqlite = db.engine.url.get_backend_name() == "sqlite"
        with monkeypatch.context() as alone:
            alone.setattr(writer.threading, "active_count", lambda: 1)  # as in a Celery worker
            assert writer.ChunkWriter(True).mode == "process"
        release = threading.Event()
        other = threading.Thread(target=release.wait)
        other.start()
        try:
            assert writer.ChunkWriter(True).mode == (None if sqlite else "thread")
            monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", "process")
            assert writer.ChunkWriter(True).mode == "thread"
        finally:
            release.set()
            other.join()


def test_a_thread_started_after_the_run_began_means_no_fork(app: Any, run_job: Any, overlap: Any,
                                                             monkeypatch: Any, tmp_path: Path) -> None:
    """The rule is checked again at the fork (the first chunk): the chunks go to a thread."""
    overlap("process")
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    monkeypatch.setattr(writer, "_may_fork", REAL_MAY_FORK)
    monkeypatch.setattr(writer.threading, "active_count", lambda: 1 if not other.is_alive() else 2)
    real_submit, modes = writer.ChunkWriter.submit, []

    def submit(self: Any, work: Any, *args: Any, **named: Any) -> None:
        if not other.is_alive():
            other.start()  # as a web request would, while the first chunk was checked
        real_submit(self, work, *args, **named)
        modes.append(self.mode)

    monkeypatch.setattr(writer.ChunkWriter, "submit", submit)
    path = write_xlsx(tmp_path / "late.xlsx", {"s": [HEADERS, *_rows("Late", 14)]})
    try:
        job = run_job("rep_a", path)
    finally:
        release.set()
        other.join()
    assert (job.status, job.created) == ("done", 12)
    assert set(modes) == {"thread"}


def test_auto_forks_a_writer_and_without_fork_uses_a_thread_for_a_server(app: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", "auto")
    with app.app_context():
        sqlite = db.engine.url.get_backend_name() == "sqlite"
        assert writer.ChunkWriter(True).mode == "process"
        assert writer.ChunkWriter(False).active is False  # dry runs and all-or-nothing runs
        monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", "0")
        assert writer.ChunkWriter(True).active is False
        monkeypatch.delattr(writer.os, "fork")  # Windows: no fork, so no writer unless asked for one
        monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", "auto")
        assert writer.ChunkWriter(True).mode == (None if sqlite else "thread")
        monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", "process")
        assert writer.ChunkWriter(True).mode == "thread"


def test_a_file_of_one_chunk_is_stored_in_turn(app: Any, run_job: Any, overlap: Any, monkeypatch: Any,
                                               tmp_path: Path) -> None:
    """Nothing to overlap: no thread, no second connection (most imports are small)."""
    overlap("process")
    handed = []
    monkeypatch.setattr(writer.ChunkWriter, "submit", lambda self, work, *args, **named: handed.append(args))
    path = write_xlsx(tmp_path / "small.xlsx", {"s": [HEADERS, *[["", f"Small {n}", "Li", f"1395000{n:04d}"]
                                                                for n in range(4)]]})
    job = run_job("rep_a", path)
    assert (job.status, job.created, handed) == ("done", 4, [])
    assert len(_stored(app, "Small")) == 4


def test_an_error_that_does_not_pickle_comes_back_from_the_forked_writer_as_its_text(
        app: Any, run_job: Any, overlap: Any, monkeypatch: Any, tmp_path: Path) -> None:
    """The child cannot send a class defined here (pickle finds it by name): the run gets a
    RuntimeError with the error's text and traceback, and the job fails with nothing stored."""
    from app.services import customers as customer_rules

    class DiskTrouble(Exception):
        pass

    def failing(new: customer_rules.NewCustomers) -> None:
        raise DiskTrouble("sector 7 unreadable")

    overlap("process")
    monkeypatch.setattr(customer_rules, "insert_new_customers", failing)
    path = write_xlsx(tmp_path / "trouble.xlsx", {"s": [HEADERS, *_rows("Trouble", 14)]})
    logged = []
    monkeypatch.setattr(jobs.log, "exception", lambda *args: logged.append(traceback.format_exc()))
    job = run_job("rep_a", path)
    assert (job.status, job.created) == ("failed", 0)
    assert "stopped unexpectedly (RuntimeError)" in job.error  # the job names the kind, the log the rest
    assert "DiskTrouble: sector 7 unreadable" in logged[0] and "In the import's writer process" in logged[0]
    assert _stored(app, "Trouble") == []


@pytest.mark.parametrize("turn_wait", [writer.TURN_WAIT, 0.05])
def test_chunks_stored_side_by_side_keep_the_file_order(app: Any, run_job: Any, overlap: Any, tmp_path: Path,
                                                        monkeypatch: Any, turn_wait: float) -> None:
    """Against a database server the forked writer stores two chunks at once
    (``writer.SIDE_BY_SIDE``): the codes still follow the file, each primary contact is
    numbered with its customer, and the audit entries come in file order, one chain step per
    chunk, the chain whole; also when the second chunk waits longer than ``TURN_WAIT`` for its
    turn (rolled back, then stored again in it with the codes it drew). (SQLite stores in
    turn: the same outcome.)"""
    monkeypatch.setattr(writer, "TURN_WAIT", turn_wait)
    import time

    from app.models import Contact
    from app.services import customers as customer_rules

    real_number, real_insert, calls = customer_rules.number_customers, customer_rules.insert_new_customers, \
        tmp_path / "calls"  # a file: the forked writer's calls too

    def slow_first(real: Any) -> Any:
        def call(*args: Any) -> None:
            with calls.open("a") as noted:
                noted.write(f"{real.__name__}\n")
            if calls.read_text().split().count(real.__name__) == 1:
                time.sleep(0.4)  # the second chunk arrives meanwhile: stored beside the first
            real(*args)
        return call

    monkeypatch.setattr(customer_rules, "number_customers", slow_first(real_number))
    monkeypatch.setattr(customer_rules, "insert_new_customers", slow_first(real_insert))
    overlap("process")
    rows = [["", f"Order {n:02d}", f"Wu {n}", f"1392000{n:04d}"] for n in range(30)]  # 8 chunks of 4
    job = run_job("rep_a", write_xlsx(tmp_path / "order.xlsx", {"s": [HEADERS, *rows]}))
    assert (job.status, job.created) == ("done", 30)
    with app.app_context():
        stored = db.session.execute(select(Customer.code, Customer.name, Customer.id)
                                    .where(Customer.name.like("Order %"))).all()
        by_code = sorted(stored, key=lambda row: int(row.code[9:]))  # C + day + its number that day
        assert [row.name for row in by_code] == [row[1] for row in rows]
        assert [row.id for row in by_code] == sorted(row.id for row in stored)  # the ids follow the file too
        contacts = db.session.execute(select(Contact.code, Contact.customer_id)
                                      .where(Contact.customer_id.in_([row.id for row in stored]))).all()
        assert [customer for _code, customer in sorted(contacts, key=lambda row: int(row.code[9:]))] == \
            [row.id for row in by_code]
        entries = db.session.scalars(select(AuditLog.object_id).where(
            AuditLog.source == "import", AuditLog.object_type == "Customer").order_by(AuditLog.seq)).all()
        assert entries == [str(row.id) for row in by_code]
        assert audit.verify_chain(db.session).ok
        db.session.remove()


def test_a_chunk_failing_in_its_turn_rolls_back_the_one_stored_beside_it(app: Any, run_job: Any, overlap: Any,
                                                                         tmp_path: Path, monkeypatch: Any) -> None:
    """The second chunk fails at its audit step (after its rows are inserted) while the third
    waits beside it for its turn: the job fails with the first chunk alone stored, nothing of
    the second or third, and a rerun stores the rest once."""
    import time

    from app.services import customers as customer_rules

    real_audit, calls = customer_rules.audit_new_customers, tmp_path / "audits"

    def failing_second(new: customer_rules.NewCustomers) -> None:
        with calls.open("a") as noted:
            noted.write("x\n")
        if len(calls.read_text().split()) == 2:
            time.sleep(0.4)  # the third chunk is inserted meanwhile and waits for its turn
            raise OSError("disk full")
        real_audit(new)

    monkeypatch.setattr(customer_rules, "audit_new_customers", failing_second)
    overlap("process")
    rows = [["", f"Turn {n:02d}", f"Ma {n}", f"1393000{n:04d}"] for n in range(12)]  # 3 chunks of 4
    path = write_xlsx(tmp_path / "turn.xlsx", {"s": [HEADERS, *rows]})
    job = run_job("rep_a", path)
    assert job.status == "failed" and job.created == 4
    assert [name for name, _phone, _by in _stored(app, "Turn")] == [f"Turn {n:02d}" for n in range(4)]
    monkeypatch.setattr(customer_rules, "audit_new_customers", real_audit)
    again = run_job("rep_a", path)
    assert (again.status, again.created) == ("done", 8)
    assert len(_stored(app, "Turn")) == 12
    with app.app_context():
        assert audit.verify_chain(db.session).ok
        db.session.remove()
