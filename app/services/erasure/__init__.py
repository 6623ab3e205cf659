"""Personal-data erasure (issue 19; 个人信息保护法, 001 隐私与合规): an admin erases a
customer's, contact's or lead's personal data on request, with a reason; the record, its
codes, amounts and history skeleton stay; audit entries keep the fact, not the values.

``preview`` says what would go and where copies live; ``erase`` (a sensitive action,
admins only, reason required) checks and queues an erasure run, which the task queue
carries out (``runs``: no unbounded work in the web request). What is cleared per type:
``subjects``; where copies are swept: ``sweep``. Backups keep old values until their
retention (30 days) removes them; a restore re-applies erasures from the ledger
(``ledger.reapply_since`` -> ``erase_again``, synchronously: it runs in maintenance mode).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select

from app.extensions import db
from app.models.audit import AuditChainHead, AuditLog
from app.models.customers import Customer
from app.models.erasure import ErasureRun
from app.models.sync import SyncRow, SyncTarget
from app.security import step_up
from app.security.rights import is_admin
from app.services import audit, records
from app.services.audit import ERASED, ERASURE_ACTION
from app.services.erasure import files as transfer_files
from app.services.erasure import held, ledger, runs, subjects, sweep, tied
from app.services.erasure.runs import Summary, summary_of
from app.services.erasure.subjects import FOLLOW_UPS, SUBJECTS
from app.services.erasure.sweep import sync_base
from app.services.errors import RuleForbidden, RuleViolation

__all__ = ["ERASE", "ERASED", "SUBJECTS", "Preview", "Summary", "erase", "find", "ledger", "preview", "retry",
           "runs", "summary_of", "sync_base"]

ERASE = step_up.declare("personal_data.erase", _l("Erase a person's personal data"),
                        _l("Organisation → Personal data erasure"))
#: The summary's count of stored files removed (they could not be rewritten safely).
FILES_REMOVED = "files removed"
#: Longest reason kept (the audit entry's reason column).
REASON_LIMIT = 256


@dataclass
class Preview:
    """What an erasure of one record would clear: ``fields`` (names with a value now),
    ``extras`` (free-text fields the admin may add: name -> label), ``linked`` (codes of
    rows holding copies, erased too) and counts of copies: audit entries about the rows,
    sync rows, follow-ups."""

    record: Any
    subject: subjects.Subject
    fields: list[str]
    extras: dict[str, Any]
    linked: list[str]
    audit_entries: int
    sync_rows: int
    follow_ups: int


def _subject(record_type: str) -> subjects.Subject:
    found = SUBJECTS.get(record_type)
    if found is None:
        raise RuleViolation({"record_type": str(_l("Pick a customer, a contact or a lead."))})
    return found


def _admin(user: Any) -> None:
    if not is_admin(user):
        raise RuleForbidden(str(_l("Only an administrator may erase personal data.")))


def find(user: Any, text: str | None, limit: int = 20) -> list[tuple[str, Any]]:
    """Customers, contacts and leads whose code or name holds ``text`` (admins see all):
    [(record type key, record)], at most ``limit`` per type; [] for fewer than 2 characters."""
    _admin(user)
    typed = (text or "").strip()
    if len(typed) < 2:
        return []
    found = []
    for key, subject in SUBJECTS.items():
        model = subject.model
        names = [getattr(model, n) for n in ("code", "name", "contact_name", "company") if hasattr(model, n)]
        query = select(model).where(or_(*(c.contains(typed, autoescape=True) for c in names))) \
            .order_by(model.id.desc()).limit(limit)
        found += [(key, record) for record in db.session.scalars(query)]
    return found


def preview(user: Any, record_type: str, record_id: Any) -> Preview:
    """What ``erase`` would clear for one record (``NotFound`` when missing; admins only)."""
    _admin(user)
    subject = _subject(record_type)
    record = records.load(subject.model, record_id, user, live=False)
    rows = [record, *(row for row, _ in subject.linked(record))]
    objects = [(type(r).__name__, str(r.id)) for r in rows]
    about = or_(*(and_(AuditLog.object_type == t, AuditLog.object_id == i) for t, i in objects))
    return Preview(
        record, subject,
        fields=[n for n in subject.personal if subjects.value(record, n) not in (None, "", ERASED, [])],
        extras=subject.extras,
        linked=[r.code for r in rows[1:]],
        audit_entries=db.session.scalar(select(func.count(AuditLog.id)).where(about)) or 0,
        sync_rows=db.session.scalar(select(func.count(SyncRow.id)).where(
            SyncRow.record_id == record.id,
            SyncRow.target_id.in_(select(SyncTarget.id).where(SyncTarget.model == record_type)))) or 0,
        follow_ups=len(subjects.follow_ups_of(record)) if isinstance(record, Customer) else 0,
    )


def _clean_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise RuleViolation({"reason": str(_l("Give the reason for the erasure (e.g. the person's request)."))})
    if len(text) > REASON_LIMIT:
        raise RuleViolation({"reason": str(_l("At most %(n)d characters.", n=REASON_LIMIT))})
    return text


def erase(user: Any, record_type: str, record_id: Any, reason: str | None,
          extra_fields: tuple[str, ...] | list[str] = ()) -> ErasureRun:
    """Check an erasure of one record's personal data and queue it; commits the queued run.

    ``record_type``: "customer" | "contact" | "lead"; ``extra_fields``: keys of the
    subject's ``extras`` (free text the admin ticked). Admins only (``RuleForbidden``);
    a sensitive action (``StepUpRequired`` without a fresh code); ``RuleViolation``
    without a reason, with an unknown extra field, or ("record") while another erasure of
    the record is queued or running; ``NotFound`` for a missing record. Returns the
    ``ErasureRun``: the task queue clears the record and every copy (``runs.execute``),
    audited as ``personal_data_erased`` with the fields' names, never their values; with
    ``CRM_IMPORT_INLINE`` it is done on return (``summary_of(run)``).
    """
    _admin(user)
    subject = _subject(record_type)
    text = _clean_reason(reason)
    unknown = sorted(set(extra_fields) - set(subject.extras))
    if unknown:
        raise RuleViolation({"extra_fields": str(_l("Unknown field: %(name)s", name=", ".join(unknown)))})
    record = records.load(subject.model, record_id, user, live=False)
    runs.refuse_if_busy(subject.key, record.id)  # before the code is spent
    step_up.demand(ERASE, user)
    run = runs.queue(subject.key, record, tuple(extra_fields), text, user)
    runs.submit(run)
    return run


def retry(user: Any, run_id: Any) -> ErasureRun:
    """Queue a failed (or stopped) erasure run again: admins only, the record still in
    scope (``NotFound``), a sensitive action (``StepUpRequired``); ``RuleViolation`` when
    the run is not failed/stopped or another run of the record is under way."""
    _admin(user)
    run = runs.load(run_id)
    subject = _subject(run.record_type)
    records.load(subject.model, run.record_id, user, live=False)
    runs.check_again(run)  # before the step-up: a refused retry does not spend the admin's code
    step_up.demand(ERASE, user)
    runs.submit(runs.again(run))
    return run


def erase_again(subject: subjects.Subject, record: Any, extras: tuple[str, ...], reason: str,
                user: Any = None) -> Summary:
    """Re-apply a recorded erasure to ``record`` after a restore brought its data back
    (``ledger.reapply_since``): no scope, no step-up (the restore had both), no run: it
    runs synchronously inside the restore (maintenance mode); commits."""
    summary = commit_erasure(subject, record, extras, reason, user)
    tidy(subject, summary)
    return summary


def step_count() -> int:
    """Steps ``commit_erasure`` reports: the rows, the audit log, each table with text
    columns, files, the search index."""
    return 4 + len({table.name for table, _column in sweep.text_columns()})


def commit_erasure(subject: subjects.Subject, record: Any, extras: tuple[str, ...], reason: str, user: Any,
                   progress: runs.Progress | None = None,
                   finish: Callable[[Summary], None] | None = None) -> Summary:
    """Clear ``record`` and every copy and commit, in one transaction; ``finish(summary)``
    runs in it just before the commit (the run marks itself done), ``progress.start(step)``
    before each step. Unbounded (scans all stored text): task queue or restore only."""
    sweep.before_writes()
    db.session.info.pop(transfer_files.REPLACED, None)  # left by an attempt that rolled back
    summary = _erase_rows(subject, record, extras, reason, user, progress or _Quiet())
    if finish is not None:
        finish(summary)
    db.session.commit()
    transfer_files.remove_replaced()
    return summary


def tidy(subject: subjects.Subject, summary: Summary) -> None:
    """After the erasure committed: the database's freed pages (``sweep.after_commit``)."""
    sweep.after_commit(["audit_log", subject.model.__tablename__, "contact", "follow_up", "sync_row",
                        "notification", "outbox_message", *(t for t in summary.swept if t != "files")])


class _Quiet:
    def start(self, step: str) -> None:
        """No one watches (a restore re-applying an erasure)."""


def _erase_rows(subject: subjects.Subject, record: Any, extras: tuple[str, ...], reason: str,
                user: Any, progress: Any) -> Summary:
    """Clear the rows, flush (the audit hook writes their update entries), withdraw held
    changes, redact the audit entries, sync state and other copies (``_copies``); write the
    erasure entry. Does not commit."""
    progress.start("records")
    rows, old, cleared = _clear_rows(subject, record, extras)
    db.session.flush()
    codes = tuple(r.code for r in rows if getattr(r, "code", None))
    bound = tied.find(rows, FOLLOW_UPS in extras)
    own = {_object(r): frozenset(cleared.get(r.code, ())) for r in rows}
    withdrawn, proposed = held.withdraw([(r, own[_object(r)] | _personal_keys(r)) for r in rows], user)
    progress.start("audit")
    rewrites, listed, matcher = sweep.audit_rewrites(own, (*map(str, old.values()), *proposed), codes,
                                                     bound.objects())
    synced = sum(sweep.sync_state(subject_key(r), r.id, own[_object(r)], matcher) for r in rows if subject_key(r))
    swept = _copies(rows, bound, matcher, codes, progress)
    if withdrawn:
        swept["approvals withdrawn"] = withdrawn
    for row in rows:  # a customer cleared as a linked copy too: its blocking keys hashed the old values
        if isinstance(row, Customer):
            sweep.duplicate_keys(row.id)
    progress.start("search")
    sweep.merge_search_index()
    db.session.flush()
    audit.record(ERASURE_ACTION, record, {
        "fields": cleared, "redacted": listed, "sync_rows": synced,
        "swept": swept, "record_type": subject.key,
    }, reason=reason, user=user)
    seq = db.session.scalar(select(AuditChainHead.seq).where(AuditChainHead.id == 1))
    audit.apply_redactions(db.session.connection(), rewrites, seq)
    return Summary(subject.key, record.code, cleared, len(rewrites), synced, swept, seq)


def _object(row: Any) -> tuple[str, str]:
    """(audit object_type, object_id) of a row."""
    return type(row).__name__, str(row.id)


def _clear_rows(subject: subjects.Subject, record: Any, extras: tuple[str, ...]
                ) -> tuple[list[Any], dict[str, Any], dict[str, list[str]]]:
    """Clear the record, its linked copies and (ticked) follow-ups: (rows, old values by
    "code.field", field names cleared per code)."""
    own = tuple(n for n in (*subject.personal, *extras) if n != FOLLOW_UPS)
    old = subjects.clear(record, own)
    cleared = {record.code: sorted(old)}
    rows = [record]
    others = list(subject.linked(record))
    if FOLLOW_UPS in extras and isinstance(record, Customer):
        others += [(item, ("content", "next_step")) for item in subjects.follow_ups_of(record)]
    for row, names in others:
        found = subjects.clear(row, names)
        old.update({f"{row.code}.{k}": v for k, v in found.items()})
        cleared[row.code] = sorted(found)
        rows.append(row)
    return rows, old, cleared


def _copies(rows: list[Any], bound: tied.Tied, matcher: Any, codes: tuple[str, ...], progress: Any) -> dict[str, int]:
    """Sweep every other copy: text columns everywhere, tied rows, files, notifications.
    Returns what ``Summary.swept`` says (table or kind -> count)."""
    swept = sweep.everywhere(matcher, lambda table: progress.start(f"columns:{table}"))
    for table, n in tied.sweep(bound, matcher).items():
        swept[table] = swept.get(table, 0) + n
    progress.start("files")
    rewritten, removed = transfer_files.sweep_files(matcher, codes)
    attached = transfer_files.sweep_attachments(bound.ids.get("attachment", set()), matcher)
    linked = sum(sweep.linked_rows(name, r.id, matcher) for r in rows
                 for name in (subject_key(r) or "", type(r).__name__) if name)
    for key, n in (("files", rewritten), (FILES_REMOVED, removed), ("attachment files", attached),
                   ("notification", linked)):
        if n:
            swept[key] = swept.get(key, 0) + n
    return swept


def _personal_keys(row: Any) -> frozenset[str]:
    """The personal field names of an erased row's type (a held change names them)."""
    return frozenset((*getattr(type(row), "personal_columns", ()), *subjects.mirror_fields(row)))


def subject_key(record: Any) -> str | None:
    """The erasure type key of a loaded row ("customer", "contact", "lead"), None otherwise."""
    return next((key for key, s in SUBJECTS.items() if isinstance(record, s.model)), None)
