"""Issue 11 §6: the home page's "next step due" link opens exactly the due follow-ups; the
follow-up, archived-customer and audit-log lists have download buttons that work; a rep who
archives with Delete sees and restores what they archived. Followed as a user would: the
page is rendered, the link or button taken from it, and its target opened."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta
from typing import Any

from app.clock import local_today
from app.extensions import db
from app.models import Customer

#: Today in the CRM's zone (CRM_TIMEZONE): "due" counts days there, not on the server's clock.


def _href(page: str, marker: str) -> str:
    """The (unescaped) address of the first link whose tag contains ``marker``."""
    found = re.search(r'<a[^>]*' + re.escape(marker) + r'[^>]*href="([^"]*)"', page) or \
        re.search(r'<a[^>]*href="([^"]*)"[^>]*' + re.escape(marker), page) or \
        re.search(r'<a[^>]*href="([^"]*' + re.escape(marker) + r'[^"]*)"', page)
    assert found, f"no link with {marker!r}"
    return html.unescape(found.group(1))


def _export_links(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]*/export/(?:csv|xlsx)[^"]*)"', page)]


def _csv(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.status_code
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def _due_fixture(make_customer: Any, make_follow_up: Any) -> None:
    mine = make_customer("rep_a", name="Mine")
    other = make_customer("rep_c", name="Not mine")
    today = local_today()  # the CRM's day when the test runs (a module constant goes stale at midnight)
    for label, day in (("overdue", today - timedelta(days=3)), ("due-today", today),
                       ("tomorrow", today + timedelta(days=1)), ("no-date", None)):
        make_follow_up(mine, "rep_a", content=label, next_step_date=day)
    make_follow_up(other, "rep_c", content="other-rep-due", next_step_date=today)


def test_home_due_link_opens_exactly_the_counted_follow_ups(client: Any, auth: Any, make_customer: Any,
                                                             make_follow_up: Any) -> None:
    _due_fixture(make_customer, make_follow_up)
    auth.login("rep_a")
    home = client.get("/").get_data(as_text=True)
    assert "2 follow-ups with a next step due" in home
    listed = client.get(_href(home, 'id="follow-ups-due"'))
    assert listed.status_code == 200
    page = listed.get_data(as_text=True)
    shown = {label for label in ("overdue", "due-today", "tomorrow", "no-date", "other-rep-due") if label in page}
    assert shown == {"overdue", "due-today"}
    assert "This list cannot be filtered" not in page


def test_follow_up_list_has_export_of_what_it_shows(client: Any, auth: Any, make_customer: Any,
                                                    make_follow_up: Any) -> None:
    _due_fixture(make_customer, make_follow_up)
    auth.login("rep_a")
    due_list = _href(client.get("/").get_data(as_text=True), 'id="follow-ups-due"')
    links = _export_links(client.get(due_list).get_data(as_text=True))
    assert any("/followupview/export/csv" in link for link in links)
    rows = _csv(client.get(next(link for link in links if "/csv" in link)))
    contents = {row[4] for row in rows[1:]}
    assert contents == {"overdue", "due-today"}  # the list's filter and scope, not every follow-up
    assert client.get(next(link for link in links if "/xlsx" in link)).status_code == 200


def test_archived_customer_list_exports_masked_in_scope(app: Any, client: Any, auth: Any,
                                                        make_customer: Any) -> None:
    mine = make_customer("rep_a", name="Archived East", contact_phone="13812345678")
    south = make_customer("rep_c", name="Archived South")
    auth.login("manager")
    for pk in (mine,):
        client.post(f"/customerview/delete/{pk}")
    with app.app_context():
        db.session.get(Customer, south).archived_at = db.func.now()
        db.session.commit()
    links = _export_links(client.get("/archivedcustomerview/list/").get_data(as_text=True))
    assert any("/archivedcustomerview/export/csv" in link for link in links)
    rows = _csv(client.get(next(link for link in links if "/csv" in link)))
    assert [row[1] for row in rows[1:]] == ["Archived East"]  # rep_c's (south) is out of scope
    assert "13812345678" not in rows[1] and "****" in rows[1][4]


def test_audit_log_lists_have_export(client: Any, auth: Any) -> None:
    auth.login("admin")
    for view in ("auditlogview", "securityalertview"):
        links = _export_links(client.get(f"/{view}/list/").get_data(as_text=True))
        assert any(f"/{view}/export/csv" in link for link in links), view
        assert _csv(client.get(next(link for link in links if "/csv" in link)))[0][0]


def test_no_export_button_without_the_permission(client: Any, auth: Any) -> None:
    auth.login("viewer")  # Read Only: reads follow-ups, may not export them
    assert _export_links(client.get("/followupview/list/").get_data(as_text=True)) == []
    assert client.get("/followupview/export/csv").status_code in (302, 403)


def test_rep_sees_and_restores_what_they_archived(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    mine = make_customer("rep_a", name="Dormant Mine")
    theirs = make_customer("rep_b", name="Dormant Theirs")
    auth.login("rep_b")
    client.post(f"/customerview/delete/{theirs}")
    auth.logout()
    auth.login("rep_a")
    client.post(f"/customerview/delete/{mine}")
    home = client.get("/").get_data(as_text=True)
    archived = client.get(_href(home, "/archivedcustomerview/list/"))
    page = archived.get_data(as_text=True)
    assert archived.status_code == 200 and "Dormant Mine" in page and "Dormant Theirs" not in page
    client.post("/archivedcustomerview/action_post", data={"action": "restore", "rowid": [mine]})
    assert "Dormant Mine" in client.get("/customerview/list/").get_data(as_text=True)
    # Another rep's archived customer stays out of reach, also by its id.
    client.post("/archivedcustomerview/action_post", data={"action": "restore", "rowid": [theirs]})
    with app.app_context():
        assert db.session.get(Customer, mine).archived_at is None
        assert db.session.get(Customer, theirs).archived_at is not None
