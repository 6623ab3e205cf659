"""Issue 12: an import's audit entries are one chain step per chunk (one hash for the chunk,
one entry per record), and the chain still catches any change to any of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from app.extensions import db
from app.models import AuditLog, Customer
from app.services import audit
from tests.app.services.importing.conftest import MANUAL_HEADERS, write_xlsx


def _import_three(run_job: Any, tmp_path: Path) -> None:
    rows = [MANUAL_HEADERS] + [["", f"链测试公司{n}", "物流", f"联系人{n}", f"1390013900{n}", "", "", "", ""]
                               for n in range(3)]
    job = run_job("rep_a", write_xlsx(tmp_path / "chain.xlsx", {"s": rows}))
    assert job.created == 3


def _step(app: Any) -> list[AuditLog]:
    with app.app_context():
        entries = db.session.scalars(select(AuditLog).where(
            AuditLog.source == "import", AuditLog.object_type == "Customer").order_by(AuditLog.seq)).all()
        db.session.expunge_all()
        return entries


def test_an_import_chunk_is_one_chain_step_with_an_entry_per_record(app: Any, run_job: Any, tmp_path: Path) -> None:
    _import_three(run_job, tmp_path)
    step = _step(app)
    assert len(step) == 3  # every record's history shows its import
    assert len({(e.prev_hash, e.hash) for e in step}) == 1  # one link of the chain for the chunk
    assert [e.seq for e in step] == list(range(step[0].seq, step[0].seq + 3))
    with app.app_context():
        for entry in step:
            assert audit.history("Customer", entry.object_id)[0].id == entry.id
        report = audit.verify_chain(db.session)
        assert report.ok, report.problem


def test_a_tampered_entry_inside_a_chunk_is_caught(app: Any, run_job: Any, tmp_path: Path) -> None:
    _import_three(run_job, tmp_path)
    first, middle, last = _step(app)
    with app.app_context():
        # Someone with database access rewrites what the import wrote about one customer...
        db.session.execute(text("UPDATE audit_log SET changes = REPLACE(changes, '链测试公司1', '别的公司') "
                                "WHERE id = :id"), {"id": middle.id})
        db.session.commit()
        report = audit.verify_chain(db.session)
        assert not report.ok and "altered" in report.problem
        # named by the step that holds it (the entries written together)
        assert report.broken_seq == first.seq and f"#{first.seq}-#{last.seq}" in report.problem


def test_a_member_whose_shared_column_changed_is_named(app: Any, run_job: Any, tmp_path: Path) -> None:
    _import_three(run_job, tmp_path)
    _first, middle, _last = _step(app)
    with app.app_context():
        db.session.execute(text("UPDATE audit_log SET user_name = 'nobody' WHERE id = :id"), {"id": middle.id})
        db.session.commit()
        report = audit.verify_chain(db.session)
        assert not report.ok and report.broken_seq == middle.seq and "altered" in report.problem


def test_a_member_removed_from_a_step_is_caught(app: Any, run_job: Any, tmp_path: Path) -> None:
    _import_three(run_job, tmp_path)
    _first, middle, _last = _step(app)
    with app.app_context():
        db.session.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": middle.id})
        db.session.commit()
        report = audit.verify_chain(db.session)
        assert not report.ok and report.broken_seq == middle.seq and "missing" in report.problem


def test_a_member_moved_out_of_its_step_is_caught(app: Any, run_job: Any, tmp_path: Path) -> None:
    _import_three(run_job, tmp_path)
    first, _middle, last = _step(app)
    with app.app_context():
        # a rewritten hash splits the step: what is left no longer hashes to the step's hash
        db.session.execute(text("UPDATE audit_log SET hash = :h WHERE id = :id"), {"h": "0" * 64, "id": last.id})
        db.session.commit()
        report = audit.verify_chain(db.session)
        assert not report.ok and report.broken_seq == first.seq and "altered" in report.problem


def test_writes_outside_an_import_keep_one_link_per_entry(app: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="Form Co")  # the customer and its primary contact: one flush, two entries
    with app.app_context():
        entries = db.session.scalars(select(AuditLog).order_by(AuditLog.seq)).all()
        assert len(entries) == 2 and entries[1].prev_hash == entries[0].hash
        assert db.session.scalar(select(Customer.name)) == "Form Co"
        assert audit.verify_chain(db.session).ok
