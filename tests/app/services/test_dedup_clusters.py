"""Stored duplicate clusters (issue 12): a background scan, incremental updates on every
save, merge, archive and dismissal, read page by page in the viewer's scope."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from app.extensions import appbuilder, db
from app.models import Customer
from app.models.duplicates import (
    DuplicateCluster,
    DuplicateDirty,
    DuplicateKey,
    DuplicateMember,
    DuplicateScan,
    DuplicateState,
)
from app.services import dedup, dedup_clusters
from app.services.errors import NotFound, RuleViolation
from app.services.validation import credit_code_check_char

STORED = (DuplicateMember, DuplicateCluster, DuplicateKey, DuplicateDirty, DuplicateScan, DuplicateState)


def clear_stored(app: Any) -> None:
    with app.app_context():
        for model in STORED:
            db.session.execute(delete(model))
        db.session.commit()
        db.session.remove()


@pytest.fixture(autouse=True)
def fresh_clusters(app: Any) -> Any:
    """Stored clusters start empty (the suite's cleanup removes customers with bulk deletes,
    which the incremental hooks do not see, and SQLite re-uses their ids)."""
    clear_stored(app)
    dedup_clusters._queued["at"] = None
    yield
    clear_stored(app)
    dedup_clusters._queued["at"] = None


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def stored() -> set[tuple[tuple[int, ...], frozenset[str], int]]:
    """The stored clusters as (member ids, rules, score)."""
    members: dict[int, list[int]] = {}
    for cluster_id, cid in db.session.execute(select(DuplicateMember.cluster_id, DuplicateMember.customer_id)):
        members.setdefault(cluster_id, []).append(cid)
    return {(tuple(sorted(members[c.id])), frozenset(c.rules.split(",")), c.score)
            for c in db.session.scalars(select(DuplicateCluster))}


def fresh() -> set[tuple[tuple[int, ...], frozenset[str], int]]:
    """What a full scan computes now."""
    return {(tuple(c.ids), frozenset(c.rules), c.score) for c in dedup.scan(None)}


def first_scan(app: Any) -> None:
    with app.app_context():
        dedup_clusters.start_scan(None)  # inline in tests (CRM_IMPORT_INLINE)
        db.session.remove()


def make(owner: str, **fields: Any) -> int:
    values = {"name": "Someone", "contact_phone": "13000000000", **fields}
    customer = Customer(owner_id=user(owner).id, **values)
    db.session.add(customer)
    db.session.commit()
    return customer.id


def test_a_scan_stores_what_the_rule_computes_over_every_customer(app: Any, ctx: Any) -> None:
    a = make("rep_a", name="Alpha Trading", contact_phone="13700000001")
    b = make("rep_c", name="Beta Works", contact_phone="13700000001")
    c = make("rep_b", name="Crescent Electronics", contact_phone="13800000011")
    d = make("rep_a", name="Crescent Optoelectronics", contact_phone="13900000022")
    make("rep_a", name="Nothing alike", contact_phone="13600000000")
    assert stored() == set()
    dedup_clusters.start_scan(user("admin"))
    assert stored() == fresh() == {((a, b), frozenset({dedup.PHONE}), 100), ((c, d), frozenset({dedup.FUZZY}), 90)}
    scan = db.session.scalar(select(DuplicateScan))
    assert (scan.status, scan.processed, scan.customers, scan.clusters) == ("done", 100, 5, 2)


def test_a_save_updates_only_its_clusters_without_a_rescan(app: Any, ctx: Any) -> None:
    a = make("rep_a", name="Alpha Trading", contact_phone="13700000001")
    b = make("rep_a", name="Beta Works", contact_phone="13700000002")
    dedup_clusters.start_scan(None)
    assert stored() == set()
    item = db.session.get(Customer, b)
    item.contact_phone = "13700000001"  # now the same phone
    db.session.commit()
    assert stored() == fresh() == {((a, b), frozenset({dedup.PHONE}), 100)}
    db.session.get(Customer, a).archived_at = dedup_clusters.utc_now()  # archiving leaves the cluster
    db.session.commit()
    assert stored() == fresh() == set()
    assert db.session.query(DuplicateScan).count() == 1  # no second scan did it



def test_a_chain_keeps_members_the_saved_customer_shares_no_key_with(app: Any, ctx: Any) -> None:
    """a-b share a phone, b-c a credit code: editing c re-evaluates the whole old cluster."""
    credit = "91350100M000100Y4" + credit_code_check_char("91350100M000100Y4")
    a = make("rep_a", name="Alpha Trading", contact_phone="13700000001")
    b = make("rep_a", name="Beta Works", contact_phone="13700000001", credit_code=credit)
    c = make("rep_a", name="Gamma Foods", contact_phone="13700000003", credit_code=credit)
    dedup_clusters.start_scan(None)
    db.session.get(Customer, c).name = "Gamma Foodstuffs"
    db.session.commit()
    assert stored() == fresh() == {((a, b, c), frozenset({dedup.PHONE, dedup.CREDIT}), 100)}
    db.session.get(Customer, b).credit_code = None  # the chain breaks: c leaves
    db.session.commit()
    assert stored() == fresh() == {((a, b), frozenset({dedup.PHONE}), 100)}

def test_another_contacts_phone_joins_and_leaving_splits(app: Any, ctx: Any) -> None:
    from app.models import Contact

    a = make("rep_a", name="Alpha Trading", contact_phone="13700000001")
    b = make("rep_a", name="Beta Works", contact_phone="13700000002")
    dedup_clusters.start_scan(None)
    contact = Contact(customer_id=b, name="Desk", phone="13700000001", code="PTEST1")
    db.session.add(contact)
    db.session.commit()
    assert stored() == fresh() == {((a, b), frozenset({dedup.PHONE}), 100)}
    db.session.delete(contact)
    db.session.commit()
    assert stored() == fresh() == set()


def test_dismissal_drops_the_edge_and_stays_after_an_edit_and_a_rescan(app: Any, ctx: Any) -> None:
    a = make("rep_a", name="Crescent Electronics", contact_phone="13800000011")
    b = make("rep_a", name="Crescent Optoelectronics", contact_phone="13900000022")
    dedup_clusters.start_scan(None)
    assert len(stored()) == 1
    dedup.dismiss_pair(user("admin"), a, b)
    db.session.commit()
    assert stored() == set()
    db.session.get(Customer, b).name = "Crescent  Optoelectronics"  # an edit re-evaluates b
    db.session.commit()
    assert stored() == set()
    dedup_clusters.start_scan(None)
    assert stored() == set()


def test_merge_removes_the_merged_away_member(app: Any, ctx: Any) -> None:
    from app.services import merge

    a = make("rep_a", name="Alpha Trading", contact_phone="13700000001")
    b = make("rep_a", name="Beta Works", contact_phone="13700000001")
    c = make("rep_a", name="Gamma Foods", contact_phone="13700000001")
    dedup_clusters.start_scan(None)
    merge.merge(db.session.get(Customer, a), [db.session.get(Customer, b)], {}, user("admin"))
    db.session.commit()
    assert stored() == fresh() == {((a, c), frozenset({dedup.PHONE}), 100)}


def test_bulk_inserted_customers_are_found_by_id(app: Any, ctx: Any) -> None:
    from app.services import customers

    a = make("rep_a", name="Alpha Trading", contact_phone="13700000001")
    dedup_clusters.start_scan(None)
    rows = [{"name": "Alpha Imports", "contact_phone": "13700000001", "owner_id": user("rep_a").id}]
    customers.insert_customers(rows)  # the import's bulk path: no ORM flush
    db.session.commit()
    assert stored() == fresh() == {((a, rows[0]["id"]), frozenset({dedup.PHONE}), 100)}


def test_a_second_scan_is_refused_while_one_runs(app: Any, ctx: Any, monkeypatch: Any) -> None:
    from app.services import background

    monkeypatch.setattr(background, "submit", lambda *args: None)  # the first one keeps running
    first = dedup_clusters.start_scan(user("admin"))
    with pytest.raises(dedup_clusters.ScanRunning) as refused:
        dedup_clusters.start_scan(user("admin"))
    assert refused.value.scan.id == first.id
    assert db.session.query(DuplicateScan).count() == 1
    make("rep_a", name="Alpha Trading", contact_phone="13700000001")  # changes wait for the scan
    assert db.session.query(DuplicateDirty).count() == 1
    dedup_clusters.run_scan(first.id)
    assert db.session.query(DuplicateDirty).count() == 0
    assert db.session.get(DuplicateScan, first.id).status == "done"


# --- the property: incremental updates end where a full scan would --------------------------

NAMES = ["Crescent Electronics", "Crescent Optoelectronics", "深圳前海微众科技有限公司", "深圳前海微众科技公司",
         "Alpha Trading", "Alpha Tradings", "Beta"]
PHONES = ["13800000001", "13800000002", "13800000003"]
CONTACTS = [None, "Wu", "Zhang"]
CREDITS = [None, *(base + credit_code_check_char(base) for base in ("91350100M000100Y4", "91350100M000200Y4"))]
OWNERS = ["rep_a", "rep_b", "rep_c"]

ops = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(NAMES), st.sampled_from(CONTACTS), st.sampled_from(PHONES),
              st.sampled_from(CREDITS), st.sampled_from(OWNERS)),
    st.tuples(st.just("edit"), st.integers(0, 9), st.sampled_from(["name", "contact_name", "contact_phone",
                                                                   "credit_code"]), st.integers(0, 6)),
    st.tuples(st.just("contact"), st.integers(0, 9), st.sampled_from(PHONES)),
    st.tuples(st.just("archive"), st.integers(0, 9)),
    st.tuples(st.just("merge"), st.integers(0, 9), st.integers(0, 9)),
    st.tuples(st.just("dismiss"), st.integers(0, 9), st.integers(0, 9)),
    st.tuples(st.just("restore"), st.integers(0, 9), st.integers(0, 9)),
)
VALUES = {"name": NAMES, "contact_name": CONTACTS, "contact_phone": PHONES, "credit_code": CREDITS}


def _live(ids: list[int], n: int) -> Customer | None:
    if not ids:
        return None
    item = db.session.get(Customer, ids[n % len(ids)])
    return item if item is not None and item.archived_at is None else None


def _apply(op: tuple, ids: list[int], admin: Any, serial: list[int]) -> None:
    from app.models import Contact
    from app.services import merge

    kind = op[0]
    if kind == "add":
        ids.append(make(op[5], name=op[1], contact_name=op[2], contact_phone=op[3], credit_code=op[4]))
        return
    item = _live(ids, op[1])
    if item is None:
        return
    if kind == "edit":
        values = VALUES[op[2]]
        setattr(item, op[2], values[op[3] % len(values)] or (None if op[2] != "contact_phone" else PHONES[0]))
    elif kind == "contact":
        serial[0] += 1
        db.session.add(Contact(customer_id=item.id, name="Desk", phone=op[2], code=f"PT{serial[0]}"))
    elif kind == "archive":
        item.archived_at = dedup_clusters.utc_now()
    else:
        other = _live(ids, op[2])
        if other is None or other.id == item.id:
            return
        try:
            if kind == "merge":
                merge.merge(item, [other], {}, admin)
            elif kind == "dismiss":
                dedup.dismiss_pair(admin, item.id, other.id)
            else:
                dedup.restore_pair(admin, item.id, other.id)
        except (NotFound, RuleViolation):  # not dismissed, or merged values break a rule: nothing changes
            db.session.rollback()
            return
    db.session.commit()


def _forget_customers() -> None:
    from app.models import Contact, CustomerAlias, CustomerStatusChange, DismissedPair

    for model in (*STORED, CustomerAlias, DismissedPair, Contact, CustomerStatusChange, Customer):
        db.session.execute(delete(model))
    db.session.commit()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(ops, max_size=6), after=st.lists(ops, min_size=1, max_size=14))
def test_incremental_updates_equal_a_fresh_full_scan(app: Any, before: list, after: list) -> None:
    with app.app_context():
        _forget_customers()
        admin, ids, serial = user("admin"), [], [0]
        for op in before:
            _apply(op, ids, admin, serial)
        dedup_clusters.start_scan(admin)
        assert stored() == fresh()
        for op in after:
            _apply(op, ids, admin, serial)
        assert stored() == fresh()
        _forget_customers()
        db.session.remove()


def test_a_new_owner_moves_the_member_out_of_the_old_scope(app: Any, ctx: Any) -> None:
    a = make("rep_a", name="Alpha Trading", contact_phone="13700000001")
    b = make("rep_b", name="Beta Works", contact_phone="13700000001")
    dedup_clusters.start_scan(None)
    shown, total = dedup_clusters.clusters_in_scope(user("manager"))
    assert total == 1 and shown[0].ids == [a, b] and shown[0].hidden == 0
    db.session.get(Customer, b).owner_id = user("rep_c").id  # reassigned to the South
    db.session.commit()
    assert dedup_clusters.clusters_in_scope(user("manager")) == ([], 0)
    shown, total = dedup_clusters.clusters_in_scope(user("admin"))
    assert total == 1 and shown[0].ids == [a, b]


def test_erased_people_are_nobodys_duplicates(app: Any, ctx: Any) -> None:
    from app.security.masking import ERASED

    erased = {"name": ERASED, "contact_name": ERASED, "contact_phone": ERASED}
    make("rep_a", **erased)
    make("rep_c", **erased)
    dedup_clusters.start_scan(user("admin"))
    assert stored() == fresh() == set()
