"""Failures the randomised team-editing run (``test_team_editing``, ``bench/sync_team.py``)
found, each shrunk to its steps and kept as a plain test on both backends: the steps a team
took, then what a user would notice. ``/work/notes/team_faults.md`` numbers them (#11 on: #1-#10
are the issue's own, covered by ``test_team_faults``). A test whose fault is not fixed yet is
``xfail(strict=True)``: the fix flips it, and the lead removes the mark."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from tests.sync.conftest import HEADERS
from tests.sync.test_lifecycle import _archive

CODE, STATUS = 0, 6  # the code column, and the status column the first run adds after HEADERS


def _alphas(app: Any) -> list[tuple[str, bool]]:
    with app.app_context():
        return [(c.code, c.archived_at is not None) for c in db.session.scalars(
            select(Customer).where(Customer.name == "Alpha Trading").order_by(Customer.id))]


def test_a_row_whose_code_was_cleared_never_brings_its_archived_customer_back_as_a_new_one(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any) -> None:
    alpha = make_customer("rep_a", name="Alpha Trading", contact_name="Li Na", contact_phone="13800000001")
    make_customer("rep_a", name="Beta Trading", contact_name="Wang Qiang", contact_phone="13800000002")
    side.create([HEADERS])
    target = make_target()
    sync(target)
    code = _alphas(app)[0][0]
    row = next(i for i, r in enumerate(side.values()) if r and r[CODE] == code)

    side.edit({(row, CODE): ""})  # someone clears the code cell of Alpha's row
    _archive(app, alpha)  # meanwhile a colleague archives Alpha in the CRM
    log, _ = sync(target)

    assert log.status == "done", log.message
    assert _alphas(app) == [(code, True)]  # still the one archived Alpha, not a second live one
    log, _ = sync(target)
    assert _alphas(app) == [(code, True)]
