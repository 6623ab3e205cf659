"""Activities on the screens (/activityview/), the REST API (/api/v1/activity/), My
activities, the calendar feed, the home page and the record pages: an activity on rep_a's
customer is invisible and untouchable for rep_b by every route; the manager sees the
department's. Required follow-up fields through the form, the API and an import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from app import clock
from app.extensions import appbuilder, db
from app.models import Activity, Customer, FollowUp
from app.models.activities import ActivityTemplate
from app.services import activities, settings
from tests.app.services.importing.conftest import run_job  # noqa: F401  (fixture)
from tests.conftest import user_id
from tests.views.test_form_round_trip import served_form

SUBJECT = "Quarterly review with Zhou"


pytestmark = pytest.mark.usefixtures("shanghai")


@pytest.fixture
def planned(app: Any, make_customer: Any) -> Any:
    """``planned(owner, due=…)`` -> (customer id, activity id) of a new activity on a new
    customer of ``owner``, due at ``due`` (default: today 15:00 in the CRM zone)."""

    def make(owner: str = "rep_a", due: datetime | None = None, **values: Any) -> tuple[int, int]:
        customer = make_customer(owner)
        with app.app_context():
            due = due or clock.from_local(datetime.combine(clock.local_today(), datetime.min.time()) + timedelta(hours=15))
            item = Activity(kind="call", subject=SUBJECT, due_at=due, assignee_id=user_id(owner), customer_id=customer,
                            status="open", **values)
            db.session.add(item)
            db.session.commit()
            pk = item.id
            db.session.remove()
        return customer, pk

    return make


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def _status(app: Any, pk: int) -> str:
    with app.app_context():
        status = db.session.get(Activity, pk).status
        db.session.remove()
        return status


def _range(days: int = 14) -> str:
    start = clock.local_today() - timedelta(days=7)
    return f"start={start.isoformat()}T00:00:00%2B08:00&end={(start + timedelta(days=days)).isoformat()}T00:00:00%2B08:00"


# --- scope attacks ---------------------------------------------------------------------

def test_a_colleague_cannot_list_show_edit_complete_or_cancel_by_screens(app: Any, client: Any, auth: Any,
                                                                         planned: Any) -> None:
    _, pk = planned("rep_a")
    auth.login("rep_b")
    assert SUBJECT not in _text(client.get("/activityview/list/"))
    assert client.get(f"/activityview/show/{pk}").status_code == 404
    assert client.get(f"/activityview/edit/{pk}").status_code == 404
    assert client.post(f"/activityview/complete/{pk}", data={"outcome": "done"}).status_code == 404
    assert client.post(f"/activityview/cancel/{pk}").status_code == 404
    assert SUBJECT not in _text(client.get("/activityview/mine/"))
    assert _status(app, pk) == "open"


def test_a_colleague_cannot_read_or_change_it_by_the_api(app: Any, client: Any, api: Any, planned: Any) -> None:
    _, pk = planned("rep_a")
    headers = api("rep_b")
    assert client.get(f"/api/v1/activity/{pk}", headers=headers).status_code == 404
    listed = client.get("/api/v1/activity/", headers=headers).get_json()
    assert listed["count"] == 0
    assert client.put(f"/api/v1/activity/{pk}", json={"subject": "mine", "version": 1},
                      headers=headers).status_code == 404


def test_done_and_cancel_by_the_api_go_through_the_use_cases(app: Any, client: Any, api: Any, planned: Any) -> None:
    customer, pk = planned("rep_a")
    _, other = planned("rep_a")
    assert client.post(f"/api/v1/activity/{pk}/complete", json={"outcome": "Talked"},
                       headers=api("rep_b")).status_code == 404  # a colleague's: not found
    _require_next_step(app)
    refused = client.post(f"/api/v1/activity/{pk}/complete", json={"outcome": "Talked"}, headers=api("rep_a"))
    assert refused.status_code == 422 and "next step" in str(refused.get_json()["message"]["next_step"])
    done = client.post(f"/api/v1/activity/{pk}/complete", headers=api("rep_a"),
                       json={"outcome": "Talked", "next_step": "Send the quote", "next_step_date": "2026-12-20"})
    assert done.status_code == 200 and done.get_json()["result"]["status"] == "done"
    with app.app_context():
        follow_up = db.session.scalar(select(FollowUp).where(FollowUp.customer_id == customer))
        assert (follow_up.content, follow_up.next_step) == ("Talked", "Send the quote")
        planned_next = db.session.scalar(select(Activity).where(Activity.from_follow_up_id == follow_up.id))
        assert planned_next.subject == "Send the quote"  # the next step is the next activity
        db.session.remove()
    assert client.post(f"/api/v1/activity/{pk}/cancel", headers=api("rep_a")).status_code == 409  # closed
    assert client.post(f"/api/v1/activity/{other}/cancel", headers=api("rep_a")).get_json()["result"]["status"] \
        == "cancelled"


def test_the_calendar_feed_shows_only_what_the_reader_may_see(app: Any, client: Any, auth: Any, planned: Any) -> None:
    _, pk = planned("rep_a")
    auth.login("rep_b")
    assert client.get(f"/activityview/events/?{_range()}").get_json() == []
    auth.logout()
    auth.login("manager")
    (event,) = client.get(f"/activityview/events/?{_range()}").get_json()
    assert event["id"] == pk and SUBJECT in event["title"] and event["url"].endswith(f"/activityview/show/{pk}")


def test_a_manager_sees_the_departments_activities_in_the_list_and_api(app: Any, client: Any, auth: Any, api: Any,
                                                                       planned: Any) -> None:
    _, pk = planned("rep_a")
    planned("rep_c")  # South: not the East manager's
    auth.login("manager")
    page = _text(client.get("/activityview/list/"))
    assert page.count(SUBJECT) == 1
    listed = client.get("/api/v1/activity/", headers=api("manager")).get_json()
    assert [row["id"] for row in listed["result"]] == [pk]


def test_the_calendar_refuses_a_range_over_62_days_and_bad_dates(client: Any, auth: Any) -> None:
    auth.login("rep_a")
    too_long = client.get(f"/activityview/events/?{_range(days=63)}")
    assert too_long.status_code == 400 and "62 days" in too_long.get_json()["message"]
    assert client.get("/activityview/events/?start=soon&end=later").status_code == 400


# --- my activities, done, cancel -------------------------------------------------------

def test_my_activities_groups_overdue_today_and_next_days_in_the_crm_zone(app: Any, client: Any, auth: Any,
                                                                          planned: Any) -> None:
    at = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # 01:00 on 1 December in Shanghai
    planned("rep_a", due=datetime(2026, 11, 30, 15, 0, tzinfo=UTC))  # 23:00 on the 30th: overdue
    _, today = planned("rep_a", due=datetime(2026, 12, 1, 6, 0, tzinfo=UTC))  # 14:00 on the 1st
    planned("rep_a", due=datetime(2026, 12, 3, 1, 0, tzinfo=UTC))  # the 3rd
    planned("rep_a", due=datetime(2026, 12, 20, 1, 0, tzinfo=UTC))  # beyond 7 days: not listed
    auth.login("rep_a")
    with clock.frozen(at):
        page = _text(client.get("/activityview/mine/"))
    overdue, rest = page.split('id="activities-today"')
    today_part, upcoming = rest.split('id="activities-upcoming"')
    assert overdue.count("activity-row") == 1 and "2026-11-30 23:00" in overdue
    assert today_part.count("activity-row") == 1 and "2026-12-01 14:00" in today_part
    assert upcoming.count("activity-row") == 1 and "2026-12-03 09:00" in upcoming


def test_done_with_an_outcome_from_my_activities_records_the_follow_up(app: Any, client: Any, auth: Any,
                                                                       planned: Any) -> None:
    customer, pk = planned("rep_a")
    auth.login("rep_a")
    response = client.post(f"/activityview/complete/{pk}", data={"outcome": "Agreed on a trial", "version": "1",
                                                                 "next": "/activityview/mine/"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/activityview/mine/")
    with app.app_context():
        item = db.session.get(Activity, pk)
        assert item.status == "done"
        assert db.session.get(FollowUp, item.follow_up_id).content == "Agreed on a trial"
        db.session.remove()
    again = client.post(f"/activityview/complete/{pk}", data={"outcome": "again"}, follow_redirects=True)
    assert "can no longer be changed" in _text(again)


def test_cancel_is_a_post_and_goes_back_to_the_activity(app: Any, client: Any, auth: Any, planned: Any) -> None:
    _, pk = planned("rep_a")
    auth.login("rep_a")
    assert client.get(f"/activityview/cancel/{pk}").status_code == 405
    response = client.post(f"/activityview/cancel/{pk}", data={"next": "https://evil.example/"})
    assert response.headers["Location"].endswith(f"/activityview/show/{pk}")
    assert _status(app, pk) == "cancelled"


# --- adding ------------------------------------------------------------------------------

def test_plan_an_activity_from_the_customer_page(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    auth.login("rep_a")
    page = _text(client.get(f"/customerview/show/{pk}?tab=activities"))
    assert 'id="record-activities"' in page and f"/activityview/add?_flt_0_customer={pk}" in page
    response = client.post(f"/activityview/add?_flt_0_customer={pk}", data={
        "kind": "visit", "subject": "Site visit", "due_at": "2026-12-02 10:00", "customer": str(pk)})
    assert response.status_code == 302, _text(response)
    with app.app_context():
        item = db.session.scalar(select(Activity))
        assert (item.customer_id, item.kind, item.due_at) == (pk, "visit", datetime(2026, 12, 2, 2, 0, tzinfo=UTC))
        db.session.remove()
    assert "Site visit" in _text(client.get(f"/customerview/show/{pk}?tab=activities"))


def test_the_form_shows_the_rules_messages(client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    auth.login("rep_a")
    page = _text(client.post("/activityview/add", data={"kind": "call", "subject": " ", "due_at": "",
                                                        "customer": str(pk)}))
    assert "This field is required." in page or "A due time is required." in page


def test_the_api_adds_an_activity_and_answers_422_for_bad_input(app: Any, client: Any, api: Any,
                                                                make_customer: Any) -> None:
    pk = make_customer("rep_a")
    headers = api("rep_a")
    created = client.post("/api/v1/activity/", json={"kind": "call", "subject": "Call back", "customer": pk,
                                                     "due_at": "2026-12-02T10:00:00+08:00"}, headers=headers)
    assert created.status_code == 201, created.get_json()
    refused = client.post("/api/v1/activity/", json={"kind": "fax", "subject": "x", "customer": pk,
                                                     "due_at": "2026-12-02T10:00:00+08:00"}, headers=headers)
    assert refused.status_code == 422 and "kind" in str(refused.get_json())


def test_a_colleagues_customer_cannot_take_an_activity_by_the_api(client: Any, api: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    refused = client.post("/api/v1/activity/", json={"kind": "call", "subject": "x", "customer": pk,
                                                     "due_at": "2026-12-02T10:00:00+08:00"}, headers=api("rep_b"))
    assert refused.status_code in (404, 422)


# --- home page, calendar page, templates -------------------------------------------------

def test_the_home_page_shows_todays_and_overdue_activities(app: Any, client: Any, auth: Any, planned: Any) -> None:
    planned("rep_a", due=datetime(2026, 11, 29, 2, 0, tzinfo=UTC))
    planned("rep_a", due=datetime(2026, 11, 30, 6, 0, tzinfo=UTC))
    auth.login("rep_a")
    with clock.frozen(datetime(2026, 11, 30, 2, 0, tzinfo=UTC)):
        page = _text(client.get("/"))
    assert "1 activities today, 1 overdue" in page
    assert 'id="home-activities-overdue"' in page and 'id="home-activities-today"' in page
    auth.logout()
    auth.login("rep_b")
    assert SUBJECT not in _text(client.get("/"))


def test_the_calendar_page_loads_fullcalendar_from_the_app(client: Any, auth: Any) -> None:
    auth.login("rep_a")
    page = _text(client.get("/activityview/calendar/"))
    assert "/static/vendor/fullcalendar/index.global.min.js" in page and "cdn" not in page.lower()
    assert client.get("/static/vendor/fullcalendar/index.global.min.js").status_code == 200


def test_the_template_prefill_endpoint(app: Any, client: Any, auth: Any) -> None:
    with app.app_context():
        activities.seed_templates()
        db.session.commit()
        pk = db.session.scalar(select(ActivityTemplate.id).where(ActivityTemplate.name == "产品介绍"))
        db.session.remove()
    auth.login("rep_a")
    body = client.get(f"/activityview/template/{pk}").get_json()
    assert body["next_step"] == "根据反馈准备方案要点" and body["kind"] == "visit"
    assert 'name="template"' in _text(client.get("/activityview/add"))


# --- required follow-up fields, every entry point -----------------------------------------

def _require_next_step(app: Any) -> None:
    with app.app_context():
        from app.extensions import appbuilder

        settings.save({"follow_up_required": ["content", "next_step"]}, appbuilder.sm.find_user(username="admin"))
        db.session.commit()
        db.session.remove()


def test_required_next_step_in_the_follow_up_form(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    _require_next_step(app)
    auth.login("rep_a")
    url = f"/followupview/add?_flt_0_customer={pk}"
    fields = served_form(client, url)
    fields.setlist("content", ["Called"])
    page = _text(client.post(url, data=fields))
    assert "A next step is required" in page


def test_required_next_step_in_the_api(app: Any, client: Any, api: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    _require_next_step(app)
    refused = client.post("/api/v1/follow_up/", json={"customer": pk, "content": "Called"}, headers=api("rep_a"))
    assert refused.status_code == 422 and "A next step is required" in str(refused.get_json())


def test_required_next_step_in_an_import(app: Any, run_job: Any, make_customer: Any, tmp_path: Path) -> None:  # noqa: F811
    pk = make_customer("rep_a")
    with app.app_context():
        code = db.session.get(Customer, pk).code
        db.session.remove()
    _require_next_step(app)
    path = tmp_path / "follow-ups.csv"
    path.write_text("客户编号,跟进时间,跟进内容,下一步计划,下一步日期\n"
                    f"{code},2026-11-30 10:00,Without a next step,,\n"
                    f"{code},2026-11-30 11:00,With one,Send the quote,2026-12-02\n", encoding="utf-8")
    job = run_job("rep_a", path, model="follow_up")
    assert (job.created, job.rejected) == (1, 1), job.preview
    assert "A next step is required" in str(job.preview)
    with app.app_context():  # the imported next step planned its activity
        item = db.session.scalar(select(Activity))
        assert (item.subject, item.due_at) == ("Send the quote", datetime(2026, 12, 2, 1, 0, tzinfo=UTC))
        db.session.remove()


def test_the_lead_page_lists_its_activities_and_plans_one(app: Any, client: Any, auth: Any) -> None:
    from app.models import Lead

    with app.app_context():
        lead = Lead(company="Acme", contact_name="Li", phone="13812345678", owner_id=user_id("rep_a"), status="new")
        db.session.add(lead)
        db.session.flush()
        db.session.add(Activity(kind="call", subject=SUBJECT, due_at=datetime(2026, 12, 2, 2, 0, tzinfo=UTC),
                                assignee_id=user_id("rep_a"), lead_id=lead.id, status="open"))
        db.session.commit()
        pk = lead.id
        db.session.remove()
    auth.login("rep_a")
    page = _text(client.get(f"/leadview/show/{pk}"))
    assert SUBJECT in page and f"/activityview/add?_flt_0_lead={pk}" in page
    auth.logout()
    auth.login("rep_c")
    assert SUBJECT not in _text(client.get("/activityview/list/"))
    assert client.get(f"/activityview/events/?{_range()}").get_json() == []


def test_lists_show_the_type_and_status_in_words_and_export_in_scope(client: Any, auth: Any, planned: Any) -> None:
    planned("rep_a")
    auth.login("rep_a")
    page = _text(client.get("/activityview/list/"))
    assert "<td>Call</td>" in page.replace("\n", "").replace("  ", "") or ">Call<" in page
    download = client.get("/activityview/export/csv")
    assert download.status_code == 200 and SUBJECT in download.get_data(as_text=True)
    auth.logout()
    auth.login("rep_b")
    download = client.get("/activityview/export/csv")
    assert download.status_code == 200 and SUBJECT not in download.get_data(as_text=True)


def test_only_active_templates_are_offered_on_the_activity_form(app: Any, client: Any, auth: Any) -> None:
    with app.app_context():
        activities.seed_templates()
        db.session.execute(ActivityTemplate.__table__.update().where(ActivityTemplate.name == "合同跟进")
                           .values(active=False))
        db.session.commit()
        db.session.remove()
    auth.login("rep_a")
    offered = client.get("/activityview/related/add/template?q=").get_json()
    names = [row["text"] for row in offered["results"]]
    assert "产品介绍" in names and "合同跟进" not in names


def test_the_calendar_says_when_it_held_back_activities(client: Any, auth: Any, planned: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import unquote

    planned("rep_a")
    planned("rep_a")
    monkeypatch.setattr(activities, "MAX_EVENTS", 1)
    auth.login("rep_a")
    answer = client.get(f"/activityview/events/?{_range()}")
    assert len(answer.get_json()) == 1
    assert "Only the first 1 activities are shown" in unquote(answer.headers["X-Activities-Truncated"])


def test_plan_an_activity_from_the_opportunity_page_takes_its_customer(app: Any, client: Any, auth: Any,
                                                                       make_customer: Any) -> None:
    from app.models.sales import Opportunity, Stage

    customer = make_customer("rep_a")
    with app.app_context():
        stage = db.session.scalar(select(Stage).where(Stage.active.is_(True)).order_by(Stage.id))
        deal = Opportunity(customer_id=customer, title="Big deal", stage=stage, owner_id=user_id("rep_a"))
        db.session.add(deal)
        db.session.commit()
        pk = deal.id
        db.session.remove()
    auth.login("rep_a")
    page = _text(client.get(f"/opportunityview/show/{pk}"))
    assert f"/activityview/add?_flt_0_opportunity={pk}" in page
    response = client.post(f"/activityview/add?_flt_0_opportunity={pk}", data={
        "kind": "meeting", "subject": "Proposal walk-through", "due_at": "2026-12-02 10:00", "opportunity": str(pk)})
    assert response.status_code == 302, _text(response)
    with app.app_context():
        item = db.session.scalar(select(Activity))
        assert (item.opportunity_id, item.customer_id) == (pk, customer)
        db.session.execute(delete(Activity))
        db.session.execute(delete(Opportunity))
        db.session.commit()
        db.session.remove()


def test_the_activity_page_has_done_and_cancel_while_open(app: Any, client: Any, auth: Any, planned: Any) -> None:
    _, pk = planned("rep_a")
    auth.login("rep_a")
    page = _text(client.get(f"/activityview/show/{pk}"))
    assert f'id="activity-actions-{pk}"' in page and f"/activityview/complete/{pk}" in page
    client.post(f"/activityview/cancel/{pk}", data={"next": f"/activityview/show/{pk}"})
    assert f'id="activity-actions-{pk}"' not in _text(client.get(f"/activityview/show/{pk}"))
    auth.logout()
    auth.login("viewer")  # read-only: sees no buttons (and may not post them)
    assert client.post(f"/activityview/complete/{pk}").status_code in (302, 403)
    assert _status(app, pk) == "cancelled"


def test_the_follow_up_form_offers_the_active_templates_to_prefill_it(app: Any, client: Any, auth: Any) -> None:
    with app.app_context():
        db.session.execute(ActivityTemplate.__table__.update().where(ActivityTemplate.name == "合同跟进")
                           .values(active=False))
        db.session.commit()
        db.session.remove()
    auth.login("rep_a")
    page = client.get("/followupview/add").get_data(as_text=True)
    assert 'name="template"' in page and "产品介绍" in page and "合同跟进" not in page
    assert "crm/activity_form.js" in page and "/activityview/template/" in page


def test_the_import_template_and_mapping_follow_the_required_follow_up_fields(app: Any) -> None:
    """Unticking content makes its column optional in the file; ticking the next step marks and
    demands it — the importer asks what the form and the API ask."""
    from io import BytesIO

    from openpyxl import load_workbook

    from app.services.importing import columns, template

    def headers() -> list[str]:
        sheet = load_workbook(BytesIO(template.build_template(columns.FOLLOW_UP, "zh"))).active
        return [cell.value for cell in sheet[1]]

    with app.app_context():
        mapping = {"客户编号": "customer", "跟进时间": "followed_at"}
        assert "跟进内容 *" in headers() and "下一步计划 *" not in headers()
        assert [f.name for f in columns.missing_required(columns.FOLLOW_UP, mapping)] == ["content"]
        settings.save({"follow_up_required": ["next_step"]}, appbuilder.sm.find_user(username="admin"))
        db.session.commit()
        assert "跟进内容" in headers() and "下一步计划 *" in headers()
        assert [f.name for f in columns.missing_required(columns.FOLLOW_UP, mapping)] == ["next_step"]
        db.session.remove()
