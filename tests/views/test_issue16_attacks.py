"""Attacks on issue 16's screens and API (tester "attacker"): CSRF on the new POST actions,
hostile paging / tab parameters, stale and blank transfers, hostile uploads, and every new
page in Chinese for every role."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models.service import Attachment, Ticket, TicketLog
from tests.app.services.test_tickets import fake_sla  # noqa: F401  (fixture)
from tests.views.test_tickets import _ticket, ticket, uid  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("shanghai", "fake_sla")


@pytest.fixture
def made(ticket: Any) -> Any:  # noqa: F811  (the imported fixture)
    """``made(owner, by=…, **values)`` -> (customer id, ticket id): ``tests.views.test_tickets.ticket``."""
    return ticket


ROLES = ("admin", "manager", "rep_a", "service", "viewer")


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def _count(app: Any, model: Any, *where: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_ticket_actions_without_a_csrf_token_are_refused(app: Any, client: Any, auth: Any, made: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _, pk = made(owner="rep_a", by="rep_a")
    logs = _count(app, TicketLog, TicketLog.ticket_id == pk)
    auth.login("rep_a")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    for action, data in (("note", {"note": "forged"}), ("status", {"to_status": "in_progress"}),
                         ("transfer", {"to_me": "1"}), ("rate", {"satisfaction": "1"})):
        assert client.post(f"/service/tickets/{pk}/{action}", data=data).status_code == 400, action
    assert client.post("/problems/report/", data={"description": "forged"}).status_code == 400
    assert _count(app, TicketLog, TicketLog.ticket_id == pk) == logs
    assert _count(app, Ticket) == 1


@pytest.mark.parametrize("query", [
    "tab=<script>alert(1)</script>", "tab=tickets&page_ticket=-1", "tab=tickets&page_ticket=99999999999999999999",
    "tab=tickets&page_ticket=abc", "tab=history&page_history=99999999999999999999",
])
def test_the_customer_page_survives_hostile_tab_and_page_arguments(client: Any, auth: Any, made: Any,
                                                                   query: str) -> None:
    customer, _ = made(owner="rep_a", by="rep_a", subject="Visible subject")
    auth.login("rep_a")
    response = client.get(f"/customerview/show/{customer}?{query}")
    assert response.status_code in (200, 302, 400, 404), response.status_code
    assert "<script>alert(1)</script>" not in _text(response)


@pytest.mark.parametrize("query", ["tab=<script>alert(1)</script>", "page=-1", "page=99999999999999999999",
                                   "tab=all&page=abc"])
def test_the_queue_survives_hostile_arguments(client: Any, auth: Any, query: str) -> None:
    auth.login("service")
    response = client.get(f"/service/tickets/?{query}")
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in _text(response)


@pytest.mark.parametrize("reason", ["   ", "\u3000\u3000", "\u200b", "\t\n"])
def test_a_transfer_with_a_blank_reason_is_refused(app: Any, client: Any, api: Any, made: Any,
                                                   reason: str) -> None:
    _, pk = made(owner="rep_a", by="rep_a", assignee="rep_a")
    response = client.post(f"/api/v1/ticket/{pk}/transfer", json={"assignee": uid(app, "manager"), "reason": reason},
                           headers=api("rep_a"))
    assert response.status_code == 422, _text(response)
    assert _ticket(app, pk).assignee_id == uid(app, "rep_a")


def test_a_stale_transfer_and_an_illegal_move_are_refused_not_500(app: Any, client: Any, api: Any,
                                                                  made: Any) -> None:
    _, pk = made(owner="rep_a", by="rep_a", assignee="rep_a")
    headers = api("rep_a")
    version = _ticket(app, pk).version
    assert client.post(f"/api/v1/ticket/{pk}/note", json={"note": "moves the version?"},
                       headers=headers).status_code == 200
    client.post(f"/api/v1/ticket/{pk}/status", json={"status": "in_progress"}, headers=headers)
    stale = client.post(f"/api/v1/ticket/{pk}/transfer", json={"assignee": uid(app, "manager"), "reason": "x",
                                                               "version": version}, headers=headers)
    assert stale.status_code == 409
    assert client.post(f"/api/v1/ticket/{pk}/status", json={"status": "closed"}, headers=headers).status_code == 409
    for body in ({"satisfaction": "５"}, {"satisfaction": 4.5}, {"satisfaction": -1}, {"satisfaction": 1e9},
                 {"satisfaction": True}):
        assert client.post(f"/api/v1/ticket/{pk}/rate", json=body, headers=headers).status_code in (400, 409, 422)
    assert _ticket(app, pk).satisfaction is None


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.mark.parametrize("name,data", [
    ("shot.png", b"<html><script>alert(1)</script></html>"),
    ("shot.png", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
    ("empty.png", b""),
])
def test_a_hostile_screenshot_is_refused_with_a_message_and_nothing_kept(app: Any, client: Any, auth: Any,
                                                                         name: str, data: bytes) -> None:
    auth.login("rep_a")
    response = client.post("/problems/report/", data={"description": "Broken page",
                                                      "screenshot": (io.BytesIO(data), name)},
                           content_type="multipart/form-data")
    assert response.status_code in (413, 415, 422) or "alert-danger" in _text(response)
    assert _count(app, Attachment) == 0 and _count(app, Ticket) == 0


def test_a_path_in_the_screenshot_name_is_dropped(app: Any, client: Any, auth: Any) -> None:
    auth.login("rep_a")
    client.post("/problems/report/", data={"description": "Broken page",
                                           "screenshot": (io.BytesIO(PNG), "..\\..\\evil/../../etc/passwd.png")},
                content_type="multipart/form-data")
    with app.app_context():
        names = db.session.scalars(select(Attachment.filename)).all()
    assert names and all("/" not in n and "\n" not in n and ".." not in n for n in names)


def test_nobody_but_the_reporter_and_admins_reads_a_problem_report(app: Any, client: Any, auth: Any) -> None:
    """问题反馈 is the reporter's and the admins' (附录3). The Read Only role sees every
    customer, which must not make it see every internal problem report (text and screenshot)."""
    auth.login("rep_a")
    client.post("/problems/report/", data={"description": "Mine only", "screenshot": (io.BytesIO(PNG), "a.png")},
                content_type="multipart/form-data")
    with app.app_context():
        attachment = db.session.scalar(select(Attachment.id))
        report = db.session.scalar(select(Ticket.id))
    assert client.get(f"/attachments/{attachment}/download").status_code == 200
    auth.logout()
    leaks = []
    for name in ("rep_c", "service", "viewer", "manager"):
        auth.login(name)
        if client.get(f"/attachments/{attachment}/download").status_code != 404:
            leaks.append(f"{name}: screenshot download")
        if client.get(f"/problems/{report}").status_code != 404:
            leaks.append(f"{name}: /problems/<id>")
        for url in (f"/service/tickets/{report}", "/service/tickets/?tab=all", "/ticketview/list/",
                    "/ticketview/export/csv"):
            if "Mine only" in _text(client.get(url)):
                leaks.append(f"{name}: {url}")
        auth.logout()
    assert not leaks, leaks


ENGLISH = re.compile(r">\s*(Ticket queue|My open|My team|Unassigned|Breached|All in scope|Report a problem|"
                     r"My problem reports|Transfer|Process log|Add note|Subject|Priority|Assignee|Resolution due|"
                     r"Problem description|Steps to reproduce|Screenshot|Tickets|Demands|Service feedback)\s*<")


@pytest.mark.parametrize("role", ROLES)
def test_every_new_page_in_chinese_has_no_english_label_and_no_500(client: Any, auth: Any, made: Any,
                                                                   role: str) -> None:
    customer, pk = made(owner="rep_a", by="rep_a", assignee="rep_a")
    auth.login(role)
    client.get("/lang/zh")
    assert re.search(r"[\u4e00-\u9fff]", _text(client.get("/service/tickets/")))  # the switch took
    urls = ["/service/tickets/", "/service/tickets/?tab=all", "/service/tickets/?tab=breached",
            f"/service/tickets/{pk}", "/problems/report/", "/problems/mine/", "/ticketview/list/",
            "/demandview/list/", "/servicefeedbackview/list/", "/transferruleview/list/",
            f"/customerview/show/{customer}?tab=tickets", f"/customerview/show/{customer}?tab=demands",
            f"/customerview/show/{customer}?tab=feedback"]
    problems = []
    for url in urls:
        response = client.get(url, follow_redirects=True)
        if response.status_code >= 500:
            problems.append(f"{url}: {response.status_code}")
        elif response.status_code == 200:
            found = ENGLISH.findall(_text(response))
            if found:
                problems.append(f"{url}: {sorted(set(found))}")
    assert not problems, problems
