"""Personal-data erasure (issue 19; 个人信息保护法, 001 隐私与合规): an admin erases a
customer's, contact's or lead's personal data on request, with a reason; the record, its
codes, amounts and history skeleton stay; audit entries keep the fact, not the values.

``preview`` says what would go and where copies live; ``erase`` does it (a sensitive
action, admins only, reason required) and commits. What is cleared per type:
``subjects``; where copies are swept: ``sweep``. Backups keep old values until their
retention (30 days) removes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select

from app.extensions import db
from app.models.audit import AuditChainHead, AuditLog
from app.models.customers import Customer
from app.models.sync import SyncRow, SyncTarget
from app.security import step_up
from app.security.rights import is_admin
from app.services import audit, records
from app.services.audit import ERASED, ERASURE_ACTION
from app.services.erasure import files as transfer_files
from app.services.erasure import ledger, subjects, sweep
from app.services.erasure.subjects import FOLLOW_UPS, SUBJECTS
from app.services.erasure.sweep import sync_base
from app.services.errors import RuleForbidden, RuleViolation

__all__ = ["ERASE", "ERASED", "SUBJECTS", "Preview", "Summary", "erase", "find", "preview", "sync_base"]

ERASE = step_up.declare("personal_data.erase", _l("Erase a person's personal data"),
                        _l("Organisation → Personal data erasure"))
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


@dataclass
class Summary:
    """What an erasure did: the fields cleared per row (names, never values), the audit
    entries redacted, sync rows marked, other rows swept (table -> count)."""

    record_type: str
    code: str
    fields: dict[str, list[str]]
    redacted: int
    sync_rows: int
    swept: dict[str, int] = field(default_factory=dict)
    audit_seq: int | None = None


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
    rows = [record, *subject.linked(record)]
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
          extra_fields: tuple[str, ...] | list[str] = ()) -> Summary:
    """Erase one record's personal data and every copy of it; commits.

    ``record_type``: "customer" | "contact" | "lead"; ``extra_fields``: keys of the
    subject's ``extras`` (free text the admin ticked). Admins only (``RuleForbidden``);
    a sensitive action (``StepUpRequired`` without a fresh code); ``RuleViolation``
    without a reason or with an unknown extra field; ``NotFound`` for a missing record.
    Audited as ``personal_data_erased`` with the fields' names, never their values.
    """
    _admin(user)
    subject = _subject(record_type)
    text = _clean_reason(reason)
    unknown = sorted(set(extra_fields) - set(subject.extras))
    if unknown:
        raise RuleViolation({"extra_fields": str(_l("Unknown field: %(name)s", name=", ".join(unknown)))})
    record = records.load(subject.model, record_id, user, live=False)
    step_up.demand(ERASE, user)
    summary = _commit(subject, record, tuple(extra_fields), text, user)
    ledger.record(summary, tuple(extra_fields), record.id)
    return summary


def erase_again(subject: subjects.Subject, record: Any, extras: tuple[str, ...], reason: str,
                user: Any = None) -> Summary:
    """Re-apply a recorded erasure to ``record`` after a restore brought its data back
    (``ledger.reapply_since``): no scope, no step-up (the restore had both); commits."""
    return _commit(subject, record, extras, reason, user)


def _commit(subject: subjects.Subject, record: Any, extras: tuple[str, ...], reason: str, user: Any) -> Summary:
    sweep.before_writes()
    summary = _erase_rows(subject, record, extras, reason, user)
    db.session.commit()
    sweep.after_commit(["audit_log", subject.model.__tablename__, "contact", "follow_up", "sync_row",
                        "notification", "outbox_message", *(t for t in summary.swept if t != "files")])
    return summary


def _erase_rows(subject: subjects.Subject, record: Any, extras: tuple[str, ...], reason: str,
                user: Any) -> Summary:
    """Clear the rows, flush (the audit hook writes their update entries), redact the audit
    entries, sync state and other copies; write the erasure entry. Does not commit."""
    own = tuple(n for n in (*subject.personal, *extras) if n != FOLLOW_UPS)
    old = subjects.clear(record, own)
    cleared = {record.code: sorted(old)}
    rows = [record]
    for linked in subject.linked(record):
        found = subjects.clear(linked, subjects.mirror_fields(linked))
        old.update({f"{linked.code}.{k}": v for k, v in found.items()})
        cleared[linked.code] = sorted(found)
        rows.append(linked)
    if FOLLOW_UPS in extras and isinstance(record, Customer):
        for item in subjects.follow_ups_of(record):
            found = subjects.clear(item, ("content", "next_step"))
            old.update({f"{item.code}.{k}": v for k, v in found.items()})
            cleared[item.code] = sorted(found)
            rows.append(item)
    db.session.flush()
    keys = frozenset(k for names in cleared.values() for k in names)
    objects = [(type(r).__name__, str(r.id)) for r in rows]
    codes = tuple(r.code for r in rows if getattr(r, "code", None))
    rewrites, listed, values = sweep.audit_rewrites(objects, keys, tuple(map(str, old.values())), codes)
    values_t = sweep.needles(values)
    synced = sum(sweep.sync_state(subject_key(r), r.id, keys, values_t) for r in rows if subject_key(r))
    swept = sweep.everywhere(values_t)
    rewritten = transfer_files.sweep_files(values_t, (*sweep.distinctive(values_t), *codes))
    if rewritten:
        swept["files"] = rewritten
    linked_count = sum(sweep.linked_rows(name, r.id, values_t) for r in rows
                       for name in (subject_key(r) or "", type(r).__name__) if name)
    if linked_count:
        swept["notification"] = swept.get("notification", 0) + linked_count
    if isinstance(record, Customer):
        sweep.duplicate_keys(record.id)
    sweep.merge_search_index()
    db.session.flush()
    audit.record(ERASURE_ACTION, record, {
        "fields": cleared, "redacted": listed, "sync_rows": synced,
        "swept": swept, "record_type": subject.key,
    }, reason=reason, user=user)
    seq = db.session.scalar(select(AuditChainHead.seq).where(AuditChainHead.id == 1))
    audit.apply_redactions(db.session.connection(), rewrites, seq)
    return Summary(subject.key, record.code, cleared, len(rewrites), synced, swept, seq)


def subject_key(record: Any) -> str | None:
    """The erasure type key of a loaded row ("customer", "contact", "lead"), None otherwise."""
    return next((key for key, s in SUBJECTS.items() if isinstance(record, s.model)), None)
