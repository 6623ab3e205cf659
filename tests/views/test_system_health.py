"""Organisation → System health and → Daily checklist (issue 19): Admin only; the figures
with units and states in words; "Check now" stores today's checklist; bad input is a 400."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models.operations import BackupRun, DailyCheck, ErrorEvent, JobRun, SlowRequest
from app.models.org import CrmUser
from app.services import company, settings
from app.services.monitoring import checklist, timer

PAGES = ("/system-health/", "/system-health/checklist")
POSTS = ("/system-health/checklist/run", "/system-health/verify-audit")


@pytest.mark.parametrize("username", ["rep_a", "manager", "viewer", "service"])
def test_non_admins_are_refused_everywhere(client: Any, auth: Any, app: Any, username: str) -> None:
    auth.login(username)
    for path in PAGES:
        response = client.get(path)
        assert response.status_code in (302, 403), (path, response.status_code)
    for path in POSTS:
        response = client.post(path)
        assert response.status_code in (302, 403), (path, response.status_code)
    with app.app_context():
        assert db.session.scalars(select(DailyCheck)).all() == []
        assert db.session.scalars(select(JobRun)).all() == []


def test_anonymous_is_sent_to_login(client: Any) -> None:
    for path in PAGES:
        assert client.get(path).status_code in (302, 401, 403)


def test_the_health_page_shows_figures_with_units_and_words(client: Any, auth: Any, app: Any) -> None:
    with app.app_context():
        db.session.add(SlowRequest(at=clock.utc_now() - timedelta(minutes=5), endpoint="ReportView.show",
                                   path="/reports/show/1", ms=6400))
        db.session.commit()
    timer.record("CustomerView.list", 420)
    auth.login("admin")
    page = client.get("/system-health/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for expected in ("Users online", "Licensed users", "ReportView.show", "6400 ms", "Problem", "≤ 420 ms",
                     "CustomerView.list", "MB", "Failed logins", "Audit chain", "Not checked yet."):
        assert expected in text, expected
    assert client.post("/system-health/verify-audit").status_code == 302
    text = client.get("/system-health/").get_data(as_text=True)
    assert "Intact at" in text


def test_check_now_stores_today_and_the_history_links_days(client: Any, auth: Any, app: Any) -> None:
    auth.login("admin")
    assert "Not checked on this day." in client.get("/system-health/checklist").get_data(as_text=True)
    response = client.post("/system-health/checklist/run")
    assert response.status_code == 302
    with app.app_context():
        check = db.session.scalars(select(DailyCheck)).one()
        day = check.day
    text = client.get("/system-health/checklist").get_data(as_text=True)
    assert "Data backup" in text and "Red" in text and "No backup in this period." in text
    assert f"day={day.isoformat()}" in text
    assert client.get(f"/system-health/checklist?day={day.isoformat()}").status_code == 200
    older = (day - timedelta(days=3)).isoformat()
    assert "Not checked on this day." in client.get(f"/system-health/checklist?day={older}").get_data(as_text=True)


def test_a_bad_day_is_a_clear_400(client: Any, auth: Any) -> None:
    auth.login("admin")
    response = client.get("/system-health/checklist?day=yesterday")
    assert response.status_code == 400


@pytest.fixture
def day_month_year(app: Any) -> Any:
    """The company shows days as 30/11/2026 (Organisation → Company) for the test."""
    with app.app_context():
        admin = db.session.scalar(select(CrmUser).where(CrmUser.username == "admin"))
        settings.save({"date_format": "dmy"}, admin)
        db.session.commit()
    yield
    company.forget()


FROZEN = datetime(2026, 12, 1, 10, 12, tzinfo=UTC)  # 18:12 on 1 December in Shanghai


def test_the_health_page_shows_times_in_the_company_date_format(client: Any, auth: Any, app: Any,
                                                                shanghai: None, day_month_year: None) -> None:
    with app.app_context():
        db.session.add(SlowRequest(at=FROZEN - timedelta(minutes=5), endpoint="ReportView.show",
                                   path="/reports/show/1", ms=6400))
        db.session.add(ErrorEvent(at=FROZEN - timedelta(hours=2), where="CustomerView.list", kind="ValueError"))
        db.session.commit()
    auth.login("admin")
    with clock.frozen(FROZEN):
        client.post("/system-health/verify-audit")
        text = client.get("/system-health/").get_data(as_text=True)
    assert "01/12/2026 18:07" in text and "01/12/2026 16:12" in text  # the slow page, the error
    assert "Intact at 01/12/2026 18:12" in text
    assert "2026-12-01" not in text


def test_the_checklist_says_the_period_it_checked_in_the_company_format(client: Any, auth: Any, app: Any,
                                                                        shanghai: None, day_month_year: None) -> None:
    with app.app_context():
        db.session.add(BackupRun(kind="scheduled", status="ok", started_at=FROZEN - timedelta(hours=10),
                                 finished_at=FROZEN - timedelta(hours=10), verify_status="passed"))
        db.session.commit()
    auth.login("admin")
    with clock.frozen(FROZEN):
        client.post("/system-health/checklist/run")
        text = client.get("/system-health/checklist").get_data(as_text=True)
    assert "Daily checklist: 01/12/2026" in text and "Checked at 01/12/2026 18:12" in text
    assert "The checklist of 01/12/2026. Its figures are of yesterday, 30/11/2026 (00:00–24:00)" in text
    assert "Backup #" in text and "at 01/12/2026 08:12" in text
    rows = {key: row for key, row in re.findall(r'data-key="(\w+)">(.*?)</tr>', text, re.S)}
    assert "Since 30/11/2026 00:00" in rows["backup"]
    assert "Yesterday, 30/11/2026" in rows["performance"] and "Yesterday, 30/11/2026" in rows["logs"]
    assert "At the check" in rows["permissions"] and "At the check" in rows["data"]  # today's state
    # the history: the row of 1 December holds the figures of 30 November
    assert ">01/12/2026</a></td><td>30/11/2026</td>" in text and "day=2026-12-01" in text
    assert "2026-12-01" not in text.replace("day=2026-12-01", "")
    with app.app_context(), clock.frozen(FROZEN - timedelta(days=3)):
        checklist.run()
    with clock.frozen(FROZEN):
        older = client.get("/system-health/checklist?day=2026-11-28").get_data(as_text=True)
    assert "Daily checklist: 28/11/2026" in older and "Its figures are of the day before, 27/11/2026" in older
    assert "The day before, 27/11/2026" in older and "Yesterday" not in older
