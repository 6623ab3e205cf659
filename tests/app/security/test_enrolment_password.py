"""A stolen session alone cannot enrol an authenticator (and then pass every step-up):
the first enrolment asks for the current password; admins require an authenticator."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import delete, select

from app.extensions import appbuilder, db
from app.models import RoleDataScope, TotpCredential
from tests.conftest import PASSWORD

SECRET_RE = re.compile(r'id="totp-secret">([A-Z2-7]+)<')


def _enrolled(app, username) -> bool:
    with app.app_context():
        return db.session.get(TotpCredential, appbuilder.sm.find_user(username=username).id) is not None


def test_first_enrolment_asks_for_the_current_password(app, client, auth, totp):
    auth.login("rep_a")
    gate = client.get("/totp/enrol").get_data(as_text=True)
    assert 'name="password"' in gate and not SECRET_RE.search(gate)  # no secret before the password
    wrong = client.post("/totp/enrol", data={"password": "not-it"})
    assert "not your current password" in wrong.get_data(as_text=True) and not SECRET_RE.search(wrong.get_data(
        as_text=True))
    # Posting a code straight away (skipping the password) enrols nothing.
    client.post("/totp/enrol", data={"code": pyotp.TOTP(pyotp.random_base32()).at(totp.now)})
    assert not _enrolled(app, "rep_a")

    assert client.post("/totp/enrol", data={"password": PASSWORD}).status_code == 302
    secret = SECRET_RE.search(client.get("/totp/enrol").get_data(as_text=True)).group(1)
    done = client.post("/totp/enrol", data={"code": pyotp.TOTP(secret).at(totp.now)})
    assert 'id="recovery-codes"' in done.get_data(as_text=True) and _enrolled(app, "rep_a")


def test_the_password_proof_goes_stale(app, client, auth, totp):
    auth.login("rep_a")
    client.post("/totp/enrol", data={"password": PASSWORD})
    assert SECRET_RE.search(client.get("/totp/enrol").get_data(as_text=True))
    totp.advance(11 * 60)
    assert not SECRET_RE.search(client.get("/totp/enrol").get_data(as_text=True))


def test_wrong_enrolment_passwords_spend_the_login_budget(app, client, auth):
    auth.login("rep_a")
    for i in range(5):
        client.post("/totp/enrol", data={"password": f"guess-{i}"})
    refused = client.post("/totp/enrol", data={"password": PASSWORD})
    assert refused.status_code == 429 and not SECRET_RE.search(refused.get_data(as_text=True))


def test_step_up_of_an_unenrolled_user_leads_to_the_password_gate(app, client, auth, make_customer):
    pks = [make_customer("rep_a", name=f"N{i}") for i in range(2)]
    auth.login("rep_a")
    page = client.post("/customerview/action_post", data={"action": "archive", "rowid": pks})
    assert page.status_code == 401 and "/totp/enrol" in page.get_data(as_text=True)
    assert 'name="password"' in client.get("/totp/enrol").get_data(as_text=True)


def test_admin_role_requires_an_authenticator_on_a_new_install(app):
    from app.services.setup import seed_roles

    with app.app_context():
        admin = appbuilder.sm.find_role(app.config["AUTH_ROLE_ADMIN"])
        db.session.execute(delete(RoleDataScope).where(RoleDataScope.role_id == admin.id))
        db.session.commit()
        seed_roles()
        row = db.session.scalar(select(RoleDataScope).where(RoleDataScope.role_id == admin.id))
        assert row.scope == "all" and row.totp_required is True
        others = db.session.scalars(select(RoleDataScope).where(RoleDataScope.role_id != admin.id)).all()
        assert others and not any(r.totp_required for r in others)


def test_required_admin_is_sent_to_enrolment_with_the_password_gate(app, client, auth):
    with app.app_context():
        admin = appbuilder.sm.find_role("Admin")
        db.session.scalar(select(RoleDataScope).where(RoleDataScope.role_id == admin.id)).totp_required = True
        db.session.commit()
    auth.login("admin")
    response = client.get("/users/list/")
    assert response.status_code == 302 and "/totp/enrol" in response.headers["Location"]
    assert 'name="password"' in client.get("/totp/enrol").get_data(as_text=True)
