"""Account lifecycle: deactivation is immediate, purge re-assigns then anonymises."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.extensions import appbuilder, db
from app.models import AuditLog, CrmUser, Customer, Department, FollowUp
from app.services.accounts import purge_departed
from app.services.permission_report import build_report


def _leaver(app, department="East", manager="manager"):
    """A rep in ``department`` (whose manager is ``manager``); returns the new user's id."""
    with app.app_context():
        sm = appbuilder.sm
        dep = db.session.scalar(select(Department).where(Department.name == department))
        dep.manager_id = sm.find_user(username=manager).id
        user = sm.add_user("leaver", "Lea", "Ver", "leaver@example.com", sm.find_role("Sales Rep"),
                           password="Leaving-Soon-1")
        db.session.get(CrmUser, user.id).department = dep
        db.session.commit()
        return user.id


def test_deactivation_ends_the_session_now_and_starts_the_clock(app, client, auth):
    uid = _leaver(app)
    auth.login("leaver", "Leaving-Soon-1")
    assert client.get("/customerview/list/").status_code == 200
    with app.app_context():
        user = db.session.get(CrmUser, uid)
        user.active = False
        db.session.commit()
        assert user.deactivated_at is not None
    assert client.get("/customerview/list/").status_code == 302  # back to login


def test_purge_reassigns_to_the_manager_then_purges(app, make_customer, make_follow_up):
    uid = _leaver(app)
    customer = make_customer("leaver", name="Inherited Ltd")
    follow_up = make_follow_up(customer, "leaver")
    with app.app_context():
        user = db.session.get(CrmUser, uid)
        user.active = False
        db.session.commit()
        assert purge_departed() == []  # not yet: 30 days must pass
        assert purge_departed(at=datetime.now() + timedelta(days=31)) == ["leaver"]
        manager_id = appbuilder.sm.find_user(username="manager").id
        assert db.session.get(Customer, customer).owner_id == manager_id
        assert db.session.get(FollowUp, follow_up).owner_id == manager_id
        purged = db.session.get(CrmUser, uid)
        assert purged.username == f"purged-{uid}" and purged.email.endswith("@invalid.local")
        assert purged.roles == [] and purged.purged_at is not None and purged.phone is None
        actions = db.session.scalars(select(AuditLog.action).order_by(AuditLog.seq)).all()
        # The re-assignment is recorded (per record and as a summary) before the purge.
        assert actions.index("reassign") < actions.index("purge")
        reassigned = db.session.scalars(select(AuditLog).where(AuditLog.object_type == "Customer",
                                                               AuditLog.object_id == str(customer))).all()
        assert any('"owner_id"' in (e.changes or "") for e in reassigned)
        assert appbuilder.sm.auth_user_db("leaver", "Leaving-Soon-1") is None


def test_purge_waits_when_nobody_can_inherit(app, make_customer, monkeypatch):
    uid = _leaver(app)
    make_customer("leaver")
    monkeypatch.setattr("app.services.accounts.successor", lambda user: None)
    with app.app_context():
        db.session.get(CrmUser, uid).active = False
        db.session.commit()
        assert purge_departed(at=datetime.now() + timedelta(days=40)) == []
        assert db.session.get(CrmUser, uid).username == "leaver"


def test_permission_report_flags(app, client, auth):
    with app.app_context():
        db.session.execute(update(CrmUser).where(CrmUser.username == "rep_a").values(
            job_title="Sales Representative", last_login=datetime.now()))
        db.session.execute(update(CrmUser).where(CrmUser.username == "rep_b").values(
            job_title="Intern", last_login=datetime.now() - timedelta(days=120)))
        admin_role = appbuilder.sm.find_role("Admin")
        rep_c = db.session.scalar(select(CrmUser).where(CrmUser.username == "rep_c"))
        rep_c.job_title = "Sales Representative"
        rep_c.roles.append(admin_role)
        db.session.commit()
        rows = {row.user.username: row for row in build_report()}
        assert rows["rep_a"].flags == []
        assert any("inactive" in f for f in rows["rep_b"].flags)
        assert any("more rights" in f and "Admin" in f for f in rows["rep_c"].flags)
        assert any("never logged in" in f for f in rows["service"].flags)
        assert rows["rep_c"].scope == "all"
        rep_c.roles.remove(admin_role)
        rep_c.job_title = None
        db.session.execute(update(CrmUser).values(job_title=None))
        db.session.commit()
    auth.login("admin")
    page = client.get("/security/permission-report/").get_data(as_text=True)
    assert "never logged in" in page
    download = client.get("/security/permission-report/download.xlsx")
    assert download.status_code == 200 and download.data[:2] == b"PK"
    auth.logout()
    auth.login("manager")
    assert "never logged in" not in client.get("/security/permission-report/",
                                               follow_redirects=True).get_data(as_text=True)
