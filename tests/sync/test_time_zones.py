"""Sheets hold CRM-zone wall time (issue 11 §5): a follow-up at 13:09 UTC reads 21:09 in the
sheet, a time typed in the sheet is Shanghai time, and the zone never makes a change by itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, FollowUp

HEADERS = ["记录编号", "客户编号", "跟进时间", "跟进方式", "跟进内容", "下一步日期"]
AT = datetime(2026, 11, 30, 13, 9, tzinfo=UTC)  # 21:09 in Shanghai


pytestmark = pytest.mark.usefixtures("shanghai")


def test_sheet_times_are_shanghai_wall_time_both_ways(app: Any, side: Any, make_target: Any, sync: Any,
                                                      make_customer: Any, make_follow_up: Any) -> None:
    customer = make_customer("rep_a", name="Acme")
    item = make_follow_up(customer, "rep_a", content="Called", followed_at=AT)
    with app.app_context():
        code = db.session.get(Customer, customer).code
    side.create([HEADERS])
    target = make_target(model="follow_up")
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert side.values()[1][2].startswith("2026-11-30 21:09")

    log, backend = sync(target)  # nothing changed on either side: no write, no change
    assert side.writes(backend) == 0 and not log.counts.get("app_updated")

    side.edit({(1, 2): "2026-11-30 22:30"}, append=[["", code, "2026-12-01 08:00", "电话", "Typed in the sheet", ""]])
    log, _ = sync(target)
    assert log.counts["app_updated"] == 1 and log.counts["app_created"] == 1, log.message
    with app.app_context():
        assert db.session.get(FollowUp, item).followed_at == datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
        typed = db.session.scalar(select(FollowUp.followed_at).where(FollowUp.content == "Typed in the sheet"))
        assert typed == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
