"""An admin's decisions on retention cases (issue 19): archive (the record type's own
archive use case), anonymise (a personal-data erasure with the reason "retention period")
or keep (listed again only after another full period). Every decision is audited as
``retention_decided``; anonymising several at once is a sensitive action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.clock import utc_now
from app.extensions import db
from app.models.operations import RetentionCase
from app.security import step_up
from app.security.rights import is_admin
from app.services import audit, customers
from app.services.errors import RuleForbidden, RuleViolation
from app.services.retention import ANONYMISED, ARCHIVED, DECISIONS, KEPT, TYPES

BULK_ANONYMISE = step_up.declare("retention.bulk_anonymise", _l("Anonymise several records at once"),
                                 _l("Organisation → Data retention"))
#: The reason an anonymisation by retention gives the erasure.
RETENTION_REASON = _l("Retention period passed")
#: Audit action of a decision.
DECIDED = "retention_decided"


@dataclass
class CaseRow:
    """One open case as the page lists it: the case and its record (None once gone)."""

    case: RetentionCase
    record: Any


def open_cases(record_type: str | None = None, limit: int = 500) -> list[CaseRow]:
    """Open cases (oldest last activity first), of one type or all, with their records."""
    query = select(RetentionCase).where(RetentionCase.decision.is_(None))
    if record_type:
        query = query.where(RetentionCase.record_type == record_type)
    rows = []
    for case in db.session.scalars(query.order_by(RetentionCase.record_type, RetentionCase.last_activity_at)
                                   .limit(limit)):
        kind = TYPES.get(case.record_type)
        rows.append(CaseRow(case, db.session.get(kind.model, case.record_id) if kind else None))
    return rows


def decide(user: Any, case_ids: list[Any], decision: str) -> tuple[int, list[str]]:
    """Apply ``decision`` (archived | anonymised | kept) to open cases; returns (done,
    refusals: one message per case that could not take it). Admins only
    (``RuleForbidden``); ``RuleViolation`` for an unknown decision or no case; several
    anonymisations need a fresh code (``StepUpRequired``). Commits."""
    if not is_admin(user):
        raise RuleForbidden(str(_l("Only an administrator may decide on retention.")))
    if decision not in DECISIONS:
        raise RuleViolation({"decision": str(_l("Pick archive, anonymise or keep."))})
    ids = [int(pk) for pk in case_ids if str(pk).isdigit()]
    cases = list(db.session.scalars(select(RetentionCase).where(RetentionCase.id.in_(ids),
                                                                RetentionCase.decision.is_(None))))
    if not cases:
        raise RuleViolation({"cases": str(_l("Pick at least one open case."))})
    if decision == ANONYMISED and len(cases) > 1:
        step_up.demand(BULK_ANONYMISE, user)
    refused = [_refusal(case, decision) for case in cases]
    allowed = [case for case, why in zip(cases, refused, strict=True) if why is None]
    done = _apply(user, allowed, decision)
    return done, [why for why in refused if why]


def _refusal(case: RetentionCase, decision: str) -> str | None:
    kind = TYPES.get(case.record_type)
    if kind is None or decision not in kind.decisions:
        return str(_l("%(type)s #%(id)s cannot take this decision.",
                      type=kind.label if kind else case.record_type, id=case.record_id))
    return None


def _apply(user: Any, cases: list[RetentionCase], decision: str) -> int:
    if decision == ARCHIVED:
        pks = [case.record_id for case in cases if case.record_type == "customer"]
        archived, _refused = customers.archive_customers(pks, user) if pks else ([], [])
        kept = {item.id for item in archived}
        cases = [case for case in cases if case.record_id in kept]
    if decision == ANONYMISED:
        from app.services import erasure

        for case in cases:
            erasure.erase(user, case.record_type, case.record_id, str(RETENTION_REASON))
    for case in cases:
        case.decision, case.decided_at, case.decided_by_id = decision, utc_now(), user.id
        audit.record(DECIDED, case, {"decision": decision, "record_type": case.record_type,
                                     "record_id": case.record_id}, user=user)
    db.session.commit()
    return len(cases)


__all__ = ["BULK_ANONYMISE", "DECIDED", "KEPT", "CaseRow", "decide", "open_cases"]
