"""Merging duplicate customers into one survivor (the dedup tool's last step).

The survivor takes the field values the user picked; follow-ups, status history and
contacts move to it (the merged-away primary contacts as ordinary contacts: the
survivor's primary contact mirrors its own 联系人姓名/联系方式); each merged-away customer is archived and its code kept as an alias of
the survivor (old spreadsheets and links keep working). One transaction, audited,
and a sensitive action (TOTP step-up) because it rewrites several owners' records.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from app.extensions import db
from app.models.customers import Customer, CustomerAlias, CustomerStatusChange, FollowUp
from app.models.sales import Contact
from app.security import step_up
from app.security.data_scope import can_see
from app.security.step_up import declare
from app.services import audit, custom_fields, records
from app.services import customer_approvals as gate
from app.services import customers as rules
from app.services.errors import RuleViolation

MERGE = declare("customer.merge", _l("Merge duplicate customers"), _l("Customers > Duplicates, merge"))
#: Fields a user may take from any member of the cluster.
MERGEABLE = ("name", "credit_code", "type_id", "industry_id", "contact_name", "contact_phone", "email",
             "address", "level_id", "source_id", "owner_id", "note")


def merge_customers(pks: list[Any], survivor_pk: Any, picks: dict[str, int], user: Any) -> Customer:
    """The merge use case (dedup tool): load the cluster in ``user``'s scope, ask for the
    step-up, merge. ``picks`` maps a field to the id of the member to take it from;
    fields not picked keep the survivor's value, or the first non-empty one of the others.

    Raises ``NotFound`` (a member out of scope or missing), ``RuleViolation`` (archived,
    fewer than two, no survivor, merged values break a rule), ``StepUpRequired``.
    """
    members = records.load_many(Customer, pks, user, live=False)
    survivor = next((c for c in members if str(c.id) == str(survivor_pk)), None)
    if survivor is None:
        raise RuleViolation({"survivor": str(_l("Pick the customer to keep."))})
    step_up.demand(MERGE, user)
    return merge(survivor, [c for c in members if c is not survivor], picks, user)


def default_picks(survivor: Customer, others: list[Customer]) -> dict[str, int]:
    """Which member each field comes from when the user does not pick: the survivor's
    value, unless it is empty and another member has one (nothing typed is dropped)."""
    picks = {}
    for column in MERGEABLE:
        if _blank(getattr(survivor, column)):
            donor = next((c for c in others if not _blank(getattr(c, column))), None)
            if donor is not None:
                picks[column] = donor.id
    return picks


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def merge(survivor: Customer, others: list[Customer], picks: dict[str, int], user: Any) -> Customer:
    """Merge ``others`` into ``survivor``; ``picks`` maps a field to the customer id to take it from
    (fields not in ``picks`` follow ``default_picks``).

    Raises ``RuleViolation`` (nothing changed) when a record is out of scope, archived,
    or the merged values break a customer rule.
    """
    members = {c.id: c for c in [survivor, *others]}
    if len(members) < 2:
        raise RuleViolation(str(_l("Pick at least two customers to merge.")))
    for customer in members.values():
        if not can_see(user, customer):
            raise records.not_found()
        if customer.archived_at is not None:
            raise RuleViolation(str(_l("%(code)s is archived; restore it before merging.", code=customer.code)))
    picks = {**default_picks(survivor, others), **picks}
    with db.session.no_autoflush:  # the picks stay unflushed: the gates compare them with the stored values
        _apply_picks(survivor, members, picks)
        carried = custom_fields.merged(survivor, others)  # issue 18: no value held only by a merged record is lost
        if carried is not None:
            survivor.custom = carried
        rules.clean_customer(survivor, user)
        # a picked level or key contact data is a change like any other: held for approval where a
        # policy covers it (003 第四步). The won rule is not asked: a won member already is the
        # customer's status, its contracts move with it.
        held = gate.hold_gated(survivor, user)
    merged_codes = []
    for other in others:
        _move_children(other, survivor)
        db.session.add(CustomerAlias(code=other.code, customer=survivor, merged_from=other, merged_by_id=user.id))
        for alias in list(other.aliases):  # aliases of an earlier merge follow along
            alias.customer = survivor
        rules.archived_now(other, user, _l("The customer was merged into %(code)s.", code=survivor.code))
        merged_codes.append(other.code)
    audit.record("merge", survivor, {"survivor": survivor.code, "merged": merged_codes,
                                     "picked": {k: v for k, v in picks.items() if v != survivor.id}})
    survivor.held_for_approval = gate.submit_held(survivor, user, held)
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
    """Children are re-pointed; each move is audited by the flush hook. Every declared
    record type with a customer (contacts, opportunities, activities, the lead a customer
    was converted from …) moves with follow-ups, so a type added later is never left on
    the merged-away customer. A contact keeps its flags except *primary*: the survivor
    keeps its own primary contact."""
    from app.record_types import REGISTRY

    for follow_up in db.session.query(FollowUp).filter(FollowUp.customer_id == source.id):
        follow_up.customer = target
    for model in dict.fromkeys(rt.model for rt in REGISTRY.values() if hasattr(rt.model, "customer")):
        for child in db.session.scalars(select(model).where(model.customer_id == source.id)):
            child.customer = target  # the relationship, so flush hooks see the customer it moved to
            if model is Contact:
                child.is_primary = False
    db.session.execute(
        update(CustomerStatusChange).where(CustomerStatusChange.customer_id == source.id)
        .values(customer_id=target.id)
    )
