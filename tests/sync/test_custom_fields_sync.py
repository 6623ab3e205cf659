"""Custom fields in the two-way sync (issue 18), on both backends: mapped like any column,
shown by label, read back by the field's rule (大型 = large, tags as a set, 是/否), merged
per field (a conflict only when both sides changed the same field), masked fields never in
the sheet in full for a run-as user who may not reveal them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, SyncConflict
from app.services import custom_fields
from tests.sync.conftest import HEADERS

SIZES = [("large", "Large", "大型"), ("medium", "Medium", "中型"), ("small", "Small", "小型")]
NEEDS = [("price", "Price-sensitive", "价格敏感"), ("service", "Service", "重视服务"), ("tech", "Technical", "技术要求高")]
CUSTOM_HEADERS = [*HEADERS, "客户规模", "关键需求标签", "合作年限", "重点客户"]
SIZE, NEEDS_COL, YEARS, VIP = 6, 7, 8, 9


@pytest.fixture
def fields(make_custom_field: Any) -> None:
    make_custom_field("customer", "size", "choice", label_en="Customer size", label_zh="客户规模", choices=SIZES)
    make_custom_field("customer", "needs", "tags", label_en="Key needs", label_zh="关键需求标签", choices=NEEDS)
    make_custom_field("customer", "years", "integer", label_en="Years", label_zh="合作年限")
    make_custom_field("customer", "vip", "boolean", label_en="VIP", label_zh="重点客户")


def _custom(app: Any, pk: int) -> dict:
    with app.app_context():
        return dict(db.session.get(Customer, pk).custom or {})


def _set_custom(app: Any, pk: int, **values: Any) -> None:
    with app.app_context():
        item = db.session.get(Customer, pk)
        custom_fields.apply(item, {f"cf_{k}": v for k, v in values.items()})
        db.session.commit()


def test_round_trip_by_label_and_back_by_the_fields_rule(app: Any, side: Any, make_target: Any, sync: Any,
                                                         make_customer: Any, fields: None) -> None:
    a = make_customer("rep_a", name="星河科技", contact_phone="13800000001",
                      custom={"size": "large", "needs": ["service", "price"], "years": 3, "vip": True})
    side.create([CUSTOM_HEADERS])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    row = side.values()[1]
    assert row[SIZE] == "大型" and row[NEEDS_COL] == "价格敏感, 重视服务" and row[YEARS] == "3" and row[VIP] == "是"

    # the same values written differently are no change; a changed one updates the record
    side.edit({(1, NEEDS_COL): "重视服务，价格敏感", (1, VIP): "Yes", (1, SIZE): "Medium", (1, YEARS): "３"})
    log, backend = sync(target)
    assert log.status == "done" and log.counts.get("app_updated", 0) == 1, log.message
    assert _custom(app, a) == {"size": "medium", "needs": ["service", "price"], "years": 3, "vip": True}

    log, backend = sync(target)  # settled: nothing more to write either way
    assert log.counts.get("app_updated", 0) == 0 and side.writes(backend) == 0

    # a CRM change reaches the sheet by label
    _set_custom(app, a, needs="tech", vip=False)
    log, _ = sync(target)
    assert log.status == "done", log.message
    row = side.values()[1]
    assert row[NEEDS_COL] == "技术要求高" and row[VIP] == "否"

    # a new sheet row becomes a customer with its custom values
    side.edit(append=[["", "新客户", "王五", "13800000002", "", "", "小型", "tech，price", "7", "否"]])
    log, _ = sync(target)
    assert log.counts.get("app_created", 0) == 1, log.message
    with app.app_context():
        created = db.session.scalar(select(Customer).where(Customer.name == "新客户"))
        assert created.custom == {"size": "small", "needs": ["price", "tech"], "years": 7, "vip": False}


def test_a_lead_sheet_syncs_custom_fields_through_the_types_save(app: Any, side: Any, make_target: Any, sync: Any,
                                                                 make_custom_field: Any) -> None:
    from sqlalchemy import delete

    from app.models.sales import Lead, LeadStatusChange

    make_custom_field("lead", "size", "choice", label_en="Customer size", label_zh="客户规模", choices=SIZES)
    side.create([["线索编号", "公司名称", "联系电话", "客户规模"], ["", "线索甲", "13800000003", "大型"]])
    target = make_target(model="lead")
    try:
        log, _ = sync(target)
        assert log.counts.get("app_created", 0) == 1, log.message
        line = side.values()[1]
        side.edit({(1, 3): "Small"})
        log, _ = sync(target)
        assert log.counts.get("app_updated", 0) == 1, log.message
        with app.app_context():
            assert db.session.scalar(select(Lead.custom).where(Lead.code == line[0])) == {"size": "small"}
        assert side.values()[1][3] == "Small"  # equal to the stored value: left as typed
    finally:
        with app.app_context():
            db.session.execute(delete(LeadStatusChange))
            db.session.execute(delete(Lead))
            db.session.commit()


def test_a_bad_cell_is_refused_with_the_fields_message(app: Any, side: Any, make_target: Any, sync: Any,
                                                       make_customer: Any, fields: None) -> None:
    a = make_customer("rep_a", name="星河科技", contact_phone="13800000001", custom={"size": "large"})
    side.create([CUSTOM_HEADERS])
    target = make_target()
    sync(target)
    side.edit({(1, SIZE): "巨型"})
    log, _ = sync(target)
    assert log.counts.get("app_updated", 0) == 0 and _custom(app, a) == {"size": "large"}
    assert log.counts.get("app_rejected", 0) == 1
    status = side.values()[1][len(CUSTOM_HEADERS)]  # the row's status cell
    assert "客户规模" in status and "巨型" in status, status


def test_same_field_edited_on_both_sides_is_a_conflict_and_different_fields_merge(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, fields: None) -> None:
    a = make_customer("rep_a", name="星河科技", contact_phone="13800000001", custom={"size": "large", "years": 1})
    side.create([CUSTOM_HEADERS])
    target = make_target()
    sync(target)

    _set_custom(app, a, years=5)                  # the CRM changes one field,
    side.edit({(1, SIZE): "小型"})                 # the sheet another: both kept
    log, _ = sync(target)
    assert log.status == "done" and log.counts.get("conflicts", 0) == 0, log.message
    assert _custom(app, a) == {"size": "small", "years": 5}
    assert side.values()[1][YEARS] == "5"

    _set_custom(app, a, size="medium")            # both change the same field
    side.edit({(1, SIZE): "大型"})
    log, _ = sync(target)
    assert log.counts.get("conflicts", 0) == 1
    assert _custom(app, a)["size"] == "medium" and side.values()[1][SIZE] == "大型"
    with app.app_context():
        conflict = db.session.scalar(select(SyncConflict))
        assert conflict.field == "cf_size"
        assert (conflict.base, conflict.app_value, conflict.sheet_value) == ("small", "medium", "large")


def test_a_masked_field_never_reaches_the_sheet_in_full(app: Any, side: Any, make_target: Any, sync: Any,
                                                        make_customer: Any, make_custom_field: Any) -> None:
    make_custom_field("customer", "mobile", "text", label_en="Private mobile", label_zh="私人手机", masked=True)
    a = make_customer("rep_a", name="星河科技", contact_phone="13800000001", custom={"mobile": "13912345678"})
    side.create([[*HEADERS, "私人手机"]])
    target = make_target(run_as="viewer")  # may read, may not reveal
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert side.values()[1][6] == "139****5678"
    assert "13912345678" not in repr(side.values())

    side.edit({(1, 5): "备注改了"})  # the masked echo comes back with another change: the value stays
    log, _ = sync(target)
    assert _custom(app, a) == {"mobile": "13912345678"}
    assert "13912345678" not in repr(side.values())


def test_a_mapped_field_no_longer_in_use_stops_the_run_with_a_message(app: Any, side: Any, make_target: Any,
                                                                       sync: Any, make_customer: Any,
                                                                       fields: None) -> None:
    from app.models import CustomField, SyncTarget
    from app.services.importing import columns

    make_customer("rep_a", name="星河科技", contact_phone="13800000001", custom={"years": 3})
    side.create([CUSTOM_HEADERS])
    target = make_target()
    with app.app_context():  # a mapping kept on the target (set on its form)
        db.session.get(SyncTarget, target).mapping = columns.auto_map(columns.MODELS["customer"], CUSTOM_HEADERS)
        db.session.commit()
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        db.session.query(CustomField).filter_by(key="years").update({"active": False})
        db.session.commit()
        custom_fields.refresh(force=True)
    log, _ = sync(target)
    assert log.status != "done" and "合作年限" in log.message and "KeyError" not in log.message
    assert side.values()[1][YEARS] == "3"  # nothing written
