"""User administration: only admins see it, and every write that changes who may log in or
what they may do asks for a fresh authenticator code, whichever route carries it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from flask import g
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import CrmUser
from app.security.step_up import StepUpRequired
from tests.conftest import PASSWORD, user_id

NEW_PASSWORD = "Reset-By-Admin-7"


def uid(app, username):
    with app.app_context():
        return user_id(username)


def _role_id(app, name):
    with app.app_context():
        return appbuilder.sm.find_role(name).id


def _user(app, username):
    with app.app_context():
        user = db.session.scalar(select(CrmUser).where(CrmUser.username == username))
        db.session.expunge(user)
        return user


# --- who sees the user administration ----------------------------------------------


@pytest.mark.parametrize("username", ["rep_a", "manager", "service", "viewer"])
def test_only_admins_see_other_accounts(app, client, auth, username):
    with app.app_context():
        other = user_id("manager_s")
    auth.login(username)
    for url in ("/users/list/", f"/users/show/{other}", f"/users/edit/{other}", "/users/add",
                f"/resetpassword/form?pk={other}", "/groups/list/", "/roles/list/",
                "/users/download/csv", "/users/api/read"):
        response = client.get(url)
        body = response.get_data(as_text=True)
        assert "manager_s" not in body and "@example.com" not in body, url
    # Their own profile and password form stay.
    own = client.get("/users/userinfo/")
    assert own.status_code == 200 and f"{username}@example.com" in own.get_data(as_text=True)
    assert client.get("/resetmypassword/form").status_code == 200
    with app.app_context():
        me = user_id(username)
    link = client.get(f"/users/action/resetmypassword/{me}")
    assert link.status_code == 302 and "/resetmypassword/form" in link.headers["Location"]


def test_admin_still_administers_users(client, auth):
    auth.login("admin")
    assert "manager_s" in client.get("/users/list/").get_data(as_text=True)


# --- sensitive writes through the screens ---------------------------------------------


def _new_user_form(app, role="Admin"):
    return {"first_name": "New", "last_name": "Admin", "username": "newadmin", "email": "newadmin@example.com",
            "active": "y", "roles": [str(_role_id(app, role))], "password": "Strong-Pass-2026",
            "conf_password": "Strong-Pass-2026"}


@pytest.mark.parametrize("role", ["Admin", "Read Only"])
def test_creating_a_user_needs_a_code(app, client, auth, totp, role):
    totp.enrol(app, "admin")
    auth.login("admin")
    form = _new_user_form(app, role)
    asked = client.post("/users/add", data=form)
    page = asked.get_data(as_text=True)
    assert asked.status_code == 401 and "Create a user account" in page and 'name="_step_up_code"' in page
    assert 'name="username" value="newadmin"' in page  # the form is carried, nothing to retype
    with app.app_context():
        assert appbuilder.sm.find_user(username="newadmin") is None
    done = client.post("/users/add", data={**form, "_step_up_code": totp.code("admin")})
    assert done.status_code == 302
    with app.app_context():
        assert [r.name for r in appbuilder.sm.find_user(username="newadmin").roles] == [role]


def test_an_invalid_user_form_shows_its_errors_before_any_code(app, client, auth):
    auth.login("admin")
    page = client.post("/users/add", data={**_new_user_form(app), "conf_password": "different"})
    assert page.status_code == 200 and "Passwords must match" in page.get_data(as_text=True)


def _edit_form(app, username, **changes):
    user = _user(app, username)
    with app.app_context():
        roles = [str(r.id) for r in db.session.get(CrmUser, user.id).roles]
    form = {"first_name": user.first_name, "last_name": user.last_name, "username": user.username,
            "email": user.email, "roles": roles, "active": "y"}
    form.update(changes)
    return user.id, {k: v for k, v in form.items() if v is not None}


PAST, SOON = date.today() - timedelta(days=1), date.today() + timedelta(days=10)


@pytest.mark.parametrize("change, expected", [
    ({"expires_on": PAST.isoformat()}, {"expires_on": PAST}),   # deactivates through a past expiry
    ({"expires_on": SOON.isoformat()}, {"expires_on": SOON}),   # shortens the (open) expiry
    ({"active": None}, {"active": False}),                      # unticks Active
    ({"roles": ["ROLE:Read Only"]}, {"roles": ["Read Only"]}),  # changes the roles
])
def test_access_changes_through_the_edit_form_need_a_code(app, client, auth, totp, change, expected):
    if "roles" in change:
        change = {"roles": [str(_role_id(app, "Read Only"))]}
    totp.enrol(app, "admin")
    pk, form = _edit_form(app, "rep_c", **change)
    auth.login("admin")
    assert client.post(f"/users/edit/{pk}", data=form).status_code == 401
    user = _user(app, "rep_c")
    assert user.active and user.expires_on is None
    assert client.post(f"/users/edit/{pk}", data={**form, "_step_up_code": totp.code("admin")}).status_code == 302
    with app.app_context():
        user = db.session.get(CrmUser, pk)
        actual = {"active": user.active, "expires_on": user.expires_on, "roles": [r.name for r in user.roles]}
        assert {key: actual[key] for key in expected} == expected
        user.roles = [appbuilder.sm.find_role("Sales Rep")]
        db.session.commit()


def test_reactivating_a_user_needs_a_code(app, client, auth, totp):
    with app.app_context():
        db.session.get(CrmUser, user_id("rep_c")).active = False
        db.session.commit()
    pk, form = _edit_form(app, "rep_c")
    auth.login("admin")
    assert client.post(f"/users/edit/{pk}", data=form).status_code == 401
    assert _user(app, "rep_c").active is False


def test_an_ordinary_edit_asks_nothing(app, client, auth):
    pk, form = _edit_form(app, "rep_c", first_name="Renamed")
    auth.login("admin")
    assert client.post(f"/users/edit/{pk}", data=form).status_code == 302
    assert _user(app, "rep_c").first_name == "Renamed"


def test_deleting_a_user_by_get_needs_a_code(app, client, auth):
    auth.login("admin")
    assert client.get(f"/users/delete/{uid(app, 'viewer')}").status_code == 401
    assert _user(app, "viewer") is not None


def test_resetting_another_users_password_needs_a_code_and_ends_their_sessions(app, client, auth, totp, api):
    totp.enrol(app, "admin")
    victim = app.test_client()
    victim.post("/login/", data={"username": "rep_b", "password": PASSWORD})
    token = api("rep_b")
    pk = uid(app, "rep_b")
    auth.login("admin")
    form = {"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD}
    asked = client.post(f"/resetpassword/form?pk={pk}", data=form)
    assert asked.status_code == 401 and "Set another user" in asked.get_data(as_text=True)
    with app.app_context():
        assert appbuilder.sm.auth_user_db("rep_b", NEW_PASSWORD) is None
    assert client.post(f"/resetpassword/form?pk={pk}", data={**form, "_step_up_code": totp.code("admin")}
                       ).status_code == 302
    with app.app_context():
        assert appbuilder.sm.auth_user_db("rep_b", NEW_PASSWORD) is not None
        user = db.session.get(CrmUser, pk)
        user.password = appbuilder.sm.find_user("admin").password  # back to the shared test password
        db.session.commit()
    assert victim.get("/customerview/list/").status_code == 302  # their old session ended
    assert client.get("/api/v1/customer/", headers=token).status_code == 401


def test_reset_password_of_an_unknown_user_is_a_message(app, client, auth):
    auth.login("admin")
    auth.grant_step_up("admin")
    for pk in ("999999", "abc", ""):
        response = client.post(f"/resetpassword/form?pk={pk}", data={"password": NEW_PASSWORD,
                                                                      "conf_password": NEW_PASSWORD})
        assert response.status_code == 302, pk


def test_group_membership_needs_a_code(app, client, auth):
    auth.login("admin")
    response = client.post("/groups/add", data={"name": "shadow", "label": "Shadow", "users": [str(uid(app, "rep_a"))],
                                                "roles": [str(_role_id(app, "Admin"))]})
    assert response.status_code == 401
    with app.app_context():
        assert appbuilder.sm.find_group("shadow") is None


# --- the backstop: any other route that writes accounts --------------------------------


def _as_admin_request(app):
    context = app.test_request_context("/anything", method="POST")
    context.push()
    g.user = db.session.get(CrmUser, user_id("admin"))
    return context


@pytest.mark.parametrize("write", ["roles", "active", "expires_on", "password", "create", "group", "scope"])
def test_any_route_writing_accounts_without_a_code_is_refused(app, write):
    from flask_appbuilder.security.sqla.models import Group

    from app.models import RoleDataScope

    with app.app_context():
        context = _as_admin_request(app)
        try:
            target = db.session.get(CrmUser, user_id("rep_a"))
            if write == "roles":
                target.roles.append(appbuilder.sm.find_role("Admin"))
            elif write == "active":
                target.active = False
            elif write == "expires_on":
                target.expires_on = date.today() - timedelta(days=1)
            elif write == "password":
                target.password = "x"
            elif write == "create":
                db.session.add(CrmUser(username="sneaky", first_name="S", last_name="U", email="s@example.com",
                                       roles=[appbuilder.sm.find_role("Admin")], active=True))
            elif write == "group":
                db.session.add(Group(name="sneaky", roles=[appbuilder.sm.find_role("Admin")], users=[target]))
            else:
                db.session.scalar(select(RoleDataScope).where(RoleDataScope.scope == "own")).scope = "all"
            with pytest.raises(StepUpRequired):
                db.session.commit()
            db.session.rollback()
        finally:
            context.pop()
        user = db.session.get(CrmUser, user_id("rep_a"))
        assert [r.name for r in user.roles] == ["Sales Rep"] and user.is_active
        assert appbuilder.sm.find_user(username="sneaky") is None and appbuilder.sm.find_group("sneaky") is None
        assert appbuilder.sm.auth_user_db("rep_a", PASSWORD) is not None


def test_any_route_with_a_fresh_step_up_may_write(app, client, auth):
    auth.login("admin")
    auth.grant_step_up("admin")
    with client.session_transaction() as session:
        sid = session["_step_up_sid"]
    with app.app_context():
        with app.test_request_context("/anything", method="POST"):
            from flask import session as flask_session

            flask_session["_step_up_sid"] = sid
            g.user = db.session.get(CrmUser, user_id("admin"))
            db.session.get(CrmUser, user_id("rep_c")).active = False
            db.session.commit()
        assert db.session.get(CrmUser, user_id("rep_c")).active is False
        db.session.remove()


@pytest.mark.parametrize("url, data", [
    ("/users/action_post", {"action": "nope", "rowid": ["1"]}),
    ("/users/action_post", {"action": "resetpasswords", "rowid": ["1", "2"]}),
    ("/users/action_post", {"action": "resetpasswords", "rowid": ["99999"]}),
    ("/users/action_post", {"action": "reset_totp", "rowid": ["99999"]}),
    ("/roles/action_post", {"action": "nope", "rowid": ["1"]}),
    ("/groups/action_post", {"action": "nope", "rowid": ["1"]}),
])
def test_odd_bulk_actions_get_a_message_not_a_500(app, client, auth, url, data):
    auth.login("admin")
    auth.grant_step_up("admin")
    assert client.post(url, data=data).status_code == 302


def test_the_single_record_reset_password_link_works_from_the_bulk_route(app, client, auth):
    auth.login("admin")
    pk = uid(app, "rep_b")
    response = client.post("/users/action_post", data={"action": "resetpasswords", "rowid": [str(pk)]})
    assert response.status_code == 302 and f"/resetpassword/form?pk={pk}" in response.headers["Location"]


def test_own_profile_form_cannot_carry_access_fields(app, client, auth):
    auth.login("rep_a")
    response = client.post("/userinfoeditview/form", data={
        "first_name": "Renamed", "last_name": "Rep", "roles": [str(_role_id(app, "Admin"))], "active": "",
        "expires_on": "2000-01-01", "password": "Taken-Over-2026", "username": "rep_x",
    })
    assert response.status_code == 302
    with app.app_context():
        user = db.session.get(CrmUser, user_id("rep_a"))
        assert (user.first_name, user.username, user.active, user.expires_on) == ("Renamed", "rep_a", True, None)
        assert [r.name for r in user.roles] == ["Sales Rep"]
        assert appbuilder.sm.auth_user_db("rep_a", PASSWORD) is not None
        user.first_name = "Rep_A"
        db.session.commit()


def test_fab_security_rest_api_is_not_offered(client, api):
    headers = api("admin")
    assert client.get("/api/v1/security/users/", headers=headers).status_code == 404
    assert client.post("/api/v1/security/users/", json={"username": "x"}, headers=headers).status_code in (404, 405)


def test_the_account_actions_are_listed_as_sensitive(client, auth):
    auth.login("admin")
    page = client.get("/security/sensitive-actions/").get_data(as_text=True)
    for name in ("user.create", "user.access_change", "user.password_reset", "group.change", "role.change",
                 "role.scope_change", "totp.reset"):
        assert f"<code>{name}</code>" in page
    assert "CRM_LOGIN_LIMIT_PER_USERNAME_IP" in page


def test_a_user_records_name_is_deactivated_not_deleted(app, client, auth, make_customer, make_account):
    """Deleting an account that owns customers is refused with what to do instead, on both
    databases (PostgreSQL failed with FAB's empty message; SQLite deleted it and left its
    customers owned by nobody). An account nothing else names yet is deleted."""
    make_customer("rep_c")
    auth.login("admin")
    auth.grant_step_up("admin")
    refused = client.post(f"/users/delete/{uid(app, 'rep_c')}", follow_redirects=True)
    assert "untick Active instead" in refused.get_data(as_text=True)
    assert _user(app, "rep_c") is not None
    spare_id = make_account("spare")
    # it created an account and last edited itself: the delete clears those stamps
    made_id = make_account("made_by_spare", created_by_fk=spare_id)
    with app.app_context():
        db.session.get(CrmUser, spare_id).changed_by_fk = spare_id
        db.session.commit()
    auth.grant_step_up("admin")
    client.post(f"/users/delete/{spare_id}", follow_redirects=True)
    with app.app_context():
        assert db.session.get(CrmUser, spare_id) is None
        assert db.session.get(CrmUser, made_id).created_by_fk is None
