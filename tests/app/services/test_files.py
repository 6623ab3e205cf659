"""Admin-set paths live under CRM_FILES_ROOT (issue 10, "Files and paths"): one rule,
``files.checked_path``, when a setting is saved and again when it is used; scheduled folder
imports never follow or move a link."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from app.extensions import db
from app.models import Customer, SyncTarget, TransferJob
from app.services import files, schedules
from app.services.importing.reading import workbook_rows
from tests.app.services.importing.conftest import write_xlsx
from tests.app.services.test_schedules import _schedule
from tests.conftest import user_id


@pytest.fixture
def root(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CRM_FILES_ROOT = tmp_path/root; tmp_path/outside holds a secret outside it."""
    base = tmp_path / "root"
    base.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secrets.csv").write_text("客户名称,联系方式\nSECRET,13812345678\n")
    monkeypatch.setitem(app.config, "CRM_FILES_ROOT", str(base))
    return base


def test_paths_outside_the_roots_are_refused(ctx: Any, root: Path) -> None:
    outside = root.parent / "outside"
    for raw in ("/etc", str(outside), "../outside", str(root / ".." / "outside"), "inbox/../../outside"):
        with pytest.raises(ValueError, match="outside the folders this server may use"):
            files.checked_path(raw, kind="folder")
    with pytest.raises(ValueError, match="outside the folders"):
        files.checked_path("/etc/passwd", kind="file")


def test_a_symlink_out_of_the_root_is_refused(ctx: Any, root: Path) -> None:
    (root / "inbox").symlink_to(root.parent / "outside")
    (root / "book.xlsx").symlink_to(root.parent / "outside" / "secrets.csv")
    with pytest.raises(ValueError, match="outside the folders"):
        files.checked_path("inbox", kind="folder")
    with pytest.raises(ValueError, match="outside the folders"):
        files.checked_path(str(root / "book.xlsx"), kind="file", suffixes=(".xlsx",))


def test_relative_paths_are_taken_in_the_first_root_and_checked(ctx: Any, root: Path) -> None:
    (root / "inbox").mkdir()
    assert files.checked_path("inbox", kind="folder") == root.resolve() / "inbox"
    assert files.checked_path(f"{root}/inbox/", kind="folder") == root.resolve() / "inbox"
    assert files.checked_path("out.csv", kind="file", suffixes=(".xlsx", ".csv")) == root.resolve() / "out.csv"
    with pytest.raises(ValueError, match="does not exist"):
        files.checked_path("missing", kind="folder")
    with pytest.raises(ValueError, match=r"ending in \.xlsx"):
        files.checked_path("out.txt", kind="file", suffixes=(".xlsx",))
    with pytest.raises(ValueError, match="folder of"):
        files.checked_path("nowhere/out.xlsx", kind="file")
    with pytest.raises(ValueError, match="not a file"):
        files.checked_path("inbox", kind="file")
    for raw in ("", "   ", "in\x00box"):
        with pytest.raises(ValueError, match="Give a path"):
            files.checked_path(raw, kind="folder")


def test_several_roots_and_the_default_root(app: Any, ctx: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.setitem(app.config, "CRM_FILES_ROOT", f"{first}{os.pathsep}{second}")
    assert files.checked_path(str(second), kind="folder") == second.resolve()
    assert files.checked_path("x.xlsx", kind="file").parent == first.resolve()
    monkeypatch.setitem(app.config, "CRM_FILES_ROOT", "")
    monkeypatch.setattr(app, "instance_path", str(tmp_path / "instance"))
    assert files.roots() == [(tmp_path / "instance" / "files").resolve()]
    assert (tmp_path / "instance" / "files").is_dir()  # created on demand


# --- scheduled transfers: checked again at run time ----------------------------------------------


def test_a_stored_folder_outside_the_roots_fails_the_run_and_touches_nothing(ctx: Any, root: Path) -> None:
    """A value saved before the rule: the run fails with a message; the secret stays where it is."""
    outside = root.parent / "outside"
    done = schedules.run(_schedule(path=str(outside)))
    assert done.last_status == "failed" and "outside the folders this server may use" in done.last_message
    assert (outside / "secrets.csv").exists() and not (outside / "failed").exists()
    assert db.session.query(TransferJob).count() == 0


def test_a_stored_export_file_outside_the_roots_is_not_written(ctx: Any, root: Path) -> None:
    target = root.parent / "outside" / "export.csv"
    done = schedules.run(_schedule(kind="list_export", path=str(target), name="export"))
    assert done.last_status == "failed" and "outside the folders" in done.last_message and not target.exists()


def test_folder_imports_skip_links_and_never_move_them(ctx: Any, root: Path) -> None:
    inbox = root / "inbox"
    inbox.mkdir()
    secret = root.parent / "outside" / "secrets.csv"
    (inbox / "linked.csv").symlink_to(secret)
    kept = root / "kept.csv"
    kept.write_text("客户名称,联系方式\nHard Link Co,13812345678\n")
    os.link(kept, inbox / "hard.csv")
    write_xlsx(inbox / "real.xlsx", {"s": [["客户名称", "联系方式"], ["Real Co", "13812345678"]]})
    done = schedules.run(_schedule(path="inbox"))
    assert done.last_status == "done", done.last_message
    assert "linked.csv: skipped" in done.last_message and "hard.csv: skipped" in done.last_message
    assert (inbox / "linked.csv").is_symlink() and (inbox / "hard.csv").exists() and secret.exists()
    assert not (inbox / "failed").exists() and (inbox / "done" / "real.xlsx").exists()
    assert [c.name for c in db.session.query(Customer)] == ["Real Co"]


def test_a_done_folder_linking_out_of_the_root_is_refused(ctx: Any, root: Path) -> None:
    inbox = root / "inbox"
    inbox.mkdir()
    (inbox / "done").symlink_to(root.parent / "outside")
    write_xlsx(inbox / "week.xlsx", {"s": [["客户名称", "联系方式"], ["Week Co", "13812345678"]]})
    done = schedules.run(_schedule(path=str(inbox)))
    assert done.last_status == "failed" and "outside the folders" in done.last_message
    assert not (root.parent / "outside" / "week.xlsx").exists()


def test_an_error_report_never_writes_through_a_planted_link(ctx: Any, root: Path) -> None:
    inbox = root / "inbox"
    (inbox / "done").mkdir(parents=True)
    victim = root / "victim.txt"
    victim.write_text("untouched")
    (inbox / "done" / "week-errors.xlsx").symlink_to(victim)
    write_xlsx(inbox / "week.xlsx", {"s": [["客户名称", "联系方式"], ["Good Co", "13812345678"], ["Bad", "1"]]})
    done = schedules.run(_schedule(path=str(inbox)))
    assert done.last_status == "done", done.last_message
    assert victim.read_text() == "untouched" and not (inbox / "done" / "week-errors.xlsx").is_symlink()


# --- the demo workbook lives under the files root ------------------------------------------------

def test_the_demo_sync_workbook_is_under_the_files_root(app: Any, ctx: Any, root: Path) -> None:
    from app.models.org import CrmUser
    from app.services.demo_setup import _demo_sync_target

    _demo_sync_target(db.session.get(CrmUser, user_id("manager")))
    db.session.commit()
    target = db.session.query(SyncTarget).one()
    path = files.checked_path(target.location, kind="file", suffixes=(".xlsx",))
    assert path.parent == root.resolve() and workbook_rows(path, target.worksheet)[0][0][0] == "客户编号"
