"""Service > SLA policies and Working calendars: Admin only (every screen, action and API
refused to others), changes recompute open tickets' deadlines and are audited."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select

from app import clock
from app.extensions import db
from app.models import AuditLog
from app.models.service import CalendarDay, Priority, SlaPolicy, Ticket, TicketType, WorkCalendar
from app.services import sla

pytestmark = pytest.mark.usefixtures("shanghai")
SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def seeded(app: Any) -> dict[str, int]:
    """Seeded policies and calendar (2025 public days), one open high ticket created
    Tue 2025-09-16 10:00 Shanghai (response due 14:00, resolution Thu 09-18 10:00)."""
    with app.app_context():
        sla.seed_defaults()
        calendar = db.session.scalars(select(WorkCalendar)).first()
        sla.import_public_days(calendar, 2025)
        high = db.session.scalars(select(SlaPolicy).where(
            SlaPolicy.priority_id == select(Priority.id).where(Priority.code == "high").scalar_subquery())).one()
        created = datetime(2025, 9, 16, 10, 0, tzinfo=SH)
        item = Ticket(code="T-ADM-1", subject="SLA", status="assigned", created_on=created,
                      type_id=db.session.scalars(select(TicketType.id).where(TicketType.code == "consult")).one(),
                      priority_id=high.priority_id)
        db.session.add(item)
        db.session.flush()
        sla.start(item, created)
        db.session.commit()
        ids = {"calendar": calendar.id, "policy": high.id, "ticket": item.id,
               "day": db.session.scalars(select(CalendarDay.id)).first()}
        db.session.remove()
        return ids


def ticket_due(app: Any, pk: int) -> tuple[datetime, datetime]:
    with app.app_context():
        item = db.session.get(Ticket, pk)
        dues = item.response_due_at.astimezone(SH), item.resolve_due_at.astimezone(SH)
        db.session.remove()
        return dues


def refused(answer: Any) -> bool:
    """Access denied: 403, or FAB's redirect away from the page (an action post goes home)."""
    return answer.status_code in (401, 403) or (answer.status_code == 302 and "/slapolicy" not in
                                                answer.location and "/workcalendar" not in answer.location
                                                and "/calendarday" not in answer.location)


@pytest.mark.parametrize("username", ["rep_a", "manager", "service", "viewer"])
def test_everyone_but_admin_is_refused_every_url_and_api(client: Any, auth: Any, api: Any, seeded: dict,
                                                         app: Any, username: str) -> None:
    p, c, d = seeded["policy"], seeded["calendar"], seeded["day"]
    headers = api(username)
    auth.login(username)
    for url in ("/slapolicyview/list/", f"/slapolicyview/show/{p}", "/slapolicyview/add", f"/slapolicyview/edit/{p}",
                f"/slapolicyview/delete/{p}", "/workcalendarview/list/", f"/workcalendarview/show/{c}",
                f"/workcalendarview/edit/{c}", "/workcalendarview/add", f"/workcalendarview/delete/{c}",
                "/calendardayview/list/", "/calendardayview/add", f"/calendardayview/edit/{d}",
                f"/calendardayview/delete/{d}"):
        assert client.get(url).status_code == 403, url
    with app.app_context():  # this year's days gone: an import that got through would bring them back
        db.session.execute(delete(CalendarDay).where(CalendarDay.day >= date(clock.local_today().year, 1, 1)))
        db.session.commit()
    assert client.post(f"/slapolicyview/edit/{p}", data={"name": "x", "first_response_minutes": "1"}).status_code == 403
    assert refused(client.post(f"/workcalendarview/action/import_holidays/{c}"))
    assert refused(client.post("/workcalendarview/action_post", data={"action": "import_holidays", "rowid": [c]}))
    assert refused(client.post("/calendardayview/add", data={"calendar": c, "day": "2025-09-17", "kind": "holiday"}))
    for url in ("/api/v1/sla_policy/", f"/api/v1/sla_policy/{p}", "/api/v1/work_calendar/",
                f"/api/v1/work_calendar/{c}", "/api/v1/sla_policy/_info"):
        assert client.get(url, headers=headers).status_code in (401, 403), url
    with app.app_context():
        assert db.session.get(SlaPolicy, p).first_response_minutes == 240
        assert db.session.scalars(select(CalendarDay).where(CalendarDay.day == date(2025, 9, 17))).first() is None
        assert db.session.scalars(select(CalendarDay).where(
            CalendarDay.day >= date(clock.local_today().year, 1, 1))).first() is None


def test_admin_sees_policies_as_hours_and_calendars(client: Any, auth: Any, api: Any, seeded: dict) -> None:
    auth.login("admin")
    for url in ("/slapolicyview/list/", f"/slapolicyview/show/{seeded['policy']}",
                f"/slapolicyview/edit/{seeded['policy']}", "/workcalendarview/list/",
                f"/workcalendarview/show/{seeded['calendar']}", f"/calendardayview/edit/{seeded['day']}"):
        assert client.get(url).status_code == 200, url  # what the others are refused is there
    page = client.get("/slapolicyview/list/").get_data(as_text=True)
    assert "4 h" in page and "15 min" in page and "高优先级" in page
    assert "标准工作日" in client.get("/workcalendarview/list/").get_data(as_text=True)
    answer = client.get("/api/v1/sla_policy/", headers=api("admin"))
    assert answer.status_code == 200 and answer.get_json()["count"] == len(sla.DEFAULT_POLICIES)


def test_editing_a_policy_recomputes_open_tickets_and_is_audited(client: Any, auth: Any, app: Any,
                                                                  seeded: dict) -> None:
    auth.login("admin")
    with app.app_context():
        policy = db.session.get(SlaPolicy, seeded["policy"])
        data = {"name": policy.name, "priority": policy.priority_id, "first_response_minutes": "120",
                "resolution_minutes": str(policy.resolution_minutes), "business_hours": "y",
                "calendar": seeded["calendar"], "warn_before_minutes": "30", "escalate": "y", "active": "y"}
        db.session.remove()
    answer = client.post(f"/slapolicyview/edit/{seeded['policy']}", data=data)
    assert answer.status_code == 302
    response_due, resolve_due = ticket_due(app, seeded["ticket"])
    assert response_due == datetime(2025, 9, 16, 12, 0, tzinfo=SH)  # 2 h: 10-12, not after lunch
    assert resolve_due == datetime(2025, 9, 18, 10, 0, tzinfo=SH)
    with app.app_context():
        item = db.session.get(Ticket, seeded["ticket"])
        assert item.response_warn_at.astimezone(SH) == datetime(2025, 9, 16, 11, 30, tzinfo=SH)
        assert db.session.scalars(select(AuditLog).where(AuditLog.object_type == "SlaPolicy")).first() is not None


def test_adding_a_holiday_on_the_screen_moves_deadlines(client: Any, auth: Any, app: Any, seeded: dict) -> None:
    auth.login("admin")
    answer = client.post("/calendardayview/add", data={"calendar": seeded["calendar"], "day": "2025-09-17",
                                                        "kind": "holiday", "name": "Company day"})
    assert answer.status_code == 302
    assert ticket_due(app, seeded["ticket"])[1] == datetime(2025, 9, 19, 10, 0, tzinfo=SH)
    bad = client.post("/calendardayview/add", data={"calendar": seeded["calendar"], "day": "2025-09-18",
                                                     "kind": "party"})
    assert bad.status_code == 200  # the form again, with its error
    with app.app_context():
        assert db.session.scalars(select(CalendarDay).where(CalendarDay.day == date(2025, 9, 18))).first() is None


def test_import_action_says_which_years_the_package_knows(client: Any, auth: Any, seeded: dict) -> None:
    auth.login("admin")
    answer = client.post("/workcalendarview/action_post", data={"action": "import_holidays",
                                                                "rowid": [seeded["calendar"]]},
                         follow_redirects=True)
    assert answer.status_code == 200
    assert "the holiday package knows 2004 to" in answer.get_data(as_text=True)


def calendar_form(**changes: str) -> dict[str, str]:
    data = {"name": "标准工作日", "weekdays": "12345", "day_start": "09:00", "lunch_start": "12:00",
            "lunch_end": "13:00", "day_end": "18:00", "is_default": "y"}
    return {**data, **changes}


def test_weekly_hours_are_edited_checked_and_move_deadlines(client: Any, auth: Any, app: Any, seeded: dict) -> None:
    auth.login("admin")
    url = f"/workcalendarview/edit/{seeded['calendar']}"
    page = client.get(url)
    assert page.status_code == 200 and 'value="09:00"' in page.get_data(as_text=True)
    bad = client.post(url, data=calendar_form(lunch_start="19:00", lunch_end="20:00"), follow_redirects=True)
    assert "Give both lunch times, inside the working day, or neither." in bad.get_data(as_text=True)
    assert client.post(url, data=calendar_form(day_end="08:00"), follow_redirects=True).status_code == 200
    with app.app_context():
        calendar = db.session.get(WorkCalendar, seeded["calendar"])
        assert (calendar.lunch_start.hour, calendar.day_end.hour) == (12, 18)
        db.session.remove()
    # no lunch break: Tue 10:00 + 4 h = 14:00 stays; 8 h days of 9 h now: resolution moves earlier
    assert client.post(url, data=calendar_form(lunch_start="", lunch_end="")).status_code == 302
    response_due, resolve_due = ticket_due(app, seeded["ticket"])
    assert response_due == datetime(2025, 9, 16, 14, 0, tzinfo=SH)
    assert resolve_due == datetime(2025, 9, 17, 17, 0, tzinfo=SH)  # 8 h Tue + 8 h Wed (9-17)
