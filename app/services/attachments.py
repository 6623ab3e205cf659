"""File attachments on records (issue 16): a ticket's screenshot now, a contract's scan later.
Generic over record types: an ``Attachment`` row names its record by type name (the
declared ``RecordType.name``, else the table name) and id.

Rules:

- size: at most the admin setting ``attachment_max_mb`` (default 5 MB); the request itself
  is bounded earlier by ``MAX_CONTENT_LENGTH`` (``CRM_MAX_UPLOAD_BYTES``, 20 MB: a 413 page);
- type: decided from the CONTENT (``filetype`` reads the magic bytes), never from the name
  or the browser's content type; each use says which kinds it accepts (``SCREENSHOT``:
  png, jpeg, gif, webp; ``DOCUMENT``: pdf; ``OFFICE``: docx, xlsx, doc, xls). An HTML page renamed ``.png`` is refused; a PNG
  named ``.exe`` is stored as the PNG it is, under a ``.png`` name;
- name: only the last part of what the browser sent (no folders), control and invisible
  characters dropped, at most 255 characters;
- storage: under the first files root (``files.roots``), ``attachments/<sha256[:2]>/<sha256>``
  (identical files stored once);
- download: only for a user who may see the record (its data scope: a problem report's
  reporter sees their ticket, so their screenshot), as an attachment with the stored content type and
  ``X-Content-Type-Options: nosniff`` — never rendered inline.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Any

import filetype
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models.service import Attachment
from app.record_types import REGISTRY, for_model
from app.security import data_scope
from app.security.request_bounds import db_int
from app.services import audit, files, records, settings
from app.services.errors import NotFound, RuleViolation

#: kind -> (content type, file extension): what the content sniffing may answer.
KINDS = {
    "png": ("image/png", "png"), "jpg": ("image/jpeg", "jpg"), "gif": ("image/gif", "gif"),
    "webp": ("image/webp", "webp"), "pdf": ("application/pdf", "pdf"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "doc": ("application/msword", "doc"), "xls": ("application/vnd.ms-excel", "xls"),
}
SCREENSHOT = ("png", "jpg", "gif", "webp")
DOCUMENT = ("pdf",)
#: Word and Excel files (a contract's scan or its annexes); served as downloads like the rest.
OFFICE = ("docx", "xlsx", "doc", "xls")
FOLDER = "attachments"
NAME_LIMIT = 255
#: Extensions that are the same kind (kept as typed).
_SAME = {"jpg": {"jpg", "jpeg", "jpe"}}

MAX_MB = settings.declare(settings.Setting(
    "attachment_max_mb", settings.INT, default=5, label=_l("Largest attachment (MB)"),
    help=_l("Largest file a user may attach (screenshots, documents). Requests are also limited by "
            "CRM_MAX_UPLOAD_BYTES."), low=1, high=100, section=_l("Service desk")))

def type_name(record: Any) -> str:
    """The name an attachment stores for ``record``'s type: the declared record type's name,
    else the table name."""
    declared = for_model(type(record))
    return declared.name if declared is not None else type(record).__tablename__


def model_of(name: str) -> type | None:
    """The model a stored type name means (declared types, else any mapped table)."""
    if name in REGISTRY:
        return REGISTRY[name].model
    for mapper in Attachment.registry.mappers:  # every model shares FAB's declarative base
        if getattr(mapper.class_, "__tablename__", None) == name:
            return mapper.class_
    return None


def max_bytes() -> int:
    """The size limit in bytes: the setting, never above the request limit."""
    limit = int(settings.get(MAX_MB.key)) * 1024 * 1024
    request_limit = current_app.config.get("MAX_CONTENT_LENGTH")
    return min(limit, request_limit) if request_limit else limit


def clean_filename(raw: Any, extension: str) -> str:
    """The name to store: the last path part (``/`` and ``\\`` both), control, format and
    invisible characters dropped, spaces collapsed; its extension made the content's (a PNG
    named ``x.exe`` becomes ``x.png``); at most ``NAME_LIMIT`` characters."""
    text = str(raw or "").replace("\\", "/")
    text = PurePosixPath(text).name if text.strip("/") else ""
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] not in ("C",))
    text = " ".join(text.split()).strip(". ")
    stem, dot, suffix = text.rpartition(".")
    if not dot:
        stem, suffix = text, ""
    if suffix.casefold() not in _SAME.get(extension, {extension}):
        suffix = extension  # the content's kind decides (x.exe holding a PNG is x.png)
    stem = (stem or "attachment")[:NAME_LIMIT - len(suffix) - 1]
    return f"{stem}.{suffix}"


def _read(upload: Any, limit: int) -> bytes:
    stream = getattr(upload, "stream", upload)
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise RuleViolation({"file": str(_l("The file is larger than %(n)d MB.", n=limit // (1024 * 1024)))},
                            status=413)
    if not data:
        raise RuleViolation({"file": str(_l("The file is empty."))})
    return data


def _kind_of(data: bytes, kinds: tuple[str, ...]) -> str:
    guess = filetype.guess(data[:8192])
    kind = {"jpeg": "jpg"}.get(guess.extension, guess.extension) if guess is not None else None
    if kind not in kinds:
        allowed = ", ".join(KINDS[name][1].upper() for name in kinds)
        raise RuleViolation({"file": str(_l("This file is not one of: %(kinds)s (judged by its content, not its "
                                             "name).", kinds=allowed))}, status=415)
    return kind


def _write(data: bytes, digest: str) -> str:
    relative = f"{FOLDER}/{digest[:2]}/{digest}"
    target = files.roots()[0] / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{digest}.{os.getpid()}.part")
        temporary.write_bytes(data)
        os.replace(temporary, target)
    return relative


def store(record: Any, upload: Any, user: Any, *, kinds: tuple[str, ...]) -> Attachment:
    """Attach one uploaded file to ``record`` (a loaded, flushed record the caller checked).

    ``upload``: a werkzeug ``FileStorage`` (or anything with ``filename`` and a ``read``able
    ``stream``); ``kinds``: accepted kinds (``SCREENSHOT``, ``DOCUMENT`` or names of ``KINDS``).
    Refuses an empty file (422), one above ``max_bytes`` (413) and content of another kind
    (415), each as ``RuleViolation`` under ``file`` with a message. Writes the file under the
    files root (by SHA-256) and adds the row (audited). Flushes; the caller commits.
    """
    data = _read(upload, max_bytes())
    kind = _kind_of(data, tuple(kinds))
    digest = hashlib.sha256(data).hexdigest()
    item = Attachment(record_type=type_name(record), record_id=record.id,
                      filename=clean_filename(getattr(upload, "filename", None), KINDS[kind][1]),
                      content_type=KINDS[kind][0], size=len(data), sha256=digest, path=_write(data, digest),
                      uploaded_by_id=getattr(user, "id", None))
    db.session.add(item)
    db.session.flush()
    return item


def for_record(record: Any) -> list[Attachment]:
    """The attachments of ``record``, oldest first (the caller has checked the record)."""
    stmt = select(Attachment).where(Attachment.record_type == type_name(record),
                                    Attachment.record_id == record.id).order_by(Attachment.id)
    return list(db.session.scalars(stmt))


def may_see(user: Any, record: Any, name: str) -> bool:
    """Whether ``user`` may see ``record`` (its data scope)."""
    if not data_scope.has_scope(type(record)):
        return False  # fail closed: a type without a scope rule is nobody's to download
    return data_scope.can_see(user, record)


def for_download(pk: Any, user: Any) -> tuple[Attachment, Path]:
    """The attachment ``pk`` and its file, if ``user`` may see its record.

    ``NotFound`` for a missing attachment, a record out of the user's reach and a file that
    is gone alike (no oracle). The path is checked to lie under the files root."""
    number = db_int(pk)
    item = db.session.get(Attachment, number) if number is not None else None
    model = model_of(item.record_type) if item is not None else None
    record = db.session.get(model, item.record_id) if model is not None else None
    if record is None or not may_see(user, record, item.record_type):
        raise records.not_found()
    path = (files.roots()[0] / item.path).resolve()
    if not path.is_relative_to(files.roots()[0] / FOLDER) or not path.is_file():
        raise NotFound(str(_l("The file is no longer on the server.")))
    return item, path


audit.audited(Attachment)
