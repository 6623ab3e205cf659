"""Sync screens: targets, Sync now (sheet wins needs a code), Preview, conflicts settled
by a person, and the scheduler's tick."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
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
    form = {"name": "team", "model": "customer", "backend": "xlsx", "location": "/etc/team.xlsx", "worksheet": "客户", "direction": "both",
            "conflict_policy": "review", "deleted_rows": "review", "run_as": str(manager),
            "cron": "*/5 * * * *", "enabled": "y", "max_shrink_percent": "20"}
    assert "outside the folders" in client.post("/synctargetview/add", data=form).get_data(as_text=True)
    bad_mapping = client.post("/synctargetview/add", data={**form, "location": str(path),
                                                            "mapping_text": "公司 = nonsense"})
    assert "header = field" in bad_mapping.get_data(as_text=True)
    asked = client.post("/synctargetview/add", data={**form, "location": str(path)})  # the manager may reveal
    assert asked.status_code == 401 and "authenticator" in asked.get_data(as_text=True).lower()
    auth.grant_step_up("admin")
    assert client.post("/synctargetview/add", data={**form, "location": str(path)}).status_code == 302
    with app.app_context():
        pk = db.session.scalar(select(SyncTarget.id))
        assert db.session.get(SyncTarget, pk).mapping is None  # aliases decide on the first run
    preview = client.post(f"/synctargetview/action/preview/{pk}", follow_redirects=True).get_data(as_text=True)
    assert "nothing written" in preview and len(_rows(path)) == 1
    page = client.post(f"/synctargetview/action/sync_now/{pk}", follow_redirects=True).get_data(as_text=True)
    assert "Added to the sheet: 1" in page and _rows(path)[1][1] == "星河科技"
    assert "Added to the sheet" in client.get("/syncrunview/list/").get_data(as_text=True)
    edit = client.get(f"/synctargetview/edit/{pk}").get_data(as_text=True)
    assert "客户名称 = name" in edit  # the mapping the first run kept, editable


@pytest.mark.parametrize("settings", [{"conflict_policy": "sheet"}, {"conflict_policy": "newest"},
                                      {"direction": "pull"}, {"deleted_rows": "archive"}])
def test_sheet_wins_sync_started_by_hand_needs_a_code(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                      settings: dict) -> None:
    path = _workbook(tmp_path, [HEADERS])
    pk = _target(app, path, **settings)
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


def _form(path: Path, run_as: str, **fields: str) -> dict[str, str]:
    with_user = {"name": "team", "model": "customer", "backend": "xlsx", "location": str(path), "worksheet": "客户",
                 "direction": "both", "conflict_policy": "review", "deleted_rows": "review",
                 "run_as": str(user_id(run_as)), "cron": "*/5 * * * *", "enabled": "y", "max_shrink_percent": "20"}
    return {**with_user, **fields}


def _saves(app: Any) -> list[dict]:
    import json

    with app.app_context():
        return [json.loads(e.detail) for e in db.session.scalars(
            select(AuditLog).where(AuditLog.action == "sync_target_save").order_by(AuditLog.id))]


def test_saving_a_target_that_overwrites_crm_data_on_its_schedule_needs_a_code(
        app: Any, client: Any, auth: Any, tmp_path: Path, totp: Any) -> None:
    path = _workbook(tmp_path, [HEADERS])
    auth.login("admin")
    totp.enrol(app, "admin")
    with app.app_context():
        form = _form(path, "viewer", conflict_policy="sheet")  # the viewer may not reveal: phones stay masked
    asked = client.post("/synctargetview/add", data=form)
    assert asked.status_code == 401 and 'name="_step_up_code"' in asked.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(SyncTarget)) is None
    assert client.post("/synctargetview/add", data={**form, "_step_up_code": "000000"}).status_code == 403
    assert client.post("/synctargetview/add", data={**form, "_step_up_code": totp.code("admin")}).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(SyncTarget)).conflict_policy == "sheet"
    (saved,) = _saves(app)
    assert saved["created"] and saved["sensitive"] == ["sync.target_overwrite"]


def test_a_refused_code_leaves_the_stored_target_as_it_was(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                           totp: Any) -> None:
    path = _workbook(tmp_path, [HEADERS])
    pk = _target(app, path)
    with app.app_context():
        db.session.get(SyncTarget, pk).run_as_id = user_id("viewer")
        db.session.commit()
        form = _form(path, "viewer", name="team sheet", deleted_rows="archive")
    auth.login("admin")
    totp.enrol(app, "admin")
    refused = client.post(f"/synctargetview/edit/{pk}", data={**form, "_step_up_code": "000000"})
    assert refused.status_code == 403  # the failed attempt is committed (audited), the settings are not
    with app.app_context():
        assert db.session.get(SyncTarget, pk).deleted_rows == "review"
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "step_up_failure")) is not None
    assert not _saves(app)


def test_changing_the_run_as_user_to_one_who_may_reveal_needs_a_code(app: Any, client: Any, auth: Any,
                                                                      tmp_path: Path) -> None:
    path = _workbook(tmp_path, [HEADERS])
    pk = _target(app, path)
    with app.app_context():
        db.session.get(SyncTarget, pk).run_as_id = user_id("viewer")
        db.session.commit()
        safe, revealing = _form(path, "viewer", name="renamed"), _form(path, "manager", name="renamed")
    auth.login("admin")
    assert client.post(f"/synctargetview/edit/{pk}", data=safe).status_code == 302  # nothing sensitive: no code
    assert client.post(f"/synctargetview/edit/{pk}", data=revealing).status_code == 401
    with app.app_context():
        assert db.session.get(SyncTarget, pk).run_as_id == user_id("viewer")
    auth.grant_step_up("admin")
    assert client.post(f"/synctargetview/edit/{pk}", data=revealing).status_code == 302
    with app.app_context():
        assert db.session.get(SyncTarget, pk).run_as_id == user_id("manager")
    renamed, revealed = _saves(app)
    assert renamed["changes"] == {"name": ["team sheet", "renamed"]} and renamed["sensitive"] == []
    assert revealed["sensitive"] == ["sync.target_full_phones"]


def test_the_conflicts_page_masks_phones(app: Any, client: Any, auth: Any, make_customer: Any,
                                         tmp_path: Path) -> None:
    from sync import runner
    from sync.backends import XlsxBackend

    make_customer("rep_a", name="Acme", contact_phone="13800000001")
    path = _workbook(tmp_path, [HEADERS])
    pk = _target(app, path)
    with app.app_context():
        runner.run(db.session.get(SyncTarget, pk), XlsxBackend(path, "客户"))
        db.session.scalar(select(Customer)).contact_phone = "13911112222"
        db.session.commit()
    book = load_workbook(path)
    book["客户"]["D2"] = "13733334444"
    book.save(path)
    with app.app_context():
        runner.run(db.session.get(SyncTarget, pk), XlsxBackend(path, "客户"))
        conflict = db.session.scalar(select(SyncConflict))
        assert (conflict.field, conflict.sheet_value) == ("contact_phone", "13733334444")  # kept whole
    auth.login("admin")
    for url in ("/syncconflictview/list/", f"/syncconflictview/show/{conflict.id}"):
        page = client.get(url).get_data(as_text=True)
        assert "137****4444" in page and "139****2222" in page and "138****0001" in page
        assert not {"13733334444", "13911112222", "13800000001"} & set(re.findall(r"\d{11}", page))
    probe = client.get("/syncconflictview/list/?_flt_0_app_value=13900000000", follow_redirects=True)
    assert "137****4444" in probe.get_data(as_text=True)  # a filter on a value is not applied: no oracle


def test_preview_run_log_and_status_mask_phones(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    path = _workbook(tmp_path, [HEADERS, ["", "Shifted Co", "Wu", "", "13800001234", ""]])  # phone in 所属行业
    pk = _target(app, path)
    auth.login("admin")
    preview = client.post(f"/synctargetview/action/preview/{pk}", follow_redirects=True).get_data(as_text=True)
    assert "138****1234" in preview and "13800001234" not in preview
    client.post(f"/synctargetview/action/sync_now/{pk}")
    with app.app_context():
        logs = [run.message for run in db.session.scalars(select(SyncRun))]
        assert len(logs) == 2 and all("13800001234" not in m for m in logs)
        assert "13800001234" not in (db.session.get(SyncTarget, pk).last_message or "")
    assert "13800001234" not in client.get("/syncrunview/list/").get_data(as_text=True)
    status = _rows(path)[1][6]
    assert "138****1234" in status  # the sheet's status cell too


@pytest.mark.parametrize("escape", ["outside the root", "symlink out of the root"])
def test_a_stored_workbook_path_outside_the_files_root_fails_the_run(app: Any, client: Any, auth: Any,
                                                                    make_customer: Any, tmp_path: Path,
                                                                    monkeypatch: Any, escape: str) -> None:
    from sync.schedule import run_due_targets

    make_customer("rep_a", name="Never written out")
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setitem(app.config, "CRM_FILES_ROOT", str(root))
    outside = _workbook(tmp_path, [HEADERS])  # tmp_path/team.xlsx: beside the root, not in it
    location = outside
    if escape == "symlink out of the root":
        location = root / "team.xlsx"
        location.symlink_to(outside)
    before = outside.read_bytes()
    pk = _target(app, location, cron="* * * * *")  # stored before the rule (the form would refuse it)
    auth.login("admin")
    page = client.post(f"/synctargetview/action/sync_now/{pk}", follow_redirects=True).get_data(as_text=True)
    assert "outside the folders this server may use" in page
    with app.app_context():
        run_due_targets(datetime.now())
        target = db.session.get(SyncTarget, pk)
        assert target.last_status == "failed" and "outside the folders" in target.last_message
    assert outside.read_bytes() == before


def test_conflicts_show_masked_fields_masked_and_labels_of_their_type(app: Any, client: Any, auth: Any,
                                                                      make_custom_field: Any, tmp_path: Path) -> None:
    make_custom_field("customer", "secret", "text", label_en="Passport", masked=True)
    make_custom_field("customer", "size", "text", label_en="Company size")
    make_custom_field("follow_up", "size", "text", label_en="Meeting size")
    customers = _target(app, _workbook(tmp_path, [HEADERS]))
    with app.app_context():
        other = SyncTarget(name="follow-ups sheet", model="follow_up", backend="xlsx", location=str(tmp_path / "o.xlsx"),
                           worksheet="跟进", run_as_id=user_id("manager"))
        db.session.add(other)
        db.session.flush()
        follow_ups = other.id
        for target, field, value in ((customers, "cf_secret", "E12345678"), (follow_ups, "cf_size", "12 people")):
            db.session.add(SyncConflict(target_id=target, record_id=1, key="K1", field=field, base=value,
                                        app_value=value + " crm", sheet_value=value + " sheet"))
        db.session.commit()
    auth.login("admin")
    page = client.get("/syncconflictview/list/").get_data(as_text=True)
    assert "E12345678" not in page and "Passport" in page
    assert "Meeting size" in page and "Company size" not in page and "12 people sheet" in page
