"""Sync screens: targets, Sync now (sheet wins needs a code), Preview, conflicts settled
by a person, and the scheduler's tick."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Customer, SyncConflict, SyncRun, SyncTarget
from tests.conftest import user_id
from tests.sync.conftest import HEADERS


def _workbook(tmp_path: Path, rows: list[list[Any]]) -> Path:
    path = tmp_path / "team.xlsx"
    book = Workbook()
    book.active.title = "客户"
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def _target(app: Any, path: Path, **fields: Any) -> int:
    with app.app_context():
        target = SyncTarget(name="team sheet", backend="xlsx", location=str(path), worksheet="客户",
                            run_as_id=user_id("manager"), **fields)
        db.session.add(target)
        db.session.commit()
        return target.id


def _rows(path: Path) -> list[list[Any]]:
    return [list(r) for r in load_workbook(path)["客户"].iter_rows(values_only=True)]


def test_admin_adds_a_target_and_syncs_now(app: Any, client: Any, auth: Any, make_customer: Any,
                                           tmp_path: Path) -> None:
    make_customer("rep_a", name="星河科技")
    path = _workbook(tmp_path, [HEADERS])
    with app.app_context():
        manager = user_id("manager")
    auth.login("admin")
    form = {"name": "team", "model": "customer", "backend": "xlsx", "location": "relative.xlsx", "worksheet": "客户", "direction": "both",
            "conflict_policy": "review", "deleted_rows": "review", "run_as": str(manager),
            "cron": "*/5 * * * *", "enabled": "y", "max_shrink_percent": "20"}
    assert "absolute path" in client.post("/synctargetview/add", data=form).get_data(as_text=True)
    bad_mapping = client.post("/synctargetview/add", data={**form, "location": str(path),
                                                            "mapping_text": "公司 = nonsense"})
    assert "header = field" in bad_mapping.get_data(as_text=True)
    assert client.post("/synctargetview/add", data={**form, "location": str(path)}).status_code == 302
    with app.app_context():
        pk = db.session.scalar(select(SyncTarget.id))
        assert db.session.get(SyncTarget, pk).mapping is None  # aliases decide on the first run
    preview = client.post(f"/synctargetview/action/preview/{pk}", follow_redirects=True).get_data(as_text=True)
    assert "nothing written" in preview and len(_rows(path)) == 1
    page = client.post(f"/synctargetview/action/sync_now/{pk}", follow_redirects=True).get_data(as_text=True)
    assert "sheet_added 1" in page and _rows(path)[1][1] == "星河科技"
    assert "sheet_added" in client.get("/syncrunview/list/").get_data(as_text=True)
    edit = client.get(f"/synctargetview/edit/{pk}").get_data(as_text=True)
    assert "客户名称 = name" in edit  # the mapping the first run kept, editable


def test_sheet_wins_sync_started_by_hand_needs_a_code(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    path = _workbook(tmp_path, [HEADERS])
    pk = _target(app, path, conflict_policy="sheet")
    auth.login("admin")
    response = client.post(f"/synctargetview/action/sync_now/{pk}")
    assert "authenticator" in response.get_data(as_text=True).lower()
    with app.app_context():
        assert db.session.scalar(select(SyncRun)) is None
    auth.grant_step_up("admin")
    client.post(f"/synctargetview/action/sync_now/{pk}")
    with app.app_context():
        assert db.session.scalar(select(SyncRun)).status == "done"


def test_conflicts_are_settled_by_a_person_and_carried_over(app: Any, client: Any, auth: Any,
                                                            make_customer: Any, tmp_path: Path) -> None:
    from sync import runner
    from sync.backends import XlsxBackend

    a = make_customer("rep_a", name="Acme", contact_phone="13800000001", note="base")
    b = make_customer("rep_a", name="Beta", contact_phone="13800000002", note="base")
    path = _workbook(tmp_path, [HEADERS])
    pk = _target(app, path)

    def run() -> None:
        with app.app_context():
            runner.run(db.session.get(SyncTarget, pk), XlsxBackend(path, "客户"))

    run()
    with app.app_context():
        db.session.get(Customer, a).note = "crm A"
        db.session.get(Customer, b).note = "crm B"
        db.session.commit()
    book = load_workbook(path)
    rows = {row[1].value: row for row in book["客户"].iter_rows(min_row=2)}
    rows["Acme"][5].value, rows["Beta"][5].value = "sheet A", "sheet B"
    book.save(path)
    run()
    with app.app_context():
        ids = {c.record_id: c.id for c in db.session.scalars(select(SyncConflict))}
    auth.login("admin")
    client.post("/syncconflictview/action_post", data={"action": "keep_sheet", "rowid": [str(ids[a])]})
    client.post("/syncconflictview/action_post", data={"action": "keep_app", "rowid": [str(ids[b])]})
    with app.app_context():
        assert db.session.get(Customer, a).note == "sheet A"
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "sync_conflict")) is not None
    run()
    notes = {row[1]: row[5] for row in _rows(path)[1:]}
    assert notes == {"Acme": "sheet A", "Beta": "crm B"}
    with app.app_context():
        assert db.session.get(Customer, b).note == "crm B"
        assert all(c.resolved_at for c in db.session.scalars(select(SyncConflict)))


def test_reps_cannot_see_sync_screens(client: Any, auth: Any) -> None:
    auth.login("rep_a")
    for url in ("/synctargetview/list/", "/syncrunview/list/", "/syncconflictview/list/"):
        assert client.get(url).status_code in (302, 403)


def test_the_minute_tick_runs_due_targets_only(app: Any, make_customer: Any, tmp_path: Path) -> None:
    from sync.schedule import run_due_targets

    make_customer("rep_a", name="Tick")
    path = _workbook(tmp_path, [HEADERS])
    _target(app, path, cron="* * * * *")
    with app.app_context():
        other = SyncTarget(name="missing file", backend="xlsx", location=str(tmp_path / "nope.xlsx"),
                           worksheet="客户", run_as_id=user_id("manager"), cron="* * * * *")
        db.session.add(other)
        db.session.commit()
        assert sorted(run_due_targets(datetime.now())) == ["missing file", "team sheet"]
        assert db.session.get(SyncTarget, other.id).last_status == "failed"
    assert _rows(path)[1][1] == "Tick"
