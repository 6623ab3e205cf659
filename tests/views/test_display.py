"""What a person reads on the pages: no "None", no "__None", no microseconds, labels
instead of codes and ids, error pages inside the layout (issue 11, section 6)."""

from __future__ import annotations

import re
from datetime import datetime
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.extensions import db
from app.models import Customer, Industry, SyncRun, SyncTarget
from tests.conftest import user_id

#: The CRM's zone (CRM_TIMEZONE): pages show instants as wall time there.
SHANGHAI = ZoneInfo("Asia/Shanghai")
MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d+")


class _Text(HTMLParser):
    """The visible text of a page (no scripts, styles, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def visible(response: Any) -> list[str]:
    parser = _Text()
    parser.feed(response.get_data(as_text=True))
    return parser.parts


def _assert_readable(response: Any) -> list[str]:
    assert response.status_code == 200
    texts = visible(response)
    assert "None" not in texts and "__None" not in texts
    assert not [t for t in texts if MICROSECONDS.search(t)]
    return texts


@pytest.fixture(params=["en", "zh"])
def lang(request: Any, client: Any) -> str:
    client.get(f"/lang/{request.param}")
    return request.param


def test_empty_fields_and_times_read_as_a_person_expects(app: Any, client: Any, auth: Any, lang: str,
                                                         make_customer: Any, make_follow_up: Any) -> None:
    pk = make_customer("rep_a", name="Acme")  # no industry, level, source, contact name
    make_follow_up(pk, "rep_a", followed_at=datetime(2026, 5, 4, 9, 30, 12, 345678, tzinfo=SHANGHAI))
    auth.login("admin")
    client.get(f"/lang/{lang}")
    for page in ("/customerview/list/", f"/customerview/show/{pk}", "/followupview/list/",
                 "/auditlogview/list/"):
        texts = _assert_readable(client.get(page))
        assert texts
    assert "2026-05-04 09:30" in visible(client.get("/followupview/list/"))


def test_blank_choice_is_named_not_dunder_none(client: Any, auth: Any, lang: str) -> None:
    auth.login("admin")
    client.get(f"/lang/{lang}")
    for page in ("/customerview/add", "/followupview/add"):
        html = client.get(page).get_data(as_text=True)
        assert ">__None<" not in html and "__None</option>" not in html
        assert 'value="__None"' in html  # what WTForms reads back stays the same


def test_sync_target_and_run_show_labels_not_codes(app: Any, client: Any, auth: Any, tmp_path: Any) -> None:
    with app.app_context():
        target = SyncTarget(name="team sheet", backend="xlsx", location=str(tmp_path / "t.xlsx"),
                            worksheet="客户", run_as_id=user_id("manager"), enabled=False, direction="both",
                            conflict_policy="review")
        db.session.add(target)
        db.session.flush()
        db.session.add(SyncRun(target_id=target.id, status="done", trigger="manual",
                               started_at=datetime(2026, 5, 4, 9, 30, 1, 123456, tzinfo=SHANGHAI),
                               counts={"app_created": 2, "conflicts": 0}, api_calls={"read": 3}))
        db.session.commit()
        pk = target.id
    auth.login("admin")
    texts = visible(client.get("/synctargetview/list/"))
    assert "Both ways" in texts and "Keep for review" in texts and "No" in texts
    assert not {"both", "review", "False"} & set(texts)
    show = visible(client.get(f"/synctargetview/show/{pk}"))
    assert "Keep for review" in show and "review" not in show
    html = client.get("/syncrunview/list/").get_data(as_text=True)
    assert "Created in the CRM: 2" in html and "Reads: 3" in html and "{" not in "".join(visible_html(html))
    assert "Conflicts: 0" not in html and "2026-05-04 09:30" in html and ".123456" not in html
    client.get("/lang/zh")
    zh = visible(client.get("/syncrunview/list/"))
    assert "manual" not in zh and "done" not in zh


def visible_html(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return parser.parts


def _changed_industry(app: Any, make_customer: Any) -> tuple[int, str]:
    pk = make_customer("rep_a", name="Acme")
    with app.app_context():
        entry = db.session.query(Industry).order_by(Industry.id).first()
        customer = db.session.get(Customer, pk)
        customer.industry = entry
        db.session.commit()
        return pk, str(entry)


def test_customer_history_shows_labels_and_names_not_ids(app: Any, client: Any, auth: Any,
                                                         make_customer: Any) -> None:
    pk, industry = _changed_industry(app, make_customer)
    auth.login("admin")
    html = client.get(f"/customerview/show/{pk}?tab=history").get_data(as_text=True)
    history = html[html.index('id="record-history"'):]
    assert "industry_id" not in history and "owner_id" not in history
    assert "Industry</strong>: — → " + industry in history
    assert "Owner</strong>: — → Rep_A Test" in history
    assert "Recorded at" in history and "Entered via" in history


def test_audit_log_entry_shows_labels_and_names_not_ids(app: Any, client: Any, auth: Any,
                                                        make_customer: Any) -> None:
    pk, industry = _changed_industry(app, make_customer)
    auth.login("admin")
    with app.app_context():
        from app.models import AuditLog

        entry = db.session.query(AuditLog).filter_by(object_type="Customer", object_id=str(pk),
                                                     action="update").one()
        seq = entry.id
    texts = visible(client.get(f"/auditlogview/show/{seq}"))
    assert "industry_id" not in texts and "Industry" in texts and industry in texts
    assert "Changed" in texts and "Web page" not in texts  # written by a script here
    assert "Recorded at" in texts and "Entered via" in texts and "Time" not in texts


@pytest.mark.parametrize("lang_code, heading", [("en", "Page not found"), ("zh", None)])
def test_404_page_is_inside_the_layout(client: Any, auth: Any, lang_code: str, heading: str | None) -> None:
    auth.login("rep_a")
    client.get(f"/lang/{lang_code}")
    response = client.get("/no-such-page")
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and 'id="error-page"' in html and "navbar" in html
    if heading:
        assert heading in html
    assert client.get(f"/customerview/show/{10**6}").status_code == 404


@pytest.mark.parametrize("lang_code", ["en", "zh"])
def test_403_and_429_pages_are_inside_the_layout(app: Any, lang_code: str) -> None:
    from werkzeug.exceptions import Forbidden, TooManyRequests

    from views import errors

    for exc, heading in ((Forbidden(), errors.PAGES[403][0]), (TooManyRequests(retry_after=30), errors.PAGES[429][0])):
        with app.test_request_context("/customerview/list/", headers={"Accept-Language": lang_code}):
            from flask import session

            session["locale"] = lang_code
            app.preprocess_request()
            response = errors.error_page(exc)
            html = response.get_data(as_text=True)
            assert response.status_code == exc.code and 'id="error-page"' in html and "navbar" in html
            assert str(heading) in html
    assert response.headers["Retry-After"] == "30"


def test_api_errors_stay_json(client: Any, api: Any) -> None:
    response = client.get("/api/v1/customer/999999", headers=api("rep_a"))
    assert response.status_code == 404 and response.is_json


def test_duplicate_warning_on_screen_has_no_api_text(client: Any, auth: Any, api: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="Acme Ltd", contact_name="Zhou", contact_phone="13800000001")
    auth.login("rep_a")
    form = {"name": "ACME ltd", "contact_name": "zhou", "contact_phone": "138-0000-0001"}
    response = client.post("/customerview/add", data=form)
    page = response.get_data(as_text=True)
    assert "looks like an existing customer" in page and "allow_duplicate=1" not in page
    body = {"name": "ACME ltd", "contact_name": "zhou", "contact_phone": "13800000001"}
    message = client.post("/api/v1/customer/", json=body, headers=api("rep_a")).get_json()["message"]
    assert "allow_duplicate=1" in message["confirm"] and "allow_duplicate" not in message["duplicate"]
