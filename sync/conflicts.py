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
from app.security.rights import user_may
from app.services import audit
from app.services.errors import RuleForbidden, RuleViolation
from sync import records

KEEP_APP, KEEP_SHEET = "app", "sheet"
#: Closed by a run: both sides agree now, or the deleted row is back (issue 21).
SETTLED = "agreed"


def resolve(conflict: SyncConflict, choice: str, user: Any) -> None:
    """Keep the CRM's or the sheet's value of an open conflict (``KEEP_APP`` / ``KEEP_SHEET``).

    Refused (``RuleViolation``) when already settled (by a person, or by a run that found both
    sides agreeing or the row back), and when the CRM's value changed since the run that
    recorded it: the next run brings the conflict up to date (or closes it), so a person never
    writes a stale value to either side. ``RuleForbidden`` for a record the user cannot see."""
    if conflict.resolved_at is not None:
        raise RuleViolation(str(_l("This conflict was already settled.")))
    kind = records.records_for(conflict.target.model)
    record = db.session.get(kind.model, conflict.record_id)
    if record is None or not can_see(user, record):
        raise RuleForbidden(str(_l("Record not found.")))
    if conflict.field != "_row" and _crm_value(conflict, kind, record) != (conflict.app_value or ""):
        raise RuleViolation(str(_l("The CRM value changed since the last sync run: run the sync again, "
                                   "then settle the conflict with the current values.")))
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
        kind.archive(record, user)
        if row is not None:
            db.session.delete(row)
    elif row is not None:  # keep the customer: untracked, the next run puts the row back
        db.session.delete(row)
    conflict.resolved_at, conflict.resolved_by_id, conflict.resolution = utc_now(), user.id, choice
    shown = masking.mask_phone if conflict.field == "contact_phone" else (lambda v: v)
    audit.record("sync_conflict", record, {"target": conflict.target_id, "field": conflict.field, "kept": choice,
                                           "app": shown(conflict.app_value), "sheet": shown(conflict.sheet_value)})


def _crm_value(conflict: SyncConflict, kind: Any, record: Any) -> str | None:
    """The record's value of the conflict's field as the run compared it (the run-as user's view:
    a masked phone stays masked); None when the field is no longer one the target syncs."""
    from sync.fields import FieldCodec

    if not any(f.name == conflict.field for f in kind.spec.fields):
        return None
    run_as = conflict.target.run_as
    codec = FieldCodec(kind.spec, [conflict.field], False,
                       user_may(run_as, "can_reveal_contact", "Customer") if run_as is not None else False,
                       kind.lookups)
    return codec.app_text(record, conflict.field)
