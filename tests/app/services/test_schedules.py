"""Scheduled folder imports and saved-list exports, due times, and failures that do not
stop the other schedules."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, TransferJob, TransferSchedule
from app.services import message_text, schedules
from tests.app.services.importing.conftest import write_xlsx
from tests.conftest import user_id


def _schedule(**fields: Any) -> TransferSchedule:
    values = {"name": "s", "kind": "folder_import", "model": "customer", "cron": "*/15 * * * *",
              "mode": "upsert", "run_as_id": user_id("rep_a"), **fields}
    schedule = TransferSchedule(**values)
    db.session.add(schedule)
    db.session.commit()
    return schedule


def test_folder_import_moves_files_to_done_or_failed_with_reports(app: Any, ctx: Any, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_xlsx(inbox / "week1.xlsx", {"s": [["客户名称", "联系方式"], ["Folder Co", "13812345678"], ["Bad", "1"]]})
    (inbox / "notes.xlsx").write_bytes(b"not a workbook")
    schedule = _schedule(path=str(inbox))
    done = schedules.run(schedule)
    assert done.last_status == "done", done.last_message
    assert "week1.xlsx: 1 created" in done.last_message and "1 rejected" in done.last_message
    assert (inbox / "done" / "week1.xlsx").exists() and (inbox / "done" / "week1-errors.xlsx").exists()
    assert (inbox / "failed" / "notes.xlsx").exists() and not list(inbox.glob("*.xlsx"))
    customer = db.session.scalar(select(Customer).where(Customer.name == "Folder Co"))
    assert customer.owner_id == user_id("rep_a")  # run as the schedule's user
    runs = db.session.scalars(select(TransferJob).where(TransferJob.schedule_id == schedule.id)).all()
    assert sorted(r.status for r in runs) == ["done", "failed"]
    assert message_text.text(schedules.run(db.session.get(TransferSchedule, schedule.id)).last_message) == \
        "No files to import."


def test_saved_list_export_keeps_scope_filters_columns_and_masking(app: Any, ctx: Any, make_customer: Any,
                                                                    tmp_path: Path) -> None:
    make_customer("rep_a", name="Alpha One", contact_phone="13800000001")
    make_customer("rep_a", name="Beta", contact_phone="13800000002")
    make_customer("rep_b", name="Alpha Other", contact_phone="13800000003")
    target = tmp_path / "out" / "alpha.xlsx"
    target.parent.mkdir()
    schedule = _schedule(kind="list_export", path=str(target), filters="/customerview/list/?_flt_2_name=Alpha",
                         columns="code, name, contact_phone")
    done = schedules.run(schedule)
    assert done.last_status == "done", done.last_message
    rows = list(load_workbook(target).active.iter_rows(values_only=True))
    assert rows[0] == ("Customer code", "Customer name", "Contact phone")
    assert [r[1] for r in rows[1:]] == ["Alpha One"] and rows[1][2] == "138****0001"


def test_due_times_follow_the_cron_and_failures_do_not_stop_others(app: Any, ctx: Any, tmp_path: Path) -> None:
    broken = _schedule(name="broken", path=str(tmp_path / "missing"), cron="* * * * *")
    inbox = tmp_path / "ok"
    inbox.mkdir()
    working = _schedule(name="working", path=str(inbox), cron="* * * * *")
    ran = schedules.run_due(datetime.now())
    assert set(ran) == {"broken", "working"}
    db.session.expire_all()
    assert db.session.get(TransferSchedule, broken.id).last_status == "failed"
    assert "does not exist" in db.session.get(TransferSchedule, broken.id).last_message
    assert db.session.get(TransferSchedule, working.id).last_status == "done"

    quarter = db.session.get(TransferSchedule, working.id)
    quarter.cron, quarter.last_run_at = "*/15 * * * *", datetime(2026, 1, 5, 10, 0, 5)
    assert not schedules.is_due(quarter, datetime(2026, 1, 5, 10, 14, 59))
    assert schedules.is_due(quarter, datetime(2026, 1, 5, 10, 15, 0))


def test_admin_screen_refuses_a_bad_cron_and_lists_runs(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    with app.app_context():
        rep_a = user_id("rep_a")
    auth.login("admin")
    page = client.post("/transferscheduleview/add", data={
        "name": "nightly", "kind": "folder_import", "model": "customer", "cron": "every night",
        "path": str(tmp_path), "mode": "upsert", "run_as": str(rep_a), "enabled": "y",
    }).get_data(as_text=True)
    assert "Not a cron schedule" in page
    response = client.post("/transferscheduleview/add", data={
        "name": "nightly", "kind": "folder_import", "model": "customer", "cron": "0 2 * * *",
        "path": str(tmp_path), "mode": "upsert", "run_as": str(rep_a), "enabled": "y",
    })
    assert response.status_code == 302
    assert "nightly" in client.get("/jobs/").get_data(as_text=True)
    auth.logout()
    auth.login("manager")
    assert client.get("/transferscheduleview/list/").status_code in (302, 403)


def test_a_schedule_already_running_is_not_started_twice(app: Any, ctx: Any, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_xlsx(inbox / "once.xlsx", {"s": [["客户名称", "联系方式"], ["Only once", "13812345678"]]})
    schedule = _schedule(path=str(inbox), last_status="running", last_run_at=datetime.now())
    assert schedules.run(schedule).last_status == "running"  # the other run holds it
    assert (inbox / "once.xlsx").exists() and db.session.query(Customer).count() == 0


def test_schedules_do_only_what_their_run_as_user_may(app: Any, ctx: Any, make_customer: Any, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_xlsx(inbox / "x.xlsx", {"s": [["客户名称", "联系方式"], ["Not allowed", "13812345678"]]})
    done = schedules.run(_schedule(name="viewer import", path=str(inbox), run_as_id=user_id("viewer")))
    assert "may not change" in done.last_message and (inbox / "failed" / "x.xlsx").exists()
    assert db.session.query(Customer).count() == 0
    make_customer("rep_a", name="Listed")
    target = tmp_path / "out.xlsx"
    done = schedules.run(_schedule(name="viewer export", kind="list_export", path=str(target),
                                   run_as_id=user_id("viewer")))
    assert done.last_status == "failed" and "may not export" in done.last_message and not target.exists()
