"""Tickets on the screens and the REST API (issue 16): created by the form and the API,
the queue's tabs, the ticket page with its actions and log, the API's transfer / status /
note / rate with their 400 / 404 / 409 / 422 answers, and a stale edit."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

import views.service_desk  # noqa: F401  (OWN_VIEWS / OWN_APIS before the app registers declared screens)
from app.extensions import appbuilder, db
from app.models import Customer
from app.models.org import Department
from app.models.service import Priority, Ticket, TicketLog, TicketType
from app.services import tickets
from tests.app.services.test_tickets import fake_sla  # noqa: F401  (fixture)
from tests.conftest import user_id

pytestmark = pytest.mark.usefixtures("shanghai", "fake_sla")


def _id(model: type, code: str) -> int:
    return db.session.scalar(select(model.id).where(model.code == code))


@pytest.fixture
def ticket(app: Any, make_customer: Any) -> Any:
    """``ticket(owner, by=…, **values)`` -> (customer id, ticket id) of a new ticket on a new
    customer of ``owner``."""

    def make(owner: str = "rep_a", by: str = "admin", **values: Any) -> tuple[int, int]:
        customer = make_customer(owner)
        with app.app_context():
            values = {"customer": db.session.get(Customer, customer), "subject": "Machine broken",
                      "ticket_type": db.session.get(TicketType, _id(TicketType, "after_sales")), **values}
            for name in ("assignee",):
                if isinstance(values.get(name), str):
                    values[name] = appbuilder.sm.find_user(username=values[name])
            if isinstance(values.get("team"), str):
                values["team"] = db.session.scalar(select(Department).where(Department.name == values["team"]))
            item = tickets.save_ticket(values, appbuilder.sm.find_user(username=by))
            db.session.commit()
            pk = item.id
            db.session.remove()
        return customer, pk

    return make


def _ticket(app: Any, pk: int) -> Ticket:
    with app.app_context():
        item = db.session.get(Ticket, pk)
        db.session.expunge(item)
        db.session.remove()
        return item


def uid(app: Any, name: str) -> int:
    with app.app_context():
        return user_id(name)


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def test_the_add_form_creates_a_ticket_routed_and_shown_on_its_page(app: Any, client: Any, auth: Any,
                                                                    make_customer: Any) -> None:
    customer = make_customer("rep_a")
    with app.app_context():
        type_id, priority_id = _id(TicketType, "consult"), _id(Priority, "high")
    auth.login("rep_a")
    response = client.post("/ticketview/add", data={
        "customer": customer, "channel": "email", "ticket_type": type_id, "priority": priority_id,
        "subject": "How do I export?", "description": "The export button"}, follow_redirects=True)
    assert response.status_code == 200
    with app.app_context():
        item = db.session.scalar(select(Ticket).where(Ticket.subject == "How do I export?"))
        assert item is not None and item.channel == "email" and item.code.startswith("T")
        pk = item.id
    page = client.get(f"/service/tickets/{pk}")
    assert page.status_code == 200 and "How do I export?" in _text(page) and 'id="ticket-log"' in _text(page)
    shown = client.get(f"/ticketview/show/{pk}")  # the declared show page is the ticket page
    assert shown.status_code == 302 and shown.headers["Location"].endswith(f"/service/tickets/{pk}")


def test_the_api_creates_a_ticket_with_channel_alias_and_field_errors(app: Any, client: Any, api: Any,
                                                                     make_customer: Any) -> None:
    customer = make_customer("rep_a")
    with app.app_context():
        type_id, priority_id = _id(TicketType, "complaint"), _id(Priority, "low")
    headers = api("rep_a")
    made = client.post("/api/v1/ticket/", json={"customer": customer, "channel": "在线", "ticket_type": type_id,
                                                 "priority": priority_id, "subject": "Rude staff"}, headers=headers)
    assert made.status_code == 201, made.get_json()
    assert _ticket(app, made.get_json()["id"]).channel == "online"
    defaulted = client.post("/api/v1/ticket/", json={"customer": customer, "ticket_type": type_id,
                                                      "subject": "No priority given"}, headers=headers)
    assert defaulted.status_code == 201, defaulted.get_json()
    item = _ticket(app, defaulted.get_json()["id"])
    with app.app_context():
        assert (db.session.get(Priority, item.priority_id).code, item.channel) == ("medium", "phone")
    bad = client.post("/api/v1/ticket/", json={"customer": customer, "channel": "fax", "ticket_type": type_id,
                                                "priority": priority_id, "subject": ""}, headers=headers)
    assert bad.status_code == 422 and {"channel", "subject"} <= set(bad.get_json()["message"])


def test_queue_tabs_show_mine_team_unassigned(app: Any, client: Any, auth: Any, ticket: Any) -> None:
    _, mine = ticket(assignee="service", team="Service", subject="Mine")
    _, queued = ticket(team="Service", subject="Team queue")
    _, general = ticket(subject="General")
    auth.login("service")
    page = _text(client.get("/service/tickets/?tab=mine"))
    codes = {pk: _ticket(app, pk).code for pk in (mine, queued, general)}
    assert codes[mine] in page and codes[queued] not in page
    team = _text(client.get("/service/tickets/?tab=team"))
    assert codes[mine] in team and codes[queued] in team and codes[general] not in team
    unassigned = _text(client.get("/service/tickets/?tab=unassigned"))
    assert codes[queued] in unassigned and codes[general] in unassigned and codes[mine] not in unassigned
    assert client.get("/service/tickets/?tab=nonsense&page=-4").status_code == 200


def test_queue_shows_paused_and_breached(app: Any, client: Any, auth: Any, ticket: Any) -> None:
    _, waiting = ticket(assignee="service", team="Service")
    _, late = ticket(assignee="service", team="Service", subject="Late one")
    with app.app_context():
        db.session.get(Ticket, waiting).status = "waiting"
        db.session.get(Ticket, late).resolve_breached = True
        db.session.commit()
        db.session.remove()
    auth.login("service")
    page = _text(client.get("/service/tickets/?tab=mine"))
    assert "ticket-sla-paused" in page and "ticket-sla-breached" in page
    breached = _text(client.get("/service/tickets/?tab=breached"))
    assert "Late one" in breached and breached.count('class="ticket-row"') == 1


def test_page_actions_assign_to_me_start_wait_resolve_rate_and_note(app: Any, client: Any, auth: Any,
                                                                    ticket: Any) -> None:
    _, pk = ticket(team="Service")
    auth.login("service")
    base = f"/service/tickets/{pk}"
    assert client.post(f"{base}/transfer", data={"to_me": "1"}).status_code == 302
    for status in ("in_progress", "waiting", "in_progress"):
        client.post(f"{base}/status", data={"to_status": status})
    refused = client.post(f"{base}/status", data={"to_status": "resolved"}, follow_redirects=True)
    assert "Describe the resolution" in _text(refused)
    client.post(f"{base}/status", data={"to_status": "resolved", "resolution": "Replaced the board"})
    client.post(f"{base}/rate", data={"satisfaction": "4", "comment": "fine"})
    client.post(f"{base}/note", data={"note": "Customer confirmed"})
    item = _ticket(app, pk)
    assert (item.status, item.assignee_id, item.satisfaction, item.resolution) == (
        "resolved", uid(app, "service"), 4, "Replaced the board")
    page = _text(client.get(base))
    assert "Customer confirmed" in page and "Replaced the board" in page and "Reopen" in page
    with app.app_context():
        steps = db.session.scalars(select(TicketLog.kind).where(TicketLog.ticket_id == pk)
                                   .order_by(TicketLog.id)).all()
    assert steps == ["created", "assigned", "status", "status", "status", "resolved", "rated", "note"]


def test_an_illegal_move_on_the_page_is_a_message(app: Any, client: Any, auth: Any, ticket: Any) -> None:
    _, pk = ticket(owner="rep_a", by="rep_a")
    auth.login("rep_a")
    response = client.post(f"/service/tickets/{pk}/status", data={"to_status": "closed"}, follow_redirects=True)
    assert response.status_code == 200 and "cannot become" in _text(response)
    assert _ticket(app, pk).status == "new"


def test_api_actions_transfer_status_note_rate(app: Any, client: Any, api: Any, ticket: Any) -> None:
    _, pk = ticket(assignee="rep_a")
    headers = api("admin")
    service = uid(app, "service")
    with app.app_context():
        service_team = db.session.scalar(select(Department.id).where(Department.name == "Service"))
    no_reason = client.post(f"/api/v1/ticket/{pk}/transfer", json={"assignee": service}, headers=headers)
    assert no_reason.status_code == 422 and "reason" in no_reason.get_json()["message"]
    moved = client.post(f"/api/v1/ticket/{pk}/transfer", json={"assignee": service, "team": service_team,
                                                                "reason": "Technical"}, headers=headers)
    assert moved.status_code == 200 and moved.get_json()["result"]["assignee"] == service
    illegal = client.post(f"/api/v1/ticket/{pk}/status", json={"status": "closed"}, headers=headers)
    assert illegal.status_code == 409 and "status" in illegal.get_json()["message"]
    unknown = client.post(f"/api/v1/ticket/{pk}/status", json={"status": "exploded"}, headers=headers)
    assert unknown.status_code == 400
    assert client.post(f"/api/v1/ticket/{pk}/status", json={"status": "in_progress"}, headers=headers).status_code == 200
    note = client.post(f"/api/v1/ticket/{pk}/note", json={"note": "Checked logs"}, headers=headers)
    assert note.status_code == 200
    early = client.post(f"/api/v1/ticket/{pk}/rate", json={"satisfaction": 5}, headers=headers)
    assert early.status_code == 409
    done = client.post(f"/api/v1/ticket/{pk}/status", json={"status": "resolved", "resolution": "ok"}, headers=headers)
    assert done.status_code == 200 and done.get_json()["result"]["status"] == "resolved"
    for bad in (0, 6, "5", None):
        assert client.post(f"/api/v1/ticket/{pk}/rate", json={"satisfaction": bad}, headers=headers).status_code == 400
    rated = client.post(f"/api/v1/ticket/{pk}/rate", json={"satisfaction": 5, "comment": "great"}, headers=headers)
    assert rated.status_code == 200 and rated.get_json()["result"]["satisfaction"] == 5
    assert client.post(f"/api/v1/ticket/{pk}/note", data="x", headers=headers).status_code == 400
    assert client.post("/api/v1/ticket/999999/note", json={"note": "x"}, headers=headers).status_code == 404


def test_a_stale_version_is_409_on_the_api_and_the_page(app: Any, client: Any, api: Any, auth: Any,
                                                         ticket: Any) -> None:
    _, pk = ticket(assignee="rep_a")
    version = _ticket(app, pk).version
    headers = api("admin")
    assert client.put(f"/api/v1/ticket/{pk}", json={"subject": "New subject", "version": version},
                      headers=headers).status_code == 200
    stale = client.put(f"/api/v1/ticket/{pk}", json={"subject": "Other", "version": version}, headers=headers)
    assert stale.status_code == 409
    stale_move = client.post(f"/api/v1/ticket/{pk}/status", json={"status": "in_progress", "version": version},
                             headers=headers)
    assert stale_move.status_code == 409
    assert _ticket(app, pk).subject == "New subject"


def test_transfer_rules_screen_is_for_admins(app: Any, client: Any, auth: Any) -> None:
    auth.login("admin")
    assert client.get("/transferruleview/list/").status_code == 200
    auth.logout()
    auth.login("service")
    assert client.get("/transferruleview/list/").status_code in (302, 403)


def test_page_actions_need_the_pages_csrf_token(app: Any, client: Any, auth: Any, ticket: Any,
                                                monkeypatch: Any) -> None:
    import re

    _, pk = ticket(team="Service")
    auth.login("service")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    assert client.post(f"/service/tickets/{pk}/transfer", data={"to_me": "1"}).status_code == 400
    assert _ticket(app, pk).assignee_id is None
    page = _text(client.get(f"/service/tickets/{pk}"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post(f"/service/tickets/{pk}/transfer", data={"to_me": "1", "csrf_token": token}).status_code == 302
    assert _ticket(app, pk).assignee_id == uid(app, "service")
