"""Downloads of lists as CSV or xlsx: scoped and masked by the caller, formula-safe here.

Rows stream: CSV goes out as it is produced; xlsx rows go into openpyxl's write-only
sheet (kept in a temporary file, not in memory) and the finished file is sent in
chunks and deleted. Large exports are written the same way by a background job.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import Response, stream_with_context
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from app import clock
from app.extensions import db
from app.security import step_up
from app.security.rights import user_may
from app.services.errors import RuleForbidden

FORMATS = {"csv": "text/csv; charset=utf-8", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CHUNK = 64 * 1024
UNMASKED_EXPORT = step_up.declare("export.unmasked", _l("Export customers with full phone numbers"),
                                  _l("Customers list, export with full numbers"))


def authorise(user: Any, view: str, unmasked: frozenset[str] = frozenset()) -> None:
    """The export use case's check, before a single row is read (screens, jobs, schedules).

    ``view`` is the list's permission view (e.g. ``Customer``): the user needs its
    ``can_export``. Full phone numbers (``unmasked``) also need ``can_reveal_contact`` and
    a fresh step-up (DESIGN "Sensitive actions": unmasked PII export). Raises
    ``RuleForbidden`` or ``StepUpRequired``.
    """
    if not user_may(user, "can_export", view):
        raise RuleForbidden(str(_l("You may not export this list.")))
    if unmasked:
        if not user_may(user, "can_reveal_contact", "Customer"):
            raise RuleForbidden(str(_l("You may not export full phone numbers.")))
        step_up.demand(UNMASKED_EXPORT, user)


def custom_columns(model: type, unmasked: Iterable[str] = (), lang: str | None = None,
                   skip: Iterable[str] = ()) -> tuple[list[str], Callable[[Any], list[str]]]:
    """The export columns of ``model``'s active custom fields (issue 18): their headers (label
    in ``lang``, default the current language) and a function giving one record's cells
    (``custom_fields.as_text``: choice labels, 是/否 or Yes/No, local time, user names).

    A masked field is exported as ``custom_fields.masked_text`` unless its name (``cf_<key>``)
    is in ``unmasked`` — the same rule as the contact phone: ``authorise`` lets a name in
    ``unmasked`` through only with ``can_reveal_contact`` and a fresh step-up. ``skip``: names
    the list already shows. Definitions are in memory and people are read once here, so no
    row asks a query. A model without custom fields gives ``([], lambda item: [])``."""
    from sqlalchemy import select

    from app.models.org import CrmUser
    from app.services import custom_fields

    record_type = custom_fields.record_type_of(model)
    skipped, revealed = set(skip), set(unmasked)
    fields = [f for f in custom_fields.fields_of(record_type or "", active=True) if f.name not in skipped]
    if not fields:
        return [], lambda item: []
    lang = lang or str(get_locale() or "en")
    people = dict(db.session.execute(select(CrmUser.id, CrmUser.username)).all()) \
        if any(f.kind == custom_fields.USER for f in fields) else {}

    def cells(item: Any) -> list[str]:
        values = getattr(item, "custom", None) or {}
        row = []
        for field in fields:
            value = values.get(field.key)
            if field.masked and field.name not in revealed:
                row.append(custom_fields.masked_text(field, value))
            elif field.kind == custom_fields.USER:
                row.append(people.get(value, "") if value is not None else "")
            else:
                row.append(custom_fields.as_text(field, value, lang))
        return row

    return [field.label(lang) for field in fields], cells


def masked_custom_names(model: type) -> frozenset[str]:
    """``cf_<key>`` of ``model``'s active masked custom fields: what an export "with full
    numbers" (``?unmasked=1``) also unmasks, under ``authorise``'s reveal check."""
    from app.services import custom_fields

    record_type = custom_fields.record_type_of(model)
    return frozenset(f.name for f in custom_fields.fields_of(record_type or "", active=True) if f.masked)


def record(model: str, fmt: str, rows: int, unmasked: Iterable[str] = (), user: Any = None,
           job_id: int | None = None) -> None:
    """Audit one finished export (who, which list, how many rows, which columns unmasked)."""
    from app.services import audit

    detail: dict[str, Any] = {"model": model, "format": fmt, "rows": rows, "unmasked": sorted(unmasked)}
    if job_id is not None:
        detail["job"] = job_id
    audit.record("export", None, detail, user=user)


def workbook_text(value: Any) -> Any:
    """Text a workbook can hold: control characters (which would abort the file) dropped."""
    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def looks_like_formula(value: Any) -> bool:
    """Text a spreadsheet would run as a formula if written as typed."""
    return isinstance(value, str) and value.startswith(_FORMULA_START)


#: What a workbook cell holds as it is.
_CELL_TYPES = (str, int, float, Decimal, date, datetime, time)


def neutralise(value: Any) -> Any:
    """For downloads: prefix formula-looking text with an apostrophe, so it is shown, not run;
    an aware date-time becomes the CRM zone's wall time (a cell holds no zone, and openpyxl
    refuses aware values); anything else a cell cannot hold (a translated label, an enum)
    becomes its text, as a CSV would write it (openpyxl refused a ticket's lazy status label:
    the ticket list's xlsx download was a 500)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return clock.local_naive(value)
    if value is not None and not isinstance(value, _CELL_TYPES):
        value = str(value)
    value = workbook_text(value)
    return "'" + value if looks_like_formula(value) else value


def _csv_chunks(header: list[str], rows: Iterable[list[Any]], rows_per_chunk: int = 500) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # BOM so that Excel opens Chinese text as UTF-8
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow([neutralise(v) for v in row])
        if count % rows_per_chunk == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def write_file(path: str | Path, fmt: str, header: list[str], rows: Iterable[list[Any]],
               progress: Callable[[int], None] | None = None) -> int:
    """Write an export to ``path`` row by row; returns the number of rows."""
    counted = _counting(rows, progress)
    if fmt == "csv":
        with open(path, "wb") as handle:
            for chunk in _csv_chunks(header, counted):
                handle.write(chunk)
    else:
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("export")
        sheet.append(header)
        for row in counted:
            sheet.append([neutralise(v) for v in row])
        workbook.save(path)
    return counted.total


class _counting:
    """Iterate rows, counting them and reporting every 1,000."""

    def __init__(self, rows: Iterable[list[Any]], progress: Callable[[int], None] | None) -> None:
        self.rows, self.progress, self.total = rows, progress, 0

    def __iter__(self) -> Iterator[list[Any]]:
        for row in self.rows:
            self.total += 1
            if self.progress and self.total % 1000 == 0:
                self.progress(self.total)
            yield row


def send_file_chunks(path: str | Path, fmt: str, name: str, delete: bool = True) -> Response:
    """Send a finished file in chunks (never read whole into memory); delete it after."""

    def chunks() -> Iterator[bytes]:
        try:
            with open(path, "rb") as handle:
                while block := handle.read(_CHUNK):
                    yield block
        finally:
            if delete:
                os.unlink(path)

    return Response(chunks(), mimetype=FORMATS[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}.{fmt}"',
        "Content-Length": str(os.path.getsize(path)),
    })


def _closing(chunks: Iterator[bytes], session: Any) -> Iterator[bytes]:
    """``chunks``, then ``session`` closed: the rows stream through the request's session after
    the request's own teardown, and the context a stream runs in is a new one whose teardown
    removes another session, so without this the transaction (PostgreSQL: its locks and a
    pooled connection) stayed open until garbage collection."""
    try:
        yield from chunks
    finally:
        session.close()


def response(header: list[str], rows: Iterable[list[Any]], fmt: str, name: str) -> Response:
    """Stream a download: CSV as produced; xlsx through a temporary file."""
    if fmt == "csv":
        return Response(stream_with_context(_closing(_csv_chunks(header, rows), db.session())),
                        mimetype=FORMATS[fmt], headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})
    handle, path = tempfile.mkstemp(suffix=".xlsx", prefix="crm-export-")
    os.close(handle)
    write_file(path, fmt, header, rows)
    return send_file_chunks(path, fmt, name)
