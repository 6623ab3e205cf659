"""Erased values in the files imports and exports left behind (issue 19): the uploaded
workbooks, the error reports and the export files of ``TransferJob`` rows.

A row (a CSV line, a worksheet row) is rewritten when it holds a distinctive value (a
phone, an e-mail) or one of the erased records' codes: there every erased value is
replaced by the marker. Other rows (another person who shares a name) stay as they are.
Files are rewritten atomically (a temporary file, then a rename) and only under the
instance folder or a files root.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.transfers import TransferJob
from app.services import files as crm_files
from app.services.audit import ERASED

SUFFIXES = (".xlsx", ".csv")


def _paths(job: TransferJob) -> Iterator[str]:
    for value in (job.stored_path, job.report_path):
        if value:
            yield value
    yield from _strings(job.options or {})


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str) and value.lower().endswith(SUFFIXES):
        yield value


def _allowed(path: Path) -> bool:
    bases = [Path(current_app.instance_path).resolve(), *crm_files.roots()]
    return any(path == base or path.is_relative_to(base) for base in bases)


def sweep_files(values: tuple[str, ...], marks: tuple[str, ...]) -> int:
    """Rewrite the transfer files holding erased values; returns the files changed.
    ``values``: every erased value (longest first); ``marks``: what identifies a row of the
    person (distinctive values and record codes)."""
    changed = 0
    seen: set[Path] = set()
    for job in db.session.scalars(select(TransferJob)):
        for raw in _paths(job):
            path = Path(raw).resolve()
            if path in seen or not path.is_file() or not _allowed(path):
                continue
            seen.add(path)
            if _rewrite(path, values, marks):
                changed += 1
    return changed


def _replace(text: str, values: Iterable[str]) -> str:
    for value in values:
        text = text.replace(value, ERASED)
    return text


def _rewrite(path: Path, values: tuple[str, ...], marks: tuple[str, ...]) -> bool:
    if path.suffix.lower() == ".csv":
        return _rewrite_csv(path, values, marks)
    return _rewrite_xlsx(path, values, marks)


def _rewrite_csv(path: Path, values: tuple[str, ...], marks: tuple[str, ...]) -> bool:
    raw = path.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    lines = text.splitlines(keepends=True)
    new = [_replace(line, values) if any(m in line for m in marks) else line for line in lines]
    if new == lines:
        return False
    _atomic(path, ("\ufeff" if bom else "") + "".join(new))
    return True


def _rewrite_xlsx(path: Path, values: tuple[str, ...], marks: tuple[str, ...]) -> bool:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path)
    except Exception:  # noqa: BLE001 - not a readable workbook: nothing to rewrite
        return False
    changed = False
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            texts = [c.value for c in row if isinstance(c.value, str)]
            if not any(m in t for t in texts for m in marks):
                continue
            for cell in row:
                if isinstance(cell.value, str) and any(v in cell.value for v in values):
                    cell.value, changed = _replace(cell.value, values), True
    if changed:
        handle, temp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
        os.close(handle)
        book.save(temp)
        os.replace(temp, path)
    return changed


def _atomic(path: Path, content: str) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
        out.write(content)
    os.replace(temp, path)
