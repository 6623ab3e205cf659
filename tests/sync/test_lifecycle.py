"""What a merge, an archive or a restore in the CRM does to a synced sheet (issue 10): the next
run converges on both backends, the survivor of a merge is never overwritten by the merged-away
record's row, an edit typed in the sheet is never lost, and the runs after it are quiet."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, FollowUp, SyncConflict
from app.services import customers as customer_rules
from app.services import merge as merge_service
from sync import conflicts
from tests.sync.conftest import HEADERS, KILL_POINTS, run_killed_then_again
from tests.sync.test_follow_ups import FOLLOW_UP_HEADERS

CODE, NAME, CONTACT, PHONE, NOTE = 0, 1, 2, 3, 5


def _pair(make_customer: Any) -> tuple[int, int]:
    a = make_customer("rep_a", name="Alpha Trading", contact_name="Li Na", contact_phone="13800000001",
                      note="A's note")
    b = make_customer("rep_a", name="Beta Trading", contact_name="Wang Qiang", contact_phone="13800000002",
                      note="B's note")
    return a, b


def _synced_pair(side: Any, make_target: Any, sync: Any, make_customer: Any) -> tuple[int, int, int]:
    """Two customers, filled into an empty sheet by a first run: (a, b, target id)."""
    a, b = _pair(make_customer)
    side.create([HEADERS])
    target = make_target()
    sync(target)
    return a, b, target


def _merge(app: Any, survivor: int, others: list[int], picks: dict[str, int] | None = None) -> None:
    """The real merge service, as the dedup screen runs it (its step-up is the screen's)."""
    with app.app_context():
        user = appbuilder.sm.find_user(username="manager")
        merge_service.merge(db.session.get(Customer, survivor), [db.session.get(Customer, pk) for pk in others],
                            picks or {}, user)
        db.session.commit()
        db.session.remove()


def _archive(app: Any, pk: int) -> None:
    with app.app_context():
        customer_rules.archive(db.session.get(Customer, pk), may_delete_won=True)
        db.session.commit()
        db.session.remove()


def _restore(app: Any, pk: int) -> None:
    with app.app_context():
        customer_rules.restore(db.session.get(Customer, pk))
        db.session.commit()
        db.session.remove()


def _customer(app: Any, pk: int) -> dict[str, Any]:
    with app.app_context():
        c = db.session.get(Customer, pk)
        return {"code": c.code, "name": c.name, "contact_name": c.contact_name, "contact_phone": c.contact_phone,
                "note": c.note, "archived": c.archived_at is not None}


def _sheet(side: Any) -> dict[str, list[str]]:
    return {row[CODE]: row for row in side.values()[1:]}


def _open_conflicts(app: Any) -> list[tuple[int, str, str | None, str | None, str | None]]:
    with app.app_context():
        return [(c.record_id, c.field, c.base, c.app_value, c.sheet_value) for c in db.session.scalars(
            select(SyncConflict).where(SyncConflict.resolved_at.is_(None)).order_by(SyncConflict.id))]


def _quiet(app: Any, side: Any, sync: Any, target: int, pks: list[int], runs: int = 3) -> None:
    """Further runs with nothing changed write nothing on either side (no flip-flop)."""
    customers, sheet, open_ = [_customer(app, pk) for pk in pks], side.values(), _open_conflicts(app)
    for _ in range(runs):
        log, backend = sync(target)
        assert log.status == "done", log.message
        assert side.writes(backend) == 0, log.counts
        assert not {k for k in log.counts or {} if k.startswith(("app_", "sheet_"))}, log.counts
        assert [_customer(app, pk) for pk in pks] == customers
        assert side.values() == sheet and _open_conflicts(app) == open_


def test_merge_with_both_rows_on_the_sheet_leaves_the_survivor_untouched(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a, b, target = _synced_pair(side, make_target, sync, make_customer)
    _merge(app, a, [b], {"note": b})  # the survivor keeps its name, contact and phone, takes B's note
    survivor = _customer(app, a)
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert _customer(app, a) == survivor and survivor["name"] == "Alpha Trading" and survivor["note"] == "B's note"
    rows = _sheet(side)
    assert list(rows) == [survivor["code"]]  # B's row left the sheet
    assert rows[survivor["code"]][1:4] == ["Alpha Trading", "Li Na", "13800000001"]
    assert rows[survivor["code"]][NOTE] == "B's note"  # the merged value reached A's row
    assert not _open_conflicts(app)
    _quiet(app, side, sync, target, [a, b])


def test_merge_when_only_the_survivor_is_on_the_sheet(app: Any, side: Any, make_target: Any, sync: Any,
                                                      make_customer: Any) -> None:
    a = make_customer("rep_a", name="Alpha Trading", contact_name="Li Na", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    b = make_customer("rep_a", name="Beta Trading", contact_phone="13800000002", note="only in the CRM")
    _merge(app, a, [b])  # the survivor's empty note takes B's
    log, _ = sync(target)
    assert log.status == "done", log.message
    rows = _sheet(side)
    code = _customer(app, a)["code"]
    assert list(rows) == [code] and rows[code][NOTE] == "only in the CRM"
    assert _customer(app, a)["name"] == "Alpha Trading"
    _quiet(app, side, sync, target, [a, b])


def test_merge_when_only_the_merged_away_row_is_on_the_sheet_re_keys_it(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    b = make_customer("rep_a", name="Beta Trading", contact_name="Wang Qiang", contact_phone="13800000002",
                      note="B's note")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    a = make_customer("rep_a", name="Alpha Trading", contact_name="Li Na", contact_phone="13800000001")
    _merge(app, a, [b])
    survivor = _customer(app, a)
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert _customer(app, a) == survivor
    rows = side.values()[1:]
    assert len(rows) == 1  # the same row, now the survivor's: no second row appended
    assert rows[0][:4] == [survivor["code"], "Alpha Trading", "Li Na", "13800000001"]
    assert rows[0][NOTE] == "B's note"  # the survivor's empty note took B's in the merge
    _quiet(app, side, sync, target, [a, b])


def test_merge_with_an_unsynced_edit_on_the_merged_away_row_raises_a_conflict_on_the_survivor(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a, b, target = _synced_pair(side, make_target, sync, make_customer)
    b_row = next(i for i, row in enumerate(side.values()) if row[NAME] == "Beta Trading")
    side.edit({(b_row, NOTE): "typed in the sheet", (b_row, PHONE): "139 0000 0003"})
    _merge(app, a, [b])
    log, _ = sync(target)
    assert log.status == "done", log.message
    survivor = _customer(app, a)
    assert survivor["note"] == "A's note" and survivor["contact_phone"] == "13800000001"  # nothing applied
    assert list(_sheet(side)) == [survivor["code"]]
    assert sorted(c[1:] for c in _open_conflicts(app)) == [
        ("contact_phone", "13800000002", "13800000001", "13900000003"),
        ("note", "B's note", "A's note", "typed in the sheet")]  # base / CRM / sheet, on the survivor
    assert {c[0] for c in _open_conflicts(app)} == {a}
    _quiet(app, side, sync, target, [a, b])
    with app.app_context():  # a person keeps the sheet's note: the next run carries it to A's row
        admin = appbuilder.sm.find_user(username="admin")
        note = db.session.scalar(select(SyncConflict).where(SyncConflict.field == "note"))
        conflicts.resolve(note, conflicts.KEEP_SHEET, admin)
        phone = db.session.scalar(select(SyncConflict).where(SyncConflict.field == "contact_phone"))
        conflicts.resolve(phone, conflicts.KEEP_APP, admin)
        db.session.commit()
        db.session.remove()
    log, _ = sync(target)
    assert _customer(app, a)["note"] == "typed in the sheet"
    row = _sheet(side)[survivor["code"]]
    assert (row[NOTE], row[PHONE]) == ("typed in the sheet", "13800000001")
    _quiet(app, side, sync, target, [a, b])


def test_re_keyed_row_with_an_unsynced_edit_shows_the_survivor_and_keeps_the_edit_as_a_conflict(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    b = make_customer("rep_a", name="Beta Trading", contact_phone="13800000002", note="B's note")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    a = make_customer("rep_a", name="Alpha Trading", contact_phone="13800000001", note="A's note")
    side.edit({(1, NAME): "Beta Trading Ltd"})
    _merge(app, a, [b])
    sync(target)
    survivor = _customer(app, a)
    assert survivor["name"] == "Alpha Trading"
    assert side.values()[1][:2] == [survivor["code"], "Alpha Trading"]
    assert [c[1:] for c in _open_conflicts(app)] == [("name", "Beta Trading", "Alpha Trading", "Beta Trading Ltd")]
    _quiet(app, side, sync, target, [a, b])


def test_archive_then_restore_in_the_crm(app: Any, side: Any, make_target: Any, sync: Any,
                                         make_customer: Any) -> None:
    a, b, target = _synced_pair(side, make_target, sync, make_customer)
    code_a = _customer(app, a)["code"]
    _archive(app, a)
    log, _ = sync(target)
    assert log.counts["sheet_removed"] == 1 and code_a not in _sheet(side)
    _quiet(app, side, sync, target, [a, b])
    _restore(app, a)
    log, _ = sync(target)
    assert log.counts["sheet_added"] == 1 and _sheet(side)[code_a][NAME] == "Alpha Trading"
    _quiet(app, side, sync, target, [a, b])


def test_archived_row_with_an_unsynced_edit_stays_until_restored(app: Any, side: Any, make_target: Any,
                                                                 sync: Any, make_customer: Any) -> None:
    a, _ = _pair(make_customer)
    side.create([HEADERS])
    target = make_target()
    sync(target)
    code_a = _customer(app, a)["code"]
    row = next(i for i, r in enumerate(side.values()) if r[CODE] == code_a)
    side.edit({(row, NOTE): "typed before the archive"})
    _archive(app, a)
    log, _ = sync(target)
    kept = _sheet(side)[code_a]
    assert kept[NOTE] == "typed before the archive" and "archived" in kept[6]
    _quiet(app, side, sync, target, [a])
    _restore(app, a)
    log, _ = sync(target)
    assert _customer(app, a)["note"] == "typed before the archive" and len(_sheet(side)[code_a]) <= 6
    _quiet(app, side, sync, target, [a])


def test_restore_of_a_merged_away_customer_brings_its_row_back(app: Any, side: Any, make_target: Any,
                                                               sync: Any, make_customer: Any) -> None:
    a, b, target = _synced_pair(side, make_target, sync, make_customer)
    _merge(app, a, [b])
    sync(target)
    _restore(app, b)  # the alias goes: B's code is B's again
    log, _ = sync(target)
    rows = _sheet(side)
    assert log.counts["sheet_added"] == 1
    assert rows[_customer(app, b)["code"]][1:4] == ["Beta Trading", "Wang Qiang", "13800000002"]
    assert rows[_customer(app, a)["code"]][NAME] == "Alpha Trading"
    _quiet(app, side, sync, target, [a, b])


def test_restore_before_the_next_run_changes_nothing_on_the_sheet(app: Any, side: Any, make_target: Any,
                                                                  sync: Any, make_customer: Any) -> None:
    a, b, target = _synced_pair(side, make_target, sync, make_customer)
    _merge(app, a, [b])
    _restore(app, b)
    sync(target)
    rows = _sheet(side)
    assert rows[_customer(app, b)["code"]][NAME] == "Beta Trading" and len(rows) == 2
    _quiet(app, side, sync, target, [a, b])


def test_merge_moves_follow_up_rows_to_the_survivor(app: Any, side: Any, make_target: Any, sync: Any,
                                                    make_customer: Any, make_follow_up: Any) -> None:
    a, b = _pair(make_customer)
    follow_up = make_follow_up(b, "rep_a", content="Called B", followed_at=datetime(2024, 5, 1, 9, 30))
    side.create([FOLLOW_UP_HEADERS])
    target = make_target(model="follow_up")
    sync(target)
    assert side.values()[1][1] == _customer(app, b)["code"]
    _merge(app, a, [b])
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert side.values()[1][1] == _customer(app, a)["code"]
    with app.app_context():
        assert db.session.get(FollowUp, follow_up).customer_id == a
    _quiet(app, side, sync, target, [a, b])


def test_a_new_follow_up_row_typed_with_a_merged_away_code_goes_to_the_survivor(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a, b = _pair(make_customer)
    code_b = _customer(app, b)["code"]
    _merge(app, a, [b])
    side.create([FOLLOW_UP_HEADERS, ["", code_b, "2024-05-02 10:00", "电话", "Typed with the old code", ""]])
    target = make_target(model="follow_up")
    log, _ = sync(target)
    assert log.counts["app_created"] == 1, log.message
    with app.app_context():
        created = db.session.scalar(select(FollowUp).where(FollowUp.content == "Typed with the old code"))
        assert created.customer_id == a
    sync(target)  # writes the survivor's code into the row
    assert side.values()[1][1] == _customer(app, a)["code"]
    _quiet(app, side, sync, target, [a, b])


def test_sheet_to_crm_target_keeps_a_crm_edit_instead_of_reverting_it_on_the_next_run(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a, _ = _pair(make_customer)
    side.create([HEADERS])
    target = make_target()
    sync(target)  # filled both ways first
    with app.app_context():
        from app.models import SyncTarget

        db.session.get(SyncTarget, target).direction = "pull"
        db.session.get(Customer, a).note = "edited in the CRM"
        db.session.commit()
    sync(target)
    assert _customer(app, a)["note"] == "edited in the CRM"
    _quiet(app, side, sync, target, [a])
    code_a = _customer(app, a)["code"]
    row = next(i for i, r in enumerate(side.values()) if r[CODE] == code_a)
    side.edit({(row, NOTE): "typed in the sheet"})  # the sheet still leads when it changes
    sync(target)
    assert _customer(app, a)["note"] == "typed in the sheet"
    _quiet(app, side, sync, target, [a])


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_after_a_merge_converges_with_the_edit_kept_once(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, monkeypatch: Any, point: str) -> None:
    a, b, target = _synced_pair(side, make_target, sync, make_customer)
    b_row = next(i for i, row in enumerate(side.values()) if row[NAME] == "Beta Trading")
    side.edit({(b_row, NOTE): "typed in the sheet"})
    _merge(app, a, [b])
    log = run_killed_then_again(app, side, sync, target, monkeypatch, point)
    assert log.status == "done", log.message
    assert list(_sheet(side)) == [_customer(app, a)["code"]] and _customer(app, a)["note"] == "A's note"
    assert [c[1:] for c in _open_conflicts(app)] == [("note", "B's note", "A's note", "typed in the sheet")]
    _quiet(app, side, sync, target, [a, b])


def test_edits_of_the_same_field_on_both_rows_are_both_kept(app: Any, side: Any, make_target: Any, sync: Any,
                                                            make_customer: Any) -> None:
    a, b, target = _synced_pair(side, make_target, sync, make_customer)
    rows = {row[NAME]: i for i, row in enumerate(side.values())}
    side.edit({(rows["Alpha Trading"], NOTE): "typed on A's row", (rows["Beta Trading"], NOTE): "typed on B's row"})
    with app.app_context():
        db.session.get(Customer, a).note = "edited in the CRM"  # both sides changed A's note: a conflict
        db.session.commit()
    _merge(app, a, [b])
    sync(target)
    assert sorted(c[4] for c in _open_conflicts(app)) == ["typed on A's row", "typed on B's row"]
    _quiet(app, side, sync, target, [a, b])
    assert _customer(app, a)["note"] == "edited in the CRM"


@pytest.mark.parametrize("survivor_on_sheet", [True, False])
def test_merge_on_a_sheet_to_crm_target_never_overwrites_the_survivor(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, survivor_on_sheet: bool) -> None:
    b = make_customer("rep_a", name="Beta Trading", contact_name="Wang Qiang", contact_phone="13800000002",
                      note="B's note")
    a = make_customer("rep_a", name="Alpha Trading", contact_name="Li Na", contact_phone="13800000001",
                      note="A's note") if survivor_on_sheet else None
    side.create([HEADERS])
    target = make_target()
    sync(target)  # filled both ways first
    if a is None:
        a = make_customer("rep_a", name="Alpha Trading", contact_name="Li Na", contact_phone="13800000001",
                          note="A's note")
    with app.app_context():
        from app.models import SyncTarget

        db.session.get(SyncTarget, target).direction = "pull"
        db.session.commit()
    _merge(app, a, [b])
    survivor = _customer(app, a)
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert _customer(app, a) == survivor
    assert list(_sheet(side)) == [survivor["code"]]
    _quiet(app, side, sync, target, [a, b])
