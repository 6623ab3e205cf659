"""The ten faults a randomised team-editing run found (issue 21), each as the kind it stands for,
on both backends: merged-away codes, runs dying after the CRM commit, duplicates inside one run,
bases after a failed run, sheet -> CRM targets, re-linked rows, owner cells, stale conflicts,
normalised values and the duplicate check against the run's own changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import delete as sa_delete
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, SyncConflict, SyncRun, SyncTarget
from app.services.errors import RuleViolation
from sync import conflicts
from sync.backends import SheetChanged
from tests.sync.conftest import HEADERS, Killed
from tests.sync.test_lifecycle import _archive, _customer, _merge, _open_conflicts, _sheet

CODE, NAME, CONTACT, PHONE, INDUSTRY, NOTE = 0, 1, 2, 3, 4, 5


def _customers(app: Any, **where: Any) -> list[dict[str, Any]]:
    with app.app_context():
        query = select(Customer).filter_by(**where).order_by(Customer.id)
        return [{"id": c.id, "code": c.code, "name": c.name, "contact_name": c.contact_name,
                 "contact_phone": c.contact_phone, "note": c.note, "email": c.email, "credit_code": c.credit_code,
                 "owner": c.owner.username if c.owner else None, "archived": c.archived_at is not None}
                for c in db.session.scalars(query)]


def _set_target(app: Any, target: int, **fields: Any) -> None:
    with app.app_context():
        item = db.session.get(SyncTarget, target)
        for name, value in fields.items():
            setattr(item, name, value)
        db.session.commit()
        db.session.remove()


def _edit_customer(app: Any, pk: int, **fields: Any) -> None:
    with app.app_context():
        item = db.session.get(Customer, pk)
        for name, value in fields.items():
            setattr(item, name, value)
        db.session.commit()
        db.session.remove()


def _row_of(side: Any, code: str) -> int:
    return next(i for i, row in enumerate(side.values()) if row and row[CODE] == code)


def _killed_before_sheet_write(app: Any, side: Any, sync: Any, target: int, monkeypatch: Any) -> None:
    backend = side.backend()
    monkeypatch.setattr(backend, "write", lambda change, token: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        sync(target, backend=backend)
    monkeypatch.undo()
    with app.app_context():
        db.session.rollback()


def _sheet_changed_at_write(sync: Any, side: Any, target: int, monkeypatch: Any) -> Any:
    backend = side.backend()

    def refuse(change: Any, token: Any) -> None:
        raise SheetChanged("changed while the sync ran")

    monkeypatch.setattr(backend, "write", refuse)
    log, _ = sync(target, backend=backend)
    monkeypatch.undo()
    return log


def _quiet(app: Any, side: Any, sync: Any, target: int, runs: int = 2) -> None:
    before, sheet, open_ = _customers(app), side.values(), _open_conflicts(app)
    for _ in range(runs):
        log, backend = sync(target)
        assert log.status == "done", log.message
        assert side.writes(backend) == 0, (log.counts, side.values())
        assert _customers(app) == before and side.values() == sheet and _open_conflicts(app) == open_


# 1. A merged-away code is never read as its survivor -------------------------------------------


def test_merge_chain_rows_of_both_merged_away_codes_leave_the_survivor_untouched(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001", note="A")
    b = make_customer("rep_a", name="Beta", contact_name="Wang Qiang", contact_phone="13800000002", note="B")
    c = make_customer("rep_a", name="Gamma", contact_name="Zhao Lei", contact_phone="13800000003", note="C")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    _merge(app, b, [a])  # A -> B, then B -> C with no run between: A's code now means C
    _merge(app, c, [b])
    survivor = _customer(app, c)
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert _customer(app, c) == survivor and survivor["contact_phone"] == "13800000003"
    assert list(_sheet(side)) == [survivor["code"]]
    _quiet(app, side, sync, target)


def test_merged_away_row_whose_survivor_was_archived_later_never_becomes_the_survivors_row(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    b = make_customer("rep_a", name="Beta", contact_name="Wang Qiang", contact_phone="13800000002", note="B")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001", note="A")
    code_b = _customer(app, b)["code"]
    side.edit({(_row_of(side, code_b), NOTE): "typed on B's row"})
    _merge(app, a, [b])
    _archive(app, a)
    survivor = _customer(app, a)
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert _customer(app, a) == survivor  # archived, untouched
    rows = side.values()[1:]
    assert survivor["code"] not in {row[CODE] for row in rows}  # an archived customer gets no row
    assert len(rows) == 1 and rows[0][NOTE] == "typed on B's row" and "archived" in rows[0][6]
    _quiet(app, side, sync, target)


# 2. A record created from a row is matched back to it even when its code never reached the sheet


@pytest.mark.parametrize("failure", ["killed", "sheet_changed"])
def test_a_keyless_row_without_identity_is_created_once_when_the_sheet_write_fails(
        app: Any, side: Any, make_target: Any, sync: Any, monkeypatch: Any, failure: str) -> None:
    side.create([HEADERS, ["", "无名公司", "", "13911112222", "", "first"]])
    target = make_target()
    if failure == "killed":
        _killed_before_sheet_write(app, side, sync, target, monkeypatch)
    else:
        assert _sheet_changed_at_write(sync, side, target, monkeypatch).status == "failed"
    assert len(_customers(app, name="无名公司")) == 1  # the CRM commit happened
    log, _ = sync(target)
    assert log.status == "done", log.message
    made = _customers(app, name="无名公司")
    assert len(made) == 1, made
    assert [row[:2] for row in side.values()[1:]] == [[made[0]["code"], "无名公司"]]
    _quiet(app, side, sync, target)


def test_a_follow_up_row_is_created_once_when_the_sheet_write_fails(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, monkeypatch: Any) -> None:
    from app.models import FollowUp
    from tests.sync.test_follow_ups import FOLLOW_UP_HEADERS

    a = make_customer("rep_a", name="Alpha", contact_phone="13800000001")
    code = _customer(app, a)["code"]
    side.create([FOLLOW_UP_HEADERS, ["", code, "2024-05-02 10:00", "电话", "Called once", ""]])
    target = make_target(model="follow_up")
    assert _sheet_changed_at_write(sync, side, target, monkeypatch).status == "failed"
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        assert db.session.query(FollowUp).filter(FollowUp.content == "Called once").count() == 1
    assert len(side.values()) == 2
    _quiet(app, side, sync, target)


# 3. Two identical new rows of one run create one record ----------------------------------------


def test_two_identical_new_rows_create_one_customer(app: Any, side: Any, make_target: Any, sync: Any) -> None:
    row = ["", "新客户", "王五", "13911112222", "物流", ""]
    side.create([HEADERS, row, list(row)])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    made = _customers(app, name="新客户")
    assert len(made) == 1, made
    rows = side.values()[1:]
    assert sorted(r[CODE] for r in rows) == ["", made[0]["code"]]
    assert any("row 2" in (r[6] if len(r) > 6 else "") or made[0]["code"] in (r[6] if len(r) > 6 else "")
               for r in rows if not r[CODE])
    _quiet(app, side, sync, target)


@pytest.mark.parametrize("second", [["", "新客户", "王 五", "139 1111 2222", "", ""],
                                    ["", "新客户", "王五", "13911112222", "", "another note"]])
def test_new_rows_that_are_one_customer_by_the_duplicate_rule_create_one(
        app: Any, side: Any, make_target: Any, sync: Any, second: list[str]) -> None:
    side.create([HEADERS, ["", "新客户", "王五", "13911112222", "物流", ""], second])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert len(_customers(app, name="新客户")) == 1
    sync(target)
    assert len(_customers(app, name="新客户")) == 1


# 4. A sheet value that reached the CRM is the agreed base even when the sheet write failed ------


@pytest.mark.parametrize("policy", ["app", "review"])
def test_a_sheet_edit_applied_before_the_run_failed_is_not_overwritten_later(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, monkeypatch: Any,
        policy: str) -> None:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001", note="old")
    b = make_customer("rep_a", name="Beta", contact_name="Wang", contact_phone="13800000002", note="b")
    side.create([HEADERS])
    target = make_target(conflict_policy=policy)
    sync(target)
    code = _customer(app, a)["code"]
    side.edit({(_row_of(side, code), NOTE): "first sheet edit"})
    _edit_customer(app, b, note="b edited in the CRM")  # a value still to write to the sheet
    assert _sheet_changed_at_write(sync, side, target, monkeypatch).status == "failed"
    assert _customer(app, a)["note"] == "first sheet edit"
    side.edit({(_row_of(side, code), NOTE): "a colleague's later edit"})
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert _customer(app, a)["note"] == "a colleague's later edit"
    assert _sheet(side)[code][NOTE] == "a colleague's later edit"
    assert _sheet(side)[_customer(app, b)["code"]][NOTE] == "b edited in the CRM"
    assert not _open_conflicts(app)
    _quiet(app, side, sync, target)


def test_new_rows_with_one_credit_code_in_two_cases_create_one_customer(
        app: Any, side: Any, make_target: Any, sync: Any) -> None:
    headers = [*HEADERS, "统一社会信用代码"]
    side.create([headers, ["", "信用公司", "", "13911112222", "", "", "91350100M000100Y43"],
                 ["", "信用公司", "", "13911113333", "", "", "91350100m000100y43"]])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert len(_customers(app, name="信用公司")) == 1
    sync(target)
    assert len(_customers(app, name="信用公司")) == 1


def test_a_new_row_with_a_stored_credit_code_in_lower_case_is_a_duplicate(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="信用公司", contact_phone="13911112222", credit_code="91350100M000100Y43")
    headers = [*HEADERS, "统一社会信用代码"]
    side.create([headers])
    target = make_target()
    sync(target)
    side.edit(append=[["", "信用公司二", "", "13911113333", "", "", "91350100m000100y43"]])
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert len(_customers(app, credit_code="91350100M000100Y43")) == 1
    assert "Duplicate" in side.values()[2][7]


# 6. A row matched back to a record with a stored base merges with that base --------------------


@pytest.mark.parametrize("direction", ["both", "pull"])
@pytest.mark.parametrize("how", ["code_cleared", "retyped_after_delete"])
def test_a_re_linked_row_keeps_a_crm_edit_under_sheet_wins(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, how: str, direction: str) -> None:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001", note="old")
    side.create([HEADERS])
    target = make_target(conflict_policy="sheet")
    sync(target)
    _set_target(app, target, direction=direction)  # sheet -> CRM: the sheet wins every conflict
    code = _customer(app, a)["code"]
    row = side.values()[_row_of(side, code)]
    if how == "code_cleared":
        side.edit({(_row_of(side, code), CODE): ""})
    else:
        side.edit(delete=[_row_of(side, code)])
        sync(target)  # "row deleted" kept for review, the base with it
        side.edit(append=[["", *row[1:6]]])
    _edit_customer(app, a, note="edited in the CRM")
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert _customer(app, a)["note"] == "edited in the CRM"
    assert _sheet(side)[code][NOTE] == ("edited in the CRM" if direction == "both" else "old")
    assert len(_customers(app)) == 1
    _quiet(app, side, sync, target)


# 7. Owner cells: every refused cell says why; no cell value raises; names as the importer reads them


OWNER_HEADERS = [*HEADERS, "负责人"]


@pytest.mark.parametrize("cell", ["rep_c", "nobody", "manager_s"])
def test_an_owner_the_crm_refuses_gets_a_row_message_and_the_run_finishes(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, cell: str) -> None:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001")
    side.create([OWNER_HEADERS])
    target = make_target()
    sync(target)
    code = _customer(app, a)["code"]
    side.edit({(_row_of(side, code), 6): cell})
    for _ in range(2):
        log, _ = sync(target)
        assert log.status == "done", log.message
        assert _customers(app, id=a)[0]["owner"] == "rep_a"
        row = _sheet(side)[code]
        assert row[6] == cell and row[7], row  # the cell stays, its row says why
    with app.app_context():
        assert db.session.get(SyncTarget, target).running_since is None


@pytest.mark.parametrize("cell", ["REP_B", " rep_b ", "Rep_B Test"])
def test_an_owner_typed_as_the_importer_reads_it_is_applied_once(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, cell: str) -> None:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001")
    side.create([OWNER_HEADERS])
    target = make_target()
    sync(target)
    code = _customer(app, a)["code"]
    side.edit({(_row_of(side, code), 6): cell})
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert _customers(app, id=a)[0]["owner"] == "rep_b"
    assert len(_sheet(side)[code]) <= 7 or not _sheet(side)[code][7]
    _quiet(app, side, sync, target)


def test_a_crash_inside_a_run_never_leaves_it_running(app: Any, side: Any, make_target: Any, sync: Any,
                                                     make_customer: Any, monkeypatch: Any) -> None:
    make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target()
    _killed_before_sheet_write(app, side, sync, target, monkeypatch)
    with app.app_context():
        runs = db.session.scalars(select(SyncRun).where(SyncRun.target_id == target)).all()
        assert [r.status for r in runs] == ["failed"]
        assert db.session.get(SyncTarget, target).running_since is None


# 8. Every open conflict is looked at again on each run; settling re-checks the values ----------


def _note_conflict(app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> tuple[int, int, str]:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001", note="old")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    code = _customer(app, a)["code"]
    side.edit({(_row_of(side, code), NOTE): "typed in the sheet"})
    _edit_customer(app, a, note="edited in the CRM")
    sync(target)
    assert [c[1:] for c in _open_conflicts(app)] == [("note", "old", "edited in the CRM", "typed in the sheet")]
    return a, target, code


def _settle(app: Any, field: str, choice: str) -> None:
    with app.app_context():
        admin = appbuilder.sm.find_user(username="admin")
        conflict = db.session.scalar(select(SyncConflict).where(SyncConflict.field == field))
        conflicts.resolve(conflict, choice, admin)
        db.session.commit()
        db.session.remove()


def test_a_conflict_closes_when_the_sheet_user_types_the_crms_value(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a, target, code = _note_conflict(app, side, make_target, sync, make_customer)
    side.edit({(_row_of(side, code), NOTE): "edited in the CRM"})
    sync(target)
    assert not _open_conflicts(app)
    with pytest.raises(RuleViolation):
        _settle(app, "note", conflicts.KEEP_SHEET)
    assert _customer(app, a)["note"] == "edited in the CRM"
    _quiet(app, side, sync, target)


def test_settling_a_conflict_after_the_crm_changed_again_is_refused(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a, target, code = _note_conflict(app, side, make_target, sync, make_customer)
    _edit_customer(app, a, note="edited again in the CRM")
    with pytest.raises(RuleViolation):
        _settle(app, "note", conflicts.KEEP_SHEET)
    assert _customer(app, a)["note"] == "edited again in the CRM"
    sync(target)  # the run brings the conflict up to date; then it can be settled
    assert [c[3:] for c in _open_conflicts(app)] == [("edited again in the CRM", "typed in the sheet")]
    _settle(app, "note", conflicts.KEEP_SHEET)
    sync(target)
    assert _customer(app, a)["note"] == "typed in the sheet" and _sheet(side)[code][NOTE] == "typed in the sheet"
    _quiet(app, side, sync, target)


def test_a_row_deleted_conflict_closes_when_the_row_comes_back(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001", note="old")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    code = _customer(app, a)["code"]
    row = side.values()[_row_of(side, code)]
    side.edit(delete=[_row_of(side, code)])
    sync(target)
    assert [c[1] for c in _open_conflicts(app)] == ["_row"]
    side.edit(append=[row[:6]])
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert not _open_conflicts(app)
    with pytest.raises(RuleViolation):
        _settle(app, "_row", conflicts.KEEP_SHEET)
    assert not _customer(app, a)["archived"]
    _quiet(app, side, sync, target)


# 9. A value the CRM normalises is never rewritten by a later run -------------------------------


@pytest.mark.parametrize("header,field,typed,stored", [
    ("电子邮箱", "email", "Li.Na@Example.COM", "li.na@example.com"),
    ("统一社会信用代码", "credit_code", "91350100m000100y43", "91350100M000100Y43")])
def test_a_normalised_value_reaches_the_sheet_in_the_same_run(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, header: str, field: str, typed: str,
        stored: str) -> None:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001")
    side.create([[*HEADERS, header]])
    target = make_target()
    sync(target)
    code = _customer(app, a)["code"]
    side.edit({(_row_of(side, code), 6): typed})
    log, _ = sync(target)
    assert log.status == "done", log.message
    # the CRM stores the normalised form; the cell keeps what was typed (it reads as the stored
    # value, so no later run rewrites it, and a formula showing it survives)
    assert _sheet(side)[code][6] == typed and _customers(app, id=a)[0][field] == stored
    side.edit(append=[["", "Beta", "Wang", "13800000002", "", "", typed.replace("Li.Na", "Wang")]])
    if field == "credit_code":
        _edit_customer(app, a, credit_code=None)
    log, _ = sync(target)
    assert log.status == "done", log.message
    beta = _customers(app, name="Beta")
    assert len(beta) == 1 and beta[0][field] == stored.replace("li.na", "wang")
    assert _sheet(side)[beta[0]["code"]][6] == typed.replace("Li.Na", "Wang")
    _quiet(app, side, sync, target)


# 10. The duplicate check for new rows sees the run's own updates -------------------------------


def test_a_new_row_like_a_customer_whose_phone_the_run_changes_is_created(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Acme", contact_name="Li Na", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    code = _customer(app, a)["code"]
    side.edit({(_row_of(side, code), PHONE): "13800000009"}, append=[["", "Acme", "Li Na", "13800000001", "", ""]])
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert sorted(c["contact_phone"] for c in _customers(app, name="Acme")) == ["13800000001", "13800000009"]
    _quiet(app, side, sync, target)


def test_a_new_row_like_a_customer_as_the_run_changes_it_is_a_duplicate(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Acme", contact_name="Li Na", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    code = _customer(app, a)["code"]
    side.edit({(_row_of(side, code), PHONE): "13800000009"}, append=[["", "Acme", "Li Na", "13800000009", "", ""]])
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert [c["contact_phone"] for c in _customers(app, name="Acme")] == ["13800000009"]
    assert "Duplicate" in side.values()[2][6]
    _quiet(app, side, sync, target)


@pytest.mark.parametrize("cell,owner,message", [("nobody", "rep_a", True), ("REP_B", "rep_b", False),
                                                ("Rep_B Test", "rep_b", False), ("rep_c", "rep_a", True)])
def test_a_follow_up_owner_cell_is_applied_or_refused_with_a_message(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, make_follow_up: Any, cell: str,
        owner: str, message: bool) -> None:
    from app.models import FollowUp
    from tests.sync.test_follow_ups import FOLLOW_UP_HEADERS

    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001")
    pk = make_follow_up(a, "rep_a", content="Called", followed_at=datetime(2024, 5, 1, 9, 30))
    side.create([[*FOLLOW_UP_HEADERS, "负责人"]])
    target = make_target(model="follow_up")
    sync(target)
    side.edit({(1, 6): cell})
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        assert db.session.get(FollowUp, pk).owner.username == owner
    row = side.values()[1]
    assert row[6] == cell  # never put back over what the person typed
    assert bool(row[7:] and row[7]) == message, row
    _quiet(app, side, sync, target)


@pytest.mark.parametrize("edited", [False, True])
def test_a_row_whose_code_was_cleared_as_the_crm_archived_it_is_not_created_again(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, edited: bool) -> None:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001", note="old")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    code = _customer(app, a)["code"]
    row = _row_of(side, code)
    side.edit({(row, CODE): "", **({(row, NOTE): "typed before the archive"} if edited else {})})
    _archive(app, a)
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert len(_customers(app)) == 1 and _customer(app, a)["archived"]  # no second customer from its row
    rows = side.values()[1:]
    if edited:  # the unsynced edit stays on its row with the reason
        assert len(rows) == 1 and rows[0][NOTE] == "typed before the archive" and "archived" in rows[0][6]
    else:
        assert rows == []
    _quiet(app, side, sync, target)


@pytest.mark.parametrize("typed", [["", "Double  Space", "套", "99"], ["", "价格", "个", "1,200"]])
def test_a_declared_type_row_is_created_once_when_the_sheet_write_fails(
        app: Any, side: Any, make_target: Any, sync: Any, monkeypatch: Any, typed: list[str]) -> None:
    from app.models.sales import Product
    from tests.sync.test_declared_types import PRODUCT_HEADERS

    with app.app_context():
        db.session.execute(sa_delete(Product))
        db.session.commit()
    side.create([PRODUCT_HEADERS, typed])
    target = make_target(model="product")
    assert _sheet_changed_at_write(sync, side, target, monkeypatch).status == "failed"
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        made = db.session.scalars(select(Product)).all()
        assert len(made) == 1, [(p.code, p.name) for p in made]
        code = made[0].code
        db.session.execute(sa_delete(Product))
        db.session.commit()
    assert [row[0] for row in side.values()[1:]] == [code]


@pytest.mark.parametrize("direction", ["both", "pull"])
def test_a_keyless_copy_of_a_keyed_row_is_not_created_when_the_crm_changed_the_record(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, direction: str) -> None:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    _set_target(app, target, direction=direction)
    code = _customer(app, a)["code"]
    copy = ["", *side.values()[_row_of(side, code)][1:6]]
    _edit_customer(app, a, contact_phone="13800000009")  # the copy no longer matches the CRM's record
    side.edit(append=[copy])
    log, _ = sync(target)
    assert log.status == "done", log.message
    if direction == "pull":  # the keyed row keeps the values the copy repeats: the copy is that customer
        assert len(_customers(app)) == 1
        assert side.values()[2][CODE] == "" and side.values()[2][6]  # the copy says why it was not created
    else:  # the row now shows the CRM's phone: the copy is another customer, created in this very run
        assert sorted(c["contact_phone"] for c in _customers(app)) == ["13800000001", "13800000009"]
    _quiet(app, side, sync, target)


def test_a_keyless_copy_of_an_archived_customers_row_is_not_created_again(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    code = _customer(app, a)["code"]
    side.edit(append=[["", *side.values()[_row_of(side, code)][1:6]]])  # pasted, its code cleared
    _archive(app, a)
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert len(_customers(app)) == 1 and _customer(app, a)["archived"]
    assert side.values()[1:] == []  # both rows of the archived customer left the sheet
    _quiet(app, side, sync, target)


# A row's content is its identity when the duplicate rule has none (found by the 10x run) ---------------

@pytest.mark.parametrize("how", ["typed_twice", "copied_with_code_cleared"])
def test_a_customer_without_a_contact_repeated_on_the_sheet_is_one_customer(
        app: Any, side: Any, make_target: Any, sync: Any, how: str) -> None:
    row = ["", "无联系人客户", "", "13922223333", "", "备注"]  # no contact: the duplicate rule cannot tell
    side.create([HEADERS, row] + ([list(row)] if how == "typed_twice" else []))
    target = make_target()
    sync(target)
    made = _customers(app, name="无联系人客户")
    assert len(made) == 1, made
    if how == "copied_with_code_cleared":
        side.edit(append=[["", *side.values()[_row_of(side, made[0]["code"])][1:6]]])
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert len(_customers(app, name="无联系人客户")) == 1
    keyless = [r for r in side.values()[1:] if not r[CODE]]
    assert len(keyless) == 1 and made[0]["code"] in keyless[0][6]  # "Same as C…: keep one of the two rows"
    _quiet(app, side, sync, target)


def test_a_customer_without_a_contact_typed_with_other_details_is_a_new_customer(
        app: Any, side: Any, make_target: Any, sync: Any) -> None:
    """The manual's key (name + contact + phone) never matches a blank part: as in a form or an import."""
    side.create([HEADERS, ["", "无联系人客户", "", "13922223333", "", "备注一"],
                 ["", "无联系人客户", "", "13922223333", "", "备注二"]])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert len(_customers(app, name="无联系人客户")) == 2
    _quiet(app, side, sync, target)


def test_two_keyless_rows_of_an_archived_customer_keep_their_status_when_one_leaves(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    """One copy as synced leaves the sheet, the other holds an edit: the edited one keeps the archived
    message run after run (the agreement it is judged by stays while it waits)."""
    a = make_customer("rep_a", name="Alpha", contact_name="Li Na", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    code = _customer(app, a)["code"]
    synced = (side.values()[_row_of(side, code)][1:6] + [""] * 5)[:5]  # trailing blanks are not read back
    edited = [*synced[:4], "a note typed later"]
    side.edit({(_row_of(side, code), CODE): ""}, append=[["", *edited]])
    _archive(app, a)
    log, _ = sync(target)
    assert log.status == "done", log.message
    rows = side.values()[1:]
    assert [(r + [""] * 7)[1:6] for r in rows] == [edited] and "archived" in rows[0][6]
    status = rows[0][6]
    sync(target)
    assert side.values()[1:][0][6] == status
    assert len(_customers(app, name="Alpha")) == 1
    _quiet(app, side, sync, target)
