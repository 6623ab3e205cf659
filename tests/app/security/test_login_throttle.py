"""Wrong passwords are throttled per (account, address), so an attacker cannot lock a
colleague out; a much larger per-account budget raises a Security alert."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog
from tests.conftest import PASSWORD

ATTACKER, OFFICE = "203.0.113.66", "198.51.100.7"


def _form_login(app, username, password, address):
    client = app.test_client()
    return client, client.post("/login/", data={"username": username, "password": password},
                               environ_base={"REMOTE_ADDR": address})


def _api_login(app, username, password, address):
    return app.test_client().post("/api/v1/security/login", environ_base={"REMOTE_ADDR": address},
                                  json={"username": username, "password": password, "provider": "db"})


def _logged_in(client) -> bool:
    return client.get("/customerview/list/").status_code == 200


def test_attacker_cannot_lock_a_colleague_out(app):
    statuses = [_form_login(app, "rep_a", f"guess-{i}", ATTACKER)[1].status_code for i in range(10)]
    assert statuses[:5] == [302] * 5 and statuses[5:] == [429] * 5
    # The attacker's address is refused even with the right password, on the form and the API.
    _client, refused = _form_login(app, "rep_a", PASSWORD, ATTACKER)
    assert refused.status_code == 429 and "Too many wrong passwords" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) > 0
    api = _api_login(app, "rep_a", PASSWORD, ATTACKER)
    assert api.status_code == 429 and "access_token" not in api.get_json()
    # The real user, from their own address, logs in as usual (form and API).
    client, response = _form_login(app, "rep_a", PASSWORD, OFFICE)
    assert response.status_code == 302 and _logged_in(client)
    assert _api_login(app, "rep_a", PASSWORD, OFFICE).status_code == 200


def test_api_wrong_passwords_spend_the_same_budget(app):
    for i in range(5):
        assert _api_login(app, "rep_b", f"guess-{i}", ATTACKER).status_code == 401
    assert _form_login(app, "rep_b", PASSWORD, ATTACKER)[1].status_code == 429


@pytest.mark.parametrize("alias", ["REP_A", "rep_a@example.com", " rep_a"])
def test_other_spellings_of_the_name_share_the_budget(app, alias):
    for i in range(5):
        _form_login(app, alias if i % 2 else "rep_a", f"guess-{i}", ATTACKER)
    assert _form_login(app, alias, PASSWORD, ATTACKER)[1].status_code == 429


def test_a_right_password_clears_the_address_budget(app):
    for i in range(4):
        _form_login(app, "rep_a", f"typo-{i}", OFFICE)
    assert _form_login(app, "rep_a", PASSWORD, OFFICE)[1].status_code == 302
    for i in range(4):  # a fresh budget after the success
        assert _form_login(app, "rep_a", f"typo-{i}", OFFICE)[1].status_code == 302


def test_spread_attack_raises_an_alert_and_only_known_addresses_may_try(app, monkeypatch):
    monkeypatch.setitem(app.config, "CRM_LOGIN_LIMIT_PER_USERNAME", "8 per hour")
    _client, first = _form_login(app, "rep_c", PASSWORD, OFFICE)  # rep_c's usual address
    assert first.status_code == 302
    for i in range(8):  # a botnet: two guesses from each of four addresses
        assert _form_login(app, "rep_c", f"guess-{i}", f"192.0.2.{i // 2}")[1].status_code == 302
    with app.app_context():
        alerts = db.session.scalars(select(AuditLog).where(AuditLog.action == "login_throttled")).all()
        assert len(alerts) == 1 and alerts[0].object_id is not None
    # A new address is refused, right password or not, until the window ends ...
    assert _form_login(app, "rep_c", PASSWORD, "192.0.2.200")[1].status_code == 429
    assert _api_login(app, "rep_c", PASSWORD, "192.0.2.201").status_code == 429
    # ... but rep_c, from the address they used before, still gets in.
    client, response = _form_login(app, "rep_c", PASSWORD, OFFICE)
    assert response.status_code == 302 and _logged_in(client)
    # More failures do not raise more alerts in the same window.
    _form_login(app, "rep_c", "again", "192.0.2.250")
    with app.app_context():
        assert len(db.session.scalars(select(AuditLog).where(AuditLog.action == "login_throttled")).all()) == 1
    # Administrators see it on their home page and in Security alerts.
    admin, _response = _form_login(app, "admin", PASSWORD, OFFICE)
    assert "security alert" in admin.get("/").get_data(as_text=True)
    assert "Logins limited after wrong passwords" in admin.get("/securityalertview/list/").get_data(as_text=True)


def test_refused_attempts_are_audited(app):
    for i in range(6):
        _form_login(app, "rep_a", f"guess-{i}", ATTACKER)
    with app.app_context():
        actions = db.session.scalars(select(AuditLog.action).order_by(AuditLog.seq)).all()
    assert actions.count("login_failed") == 5 and actions.count("login_refused") == 1
