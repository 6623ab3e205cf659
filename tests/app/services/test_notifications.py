"""The notification service (app/services/notifications.py): params without phones, texts,
once per occasion, the e-mail channel (language, link, scope), digests."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import Customer, Notification, OutboxMessage
from app.models.org import CrmUser
from app.services import mail, notifications
from tests.conftest import user_id


@pytest.fixture
def set_user(ctx: Any) -> Any:
    """``set_user(username, column=value …)``; the columns are put back after the test."""
    saved: list[tuple[str, dict[str, Any]]] = []
    table = CrmUser.__table__

    def change(username: str, **values: Any) -> None:
        row = db.session.execute(select(*(table.c[k] for k in values)).where(table.c.username == username)).one()
        saved.append((username, dict(zip(values, row, strict=True))))
        db.session.execute(update(table).where(table.c.username == username).values(**values))
        db.session.commit()
        db.session.expire_all()

    yield change
    db.session.rollback()  # the test's own unfinished work
    for username, values in reversed(saved):
        db.session.execute(update(table).where(table.c.username == username).values(**values))
    db.session.commit()


def test_params_never_carry_a_phone(ctx: Any) -> None:
    params = notifications.safe_params({
        "contact_phone": "13812345678", "mobile": "+86 139 0000 1111", "company": "Acme, call 010-87654321",
        "name": "Li Lei 13812345678", "code": "C20261201001", "date": "2026-12-04", "summary": "12 created",
        "due": "2026-03-10 09:00", "count": 12345678})

    assert params == {
        "contact_phone": "138****5678", "mobile": "+86****1111", "company": "Acme, call 010-****4321",
        "name": "Li Lei 138****5678", "code": "C20261201001", "date": "2026-12-04", "summary": "12 created",
        "due": "2026-03-10 09:00", "count": 12345678}


def test_notify_stores_masked_params(ctx: Any) -> None:
    (item,) = notifications.notify("lead_assigned", [user_id("rep_a")],
                                   params={"code": "L1", "company": "Acme 13812345678"})
    db.session.commit()

    assert db.session.get(Notification, item.id).params == {"code": "L1", "company": "Acme 138****5678"}


def test_text_with_a_missing_param_still_reads(ctx: Any) -> None:
    (item,) = notifications.notify("lead_assigned", [user_id("rep_a")], params={"code": "L1"})

    assert notifications.text_of(item, True, language="en") == "Lead L1 … is yours now."


def test_once_per_occasion_one_row_and_one_email(ctx: Any) -> None:
    for _ in range(2):
        notifications.notify("birthday", [user_id("rep_a")], params={"name": "Li", "customer": "C1", "date": "12-04"},
                             occasion="birthday:P1:2026")
        db.session.commit()

    assert len(db.session.scalars(select(Notification)).all()) == 1
    assert len(db.session.scalars(select(OutboxMessage)).all()) == 1


def test_a_user_without_email_gets_the_notification_but_no_email(ctx: Any, set_user: Any) -> None:
    set_user("rep_a", email="none (rep_a)")  # FAB: unique, not null
    notifications.notify("lead_assigned", [user_id("rep_a")], params={"code": "L1", "company": "A"})
    db.session.commit()

    assert len(db.session.scalars(select(Notification)).all()) == 1
    assert db.session.scalars(select(OutboxMessage)).all() == []


def test_email_links_to_the_record_under_the_base_url(app: Any, ctx: Any, make_customer: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_BASE_URL", "https://crm.example.com")
    customer = db.session.get(Customer, make_customer("rep_a", name="Linked Ltd"))
    notifications.notify("opportunity_stale", [user_id("rep_a")], record=customer,
                         params={"code": customer.code, "title": "Linked Ltd", "days": 8})
    db.session.commit()

    assert db.session.scalars(select(OutboxMessage)).all() == []  # opportunity_stale: in-app by default
    (item,) = db.session.scalars(select(Notification)).all()
    subject, text, html = notifications.render_email(item, db.session.get(CrmUser, user_id("rep_a")))
    link = f"https://crm.example.com/customerview/show/{customer.id}"
    assert subject == "[Sheets CRM] Opportunity not updated"
    assert link in text and f'href="{link}"' in html
    assert "Linked Ltd has not been updated for 8 days." in text


def test_email_about_a_record_out_of_the_recipients_scope_names_nothing(ctx: Any, make_customer: Any) -> None:
    customer = db.session.get(Customer, make_customer("rep_a", name="Not Yours Ltd"))
    notifications.notify("lead_assigned", [user_id("manager_s")], record=customer,
                         params={"code": customer.code, "company": "Not Yours Ltd"})
    db.session.commit()

    message = db.session.scalars(select(OutboxMessage)).one()
    body = message.text_body + message.html_body + message.subject
    assert "Not Yours" not in body and customer.code not in body and "/customerview/show/" not in body
    assert "Lead assigned to you: about a record you cannot see." in message.text_body


def test_text_outside_a_request_is_in_the_users_language_and_scope(ctx: Any, set_user: Any,
                                                                   make_customer: Any) -> None:
    set_user("rep_b", language="zh")
    customer = db.session.get(Customer, make_customer("rep_a", name="Elsewhere Ltd"))
    (mine,) = notifications.notify("lead_assigned", [user_id("rep_b")], params={"code": "L7", "company": "Acme"})
    (hidden,) = notifications.notify("lead_assigned", [user_id("rep_b")], record=customer,
                                     params={"code": customer.code, "company": "Elsewhere Ltd"})

    assert notifications.text_of(mine) == "线索 L7 Acme 现在归您负责。"
    assert "Elsewhere" not in notifications.text_of(hidden)


def test_digest_preference_holds_the_email(ctx: Any) -> None:
    notifications.save_preferences(db.session.get(CrmUser, user_id("rep_a")), {"lead_assigned": ["digest"]}, None)
    (item,) = notifications.notify("lead_assigned", [user_id("rep_a")], params={"code": "L1", "company": "A"})
    db.session.commit()

    assert db.session.scalars(select(OutboxMessage.status)).all() == [mail.HELD]
    assert notifications.digest_pending(user_id("rep_a")) == [item]
    assert notifications.digest_pending(user_id("rep_b")) == []
    assert item.read_at is not None  # in-app unticked: kept for the digest's link, no bell


def test_preferences_default_to_the_events_channels(ctx: Any) -> None:
    prefs = notifications.preferences(user_id("rep_a"))

    assert prefs["lead_assigned"] == {"in_app": True, "email": True, "sms": False, "digest": False}
    assert prefs["activity_due"] == {"in_app": True, "email": False, "sms": False, "digest": False}


def test_record_language_takes_known_languages_only(ctx: Any) -> None:
    user = db.session.get(CrmUser, user_id("rep_a"))

    assert notifications.record_language(user, "xx") is False
    assert notifications.record_language(user, "zh") is True
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(CrmUser, user_id("rep_a")).language == "zh"


def test_a_stored_message_param_is_rendered_in_the_readers_language_and_masked(ctx: Any) -> None:
    summary = {"labels": {"en": "Done, ask 13812345678", "zh": "完成，请问 13812345678"}}
    (item,) = notifications.notify("import_finished", [user_id("rep_a")], params={"file": "a.xlsx",
                                                                                   "summary": summary})

    assert notifications.text_of(item, True, language="en") == "Import of a.xlsx finished: Done, ask 138****5678"
    chinese = notifications.text_of(item, True, language="zh")
    assert "完成，请问 138****5678" in chinese and "Done" not in chinese
