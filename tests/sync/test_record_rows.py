"""Issue 12: the planner reads the records in scope as plain values (``Records.load_rows``: one
column select) and loads the records themselves only for the rows it merges. The values equal what
the loaded records give (so a row's digest is the one an earlier run stored), and a plan made that
way is the plan made with every record loaded."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import CrmUser, Customer, Industry, SyncTarget
from app.security.data_scope import scope_clause
from sync import plan as sync_plan
from sync.fields import FieldCodec
from sync.records import CustomerRecords, FollowUpRecords
from tests.sync.conftest import HEADERS
from tests.sync.test_custom_fields_sync import SIZES
from tests.sync.test_lifecycle import _customer
from tests.sync.test_unchanged_rows import _row

ROW_HEADERS = [*HEADERS, "负责人", "客户规模", "合作年限"]
NAME, NOTE = 1, 5


@pytest.fixture
def fields(make_custom_field: Any) -> None:
    make_custom_field("customer", "size", "choice", label_en="Customer size", label_zh="客户规模", choices=SIZES)
    make_custom_field("customer", "years", "integer", label_en="Years", label_zh="合作年限")


def _customers(make_customer: Any, app: Any) -> list[int]:
    with app.app_context():
        industry = db.session.scalars(select(Industry).where(Industry.active.is_(True))).first().id
    return [make_customer("rep_a", name=f"Row {n}", contact_name=f"联系人{n}", contact_phone=f"1380000{n:04d}",
                          note=None if n % 3 else f"note {n}", industry_id=industry if n % 2 else None,
                          custom={"size": "large", "years": n} if n % 4 else None)
            for n in range(8)]


def test_record_rows_hold_what_the_records_give(app: Any, make_customer: Any, fields: None) -> None:
    pks = _customers(make_customer, app)
    make_customer("rep_b", name="Someone else's")  # out of rep_a's scope
    with app.app_context():
        db.session.get(Customer, pks[5]).archived_at = db.func.now()
        db.session.commit()
        user = db.session.scalar(select(CrmUser).where(CrmUser.username == "rep_a"))
        kind = CustomerRecords()
        mapping = {"客户名称": "name", "联系人姓名": "contact_name", "联系方式": "contact_phone",
                   "所属行业": "industry", "备注": "note", "负责人": "owner", "客户规模": "cf_size",
                   "合作年限": "cf_years"}
        codec = FieldCodec.for_headers(kind.spec, mapping, False, kind.lookups, user)
        by_id, by_code = kind.load_rows(user, codec.raw_attributes(Customer))
        records = db.session.scalars(select(Customer).where(scope_clause(user, Customer))
                                     .order_by(Customer.id)).all()
        assert list(by_id) == [record.id for record in records]
        for record in records:
            row = by_id[record.id]
            assert by_code[record.code] is row
            assert (row.code, row.archived_at is None) == (record.code, record.archived_at is None)
            assert row.raw == codec.app_raw(record)
        assert by_id[pks[5]].archived_at is not None and kind.archived(by_id[pks[5]])


def test_a_follow_ups_customer_column_is_read_from_the_records(app: Any) -> None:
    with app.app_context():
        kind = FollowUpRecords()
        codec = FieldCodec.for_headers(kind.spec, {"客户编号": "customer", "跟进内容": "content"}, False, kind.lookups)
        assert codec.raw_attributes(kind.model) is None  # ``_prefetch`` then loads every keyed row's record


def _plan(app: Any, side: Any, target_id: int) -> dict[str, Any]:
    """The plan of a run as plain values (nothing applied)."""
    with app.app_context():
        target = db.session.get(SyncTarget, target_id)
        user = db.session.get(CrmUser, target.run_as_id)
        plan = sync_plan.build_plan(target, side.backend(target.sheet_id), user)
        seen = {name: getattr(plan, name) for name in (
            "updates", "creates", "archives", "bases", "drop_bases", "conflicts", "twins", "errors", "counts",
            "update_rows", "interim", "maybe_duplicates", "settled", "checked", "unchanged")}
        seen["write"] = (sorted(plan.write.cells.items()), plan.write.append, plan.write.delete, plan.write.headers)
        seen["order"] = (list(plan.updates), list(plan.write.cells), list(plan.bases), list(plan.interim))
        db.session.rollback()
        db.session.remove()
        return seen


def test_a_plan_from_record_rows_is_the_plan_with_every_record_loaded(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, fields: None,
        monkeypatch: Any) -> None:
    pks = _customers(make_customer, app)
    side.create([ROW_HEADERS])
    target = make_target(run_as="rep_a", deleted_rows="archive")
    sync(target)
    sync(target)  # every row agreed and checked
    codes = [_customer(app, pk)["code"] for pk in pks]
    with app.app_context():
        db.session.get(Customer, pks[1]).name = "CRM rename"
        db.session.get(Customer, pks[2]).note = "CRM note"
        db.session.get(Customer, pks[6]).archived_at = db.func.now()
        db.session.commit()
    side.edit({(_row(side, codes[2]), NOTE): "Sheet note",  # both sides: a conflict
               (_row(side, codes[3]), NAME): "Sheet rename"},
              delete=[_row(side, codes[4])],
              append=[["", "New row", "新人", "13900000001", "", "", "", "", ""],
                      ["", "Row 0", "联系人0", "13800000000", "", "", "", "", ""],  # a copy of a keyed row
                      ["", "New row", "新人", "13900000001", "", "", "", "", ""]])  # typed twice
    fast = _plan(app, side, target)
    monkeypatch.setattr(FieldCodec, "raw_attributes", lambda self, model: None)  # every keyed row's record loaded
    loaded = []
    original = sync_plan._Planner.load
    monkeypatch.setattr(sync_plan._Planner, "load", lambda self, ids: loaded.append(len(ids)) or original(self, ids))
    every = _plan(app, side, target)
    assert loaded[0] >= len(pks) - 2  # the reference did read every live keyed row's record
    assert fast == every
    assert fast["unchanged"] and len(fast["unchanged"]) < len(pks)  # some rows skipped, some merged
    counts = fast["counts"]
    assert counts["app_updated"] >= 1 and counts["conflicts"] >= 1 and counts["app_created"] == 1, counts
    assert counts["app_rejected"] >= 2 and counts["app_archived"] == 1 and counts["sheet_removed"] == 1, counts


def test_a_sheet_mapping_only_the_code_digests_as_before(app: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="Only the code")
    with app.app_context():
        user = db.session.scalar(select(CrmUser).where(CrmUser.username == "rep_a"))
        kind = CustomerRecords()
        codec = FieldCodec.for_headers(kind.spec, {}, False, kind.lookups, user)
        by_id, _ = kind.load_rows(user, codec.raw_attributes(Customer))
        for record in db.session.scalars(select(Customer).where(scope_clause(user, Customer))):
            assert by_id[record.id].raw == codec.app_raw(record) == record.id
