"""Second round of attacks on issue 16's screens (tester "attacker2"): a ticket with
thousands of notes, the SLA breach e-mail in Chinese, quick search and the queue tabs for
people who may not see a ticket."""

from __future__ import annotations

import time as timer
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, update

from app.extensions import db
from app.models.notifications import OutboxMessage
from app.models.org import CrmUser
from app.models.service import Ticket, TicketLog
from app.services import sla
from tests.views.test_tickets import ticket, uid  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("shanghai")
SH = ZoneInfo("Asia/Shanghai")


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def test_a_ticket_with_thousands_of_notes_pages_its_log(app: Any, client: Any, auth: Any,
                                                       ticket: Any) -> None:  # noqa: F811
    """3,000 notes on one ticket (a chatty customer, an import, a loop of an integration): the
    ticket page renders every one of them in one response (``log_rows`` has no limit), so the
    page grows without bound. The log is paged like every other list (the customer tabs are):
    one page shows at most a few hundred steps."""
    _, pk = ticket(owner="rep_a", by="rep_a", assignee="rep_a")
    with app.app_context():
        now = datetime(2025, 9, 15, 2, 0, tzinfo=ZoneInfo("UTC"))
        db.session.execute(insert(TicketLog), [
            {"ticket_id": pk, "at": now + timedelta(seconds=n), "user_id": uid(app, "rep_a"), "kind": "note",
             "note": f"chatty-note-{n:05d}"} for n in range(3000)])
        db.session.commit()
    auth.login("rep_a")
    started = timer.perf_counter()
    response = client.get(f"/service/tickets/{pk}")
    elapsed = timer.perf_counter() - started
    assert response.status_code == 200
    shown = _text(response).count("chatty-note-")
    assert shown <= 500, f"the ticket page rendered {shown} log steps ({len(response.data)} bytes, {elapsed:.2f} s)"


def test_the_sla_breach_e_mail_is_in_chinese_for_a_chinese_reader(app: Any, ticket: Any) -> None:  # noqa: F811
    """rep_a reads the CRM in Chinese: the breach e-mail (subject, sentence, clock name) is
    Chinese, with the deadline in the CRM's zone."""
    with app.app_context():
        sla.seed_defaults()
        db.session.execute(update(CrmUser).where(CrmUser.username == "rep_a").values(language="zh"))
        db.session.commit()
    try:
        _, pk = ticket(owner="rep_a", by="manager", assignee="rep_a")
        with app.app_context():
            due = db.session.get(Ticket, pk).response_due_at
            sla.check_deadlines(due + timedelta(days=30))
            mails = db.session.execute(select(OutboxMessage.subject, OutboxMessage.text_body).where(
                OutboxMessage.user_id == uid(app, "rep_a"))).all()
    finally:
        with app.app_context():
            db.session.execute(update(CrmUser).where(CrmUser.username == "rep_a").values(language=None))
            db.session.commit()
    breach = [(s, b) for s, b in mails if "SLA" in s]
    assert breach, mails
    for subject, body in breach:
        assert "超时" in subject, subject
        assert "missed" not in body and "deadline" not in body, body
        assert "首次响应" in body or "解决" in body, body


@pytest.mark.parametrize("who", ["rep_c", "manager_s"])
def test_another_regions_people_find_no_ticket_by_code_or_subject(app: Any, client: Any, auth: Any,
                                                                  ticket: Any, who: str) -> None:  # noqa: F811
    """Quick search (navbar) and every queue tab: rep_a's customer's ticket (subject with a
    phone number) is nowhere for South."""
    _, pk = ticket(owner="rep_a", by="rep_a", subject="Secret-subject 13812345678")
    with app.app_context():
        code = db.session.get(Ticket, pk).code
    auth.login("rep_a")  # the search does find it for its owner (the attack below is not vacuous)
    assert "Secret-subject" in _text(client.get(f"/search/?q={code}"))
    auth.logout()
    auth.login(who)
    leaks = []
    for url, sought in ((f"/search/?q={code}", "Secret-subject"), ("/search/?q=Secret-subject", code)):
        if sought in _text(client.get(url)):  # the query itself is echoed: look for the other half
            leaks.append(url)
    for url in ("/service/tickets/?tab=all",
                "/service/tickets/?tab=unassigned", "/service/tickets/?tab=breached", "/service/tickets/?tab=team",
                "/api/v1/ticket/?q=(filters:!((col:subject,opr:ct,value:Secret)))",
                "/ticketview/list/?_flt_0_subject=Secret", "/ticketview/export/csv"):
        response = client.get(url)
        if response.status_code >= 500 or "Secret-subject" in _text(response) or code in _text(response):
            leaks.append(f"{url}: {response.status_code}")
    assert client.get(f"/service/tickets/{pk}").status_code == 404
    assert not leaks, leaks
