"""Follow-ups sync like customers: dates both ways, a customer code per row, rules on new rows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.extensions import db
from app.models import Customer, FollowUp

#: The CRM's zone (CRM_TIMEZONE): sheet times are wall time there.
SHANGHAI = ZoneInfo("Asia/Shanghai")
FOLLOW_UP_HEADERS = ["记录编号", "客户编号", "跟进时间", "跟进方式", "跟进内容", "下一步日期"]


def test_follow_ups_round_trip_with_dates(app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any,
                                          make_follow_up: Any) -> None:
    customer = make_customer("rep_a", name="Acme")
    first = make_follow_up(customer, "rep_a", content="Called", followed_at=datetime(2024, 5, 1, 9, 30),
                           next_step_date=date(2024, 5, 8))
    with app.app_context():
        code = db.session.get(Customer, customer).code
    side.create([FOLLOW_UP_HEADERS])
    target = make_target(model="follow_up")
    log, _ = sync(target)
    assert log.status == "done" and log.counts["sheet_added"] == 1, log.message
    row = side.values()[1]
    assert row[1] == code and row[2].startswith("2024-05-01") and row[3] in ("电话", "Phone", "") and row[4] == "Called"
    assert row[5].startswith("2024-05-08")

    side.edit({(1, 5): "2024/6/1"}, append=[["", code, "2024-05-02 10:00", "拜访", "Visited the plant", "2024年6月3日"],
                                            ["", "C19990101001", "2024-05-03", "电话", "Unknown customer", ""]])
    log, _ = sync(target)
    assert log.counts["app_created"] == 1 and log.counts["app_updated"] == 1, log.message
    with app.app_context():
        assert db.session.get(FollowUp, first).next_step_date == date(2024, 6, 1)
        visit = db.session.scalar(select(FollowUp).where(FollowUp.content == "Visited the plant"))
        assert visit.followed_at == datetime(2024, 5, 2, 10, 0, tzinfo=SHANGHAI) and visit.method.code == "visit"
        assert visit.next_step_date == date(2024, 6, 3) and visit.customer_id == customer
    rows = side.values()
    assert rows[2][0].startswith("G") and "客户编号" in rows[3][6]  # code written back; reason for the bad row
    log, backend = sync(target)
    assert side.writes(backend) == 0
