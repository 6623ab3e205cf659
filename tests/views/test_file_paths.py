"""The admin forms that name server paths (scheduled imports/exports, xlsx sync targets) accept
only paths under CRM_FILES_ROOT (issue 10, "Files and paths")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import SyncTarget, TransferSchedule
from tests.conftest import user_id


@pytest.fixture
def root(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "root"
    (base / "inbox").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (base / "escape").symlink_to(tmp_path / "outside")
    monkeypatch.setitem(app.config, "CRM_FILES_ROOT", str(base))
    return base


def _schedule_form(app: Any, path: str, kind: str = "folder_import") -> dict[str, str]:
    with app.app_context():
        rep_a = user_id("rep_a")
    return {"name": "nightly", "kind": kind, "model": "customer", "cron": "0 2 * * *", "path": path,
            "mode": "upsert", "run_as": str(rep_a), "enabled": "y"}


@pytest.mark.parametrize("path", ["/etc", "../outside", "escape", "inbox/../../outside"])
def test_the_schedule_form_refuses_folders_outside_the_roots(app: Any, client: Any, auth: Any, root: Path,
                                                             path: str) -> None:
    auth.login("admin")
    page = client.post("/transferscheduleview/add", data=_schedule_form(app, path))
    assert page.status_code == 200 and "outside the folders this server may use" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(TransferSchedule)) is None


def test_the_schedule_form_refuses_an_export_file_outside_the_roots(app: Any, client: Any, auth: Any,
                                                                    root: Path) -> None:
    auth.login("admin")
    page = client.post("/transferscheduleview/add", data=_schedule_form(app, "/etc/cron.d/x.csv", "list_export"))
    assert "outside the folders" in page.get_data(as_text=True)
    page = client.post("/transferscheduleview/add", data=_schedule_form(app, "escape/x.csv", "list_export"))
    assert "outside the folders" in page.get_data(as_text=True)


def test_the_schedule_form_takes_a_folder_under_the_root(app: Any, client: Any, auth: Any, root: Path) -> None:
    auth.login("admin")
    assert client.post("/transferscheduleview/add", data=_schedule_form(app, "inbox")).status_code == 302
    assert client.post("/transferscheduleview/add", data={**_schedule_form(app, str(root / "out.xlsx"), "list_export"),
                                                          "name": "export"}).status_code == 302


@pytest.mark.parametrize("location", ["/etc/team.xlsx", "../outside/team.xlsx", "escape/team.xlsx"])
def test_the_sync_target_form_refuses_workbooks_outside_the_roots(app: Any, client: Any, auth: Any, root: Path,
                                                                  location: str) -> None:
    with app.app_context():
        rep_a = user_id("rep_a")
    auth.login("admin")
    form = {"name": "team", "model": "customer", "backend": "xlsx", "location": location, "worksheet": "客户",
            "direction": "both", "conflict_policy": "review", "deleted_rows": "review", "run_as": str(rep_a),
            "cron": "", "enabled": "y", "max_shrink_percent": "20"}
    page = client.post("/synctargetview/add", data=form)
    assert page.status_code == 200 and "outside the folders this server may use" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(SyncTarget)) is None


def test_run_now_on_a_schedule_stored_outside_the_roots_is_a_message(app: Any, client: Any, auth: Any,
                                                                     root: Path) -> None:
    """A value saved before the rule (or by hand in the database) is refused at run time."""
    outside = root.parent / "outside"
    (outside / "secrets.csv").write_text("客户名称,联系方式\nSECRET,13812345678\n")
    with app.app_context():
        schedule = TransferSchedule(name="old", kind="folder_import", model="customer", cron="0 2 * * *",
                                    mode="upsert", run_as_id=user_id("rep_a"), path=str(outside))
        db.session.add(schedule)
        db.session.commit()
        pk = schedule.id
    auth.login("admin")
    page = client.post("/transferscheduleview/action_post", data={"action": "run_now", "rowid": [str(pk)]},
                       follow_redirects=True).get_data(as_text=True)
    assert "outside the folders this server may use" in page and "SECRET" not in page
    assert (outside / "secrets.csv").exists() and not (outside / "failed").exists()
    bad = client.post("/transferscheduleview/action_post", data={"action": "nope", "rowid": [str(pk)]},
                      follow_redirects=True)
    assert bad.status_code == 200 and "Unknown action" in bad.get_data(as_text=True)
