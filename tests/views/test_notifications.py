"""Screens of issue 14's notifications: the bell, the inbox (scoped, in the reader's language,
no phones), mark read, preferences, the language switch, and the admins' outbox."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditLog, Customer, Notification, OutboxMessage
from app.models.org import CrmUser
from app.services import mail, notifications
from tests.conftest import user_id


def tell(app: Any, username: str, event: str = "import_finished", record: Any = None, **params: Any) -> int:
    with app.app_context():
        if isinstance(record, int):
            record = db.session.get(Customer, record)
        params = params or {"file": "customers.xlsx", "summary": "12 created"}
        (item,) = notifications.notify(event, [user_id(username)], record=record, params=params)
        db.session.commit()
        pk = item.id
        db.session.remove()
        return pk


def page_of(client: Any, url: str = "/notifications/") -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_bell_counts_the_readers_unread_notifications(app: Any, client: Any, auth: Any) -> None:
    tell(app, "rep_a")
    tell(app, "rep_a")
    tell(app, "rep_b")

    anonymous = client.get("/login/").get_data(as_text=True)
    assert 'id="notification-bell"' not in anonymous
    auth.login("rep_a")
    page = page_of(client, "/customerview/list/")
    assert re.search(r'id="notification-count">2<', page)
    assert 'href="/notifications/"' in page


def test_inbox_newest_first_unread_highlighted_in_the_readers_language(app: Any, client: Any, auth: Any) -> None:
    first = tell(app, "rep_a", file="old.xlsx", summary="1 created")
    second = tell(app, "rep_a", file="new.xlsx", summary="2 created")
    with app.app_context():
        db.session.execute(update(Notification).where(Notification.id == first)
                           .values(read_at=Notification.created_at))
        db.session.commit()

    auth.login("rep_a")
    page = page_of(client)
    assert page.index("new.xlsx") < page.index("old.xlsx")
    assert re.search(rf'class="info notification-unread" id="notification-{second}"', page)
    assert re.search(rf'class="notification-read" id="notification-{first}"', page)
    assert "Import of new.xlsx finished: 2 created" in page


def test_a_rep_never_sees_or_marks_another_reps_notifications(app: Any, client: Any, auth: Any) -> None:
    theirs = tell(app, "rep_a", file="secret-list.xlsx")

    auth.login("rep_b")
    assert "secret-list.xlsx" not in page_of(client)
    client.post(f"/notifications/{theirs}/read")
    client.post("/notifications/read-all")
    with app.app_context():
        assert db.session.get(Notification, theirs).read_at is None


def test_mark_one_and_all_read(app: Any, client: Any, auth: Any) -> None:
    one, two, three = (tell(app, "rep_a") for _ in range(3))
    auth.login("rep_a")

    assert client.post(f"/notifications/{one}/read").status_code == 302
    assert re.search(r'id="notification-count">2<', page_of(client))
    client.post("/notifications/read-all")
    assert 'id="notification-count"' not in page_of(client)
    with app.app_context():
        assert all(db.session.get(Notification, pk).read_at for pk in (one, two, three))


def test_mark_read_needs_a_csrf_token(app: Any, client: Any, auth: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pk = tell(app, "rep_a")
    auth.login("rep_a")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)

    assert client.post(f"/notifications/{pk}/read").status_code == 400
    token = re.search(r'name="csrf_token" value="([^"]+)"', page_of(client)).group(1)
    assert client.post(f"/notifications/{pk}/read", data={"csrf_token": token}).status_code == 302
    with app.app_context():
        assert db.session.get(Notification, pk).read_at is not None


def test_inbox_pages(app: Any, client: Any, auth: Any) -> None:
    for number in range(notifications.PAGE_SIZE + 3):
        tell(app, "rep_a", file=f"file-{number:02d}.xlsx", summary="ok")
    auth.login("rep_a")

    first, second = page_of(client), page_of(client, "/notifications/?page=2")
    assert "file-22.xlsx" in first and "file-00.xlsx" not in first
    assert "file-00.xlsx" in second and "file-22.xlsx" not in second
    assert page_of(client, "/notifications/?page=abc").count('class="info notification-unread"') == 20


def test_a_record_the_reader_lost_is_not_named_or_linked(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a", name="Hidden Harbour Ltd")
    with app.app_context():
        code = db.session.get(Customer, customer).code
    tell(app, "rep_a", "opportunity_stale", customer, code=code, title="Hidden Harbour Ltd", days=9)
    auth.login("rep_a")
    page = page_of(client)
    assert f"{code} Hidden Harbour Ltd has not been updated for 9 days." in page
    assert f'href="/customerview/show/{customer}"' in page

    with app.app_context():  # the customer moves to another department's rep
        db.session.execute(update(Customer).where(Customer.id == customer).values(owner_id=user_id("rep_c")))
        db.session.commit()
    page = page_of(client)
    assert "Hidden Harbour" not in page and code not in page
    assert f"/customerview/show/{customer}" not in page
    assert "Opportunity not updated: about a record you cannot see." in page


def test_no_unmasked_phone_on_the_page_or_in_the_email(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a", name="Phone Co", contact_phone="13812345678")
    with app.app_context():  # a careless caller hands the phone over, by name and inside a text
        (item,) = notifications.notify("lead_assigned", [user_id("rep_a")], record=db.session.get(Customer, customer),
                                       params={"code": "L1", "company": "Phone Co 138 1234 5678",
                                               "contact_phone": "13812345678"})
        db.session.commit()
        assert "13812345678" not in str(item.params) and "1234 5678" not in str(item.params)
        message = db.session.scalars(select(OutboxMessage)).one()
        assert "5678" in message.text_body
        assert "1234" not in message.text_body + message.html_body + message.subject
    auth.login("rep_a")
    page = page_of(client)
    assert "Phone Co 138****5678" in page
    assert "13812345678" not in page and "1234 5678" not in page


def test_preferences_choose_channels_digest_and_language(app: Any, client: Any, auth: Any) -> None:
    auth.login("rep_a")
    page = page_of(client, "/notifications/preferences")
    assert 'name="pref-lead_assigned" value="email"' in page

    response = client.post("/notifications/preferences", data={
        "pref-lead_assigned": ["in_app"], "pref-birthday": ["in_app", "digest"], "language": "zh"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(CrmUser, user_id("rep_a")).language == "zh"
        notifications.notify("lead_assigned", [user_id("rep_a")], params={"code": "L1", "company": "A"})
        (birthday,) = notifications.notify("birthday", [user_id("rep_a")],
                                           params={"name": "Li Lei", "customer": "C1", "date": "2026-12-04"})
        db.session.commit()
        (held,) = db.session.scalars(select(OutboxMessage)).all()  # none for the lead: e-mail is off
        assert (held.status, held.notification_id) == (mail.HELD, birthday.id)
        assert mail.send_due() == 0  # held for the digest, never sent alone
        assert [n.id for n in notifications.digest_pending(user_id("rep_a"))] == [birthday.id]
        assert notifications.mark_digested([birthday.id]) == 1
        db.session.commit()
        assert notifications.digest_pending(user_id("rep_a")) == []


def test_preferences_refuse_an_unknown_language(app: Any, client: Any, auth: Any) -> None:
    auth.login("rep_a")
    response = client.post("/notifications/preferences", data={"language": "xx"})

    assert response.status_code == 200
    assert "Unknown language." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(CrmUser, user_id("rep_a")).language is None


def test_in_app_off_keeps_the_bell_quiet(app: Any, client: Any, auth: Any) -> None:
    auth.login("rep_a")
    client.post("/notifications/preferences", data={"pref-import_finished": ["email"]})
    tell(app, "rep_a")

    assert 'id="notification-count"' not in page_of(client)


def test_switching_the_screen_language_sets_the_email_language(app: Any, client: Any, auth: Any) -> None:
    auth.login("rep_a")
    client.get("/lang/zh")

    with app.app_context():
        assert db.session.get(CrmUser, user_id("rep_a")).language == "zh"


def test_outbox_for_admins_only(app: Any, client: Any, auth: Any) -> None:
    auth.login("rep_a")
    assert client.get("/outbox/").status_code in (302, 403)
    auth.logout()
    with app.app_context():
        mail.queue("someone@example.com", "Hello there", "body")
        db.session.commit()
    auth.login("admin")

    page = page_of(client, "/outbox/")
    assert 'id="mail-not-configured"' in page
    assert "someone@example.com" in page and "Hello there" in page


def test_outbox_masks_sms_phones(app: Any, client: Any, auth: Any) -> None:
    with app.app_context():
        mail.queue("13812345678", "SMS", "text", channel="sms")
        db.session.commit()
    auth.login("admin")

    page = page_of(client, "/outbox/")
    assert "138****5678" in page and "13812345678" not in page


def test_retry_now_is_audited(app: Any, client: Any, auth: Any) -> None:
    with app.app_context():
        message = mail.queue("someone@example.com", "Hello", "body")
        message.status, message.attempts, message.last_error = mail.FAILED, 8, "SMTPConnectError: down"
        db.session.commit()
        pk = message.id
    auth.login("admin")
    page = page_of(client, "/outbox/?status=failed")
    assert "SMTPConnectError: down" in page and "Retry now" in page

    assert client.post(f"/outbox/{pk}/retry").status_code == 302
    with app.app_context():
        assert db.session.get(OutboxMessage, pk).status == mail.QUEUED
        assert db.session.scalars(select(AuditLog.action).where(AuditLog.action == "outbox_retry")).all()


def test_send_test_email_queues_one(app: Any, client: Any, auth: Any) -> None:
    auth.login("admin")
    client.post("/outbox/test", data={"address": "ops@example.com"})
    refused = client.post("/outbox/test", data={"address": "a@b.c, evil@x.y"}, follow_redirects=True)

    assert "Enter one e-mail address." in refused.get_data(as_text=True)
    with app.app_context():
        assert [m.to_address for m in db.session.scalars(select(OutboxMessage))] == ["ops@example.com"]


def test_mark_read_returns_to_a_local_page_only(app: Any, client: Any, auth: Any) -> None:
    one, two = tell(app, "rep_a"), tell(app, "rep_a")
    auth.login("rep_a")

    back = client.post(f"/notifications/{one}/read", data={"next": "/notifications/?page=1"})
    away = client.post(f"/notifications/{two}/read", data={"next": "//evil.example.com/"})

    assert back.headers["Location"].endswith("/notifications/?page=1")
    assert away.headers["Location"].endswith("/notifications/") and "evil" not in away.headers["Location"]


def test_a_page_number_past_any_bound_is_an_empty_page(app: Any, client: Any, auth: Any) -> None:
    tell(app, "rep_a")
    auth.login("rep_a")

    assert "No notifications." in page_of(client, f"/notifications/?page={2**62}")
    auth.logout()
    auth.login("admin")
    assert "No messages." in page_of(client, f"/outbox/?page={2**62}")
