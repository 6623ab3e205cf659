"""The birthday greeting page (issue 14): the prefilled template in English or Chinese, sending it
through the outbox, and scope: rep_b cannot open or send a greeting to rep_a's contact."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Contact, Customer, OutboxMessage
from app.services import contacts, notifications


def contact(app: Any, customer_id: int, email: str | None = "wang@example.com") -> int:
    with app.app_context():
        item = contacts.save_contact({"customer": db.session.get(Customer, customer_id), "name": "Wang Wu",
                                      "email": email, "birthday": "1980-03-13"},
                                     appbuilder.sm.find_user(username="rep_a"))
        db.session.commit()
        pk = item.id
        db.session.remove()
        return pk


def outbox(app: Any) -> list[tuple[str, str]]:
    with app.app_context():
        rows = [(m.to_address, m.subject) for m in db.session.scalars(select(OutboxMessage))]
        db.session.remove()
        return rows


def test_the_owner_opens_the_prefilled_greeting_and_sends_it(client: Any, auth: Any, app: Any,
                                                             make_customer: Any) -> None:
    pk = contact(app, make_customer("rep_a", name="Acme Ltd"))
    auth.login("rep_a")
    page = client.get(f"/greeting/{pk}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'value="Happy birthday, Wang Wu!"' in text and "Acme Ltd" in text and "wang@example.com" in text
    chinese = client.get(f"/greeting/{pk}?language=zh").get_data(as_text=True)
    assert "生日快乐" in chinese
    answer = client.post(f"/greeting/{pk}", data={"language": "zh", "subject": "生日快乐", "body": "祝您生日快乐！"})
    assert answer.status_code == 302
    assert outbox(app) == [("wang@example.com", "生日快乐")]


def test_an_empty_greeting_is_a_message_not_a_mail(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    pk = contact(app, make_customer("rep_a"))
    auth.login("rep_a")
    answer = client.post(f"/greeting/{pk}", data={"subject": "Hi", "body": "   "})
    assert answer.status_code == 400 and "Enter the greeting." in answer.get_data(as_text=True)
    assert outbox(app) == []


def test_a_contact_without_e_mail_says_so(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    pk = contact(app, make_customer("rep_a"), email=None)
    auth.login("rep_a")
    answer = client.get(f"/greeting/{pk}")
    assert answer.status_code == 400 and "has no e-mail address" in answer.get_data(as_text=True)


def test_rep_b_cannot_open_or_send_a_greeting_to_rep_a_s_contact(client: Any, auth: Any, app: Any,
                                                                 make_customer: Any) -> None:
    pk = contact(app, make_customer("rep_a"))
    auth.login("rep_b")
    assert client.get(f"/greeting/{pk}").status_code == 404
    assert client.post(f"/greeting/{pk}", data={"subject": "Hi", "body": "Hello"}).status_code == 404
    assert client.get("/greeting/not-a-number").status_code == 404
    assert outbox(app) == []


def test_a_manager_greets_a_contact_in_the_department(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    pk = contact(app, make_customer("rep_a"))
    auth.login("manager")
    assert client.post(f"/greeting/{pk}", data={"subject": "Hi", "body": "Hello"}).status_code == 302
    assert outbox(app) == [("wang@example.com", "Hi")]


def test_the_birthday_notification_offers_the_greeting_while_the_contact_is_visible(
        client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    pk = contact(app, make_customer("rep_a", name="Acme Ltd"))
    with app.app_context():
        item = db.session.get(Contact, pk)
        for username in ("rep_a", "rep_b"):  # rep_b was told, then the customer stayed rep_a's
            notifications.notify("birthday", [appbuilder.sm.find_user(username=username).id], record=item,
                                 params={"name": item.name, "customer": item.customer.code, "date": "2026-03-13"})
        db.session.commit()
        db.session.remove()
    auth.login("rep_a")
    page = client.get("/notifications/").get_data(as_text=True)
    assert f'href="/greeting/{pk}"' in page and "Send a greeting" in page
    auth.logout()
    auth.login("rep_b")
    page = client.get("/notifications/").get_data(as_text=True)
    assert "/greeting/" not in page and "Wang Wu" not in page


def test_the_contact_page_links_to_the_greeting_for_those_who_may_send_it(
        client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    pk = contact(app, make_customer("rep_a", name="Acme Ltd"))
    auth.login("rep_a")
    assert f'href="/greeting/{pk}"' in client.get(f"/contactview/show/{pk}").get_data(as_text=True)
    auth.logout()
    auth.login("admin")  # admins may see and send too
    assert f'href="/greeting/{pk}"' in client.get(f"/contactview/show/{pk}").get_data(as_text=True)
    auth.logout()
    auth.login("viewer")  # reads every contact, sends no greetings
    page = client.get(f"/contactview/show/{pk}").get_data(as_text=True)
    assert "Wang Wu" in page and "/greeting/" not in page
