"""Issue 11 §5 on the screens, exports and the API: with CRM_TIMEZONE=Asia/Shanghai and the
clock at 13:09 UTC (21:09 in Shanghai), what is shown, typed, exported and answered is
Shanghai wall time, and what is stored is the UTC instant."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app import clock
from app.extensions import appbuilder, db
from app.models import AuditLog, CrmUser, Customer, FollowUp, TransferSchedule
from app.services import permission_report
from tests.conftest import user_id
from tests.views.test_form_round_trip import served_form

AT = datetime(2026, 11, 30, 13, 9, tzinfo=UTC)  # 21:09 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


pytestmark = pytest.mark.usefixtures("shanghai")


@pytest.fixture
def at_2109() -> Any:
    with clock.frozen(AT):
        yield


def _text(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def _add_customer(client: Any) -> int:
    fields = served_form(client, "/customerview/add", choose=True)
    fields.setlist("name", ["Created at 21:09 Ltd"])
    fields.setlist("contact_phone", ["13812340909"])
    response = client.post("/customerview/add", data=fields)
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
    return db.session.scalar(select(Customer.id).where(Customer.name == "Created at 21:09 Ltd"))


def test_created_on_is_stored_in_utc_and_shown_in_shanghai(app: Any, client: Any, auth: Any, at_2109: Any) -> None:
    auth.login("rep_a")
    with app.app_context():
        pk = _add_customer(client)
        customer = db.session.get(Customer, pk)
        assert customer.created_on == AT and customer.code.startswith("C20261130")
    page = _text(client.get(f"/customerview/show/{pk}"))
    assert "2026-11-30 21:09" in page and "2026-11-30 13:09" not in page
    # The list's "Created on" filter reads what is typed as Shanghai time (Greater than = filter 1).
    assert "Created at 21:09 Ltd" in _text(client.get("/customerview/list/?_flt_1_created_on=2026-11-30 21:08"))
    assert "Created at 21:09 Ltd" not in _text(client.get("/customerview/list/?_flt_1_created_on=2026-11-30 21:10"))


def test_follow_up_default_time_is_local_and_saved_unchanged_is_the_instant(app: Any, client: Any, auth: Any,
                                                                            make_customer: Any,
                                                                            at_2109: Any) -> None:
    pk = make_customer("rep_a")
    auth.login("rep_a")
    url = f"/followupview/add?_flt_0_customer={pk}"
    fields = served_form(client, url)
    assert fields.get("followed_at") == "2026-11-30 21:09:00"  # the clock on the wall, to the second
    fields.setlist("content", ["Called at 21:09"])
    assert client.post(url, data=fields).status_code == 302
    with app.app_context():
        item = db.session.scalar(select(FollowUp).where(FollowUp.customer_id == pk))
        assert item.followed_at == AT  # 13:09 UTC
        item_id = item.id
    assert "2026-11-30 21:09" in _text(client.get("/followupview/list/"))
    edit = served_form(client, f"/followupview/edit/{item_id}")
    assert edit.get("followed_at") == "2026-11-30 21:09:00"


def test_a_typed_follow_up_time_is_shanghai_wall_time(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    auth.login("rep_a")
    url = f"/followupview/add?_flt_0_customer={pk}"
    fields = served_form(client, url)
    fields.setlist("followed_at", ["2026-11-30 08:00:00"])
    fields.setlist("content", ["Morning call"])
    assert client.post(url, data=fields).status_code == 302
    with app.app_context():
        stored = db.session.scalar(select(FollowUp.followed_at).where(FollowUp.content == "Morning call"))
    assert stored == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    # The list filter on the time reads Shanghai time too (Smaller than = filter 2).
    assert "Morning call" in _text(client.get("/followupview/list/?_flt_2_followed_at=2026-11-30 08:01"))
    assert "Morning call" not in _text(client.get("/followupview/list/?_flt_2_followed_at=2026-11-30 07:59"))


def test_a_time_before_the_first_utc_instant_is_a_form_error_not_a_500(client: Any, auth: Any,
                                                                        make_customer: Any) -> None:
    pk = make_customer("rep_a")
    auth.login("rep_a")
    url = f"/followupview/add?_flt_0_customer={pk}"
    fields = served_form(client, url)
    fields.setlist("followed_at", ["0001-01-01 00:00:00"])
    fields.setlist("content", ["Too early"])
    response = client.post(url, data=fields)
    assert response.status_code == 200 and "Not a valid datetime value" in response.get_data(as_text=True)


def test_export_cells_carry_shanghai_wall_time(app: Any, client: Any, auth: Any, make_customer: Any,
                                               make_follow_up: Any) -> None:
    make_follow_up(make_customer("rep_a"), "rep_a", followed_at=AT, content="Exported")
    auth.login("rep_a")
    rows = list(csv.reader(io.StringIO(client.get("/followupview/export/csv").get_data().decode("utf-8-sig"))))
    time_column = rows[0].index("Time")
    assert rows[1][time_column] == "2026-11-30 21:09:00"
    sheet = load_workbook(io.BytesIO(client.get("/followupview/export/xlsx").get_data())).active
    cells = [row for row in sheet.iter_rows(values_only=True)]
    assert cells[1][time_column] == datetime(2026, 11, 30, 21, 9)  # a date-time cell, no zone


def test_home_due_count_uses_the_shanghai_day(app: Any, client: Any, auth: Any, make_customer: Any,
                                              make_follow_up: Any) -> None:
    """At 23:30 UTC on 30 November it is 1 December in Shanghai: a next step on the 1st is due."""
    pk = make_customer("rep_a")
    for label, day in (("due-30th", date(2026, 11, 30)), ("due-1st", date(2026, 12, 1)),
                       ("later-2nd", date(2026, 12, 2))):
        make_follow_up(pk, "rep_a", content=label, next_step_date=day, followed_at=AT)
    auth.login("rep_a")
    with clock.frozen(datetime(2026, 11, 30, 23, 30, tzinfo=UTC)):
        home = _text(client.get("/"))
        assert "2 follow-ups with a next step due" in home
        link = re.search(r'id="follow-ups-due" href="([^"]*)"', home).group(1).replace("&amp;", "&")
        listed = _text(client.get(link))
    assert "due-1st" in listed and "due-30th" in listed and "later-2nd" not in listed


def test_api_answers_with_the_shanghai_offset_and_reads_wall_time(app: Any, client: Any, api: Any,
                                                                   make_customer: Any, make_follow_up: Any) -> None:
    pk = make_customer("rep_a")
    item = make_follow_up(pk, "rep_a", followed_at=AT)
    headers = api("rep_a")
    answer = client.get(f"/api/v1/follow_up/{item}", headers=headers).get_json()["result"]
    assert answer["followed_at"] == "2026-11-30T21:09:00+08:00"
    for sent, expected in (("2026-11-30T21:09:00", AT), ("2026-11-30T13:09:00Z", AT),
                           ("2026-11-30T14:09:00+01:00", AT)):
        response = client.post("/api/v1/follow_up/", headers=headers,
                               json={"customer": pk, "followed_at": sent, "content": f"sent {sent}"})
        assert response.status_code == 201, response.get_json()
        with app.app_context():
            stored = db.session.scalar(select(FollowUp.followed_at).where(FollowUp.content == f"sent {sent}"))
        assert stored == expected, sent


def test_audit_history_and_log_show_shanghai_time(app: Any, client: Any, auth: Any, make_customer: Any,
                                                  make_follow_up: Any) -> None:
    with clock.frozen(AT):
        pk = make_customer("rep_a")
        item = make_follow_up(pk, "rep_a", followed_at=AT)
    auth.login("admin")
    page = _text(client.get(f"/customerview/show/{pk}?tab=history"))
    history = page[page.index('id="record-history"'):]
    assert "2026-11-30 21:09" in history and "13:09" not in history
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.object_type == "FollowUp",
                                                         AuditLog.object_id == str(item)))
        assert '"followed_at": [null, "2026-11-30T13:09:00+00:00"]' in entry.changes  # stored in UTC
        entry_id = entry.id
    shown = _text(client.get(f"/auditlogview/show/{entry_id}"))
    assert "2026-11-30 21:09" in shown  # the entry's time and the follow-up's time, both local
    assert "2026-11-30 21:09" in _text(client.get("/auditlogview/list/"))


def test_last_login_reads_in_shanghai_on_the_report_and_the_user_page(app: Any, client: Any, auth: Any) -> None:
    with clock.frozen(AT):
        auth.login("admin")
    with app.app_context():
        admin = user_id("admin")
        assert db.session.get(CrmUser, admin).last_login == AT
        rows = {row.user.username: row for row in permission_report.build_report()}
        assert rows["admin"].cells()[7] == "2026-11-30 21:09"
        assert rows["admin"].cells(sheet=True)[7] == datetime(2026, 11, 30, 21, 9)
    assert "2026-11-30 21:09" in _text(client.get(f"/users/show/{admin}"))
    sheet = load_workbook(io.BytesIO(client.get("/security/permission-report/download.xlsx").get_data())).active
    assert datetime(2026, 11, 30, 21, 9) in [row[7] for row in sheet.iter_rows(values_only=True)]


def test_permission_report_inactivity_compares_instants(app: Any) -> None:
    with app.app_context():
        user = appbuilder.sm.find_user(username="rep_a")
        user.last_login = datetime(2026, 1, 1, 12, 0, tzinfo=SHANGHAI)
        db.session.commit()
        rows = {row.user.username: row for row in permission_report.build_report(now=AT)}
        assert any("inactive" in flag for flag in rows["rep_a"].flags)


def test_jobs_page_shows_last_and_next_runs_in_shanghai(app: Any, client: Any, auth: Any, tmp_path: Any) -> None:
    with app.app_context():
        db.session.add(TransferSchedule(name="nightly", kind="folder_import", model="customer", cron="5 1 * * *",
                                        mode="upsert", path=str(tmp_path), run_as_id=user_id("rep_a"),
                                        last_run_at=AT, last_status="done"))
        db.session.commit()
    auth.login("admin")
    with clock.frozen(AT):
        page = _text(client.get("/jobs/"))
    assert "2026-12-01 01:05" in page[:page.index('id="transfers"')]  # the 01:05 job, Shanghai time
    assert "2026-11-30 21:09" in page[page.index('id="transfers"'):]  # the schedule's last run


def test_authenticator_page_dates_the_enrolment_in_shanghai(app: Any, client: Any, auth: Any, totp: Any) -> None:
    totp.now = datetime(2026, 11, 30, 17, 30, tzinfo=UTC).timestamp()  # 01:30 on 1 December in Shanghai
    totp.enrol(app, "rep_a")
    auth.login("rep_a")
    assert "Authenticator enrolled on 2026-12-01." in _text(client.get("/totp/"))


def test_an_aware_value_in_any_download_is_written_as_shanghai_wall_time(ctx: Any, tmp_path: Any) -> None:
    from app.services import exporting

    path = tmp_path / "out.xlsx"
    exporting.write_file(path, "xlsx", ["when"], [[AT]])
    assert [row[0] for row in load_workbook(path).active.iter_rows(values_only=True)] == [
        "when", datetime(2026, 11, 30, 21, 9)]
    csv_path = tmp_path / "out.csv"
    exporting.write_file(csv_path, "csv", ["when"], [[AT]])
    assert csv_path.read_text(encoding="utf-8-sig").splitlines()[1] == "2026-11-30 21:09:00"
