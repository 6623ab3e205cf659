"""Lead assignment rules: matching, round robin (also under concurrency), skipped users,
fallback owner, audit, re-run (issue 13)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.clock import local_today
from app.extensions import appbuilder, db
from app.models import AuditLog, CrmUser
from app.models.sales import AssignmentRule, Lead
from app.services import assignment, audit, leads
from tests.app.services.leads_support import industry, lead_data, make_lead, make_rule, source  # noqa: F401
from tests.conftest import user_id


@pytest.fixture(autouse=True)
def _leads(lead_data):  # noqa: F811
    yield


def _user(name):
    return appbuilder.sm.find_user(username=name)


def _new(creator="admin", **values):
    values.setdefault("company", "Acme Ltd")
    values.setdefault("phone", "13812345678")
    item = leads.save_lead(values, _user(creator))
    db.session.commit()
    return item


def test_first_matching_rule_by_position_takes_turns_in_id_order(ctx):
    make_rule("Later", ("rep_c",), position=20)
    rule = make_rule("Guangdong", ("rep_b", "rep_a"), position=10, province="广东")
    owners = [_new(province="广东省").owner.username for _ in range(3)]
    assert owners == ["rep_a", "rep_b", "rep_a"]  # ids: rep_a < rep_b
    assert db.session.get(AssignmentRule, rule).last_user_id == user_id("rep_a")
    assert _new(province="浙江").owner.username == "rep_c"  # the other rule has no condition


def test_every_condition_a_rule_sets_must_match(ctx):
    make_rule("Manufacturing from trade shows", ("rep_b",), industry_id=industry("C").id,
              source_id=source("trade_show").id, city="深圳")
    assert _new(industry=industry("13"), source=source("trade_show"), city="深圳市").owner.username == "rep_b"
    assert _new(industry=industry("13"), source=source("website"), city="深圳").owner.username == "admin"
    assert _new(industry=industry("A"), source=source("trade_show"), city="深圳").owner.username == "admin"
    assert _new(source=source("trade_show"), city="深圳").owner.username == "admin"  # no industry


def test_inactive_rules_are_not_tried(ctx):
    pk = make_rule("Off", ("rep_b",))
    db.session.execute(update(AssignmentRule).where(AssignmentRule.id == pk).values(active=False))
    db.session.commit()
    assert _new().owner.username == "admin"


def test_inactive_and_expired_users_are_skipped(ctx):
    make_rule("Team", ("rep_a", "rep_b", "rep_c"))
    db.session.execute(update(CrmUser).where(CrmUser.id == user_id("rep_a")).values(active=False))
    db.session.execute(update(CrmUser).where(CrmUser.id == user_id("rep_b"))
                       .values(expires_on=local_today() - timedelta(days=1)))
    db.session.commit()
    assert [_new().owner.username for _ in range(2)] == ["rep_c", "rep_c"]


def test_a_department_rule_gives_its_active_members_turns(ctx):
    east_team = db.session.get(CrmUser, user_id("rep_b")).department_id
    make_rule("East team", (), department_id=east_team)
    assert {_new().owner.username for _ in range(2)} == {"rep_b"}


def test_nobody_left_in_the_pool_falls_back(ctx, app, monkeypatch):
    make_rule("Gone", ("rep_a",))
    db.session.execute(update(CrmUser).where(CrmUser.id == user_id("rep_a")).values(active=False))
    db.session.commit()
    assert _new("manager").owner.username == "manager"  # the creator
    monkeypatch.setitem(app.config, "CRM_LEAD_FALLBACK_OWNER", "rep_c")
    item = _new("manager")
    assert item.owner.username == "rep_c" and item.assigned_by_rule_id is None


def test_an_inactive_fallback_owner_is_not_used(ctx, app, monkeypatch):
    monkeypatch.setitem(app.config, "CRM_LEAD_FALLBACK_OWNER", "rep_c")
    db.session.execute(update(CrmUser).where(CrmUser.id == user_id("rep_c")).values(active=False))
    db.session.commit()
    assert _new("manager").owner.username == "manager"


def test_the_assignment_is_audited_with_the_rule(ctx):
    rule = make_rule("Everyone", ("rep_b",))
    item = _new("rep_a")
    assert item.owner.username == "rep_b" and item.assigned_by_rule_id == rule
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "assign",
                                                     AuditLog.object_id == str(item.id)))
    detail = json.loads(entry.detail)
    assert detail["rule_id"] == rule and detail["owner"] == "rep_b" and "Everyone" in entry.reason


def test_import_and_sync_rows_are_assigned_too(ctx):
    """The importer and the sync save leads through save_lead: the rules apply to them."""
    make_rule("Everyone", ("rep_b",))
    for source_name in ("import", "sync"):
        with audit.audit_context(source=source_name):
            item = _new("manager")
        assert item.owner.username == "rep_b"


def test_rerun_assigns_unassigned_leads_and_leaves_owned_ones(ctx):
    unassigned, owned = make_lead(None), make_lead("rep_a")
    gone = make_lead("rep_c")
    db.session.execute(update(CrmUser).where(CrmUser.id == user_id("rep_c")).values(active=False))
    db.session.commit()
    make_rule("Everyone", ("rep_b",))
    done, skipped = leads.rerun_rules([unassigned, owned, gone], _user("admin"))
    db.session.commit()
    assert sorted(item.id for item in done) == sorted([unassigned, gone]) and len(skipped) == 1
    assert db.session.get(Lead, unassigned).owner.username == "rep_b"
    assert db.session.get(Lead, owned).owner.username == "rep_a"


def test_next_in_turn_wraps_around():
    assert assignment.next_in_turn([3, 5, 9], None) == 3
    assert assignment.next_in_turn([3, 5, 9], 5) == 9
    assert assignment.next_in_turn([3, 5, 9], 9) == 3
    assert assignment.next_in_turn([3, 5, 9], 4) == 5  # the cursor user left the pool


def _in_thread(app, target, errors):
    def run():
        with app.app_context():
            try:
                target()
            except BaseException as exc:  # collected and asserted by the test
                errors.append(exc)
            finally:
                db.session.rollback()
                db.session.remove()
    return threading.Thread(target=run)


def test_a_second_assignment_waits_for_the_first_instead_of_reading_an_old_cursor(app):
    """Two sessions: the first takes rep_a's turn and holds its transaction open; the
    second must wait for it and get rep_b (without the lock it would read the old cursor
    and give rep_a a second lead out of turn)."""
    with app.app_context():
        make_rule("Pair", ("rep_a", "rep_b"))
        admin_id = user_id("admin")
        db.session.remove()
    took, errors, owners = threading.Event(), [], {}

    def first():
        owners["first"] = leads.save_lead({"company": "One", "phone": "13812345678"},
                                          db.session.get(CrmUser, admin_id)).owner_id
        took.set()
        time.sleep(0.6)
        db.session.commit()

    def second():
        assert took.wait(10)
        owners["second"] = leads.save_lead({"company": "Two", "phone": "13812345679"},
                                           db.session.get(CrmUser, admin_id)).owner_id
        db.session.commit()

    threads = [_in_thread(app, first, errors), _in_thread(app, second, errors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with app.app_context():
        assert {owners["first"], owners["second"]} == {user_id("rep_a"), user_id("rep_b")}


def test_round_robin_stays_fair_under_two_concurrent_threads(app):
    rounds = 4
    with app.app_context():
        make_rule("Pair", ("rep_a", "rep_b"))
        admin_id = user_id("admin")
        db.session.remove()
    barrier, errors = threading.Barrier(2), []

    def work(tag):
        def run():
            for n in range(rounds):
                barrier.wait(timeout=30)
                leads.save_lead({"company": f"T{tag}-{n}", "phone": "13812345678"},
                                db.session.get(CrmUser, admin_id))
                db.session.commit()
        return run

    threads = [_in_thread(app, work(tag), errors) for tag in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with app.app_context():
        owners = db.session.scalars(select(Lead.owner_id).order_by(Lead.id)).all()
        assert len(owners) == 2 * rounds
        assert owners.count(user_id("rep_a")) == owners.count(user_id("rep_b")) == rounds
        # in commit order (ids are given at flush, inside the lock): strictly alternating
        assert all(a != b for a, b in zip(owners, owners[1:], strict=False))
