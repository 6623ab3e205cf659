"""Enrolment, the login second factor and forced enrolment, through the real pages."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import select, update

from app.extensions import appbuilder, db
from app.models import AuditLog, RoleDataScope, TotpCredential


def _enrol_page(client):
    page = client.get("/totp/enrol").get_data(as_text=True)
    return page, re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)


def _require_totp(app, role):
    with app.app_context():
        role_id = appbuilder.sm.find_role(role).id
        db.session.execute(update(RoleDataScope).where(RoleDataScope.role_id == role_id).values(totp_required=True))
        db.session.commit()
        db.session.remove()


def test_enrolment_round_trip(app, client, auth, totp):
    auth.login("rep_a")
    client.post("/totp/enrol", data={"password": "Test-Pass-1234"})  # first the current password
    page, secret = _enrol_page(client)
    assert "<svg" in page and "otpauth" not in page  # QR drawn locally, the URI is not leaked as text
    assert _enrol_page(client)[1] == secret  # reloading keeps the same pending secret

    wrong = client.post("/totp/enrol", data={"code": "000000"}).get_data(as_text=True)
    assert "does not match" in wrong
    with app.app_context():
        assert db.session.get(TotpCredential, appbuilder.sm.find_user("rep_a").id) is None

    done = client.post("/totp/enrol", data={"code": pyotp.TOTP(secret).at(totp.now)}).get_data(as_text=True)
    codes = re.search(r'<pre id="recovery-codes">(.*?)</pre>', done, re.S).group(1).split()
    assert len(codes) == 10 and len(set(codes)) == 10
    with app.app_context():
        cred = db.session.get(TotpCredential, appbuilder.sm.find_user("rep_a").id)
        assert cred is not None and secret not in cred.secret_encrypted  # encrypted at rest
        actions = db.session.scalars(select(AuditLog.action)).all()
    assert "totp_enrol_failed" in actions and "totp_enrol" in actions
    assert "Authenticator enrolled" in client.get("/totp/").get_data(as_text=True)


def test_reenrolment_is_a_sensitive_action(app, client, auth, totp):
    totp.enrol(app, "rep_a")
    auth.login("rep_a")
    asked = client.get("/totp/enrol")
    assert asked.status_code == 401 and "Confirm with your authenticator" in asked.get_data(as_text=True)
    # The code goes to the central step-up endpoint, then back to the enrolment page.
    back = client.post("/totp/step-up", data={"_step_up_code": totp.code("rep_a"), "next": "/totp/enrol",
                                              "action_name": "totp.reenrol"})
    assert back.status_code == 302 and back.headers["Location"].endswith("/totp/enrol")
    page, secret = _enrol_page(client)
    totp.advance()
    client.post("/totp/enrol", data={"code": pyotp.TOTP(secret).at(totp.now)})
    with app.app_context():
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "totp_reenrol")) is not None


def test_step_up_redirect_refuses_other_sites(app, client, auth, totp):
    totp.enrol(app, "rep_a")
    auth.login("rep_a")
    back = client.post("/totp/step-up", data={"_step_up_code": totp.code("rep_a"), "next": "https://evil.example/"})
    assert "evil.example" not in back.headers["Location"]


def test_required_role_is_sent_to_enrolment_and_can_do_nothing_else(app, client, auth, totp):
    _require_totp(app, "Sales Manager")
    auth.login("manager")
    for url in ("/", "/customerview/list/", "/followupview/list/"):
        response = client.get(url)
        assert response.status_code == 302 and "/totp/enrol" in response.headers["Location"]
    assert client.get("/totp/enrol").status_code == 200
    # The API refuses to hand such a user a token at all.
    token = client.post("/api/v1/security/login", json={"username": "manager", "password": "Test-Pass-1234",
                                                        "provider": "db"})
    assert token.status_code == 403 and "access_token" not in token.get_json()


def test_login_asks_for_a_code_for_required_roles(app, client, auth, totp):
    _require_totp(app, "Sales Manager")
    totp.enrol(app, "manager")
    auth.login("manager")
    pending = client.get("/customerview/list/")
    assert pending.status_code == 302 and "/totp/login" in pending.headers["Location"]
    bad = client.post("/totp/login", data={"code": "999999", "next": "/customerview/list/"})
    assert "not valid" in bad.get_data(as_text=True)
    good = client.post("/totp/login", data={"code": totp.code("manager"), "next": "/customerview/list/"})
    assert good.status_code == 302 and good.headers["Location"].endswith("/customerview/list/")
    assert client.get("/customerview/list/").status_code == 200


def test_api_login_needs_the_code_too(app, client, totp):
    _require_totp(app, "Sales Manager")
    totp.enrol(app, "manager")
    body = {"username": "manager", "password": "Test-Pass-1234", "provider": "db"}
    assert client.post("/api/v1/security/login", json=body).status_code == 401
    assert client.post("/api/v1/security/login", json=body, headers={"X-TOTP-Code": "123456"}).status_code == 401
    ok = client.post("/api/v1/security/login", json=body, headers={"X-TOTP-Code": totp.code("manager")})
    assert ok.status_code == 200 and ok.get_json()["access_token"]


def test_roles_without_requirement_log_in_with_password_only(client, auth, totp, app):
    totp.enrol(app, "rep_a")  # enrolled, but Sales Rep does not require it (TOTP_AT_LOGIN=required)
    auth.login("rep_a")
    assert client.get("/customerview/list/").status_code == 200


def test_admin_reset_is_sensitive_and_audited(app, client, auth, totp):
    totp.enrol(app, "rep_a")
    totp.enrol(app, "admin")
    rep = appbuilder.sm.find_user
    with app.app_context():
        pk = rep(username="rep_a").id
    auth.login("admin")
    assert client.post(f"/users/action/reset_totp/{pk}").status_code == 401
    with app.app_context():
        assert db.session.get(TotpCredential, pk) is not None
    response = client.post(f"/users/action/reset_totp/{pk}", data={"_step_up_code": totp.code("admin")})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(TotpCredential, pk) is None
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "totp_reset"))
        assert entry.object_id == str(pk) and entry.user_name == "admin"
