"""Workbooks in the manual's template shape (附录1) and a helper that runs an import job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from app.extensions import appbuilder, db
from app.services.importing import columns, jobs, writer

#: The manual's appendix 1 headers, exactly.
MANUAL_HEADERS = ["客户编号", "客户名称", "所属行业", "联系人姓名", "联系方式", "客户地址", "客户等级", "信息来源", "备注"]


def write_xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
            for cell in sheet[sheet.max_row]:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"  # a user typed text that looks like a formula
    workbook.save(path)
    return path


@pytest.fixture(autouse=True)
def writer_may_fork(monkeypatch: Any) -> None:
    """Imports asked to fork here do, whatever idle threads earlier tests left in this
    process (a job pool, a test server): ``test_writer`` checks the real rule apart."""
    monkeypatch.setattr(writer, "_may_fork", lambda: hasattr(os, "fork"))


@pytest.fixture
def run_job(app: Any) -> Any:
    """``run_job(username, path, commit=..., **job fields)`` -> the finished TransferJob (detached copy)."""

    def run(username: str, path: Path, commit: bool = True, model: str = "customer",
            mapping: dict | None = None, **fields: Any) -> Any:
        with app.app_context():
            user = appbuilder.sm.find_user(username=username)
            job = jobs.create_job(user, model, path.name, path.read_bytes(), **fields)
            table, proposed = jobs.propose_mapping(job)
            job.mapping = mapping or proposed
            db.session.commit()
            jobs.start(job, commit=False)
            if commit:
                jobs.start(db.session.get(type(job), job.id), commit=True)
            job = db.session.get(type(job), job.id)
            db.session.expunge(job)
            db.session.remove()
            return job

    return run


def auto_mapping(headers: list[str]) -> dict[str, str]:
    return columns.auto_map(columns.CUSTOMER, headers)


def refused_lines(overlap: str, rows: int) -> Any:
    """The rejected lines of a ``rows``-row file in chunks of 2 when something changes with
    chunk 1's commit: every line from chunk 2 on, in turn; with the writer, the chunks
    checked while chunk 1 may still be unstored (``writer.DEPTH`` of them) may pass, every
    later one may not."""
    from app.services.importing.writer import DEPTH

    lines = list(range(4, rows + 2))  # chunk 2 on (chunk 1 is lines 2-3)
    return [lines] if overlap == "0" else [lines[2 * skipped:] for skipped in range(DEPTH + 1)]
