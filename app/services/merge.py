"""Merging duplicate customers into one survivor (the dedup tool's last step).

The survivor takes the field values the user picked; follow-ups and status history
move to it; each merged-away customer is archived and its code kept as an alias of
the survivor (old spreadsheets and links keep working). One transaction, audited,
and a sensitive action (TOTP step-up) because it rewrites several owners' records.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import update

from app.extensions import db
from app.models.base import now
from app.models.customers import Customer, CustomerAlias, CustomerStatusChange, FollowUp
from app.security.data_scope import can_see
from app.security.step_up import declare
from app.services import audit
from app.services import customers as rules
from app.services.errors import RuleForbidden, RuleViolation

MERGE = declare("customer.merge", _l("Merge duplicate customers"), _l("Customers > Duplicates, merge"))
#: Fields a user may take from any member of the cluster.
MERGEABLE = ("name", "credit_code", "type_id", "industry_id", "contact_name", "contact_phone", "email",
             "address", "level_id", "source_id", "owner_id", "note")


def merge(survivor: Customer, others: list[Customer], picks: dict[str, int], user: Any) -> Customer:
    """Merge ``others`` into ``survivor``; ``picks`` maps a field to the customer id to take it from.

    Raises ``RuleViolation`` (nothing changed) when a record is out of scope, archived,
    or the merged values break a customer rule.
    """
    members = {c.id: c for c in [survivor, *others]}
    if len(members) < 2:
        raise RuleViolation(str(_l("Pick at least two customers to merge.")))
    for customer in members.values():
        if not can_see(user, customer):
            raise RuleForbidden(str(_l("Customer not found.")))
        if customer.archived_at is not None:
            raise RuleViolation(str(_l("%(code)s is archived; restore it before merging.", code=customer.code)))
    _apply_picks(survivor, members, picks)
    rules.clean_customer(survivor, user)
    merged_codes = []
    for other in others:
        _move_children(other, survivor)
        db.session.add(CustomerAlias(code=other.code, customer=survivor, merged_from=other, merged_by_id=user.id))
        for alias in list(other.aliases):  # aliases of an earlier merge follow along
            alias.customer = survivor
        other.archived_at = now()
        merged_codes.append(other.code)
    audit.record("merge", survivor, {"survivor": survivor.code, "merged": merged_codes,
                                     "picked": {k: v for k, v in picks.items() if v != survivor.id}})
    return survivor


def _apply_picks(survivor: Customer, members: dict[int, Customer], picks: dict[str, int]) -> None:
    for column, source_id in picks.items():
        if column not in MERGEABLE:
            raise RuleViolation({column: str(_l("This field cannot be merged."))})
        if source_id not in members:
            raise RuleViolation({column: str(_l("Pick a value from one of the merged customers."))})
        if source_id != survivor.id:
            setattr(survivor, column, getattr(members[source_id], column))
            if column.endswith("_id"):  # keep the relationship in step with the key
                relation = column[:-3]
                setattr(survivor, relation, getattr(members[source_id], relation))


def _move_children(source: Customer, target: Customer) -> None:
    """Children are re-pointed in bulk; each follow-up move is audited by the flush hook."""
    for follow_up in db.session.query(FollowUp).filter(FollowUp.customer_id == source.id):
        follow_up.customer = target
    db.session.execute(
        update(CustomerStatusChange).where(CustomerStatusChange.customer_id == source.id)
        .values(customer_id=target.id)
    )
