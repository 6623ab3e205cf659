"""A follow-up's 下一步计划 with a date plans its activity from the sync too (issue 14): a new
sheet row plans one, an edited date moves it, and a second run plans nothing more."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Activity, Customer, FollowUp

HEADERS = ["记录编号", "客户编号", "跟进时间", "跟进方式", "跟进内容", "下一步计划", "下一步日期"]


pytestmark = pytest.mark.usefixtures("shanghai")


def _planned(app: Any) -> list[tuple[str, datetime, int]]:
    with app.app_context():
        rows = [(a.subject, a.due_at, a.from_follow_up_id) for a in db.session.scalars(select(Activity))]
        db.session.remove()
        return rows


def test_a_sheet_rows_next_step_plans_and_moves_its_activity(app: Any, side: Any, make_target: Any, sync: Any,
                                                             make_customer: Any) -> None:
    customer = make_customer("rep_a", name="Acme")
    with app.app_context():
        code = db.session.get(Customer, customer).code
        db.session.remove()
    side.create([HEADERS, ["", code, "2026-11-30 10:00", "拜访", "Visited the plant", "Send the offer", "2026-12-02"]])
    target = make_target(model="follow_up")
    log, _ = sync(target)
    assert log.counts["app_created"] == 1, log.message
    with app.app_context():
        follow_up = db.session.scalar(select(FollowUp.id))
        db.session.remove()
    assert _planned(app) == [("Send the offer", datetime(2026, 12, 2, 1, 0, tzinfo=UTC), follow_up)]
    side.edit({(1, 6): "2026-12-04"})
    log, _ = sync(target)
    assert log.counts["app_updated"] == 1, log.message
    assert _planned(app) == [("Send the offer", datetime(2026, 12, 4, 1, 0, tzinfo=UTC), follow_up)]
    sync(target)
    assert len(_planned(app)) == 1
