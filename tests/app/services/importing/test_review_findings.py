"""Edge cases found in review: aliases after a restore, keys repeated in a file, codes of
existing records on new rows, control characters, long CSV cells, double commits,
dictionary matching that must not depend on row order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, CustomerAlias, TransferJob
from app.models.dictionaries import Industry
from app.services import customers as rules
from app.services.dictionaries import DictionaryLookup
from app.services.importing import jobs
from tests.app.services.importing.conftest import write_xlsx


def test_a_restored_customer_gets_its_own_code_back(app: Any, run_job: Any, make_customer: Any,
                                                     tmp_path: Path) -> None:
    keep, gone = make_customer("rep_a", name="Keep"), make_customer("rep_a", name="Gone")
    with app.app_context():
        survivor, merged = db.session.get(Customer, keep), db.session.get(Customer, gone)
        db.session.add(CustomerAlias(code=merged.code, customer=survivor, merged_from=merged))
        merged.archived_at = survivor.created_on
        db.session.commit()
        rules.restore(db.session.get(Customer, gone))
        db.session.commit()
        assert db.session.scalar(select(CustomerAlias)) is None
        code = merged.code
    path = write_xlsx(tmp_path / "r.xlsx", {"s": [["客户编号", "客户名称", "联系方式"], [code, "Gone again", "13812345678"]]})
    job = run_job("rep_a", path, mode="update")
    assert job.updated == 1
    with app.app_context():
        assert db.session.get(Customer, gone).name == "Gone again" and db.session.get(Customer, keep).name == "Keep"


def test_a_key_repeated_in_the_file_updates_once_and_flags_the_repeat(app: Any, run_job: Any, make_customer: Any,
                                                                       tmp_path: Path) -> None:
    pk = make_customer("rep_a", name="Once")
    with app.app_context():
        code = db.session.get(Customer, pk).code
    path = write_xlsx(tmp_path / "k.xlsx", {"s": [["客户编号", "客户名称", "联系方式"], [code, "First", "13812345678"],
                                                  [code, "Second", "12345"]]})
    job = run_job("rep_a", path, mode="update")
    assert (job.updated, job.rejected, job.duplicates) == (1, 1, 1)
    with app.app_context():
        assert db.session.get(Customer, pk).name == "First"


def test_new_rows_cannot_take_an_existing_code(app: Any, run_job: Any, make_customer: Any, tmp_path: Path) -> None:
    pk = make_customer("rep_b", name="Theirs", credit_code=None)
    with app.app_context():
        code = db.session.get(Customer, pk).code
    path = write_xlsx(tmp_path / "c.xlsx", {"s": [["客户编号", "客户名称", "联系方式", "统一社会信用代码"],
                                                  [code, "Mine", "13812345678", ""]]})
    dry = run_job("rep_a", path, commit=False, mode="upsert", key="credit_code")
    assert (dry.created, dry.rejected) == (0, 1)
    job = run_job("rep_a", path, mode="upsert", key="credit_code")
    assert job.status == "done" and job.rejected == 1


def test_control_characters_are_dropped_and_exports_still_work(app: Any, client: Any, auth: Any, run_job: Any,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "ctl.csv"
    path.write_text("客户名称,联系方式,备注\nBell\x07Co,13812345678,x\x0by\nBad,123,\x0b\n", encoding="utf-8")
    job = run_job("rep_a", path)
    assert (job.status, job.created, job.rejected) == ("done", 1, 1)
    with app.app_context():
        customer = db.session.scalar(select(Customer).where(Customer.name == "BellCo"))
        assert customer.note == "xy"
    auth.login("rep_a")
    assert client.get("/customerview/export/xlsx").status_code == 200


def test_a_very_long_csv_cell_is_data(app: Any, run_job: Any, tmp_path: Path) -> None:
    """A 200,000-character cell is read (not a crash) and refused by the note's limit with a
    message; a note at the limit imports."""
    path = tmp_path / "long.csv"
    path.write_text("客户名称,联系方式,备注\nLong,13812345678," + "长" * 200_000 + "\n"
                    + "Fits,13812345679," + "长" * 10_000 + "\n", encoding="utf-8")
    job = run_job("rep_a", path)
    assert (job.status, job.created, job.rejected) == ("done", 1, 1)


def test_an_import_is_committed_once_even_if_started_twice(app: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "twice.xlsx", {"s": [["客户名称", "联系方式"], ["Twice", "13812345678"]]})
    with app.app_context():
        user = appbuilder.sm.find_user(username="rep_a")
        job = jobs.create_job(user, "customer", path.name, path.read_bytes())
        job.mapping = {"客户名称": "name", "联系方式": "contact_phone"}
        db.session.commit()
        assert jobs.start(job, commit=False)
        first = db.session.get(TransferJob, job.id)
        assert jobs.start(first, commit=True)
        assert not jobs.start(db.session.get(TransferJob, job.id), commit=True)  # the second click
        assert db.session.query(Customer).filter(Customer.name == "Twice").count() == 1


def test_dictionary_matching_does_not_depend_on_earlier_rows(app: Any, ctx: Any) -> None:
    lookup = DictionaryLookup(Industry)
    try:
        lookup.find("软件外包")
    except ValueError:
        pass
    assert lookup.find("软件").code == "65"
