"""Erased values in the files the CRM keeps (issue 19): the uploads, error reports and
export files of ``TransferJob`` rows, the xlsx workbooks of sync targets under a files
root, and the xlsx attachments of rows tied to the erased records (``attachments``).

Every such file holding an erased value is either rewritten in its own format and
encoding or, when that cannot be done safely, DELETED — never left as it is:

- text (``.csv``, ``.tsv``, ``.txt``): decoded as the importer decodes it (UTF-8 with or
  without BOM, UTF-16 with BOM, else GB18030), rewritten in that same encoding;
- ``.xlsx`` / ``.xlsm``: rewritten with openpyxl (macros kept in ``.xlsm``);
- anything else (``.ods``, ``.xls``, ``.pdf``, a text in another encoding, a workbook
  openpyxl cannot read): its bytes are searched (UTF-8, GB18030, UTF-16, and an ``.ods``'s
  or ``.xlsx``'s XML inside the zip) and the file is removed when one matches. An import
  upload is not needed once its job ran; an export is made again on demand. The run's
  summary counts "files removed".

In a sync workbook or a transfer file, a row (a CSV line, a worksheet row) is rewritten
when it holds a distinctive value in any format (``matching``) or one of the erased
records' codes: there every erased value is replaced by the marker. Other rows (another
person who shares a name) stay. Files are rewritten atomically (a temporary file, then a
rename) and only under the instance folder or a files root.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.models.sync import SyncTarget
from app.models.transfers import TransferJob
from app.services import bulk
from app.services import files as crm_files
from app.services.erasure.matching import Matcher

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
BOOK_SUFFIXES = (".xlsx", ".xlsm")
#: A path-like string in a job's options with one of these endings is a file it left.
SUFFIXES = (*TEXT_SUFFIXES, *BOOK_SUFFIXES, ".ods", ".xls", ".pdf", ".json", ".zip")
#: Outcomes of one file.
KEPT, REWRITTEN, REMOVED = "kept", "rewritten", "removed"


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


def _candidates() -> Iterator[str]:
    for job in db.session.scalars(select(TransferJob)):
        yield from _paths(job)
    for target in db.session.scalars(select(SyncTarget).where(SyncTarget.backend == "xlsx")):
        if target.location:
            yield target.location


def sweep_files(matcher: Matcher, marks: tuple[str, ...]) -> tuple[int, int]:
    """Rewrite or remove the stored files holding erased values; returns (files
    rewritten, files removed). ``marks``: the erased records' codes (a row holding one is
    the person's row)."""
    counts = {REWRITTEN: 0, REMOVED: 0, KEPT: 0}
    seen: set[Path] = set()
    for raw in _candidates():
        path = Path(raw)
        if not path.is_absolute():
            path = crm_files.roots()[0] / path
        path = path.resolve()
        if path in seen or not path.is_file() or not _allowed(path):
            continue
        seen.add(path)
        counts[_clean(path, matcher, marks)] += 1
    return counts[REWRITTEN], counts[REMOVED]


def _clean(path: Path, matcher: Matcher, marks: tuple[str, ...]) -> str:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        outcome = _rewrite_text(path, matcher, marks)
    elif suffix in BOOK_SUFFIXES:
        outcome = _rewrite_book(path, matcher, marks)
    else:
        outcome = None
    if outcome is not None:
        return outcome
    if _holds(path.read_bytes(), matcher, marks):
        path.unlink(missing_ok=True)
        return REMOVED
    return KEPT


def _row_is_theirs(texts: list[str], matcher: Matcher, marks: tuple[str, ...]) -> bool:
    return any(matcher.distinct(t) or any(m in t for m in marks) for t in texts)


# --- text -------------------------------------------------------------------------------


def decode(raw: bytes) -> tuple[str, str] | None:
    """(text, encoding) as the importer reads a text file (``reading.decode_text``), the
    BOM kept in the encoding name; None when it is none of those (the caller removes it)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        encodings = ("utf-8-sig",)
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "gb18030" and any("\ue000" <= ch <= "\uf8ff" for ch in text):
            return None  # Big5 or another legacy encoding decoded as garbage
        return text, encoding
    return None


def _rewrite_text(path: Path, matcher: Matcher, marks: tuple[str, ...]) -> str | None:
    decoded = decode(path.read_bytes())
    if decoded is None:
        return None
    text, encoding = decoded
    lines = text.splitlines(keepends=True)
    new = [matcher.replace(line) if _row_is_theirs([line], matcher, marks) else line for line in lines]
    if new == lines:
        return None if matcher.distinct(text) else KEPT
    content = "".join(new)
    try:
        data = content.encode(encoding)
    except UnicodeEncodeError:
        return None
    if matcher.distinct(content):
        return None
    _atomic(path, data)
    return REWRITTEN


# --- workbooks --------------------------------------------------------------------------


def _rewrite_book(path: Path, matcher: Matcher, marks: tuple[str, ...]) -> str | None:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, keep_vba=path.suffix.lower() == ".xlsm")
    except Exception:  # noqa: BLE001 - not a readable workbook: searched as bytes, removed if it matches
        return None
    if not _replace_in_book(book, matcher, marks):
        return KEPT
    buffer = io.BytesIO()
    book.save(buffer)
    _atomic(path, buffer.getvalue())
    return REWRITTEN


# --- attachments ----------------------------------------------------------------------


def sweep_attachments(ids: set[Any], matcher: Matcher) -> int:
    """Rewrite the xlsx attachments among ``ids`` (attachment rows tied to the erased
    records: every value, names too, is the person's there). Attachments are stored by
    SHA-256 (``attachments``): the new content gets its own path, the row its new path,
    digest and size, and the old file goes after the commit when no other row uses it
    (``remove_replaced``). Other kinds (images,
    PDF, Word) are left as they are. Returns the attachments rewritten."""
    from sqlalchemy import update

    from app.models.service import Attachment
    from app.services import attachments

    xlsx = attachments.KINDS["xlsx"][0]
    changed = 0
    for chunk in bulk.id_chunks(ids):
        for item in db.session.execute(select(Attachment.id, Attachment.path).where(
                Attachment.id.in_(chunk), Attachment.content_type == xlsx)).all():
            root = crm_files.roots()[0]
            old = (root / item.path).resolve()
            if not old.is_relative_to(root / attachments.FOLDER) or not old.is_file():
                continue
            data = _rewritten_book(old.read_bytes(), matcher)
            if data is None:
                continue
            digest = hashlib.sha256(data).hexdigest()
            relative = f"{attachments.FOLDER}/{digest[:2]}/{digest}"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            _atomic(root / relative, data)
            db.session.execute(update(Attachment).where(Attachment.id == item.id).values(
                path=relative, sha256=digest, size=len(data)).execution_options(synchronize_session=False))
            db.session.info.setdefault(REPLACED, set()).add(item.path)  # removed after the commit
            changed += 1
    return changed


#: ``db.session.info`` key: attachment paths ``sweep_attachments`` replaced in this
#: transaction; their files go once it committed (``remove_replaced``). Removed before,
#: a rollback (a later step failing, the worker dying) would leave rows on deleted files.
REPLACED = "erasure_replaced_attachments"


def remove_replaced() -> int:
    """After the erasure committed: remove the attachment files it replaced that no row
    uses any more (attachments are shared by digest). Returns the files removed."""
    from app.models.service import Attachment
    from app.services import attachments

    root = crm_files.roots()[0]
    removed = 0
    for path in sorted(db.session.info.pop(REPLACED, set())):
        old = (root / path).resolve()
        if not old.is_relative_to(root / attachments.FOLDER) or db.session.scalar(
                select(func.count()).select_from(Attachment).where(Attachment.path == path)):
            continue
        old.unlink(missing_ok=True)
        removed += 1
    return removed


def _rewritten_book(raw: bytes, matcher: Matcher) -> bytes | None:
    """The workbook with every match replaced, or None when nothing matched / unreadable."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(raw))
    except Exception:  # noqa: BLE001 - not a readable workbook: left as it is
        return None
    if not _replace_in_book(book, matcher):
        return None
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _replace_in_book(book: Any, matcher: Matcher, marks: tuple[str, ...] | None = None) -> bool:
    """Replace every match in the workbook's text cells, in the rows holding the person's data
    (``_row_is_theirs`` with ``marks``; None: every row). Whether anything changed."""
    changed = False
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            if marks is not None and not _row_is_theirs([c.value for c in row if isinstance(c.value, str)],
                                                        matcher, marks):
                continue
            for cell in row:
                if isinstance(cell.value, str) and matcher.found(cell.value):
                    cell.value, changed = matcher.replace(cell.value), True
    return changed


# --- bytes ------------------------------------------------------------------------------


def _holds(raw: bytes, matcher: Matcher, marks: tuple[str, ...]) -> bool:
    """The file's bytes hold a distinctive value or a record code (as UTF-8, GB18030 or
    UTF-16 text, or in the XML members of a zip: xlsx, ods); an unreadable zip counts as
    holding one."""
    if zipfile.is_zipfile(io.BytesIO(raw)):
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                for name in archive.namelist():
                    if name.endswith((".xml", ".rels")):
                        text = archive.read(name).decode("utf-8", "replace")
                        if _row_is_theirs([text], matcher, marks):
                            return True
        except (zipfile.BadZipFile, OSError, RuntimeError):
            return True  # unreadable: it may hold anything
        return False
    for encoding in ("utf-8", "gb18030", "utf-16-le", "utf-16-be"):
        if _row_is_theirs([raw.decode(encoding, "ignore")], matcher, marks):
            return True
    return False


def _atomic(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    try:
        os.chmod(temp, path.stat().st_mode & 0o777)
    except OSError:
        pass
    os.replace(temp, path)
