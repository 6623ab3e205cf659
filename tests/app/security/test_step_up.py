"""Step-up attacks: a stolen password alone cannot bulk-delete, reveal or re-grant."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Customer


def _archived(app, *pks):
    with app.app_context():
        return [db.session.get(Customer, pk).archived_at is not None for pk in pks]


def _bulk(client, pks, code=None):
    data = {"action": "archive", "rowid": pks}
    if code:
        data["_step_up_code"] = code
    return client.post("/customerview/action_post", data=data)


def test_bulk_archive_needs_a_fresh_code(app, client, auth, make_customer, totp):
    pks = [make_customer("rep_a", name=f"Bulk {i}") for i in range(3)]
    totp.enrol(app, "rep_a")
    auth.login("rep_a")

    asked = _bulk(client, pks)
    page = asked.get_data(as_text=True)
    assert asked.status_code == 401 and 'name="_step_up_code"' in page
    # The intermediate page carries the selection, so nothing has to be picked again.
    assert all(f'name="rowid" value="{pk}"' in page for pk in pks)
    assert _archived(app, *pks) == [False] * 3

    assert _bulk(client, pks, "000000").status_code == 403
    assert _archived(app, *pks) == [False] * 3

    good = totp.code("rep_a")
    assert _bulk(client, pks, good).status_code == 302
    assert _archived(app, *pks) == [True] * 3


def test_replayed_code_is_refused(app, client, auth, make_customer, totp):
    first, second = make_customer("rep_a", name="One"), make_customer("rep_a", name="Two")
    totp.enrol(app, "rep_a")
    code = totp.code("rep_a")
    auth.login("rep_a")
    assert _bulk(client, [first, second], code).status_code == 302
    # A second browser session (e.g. an attacker who saw the code) cannot reuse it.
    other = app.test_client()
    other.post("/login/", data={"username": "rep_a", "password": "Test-Pass-1234"})
    third, fourth = make_customer("rep_a", name="Three"), make_customer("rep_a", name="Four")
    refused = _bulk(other, [third, fourth], code)
    assert refused.status_code == 403 and "already used" in refused.get_data(as_text=True)
    assert _archived(app, third, fourth) == [False, False]


def test_step_up_lasts_for_the_session_only(app, client, auth, make_customer, totp):
    pks = [make_customer("rep_a", name=f"S{i}") for i in range(4)]
    totp.enrol(app, "rep_a")
    auth.login("rep_a")
    assert _bulk(client, pks[:2], totp.code("rep_a")).status_code == 302
    assert _bulk(client, pks[2:]).status_code == 302  # same session, within the window
    other = app.test_client()
    other.post("/login/", data={"username": "rep_a", "password": "Test-Pass-1234"})
    more = [make_customer("rep_a", name=f"T{i}") for i in range(2)]
    assert _bulk(other, more).status_code == 401


def test_step_up_expires(app, client, auth, make_customer, totp):
    pks = [make_customer("rep_a", name=f"E{i}") for i in range(4)]
    totp.enrol(app, "rep_a")
    auth.login("rep_a")
    assert _bulk(client, pks[:2], totp.code("rep_a")).status_code == 302
    totp.advance(app.config["TOTP_STEP_UP_MINUTES"] * 60 + 1)
    assert _bulk(client, pks[2:]).status_code == 401
    assert _bulk(client, pks[2:], totp.code("rep_a")).status_code == 302


def test_not_enrolled_user_is_sent_to_enrolment(app, client, auth, make_customer):
    pks = [make_customer("rep_a", name=f"N{i}") for i in range(2)]
    auth.login("rep_a")
    page = _bulk(client, pks).get_data(as_text=True)
    assert "/totp/enrol" in page
    assert _archived(app, *pks) == [False, False]


def test_lockout_after_five_failures(app, client, auth, make_customer, totp):
    pks = [make_customer("rep_a", name=f"L{i}") for i in range(2)]
    totp.enrol(app, "rep_a")
    auth.login("rep_a")
    for _ in range(5):
        assert _bulk(client, pks, "111111").status_code == 403
    locked = _bulk(client, pks, totp.code("rep_a"))  # even the right code is refused now
    assert locked.status_code == 403 and "locked" in locked.get_data(as_text=True)
    assert _archived(app, *pks) == [False, False]
    with app.app_context():
        actions = db.session.scalars(select(AuditLog.action)).all()
    assert actions.count("step_up_failure") == 6 and actions.count("totp_locked") == 1
    # Administrators see the alert on their home page and in Security alerts.
    auth.logout()
    auth.login("admin")
    assert "security alert" in client.get("/").get_data(as_text=True)
    assert "Authenticator locked" in client.get("/securityalertview/list/").get_data(as_text=True)
    # After the lockout period the right code works again.
    totp.advance(15 * 60)
    auth.logout()
    auth.login("rep_a")
    assert _bulk(client, pks, totp.code("rep_a")).status_code == 302


def test_daily_budget_per_user(app, client, auth, make_customer, totp, monkeypatch):
    monkeypatch.setitem(app.config, "TOTP_MAX_FAILURES", 1000)  # isolate the budget from the lockout
    monkeypatch.setitem(app.config, "TOTP_FAIL_LIMIT_PER_USER", "3 per day")
    pks = [make_customer("rep_a", name=f"B{i}") for i in range(2)]
    totp.enrol(app, "rep_a")
    auth.login("rep_a")
    for _ in range(3):
        _bulk(client, pks, "222222")
    refused = _bulk(client, pks, totp.code("rep_a"))
    assert refused.status_code == 403 and "Too many wrong codes today" in refused.get_data(as_text=True)


def test_recovery_code_works_once(app, client, auth, make_customer, totp):
    pks = [make_customer("rep_a", name=f"R{i}") for i in range(4)]
    secret = totp.enrol(app, "rep_a")
    with app.app_context():
        from app.extensions import appbuilder
        from app.security import totp as service

        user = appbuilder.sm.find_user(username="rep_a")
        codes = service.confirm_enrolment(user, secret, __import__("pyotp").TOTP(secret).at(totp.now + 30))
        db.session.remove()
    auth.login("rep_a")
    assert _bulk(client, pks[:2], codes[0]).status_code == 302
    other = app.test_client()
    other.post("/login/", data={"username": "rep_a", "password": "Test-Pass-1234"})
    assert _bulk(other, pks[2:], codes[0]).status_code == 403


# --- the same protection through the REST API ---------------------------------------


def test_api_archive_of_won_customer(app, client, api, make_customer, totp):
    pk = make_customer("rep_a", type_code="won")
    totp.enrol(app, "manager")
    headers = api("manager")
    url = f"/api/v1/customer/{pk}"
    missing = client.delete(url, headers=headers)
    assert missing.status_code == 401 and missing.get_json()["step_up_required"] == "customer.archive_won"
    assert client.delete(url, headers={**headers, "X-TOTP-Code": "123456"}).status_code == 403
    code = totp.code("manager")
    assert _archived(app, pk) == [False]
    assert client.delete(url, headers={**headers, "X-TOTP-Code": code}).status_code == 200
    assert _archived(app, pk) == [True]
    # The code is spent: another token cannot replay it.
    other = make_customer("rep_a", type_code="won")
    replay = client.delete(f"/api/v1/customer/{other}", headers={**api("manager"), "X-TOTP-Code": code})
    assert replay.status_code == 403 and _archived(app, other) == [False]


def test_api_reveal_needs_code(app, client, api, make_customer, totp):
    pk = make_customer("rep_a", contact_phone="13912345678")
    totp.enrol(app, "rep_a")
    headers = api("rep_a")
    refused = client.post(f"/api/v1/customer/{pk}/contact", headers=headers)
    assert refused.status_code == 401 and "contact_phone" not in refused.get_json()
    ok = client.post(f"/api/v1/customer/{pk}/contact", json={"totp_code": totp.code("rep_a")}, headers=headers)
    assert ok.get_json()["contact_phone"] == "13912345678"


# --- permission changes -------------------------------------------------------------


def _role_id(app, name):
    with app.app_context():
        from app.extensions import appbuilder

        return appbuilder.sm.find_role(name).id


def test_data_scope_change_needs_code(app, client, auth, totp):
    from app.models import RoleDataScope

    with app.app_context():
        row = db.session.scalar(select(RoleDataScope).where(RoleDataScope.role_id == _role_id(app, "Sales Rep")))
        pk = row.id
        db.session.remove()
    auth.login("admin")
    form = {"role": str(_role_id(app, "Sales Rep")), "scope": "all", "ticket_scope": "customer"}
    assert client.post(f"/roledatascopeview/edit/{pk}", data=form).status_code == 401
    with app.app_context():
        assert db.session.get(RoleDataScope, pk).scope == "own"
        db.session.remove()
    totp.enrol(app, "admin")
    assert client.post(f"/roledatascopeview/edit/{pk}", data={**form, "_step_up_code": totp.code("admin")}).status_code == 302
    with app.app_context():
        assert db.session.get(RoleDataScope, pk).scope == "all"
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "permission_change"))
        assert '"scope": ["own", "all"]' in entry.changes
        db.session.get(RoleDataScope, pk).scope = "own"
        db.session.commit()


@pytest.mark.parametrize("form_change", ["deactivate", "roles"])
def test_user_deactivation_and_role_change_need_code(app, client, auth, totp, form_change):
    from app.models import CrmUser

    with app.app_context():
        target = db.session.scalar(select(CrmUser).where(CrmUser.username == "rep_c"))
        pk = target.id
        form = {"first_name": "Rep_C", "last_name": "Test", "username": "rep_c", "email": "rep_c@example.com",
                "roles": [str(r.id) for r in target.roles], "active": "y"}
        db.session.remove()
    if form_change == "deactivate":
        form.pop("active")
    else:
        form["roles"] = [str(_role_id(app, "Admin"))]
    auth.login("admin")
    assert client.post(f"/users/edit/{pk}", data=form).status_code == 401
    # An ordinary edit (same roles, still active) is not sensitive.
    assert client.post(f"/users/edit/{pk}", data={**form, "active": "y",
                                                   "roles": form["roles"] if form_change == "deactivate" else
                                                   [str(_role_id(app, "Sales Rep"))]}).status_code == 302
    with app.app_context():
        user = db.session.get(CrmUser, pk)
        assert user.active and [r.name for r in user.roles] == ["Sales Rep"]
        db.session.remove()


def test_role_permission_change_needs_code(app, client, auth):
    auth.login("admin")
    response = client.post("/roles/add", data={"name": "Shadow admin", "permissions": ["1", "2"]})
    assert response.status_code == 401
    with app.app_context():
        from app.extensions import appbuilder

        assert appbuilder.sm.find_role("Shadow admin") is None


def test_sensitive_actions_page_lists_the_registry(client, auth):
    auth.login("admin")
    page = client.get("/security/sensitive-actions/").get_data(as_text=True)
    for name in ("customer.bulk_archive", "customer.archive_won", "contact.reveal", "export.unmasked",
                 "role.change", "role.scope_change", "user.access_change", "totp.reset", "totp.reenrol"):
        assert name in page
    auth.logout()
    auth.login("rep_a")
    assert "customer.bulk_archive" not in client.get("/security/sensitive-actions/", follow_redirects=True).get_data(
        as_text=True)
