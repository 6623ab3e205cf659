"""Issue 12: a page's work is its own page's, whatever the number of records behind it.

The home page's figures stop counting at the lists' cap, a typed URL cannot send a list past
the records its pager reaches, a filter matching nothing reads no page, "my activities" loads
their customers with the page, and the audit log's record filter is an exact, indexed match.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from flask_babel import force_locale
from sqlalchemy import event, select, text

from app.clock import local_today
from app.extensions import db
from app.models import AuditLog, CustomerLevel
from app.services import activities
from tests.conftest import user_id
from views import display, list_count

YESTERDAY = date.today() - timedelta(days=2)


@pytest.fixture
def statements(app: Any) -> list[str]:
    """The SQL statements the app runs while the test does (recorded on the engine)."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _overdue_follow_ups(make_customer: Any, make_follow_up: Any, n: int) -> None:
    """``n`` of rep_a's follow-ups with a next step due two days ago (each plans an activity,
    overdue, assigned to rep_a)."""
    for i in range(n):
        customer = make_customer("rep_a", name=f"Lantern Works {i}", contact_phone=f"1380013{i:04d}")
        make_follow_up(customer, "rep_a", next_step="Send the quote", next_step_date=YESTERDAY)


def test_the_home_figures_stop_at_the_cap_and_say_so(client: Any, auth: Any, make_customer: Any,
                                                      make_follow_up: Any, monkeypatch: Any) -> None:
    _overdue_follow_ups(make_customer, make_follow_up, 4)
    auth.login("rep_a")
    home = client.get("/").get_data(as_text=True)
    assert re.search(r"4 follow-ups with a next step due", home) and "4 overdue" in home
    assert "4 customers in your view" in home
    monkeypatch.setattr(list_count, "COUNT_CAP", 3)
    home = client.get("/").get_data(as_text=True)
    assert "3+ follow-ups with a next step due" in home and "3+ overdue" in home
    assert "3+ customers in your view" in home
    monkeypatch.setattr(list_count, "COUNT_CAP", 4)
    home = client.get("/").get_data(as_text=True)
    assert "4 follow-ups with a next step due" in home and "4 overdue" in home  # exact up to the cap
    assert "4 customers in your view" in home


def test_activities_today_are_counted_not_the_listed_few(client: Any, auth: Any, make_customer: Any,
                                                          make_follow_up: Any, monkeypatch: Any) -> None:
    """The home page lists 20 of today's activities; its figure counts them all (up to the cap)."""
    for i in range(4):
        customer = make_customer("rep_a", name=f"Dock Paints {i}", contact_phone=f"1330013{i:04d}")
        make_follow_up(customer, "rep_a", next_step="Call back", next_step_date=local_today())
    monkeypatch.setattr(activities, "my_open", lambda user, **kw: {"overdue": [], "today": [], "upcoming": []})
    auth.login("rep_a")
    assert "4 activities today, 0 overdue" in client.get("/").get_data(as_text=True)
    monkeypatch.setattr(list_count, "COUNT_CAP", 3)
    assert "3+ activities today, 0 overdue" in client.get("/").get_data(as_text=True)


def test_a_typed_page_past_the_pager_shows_its_last_page(client: Any, auth: Any, make_customer: Any,
                                                          monkeypatch: Any, app: Any) -> None:
    for i in range(5):
        make_customer("rep_a", name=f"Harbour Tools {i}", contact_phone=f"1390013{i:04d}")
    monkeypatch.setattr(list_count, "COUNT_CAP", 3)
    monkeypatch.setattr("views.base.COUNT_CAP", 3)
    auth.login("rep_a")
    page = client.get("/customerview/list/?page_CustomerView=40000&psize_CustomerView=2").get_data(as_text=True)
    assert "pages through its first 3 records" in page
    assert len(re.findall(r"Harbour Tools \d", page)) == 2  # page 1 (3 // 2): records 3-4 of the first 4
    first = client.get("/customerview/list/?page_CustomerView=1&psize_CustomerView=2").get_data(as_text=True)
    assert "pages through its first" not in first
    assert re.findall(r"Harbour Tools \d", page) == re.findall(r"Harbour Tools \d", first)


def test_a_persons_filter_is_paged_like_the_whole_list(app: Any, client: Any, auth: Any, make_customer: Any,
                                                        monkeypatch: Any) -> None:
    """A filter on a relation (the owner) is the person's, not a record's related list: counted
    up to the cap, and a typed deep page is the pager's last (it walked every row before)."""
    for i in range(5):
        make_customer("rep_a", name=f"Pier Cranes {i}", contact_phone=f"1350013{i:04d}")
    monkeypatch.setattr(list_count, "COUNT_CAP", 3)
    monkeypatch.setattr("views.base.COUNT_CAP", 3)
    auth.login("admin")
    with app.app_context():
        owner = f"_flt_0_owner={user_id('rep_a')}"
    page = client.get(f"/customerview/list/?{owner}&page_CustomerView=900&psize_CustomerView=2").get_data(as_text=True)
    assert "pages through its first 3 records" in page and "3+" in page
    assert len(re.findall(r"Pier Cranes \d", page)) == 2


def test_a_small_list_keeps_a_typed_page_without_a_message(client: Any, auth: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="Wharf Ropes", contact_phone="13400001234")
    auth.login("rep_a")
    page = client.get("/customerview/list/?page_CustomerView=3000").get_data(as_text=True)
    assert "pages through its first" not in page and "Wharf Ropes" not in page  # past its end: empty
    assert "Wharf Ropes" in client.get("/customerview/list/").get_data(as_text=True)


def test_a_filter_matching_nothing_reads_no_page(client: Any, auth: Any, make_customer: Any,
                                                 statements: list[str]) -> None:
    make_customer("rep_a", name="Quay Supplies", contact_phone="13700001234")
    auth.login("rep_a")
    statements.clear()
    page = client.get("/customerview/list/?_flt_0_name=zzz-nothing")
    assert page.status_code == 200 and "Quay Supplies" not in page.get_data(as_text=True)
    reads = [s for s in statements if s.startswith("SELECT customer.id AS customer_id, customer.code")]
    assert reads == []  # the count said 0: no walk over the scope for a page
    statements.clear()
    assert "Quay Supplies" in client.get("/customerview/list/?_flt_0_name=Quay").get_data(as_text=True)
    assert [s for s in statements if s.startswith("SELECT customer.id AS customer_id, customer.code")]


def test_my_activities_load_their_customers_with_the_page(client: Any, auth: Any, make_customer: Any,
                                                          make_follow_up: Any, statements: list[str]) -> None:
    _overdue_follow_ups(make_customer, make_follow_up, 2)
    auth.login("rep_a")
    client.get("/activityview/mine/")
    statements.clear()
    assert client.get("/activityview/mine/").status_code == 200
    few = len(statements)
    _overdue_follow_ups(make_customer, make_follow_up, 4)
    statements.clear()
    page = client.get("/activityview/mine/").get_data(as_text=True)
    assert page.count("Lantern Works") >= 6 and len(statements) == few  # not one query per customer


def test_the_audit_logs_record_filter_is_exact_and_indexed(client: Any, auth: Any, app: Any,
                                                           make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Beacon Tiles", contact_phone="13600001234")
    make_customer("rep_a", name="Signal Tiles", contact_phone="13600001235")
    with app.app_context():
        db.session.add(CustomerLevel(code="beacon", label_en="Beacon", label_zh="灯塔"))  # a "CustomerLevel" entry
        db.session.commit()
        types = db.session.scalars(select(AuditLog.object_type)).all()
        db.session.remove()
    assert any(t.startswith("Customer") and t != "Customer" for t in types)  # "starts with" would list them
    auth.login("admin")
    listed = client.get("/auditlogview/list/?_flt_0_object_type=Customer").get_data(as_text=True)
    assert listed.count("/auditlogview/show/") == types.count("Customer") < 50
    with app.test_request_context(), force_locale("zh"):
        chinese = display.object_label("Customer")
    for typed in ("customer", " Customer ", chinese):  # as the column shows it, any case, either language
        shown = client.get(f"/auditlogview/list/?_flt_0_object_type={typed}").get_data(as_text=True)
        assert shown.count("/auditlogview/show/") == types.count("Customer"), typed
    one = client.get(f"/auditlogview/list/?_flt_0_object_type=Customer&_flt_0_object_id={pk}").get_data(as_text=True)
    assert one.count("/auditlogview/show/") == 1
    assert client.get(f"/auditlogview/list/?_flt_1_object_id={pk}").status_code == 302  # no "starts with"
    with app.app_context():
        connection = db.session.connection()
        query = f"SELECT id FROM audit_log WHERE object_type = 'Customer' AND object_id = '{pk}'"
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(row[0] for row in connection.execute(text(f"EXPLAIN {query}")))
        else:
            plan = " ".join(row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {query}")))
        assert "ix_audit_log_object" in plan, plan
        db.session.rollback()


def test_a_persons_overdue_count_reads_the_due_index_alone(app: Any) -> None:
    with app.app_context():
        connection = db.session.connection()
        if connection.dialect.name != "sqlite":
            pytest.skip("SQLite names a covering index in its plan; PostgreSQL's depends on its visibility map")
        query = ("SELECT count(*) FROM activity WHERE assignee_id = 1 AND status = 'open' AND due_at < '2026-12-01' "
                 "AND (customer_id IN (SELECT id FROM customer WHERE owner_id = 1) OR lead_id IS NOT NULL)")
        plan = " ".join(row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {query}")))
        assert "COVERING INDEX ix_activity_assignee_due" in plan, plan
        db.session.rollback()
