"""Changes held for approval on an erased record (issue 19): a pending request would write
the person's data back when approved later (a proposed new phone, a new name).

The erasure withdraws every pending approval request on the erased records (the customer,
its contact, the lead: the rows the erasure clears) as the approvals module withdraws one
(status ``withdrawn``, a "withdrawn" step in its history by the erasing admin with the
reason, the kind's ``settle`` undoing a waiting state) and tells the requester and the
approvers it waited for, as every other outcome of a request is told
(``approvals.withdraw_held``; the notice names the record as erased, never the erased
values). The proposed and earlier values under the erased fields (``change``/``before``
of every request on those records, decided or not) are returned so the erasure sweeps
them like the record's own values, and replaced in the requests.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models.approvals import ApprovalRequest
from app.services import approvals
from app.services.audit import ERASED
from app.services.erasure.tied import type_names


def _requests(row: Any) -> list[ApprovalRequest]:
    return list(db.session.scalars(select(ApprovalRequest).where(
        ApprovalRequest.record_type.in_(sorted(type_names(type(row)))), ApprovalRequest.record_id == row.id)))


def _held_values(text: str | None, keys: frozenset[str]) -> tuple[str | None, list[str]]:
    """(the JSON text with values under ``keys`` replaced, the replaced values)."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return text, []
    if not isinstance(data, dict):
        return text, []
    values = [v for k, v in data.items() if k in keys and isinstance(v, str) and v not in ("", ERASED)]
    if not values:
        return text, []
    data = {k: (ERASED if k in keys and v not in (None, "") else v) for k, v in data.items()}
    return json.dumps(data, default=str, ensure_ascii=False, sort_keys=True), values


def withdraw(rows: list[tuple[Any, frozenset[str]]], user: Any) -> tuple[int, list[str]]:
    """Withdraw the pending requests on the erased rows and clear the values they hold
    under each row's keys (``rows``: (row, the erased fields' names and the personal
    fields of its type, as a change map names them)). Returns (requests withdrawn, values
    found: to be swept everywhere). Flushes; the caller commits."""
    withdrawn, values = 0, []
    for row, keys in rows:
        w, found = _withdraw_on(row, keys, user)
        withdrawn, values = withdrawn + w, values + found
    db.session.flush()
    return withdrawn, values


def _withdraw_on(row: Any, keys: frozenset[str], user: Any) -> tuple[int, list[str]]:
    withdrawn, values = 0, []
    for request in _requests(row):
        if request.status == approvals.PENDING:
            approvals.withdraw_held(request, user, row)
            withdrawn += 1
        for name in ("change", "before"):
            text, found = _held_values(getattr(request, name), keys)
            if found:
                setattr(request, name, text)
                values += found
    return withdrawn, values
