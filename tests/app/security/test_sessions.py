"""Sessions and API tokens end server-side: logout, password change, deactivation.

Each test replays what an attacker would keep: a copy of the session cookie or a JWT
taken before the event.
"""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import AuditLog, CrmUser
from tests.conftest import PASSWORD, api_token

LIST = "/customerview/list/"


def _copy_session(source, app):
    """A second browser holding a copy of ``source``'s session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", source.get_cookie("session").value)
    return thief


def _logged_in(client) -> bool:
    return client.get(LIST).status_code == 200


def test_cookie_replayed_after_logout_is_refused(app, client, auth):
    auth.login("rep_a")
    thief = _copy_session(client, app)
    assert _logged_in(thief)  # the copy works while the session lives
    auth.logout()
    assert not _logged_in(thief)
    assert thief.get(LIST).headers["Location"].startswith("/login/")


def test_api_tokens_end_with_logout(app, client, auth):
    response = client.post("/api/v1/security/login", json={"username": "rep_a", "password": PASSWORD,
                                                           "provider": "db", "refresh": True})
    access = {"Authorization": f"Bearer {response.get_json()['access_token']}"}
    refresh = {"Authorization": f"Bearer {response.get_json()['refresh_token']}"}
    assert client.get("/api/v1/customer/", headers=access).status_code == 200
    auth.login("rep_a")
    auth.logout()
    assert client.get("/api/v1/customer/", headers=access).status_code == 401
    assert client.post("/api/v1/security/refresh", headers=refresh).status_code == 401
    # A new login gets a working token again.
    assert client.get("/api/v1/customer/", headers=api_token(client, "rep_a")).status_code == 200


def test_own_password_change_needs_the_current_password(app, client, auth):
    auth.login("rep_a")
    form = {"current_password": "not-my-password", "password": "Brand-New-Pass-9", "conf_password": "Brand-New-Pass-9"}
    refused = client.post("/resetmypassword/form", data=form)
    assert refused.status_code == 200 and "not your current password" in refused.get_data(as_text=True)
    with app.app_context():
        assert appbuilder.sm.auth_user_db("rep_a", PASSWORD) is not None  # unchanged
        assert appbuilder.sm.auth_user_db("rep_a", "Brand-New-Pass-9") is None
    no_current = client.post("/resetmypassword/form", data={**form, "current_password": ""})
    assert no_current.status_code == 200
    with app.app_context():
        assert appbuilder.sm.auth_user_db("rep_a", "Brand-New-Pass-9") is None


def test_password_change_ends_other_sessions_and_tokens_but_keeps_this_one(app, client, auth):
    auth.login("rep_a")
    laptop = app.test_client()
    laptop.post("/login/", data={"username": "rep_a", "password": PASSWORD})
    token = api_token(client, "rep_a")
    assert _logged_in(laptop)
    form = {"current_password": PASSWORD, "password": "Brand-New-Pass-9", "conf_password": "Brand-New-Pass-9"}
    assert client.post("/resetmypassword/form", data=form).status_code == 302
    assert _logged_in(client)  # the browser that changed it stays in
    assert not _logged_in(laptop)
    assert client.get("/api/v1/customer/", headers=token).status_code == 401
    with app.app_context():
        assert appbuilder.sm.auth_user_db("rep_a", "Brand-New-Pass-9") is not None
        entry = db.session.scalars(select(AuditLog).where(AuditLog.action == "update",
                                                          AuditLog.object_type == "CrmUser")).all()[-1]
        assert '"password"' in entry.changes and "Brand-New" not in entry.changes
        user = db.session.scalar(select(CrmUser).where(CrmUser.username == "rep_a"))
        user.password = appbuilder.sm.find_user("admin").password  # back to the shared test password
        db.session.commit()


def test_deactivation_ends_tokens_for_good(app, client, auth):
    auth.login("rep_a")
    token = api_token(client, "rep_a")
    with app.app_context():
        user = db.session.scalar(select(CrmUser).where(CrmUser.username == "rep_a"))
        user.active = False
        db.session.commit()
        assert client.get("/api/v1/customer/", headers=token).status_code == 401
        user.active = True  # re-activated: the old session and token stay dead
        db.session.commit()
    assert client.get("/api/v1/customer/", headers=token).status_code == 401
    assert not _logged_in(client)


def test_session_from_before_the_epoch_existed_logs_in_again(app, client, auth):
    auth.login("rep_a")
    with client.session_transaction() as session:
        session.pop("_crm_epoch")
    assert not _logged_in(client)
