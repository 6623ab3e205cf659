"""Attacks on the sync through merges, archives and odd rows (a second tester's pass)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, FollowUp, SyncConflict
from app.services.errors import RuleViolation
from sync import conflicts
from tests.sync.conftest import HEADERS
from tests.sync.test_follow_ups import FOLLOW_UP_HEADERS
from tests.sync.test_lifecycle import (
    NAME,
    NOTE,
    _archive,
    _customer,
    _merge,
    _open_conflicts,
    _pair,
    _quiet,
    _restore,
    _sheet,
)


@pytest.fixture
def retire(app: Any) -> Any:
    """``retire(Model, code)`` deactivates a dictionary entry until the test ends."""
    retired = []

    def do(model: Any, code: str) -> None:
        with app.app_context():
            db.session.query(model).filter_by(code=code).one().active = False
            db.session.commit()
        retired.append((model, code))

    yield do
    with app.app_context():
        for model, code in retired:
            db.session.query(model).filter_by(code=code).one().active = True
        db.session.commit()


def test_follow_up_edit_after_its_customer_was_archived_does_not_crash_the_run(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, make_follow_up: Any) -> None:
    customer = make_customer("rep_a", name="Acme")
    fu = make_follow_up(customer, "rep_a", content="Called", followed_at=datetime(2024, 5, 1, 9, 30))
    side.create([FOLLOW_UP_HEADERS])
    target = make_target(model="follow_up")
    log, _ = sync(target)
    assert log.status == "done", log.message
    _archive(app, customer)
    side.edit({(1, 4): "Called again"})
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        assert db.session.get(FollowUp, fu).content == "Called"
    assert "archived" in side.values()[1][-1]
    log, backend = sync(target)
    assert log.status == "done" and side.writes(backend) == 0, log.counts


def test_sheet_edit_on_a_customer_whose_type_was_retired_is_applied(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, retire: Any) -> None:
    """An inactive dictionary entry stays valid on the records that hold it (as in the form)."""
    from app.models import CustomerType

    a = make_customer("rep_a", name="Acme", contact_name="Li Na", contact_phone="13800000001")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    retire(CustomerType, "potential")
    side.edit({(1, 5): "typed in the sheet"})
    log, _ = sync(target)
    assert log.status == "done" and log.counts.get("app_updated") == 1, log.message
    with app.app_context():
        assert db.session.get(Customer, a).note == "typed in the sheet"


def test_new_follow_up_row_with_a_retired_method_is_refused_not_crashing(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, retire: Any) -> None:
    from app.models import FollowUpMethod

    customer = make_customer("rep_a", name="Acme")
    with app.app_context():
        code = db.session.get(Customer, customer).code
    retire(FollowUpMethod, "visit")
    side.create([FOLLOW_UP_HEADERS, ["", code, "2024-05-02 10:00", "拜访", "Visited the plant", ""]])
    log, _ = sync(make_target(model="follow_up"))
    assert log.status == "done" and log.counts.get("app_rejected") == 1, log.message
    with app.app_context():
        assert db.session.query(FollowUp).count() == 0
    assert side.values()[1][-1]  # the reason is in the status cell


@pytest.mark.parametrize("how", ["archive", "merge"])
def test_settling_a_conflict_after_the_customer_left_does_not_write_to_the_archived_record(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, how: str) -> None:
    a, b = _pair(make_customer)
    side.create([HEADERS])
    target = make_target()
    sync(target)
    row = next(i for i, r in enumerate(side.values()) if r[NAME] == "Beta Trading")
    side.edit({(row, NOTE): "typed in the sheet"})
    with app.app_context():
        db.session.get(Customer, b).note = "edited in the CRM"
        db.session.commit()
    sync(target)
    assert [c[1] for c in _open_conflicts(app)] == ["note"]
    _archive(app, b) if how == "archive" else _merge(app, a, [b])
    before = _customer(app, b)
    with app.app_context():
        admin = appbuilder.sm.find_user(username="admin")
        conflict = db.session.scalar(select(SyncConflict).where(SyncConflict.record_id == b))
        with pytest.raises(RuleViolation):
            conflicts.resolve(conflict, conflicts.KEEP_SHEET, admin)
        db.session.rollback()
    assert _customer(app, b) == before and before["note"] == "edited in the CRM"


def test_merge_chain_restore_and_re_merge_converge_at_every_step(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    a, b = _pair(make_customer)
    c = make_customer("rep_a", name="Gamma Trading", contact_name="Zhao Lei", contact_phone="13800000003",
                      note="C's note")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    codes = {pk: _customer(app, pk)["code"] for pk in (a, b, c)}
    steps = [
        (lambda: _merge(app, a, [b]), {a, c}),
        (lambda: _merge(app, a, [c]), {a}),
        (lambda: _restore(app, b), {a, b}),
        (lambda: _merge(app, a, [b]), {a}),
        (lambda: _merge(app, c_live(), [a]), None),
    ]

    def c_live() -> int:  # restore C, then merge the survivor A into C (A's aliases follow)
        _restore(app, c)
        return c

    for step, live in steps:
        step()
        log, _ = sync(target)
        assert log.status == "done", log.message
        expected = {codes[pk] for pk in (live or {c})}
        assert set(_sheet(side)) == expected, (log.counts, log.message)
        _quiet(app, side, sync, target, [a, b, c], runs=2)
    assert _customer(app, c)["name"] == "Gamma Trading" and not _open_conflicts(app)


def test_a_run_as_user_whose_account_expired_stops_the_run(app: Any, side: Any, make_target: Any, sync: Any,
                                                           make_customer: Any) -> None:
    from datetime import date, timedelta

    from app.models.org import CrmUser
    from tests.conftest import user_id

    make_customer("rep_a", name="Acme")
    side.create([HEADERS])
    target = make_target(run_as="rep_a")
    with app.app_context():
        db.session.get(CrmUser, user_id("rep_a")).expires_on = date.today() - timedelta(days=1)
        db.session.commit()
    log, backend = sync(target)
    assert log.status == "stopped" and side.writes(backend) == 0 and side.values() == [HEADERS]


def test_two_identical_new_rows_create_one_customer(app: Any, side: Any, make_target: Any, sync: Any) -> None:
    row = ["", "远航物流", "王强", "021-55667788", "物流", ""]
    side.create([HEADERS, row, list(row), ["", "Other Co", "Li", "13800000007", "", ""]])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    with app.app_context():
        assert db.session.query(Customer).filter_by(name="远航物流").count() == 1
        assert db.session.query(Customer).count() == 2
    rows = side.values()[1:]
    assert sum(1 for r in rows if r[0]) == 2 and rows[0][0] in rows[1][-1]
    log, backend = sync(target)
    assert log.status == "done" and side.writes(backend) == 0, log.counts
