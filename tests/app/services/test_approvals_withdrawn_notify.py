"""A request that ends without its requester acting (withdrawn by the CRM or by an admin:
its record's personal data erased, …) tells the requester and the approvers it waited for,
through the same notifications as every other outcome (issue 15: "notifications to the
approver and back to the requester"; issue 14: in-app and e-mail, in the reader's language)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, Notification
from app.models.approvals import ApprovalRequest
from app.models.dictionaries import CustomerLevel
from app.models.marketing import Campaign
from app.models.notifications import OutboxMessage
from app.models.org import CrmUser
from app.services import approvals, campaigns, customers, erasure, merge, notifications
from app.services.errors import RuleViolation
from tests.conftest import user_id

PERSON = "个体户撤回测试人"


def _user(name: str) -> Any:
    return db.session.get(CrmUser, user_id(name))


def _withdrawn() -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(Notification.event == "approval_withdrawn")
                                   .order_by(Notification.user_id)))


def _hold_level(pk: int, who: str) -> ApprovalRequest:
    customer = db.session.get(Customer, pk)
    level = db.session.scalars(select(CustomerLevel).where(CustomerLevel.id != (customer.level_id or 0))
                               .order_by(CustomerLevel.id)).first()
    saved = customers.save_customer({"level": level}, _user(who), pk=pk, version=customer.version)
    db.session.commit()
    return saved.held_for_approval[0]


def test_an_erasure_tells_the_requester_and_the_waiting_approver(app: Any, make_customer: Any,
                                                                   department_managers: Any) -> None:
    """rep_a's level change waits for the manager; an admin erases the customer (an
    individual: the name ticked). The request is withdrawn, leaves the manager's inbox, and
    both are told in their language — naming the record by its code, never the erased name,
    in the inbox and in the e-mail. The erasing admin is not told of their own act."""
    pk = make_customer("rep_a", name=PERSON, contact_phone="13911112222", contact_name=PERSON)
    with app.app_context():
        request = _hold_level(pk, "rep_a")
        rid, code = request.id, request.code
        assert [r.id for r in approvals.waiting_for(_user("manager"))] == [rid]
        erasure.erase(_user("admin"), "customer", pk, "本人要求删除", extra_fields=("name",))
        db.session.expire_all()
        request = db.session.get(ApprovalRequest, rid)
        assert request.status == approvals.WITHDRAWN
        assert approvals.waiting_for(_user("manager")) == []
        told = _withdrawn()
        assert sorted(n.user_id for n in told) == sorted([user_id("rep_a"), user_id("manager")])
        for note in told:
            text = notifications.text_of(note, visible=True, language="en")
            assert code in text and "withdrawn by admin" in text and "personal data was erased" in text, text
            assert "no longer waits for approval" in text
            zh = notifications.text_of(note, visible=True, language="zh")
            # the kind is read in the reader's language (the sentence's own words come
            # with the catalogue: /work/notes/translations_approvals.po)
            assert code in zh and "修改客户等级" in zh, zh
            assert PERSON not in str(note.params)
        mails = list(db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.notification_id.in_([n.id for n in told]))))
        assert len(mails) == 2
        for mail in mails:
            assert code in mail.text_body and PERSON not in mail.text_body + mail.html_body + mail.subject
        history = [(a.action, a.user_id) for a in request.actions]
        assert history[-1] == ("withdrawn", user_id("admin"))
        assert "personal data was erased" in (request.actions[-1].comment or "")


def test_the_crm_withdrawing_a_campaign_request_settles_it_and_tells_both(app: Any, department_managers: Any
                                                                          ) -> None:
    """A request the CRM ends (no user: ``withdraw_pending``) puts the campaign back to
    planning and tells the requester and the approver, "by the CRM"."""
    with app.app_context():
        owner = _user("manager")
        item = campaigns.save_campaign({"name": "撤回展会", "starts_on": date(2026, 3, 1),
                                        "ends_on": date(2026, 3, 3), "form": "offline",
                                        "budget": Decimal("100.00")}, owner)
        campaigns.submit(item.id, owner)
        db.session.commit()
        cid = item.id
        request = approvals.pending("campaign", cid)
        approvers = sorted(a.user_id for a in request.approvers if a.step == request.step)
        assert approvers and user_id("manager") not in approvers
        ended = approvals.withdraw_pending("campaign", cid, None, approvals.ERASED_REASON)
        db.session.commit()
        assert [r.id for r in ended] == [request.id] and request.status == approvals.WITHDRAWN
        assert db.session.get(Campaign, cid).status == campaigns.PLANNING
        told = _withdrawn()
        assert sorted(n.user_id for n in told) == sorted([user_id("manager"), *approvers])
        assert "withdrawn by the CRM" in notifications.text_of(told[0], visible=True, language="en")


def test_a_decided_request_is_not_withdrawn_again_and_nobody_is_told(app: Any, make_customer: Any,
                                                                     department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        request = _hold_level(pk, "rep_a")
        approvals.reject(request.id, _user("manager"), "不需要")
        db.session.commit()
        with pytest.raises(RuleViolation):
            approvals.withdraw_by(request, _user("admin"), approvals.ERASED_REASON)
        assert approvals.withdraw_pending("customer", pk, None, approvals.ERASED_REASON) == []
        assert request.status == approvals.REJECTED and _withdrawn() == []


def test_the_requester_withdrawing_is_not_told_of_their_own_act(app: Any, make_customer: Any,
                                                                department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        request = _hold_level(pk, "rep_a")
        approvals.withdraw(request.id, _user("rep_a"))
        db.session.commit()
        assert request.status == approvals.WITHDRAWN
        assert user_id("rep_a") not in {n.user_id for n in _withdrawn()}


def _told(event_user: str) -> list[str]:
    return [notifications.text_of(n, visible=True, language="en") for n in _withdrawn()
            if n.user_id == user_id(event_user)]


def test_archiving_a_customer_ends_its_pending_requests(app: Any, make_customer: Any,
                                                        department_managers: Any) -> None:
    """A level change waits for the manager; rep_a then archives the customer. Nothing could
    apply to it any more: the request is withdrawn, leaves the manager's inbox and the
    manager is told why (not left to end as a conflict when decided)."""
    pk = make_customer("rep_a", name="归档撤回测试公司")
    with app.app_context():
        rid = _hold_level(pk, "rep_a").id
        archived, refused = customers.archive_customers([pk], _user("rep_a"))
        db.session.commit()
        assert [c.id for c in archived] == [pk] and refused == []
        assert db.session.get(ApprovalRequest, rid).status == approvals.WITHDRAWN
        assert approvals.waiting_for(_user("manager")) == []
        (text,) = _told("manager")
        assert "withdrawn by rep_a" in text and "The customer was archived." in text, text
        assert _told("rep_a") == []  # not told of their own act


def test_merging_a_customer_away_ends_its_pending_requests(app: Any, make_customer: Any,
                                                           department_managers: Any) -> None:
    keep = make_customer("rep_a", name="合并保留测试公司")
    gone = make_customer("rep_a", name="合并移走测试公司")
    with app.app_context():
        rid = _hold_level(gone, "rep_a").id
        survivor = merge.merge_customers([keep, gone], keep, {}, _user("manager"))
        db.session.commit()
        assert db.session.get(ApprovalRequest, rid).status == approvals.WITHDRAWN
        (text,) = _told("rep_a")
        assert f"The customer was merged into {survivor.code}." in text, text


def test_an_approved_archive_applies_and_ends_the_other_requests(app: Any, make_customer: Any,
                                                                 department_managers: Any) -> None:
    """A won customer's archive is held for approval beside a level change; approving the
    archive applies it (its own request ends approved, not withdrawn) and withdraws the level
    change, which rep_a hears about from the approving manager."""
    pk = make_customer("rep_a", type_code="won")
    with app.app_context():
        level = _hold_level(pk, "rep_a").id
        customers.archive_customers([pk], _user("rep_a"))
        db.session.commit()
        held = db.session.scalars(select(ApprovalRequest).where(ApprovalRequest.kind == "customer.archive")).one()
        approvals.approve(held.id, _user("manager"))
        db.session.commit()
        assert db.session.get(Customer, pk).archived_at is not None
        assert db.session.get(ApprovalRequest, held.id).status == approvals.APPROVED
        assert db.session.get(ApprovalRequest, level).status == approvals.WITHDRAWN
        (text,) = _told("rep_a")
        assert "withdrawn by manager" in text and "archived" in text, text


def test_an_earlier_approval_email_about_an_erased_individual_loses_the_name(app, make_customer,
                                                                             department_managers: Any) -> None:
    """The "approval waiting" e-mail queued for the manager named the individual customer: it
    is three steps from the record (customer -> request -> notification -> e-mail) and goes
    with the erasure like the notification itself."""
    from app.services.erasure import ERASED

    person = "个体户邮件残留人"
    pk = make_customer("rep_a", name=person, contact_phone="13911113333", contact_name=person)
    with app.app_context():
        _hold_level(pk, "rep_a")
        mails = list(db.session.scalars(select(OutboxMessage)))
        assert any(person in (m.text_body or "") + (m.html_body or "") + (m.subject or "") for m in mails)
        erasure.erase(_user("admin"), "customer", pk, "本人要求删除", extra_fields=("name",))
        db.session.expire_all()
        for mail in db.session.scalars(select(OutboxMessage)):
            assert person not in (mail.text_body or "") + (mail.html_body or "") + (mail.subject or "")
        assert any(ERASED in (m.text_body or "") for m in db.session.scalars(select(OutboxMessage)))


def test_the_requester_taking_a_request_back_tells_the_waiting_approver_only(app: Any, make_customer: Any,
                                                                             department_managers: Any) -> None:
    """rep_a withdraws their own level request: the manager, whose inbox item goes, is told
    who took it back (in their language); rep_a is not told of their own act."""
    pk = make_customer("rep_a")
    with app.app_context():
        request = _hold_level(pk, "rep_a")
        rid, code = request.id, request.code
        approvals.withdraw(rid, _user("rep_a"))
        db.session.commit()
        assert approvals.waiting_for(_user("manager")) == []
        told = _withdrawn()
        assert [n.user_id for n in told] == [user_id("manager")]
        text = notifications.text_of(told[0], visible=True, language="en")
        assert code in text and "withdrawn by rep_a" in text and "person who asked took it back" in text, text
        zh = notifications.text_of(told[0], visible=True, language="zh")
        assert code in zh and "申请人" in zh, zh
