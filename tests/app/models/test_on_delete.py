"""A deleted record's ``ON DELETE`` rules hold on SQLite as on PostgreSQL
(``app.models.on_delete``): nothing is left pointing at it, so nothing attaches to the
next record SQLite gives its id."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import count
from typing import Any

from sqlalchemy import select

from app.clock import utc_now
from app.extensions import appbuilder, db
from app.models import Activity, Customer, FollowUp
from app.services import follow_ups, leads, opportunities
from tests.conftest import user_id


def _user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


_CODES = count(1)


def _activity(**links: Any) -> int:
    item = Activity(code=f"AC-DEL-{next(_CODES)}", subject="Call back", due_at=utc_now() + timedelta(days=1),
                    assignee_id=user_id("rep_a"), **links)
    db.session.add(item)
    db.session.commit()
    return item.id


def test_a_deleted_lead_takes_its_activities_and_the_next_lead_starts_clean(app: Any, client: Any,
                                                                           api: Any) -> None:
    """The activities' key is ON DELETE CASCADE. On SQLite they stayed; the next lead got the
    deleted one's id (SQLite reuses the highest) and another rep saw them on it."""
    with app.app_context():
        lead = leads.save_lead({"company": "Short-lived Ltd", "phone": "13800001111"}, _user("rep_a"))
        db.session.commit()
        pk = lead.id
        activity = _activity(lead_id=pk)
        db.session.remove()
    assert client.delete(f"/api/v1/lead/{pk}", headers=api("manager")).status_code == 200  # reps may not delete
    with app.app_context():
        assert db.session.get(Activity, activity) is None
        following = leads.save_lead({"company": "Next Ltd", "phone": "13800002222"}, _user("rep_b"))
        db.session.commit()
        assert db.session.scalars(select(Activity).where(Activity.lead_id == following.id)).all() == []
        db.session.remove()


def test_a_deleted_follow_up_leaves_its_planned_activity_and_the_next_next_step_is_planned(
        app: Any, client: Any, api: Any, make_customer: Any) -> None:
    """``from_follow_up_id`` is unique and ON DELETE SET NULL. On SQLite the reference stayed,
    and the next follow-up (the same id) with a next step failed: UNIQUE constraint (500)."""
    cid = make_customer("rep_a")
    values = {"content": "Met the buyer", "next_step": "Send the quote", "next_step_date": date(2026, 12, 3)}
    with app.app_context():
        first = follow_ups.save_follow_up({"customer": db.session.get(Customer, cid), **values}, _user("rep_a"))
        db.session.commit()
        pk = first.id
        planned = db.session.scalar(select(Activity.id).where(Activity.from_follow_up_id == pk))
        db.session.remove()
    assert client.delete(f"/api/v1/follow_up/{pk}", headers=api("rep_a")).status_code == 200
    with app.app_context():
        assert db.session.get(FollowUp, pk) is None
        assert db.session.get(Activity, planned).from_follow_up_id is None  # the call itself stays
        db.session.remove()
    response = client.post("/api/v1/follow_up/", headers=api("rep_a"), json={
        "customer": cid, "content": "Called again", "next_step": "Visit", "next_step_date": "2026-12-04"})
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        second = response.get_json()["id"]
        assert db.session.scalars(select(Activity.subject).where(Activity.from_follow_up_id == second)).all() == [
            "Visit"]
        db.session.remove()


def test_a_deleted_opportunity_leaves_no_activity_naming_it(app: Any, make_customer: Any) -> None:
    from tests.app.services.test_opportunities import new_opp

    cid = make_customer("rep_a")
    with app.app_context():
        pk = new_opp("rep_a", cid).id
        activity = _activity(customer_id=cid, opportunity_id=pk)
        opportunities.delete_opportunity(pk, _user("rep_a"))
        db.session.commit()
        assert db.session.get(Activity, activity).opportunity_id is None
        db.session.remove()


def test_a_row_still_named_by_a_key_without_a_rule_is_not_deleted(app: Any, make_customer: Any) -> None:
    """``customer.owner_id`` has no ON DELETE rule: PostgreSQL fails the delete of a user who
    owns a customer, and so does SQLite now (it deleted the user and left the customer owned
    by nobody)."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        customer_id = make_customer("rep_c", name="Owned Ltd")
        with pytest.raises(IntegrityError):
            db.session.delete(_user("rep_c"))
            db.session.flush()
        db.session.rollback()
        assert _user("rep_c") is not None
        assert db.session.get(Customer, customer_id).owner_id == user_id("rep_c")


def test_a_referrer_the_same_flush_removes_does_not_refuse_the_delete(app: Any, make_account: Any) -> None:
    """Checked when the flush is over: an activity (its assignee key has no rule) deleted in
    the same flush as its assignee does not count, on either database."""
    from app.models.org import CrmUser

    helper_id = make_account("temp_rep")
    with app.app_context():
        activity = Activity(code="AC-DEL-TEMP", subject="Call", due_at=utc_now(), assignee_id=helper_id)
        db.session.add(activity)
        db.session.commit()
        db.session.delete(activity)
        db.session.delete(db.session.get(CrmUser, helper_id))
        db.session.commit()
        assert db.session.scalar(select(CrmUser.id).where(CrmUser.username == "temp_rep")) is None


def test_an_account_a_stamp_names_is_not_deleted_though_no_database_checks_stamps(
        app: Any, client: Any, auth: Any, make_customer: Any, make_account: Any) -> None:
    """The stamps' keys (``base.unchecked_key``) have no ``FOREIGN KEY`` clause in a new
    database (PostgreSQL looked the account up for every inserted row), yet an account that
    only created or last changed a record, owning nothing, is still refused: by the screen
    (``accounts.check_delete``) and by any ORM delete, on both databases."""
    import pytest
    from sqlalchemy import inspect
    from sqlalchemy.exc import IntegrityError

    from app.models.org import CrmUser

    clerk_id = make_account("stamp_clerk")
    with app.app_context():
        customer_id = make_customer("rep_a", name="Stamped Ltd")
        db.session.get(Customer, customer_id).created_by_fk = clerk_id
        db.session.commit()
        if db.engine.dialect.name == "postgresql":  # SQLite databases made before keep an inert clause
            keys = inspect(db.engine).get_foreign_keys("customer")
            assert not [key for key in keys if key["constrained_columns"] in (["created_by_fk"], ["changed_by_fk"])]
            assert [key for key in keys if key["constrained_columns"] == ["owner_id"]]  # the real ones stay
        with pytest.raises(IntegrityError, match="customer.created_by_fk"):
            db.session.delete(db.session.get(CrmUser, clerk_id))
            db.session.flush()
        db.session.rollback()
    auth.login("admin")
    auth.grant_step_up("admin")
    refused = client.post(f"/users/delete/{clerk_id}", follow_redirects=True)
    assert "untick Active instead" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(CrmUser, clerk_id) is not None
        assert db.session.get(Customer, customer_id).created_by.username == "stamp_clerk"
