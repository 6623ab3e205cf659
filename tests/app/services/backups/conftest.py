"""Backups write into a per-test folder (and a per-test files root and second location)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def backup_dirs(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """``backups``, ``copies`` and ``files`` folders for this test only."""
    folders = {name: tmp_path / name for name in ("backups", "copies", "files")}
    folders["files"].mkdir()
    monkeypatch.setitem(app.config, "CRM_BACKUP_DIR", str(folders["backups"]))
    monkeypatch.setitem(app.config, "CRM_BACKUP_COPY_DIR", str(folders["copies"]))
    monkeypatch.setitem(app.config, "CRM_FILES_ROOT", str(folders["files"]))
    return folders
