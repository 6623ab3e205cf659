"""Dismissing a reviewed false match (issue 11 §6): the pair leaves the scan and stays out
after a rescan, an edit and an import; other pairs of its cluster still group; scope,
audit, restore, and a merge or delete of either customer removes the dismissal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from app.extensions import appbuilder, db
from app.models import AuditLog, Customer, CustomerStatusChange, DismissedPair
from app.services import customers, dedup, merge
from app.services.errors import NotFound, RuleViolation
from app.services.validation import credit_code_check_char
from tests.app.services.importing.conftest import run_job, write_xlsx  # noqa: F401 (fixture)
from tests.app.services.test_dedup_clusters import fresh_clusters  # noqa: F401 (autouse fixture)

CREDIT = "91350100M000100Y4" + credit_code_check_char("91350100M000100Y4")


@pytest.fixture(autouse=True)
def forget_dismissals(app: Any) -> Any:
    """Test data is removed with bulk deletes, which SQLite does not cascade: clear the pairs
    too, or a later test would meet them on re-used customer ids."""
    yield
    with app.app_context():
        db.session.execute(delete(DismissedPair))
        db.session.commit()
        db.session.remove()


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def cluster_ids() -> set[tuple[int, ...]]:
    return {tuple(c.ids) for c in dedup.scan(None)}


def crescent(make_customer: Any, owner: str = "rep_a") -> tuple[int, int]:
    """The issue's false match: score 90 on the name, nothing else in common."""
    a = make_customer(owner, name="Crescent Electronics", contact_name="Wu", contact_phone="13800000011")
    b = make_customer(owner, name="Crescent Optoelectronics", contact_name="Zhang", contact_phone="13900000022")
    return a, b


def test_dismissed_crescent_pair_leaves_the_scan_and_survives_rescan_and_edit(ctx: Any, make_customer: Any) -> None:
    a, b = crescent(make_customer)
    [found] = dedup.scan(None)
    assert found.ids == [a, b] and found.rules == {dedup.FUZZY} and found.score == 90

    pair = dedup.dismiss_pair(user("manager"), b, a, "  different companies\u200b ")
    db.session.commit()
    assert pair.pair == (a, b) and pair.reason == "different companies"  # stored low/high, text cleaned
    assert pair.dismissed_by_id == user("manager").id and pair.dismissed_at.tzinfo is not None
    assert dedup.scan(None) == []
    assert dedup.scan(None) == []  # a rescan reads the table again

    item = db.session.get(Customer, b)
    customers.save_customer({"name": "Crescent Opto-electronics", "note": "edited"}, user("rep_a"), pk=b,
                            version=item.version)
    db.session.commit()
    assert dedup.scan(None) == []


def test_cluster_of_three_keeps_its_other_pairs(ctx: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Alpha", contact_phone="13700000001")
    b = make_customer("rep_a", name="Beta", contact_phone="13700000001")
    c = make_customer("rep_a", name="Gamma", contact_phone="13700000001")
    dedup.dismiss_pair(user("manager"), a, b)
    db.session.commit()
    [cluster] = dedup.scan(None)
    assert cluster.ids == [a, b, c] and cluster.dismissed == [(a, b)]  # a-c and b-c still pair

    dedup.dismiss_pair(user("manager"), c, a)
    db.session.commit()
    assert cluster_ids() == {(b, c)}
    dedup.dismiss_pair(user("manager"), b, c)
    db.session.commit()
    assert dedup.scan(None) == []


def test_a_chain_breaks_at_the_dismissed_pair(ctx: Any, make_customer: Any) -> None:
    """a ~ b by name only, b ~ c by phone only: dismissing a/b leaves b/c."""
    a = make_customer("rep_a", name="Crescent Electronics", contact_phone="13600000001")
    b = make_customer("rep_a", name="Crescent Optoelectronics", contact_phone="13600000002")
    c = make_customer("rep_a", name="Unrelated Trading", contact_phone="13600000002")
    assert cluster_ids() == {(a, b, c)}
    dedup.dismiss_pair(user("admin"), a, b)
    db.session.commit()
    assert cluster_ids() == {(b, c)}


def test_exact_rule_pair_is_dismissed_for_every_rule(ctx: Any, make_customer: Any) -> None:
    """Same credit code, same phone, same name and contact: still one dismissal for the pair."""
    a = make_customer("rep_a", name="Twin", contact_name="Li", contact_phone="13500000001", credit_code=CREDIT)
    b = make_customer("rep_b", name="Twin", contact_name="Li", contact_phone="13500000001", credit_code=CREDIT)
    dedup.dismiss_pair(user("manager"), a, b)
    db.session.commit()
    assert dedup.scan(None) == []


def test_dismiss_loads_both_in_scope_like_every_use_case(ctx: Any, make_customer: Any) -> None:
    mine = make_customer("rep_a", name="Crescent Electronics", contact_phone="13800000011")
    south = make_customer("rep_c", name="Crescent Optoelectronics", contact_phone="13900000022")
    with pytest.raises(NotFound) as colleague:
        dedup.dismiss_pair(user("manager"), mine, south)  # rep_c is outside East
    with pytest.raises(NotFound) as missing:
        dedup.dismiss_pair(user("manager"), mine, 999_999)
    assert str(colleague.value) == str(missing.value)
    with pytest.raises(NotFound):
        dedup.dismiss_pair(user("manager"), mine, "1; drop table customer")
    with pytest.raises(RuleViolation, match="two different"):
        dedup.dismiss_pair(user("manager"), mine, mine)
    with pytest.raises(RuleViolation, match="255"):
        other = make_customer("rep_a", name="Crescent Optics", contact_phone="13900000033")
        dedup.dismiss_pair(user("manager"), mine, other, "x" * 256)
    db.session.rollback()
    assert db.session.scalar(select(DismissedPair)) is None


def test_archived_customer_cannot_be_dismissed_and_a_dismissal_waits_while_archived(
        ctx: Any, make_customer: Any) -> None:
    a, b = crescent(make_customer)
    dedup.dismiss_pair(user("manager"), a, b)
    db.session.get(Customer, b).archived_at = db.session.get(Customer, a).created_on
    db.session.commit()
    with pytest.raises(NotFound):
        dedup.restore_pair(user("manager"), a, b)
    db.session.rollback()
    db.session.get(Customer, b).archived_at = None  # restored: the review still holds
    db.session.commit()
    assert dedup.scan(None) == []


def test_dismiss_twice_is_one_row_and_both_customers_are_audited(ctx: Any, make_customer: Any) -> None:
    a, b = crescent(make_customer)
    first = dedup.dismiss_pair(user("manager"), a, b, "checked by phone")
    second = dedup.dismiss_pair(user("manager"), b, a, "again")
    db.session.commit()
    assert first.id == second.id and second.reason == "checked by phone"
    entries = db.session.scalars(select(AuditLog).where(AuditLog.action == "dismiss_duplicate")).all()
    assert sorted(int(e.object_id) for e in entries) == [a, b]
    assert {e.object_type for e in entries} == {"Customer"} and {e.reason for e in entries} == {"checked by phone"}
    assert all(e.user_name == "manager" for e in entries)


def test_restore_brings_the_pair_back_and_is_audited(ctx: Any, make_customer: Any) -> None:
    a, b = crescent(make_customer)
    dedup.dismiss_pair(user("manager"), a, b)
    db.session.commit()
    with pytest.raises(NotFound):
        dedup.restore_pair(user("manager_s"), a, b)  # South does not see East's customers
    db.session.rollback()
    dedup.restore_pair(user("manager"), b, a)
    db.session.commit()
    assert cluster_ids() == {(a, b)}
    assert db.session.scalar(select(AuditLog.object_id).where(AuditLog.action == "restore_duplicate")) is not None
    with pytest.raises(NotFound):
        dedup.restore_pair(user("manager"), a, b)  # nothing left to restore


def test_dismissed_list_shows_only_pairs_wholly_in_scope(ctx: Any, make_customer: Any) -> None:
    a, b = crescent(make_customer)
    south = make_customer("rep_c", name="Crescent Optics", contact_phone="13900000099")
    dedup.dismiss_pair(user("admin"), a, b)
    dedup.dismiss_pair(user("admin"), a, south)
    db.session.commit()
    assert [p.pair for p in dedup.dismissed_in_scope(user("manager"))[0]] == [(a, b)]
    assert dedup.dismissed_in_scope(user("manager"))[1] == 1
    assert dedup.dismissed_in_scope(user("admin"))[1] == 2
    assert dedup.dismissed_in_scope(user("rep_c"))[1] == 0


def test_merging_one_of_the_pair_away_removes_the_dismissal(ctx: Any, make_customer: Any) -> None:
    a, b = crescent(make_customer)
    survivor = make_customer("rep_a", name="Crescent Optoelectronics Ltd", contact_phone="13900000022")
    dedup.dismiss_pair(user("manager"), a, b)
    kept = dedup.dismiss_pair(user("manager"), a, survivor)
    db.session.commit()
    kept_id = kept.id
    merge.merge(db.session.get(Customer, survivor), [db.session.get(Customer, b)], {}, user("manager"))
    db.session.commit()
    # b no longer stands on its own; the survivor's own review stays
    assert [p.id for p in db.session.scalars(select(DismissedPair))] == [kept_id]


def test_deleting_a_customer_removes_its_dismissals(ctx: Any, make_customer: Any) -> None:
    a, b = crescent(make_customer)
    dedup.dismiss_pair(user("manager"), a, b)
    db.session.commit()
    db.session.execute(delete(CustomerStatusChange).where(CustomerStatusChange.customer_id == b))
    db.session.delete(db.session.get(Customer, b))
    db.session.commit()
    assert db.session.scalar(select(DismissedPair)) is None


def test_editing_one_of_a_dismissed_exact_pair_is_not_flagged_against_the_other(
        ctx: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Twin", contact_name="Li", contact_phone="13500000001")
    b = make_customer("rep_a", name="Twin", contact_name="Li", contact_phone="13500000001")
    third = make_customer("rep_a", name="Twin", contact_name="Li", contact_phone="13500000001")
    assert {c.id for c, _ in dedup.matches_for_entry("Twin", "Li", "13500000001", None, exclude_id=b)} == {a, third}
    dedup.dismiss_pair(user("manager"), a, b)
    db.session.commit()
    assert {c.id for c, _ in dedup.matches_for_entry("Twin", "Li", "13500000001", None, exclude_id=b)} == {third}
    assert {c.id for c, _ in dedup.matches_for_entry("Twin", "Li", "13500000001", None)} == {a, b, third}


def test_an_import_updating_the_pair_keeps_the_dismissal(app: Any, run_job: Any, make_customer: Any,  # noqa: F811
                                                         tmp_path: Path) -> None:
    a, b = crescent(make_customer)
    with app.app_context():
        codes = [db.session.get(Customer, pk).code for pk in (a, b)]
        dedup.dismiss_pair(user("manager"), a, b)
        db.session.commit()
        db.session.remove()
    path = write_xlsx(tmp_path / "again.xlsx", {"s": [
        ["客户编号", "客户名称", "联系人姓名", "联系方式", "备注"],
        [codes[0], "Crescent Electronics", "Wu", "13800000011", "imported again"],
        [codes[1], "Crescent Optoelectronics", "Zhang", "13900000022", "imported again"],
    ]})
    job = run_job("rep_a", path, mode="upsert")
    assert (job.updated, job.rejected) == (2, 0)
    with app.app_context():
        assert dedup.scan(None) == []
        assert db.session.scalar(select(DismissedPair.customer_low_id)) == a
        db.session.remove()
