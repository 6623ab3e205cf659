"""One sync run: read the sheet, guard, plan the three-way merge, then write in a fixed order.

Order (each step safe to interrupt; the next run converges):
1. read the worksheet (one read) and stop on a guard before anything is written;
2. commit the app changes (updates, creations, archives, conflicts) in one transaction;
3. write the sheet (structural change, then values);
4. store the new agreed snapshot (base) per row and the run log.
Interrupted after 2, the next run finds app == sheet for what came from the sheet, app
changes still to push, and new rows matched back to the records they created by the
duplicate rule (never created twice). Interrupted after 3, both sides already agree.

The run's result (``SyncRun.message``, ``SyncTarget.last_message``) is read later by anyone,
and a scheduled run has no reader's language: it is stored as a ``messages.Message``
(``message_text.to_column``) and rendered in the reader's language.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, delete, insert, select, update

from app.clock import utc_now
from app.extensions import db
from app.models.base import acting_user_id
from app.models.org import CrmUser
from app.models.sync import SyncConflict, SyncRow, SyncRun, SyncTarget
from app.security.data_scope import scope_cache
from app.services import audit, message_text, messages
from app.services.errors import RuleViolation
from sync.backends import SheetChanged, SheetUnavailable
from sync.fields import mask_phones_in
from sync.plan import GuardStop, Plan, agreed_rows, build_plan, describe

STALE_CLAIM = timedelta(minutes=15)
#: What a run's counts (``sync.plan``: ``Plan.counts``) say, in its result and on the screens.
COUNT_LABELS = {
    "app_created": _l("Created in the CRM"), "app_updated": _l("Updated in the CRM"),
    "app_archived": _l("Archived in the CRM"), "app_rejected": _l("Refused by the CRM"),
    "sheet_added": _l("Added to the sheet"), "sheet_updated": _l("Updated in the sheet"),
    "sheet_linked": _l("Sheet rows linked"), "sheet_rekeyed": _l("Sheet rows re-keyed"),
    "sheet_restored": _l("Put back in the sheet"), "sheet_removed": _l("Deleted in the sheet"),
    "sheet_rejected": _l("Sheet rows refused"), "conflicts": _l("Conflicts"),
}


def run(target: SyncTarget, backend: Any, trigger: str = "manual", dry_run: bool = False,
        started_by: Any = None) -> SyncRun:
    """Run (or preview) one sync; never raises for sheet or guard problems: the run log says."""
    user = db.session.get(CrmUser, target.run_as_id)
    log = SyncRun(target_id=target.id, trigger=trigger, dry_run=dry_run, user_id=getattr(started_by, "id", None))
    db.session.add(log)
    if not dry_run and not _claim(target.id):
        log.status, log.finished_at = "stopped", utc_now()
        log.message = message_text.to_column(
            messages.stored(_l("Another run of this target is in progress; this one did nothing.")), 4000)
        db.session.commit()
        return log
    db.session.commit()
    token = acting_user_id.set(user.id)
    try:
        if not user.is_active:  # deactivated, or expired before the nightly job deactivates it
            raise GuardStop(_l("The run-as user is deactivated; pick another user for this target."))
        with scope_cache(), audit.audit_context(source="sync", reason=_l("sync #%(run)d %(target)s",
                                                                      run=log.id, target=target.name)):
            plan = build_plan(target, backend, user)
            if not dry_run:
                _apply_app(target, plan, user)
                backend.write(plan.write, plan.data.token)
                if not target.mapping:  # freeze the matched headers: a later rename stops the run
                    target.mapping = plan.mapping
                _store_bases(target, plan)
        status, message = "done", summary(plan.counts)
        if dry_run:
            message = messages.concat([message, ". ", describe(plan)])
    except GuardStop as exc:  # the exceptions' own messages: ids kept when raised with a lazy string
        db.session.rollback()
        status, message, plan = "stopped", messages.stored(exc), None
    except (SheetChanged, SheetUnavailable) as exc:
        db.session.rollback()
        status, message, plan = "failed", messages.stored(exc), None
    except RuleViolation as exc:  # a rule the plan's check missed: nothing written, the run log says which
        db.session.rollback()
        status, message, plan = "failed", str(exc), None
    except BaseException:  # a crash: let the next run (which converges) take the target at once
        db.session.rollback()
        if not dry_run:
            _release(target.id)
        raise
    finally:
        acting_user_id.reset(token)
    return _finish(target.id, log.id, status, message, plan, backend, dry_run)


def _claim(target_id: int) -> bool:
    """Take the target for one run (a conditional UPDATE: two starters cannot both win).

    A claim older than STALE_CLAIM (a process killed mid-run) can be taken over.
    """
    table = SyncTarget.__table__
    stamp = utc_now()
    taken = db.session.execute(update(table).where(
        table.c.id == target_id,
        (table.c.running_since.is_(None)) | (table.c.running_since < stamp - STALE_CLAIM),
    ).values(running_since=stamp)).rowcount
    return taken == 1


def _release(target_id: int) -> None:
    table = SyncTarget.__table__
    db.session.execute(update(table).where(table.c.id == target_id).values(running_since=None))
    db.session.commit()


def _finish(target_id: int, log_id: int, status: str, message: messages.Message, plan: Plan | None,
            backend: Any, dry_run: bool) -> SyncRun:
    log, target = db.session.get(SyncRun, log_id), db.session.get(SyncTarget, target_id)
    message = message_text.map_text(message, mask_phones_in)  # run logs, previews and the target's status are screens
    log.status, log.message, log.finished_at = status, message_text.to_column(message, 4000), utc_now()
    log.counts = dict(plan.counts) if plan else None
    log.api_calls = dict(getattr(backend, "calls", {}))
    if not dry_run:
        target.last_run_at, target.last_status = utc_now(), status
        target.last_message = message_text.to_column(message, 2000)
        target.running_since = None
        if getattr(backend, "sheet_id", None) is not None:  # Google's first worksheet has id 0
            target.sheet_id = backend.sheet_id
    db.session.commit()
    return log


def summary(counts: Counter) -> messages.Message:
    """A run's counts as its result: "Created in the CRM: 1, Added to the sheet: 2" in the
    reader's language (``COUNT_LABELS``; a count without a label by its key); "no changes"
    when all are zero."""
    parts: list[messages.Message] = []
    for name in sorted(counts):
        if counts[name]:
            label = messages.stored(COUNT_LABELS[name]) if name in COUNT_LABELS else name
            parts += [", " if parts else "", label, f": {counts[name]}"]
    return messages.concat(parts) if parts else messages.stored(_l("no changes"))


def _apply_app(target: SyncTarget, plan: Plan, user: Any) -> None:
    """Step 2: every app change in one transaction (audited with the sync as source)."""
    kind = plan.kind
    for record_id, changes in plan.updates.items():
        kind.save(db.session.get(kind.model, record_id), changes, user)
    created = [(index, kind.save(None, values, user), values) for index, values in plan.creates]
    for record_id in plan.archives:
        try:
            kind.archive(db.session.get(kind.model, record_id))
        except RuleViolation:
            continue
    _store_conflicts(target, plan)
    db.session.flush()
    for index, record, values in created:
        plan.write.cells[(index, plan.key_col)] = record.code
        plan.bases[record.id] = (record.code, values)
    for index, values in plan.twins:  # the record the row repeats exists now: say which, as later runs will
        problem = kind.duplicate_problem(values, user)
        if problem:
            plan.write.cells[(index, plan.status_col)] = mask_phones_in(problem)
    db.session.commit()


def _store_conflicts(target: SyncTarget, plan: Plan) -> None:
    # Keyed by the row too: a merged-away record's row and the survivor's own row may both
    # hold an edit of the same field, and neither may overwrite the other's.
    open_ = {(c.record_id, c.field, c.key): c for c in db.session.scalars(
        select(SyncConflict).where(SyncConflict.target_id == target.id, SyncConflict.resolved_at.is_(None)))}
    for record_id, key, conflict in plan.conflicts:
        stored = open_.get((record_id, conflict.field, key))
        if stored is None:
            db.session.add(SyncConflict(target_id=target.id, record_id=record_id, key=key, field=conflict.field,
                                        base=conflict.base, app_value=conflict.app, sheet_value=conflict.sheet))
        else:
            stored.app_value, stored.sheet_value = conflict.app, conflict.sheet


def _store_bases(target: SyncTarget, plan: Plan) -> None:
    """Step 4: the new agreement, only after the sheet holds it; unchanged rows are not rewritten."""
    table = SyncRow.__table__
    existing, stamp = agreed_rows(target.id), utc_now()
    inserts, updates = [], []
    for record_id, (key, agreed) in plan.bases.items():
        row = existing.get(record_id)
        if row is None:
            inserts.append({"target_id": target.id, "record_id": record_id, "key": key, "base": agreed,
                            "synced_at": stamp})
        elif row.key != key or row.base != agreed:
            updates.append({"row_id": row.id, "new_key": key, "new_base": agreed, "stamp": stamp})
    if inserts:
        db.session.execute(insert(table), inserts)
    if updates:
        db.session.execute(update(table).where(table.c.id == bindparam("row_id")).values(
            key=bindparam("new_key"), base=bindparam("new_base"), synced_at=bindparam("stamp")), updates)
    gone = [record_id for record_id in plan.drop_bases if record_id in existing]
    if gone:
        db.session.execute(delete(table).where(table.c.target_id == target.id, table.c.record_id.in_(gone)))
    db.session.commit()
