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
from app.services import audit, bulk, message_text, messages, notify_hooks
from app.services.errors import RuleViolation
from sync.backends import SheetChanged, SheetUnavailable
from sync.conflicts import SETTLED
from sync.fields import mask_phones_in
from sync.plan import PENDING, GuardStop, Plan, agreed_rows, build_plan, copy_message, describe, fingerprint

#: What the screens and the dashboards show for a run's stored status.
STATUS_LABELS = {"running": _l("Running"), "done": _l("Done"), "stopped": _l("Stopped"), "failed": _l("Failed")}

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
        reason = _l("sync #%(run)d %(target)s", run=log.id, target=target.name)
        with bulk.no_cyclic_gc(), scope_cache(), audit.audit_context(source="sync", reason=reason):
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
    except BaseException as exc:  # a crash: the log says so, and the next run (which converges) may start at once
        db.session.rollback()
        _record_crash(target.id, log.id, exc, backend, dry_run)
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


def _record_crash(target_id: int, log_id: int, exc: BaseException, backend: Any, dry_run: bool) -> None:
    """An exception nobody foresaw: the run is "failed" with the error's kind (never left "running",
    which would hide it), and the target is free again. Recording it must not hide the error itself."""
    message = messages.stored(_l("The run stopped on an unexpected error (%(error)s); the next run "
                                 "continues from where it stopped.", error=type(exc).__name__))
    try:
        _finish(target_id, log_id, "failed", message, None, backend, dry_run)
    except Exception:  # the database itself is gone: the stale claim expires (STALE_CLAIM)
        db.session.rollback()


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
        if plan is not None:
            notify_hooks.sync_conflicts(target, log)
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
    """Step 2: every app change in one transaction (audited with the sync as source), with the
    agreement those changes make (``Plan.interim``): a run that fails after this commit neither
    loses the sheet's values that reached the CRM nor creates a row's record twice (issue 21)."""
    kind = plan.kind
    loaded = _load_records(kind.model, [*plan.updates, *plan.archives])
    updated = [(plan.update_rows[pk], kind.save(loaded.get(pk), changes, user), changes)
               for pk, changes in plan.updates.items()]
    for index, record, _ in updated:
        note = kind.held_note(record)  # a gated change held for approval (issue 15): say so in the row
        if note:
            _status(plan, index, note)
    for record_id in plan.archives:
        try:
            kind.archive(loaded.get(record_id), user)
        except RuleViolation:
            continue
    db.session.flush()
    created = _create(plan, user)
    _store_conflicts(target, plan)
    db.session.flush()
    for index, record, values in created:
        plan.write.cells[(index, plan.key_col)] = record.code
        plan.bases[record.id] = (record.code, dict(values))
        plan.interim[record.id] = (PENDING, {**values, "_row": fingerprint(values)})
    for index, record, values in updated + created:
        _as_stored(plan, index, record, values)
    codes = {index: record.code for index, record, _ in created}
    for index, values, first in plan.twins:  # the record the row repeats exists now: say which, as later runs will
        problem = kind.duplicate_problem(values, user) or (copy_message(codes[first]) if first in codes else None)
        if problem:
            _status(plan, index, problem)
    _upsert_bases(target.id, plan.interim, existing=plan.agreed)
    db.session.commit()


def _load_records(model: type, ids: list[int]) -> dict[int, Any]:
    """The records the apply step changes (record id -> record; a record gone since the plan is
    missing, as ``db.session.get`` would find none), read in a few IN queries (the plan's trial
    left them expired). Held here: the session only keeps weak references, so records read and
    dropped were read again one SELECT each, every one autoflushing the record saved before it
    (one audited flush per record; issue 12)."""
    loaded: dict[int, Any] = {}
    for start in range(0, len(ids), 1000):
        loaded.update((record.id, record) for record in
                      db.session.scalars(select(model).where(model.id.in_(ids[start:start + 1000]))))
    return loaded


def _create(plan: Plan, user: Any) -> list[tuple[int, Any, dict[str, str]]]:
    """The new rows' records, in sheet order, each checked by the duplicate rule against the CRM as
    this run leaves it (its updates, archives and earlier creations): a row like a customer whose
    phone the run changes is not a duplicate of it, one like the changed customer is (issue 21).

    Saved through the type's own ``save`` and flushed together (one numbering, one audit append of the
    per-record entries; issue 12), not one flush per row: a row's duplicate check runs on the CRM with
    the records saved before it still unflushed only when none of them can match it (``Records.
    duplicate_probes``, a superset of what the rule's query compares), else after flushing them."""
    kind, created = plan.kind, []
    rows = sorted([(index, values, True) for index, values in plan.creates]
                  + [(index, values, False) for index, values in plan.maybe_duplicates], key=lambda item: item[0])
    unflushed: set[Any] = set()  # the duplicate probes of the records saved since the last flush
    for index, values, planned in rows:
        problem = _duplicate_problem(kind, values, user, unflushed)
        if problem:
            _status(plan, index, problem)
            if planned:
                plan.counts["app_created"] -= 1
                plan.counts["app_rejected"] += 1
            continue
        if not planned:
            _status(plan, index, "")
            plan.errors.pop(index, None)
            plan.counts["app_rejected"] -= 1
            plan.counts["app_created"] += 1
        with db.session.no_autoflush:  # the save's own lookups (owners, entries) need none of them
            record = kind.save(None, values, user)
        created.append((index, record, values))
        if kind.has_duplicate_rule:
            unflushed |= kind.record_duplicate_probes(record)
    db.session.flush()
    return created


def _duplicate_problem(kind: Any, values: dict[str, str], user: Any, unflushed: set[Any]) -> str | None:
    """``kind.duplicate_problem`` as if every record saved before were flushed: they are when one
    shares a duplicate probe with ``values`` (``unflushed`` is emptied), else the rule cannot match
    them and is asked without flushing."""
    if unflushed and not unflushed.isdisjoint(kind.duplicate_probes(values)):
        db.session.flush()
        unflushed.clear()
    with db.session.no_autoflush:
        return kind.duplicate_problem(values, user)


def _status(plan: Plan, index: int, message: str) -> None:
    """A row's status cell, written only when it changes (a quiet run writes nothing)."""
    message, row = mask_phones_in(message), plan.data.rows[index]
    current = row[plan.status_col] if plan.status_col < len(row) else ""
    if message != current:
        plan.write.cells[(index, plan.status_col)] = message
    else:
        plan.write.cells.pop((index, plan.status_col), None)


def _as_stored(plan: Plan, index: int, record: Any, applied: dict[str, str]) -> None:
    """The CRM's stored value of each cell the sheet gave it goes back to the row in this run, and
    is the agreement (an e-mail lower-cased, a credit code upper-cased, an owner defaulted)."""
    stored = plan.codec.app_values(record)
    _, agreed = plan.bases[record.id]
    for name, value in applied.items():
        if name in plan.columns and name in stored and stored[name] != value:
            plan.write.cells[(index, plan.columns[name])] = plan.codec.display(name, stored[name])
            agreed[name] = stored[name]


def _store_conflicts(target: SyncTarget, plan: Plan) -> None:
    """The plan's conflicts (new ones added, open ones brought up to date) and the open ones this
    run found settled closed as such (``SETTLED``)."""
    if plan.settled:
        table = SyncConflict.__table__
        db.session.execute(update(table).where(table.c.id.in_(plan.settled), table.c.resolved_at.is_(None))
                           .values(resolved_at=utc_now(), resolution=SETTLED))
    _add_conflicts(target, plan)


def _add_conflicts(target: SyncTarget, plan: Plan) -> None:
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
    _upsert_bases(target.id, plan.bases, plan.drop_bases, existing=plan.agreed, checked=plan.checked,
                  unchanged=plan.unchanged)
    db.session.commit()


def _upsert_bases(target_id: int, bases: dict[int, tuple[str, dict[str, str]]], drop: list[int] = (), *,
                  existing: dict[int, Any], checked: dict[int, str] | None = None,
                  unchanged: set[int] = frozenset()) -> None:
    """Store ``bases`` (record id -> (key, agreed values)) with each row's digest (``checked``: record id ->
    ``sync.plan.row_digest``, None for a row without one) and delete the agreed rows of ``drop``.

    ``existing`` is the agreed rows as stored (``agreed_rows``, read once per run): rows that would not
    change are not written, the records of ``unchanged`` not even compared, and ``existing`` is brought
    up to date with what this call stores (a later call of the run compares with it)."""
    table = SyncRow.__table__
    checked, stamp = checked or {}, utc_now()
    inserts, updates = [], []
    for record_id, (key, agreed) in bases.items():
        if record_id in unchanged:
            continue
        row, digest = existing.get(record_id), checked.get(record_id)
        if row is None:
            inserts.append({"target_id": target_id, "record_id": record_id, "key": key, "base": agreed,
                            "checked": digest, "synced_at": stamp})
        elif row.key != key or row.base != agreed or row.checked != digest:
            updates.append({"row_id": row.id, "new_key": key, "new_base": agreed, "new_checked": digest,
                            "stamp": stamp})
            existing[record_id] = row._replace(key=key, base=agreed, checked=digest)
    if inserts:
        db.session.execute(insert(table), inserts)
        existing.update(agreed_rows(target_id, [row["record_id"] for row in inserts]))
    if updates:
        db.session.execute(update(table).where(table.c.id == bindparam("row_id")).values(
            key=bindparam("new_key"), base=bindparam("new_base"), checked=bindparam("new_checked"),
            synced_at=bindparam("stamp")), updates)
    gone = [record_id for record_id in drop if record_id in existing]
    if gone:
        db.session.execute(delete(table).where(table.c.target_id == target_id, table.c.record_id.in_(gone)))
        for record_id in gone:
            existing.pop(record_id, None)  # ``drop`` may name a record twice
