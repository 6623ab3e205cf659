"""Ticket scope attacks (issue 16): another rep's customer's ticket through every screen, the
API, the actions, bulk posts and exports; Customer Service and another team's tickets; an
internal problem report and the sales reps."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.service import Ticket, TicketLog, TicketType
from tests.app.services.test_tickets import fake_sla  # noqa: F401  (fixture)
from tests.views.test_tickets import _ticket, ticket, uid  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("shanghai", "fake_sla")


@pytest.fixture
def made(ticket: Any) -> Any:  # noqa: F811  (the imported fixture)
    """``made(owner, by=…, **values)`` -> (customer id, ticket id): ``tests.views.test_tickets.ticket``."""
    return ticket
SECRET = "Secret subject of rep_a"


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def _log_count(app: Any, pk: int) -> int:
    with app.app_context():
        return len(db.session.scalars(select(TicketLog.id).where(TicketLog.ticket_id == pk)).all())


def test_rep_c_cannot_reach_rep_as_ticket_by_any_screen(app: Any, client: Any, auth: Any, made: Any) -> None:
    _, pk = made(owner="rep_a", by="rep_a", subject=SECRET)
    before = _ticket(app, pk)
    auth.login("rep_c")
    for url in (f"/service/tickets/{pk}", f"/ticketview/show/{pk}", f"/ticketview/edit/{pk}"):
        response = client.get(url, follow_redirects=True)
        assert response.status_code == 404 or SECRET not in _text(response), url
    for action, data in (("transfer", {"to_me": "1"}), ("status", {"to_status": "in_progress"}),
                         ("note", {"note": "peek"}), ("rate", {"satisfaction": "1"})):
        assert client.post(f"/service/tickets/{pk}/{action}", data=data).status_code == 404, action
    client.post(f"/ticketview/edit/{pk}", data={"subject": "hijacked", "edit_version": before.version})
    client.post("/ticketview/action_post", data={"action": "delete", "rowid": [str(pk)]})
    for tab in ("mine", "team", "unassigned", "breached", "all"):
        assert SECRET not in _text(client.get(f"/service/tickets/?tab={tab}")), tab
    assert SECRET not in _text(client.get("/ticketview/list/"))
    assert SECRET not in _text(client.get("/ticketview/export/csv"))
    after = _ticket(app, pk)
    assert (after.subject, after.status, after.assignee_id, after.version) == (SECRET, before.status,
                                                                               before.assignee_id, before.version)
    assert _log_count(app, pk) == 1
    auth.logout()
    auth.login("rep_a")  # the same routes do show it to its customer's owner
    assert SECRET in _text(client.get("/ticketview/export/csv"))
    assert SECRET in _text(client.get("/service/tickets/?tab=all"))
    assert SECRET in _text(client.get("/ticketview/list/"))


def test_rep_c_cannot_reach_rep_as_ticket_by_the_api(app: Any, client: Any, api: Any, made: Any) -> None:
    _, pk = made(owner="rep_a", by="rep_a", subject=SECRET)
    headers = api("rep_c")
    assert client.get(f"/api/v1/ticket/{pk}", headers=headers).status_code == 404
    listed = client.get("/api/v1/ticket/", headers=headers).get_json()
    assert all(row["id"] != pk for row in listed["result"])
    assert client.put(f"/api/v1/ticket/{pk}", json={"subject": "x", "version": 1}, headers=headers).status_code == 404
    for action, body in (("transfer", {"assignee": uid(app, "rep_c"), "reason": "mine now"}),
                         ("status", {"status": "in_progress"}), ("note", {"note": "peek"}),
                         ("rate", {"satisfaction": 1})):
        assert client.post(f"/api/v1/ticket/{pk}/{action}", json=body, headers=headers).status_code == 404, action
    assert _ticket(app, pk).subject == SECRET and _log_count(app, pk) == 1


def test_a_rep_cannot_give_their_ticket_to_someone_outside_their_scope(app: Any, client: Any, api: Any,
                                                                        made: Any) -> None:
    _, pk = made(owner="rep_a", by="rep_a")
    refused = client.post(f"/api/v1/ticket/{pk}/transfer", json={"assignee": uid(app, "rep_c"), "reason": "x"},
                          headers=api("rep_a"))
    assert refused.status_code == 403


def test_service_sees_its_team_not_another_teams(app: Any, client: Any, auth: Any, api: Any, made: Any) -> None:
    _, ours = made(team="Service", subject="Service team ticket")
    _, theirs = made(team="South", subject="South team ticket")
    auth.login("service")
    assert client.get(f"/service/tickets/{ours}").status_code == 200
    assert client.get(f"/service/tickets/{theirs}").status_code == 404
    for tab in ("all", "unassigned"):
        page = _text(client.get(f"/service/tickets/?tab={tab}"))
        assert "Service team ticket" in page and "South team ticket" not in page
    headers = api("service")
    ids = {row["id"] for row in client.get("/api/v1/ticket/?q=(page_size:100)", headers=headers).get_json()["result"]}
    assert ours in ids and theirs not in ids
    assert client.post(f"/api/v1/ticket/{theirs}/note", json={"note": "x"}, headers=headers).status_code == 404
    assert "South team ticket" not in _text(client.get("/ticketview/export/csv"))


def test_an_internal_problem_report_is_not_seen_by_reps_or_managers(app: Any, client: Any, auth: Any,
                                                                     api: Any) -> None:
    with app.app_context():
        from app.extensions import appbuilder
        from app.services import tickets

        item = tickets.save_ticket({"ticket_type": db.session.scalar(select(TicketType).where(
            TicketType.code == "internal")), "channel": "internal", "subject": "Crash on import"},
            appbuilder.sm.find_user(username="viewer"))
        db.session.commit()
        pk = item.id
        db.session.remove()
    for name in ("rep_a", "manager", "rep_c"):
        auth.login(name)
        assert client.get(f"/service/tickets/{pk}").status_code == 404, name
        assert "Crash on import" not in _text(client.get("/service/tickets/?tab=all")), name
        assert client.get(f"/api/v1/ticket/{pk}", headers=api(name)).status_code == 404, name
        auth.logout()
    auth.login("admin")
    assert client.get(f"/service/tickets/{pk}").status_code == 200
    auth.logout()
    auth.login("viewer")  # the reporter
    assert "Crash on import" in _text(client.get(f"/service/tickets/{pk}"))


def test_the_read_only_role_cannot_act(app: Any, client: Any, auth: Any, made: Any) -> None:
    _, pk = made(owner="rep_a", assignee="rep_a")
    auth.login("viewer")
    response = client.post(f"/service/tickets/{pk}/note", data={"note": "hi"})
    assert response.status_code in (302, 403)
    assert _log_count(app, pk) == 2
    with app.app_context():
        assert db.session.get(Ticket, pk).status == "assigned"
