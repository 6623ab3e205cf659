"""Sync runs against both backends: both-side edits, new rows, invalid rows, conflicts,
deletes, guards, scope, formula text and Chinese."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Customer, SyncConflict
from tests.sync.conftest import HEADERS


def _customer(app: Any, pk: int) -> Customer:
    with app.app_context():
        item = db.session.get(Customer, pk)
        db.session.expunge(item)
        return item


def _codes(app: Any, *pks: int) -> list[str]:
    return [_customer(app, pk).code for pk in pks]


def test_first_run_fills_the_sheet_and_an_unchanged_run_writes_nothing(app: Any, side: Any, make_target: Any,
                                                                       sync: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="星河科技", contact_name="李娜", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target()
    log, backend = sync(target)
    assert log.status == "done", log.message
    values = side.values()
    assert values[0][:6] == HEADERS
    (code,) = _codes(app, a)
    assert [code, "星河科技", "李娜"] == values[1][:3]
    assert values[1][3] == "13800000001"  # the manager may reveal phones
    log, backend = sync(target)
    assert log.status == "done" and side.writes(backend) == 0 and backend.calls["read"] == 1


def test_edits_on_both_sides_flow_across(app: Any, side: Any, make_target: Any, sync: Any,
                                         make_customer: Any) -> None:
    a = make_customer("rep_a", name="星河科技", contact_name="李娜", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    with app.app_context():
        record = db.session.get(Customer, a)
        record.name = "星河科技有限公司"  # edited in the CRM
        db.session.commit()
    side.edit({(1, 5): "电话里说下周来访"})  # note typed in the sheet
    log, _ = sync(target)
    assert log.counts["app_updated"] == 1 and log.counts["sheet_updated"] == 1
    assert side.values()[1][1] == "星河科技有限公司"
    assert _customer(app, a).note == "电话里说下周来访"
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.source == "sync", AuditLog.action == "update"))
        assert "note" in entry.changes and "sync #" in entry.reason


def test_new_sheet_rows_become_customers_and_get_their_code(app: Any, side: Any, make_target: Any,
                                                            sync: Any) -> None:
    side.create([HEADERS, ["", "远航物流", "王强", "021-55667788", "物流", "=HYPERLINK(\"x\")"]])
    target = make_target()
    log, _ = sync(target)
    assert log.counts["app_created"] == 1, log.message
    with app.app_context():
        record = db.session.scalar(select(Customer).where(Customer.name == "远航物流"))
        assert record.industry.code == "G" and record.note == '=HYPERLINK("x")'
        code = record.code
    row = side.values()[1]
    assert row[0] == code and row[5] == '=HYPERLINK("x")'  # the formula text is still text
    log, backend = sync(target)
    assert side.writes(backend) == 0


def test_invalid_rows_get_the_reason_and_are_applied_once_fixed(app: Any, side: Any, make_target: Any,
                                                                 sync: Any) -> None:
    side.create([HEADERS, ["", "坏电话公司", "赵六", "12345", "", ""]])
    target = make_target()
    log, _ = sync(target)
    assert log.counts["app_rejected"] == 1
    row = side.values()[1]
    assert "联系方式" in row[6] and row[0] == ""
    side.edit({(1, 3): "13912345678"})
    log, _ = sync(target)
    assert log.counts["app_created"] == 1
    row = side.values()[1]
    assert row[0].startswith("C") and len(row) <= 6  # the status cell is cleared


@pytest.mark.parametrize("policy", ["app", "sheet", "review"])
def test_conflicts_follow_the_policy(app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any,
                                     policy: str) -> None:
    a = make_customer("rep_a", name="Acme", contact_phone="13800000001", note="base")
    side.create([HEADERS])
    target = make_target(conflict_policy=policy)
    sync(target)
    with app.app_context():
        db.session.get(Customer, a).note = "app side"
        db.session.commit()
    side.edit({(1, 5): "sheet side"})
    log, _ = sync(target)
    note = _customer(app, a).note
    cell = side.values()[1][5]
    if policy == "app":
        assert (note, cell) == ("app side", "app side")
    elif policy == "sheet":
        assert (note, cell) == ("sheet side", "sheet side")
    else:
        assert (note, cell) == ("app side", "sheet side")
        with app.app_context():
            conflict = db.session.scalar(select(SyncConflict))
            assert (conflict.base, conflict.app_value, conflict.sheet_value) == ("base", "app side", "sheet side")


@pytest.mark.parametrize("policy", ["restore", "archive", "review"])
def test_rows_deleted_in_the_sheet_follow_the_policy(app: Any, side: Any, make_target: Any, sync: Any,
                                                     make_customer: Any, policy: str) -> None:
    a = make_customer("rep_a", name="Gone", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target(deleted_rows=policy)
    sync(target)
    side.edit(delete=[1])
    log, _ = sync(target)
    record = _customer(app, a)
    assert record is not None  # never deleted
    rows = side.values()[1:]
    if policy == "restore":
        assert rows and rows[0][1] == "Gone" and record.archived_at is None
    elif policy == "archive":
        assert not rows and record.archived_at is not None
    else:
        assert not rows and record.archived_at is None and log.counts["conflicts"] == 1


def test_archived_in_the_app_leaves_the_sheet(app: Any, side: Any, make_target: Any, sync: Any,
                                              make_customer: Any) -> None:
    a = make_customer("rep_a", name="Leaving", contact_phone="13800000001")
    b = make_customer("rep_a", name="Staying", contact_phone="13800000002")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    with app.app_context():
        from datetime import datetime

        db.session.get(Customer, a).archived_at = datetime.now()
        db.session.commit()
    log, _ = sync(target)
    assert [row[1] for row in side.values()[1:]] == ["Staying"] and log.counts["sheet_removed"] == 1
    assert _customer(app, b).archived_at is None


def test_guards_stop_before_writing(app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    pks = [make_customer("rep_a", name=f"C{n}", contact_phone=f"1380000{n:04d}") for n in range(12)]
    side.create([HEADERS])
    target = make_target()
    sync(target)
    before = side.values()
    side.edit({(0, 1): "公司"})  # header renamed
    with app.app_context():
        from app.models import SyncTarget

        db.session.get(SyncTarget, target).mapping = {h: f for h, f in zip(
            HEADERS, ["code", "name", "contact_name", "contact_phone", "industry", "note"], strict=True)}
        db.session.commit()
    log, backend = sync(target)
    assert log.status == "stopped" and "客户名称" in log.message and side.writes(backend) == 0
    side.edit({(0, 1): "客户名称"})
    code = _codes(app, pks[0])[0]
    side.edit({(2, 0): code})  # the same code twice
    log, backend = sync(target)
    assert log.status == "stopped" and code in log.message and side.writes(backend) == 0
    side.edit({(2, 0): before[2][0]})
    side.edit(delete=list(range(1, 8)))  # 7 of 12 rows gone at once
    log, backend = sync(target)
    assert log.status == "stopped" and "gone from the sheet" in log.message
    with app.app_context():
        assert db.session.query(Customer).filter(Customer.archived_at.isnot(None)).count() == 0


def test_run_as_scope(app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="Mine", contact_phone="13800000001")
    theirs = make_customer("rep_b", name="Theirs", contact_phone="13800000002")
    side.create([HEADERS])
    target = make_target(run_as="rep_a")
    sync(target)
    names = [row[1] for row in side.values()[1:]]
    assert names == ["Mine"]
    assert side.values()[1][3] == "13800000001"  # reps may reveal their own customers' phones
    (their_code,) = _codes(app, theirs)
    side.edit(append=[[their_code, "Stolen", "", "", "", ""]])
    log, _ = sync(target)
    assert _customer(app, theirs).name == "Theirs"
    assert "No customer" in side.values()[2][6]


def test_a_read_only_run_as_user_gets_masked_phones_and_changes_nothing(app: Any, side: Any, make_target: Any,
                                                                       sync: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Masked", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target(run_as="viewer")
    sync(target)
    assert side.values()[1][3] == "138****0001"
    side.edit({(1, 1): "Renamed in the sheet"}, append=[["", "New in sheet", "", "13900000000", "", ""]])
    log, _ = sync(target)
    assert _customer(app, a).name == "Masked" and _customer(app, a).contact_phone == "13800000001"
    assert side.values()[1][1] == "Masked"  # the CRM's value is put back
    with app.app_context():
        assert db.session.query(Customer).count() == 1


def test_preview_says_what_each_side_would_get_and_writes_nothing(app: Any, side: Any, make_target: Any,
                                                                  sync: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Acme", contact_phone="13800000001")
    side.create([HEADERS, ["", "Sheet Co", "Wu", "13900000001", "", ""]])
    target = make_target()
    log, backend = sync(target, dry_run=True)
    assert log.dry_run and log.status == "done"
    assert "CRM creates from sheet rows: 2" in log.message and "sheet rows added" in log.message
    assert side.writes(backend) == 0 and len(side.values()) == 2
    with app.app_context():
        assert db.session.query(Customer).count() == 1 and db.session.get(Customer, a).name == "Acme"


def test_first_sync_links_existing_rows_by_the_duplicate_rule_and_freezes_the_headers(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="星河科技", contact_name="李娜", contact_phone="13800000001")
    side.create([HEADERS, ["", "星河科技", "李娜", "138 0000 0001", "", "from the old sheet"]])
    target = make_target()
    log, _ = sync(target)
    assert log.counts["sheet_linked"] == 1 and "app_created" not in log.counts
    rows = side.values()
    assert len(rows) == 2 and rows[1][0] == _codes(app, a)[0]  # no second row, no second customer
    with app.app_context():
        assert db.session.query(Customer).count() == 1
    side.edit({(0, 5): "说明"})  # the 备注 header renamed afterwards
    log, backend = sync(target)
    assert log.status == "stopped" and "备注" in log.message and side.writes(backend) == 0


def test_a_second_run_while_one_is_in_progress_does_nothing(app: Any, side: Any, make_target: Any, sync: Any,
                                                            make_customer: Any) -> None:
    from datetime import datetime, timedelta

    from app.models import SyncTarget

    make_customer("rep_a", name="Once")
    side.create([HEADERS, ["", "Typed once", "", "13900000001", "", ""]])
    target = make_target()
    with app.app_context():
        db.session.get(SyncTarget, target).running_since = datetime.now()  # the scheduler's run holds it
        db.session.commit()
    log, backend = sync(target)
    assert log.status == "stopped" and "in progress" in log.message and side.writes(backend) == 0
    with app.app_context():
        assert db.session.query(Customer).count() == 1
        db.session.get(SyncTarget, target).running_since = datetime.now() - timedelta(hours=1)  # a dead run
        db.session.commit()
    log, _ = sync(target)
    assert log.status == "done" and log.counts["app_created"] == 1
    with app.app_context():
        assert db.session.get(SyncTarget, target).running_since is None


def test_new_sheet_rows_follow_the_duplicate_rule(app: Any, side: Any, make_target: Any, sync: Any,
                                                  make_customer: Any) -> None:
    make_customer("rep_a", name="On the sheet", contact_name="Li", contact_phone="13800000001")
    make_customer("rep_c", name="Southern Co", contact_name="Wu", contact_phone="13800000009")  # not rep_a's
    side.create([HEADERS])
    target = make_target(run_as="rep_a")
    sync(target)
    side.edit(append=[["", "on the sheet", "li", "138 0000 0001", "", "typed again"],
                      ["", "Southern Co", "Wu", "13800000009", "", ""]])
    log, _ = sync(target)
    assert "app_created" not in log.counts and log.counts["app_rejected"] == 2
    rows = side.values()
    assert "Duplicate of" in rows[2][6] and "On the sheet" in rows[2][6]
    assert "outside your data scope" in rows[3][6] and "Southern" not in rows[3][6]
    with app.app_context():
        assert db.session.query(Customer).count() == 2


def test_a_header_retyped_in_another_case_or_width_keeps_the_frozen_mapping(app: Any, side: Any, make_target: Any,
                                                                          sync: Any, make_customer: Any) -> None:
    """The importer matches ``customer name`` with ``Customer Name``; so does a target's frozen
    mapping (it stopped every run with "Columns missing or renamed" before)."""
    pk = make_customer("rep_a", name="Acme", contact_phone="13800001111")
    headers = ["Customer code", "Customer Name", "Contact", "Phone", "Industry", "Note"]
    side.create([headers])
    target = make_target()
    sync(target)
    side.edit({(0, 1): "customer  name", (0, 5): "ＮＯＴＥ", (1, 5): "retyped headers"})
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert _customer(app, pk).note == "retyped headers"
    assert side.values()[0][1] == "customer  name"  # the sheet's own header stays as typed
