"""Data retention (issue 19): due records are listed for an admin, never changed on their
own; the CRM zone's dates count (across a year end and a month end); decisions audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import appbuilder, db
from app.models import AuditLog, Customer
from app.models.customers import FollowUp
from app.models.notifications import Notification
from app.models.operations import RetentionCase
from app.models.sales import Contact
from app.services import retention, settings
from app.services.audit import ERASED
from app.services.errors import RuleForbidden
from app.services.retention.decisions import decide

pytestmark = pytest.mark.usefixtures("shanghai")

# 23:00 on 31 Dec 2025 in Shanghai (UTC+8)
NEW_YEARS_EVE = datetime(2025, 12, 31, 15, 0, tzinfo=UTC)


def _user(name):
    return appbuilder.sm.find_user(username=name)


def _customer(app, make_customer, at, **fields):
    """A customer last active at ``at`` (its primary contact, made with it, backdated too)."""
    pk = make_customer("rep_a", created_on=at, changed_on=at, **fields)
    with app.app_context():
        db.session.query(Contact).filter_by(customer_id=pk).update({"changed_on": at, "created_on": at})
        db.session.commit()
        db.session.remove()
    return pk


def _review(app, at=NEW_YEARS_EVE):
    with app.app_context(), clock.frozen(at):
        added = retention.review()
        db.session.commit()
        cases = {(c.record_type, c.record_id): c.decision for c in db.session.scalars(select(RetentionCase))}
        db.session.remove()
        return added, cases


def test_due_by_the_crm_zones_date_across_the_year_end(app, make_customer):
    # 18:00 on 31 Dec 2015 in Shanghai: ten years later is 31 Dec 2025, today there -> due
    due = _customer(app, make_customer, datetime(2015, 12, 31, 10, 0, tzinfo=UTC))
    # 01:00 on 1 Jan 2016 in Shanghai (still 31 Dec in UTC): due only tomorrow
    not_yet = _customer(app, make_customer, datetime(2015, 12, 31, 17, 0, tzinfo=UTC))
    recent = _customer(app, make_customer, datetime(2024, 6, 1, tzinfo=UTC))
    added, cases = _review(app)
    assert ("customer", due) in cases and ("customer", not_yet) not in cases and ("customer", recent) not in cases
    assert added >= 1
    _, cases = _review(app, datetime(2025, 12, 31, 16, 30, tzinfo=UTC))  # 00:30 on 1 Jan in Shanghai
    assert ("customer", not_yet) in cases


def test_month_end_of_a_leap_day(app, make_customer):
    leap = _customer(app, make_customer, datetime(2016, 2, 29, 4, 0, tzinfo=UTC))
    _, cases = _review(app, datetime(2026, 2, 27, 4, 0, tzinfo=UTC))
    assert ("customer", leap) not in cases
    _, cases = _review(app, datetime(2026, 2, 28, 4, 0, tzinfo=UTC))
    assert ("customer", leap) in cases


def test_review_never_changes_a_record_and_lists_once(app, make_customer):
    pk = _customer(app, make_customer, datetime(2014, 5, 1, tzinfo=UTC), contact_name="老客户")
    with app.app_context():
        before = {c.name: getattr(db.session.get(Customer, pk), c.name) for c in Customer.__table__.columns}
        db.session.remove()
    _review(app)
    _review(app)
    with app.app_context():
        after = {c.name: getattr(db.session.get(Customer, pk), c.name) for c in Customer.__table__.columns}
        count = len(db.session.scalars(select(RetentionCase).where(RetentionCase.record_id == pk,
                                                                   RetentionCase.record_type == "customer")).all())
    assert before == after and count == 1


def test_new_activity_drops_the_case(app, make_customer, make_follow_up):
    pk = _customer(app, make_customer, datetime(2014, 5, 1, tzinfo=UTC))
    _, cases = _review(app)
    assert ("customer", pk) in cases
    make_follow_up(pk, "rep_a", followed_at=datetime(2025, 12, 1, tzinfo=UTC),
                   created_on=datetime(2014, 5, 1, tzinfo=UTC), changed_on=datetime(2014, 5, 1, tzinfo=UTC))
    with app.app_context():  # the follow-up also touched the customer? keep the customer old
        db.session.query(Customer).filter_by(id=pk).update({"changed_on": datetime(2014, 5, 1, tzinfo=UTC)})
        db.session.commit()
    _, cases = _review(app)
    assert ("customer", pk) not in cases


def test_admins_are_notified_of_new_cases(app, make_customer):
    _customer(app, make_customer, datetime(2014, 5, 1, tzinfo=UTC))
    _review(app)
    with app.app_context():
        notes = db.session.scalars(select(Notification).where(Notification.event == "retention_due")).all()
        assert {n.user_id for n in notes} == {_user("admin").id}


def test_zero_keeps_forever(app, make_customer):
    pk = _customer(app, make_customer, datetime(2000, 5, 1, tzinfo=UTC))
    with app.app_context():
        settings.save({"retention_years_customer": 0}, _user("admin"))
        db.session.commit()
    _, cases = _review(app)
    assert ("customer", pk) not in cases


def _case_id(app, pk, record_type="customer"):
    with app.app_context():
        return db.session.scalar(select(RetentionCase.id).where(RetentionCase.record_id == pk,
                                                                RetentionCase.record_type == record_type))


def _decisions(app):
    with app.app_context():
        return [json.loads(e.detail) for e in db.session.scalars(select(AuditLog).where(
            AuditLog.action == "retention_decided").order_by(AuditLog.seq))]


def test_keep_is_audited_and_relisted_only_after_another_period(app, make_customer):
    pk = _customer(app, make_customer, datetime(2014, 5, 1, tzinfo=UTC))
    _review(app)
    with app.app_context(), clock.frozen(NEW_YEARS_EVE):
        assert decide(_user("admin"), [_case_id(app, pk)], retention.KEPT) == (1, [])
    assert _decisions(app)[-1] == {"decision": "kept", "record_type": "customer", "record_id": pk}
    _, cases = _review(app, datetime(2030, 1, 1, tzinfo=UTC))
    assert cases[("customer", pk)] == "kept"
    _, cases = _review(app, datetime(2036, 1, 1, tzinfo=UTC))
    assert cases[("customer", pk)] is None


def test_archive_goes_through_the_customer_archive(app, make_customer):
    pk = _customer(app, make_customer, datetime(2014, 5, 1, tzinfo=UTC))
    _review(app)
    with app.app_context():
        decide(_user("admin"), [_case_id(app, pk)], retention.ARCHIVED)
        db.session.remove()
        assert db.session.get(Customer, pk).archived_at is not None
        assert db.session.scalar(select(AuditLog.id).where(AuditLog.action == "archive",
                                                           AuditLog.object_id == str(pk))) is not None
    assert _decisions(app)[-1]["decision"] == "archived"


def test_anonymise_erases_with_the_retention_reason(app, make_customer):
    pk = _customer(app, make_customer, datetime(2014, 5, 1, tzinfo=UTC), contact_name="留存到期人")
    _review(app)
    with app.app_context():
        decide(_user("admin"), [_case_id(app, pk)], retention.ANONYMISED)
        db.session.remove()
        assert db.session.get(Customer, pk).contact_name == ERASED
        entry = db.session.scalars(select(AuditLog).where(AuditLog.action == "personal_data_erased")).one()
        assert entry.reason == "Retention period passed"


def test_only_admins_decide_and_a_follow_up_cannot_be_archived(app, make_customer, make_follow_up):
    pk = _customer(app, make_customer, datetime(2014, 5, 1, tzinfo=UTC))
    old = datetime(2014, 5, 1, tzinfo=UTC)
    fu = make_follow_up(pk, "rep_a", followed_at=old, created_on=old, changed_on=old)
    _review(app)
    with app.app_context():
        for name in ("rep_a", "manager", "viewer"):
            with pytest.raises(RuleForbidden):
                decide(_user(name), [_case_id(app, pk)], retention.KEPT)
        done, refused = decide(_user("admin"), [_case_id(app, fu, "follow_up")], retention.ARCHIVED)
        assert done == 0 and refused
        assert db.session.get(FollowUp, fu).content == "Called about the quote"
