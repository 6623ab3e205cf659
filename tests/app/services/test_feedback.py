"""Service feedback (客户服务反馈, 001 表4): required fields with their labels, the 1-5 score,
the feedback time in the CRM's zone, scope through the customer, and a complaint opening
one ticket (praise and suggestions refuse)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import appbuilder, db
from app.models import Customer
from app.models.service import FeedbackType, ServiceFeedback, Ticket
from app.services import feedback
from app.services.errors import NotFound, RuleViolation
from tests.app.services.test_problem_reports import sla_ready  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("shanghai", "sla_ready")


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def kind(code: str) -> FeedbackType:
    return db.session.scalar(select(FeedbackType).where(FeedbackType.code == code))


def values(customer_id: int | None, type_code: str = "complaint", **extra: Any) -> dict[str, Any]:
    return {"customer": db.session.get(Customer, customer_id) if customer_id else None,
            "feedback_type": kind(type_code), "description": "外包装破损\n配件缺失", **extra}


def given(by: str, customer_id: int, type_code: str = "complaint", **extra: Any) -> ServiceFeedback:
    item = feedback.save_feedback(values(customer_id, type_code, **extra), user(by))
    db.session.commit()
    return item


def test_a_new_feedback_is_numbered_and_received_now_unless_told(ctx: Any, make_customer: Any) -> None:
    cid = make_customer("rep_a")
    item = given("rep_a", cid)
    assert item.code.startswith("F")
    assert abs((datetime.now(UTC) - item.received_at).total_seconds()) < 60
    typed = given("rep_a", cid, received_at="2026-11-30 10:00", satisfaction="4")
    assert typed.received_at == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    assert typed.satisfaction == 4


@pytest.mark.parametrize(("field", "label"), [
    ("customer", "Customer"), ("feedback_type", "Feedback type"), ("description", "Problem description")])
def test_each_required_field_of_table_4_is_refused_with_its_label(ctx: Any, make_customer: Any, field: str,
                                                                  label: str) -> None:
    data = values(make_customer("rep_a"))
    data[field] = None
    with pytest.raises(RuleViolation) as caught:
        feedback.save_feedback(data, user("rep_a"))
    assert set(caught.value.errors) == {field} and label in caught.value.errors[field]


def test_the_feedback_time_cannot_be_emptied_on_an_edit(ctx: Any, make_customer: Any) -> None:
    item = given("rep_a", make_customer("rep_a"))
    with pytest.raises(RuleViolation) as caught:
        feedback.save_feedback({"received_at": None}, user("rep_a"), pk=item.id, version=item.version)
    assert "Feedback time" in caught.value.errors["received_at"]


@pytest.mark.parametrize("score", [0, 6, "4.5", "good", -1, True])
def test_satisfaction_is_a_whole_number_from_1_to_5(ctx: Any, make_customer: Any, score: Any) -> None:
    with pytest.raises(RuleViolation) as caught:
        feedback.save_feedback(values(make_customer("rep_a"), satisfaction=score), user("rep_a"))
    assert "1 to 5" in caught.value.errors["satisfaction"]


@pytest.mark.parametrize(("score", "stored"), [(1, 1), ("5", 5), ("3分", 3), (None, None), ("", None)])
def test_satisfaction_bounds_accepted(ctx: Any, make_customer: Any, score: Any, stored: Any) -> None:
    assert given("rep_a", make_customer("rep_a"), satisfaction=score).satisfaction == stored


def test_another_reps_feedback_is_not_found(ctx: Any, make_customer: Any) -> None:
    theirs = make_customer("rep_b")
    item = given("rep_b", theirs)
    with pytest.raises(NotFound):
        feedback.save_feedback({"result": "x"}, user("rep_a"), pk=item.id, version=item.version)
    with pytest.raises(NotFound):
        feedback.open_ticket(item.id, user("rep_a"))
    assert feedback.for_customer(user("rep_a"), theirs) == []
    with pytest.raises(RuleViolation) as caught:
        feedback.save_feedback(values(theirs), user("rep_a"))
    assert caught.value.errors["customer"] == "Customer not found."


def test_a_complaint_opens_one_ticket(ctx: Any, make_customer: Any) -> None:
    cid = make_customer("rep_a")
    item = given("rep_a", cid)
    ticket = feedback.open_ticket(item.id, user("rep_a"))
    db.session.commit()
    assert ticket.feedback_id == item.id and ticket.customer_id == cid
    assert ticket.ticket_type.code == "complaint" and ticket.priority.code == "high"
    assert ticket.subject == "外包装破损" and ticket.description == "外包装破损\n配件缺失"
    with pytest.raises(RuleViolation) as caught:
        feedback.open_ticket(item.id, user("rep_a"))
    assert caught.value.status == 409 and ticket.code in caught.value.errors["_"]
    db.session.rollback()
    assert db.session.scalar(select(func.count(Ticket.id))) == 1


@pytest.mark.parametrize("type_code", ["praise", "suggestion"])
def test_praise_and_suggestions_do_not_open_tickets(ctx: Any, make_customer: Any, type_code: str) -> None:
    item = given("rep_a", make_customer("rep_a"), type_code)
    with pytest.raises(RuleViolation) as caught:
        feedback.open_ticket(item.id, user("rep_a"))
    assert caught.value.status == 409 and "Only a complaint" in caught.value.errors["feedback_type"]
    db.session.rollback()
    assert db.session.scalar(select(func.count(Ticket.id))) == 0


def test_the_declaration_lists_table_4s_columns_with_the_manuals_headers(ctx: Any) -> None:
    headers = {field.name: field.label_zh for field in feedback.SERVICE_FEEDBACK.fields}
    assert headers == {"code": "反馈编号", "customer": "客户编号", "feedback_type": "反馈类型", "description": "问题描述",
                       "process": "处理过程", "result": "处理结果", "satisfaction": "满意度评分", "received_at": "反馈时间"}


def test_two_clicks_at_the_same_moment_open_one_ticket(app: Any, ctx: Any, make_customer: Any) -> None:
    from tests.concurrency import at_once

    pk = given("rep_a", make_customer("rep_a")).id
    db.session.remove()

    def work() -> str:
        try:
            feedback.open_ticket(pk, user("rep_a"))
            db.session.commit()
            return "opened"
        except RuleViolation as exc:
            db.session.rollback()
            return f"refused {exc.status}"

    assert sorted(at_once(app, work)) == ["opened", "refused 409"]
    assert db.session.scalar(select(func.count(Ticket.id))) == 1
