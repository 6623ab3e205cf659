"""Customer behaviour through the screens and the API: the same rules in both."""

from __future__ import annotations

import os
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import CrmUser, Customer, CustomerSource, CustomerType


def _type_id(app, code):
    with app.app_context():
        return db.session.scalar(select(CustomerType.id).where(CustomerType.code == code))


def test_add_form_creates_numbered_customer_owned_by_creator(app, client, auth):
    auth.login("rep_a")
    response = client.post("/customerview/add", data={"name": "深圳华腾电子", "contact_phone": "+86 138-1234-5678"})
    assert response.status_code == 302
    with app.app_context():
        customer = db.session.scalar(select(Customer).where(Customer.name == "深圳华腾电子"))
        assert re.fullmatch(r"C\d{8}\d{3}", customer.code)
        assert customer.contact_phone == "13812345678"
        assert customer.owner.username == "rep_a"


def test_bad_input_in_form_keeps_the_form_and_says_why(app, client, auth):
    auth.login("rep_a")
    page = client.post(
        "/customerview/add", data={"name": "Keep me", "contact_phone": "12345", "credit_code": "91350100M000100Y4X"}
    ).get_data(as_text=True)
    assert "Not a valid phone number" in page
    assert "checksum" in page
    assert 'value="Keep me"' in page  # nothing typed is lost
    with app.app_context():
        assert db.session.scalar(select(Customer)) is None


def test_api_validation_errors_are_422_per_field(client, api):
    response = client.post(
        "/api/v1/customer/", json={"name": "", "contact_phone": "abc", "credit_code": "123"}, headers=api("rep_a")
    )
    assert response.status_code == 422
    assert {"name", "contact_phone", "credit_code"} <= set(response.get_json()["message"])


def test_api_create_normalises_and_numbers(client, api):
    response = client.post(
        "/api/v1/customer/", json={"name": "Northwind", "contact_phone": "(0755) 1234 5678"}, headers=api("rep_a")
    )
    assert response.status_code == 201, response.get_json()
    shown = client.get(f"/api/v1/customer/{response.get_json()['id']}", headers=api("rep_a")).get_json()["result"]
    assert shown["code"].startswith("C") and shown["contact_phone"] == "0755-****5678"
    assert "password" not in str(shown)


def test_inactive_dictionary_entry_cannot_be_picked_but_stays(app, client, api, make_customer):
    with app.app_context():
        source = db.session.scalar(select(CustomerSource).where(CustomerSource.code == "trade_show"))
        source_id = source.id
    pk = make_customer("rep_a", source_id=source_id)
    with app.app_context():
        db.session.get(CustomerSource, source_id).active = False
        db.session.commit()
    headers = api("rep_a")
    refused = client.post("/api/v1/customer/", json={"name": "N", "contact_phone": "13812345678", "source": source_id},
                          headers=headers)
    assert refused.status_code == 422 and "source" in refused.get_json()["message"]
    kept = client.put(f"/api/v1/customer/{pk}", json={"name": "Still from the show", "version": 1}, headers=headers)
    assert kept.status_code == 200
    with app.app_context():
        assert db.session.get(Customer, pk).source_id == source_id


@pytest.mark.parametrize("actor,allowed", [("rep_a", False), ("manager", True)])
def test_won_customer_archived_only_by_manager(app, client, auth, make_customer, actor, allowed):
    pk = make_customer("rep_a", type_code="won")
    auth.login(actor)
    auth.grant_step_up(actor)  # archiving a won customer is sensitive (tested in test_step_up)
    page = client.post(f"/customerview/delete/{pk}", follow_redirects=True).get_data(as_text=True)
    with app.app_context():
        assert (db.session.get(Customer, pk).archived_at is not None) is allowed
    if not allowed:
        assert "won customer" in page


def test_status_history_on_customer_page(app, client, auth, make_customer):
    pk = make_customer("rep_a")
    auth.login("rep_a")
    client.post(f"/customerview/edit/{pk}", data={
        "name": "Upgraded", "contact_phone": "13812345678", "edit_version": "1",
        "type": str(_type_id(app, "won")), "status_reason": "Signed the contract",
        "contract_number": "HT-2026-001",  # 001: a won customer needs a contract number
    })
    page = client.get(f"/customerview/show/{pk}").get_data(as_text=True)
    assert "Signed the contract" in page and "Won" in page


def test_archived_customer_leaves_the_list_and_can_be_restored(app, client, auth, make_customer):
    pk = make_customer("rep_a", name="Dormant Trading")
    auth.login("manager")
    client.post(f"/customerview/delete/{pk}")
    assert "Dormant Trading" not in client.get("/customerview/list/").get_data(as_text=True)
    assert "Dormant Trading" in client.get("/archivedcustomerview/list/").get_data(as_text=True)
    client.post("/archivedcustomerview/action_post", data={"action": "restore", "rowid": [pk]})
    assert "Dormant Trading" in client.get("/customerview/list/").get_data(as_text=True)


@pytest.mark.parametrize("field,value", [("expires_on", date.today() - timedelta(days=1)), ("active", False)])
def test_expired_or_inactive_user_cannot_log_in(app, client, auth, field, value):
    with app.app_context():
        user = db.session.scalar(select(CrmUser).where(CrmUser.username == "rep_a"))
        setattr(user, field, value)
        db.session.commit()
    auth.login("rep_a")
    assert client.get("/customerview/list/").status_code in (302, 401, 403)
    response = client.post("/api/v1/security/login", json={"username": "rep_a", "password": "Test-Pass-1234",
                                                             "provider": "db"})
    assert response.status_code == 401


def test_session_ends_when_account_expires(app, client, auth):
    auth.login("rep_a")
    assert client.get("/customerview/list/").status_code == 200
    with app.app_context():
        db.session.scalar(select(CrmUser).where(CrmUser.username == "rep_a")).expires_on = date.today() - timedelta(1)
        db.session.commit()
    assert client.get("/customerview/list/").status_code == 302


def test_jobs_page_lists_jobs_with_next_run(client, auth):
    auth.login("admin")
    page = client.get("/jobs/").get_data(as_text=True)
    assert "Deactivate expired accounts" in page
    assert re.search(r"\d{4}-\d{2}-\d{2} 01:05", page)
    assert "No scheduler is running" in page  # tests start none: the admin is told jobs wait
    auth.logout()
    auth.login("rep_a")
    assert client.get("/jobs/").status_code == 403


def test_pages_load_nothing_from_the_internet(client, auth, make_customer):
    pk = make_customer("rep_a")
    auth.login("admin")
    for url in ("/", "/customerview/list/", f"/customerview/show/{pk}", "/customerview/add", "/swagger/v1",
                "/users/list/"):
        body = client.get(url).get_data(as_text=True)
        assert not re.search(r"""(src|href)=["'](https?:)?//""", body), url


def test_chinese_interface(client, auth, make_customer):
    """Our labels and the FAB strings its own zh catalogue leaves empty (Add, Delete...)."""
    make_customer("rep_a")
    auth.login("rep_a")
    client.get("/lang/zh")
    page = client.get("/customerview/list/").get_data(as_text=True)
    for text in ("客户编号", "联系电话", "删除", "新增", "编辑", "记录数"):
        assert text in page, text
    assert "Record Count" not in page


def test_jobs_page_names_the_active_scheduler(app, client, auth):
    from app import scheduler

    lock = scheduler.leader_lock(app)
    assert lock.acquire()  # this process becomes the deployment's scheduler
    try:
        auth.login("admin")
        page = client.get("/jobs/").get_data(as_text=True)
        assert f"process {os.getpid()}" in page and "Active scheduler" in page
    finally:
        lock.release()
