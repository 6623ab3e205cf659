"""Login rate limits, CSRF, cookies, headers and the password policy."""

from __future__ import annotations

import re

import pytest

from app.extensions import appbuilder


def test_login_rate_limit_per_ip(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "AUTH_RATE_LIMIT", "3 per minute")
    attacker = app.test_client()
    statuses = [attacker.post("/login/", data={"username": f"guess{i}", "password": "x"},
                              environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code for i in range(5)]
    assert statuses[:3] != [429] * 3 and statuses[3:] == [429, 429]
    # Another address is not affected.
    assert client.post("/login/", data={"username": "rep_a", "password": "Test-Pass-1234"},
                       environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 302


def test_login_rate_limit_per_username_across_addresses(app, monkeypatch):
    monkeypatch.setitem(app.config, "CRM_LOGIN_LIMIT_PER_USERNAME", "3 per minute")
    statuses = [app.test_client().post("/login/", data={"username": "rep_b", "password": "wrong"},
                                       environ_base={"REMOTE_ADDR": f"192.0.2.{i}"}).status_code for i in range(5)]
    assert statuses[3:] == [429, 429]
    api = app.test_client().post("/api/v1/security/login", json={"username": "rep_b", "password": "Test-Pass-1234",
                                                                  "provider": "db"})
    assert api.status_code == 429


def test_failed_and_successful_logins_are_audited(app, client, auth):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import AuditLog

    client.post("/login/", data={"username": "rep_a", "password": "nope"}, headers={"User-Agent": "pytest-agent"})
    auth.login("rep_a")
    auth.logout()
    with app.app_context():
        rows = db.session.execute(select(AuditLog.action, AuditLog.user_name, AuditLog.user_agent)
                                  .order_by(AuditLog.seq)).all()
    assert [r.action for r in rows] == ["login_failed", "login", "logout"]
    assert rows[0].user_name == "rep_a" and rows[0].user_agent == "pytest-agent"


def test_csrf_token_required_on_forms(app, client, auth, monkeypatch):
    auth.login("rep_a")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    refused = client.post("/customerview/add", data={"name": "No token", "contact_phone": "13812345678"})
    assert refused.status_code == 400
    page = client.get("/customerview/add").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    accepted = client.post("/customerview/add", data={"name": "With token", "contact_phone": "13812345678",
                                                      "csrf_token": token})
    assert accepted.status_code == 302


def test_rest_api_takes_jwt_only(app, client, auth, api, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    auth.login("rep_a")
    assert client.get("/api/v1/customer/").status_code == 401  # a session cookie is not enough
    assert client.get("/api/v1/customer/", headers=api("rep_a")).status_code == 200


def test_security_headers_and_nonce(client, auth):
    auth.login("rep_a")
    response = client.get("/customerview/list/")
    csp = response.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "http" not in csp
    scripts = re.findall(r"<script[^>]*>", response.get_data(as_text=True))
    assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert client.get("/customerview/list/").headers["Content-Security-Policy"] != csp  # fresh nonce per response


def test_session_cookie_flags(client):
    response = client.post("/login/", data={"username": "rep_a", "password": "Test-Pass-1234"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("password", ["", "short1A!", "alllowercaseletters", "Password1234"[:9]])
def test_weak_passwords_are_refused_everywhere(app, client, auth, password):
    from flask_appbuilder.exceptions import PasswordComplexityValidationError

    auth.login("admin")
    page = client.post("/users/add", data={
        "first_name": "New", "last_name": "User", "username": "newbie", "email": "newbie@example.com",
        "active": "y", "password": password, "conf_password": password,
    }).get_data(as_text=True)
    with app.app_context():
        assert appbuilder.sm.find_user(username="newbie") is None
        with pytest.raises(PasswordComplexityValidationError):
            appbuilder.sm.add_user("script", "S", "U", "s@example.com", appbuilder.sm.find_role("Sales Rep"),
                                   password=password)
    assert "at least" in page or "required" in page


def test_strong_password_accepted(app):
    with app.app_context():
        user = appbuilder.sm.add_user("strong", "S", "U", "strong@example.com",
                                      appbuilder.sm.find_role("Sales Rep"), password="Correct-Horse-42")
        assert user
