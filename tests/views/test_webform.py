"""The public web form (官网表单): leads from a website, and its abuse cases (rate, honeypot,
oversize, bad JSON, token, field limits, CSRF-exempt but nothing else)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog
from app.models.sales import Lead
from tests.app.services.leads_support import lead_data, make_rule  # noqa: F401
from tests.conftest import user_id

URL = "/webform/lead"
GOOD = {"company": "Web Co", "name": "Wang Wu", "phone": "13812345678", "email": "w@example.com",
        "province": "广东", "message": "Please call"}


@pytest.fixture(autouse=True)
def _webform(lead_data, app, monkeypatch):  # noqa: F811
    monkeypatch.setitem(app.config, "CRM_WEBFORM_USER", "service")
    monkeypatch.setitem(app.config, "CRM_WEBFORM_TOKEN", "")
    monkeypatch.setitem(app.config, "CRM_WEBFORM_RATE_LIMIT", "50 per minute")
    yield


def _leads(app):
    with app.app_context():
        rows = [(lead.company, lead.owner_id, lead.source.code if lead.source else None, lead.created_by_fk, lead.note)
                for lead in db.session.scalars(select(Lead).order_by(Lead.id))]
        db.session.remove()
        return rows


def _uid(app, name):
    with app.app_context():
        return user_id(name)


def test_json_post_creates_a_website_lead_assigned_by_the_rules(app, client):
    with app.app_context():
        make_rule("Guangdong", ("rep_b",), province="广东省")
        db.session.remove()
    response = client.post(URL, json={**GOOD, "utm_source": "baidu"})
    assert response.status_code == 200 and response.get_json()["ok"] is True
    [(company, owner, source, creator, note)] = _leads(app)
    assert (company, owner, source, creator) == ("Web Co", _uid(app, "rep_b"), "website", _uid(app, "service"))
    assert "Please call" in note and "utm_source: baidu" in note  # nothing dropped


def test_form_post_works_without_csrf_token_and_answers_a_page(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    response = client.post(URL, data=GOOD)
    assert response.status_code == 200 and "text/html" in response.content_type
    assert [row[0] for row in _leads(app)] == ["Web Co"]


def test_without_a_rule_the_system_user_owns_it(app, client):
    client.post(URL, json=GOOD)
    assert _leads(app)[0][1] == _uid(app, "service")


def test_honeypot_looks_accepted_creates_nothing_and_is_counted(app, client, auth):
    response = client.post(URL, json={**GOOD, "homepage": "http://spam.example"})
    assert response.status_code == 200 and response.get_json()["ok"] is True
    assert _leads(app) == []
    with app.app_context():
        assert db.session.scalar(select(db.func.count(AuditLog.id)).where(AuditLog.action == "webform_honeypot")) == 1
    auth.login("admin")
    page = client.get("/webform/snippet").get_data(as_text=True)
    assert 'id="honeypot-count">1<' in page


def test_oversize_body_is_refused_with_413(app, client):
    big = {**GOOD, "message": "x" * 11000}
    response = client.post(URL, json=big)
    assert response.status_code == 413 and response.get_json()["ok"] is False
    response = client.post(URL, data=big)
    assert response.status_code == 413 and "text/html" in response.content_type
    assert _leads(app) == []


def test_bad_json_is_a_400_with_a_message(app, client):
    response = client.post(URL, data="{not json", content_type="application/json")
    assert response.status_code == 400 and "JSON" in response.get_json()["message"]
    response = client.post(URL, json=["a", "list"])
    assert response.status_code == 400
    response = client.post(URL, json={**GOOD, "company": {"nested": 1}})
    assert response.status_code == 422
    assert _leads(app) == []


def test_field_limits_and_rules_are_enforced(app, client):
    response = client.post(URL, json={**GOOD, "company": "C" * 201})
    assert response.status_code == 422 and "company" in response.get_json()["errors"]
    response = client.post(URL, json={**GOOD, **{f"extra{n}": "v" for n in range(25)}})
    assert response.status_code == 422
    response = client.post(URL, json={"company": "No way to reach"})
    assert response.status_code == 422 and "phone" in response.get_json()["errors"]
    response = client.post(URL, json={**GOOD, "phone": "12345"})
    assert response.status_code == 422 and "phone" in response.get_json()["errors"]
    assert _leads(app) == []


def test_rate_limit_per_address(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "CRM_WEBFORM_RATE_LIMIT", "2 per minute")
    assert client.post(URL, json=GOOD).status_code == 200
    assert client.post(URL, json={**GOOD, "homepage": "x"}).status_code == 200  # bots spend it too
    response = client.post(URL, json=GOOD)
    assert response.status_code == 429 and response.get_json()["ok"] is False
    other = client.post(URL, json=GOOD, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other.status_code == 200
    assert len(_leads(app)) == 2


def test_token_when_configured_is_required(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "CRM_WEBFORM_TOKEN", "s3cret-form")
    assert client.post(URL, json=GOOD).status_code == 403
    assert client.post(URL, json={**GOOD, "token": "wrong"}).status_code == 403
    assert client.post(URL, json={**GOOD, "token": "s3cret-form"}).status_code == 200
    assert client.post(URL, json=GOOD, headers={"X-Webform-Token": "s3cret-form"}).status_code == 200
    assert len(_leads(app)) == 2


def test_not_configured_is_a_503(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "CRM_WEBFORM_USER", "")
    monkeypatch.setitem(app.config, "CRM_LEAD_FALLBACK_OWNER", "")
    assert client.post(URL, json=GOOD).status_code == 503
    assert _leads(app) == []


def test_snippet_page_is_for_admins(app, client, auth):
    auth.login("admin")
    page = client.get("/webform/snippet").get_data(as_text=True)
    assert "/webform/lead" in page and "&lt;form" in page and "homepage" in page
    auth.logout()
    auth.login("rep_a")
    response = client.get("/webform/snippet")
    assert response.status_code in (302, 403) and "/webform/lead" not in response.get_data(as_text=True)
