"""Activities (issue 14): scope like the record they belong to, the save / done / cancel use
cases, the activity a follow-up's 下一步计划 plans from every entry point, required follow-up
fields, task templates and @mentions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import delete, select

from app import clock
from app.extensions import appbuilder, db
from app.models import Activity, Customer, FollowUp, Lead, Notification
from app.models.activities import ActivityTemplate
from app.models.dictionaries import FollowUpMethod
from app.models.sales import Contact
from app.services import activities, follow_ups, settings
from app.services.errors import NotFound, RuleForbidden, RuleViolation
from tests.conftest import user_id

#: 2026-11-30 10:00 in Shanghai.
AT = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


pytestmark = pytest.mark.usefixtures("shanghai")


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def plan(owner: str = "rep_a", **values: Any) -> Activity:
    values = {"kind": "call", "subject": "Call about the quote", "due_at": "2026-12-01 14:30", **values}
    item = activities.save_activity(values, user(owner))
    db.session.commit()
    return item


def method(code: str) -> FollowUpMethod:
    return db.session.scalar(select(FollowUpMethod).where(FollowUpMethod.code == code))


def told(username: str, event: str) -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(Notification.user_id == user_id(username),
                                                               Notification.event == event)))


# --- save ----------------------------------------------------------------------------

def test_an_activity_on_a_customer_is_numbered_due_in_the_crm_zone_and_mine(ctx: Any, make_customer: Any) -> None:
    cid = make_customer("rep_a")
    item = plan(customer=db.session.get(Customer, cid))
    assert item.code.startswith("A")
    assert item.due_at == datetime(2026, 12, 1, 6, 30, tzinfo=UTC)  # 14:30 in Shanghai
    assert item.assignee_id == user_id("rep_a") and item.status == "open"


def test_subject_due_time_and_kind_are_checked_with_a_message_each(ctx: Any) -> None:
    with pytest.raises(RuleViolation) as refused:
        activities.save_activity({"kind": "fax", "subject": "  ", "due_at": "next tuesday"}, user("rep_a"))
    assert set(refused.value.errors) == {"kind", "subject", "due_at"}
    with pytest.raises(RuleViolation) as missing:
        activities.save_activity({"subject": "x"}, user("rep_a"))
    assert "due time is required" in missing.value.errors["due_at"]


def test_a_colleagues_customer_is_not_found_and_an_archived_one_is_refused(ctx: Any, make_customer: Any) -> None:
    theirs = make_customer("rep_c")
    with pytest.raises(RuleViolation) as refused:
        plan(customer=db.session.get(Customer, theirs))
    assert refused.value.errors["customer"] == "Customer not found."
    archived = make_customer("rep_a", archived_at=AT)
    with pytest.raises(RuleViolation) as archived_refused:
        plan(customer=db.session.get(Customer, archived))
    assert "archived" in archived_refused.value.errors["customer"]


def test_a_contact_sets_the_activity_customer(ctx: Any, make_customer: Any) -> None:
    cid = make_customer("rep_a")
    contact = Contact(customer_id=cid, name="Li", phone="13812345678", is_primary=True)
    db.session.add(contact)
    db.session.commit()
    item = plan(contact=contact)
    assert item.customer_id == cid


def test_a_converted_lead_takes_no_activity_and_a_lead_and_customer_together_are_refused(
        ctx: Any, make_customer: Any) -> None:
    lead = Lead(company="Acme", contact_name="Li", phone="13812345678", owner_id=user_id("rep_a"), status="new")
    db.session.add(lead)
    db.session.commit()
    assert plan(lead=lead).lead_id == lead.id
    with pytest.raises(RuleViolation) as both:
        plan(lead=lead, customer=db.session.get(Customer, make_customer("rep_a")))
    assert "lead or to a customer" in both.value.errors["lead"]
    lead.status, lead.converted_at = "converted", AT
    db.session.commit()
    with pytest.raises(RuleViolation) as converted:
        plan(lead=lead)
    assert "converted" in converted.value.errors["lead"]


def test_the_assignee_must_see_the_record_and_be_in_the_writers_scope(ctx: Any, make_customer: Any) -> None:
    cid = make_customer("rep_a")
    customer = db.session.get(Customer, cid)
    with pytest.raises(RuleForbidden):  # a rep gives work to themselves only
        activities.save_activity({"subject": "x", "due_at": "2026-12-01 10:00", "customer": customer,
                                  "assignee": user("rep_b")}, user("rep_a"))
    db.session.rollback()
    with pytest.raises(RuleViolation) as blind:  # the manager may assign rep_b, who cannot see rep_a's customer
        activities.save_activity({"subject": "x", "due_at": "2026-12-01 10:00", "customer": customer,
                                  "assignee": user("rep_b")}, user("manager"))
    assert "cannot see this record" in blind.value.errors["assignee"]


def test_a_manager_assigning_a_rep_tells_the_rep_in_their_language_params(ctx: Any, make_customer: Any) -> None:
    customer = db.session.get(Customer, make_customer("rep_a"))
    item = plan("manager", customer=customer, assignee=user("rep_a"))
    (note,) = told("rep_a", "activity_assigned")
    assert note.params == {"code": item.code, "subject": "Call about the quote", "due": "2026-12-01 14:30",
                           "by": user("manager").get_full_name()}
    assert (note.record_type, note.record_id) == ("activity", item.id)
    plan("rep_a", customer=customer)  # planning for oneself tells nobody
    assert len(told("rep_a", "activity_assigned")) == 1


# --- scope ---------------------------------------------------------------------------

def visible(username: str) -> set[str]:
    from app.security.data_scope import scope_clause

    return set(db.session.scalars(select(Activity.code).where(scope_clause(user(username), Activity))))


def test_scope_follows_the_customer_the_lead_or_the_assignee(ctx: Any, make_customer: Any) -> None:
    on_customer = plan(customer=db.session.get(Customer, make_customer("rep_a")))
    lead = Lead(company="Acme", contact_name="Li", phone="13812345678", owner_id=user_id("rep_a"), status="new")
    db.session.add(lead)
    db.session.commit()
    on_lead = plan(lead=lead)
    personal = plan()
    mine = {on_customer.code, on_lead.code, personal.code}
    assert visible("rep_a") == mine
    assert visible("rep_b") == set()
    assert visible("rep_c") == set()
    assert visible("manager") == mine  # rep_a is in the manager's department
    assert visible("manager_s") == set()


def test_a_colleague_cannot_load_edit_complete_or_cancel_it(ctx: Any, make_customer: Any) -> None:
    item = plan(customer=db.session.get(Customer, make_customer("rep_a")))
    for attempt in (lambda: activities.save_activity({"subject": "mine now"}, user("rep_b"), pk=item.id, version=1),
                    lambda: activities.complete_activity(item.id, user("rep_b"), "done"),
                    lambda: activities.cancel_activity(item.id, user("rep_b"))):
        with pytest.raises(NotFound):
            attempt()
    assert db.session.get(Activity, item.id).status == "open"


# --- done / cancel -------------------------------------------------------------------

def test_done_with_an_outcome_records_the_follow_up_with_the_kinds_method(ctx: Any, make_customer: Any) -> None:
    cid = make_customer("rep_a")
    item = plan(kind="visit", customer=db.session.get(Customer, cid))
    with clock.frozen(AT):
        activities.complete_activity(item.id, user("rep_a"), "  They want 20 licences. ", version=item.version)
    db.session.commit()
    done = db.session.get(Activity, item.id)
    assert done.status == "done" and done.done_at == AT
    follow_up = db.session.get(FollowUp, done.follow_up_id)
    assert (follow_up.customer_id, follow_up.content, follow_up.method.code) == (cid, "They want 20 licences.", "visit")
    with pytest.raises(RuleViolation) as again:
        activities.complete_activity(item.id, user("rep_a"), "twice")
    assert again.value.status == 409


def test_done_without_an_outcome_records_nothing_and_cancel_closes_it(ctx: Any, make_customer: Any) -> None:
    customer = db.session.get(Customer, make_customer("rep_a"))
    first, second = plan(customer=customer), plan(customer=customer)
    activities.complete_activity(first.id, user("rep_a"))
    activities.cancel_activity(second.id, user("rep_a"))
    db.session.commit()
    assert db.session.get(Activity, first.id).follow_up_id is None
    assert db.session.get(Activity, second.id).status == "cancelled"
    assert db.session.scalar(select(FollowUp.id)) is None


# --- a follow-up's next step ----------------------------------------------------------

def planned_from(follow_up_id: int) -> Activity | None:
    return db.session.scalar(select(Activity).where(Activity.from_follow_up_id == follow_up_id))


def test_a_next_step_with_a_date_plans_one_activity_at_nine_and_an_edit_moves_it(ctx: Any, make_customer: Any) -> None:
    cid = make_customer("rep_a")
    follow_up = follow_ups.save_follow_up({"customer": db.session.get(Customer, cid), "content": "Met the buyer",
                                           "method": method("phone"), "next_step": "Send the quote",
                                           "next_step_date": date(2026, 12, 3)}, user("rep_a"))
    db.session.commit()
    item = planned_from(follow_up.id)
    assert (item.kind, item.subject, item.assignee_id, item.customer_id) == ("call", "Send the quote",
                                                                             user_id("rep_a"), cid)
    assert item.due_at == datetime(2026, 12, 3, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    follow_ups.save_follow_up({"next_step": "Send the revised quote", "next_step_date": date(2026, 12, 5)},
                              user("rep_a"), pk=follow_up.id, version=follow_up.version)
    db.session.commit()
    moved = planned_from(follow_up.id)
    assert moved.id == item.id
    assert (moved.subject, moved.due_at) == ("Send the revised quote", datetime(2026, 12, 5, 1, 0, tzinfo=UTC))
    assert db.session.query(Activity).count() == 1


def test_a_next_step_without_a_date_plans_nothing(ctx: Any, make_customer: Any) -> None:
    follow_ups.save_follow_up({"customer": db.session.get(Customer, make_customer("rep_a")), "content": "x",
                               "next_step": "Call again some day"}, user("rep_a"))
    db.session.commit()
    assert db.session.query(Activity).count() == 0


def test_imported_follow_ups_plan_their_activities_in_bulk(ctx: Any, make_customer: Any) -> None:
    cid = make_customer("rep_a")
    rows = [{"code": None, "customer_id": cid, "followed_at": AT, "method_id": method("visit").id, "content": "a",
             "next_step": "Demo", "next_step_date": date(2026, 12, 2), "owner_id": user_id("rep_a")},
            {"code": None, "customer_id": cid, "followed_at": AT, "method_id": None, "content": "b",
             "next_step": None, "next_step_date": None, "owner_id": user_id("rep_a")}]
    follow_ups.insert_follow_ups(rows)
    db.session.commit()
    item = planned_from(rows[0]["id"])
    assert (item.kind, item.subject, item.due_at) == ("visit", "Demo", datetime(2026, 12, 2, 1, 0, tzinfo=UTC))
    assert item.code.startswith("A") and planned_from(rows[1]["id"]) is None


# --- required follow-up fields (000 跟进记录必填字段) -------------------------------------

def test_required_follow_up_fields_are_enforced_with_a_message_each(ctx: Any, make_customer: Any) -> None:
    settings.save({"follow_up_required": ["content", "next_step", "next_step_date"]}, user("admin"))
    db.session.commit()
    errors = follow_ups.check_follow_up({"content": "x", "customer_id": make_customer("rep_a"),
                                         "followed_at": AT}, user("rep_a"))
    assert set(errors) == {"next_step", "next_step_date"}
    assert "next step is required" in errors["next_step"]


def test_content_may_be_left_empty_when_the_admin_unticks_it(ctx: Any, make_customer: Any) -> None:
    settings.save({"follow_up_required": ["method"]}, user("admin"))
    db.session.commit()
    errors = follow_ups.check_follow_up({"content": "", "customer_id": make_customer("rep_a"), "followed_at": AT},
                                        user("rep_a"))
    assert set(errors) == {"method"}


# --- templates -----------------------------------------------------------------------

def test_seed_templates_adds_the_manuals_examples_once(ctx: Any) -> None:
    db.session.execute(delete(ActivityTemplate))  # initialise() seeded them: start empty
    assert activities.seed_templates() == 5
    assert activities.seed_templates() == 0
    names = list(db.session.scalars(select(ActivityTemplate.name).order_by(ActivityTemplate.position)))
    assert names == ["初次电话沟通", "产品介绍", "需求调研", "方案讲解", "合同跟进"]


def test_a_template_prefills_the_next_step_date_from_today(ctx: Any) -> None:
    activities.seed_templates()
    first = db.session.scalar(select(ActivityTemplate).where(ActivityTemplate.name == "初次电话沟通"))
    filled = activities.template_prefill(first.id, today=date(2026, 11, 30))
    assert filled["next_step_date"] == "2026-12-03" and filled["kind"] == "call"
    first.active = False
    with pytest.raises(NotFound):
        activities.template_prefill(first.id)


# --- mentions ------------------------------------------------------------------------

def test_a_mention_tells_who_may_see_the_record_and_nobody_else(ctx: Any, make_customer: Any) -> None:
    customer = db.session.get(Customer, make_customer("rep_a"))
    follow_ups.save_follow_up({"customer": customer, "content": "Ask @manager and @rep_c about the price"},
                              user("rep_a"))
    db.session.commit()
    assert [n.params["by"] for n in told("manager", "mention")] == [user("rep_a").get_full_name()]
    assert told("rep_c", "mention") == []  # South cannot see rep_a's customer: not told, no leak


def test_a_mention_in_an_imported_follow_up_tells_as_a_saved_one_does(ctx: Any, make_customer: Any) -> None:
    from app.models.base import acting_user_id

    cid = make_customer("rep_a")
    rows = [{"code": None, "customer_id": cid, "followed_at": AT, "method_id": None, "owner_id": user_id("rep_a"),
             "content": text, "next_step": None, "next_step_date": None}
            for text in ("Ask @manager about the price", "No mention here", "@rep_c too")]
    token = acting_user_id.set(user_id("rep_a"))  # the importer acts as the user who started it
    try:
        follow_ups.insert_follow_ups(rows)
    finally:
        acting_user_id.reset(token)
    db.session.commit()
    assert [n.params["by"] for n in told("manager", "mention")] == [user("rep_a").get_full_name()]
    assert told("rep_c", "mention") == []  # South cannot see rep_a's customer


def test_a_mention_by_full_name_in_an_activity_note(ctx: Any, make_customer: Any) -> None:
    plan("manager", customer=db.session.get(Customer, make_customer("rep_a")),
         note="@Rep_a Test please bring the contract")
    assert len(told("rep_a", "mention")) == 1


def test_an_opportunity_sets_the_customer_and_the_template_is_stored(ctx: Any, make_customer: Any) -> None:
    from app.models.sales import Opportunity, Stage

    cid = make_customer("rep_a")
    stage = db.session.scalar(select(Stage).where(Stage.active.is_(True)).order_by(Stage.id))
    opportunity = Opportunity(customer_id=cid, title="Deal", stage=stage, owner_id=user_id("rep_a"))
    db.session.add(opportunity)
    db.session.commit()
    activities.seed_templates()
    template = db.session.scalar(select(ActivityTemplate).where(ActivityTemplate.name == "方案讲解"))
    item = plan(opportunity=opportunity, template=template)
    assert (item.customer_id, item.template_id) == (cid, template.id)
    db.session.execute(delete(Activity))
    db.session.delete(opportunity)
    db.session.commit()


def test_a_done_activity_can_no_longer_be_edited(ctx: Any) -> None:
    item = plan()
    activities.complete_activity(item.id, user("rep_a"))
    db.session.commit()
    with pytest.raises(RuleViolation) as refused:
        activities.save_activity({"subject": "again"}, user("rep_a"), pk=item.id, version=item.version)
    assert refused.value.status == 409


def test_taking_the_next_step_date_off_cancels_its_open_activity(ctx: Any, make_customer: Any) -> None:
    follow_up = follow_ups.save_follow_up({"customer": db.session.get(Customer, make_customer("rep_a")),
                                           "content": "x", "next_step": "Call", "next_step_date": date(2026, 12, 3)},
                                          user("rep_a"))
    db.session.commit()
    follow_ups.save_follow_up({"next_step_date": None}, user("rep_a"), pk=follow_up.id, version=follow_up.version)
    db.session.commit()
    assert planned_from(follow_up.id).status == "cancelled"


def open_next_steps() -> set[int]:
    """The follow-ups with an open next step, read either way ``next_steps_open`` may choose
    (their few open next steps first, or the follow-ups themselves): the same set."""
    read = set(db.session.scalars(select(FollowUp.id).where(follow_ups.next_steps_open())))
    few, follow_ups.FEW_OPEN = follow_ups.FEW_OPEN, -1
    try:
        assert set(db.session.scalars(select(FollowUp.id).where(follow_ups.next_steps_open()))) == read
    finally:
        follow_ups.FEW_OPEN = few
    return read


def test_a_next_step_closes_with_its_activity_and_opens_again_without_it(ctx: Any, make_customer: Any) -> None:
    """Issue 12: the home page's due count reads ``FollowUp.next_step_closed``, kept here."""
    cid = make_customer("rep_a")
    made = [follow_ups.save_follow_up({"customer": db.session.get(Customer, cid), "content": f"call {n}",
                                       "next_step": "Quote", "next_step_date": date(2026, 12, 1)}, user("rep_a"))
            for n in range(3)]
    db.session.commit()
    done, cancelled, untouched = (item.id for item in made)
    versions = {item.id: (item.version, item.changed_on, item.changed_by_fk) for item in made}
    assert open_next_steps() == {done, cancelled, untouched}
    with clock.frozen(AT):  # another moment than the follow-ups were saved at
        activities.complete_activity(planned_from(done).id, user("manager"))
        activities.cancel_activity(planned_from(cancelled).id, user("manager"))
        db.session.commit()
    assert open_next_steps() == {untouched}
    db.session.expire_all()
    # the activity's state, not an edit of the follow-up: no new version or stamp (the sync's
    # "newest" policy reads changed_on), no history entry
    assert {item.id: (item.version, item.changed_on, item.changed_by_fk)
            for item in db.session.scalars(select(FollowUp))} == versions
    db.session.delete(planned_from(done))  # without its closed activity the next step is to do again
    db.session.commit()
    assert open_next_steps() == {done, untouched}
    moved = planned_from(cancelled)
    moved.from_follow_up_id = done  # planned by another follow-up now: each follows its own activity
    db.session.commit()
    assert open_next_steps() == {cancelled, untouched}


def test_demo_activities_belong_to_their_owners_customers(ctx: Any, make_customer: Any) -> None:
    make_customer("rep_a")
    make_customer("rep_c")
    made = activities.ACTIVITY.demo(db.session, [user("rep_a"), user("rep_c")], count=4)
    db.session.commit()
    assert made == 2
    pairs = {(a.assignee_id, db.session.get(Customer, a.customer_id).owner_id) for a in db.session.scalars(
        select(Activity))}
    assert pairs == {(user_id("rep_a"), user_id("rep_a")), (user_id("rep_c"), user_id("rep_c"))}
    assert all(a.code.startswith("A") for a in db.session.scalars(select(Activity)))
