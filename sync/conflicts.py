"""A person settles a conflict kept for review: the CRM's value or the sheet's wins.

The choice is applied to the record (audited, same rules as a form) and to the agreed
snapshot, so the next run carries it to the other side instead of asking again.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.clock import utc_now
from app.extensions import db
from app.models.sync import SyncConflict, SyncRow
from app.security import masking
from app.security.data_scope import can_see
from app.services import audit
from app.services.errors import RuleForbidden, RuleViolation
from sync import records

KEEP_APP, KEEP_SHEET = "app", "sheet"


def resolve(conflict: SyncConflict, choice: str, user: Any) -> None:
    if conflict.resolved_at is not None:
        raise RuleViolation(str(_l("This conflict was already settled.")))
    kind = records.records_for(conflict.target.model)
    record = db.session.get(kind.model, conflict.record_id)
    if record is None or not can_see(user, record):
        raise RuleForbidden(str(_l("Record not found.")))
    row = db.session.scalar(select(SyncRow).where(SyncRow.target_id == conflict.target_id,
                                                  SyncRow.record_id == conflict.record_id))
    if conflict.field != "_row":
        if choice == KEEP_SHEET:
            kind.save(record, {conflict.field: conflict.sheet_value or ""}, user)
        if row is not None:  # the losing side now differs from the agreement: the next run carries the winner
            base = dict(row.base)
            base[conflict.field] = conflict.sheet_value if choice == KEEP_APP else conflict.app_value
            row.base = base
    elif choice == KEEP_SHEET:  # the row was deleted on purpose: the record is archived
        if not kind.can_archive:
            raise RuleViolation(str(_l("This kind of record is never deleted by a sync: keep the CRM value.")))
        kind.archive(record)
        if row is not None:
            db.session.delete(row)
    elif row is not None:  # keep the customer: untracked, the next run puts the row back
        db.session.delete(row)
    conflict.resolved_at, conflict.resolved_by_id, conflict.resolution = utc_now(), user.id, choice
    shown = masking.mask_phone if conflict.field == "contact_phone" else (lambda v: v)
    audit.record("sync_conflict", record, {"target": conflict.target_id, "field": conflict.field, "kept": choice,
                                           "app": shown(conflict.app_value), "sheet": shown(conflict.sheet_value)})
