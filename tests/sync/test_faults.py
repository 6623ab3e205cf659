"""API budget, retries, and interruptions at every point of a run: both sides converge,
nothing is applied twice, nothing is lost."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from tests.sync.conftest import HEADERS, KILL_POINTS, GoogleSide, XlsxSide, run_killed_then_again


def _scenario(app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> tuple[int, list[int]]:
    """Ten synced customers; then one edit on each side, a new sheet row and one archived record."""
    from datetime import datetime

    pks = [make_customer("rep_a", name=f"客户{n}", contact_name=f"联系人{n}", contact_phone=f"1380000{n:04d}")
           for n in range(10)]
    side.create([HEADERS])
    target = make_target()
    sync(target)
    with app.app_context():
        db.session.get(Customer, pks[0]).name = "改名于CRM"
        db.session.get(Customer, pks[9]).archived_at = datetime.now()
        db.session.commit()
    side.edit({(2, 5): "表格里的备注"}, append=[["", "新客户", "王五", "13911112222", "物流", ""]])
    return target, pks


def _converged(app: Any, side: Any, pks: list[int]) -> None:
    rows = side.values()[1:]
    with app.app_context():
        names = {c.code: c.name for c in db.session.scalars(select(Customer).where(Customer.archived_at.is_(None)))}
        assert db.session.query(Customer).filter(Customer.name == "新客户").count() == 1  # created once
        assert db.session.get(Customer, pks[1]).note == "表格里的备注"
    assert {row[0]: row[1] for row in rows} == names  # same records, same names, archived one gone
    assert "改名于CRM" in names.values()




@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_changed_run_costs_one_read_one_check_and_two_writes(app: Any, side: GoogleSide, make_target: Any, sync: Any,
                                                   make_customer: Any) -> None:
    target, pks = _scenario(app, side, make_target, sync, make_customer)
    log, backend = sync(target)
    assert log.status == "done", log.message
    assert log.api_calls == {"read": 1, "check": 1, "values_write": 1, "structural": 1}  # check: a colleague's edit since the read
    _converged(app, side, pks)
    log, backend = sync(target)
    assert log.api_calls == {"read": 1}


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
def test_a_429_storm_is_retried_with_a_limit(app: Any, side: GoogleSide, make_target: Any, sync: Any,
                                             make_customer: Any) -> None:
    target, pks = _scenario(app, side, make_target, sync, make_customer)
    side.fake.fail_next(3, 429)
    log, _ = sync(target)
    assert log.status == "done" and log.api_calls["read"] == 4
    _converged(app, side, pks)
    side.fake.fail_next(10, 429)
    log, _ = sync(target)
    assert log.status == "failed" and "429" in log.message and log.api_calls["read"] == 5


@pytest.mark.parametrize("side", ["gsheets"], indirect=True)
@pytest.mark.parametrize("position", [1, 2, 3])
@pytest.mark.parametrize("fault", [503, "timeout"])
def test_the_network_failing_at_any_request_converges_on_the_next_run(
        app: Any, side: GoogleSide, make_target: Any, sync: Any, make_customer: Any, position: int,
        fault: Any) -> None:
    target, pks = _scenario(app, side, make_target, sync, make_customer)
    for n in range(position, position + 8):  # from request N on, every attempt fails
        side.fake.fail(n, fault)
    log, _ = sync(target)
    assert log.status == "failed"
    side.fake.faults.clear()
    log, _ = sync(target)
    assert log.status == "done", log.message
    _converged(app, side, pks)
    log, _ = sync(target)
    assert log.api_calls == {"read": 1}  # and then it is quiet


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_between_steps_converges(app: Any, side: Any, make_target: Any, sync: Any,
                                              make_customer: Any, monkeypatch: Any, point: str) -> None:
    target, pks = _scenario(app, side, make_target, sync, make_customer)
    log = run_killed_then_again(app, side, sync, target, monkeypatch, point)
    assert log.status == "done", log.message
    _converged(app, side, pks)


@pytest.mark.parametrize("side", ["xlsx"], indirect=True)
def test_xlsx_changed_between_read_and_write_is_not_overwritten(app: Any, side: XlsxSide, make_target: Any,
                                                                 sync: Any, make_customer: Any) -> None:
    target, pks = _scenario(app, side, make_target, sync, make_customer)
    backend = side.backend()
    real_read = backend.read

    def read_then_someone_saves() -> Any:
        data = real_read()
        side.edit({(3, 5): "saved by a colleague meanwhile"})
        return data

    backend.read = read_then_someone_saves
    log, _ = sync(target, backend=backend)
    assert log.status == "failed" and "changed while the sync ran" in log.message
    assert side.values()[3][5] == "saved by a colleague meanwhile"
    log, _ = sync(target)
    assert log.status == "done"
    _converged(app, side, pks)
    with app.app_context():
        assert db.session.get(Customer, pks[2]).note == "saved by a colleague meanwhile"


@pytest.mark.parametrize("side", ["xlsx"], indirect=True)
def test_xlsx_keeps_other_sheets(app: Any, side: XlsxSide, make_target: Any, sync: Any, make_customer: Any) -> None:
    target, pks = _scenario(app, side, make_target, sync, make_customer)
    sync(target)
    from openpyxl import load_workbook

    assert load_workbook(side.path)["说明"]["A1"].value == "keep me"
