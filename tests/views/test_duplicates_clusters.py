"""The duplicates page reads stored clusters (issue 12): the first visit starts a scan,
progress shows while it runs, one scan at a time, admins rescan; each viewer sees only the
clusters with two or more of their own members, and only those members."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.extensions import appbuilder, db
from app.models.duplicates import DuplicateScan
from app.services import dedup_clusters
from tests.app.services.test_dedup_clusters import fresh_clusters  # noqa: F401 (autouse fixture)


def scans(app: Any) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count(DuplicateScan.id)))
        db.session.remove()
        return count


def test_first_visit_scans_and_shows_progress_and_a_second_scan_is_refused(app: Any, client: Any, auth: Any,
                                                                           make_customer: Any,
                                                                           monkeypatch: Any) -> None:
    from app.services import background

    make_customer("rep_a", name="Alpha Trading", contact_phone="13700000001")
    make_customer("rep_b", name="Beta Works", contact_phone="13700000001")
    held = []
    monkeypatch.setattr(background, "submit", lambda func, *args: held.append((func, args)))  # a slow scan
    auth.login("admin")
    page = client.get("/duplicates/").get_data(as_text=True)
    assert "No scan yet: scanning all customers now." in page and "0% done" in page
    assert "The first scan is running" in page and 'http-equiv="refresh"' in page
    again = client.post("/duplicates/rescan", follow_redirects=True).get_data(as_text=True)
    assert "A scan is already running (0 % done)" in again
    assert scans(app) == 1 and len(held) == 1
    with app.app_context():
        func, args = held[0]
        func(*args)  # the background job finishes
        db.session.remove()
    page = client.get("/duplicates/").get_data(as_text=True)
    assert "Last full scan" in page and "Alpha Trading" in page and "Beta Works" in page
    assert 'http-equiv="refresh"' not in page
    monkeypatch.undo()
    assert "The scan started" in client.post("/duplicates/rescan", follow_redirects=True).get_data(as_text=True)
    assert scans(app) == 2


def test_only_admins_rescan(app: Any, client: Any, auth: Any) -> None:
    auth.login("manager")
    assert "rescan-form" not in client.get("/duplicates/").get_data(as_text=True)
    before = scans(app)
    assert client.post("/duplicates/rescan").status_code in (302, 403)
    assert scans(app) == before


def test_each_viewer_sees_only_clusters_with_two_of_their_members(app: Any, client: Any, auth: Any,
                                                                  make_customer: Any) -> None:
    a1 = make_customer("rep_a", name="East One", contact_phone="13700000001")
    a2 = make_customer("rep_b", name="East Two", contact_phone="13700000001")
    make_customer("rep_c", name="South Secret", contact_name="Qian", contact_phone="13700000001")
    make_customer("rep_a", name="Lonely East", contact_phone="13900000009")
    make_customer("rep_c", name="South Hidden", contact_phone="13900000009")
    auth.login("manager")  # East: rep_a and rep_b
    page = client.get("/duplicates/").get_data(as_text=True)
    assert f"ids={a1},{a2}" in page.replace("%2C", ",") and "1 clusters in your data scope" in page
    assert "Linked through 1 customer(s) outside your data scope." in page
    for secret in ("South Secret", "Qian", "South Hidden", "Lonely East", "139****0009"):
        assert secret not in page
    auth.logout()
    auth.login("manager_s")  # South: rep_c only, one member per cluster
    page = client.get("/duplicates/").get_data(as_text=True)
    assert "No likely duplicates found." in page and "East One" not in page and "South Secret" not in page
    with app.app_context():
        rep_a = appbuilder.sm.find_user(username="rep_a")
        shown, total = dedup_clusters.clusters_in_scope(rep_a)
        assert (shown, total) == ([], 0)  # rep_a owns one member of each cluster
        db.session.remove()


def test_pages_come_from_sql_in_order(app: Any, client: Any, auth: Any, make_customer: Any,
                                      monkeypatch: Any) -> None:
    import views.duplicates

    pairs = []
    for n in range(3):
        phone = f"1370000000{n}"
        pairs.append((make_customer("rep_a", name=f"Pair {n} a", contact_phone=phone),
                      make_customer("rep_a", name=f"Other {n} b", contact_phone=phone)))
    monkeypatch.setattr(views.duplicates, "PAGE", 2)
    auth.login("admin")
    first = client.get("/duplicates/").get_data(as_text=True).replace("%2C", ",")
    second = client.get("/duplicates/?page=2").get_data(as_text=True).replace("%2C", ",")
    assert all(f"ids={a},{b}" in first for a, b in pairs[:2]) and f"ids={pairs[2][0]}" not in first
    assert f"ids={pairs[2][0]},{pairs[2][1]}" in second and f"ids={pairs[0][0]}," not in second


def test_customers_written_without_a_flush_show_on_the_next_page_load(app: Any, client: Any, auth: Any,
                                                                     make_customer: Any) -> None:
    from sqlalchemy import insert

    from app.models import Customer

    first = make_customer("rep_a", name="Alpha Trading", contact_phone="13700000001")
    auth.login("admin")
    assert "No likely duplicates found." in client.get("/duplicates/").get_data(as_text=True)  # scanned
    with app.app_context():  # a bulk write no session event sees (no flush, a compiled statement)
        db.session.execute(insert(Customer), [{"code": "CBULK000001", "name": "Gamma Imports", "version": 1,
                                               "contact_phone": "13700000001",
                                               "owner_id": appbuilder.sm.find_user(username="rep_b").id}])
        db.session.commit()
        db.session.remove()
    page = client.get("/duplicates/").get_data(as_text=True)
    assert "Gamma Imports" in page and f"ids={first}," in page.replace("%2C", ",")
    assert scans(app) == 1
