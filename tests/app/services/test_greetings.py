"""Birthday greetings (issue 14, 003): the template prefilled from the contact and the sender in
English or Chinese, edited, queued through the outbox, audited; only for a contact in scope."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import AuditLog, Customer, OutboxMessage
from app.services import contacts, greetings
from app.services.errors import NotFound, RuleViolation


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def contact(customer_id: int, owner: str = "rep_a", email: str | None = "wang@example.com") -> int:
    item = contacts.save_contact({"customer": db.session.get(Customer, customer_id), "name": "Wang Wu",
                                  "email": email, "birthday": "1980-03-13"}, user(owner))
    db.session.commit()
    return item.id


def test_the_template_is_prefilled_in_the_chosen_language(ctx: Any, make_customer: Any) -> None:
    pk = contact(make_customer("rep_a", name="Acme Ltd"))
    english = greetings.draft(pk, user("rep_a"))
    assert english.language == "en" and english.to_address == "wang@example.com"
    assert english.subject == "Happy birthday, Wang Wu!"
    assert "Dear Wang Wu" in english.body and "Acme Ltd" in english.body and "Rep_A Test" in english.body
    chinese = greetings.draft(pk, user("rep_a"), "zh")
    assert chinese.subject == "Wang Wu，生日快乐！" and "生日快乐" in chinese.body and "Acme Ltd" in chinese.body


def test_sending_queues_the_edited_greeting_and_audits_it(ctx: Any, make_customer: Any) -> None:
    pk = contact(make_customer("rep_a"))
    message = greetings.send_greeting(pk, user("rep_a"), "Happy birthday!", "Dear Wang,\n<b>all the best</b>", "en")
    db.session.commit()
    (queued,) = db.session.scalars(select(OutboxMessage)).all()
    assert queued.id == message.id and queued.to_address == "wang@example.com" and queued.status == "queued"
    assert queued.subject == "Happy birthday!" and queued.text_body == "Dear Wang,\n<b>all the best</b>\n"
    assert "&lt;b&gt;all the best&lt;/b&gt;" in queued.html_body  # the typed text, never markup
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "greeting_sent"))
    assert entry is not None and entry.user_name == "rep_a"


def test_rep_b_cannot_greet_rep_a_s_contact(ctx: Any, make_customer: Any) -> None:
    pk = contact(make_customer("rep_a"))
    with pytest.raises(NotFound):
        greetings.send_greeting(pk, user("rep_b"), "Hi", "Hello")
    with pytest.raises(NotFound):
        greetings.draft(pk, user("rep_b"))
    db.session.rollback()
    assert db.session.scalars(select(OutboxMessage)).all() == []


def test_a_contact_without_e_mail_or_an_empty_greeting_is_refused_with_a_message(ctx: Any,
                                                                                  make_customer: Any) -> None:
    customer = make_customer("rep_a")
    with pytest.raises(RuleViolation) as caught:
        greetings.send_greeting(contact(customer, email=None), user("rep_a"))
    assert "no e-mail address" in caught.value.errors["email"]
    db.session.rollback()
    pk = contact(customer)
    with pytest.raises(RuleViolation) as caught:
        greetings.send_greeting(pk, user("rep_a"), "Line one\nBcc: x@example.com", "  ")
    assert set(caught.value.errors) == {"subject", "body"}
