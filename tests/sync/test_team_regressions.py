"""Failures the randomised team-editing run (``test_team_editing``, ``bench/sync_team.py``)
found, each shrunk to its steps and kept as a plain test on both backends: the steps a team
took, then what a user would notice. ``/work/notes/team_faults.md`` numbers them (#11 on: #1-#10
are the issue's own, covered by ``test_team_faults``). A test whose fault is not fixed yet is
``xfail(strict=True)``: the fix flips it, and the lead removes the mark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from tests.sync import team
from tests.sync.conftest import HEADERS
from tests.sync.test_lifecycle import _archive
from tests.sync.test_team_editing import SIDES

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


# --- Found by the 10x run (`bench.sync_team --scale 10 --seed 2111 --avoid none`) ----------------------
# Shrunk scripts replayed by the harness (tests/sync/team.py), which raises the violation a user
# would notice. The ones still open are strict xfails: the fix flips them.

#: A new row without contact (so without the duplicate rule's identity) typed twice in one round, after
#: a keyed row was copy-pasted and the copy's code cleared: two customers from one row's content.
TYPED_TWICE_WITHOUT_CONTACT = team.Script(
    setup=team.Setup(customers=11, direction="both", policy="newest", deleted_rows="archive", lang="en"),
    rounds=(team.Round(ops=(team.Op("add", 3, 17, 3), team.Op("copy", 3, 17, 3), team.Op("add", 32, 3, 4),
                            team.Op("cell", 38, 3, 0)), fault=None, at=3),))

#: A keyless row of an archived customer with an owner the CRM refuses (`nobody`): its status cell
#: alternates between "archived in the CRM" and the owner message, so a run with no edits rewrites it.
ARCHIVED_ROW_WITH_A_REFUSED_OWNER = team.Script(
    setup=team.Setup(customers=9, direction="pull", policy="sheet", deleted_rows="restore", lang="zh"),
    rounds=(team.Round(ops=(team.Op("crm_restore", 21, 34, 2),), fault="google_timeout", at=3),
            team.Round(ops=(team.Op("copy", 39, 22, 5), team.Op("add", 4, 13, 5), team.Op("add", 39, 20, 0)),
                       fault=None, at=2),
            team.Round(ops=(team.Op("owner", 34, 38, 5), team.Op("cell", 15, 21, 4), team.Op("retype", 31, 6, 4),
                            team.Op("insert", 15, 27, 5)), fault=None, at=2),
            team.Round(ops=(team.Op("crm_merge", 5, 25, 1), team.Op("owner", 38, 20, 0),
                            team.Op("cell", 19, 5, 0)), fault=None, at=1)))


@pytest.mark.parametrize("backend", ["xlsx", "gsheets"])
def test_a_new_row_typed_twice_without_a_contact_creates_one_customer(app: Any, tmp_path: Path,
                                                                      backend: str) -> None:
    played = team.play(app, SIDES[backend](tmp_path), TYPED_TWICE_WITHOUT_CONTACT)
    assert played is not None  # the harness raised team.Violation("duplicate") if two were created


#: Twice a new customer row and a Google timeout mid-run, with owner cells and a retyped row (found at
#: 10x on xlsx). What the run reported as "created twice" was a row typed like a customer without a
#: contact but with another e-mail and note: the manual's duplicate key (name + contact + phone) never
#: matches a blank part, so it is a new customer here as in a form or an import; the harness now judges
#: such customers by the whole row. The same row typed twice stays one customer (test above).
CREATED_TWICE_AROUND_TIMEOUTS = team.Script(
    setup=team.Setup(customers=9, direction="pull", policy="sheet", deleted_rows="restore", lang="zh"),
    rounds=(team.Round(ops=(team.Op("owner", 34, 38, 5), team.Op("add", 15, 21, 4), team.Op("retype", 31, 6, 4),
                            team.Op("insert", 15, 27, 5)), fault="google_timeout", at=3),
            team.Round(ops=(team.Op("copy", 39, 22, 5), team.Op("add", 4, 13, 5), team.Op("add", 39, 20, 0)),
                       fault=None, at=2),
            team.Round(ops=(team.Op("owner", 34, 38, 5), team.Op("add", 15, 21, 4), team.Op("retype", 31, 6, 4),
                            team.Op("insert", 15, 27, 5)), fault="google_timeout", at=3)))


@pytest.mark.parametrize("backend", ["xlsx", "gsheets"])
def test_new_rows_around_failed_runs_create_each_customer_once(app: Any, tmp_path: Path, backend: str) -> None:
    played = team.play(app, SIDES[backend](tmp_path), CREATED_TWICE_AROUND_TIMEOUTS)
    assert played is not None  # the harness raised team.Violation("duplicate") if one was created twice


@pytest.mark.parametrize("backend", ["xlsx", "gsheets"])  # a Google timeout is a changed-file fault on xlsx
def test_an_archived_customers_row_with_a_refused_owner_keeps_one_status(app: Any, tmp_path: Path,
                                                                         backend: str) -> None:
    played = team.play(app, SIDES[backend](tmp_path), ARCHIVED_ROW_WITH_A_REFUSED_OWNER)
    assert played is not None  # the harness raised team.Violation("quiet") if a no-edit run rewrote a cell
