"""Issue 16's "done when", end to end through the REST API and the screens: a customer's
complaint arrives on a Friday afternoon before China's National Day make-up Saturday
(2025-10-11, 调休), goes to the service team by a transfer rule, is answered within its
business-hours SLA (the make-up Saturday counted as a working day), waits for the customer
over the weekend (the clock paused), is resolved and rated, and all of it shows on the
customer's page and the ticket's process log. Asia/Shanghai; the seeded standard calendar
(holidays and 调休 from chinese-calendar) and the seeded "high" policy (first response 4 h,
resolution 2 working days of 8 h).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import Department, Priority, Ticket, TicketType, TransferRule
from tests.conftest import user_id

pytestmark = pytest.mark.usefixtures("shanghai")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall time as an aware UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def _ticket(app: Any, pk: int) -> Ticket:
    with app.app_context():
        item = db.session.get(Ticket, pk)
        db.session.expunge(item)
        return item


def _post(client: Any, headers: dict, url: str, at: datetime, body: dict) -> dict:
    with clock.frozen(at):
        response = client.post(url, json=body, headers=headers)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def test_a_complaint_from_arrival_to_rating_on_business_hours_with_a_make_up_saturday(
        app: Any, client: Any, auth: Any, api: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a", name="华腾科技有限公司")
    with app.app_context():
        complaint = db.session.scalar(select(TicketType.id).where(TicketType.code == "complaint"))
        high = db.session.scalar(select(Priority.id).where(Priority.code == "high"))
        service_team = db.session.scalar(select(Department).where(Department.name == "Service"))
        team_id, agent_id = service_team.id, user_id("service")
        db.session.add(TransferRule(name="投诉转客服", position=1, ticket_type_id=complaint, team=service_team,
                                    strategy="round_robin"))
        db.session.commit()
    rep, agent = api("rep_a"), api("service")

    # Friday 2025-10-10 17:00: the rep records the customer's complaint
    made = _post(client, rep, "/api/v1/ticket/", _at(2025, 10, 10, 17), {
        "customer": customer, "ticket_type": complaint, "priority": high, "channel": "电话",
        "subject": "设备安装后无法启动", "description": "客户投诉：新设备安装后无法启动"})
    pk = made["id"]
    item = _ticket(app, pk)
    assert item.assignee_id == agent_id and item.team_id == team_id  # the rule's team, in turn
    # 4 business hours: Fri 17:00-18:00, then the make-up Saturday 09:00-12:00
    assert item.response_due_at == _at(2025, 10, 11, 12)

    # the agent answers on the make-up Saturday at 10:30: in time
    _post(client, agent, f"/api/v1/ticket/{pk}/status", _at(2025, 10, 11, 10, 30),
          {"status": "in_progress", "note": "已电话联系客户，远程排查"})
    # and waits for the customer from 11:00 Saturday until Monday 10:00 (the clock stops)
    _post(client, agent, f"/api/v1/ticket/{pk}/status", _at(2025, 10, 11, 11), {"status": "waiting"})
    paused = _ticket(app, pk)
    assert paused.first_response_at == _at(2025, 10, 11, 10, 30) and not paused.response_breached
    _post(client, agent, f"/api/v1/ticket/{pk}/status", _at(2025, 10, 13, 10), {"status": "in_progress"})
    resumed = _ticket(app, pk)
    # paused: Sat 11:00-12:00 and 13:00-18:00, Mon 09:00-10:00 = 420 working minutes; the 960-minute
    # resolution clock (Fri 60 + Sat 480 + Mon 420 -> Mon 17:00) moves to Tuesday 16:00
    assert resumed.paused_minutes == 420
    assert resumed.resolve_due_at == _at(2025, 10, 14, 16)

    _post(client, agent, f"/api/v1/ticket/{pk}/status", _at(2025, 10, 13, 15),
          {"status": "resolved", "resolution": "更换电源模块后设备正常启动"})
    rated = _post(client, rep, f"/api/v1/ticket/{pk}/rate", _at(2025, 10, 13, 16),
                  {"satisfaction": 5, "comment": "处理及时"})
    assert rated["result"]["satisfaction"] == 5
    done = _ticket(app, pk)
    assert done.status == "resolved" and not done.resolve_breached and not done.response_breached

    # everything shows on the customer's page (tickets tab) and the ticket's process log
    auth.login("rep_a")
    client.get("/lang/zh")
    tab = client.get(f"/customerview/show/{customer}?tab=tickets").get_data(as_text=True)
    assert done.code in tab and "设备安装后无法启动" in tab
    page = client.get(f"/service/tickets/{pk}").get_data(as_text=True)
    for shown in ("已电话联系客户，远程排查", "更换电源模块后设备正常启动", "处理及时", "投诉转客服"):
        assert shown in page, shown
