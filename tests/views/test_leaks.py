"""Leaks by construction: sort and filter oracles on masked columns, bad list arguments,
bulk actions, and related-field choices derived from the models.

Org (tests/conftest.py): rep_a in East, rep_b in East Team, rep_c in South.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from flask_appbuilder.models.sqla.interface import SQLAInterface
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, CustomerLevel, CustomerType, FollowUp, TransferJob, TransferSchedule
from app.security.masking import is_masked_path, masked_columns
from tests.conftest import user_id

# Created first with the lower number: ordering by phone would put Alpha first,
# the default order (newest first) puts Bravo first.
ALPHA, BRAVO = ("Alpha Probe", "13800000001"), ("Bravo Probe", "13900000002")
SORT_BY_PHONE = "_oc_CustomerView=contact_phone&_od_CustomerView=asc"


@pytest.fixture
def two_customers(make_customer: Any) -> tuple[int, int]:
    first = make_customer("rep_a", name=ALPHA[0], contact_phone=ALPHA[1])
    second = make_customer("rep_a", name=BRAVO[0], contact_phone=BRAVO[1])
    return first, second


def _order(page: str) -> list[str]:
    return sorted((name for name in (ALPHA[0], BRAVO[0]) if name in page), key=page.index)


def _refused(client: Any, url: str) -> str:
    """GET ``url``: a redirect without the refused arguments, whose page says why."""
    response = client.get(url)
    assert response.status_code == 302, (url, response.status_code)
    location = response.headers["Location"]
    assert "contact_phone" not in location and "created_by" not in location
    return client.get(location).get_data(as_text=True)


# --- the sort oracle: masked columns are never an order or a filter --------------------

@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_list_cannot_be_sorted_by_a_masked_phone(client: Any, auth: Any, two_customers: Any, direction: str) -> None:
    auth.login("rep_a")
    page = _refused(client, f"/customerview/list/?_oc_CustomerView=contact_phone&_od_CustomerView={direction}")
    assert "cannot be sorted by contact_phone" in page
    assert _order(page) == [BRAVO[0], ALPHA[0]]  # the default order, not the phone's
    assert "_oc_CustomerView=contact_phone" not in client.get("/customerview/list/").get_data(as_text=True)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_cannot_be_sorted_by_a_masked_phone(client: Any, auth: Any, two_customers: Any, fmt: str) -> None:
    auth.login("rep_a")
    page = _refused(client, f"/customerview/export/{fmt}?{SORT_BY_PHONE}")
    assert "cannot be sorted by contact_phone" in page and "Nothing was exported" in page


def test_list_cannot_be_filtered_by_a_masked_phone(client: Any, auth: Any, two_customers: Any) -> None:
    auth.login("rep_a")
    for index in range(4):  # every filter FAB has for a text column
        page = _refused(client, f"/customerview/list/?_flt_{index}_contact_phone=1380")
        assert "cannot be filtered by contact_phone" in page
        assert _order(page) == [BRAVO[0], ALPHA[0]]
    assert 'name="_flt_0_contact_phone"' not in client.get("/customerview/list/").get_data(as_text=True)


def test_related_lists_cannot_be_sorted_by_a_masked_phone_through_a_relation(
        client: Any, auth: Any, two_customers: Any, make_follow_up: Any) -> None:
    for pk in two_customers:
        make_follow_up(pk, "rep_a")
    auth.login("rep_a")
    order = "_oc_FollowUpView=customer.contact_phone&_od_FollowUpView=asc"
    page = _refused(client, f"/followupview/list/?{order}")
    assert "cannot be sorted by customer.contact_phone" in page
    # ... nor in the follow-up list embedded in a customer's page
    page = _refused(client, f"/customerview/show/{two_customers[0]}?{order}")
    assert "cannot be sorted by customer.contact_phone" in page


def test_api_refuses_order_and_filter_on_masked_columns(client: Any, api: Any, two_customers: Any,
                                                        make_follow_up: Any) -> None:
    headers = api("rep_a")
    make_follow_up(two_customers[0], "rep_a")
    for url in ("/api/v1/customer/?q=(order_column:contact_phone,order_direction:asc)",
                "/api/v1/customer/?q=(filters:!((col:contact_phone,opr:sw,value:'1380')))",
                "/api/v1/customer/?q=(filters:!((col:contact_phone,opr:ct,value:'0001')))",
                "/api/v1/follow_up/?q=(order_column:customer.contact_phone,order_direction:asc)",
                "/api/v1/customer/?q=(order_column:created_by,order_direction:asc)"):
        response = client.get(url, headers=headers)
        assert response.status_code == 400, (url, response.get_json())


def test_api_base_class_drops_masked_columns_from_default_order_and_search() -> None:
    """An API that declares no order/search columns gets FAB's defaults (every listed
    column): the masked ones must never be among them, whoever writes the next API."""
    from views.base import ScopedApi

    class ProbeApi(ScopedApi):
        datamodel = SQLAInterface(Customer)
        list_columns = ["id", "name", "contact_phone"]
        show_columns = add_columns = edit_columns = list_columns

    probe = ProbeApi()
    assert "contact_phone" not in probe.order_columns and "name" in probe.order_columns
    assert "contact_phone" not in probe.search_columns and "name" in probe.search_columns
    assert "contact_phone" not in probe._filters.get_search_filters()


def test_api_empty_order_columns_refuse_any_order(app: Any) -> None:
    """FAB lets any order column through when ``order_columns`` is empty."""
    from flask_appbuilder.exceptions import InvalidOrderByColumnFABException

    from views.base import ScopedApi

    class ProbeApi(ScopedApi):
        datamodel = SQLAInterface(Customer)
        list_columns = ["id", "name"]
        show_columns = add_columns = edit_columns = list_columns

    probe = ProbeApi()
    probe.order_columns = []
    with pytest.raises(InvalidOrderByColumnFABException):
        probe._handle_order_args({"order_column": "contact_phone", "order_direction": "asc"})


def test_every_answer_of_the_api_is_masked(app: Any, client: Any, api: Any, two_customers: Any) -> None:
    """Masking lives in the schemas: list, get, and the column selections FAB builds per request."""
    headers = api("rep_a")
    urls = ["/api/v1/customer/", f"/api/v1/customer/{two_customers[0]}",
            "/api/v1/customer/?q=(columns:!(name,contact_phone))",
            f"/api/v1/customer/{two_customers[0]}?q=(columns:!(contact_phone))"]
    for url in urls:
        body = client.get(url, headers=headers).get_data(as_text=True)
        assert ALPHA[1] not in body and "138****0001" in body, url


def test_api_schemas_mask_on_dump_and_load_what_is_sent(app: Any) -> None:
    with app.test_request_context():
        customer_api = next(v for v in appbuilder.baseviews if type(v).__name__ == "CustomerApi")
        for schema in (customer_api.list_model_schema, customer_api.show_model_schema,
                       customer_api.add_model_schema, customer_api.edit_model_schema):
            assert schema.dump({"contact_phone": ALPHA[1]})["contact_phone"] == "138****0001"
        loaded = customer_api.add_model_schema.load({"name": "x", "contact_phone": ALPHA[1]},
                                                    session=db.session, partial=True)
        phone = loaded["contact_phone"] if isinstance(loaded, dict) else loaded.contact_phone
        assert phone == ALPHA[1]
        db.session.rollback()


def test_scheduled_saved_list_cannot_be_sorted_by_a_masked_phone(app: Any, ctx: Any, two_customers: Any,
                                                                 tmp_path: Path) -> None:
    from app.services import message_text, schedules

    target = tmp_path / "probe.csv"
    schedule = TransferSchedule(name="probe", kind="list_export", model="customer", cron="*/15 * * * *",
                                path=str(target), run_as_id=user_id("rep_a"),
                                filters=f"/customerview/list/?{SORT_BY_PHONE}")
    db.session.add(schedule)
    db.session.commit()
    done = schedules.run(schedule)
    assert done.last_status != "done"
    assert message_text.text(done.last_message) == "This list cannot be sorted by contact_phone."
    assert not target.exists()
    assert db.session.scalars(select(TransferJob).where(TransferJob.schedule_id == schedule.id)).all() == []


def test_a_background_export_job_refuses_a_masked_order_too(app: Any, ctx: Any, two_customers: Any,
                                                            tmp_path: Path) -> None:
    """The job re-checks the list arguments it was queued with (they may come from anywhere)."""
    from views.exports import run_export

    job = TransferJob(kind="export", model="Customer", user_id=user_id("rep_a"), filename="x.csv", status="queued",
                      options={"view": "CustomerView", "path": "/customerview/list/", "query": SORT_BY_PHONE,
                               "unmasked": [], "fmt": "csv"})
    db.session.add(job)
    db.session.commit()
    done = run_export(job.id, target=str(tmp_path / "x.csv"))
    assert done.status == "failed" and done.error == "This list cannot be sorted by contact_phone."
    assert not (tmp_path / "x.csv").exists()


def test_saved_list_problems_are_told_before_saving(app: Any, ctx: Any) -> None:
    from views.exports import saved_list_problems

    assert saved_list_problems("customer", "/customerview/list/?_flt_2_name=Alpha", "code, name") == []
    assert saved_list_problems("customer", "", None) == []
    assert saved_list_problems("customer", f"/customerview/list/?{SORT_BY_PHONE}") == [
        "This list cannot be sorted by contact_phone."]
    assert saved_list_problems("customer", "/customerview/list/?_flt_0_contact_phone=138") == [
        "This list cannot be filtered by contact_phone."]
    assert saved_list_problems("customer", "/auditlogview/list/?_flt_0_ip=1") == [
        "Give the address of the list /customerview/list/ (with its filters).",
        "This list cannot be filtered by ip."]
    assert saved_list_problems("customer", None, "code, owner.password") == ["Unknown columns: owner.password."]


def test_saved_list_with_unknown_columns_is_refused(app: Any, ctx: Any, two_customers: Any, tmp_path: Path) -> None:
    from app.services import schedules

    schedule = TransferSchedule(name="cols", kind="list_export", model="customer", cron="*/15 * * * *",
                                path=str(tmp_path / "cols.csv"), run_as_id=user_id("rep_a"),
                                columns="code, owner.password, name")
    db.session.add(schedule)
    db.session.commit()
    done = schedules.run(schedule)
    assert done.last_status != "done" and "Unknown columns: owner.password" in done.last_message


def test_export_keeps_allowed_order_and_filters(client: Any, auth: Any, two_customers: Any) -> None:
    auth.login("rep_a")
    body = client.get("/customerview/export/csv?_oc_CustomerView=name&_od_CustomerView=asc"
                      "&_flt_2_name=Probe").data.decode("utf-8-sig")
    names = [row[1] for row in csv.reader(io.StringIO(body))][1:]
    assert names == [ALPHA[0], BRAVO[0]]


# --- list arguments that were 500s ----------------------------------------------------

@pytest.mark.parametrize("query,message", [
    ("_oc_CustomerView=created_by&_od_CustomerView=asc", "cannot be sorted by created_by"),
    ("_oc_CustomerView=no_such_column&_od_CustomerView=desc", "cannot be sorted by no_such_column"),
    ("_oc_CustomerView=owner&_od_CustomerView=asc", "cannot be sorted by owner"),
    ("_flt_9_owner=1", "cannot be filtered by owner"),
    ("_flt_9_created_on=2024-01-01", "cannot be filtered by created_on"),
    ("_flt_0_no_such_column=x", "cannot be filtered by no_such_column"),
    ("page_CustomerView=abc", "Invalid page or page size: abc"),
    ("page_CustomerView=-1", "Invalid page or page size: -1"),
    ("psize_CustomerView=0", "Invalid page or page size: 0"),
    ("psize_CustomerView=100000000", "Invalid page or page size: 100000000"),
])
def test_bad_list_arguments_get_a_message_not_a_500(client: Any, auth: Any, two_customers: Any,
                                                    query: str, message: str) -> None:
    auth.login("rep_a")
    response = client.get(f"/customerview/list/?{query}")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert message in page and BRAVO[0] in page


@pytest.mark.parametrize("url", [
    "/followupview/add?_flt_9_customer=1",
    "/followupview/add?_flt_0_content=x",
    "/customerview/show/{pk}?page_FollowUpView=x",
    "/customerview/show/{pk}?_oc_FollowUpView=created_by&_od_FollowUpView=asc",
    "/customerview/edit/{pk}?psize_FollowUpView=-5",
    "/customertypeview/list/?_oc_CustomerTypeView=nope&_od_CustomerTypeView=asc",
])
def test_bad_arguments_on_other_pages_are_refused(client: Any, auth: Any, two_customers: Any, url: str) -> None:
    auth.login("rep_a")
    response = client.get(url.format(pk=two_customers[0]))
    assert response.status_code == 302
    assert client.get(response.headers["Location"]).status_code == 200


def test_bad_arguments_on_a_post_are_a_400(client: Any, auth: Any, two_customers: Any) -> None:
    auth.login("rep_a")
    response = client.post(f"/customerview/edit/{two_customers[0]}?page_FollowUpView=x", data={})
    assert response.status_code == 400


def test_allowed_arguments_still_work(client: Any, auth: Any, two_customers: Any, make_follow_up: Any) -> None:
    make_follow_up(two_customers[0], "rep_a")
    auth.login("rep_a")
    page = client.get("/customerview/list/?_oc_CustomerView=name&_od_CustomerView=asc&psize_CustomerView=50"
                      "&page_CustomerView=0")
    assert page.status_code == 200 and _order(page.get_data(as_text=True)) == [ALPHA[0], BRAVO[0]]
    assert client.get("/customerview/list/?_flt_2_name=Bravo").status_code == 200
    assert client.get(f"/followupview/add?_flt_0_customer={two_customers[0]}").status_code == 200
    assert client.get(f"/customerview/show/{two_customers[0]}?_oc_FollowUpView=followed_at"
                      "&_od_FollowUpView=asc").status_code == 200


# --- bulk actions ---------------------------------------------------------------------

@pytest.mark.parametrize("view", ["customerview", "followupview", "customertypeview"])
def test_unknown_bulk_action_is_a_message(client: Any, auth: Any, two_customers: Any, view: str) -> None:
    auth.login("admin")
    response = client.post(f"/{view}/action_post", data={"action": "nonexistent", "rowid": [two_customers[0]]})
    assert response.status_code == 302
    assert "Unknown action: nonexistent" in client.get(response.headers["Location"]).get_data(as_text=True)
    response = client.post(f"/{view}/action/nonexistent/{two_customers[0]}")
    assert response.status_code == 302


def test_bulk_action_on_no_records_is_a_message(app: Any, client: Any, auth: Any, two_customers: Any) -> None:
    auth.login("rep_a")
    auth.grant_step_up("rep_a")
    response = client.post("/customerview/action_post", data={"action": "archive"})
    assert response.status_code == 302
    assert "Select at least one record first." in client.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Customer.archived_at).where(Customer.id == two_customers[0])) is None


def test_bulk_action_with_a_malformed_pk_is_a_404(client: Any, auth: Any, two_customers: Any) -> None:
    auth.login("rep_a")
    auth.grant_step_up("rep_a")
    response = client.post("/customerview/action_post", data={"action": "archive", "rowid": ["abc"]})
    assert response.status_code == 404


# --- related-field choices, derived from the models ------------------------------------

SECRET = "Zeta Hidden Holdings"


def test_status_history_search_form_lists_only_customers_in_scope(client: Any, auth: Any,
                                                                  make_customer: Any) -> None:
    make_customer("rep_c", name=SECRET)
    make_customer("rep_a", name="Mine Ltd")
    auth.login("rep_a")
    page = client.get("/statushistoryview/list/").get_data(as_text=True)
    assert SECRET not in page
    found = client.get("/statushistoryview/related/search/customer", query_string={"q": ""}).get_data(as_text=True)
    assert SECRET not in found and "Mine Ltd" in found


def test_api_accepts_only_the_choices_it_offers(app: Any, client: Any, api: Any, make_customer: Any) -> None:
    """Add/edit validation matches the ``_info`` choices: scoped, active for new records,
    and an id that does not exist is refused (it used to load as a new object)."""
    hidden = make_customer("rep_c", name=SECRET)
    mine = make_customer("rep_a", name="Mine Ltd")
    with app.app_context():
        inactive = CustomerLevel(code="Z", label_en="Retired level", label_zh="停用", sort_order=99, active=False)
        db.session.add(inactive)
        db.session.commit()
        inactive_id = inactive.id
    headers = api("rep_a")
    attempts = [("/api/v1/follow_up/", {"customer": hidden, "content": "x"}, "customer"),
                ("/api/v1/follow_up/", {"customer": 987654, "content": "x"}, "customer"),
                ("/api/v1/customer/", {"name": "New", "contact_phone": "13700000000", "level": inactive_id}, "level"),
                ("/api/v1/customer/", {"name": "New", "contact_phone": "13700000000", "type": 987654}, "type")]
    try:
        for url, payload, field in attempts:
            response = client.post(url, json=payload, headers=headers)
            assert response.status_code == 422, (payload, response.get_json())
            assert field in response.get_json()["message"], response.get_json()
        with app.app_context():
            assert db.session.scalar(select(CustomerType).where(CustomerType.id == 987654)) is None
            assert db.session.scalars(select(FollowUp)).all() == []
        # edit keeps a stored inactive entry, but cannot pick it anew
        with app.app_context():
            db.session.get(Customer, mine).level_id = inactive_id
            db.session.commit()
        ok = client.put(f"/api/v1/customer/{mine}", json={"level": inactive_id, "version": 2}, headers=headers)
        assert ok.status_code == 200, ok.get_json()
    finally:
        with app.app_context():
            db.session.execute(Customer.__table__.update().values(level_id=None))
            db.session.delete(db.session.get(CustomerLevel, inactive_id))
            db.session.commit()


def test_derived_related_filters_keep_the_views_own(app: Any) -> None:
    from app.security.data_scope import ActiveEntryFilter, DataScopeFilter
    from views.base import related_field_filters

    declared = {"customer": [["id", DataScopeFilter, lambda: None]]}
    derived = related_field_filters(SQLAInterface(FollowUp), ["customer", "method", "owner", "content"],
                                    declared, new_records=True)
    assert [f[1] for f in derived["customer"]] == [DataScopeFilter]
    assert [f[1] for f in derived["method"]] == [ActiveEntryFilter]
    assert [f[1] for f in derived["owner"]] == [DataScopeFilter, ActiveEntryFilter]
    assert "content" not in derived and declared == {"customer": declared["customer"]}
    edit = related_field_filters(SQLAInterface(FollowUp), ["customer", "method"], None, new_records=False)
    assert list(edit) == ["customer"]


def test_masked_columns_are_declared_once_on_the_model() -> None:
    assert masked_columns(Customer) == frozenset({"contact_phone"})
    assert masked_columns(FollowUp) == frozenset()
    assert is_masked_path(FollowUp, "customer.contact_phone") and not is_masked_path(FollowUp, "customer.code")
    assert not is_masked_path(FollowUp, "no_such.contact_phone")


def test_add_form_prefill_with_a_hidden_record_shows_and_saves_nothing(app: Any, client: Any, auth: Any,
                                                                       make_customer: Any) -> None:
    """FAB's "add from the parent record" link pre-fills a related field from the URL."""
    hidden = make_customer("rep_c", name=SECRET)
    auth.login("rep_a")
    url = f"/followupview/add?_flt_0_customer={hidden}"
    page = client.get(url)
    assert page.status_code == 200 and SECRET not in page.get_data(as_text=True)
    response = client.post(url, data={"followed_at": "2026-05-01 09:30:00", "content": "sneaky"})
    assert response.status_code == 200 and SECRET not in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(FollowUp)).all() == []


@pytest.mark.parametrize("url", ["/customerview/show/abc", "/customerview/edit/1.5", "/followupview/show/x",
                                 "/customerview/action/archive/abc"])
def test_a_malformed_pk_is_a_404(client: Any, auth: Any, url: str) -> None:
    """An integer key given as text would be a database error on PostgreSQL."""
    auth.login("rep_a")
    response = client.post(url) if "/action/" in url else client.get(url)
    assert response.status_code == 404


def test_owners_offered_are_active_users_in_scope(app: Any, client: Any, api: Any) -> None:
    """Manager (East): rep_a and rep_b are in scope; rep_b deactivated, rep_a expired."""
    from datetime import date, timedelta

    from app.models import CrmUser

    with app.app_context():
        db.session.get(CrmUser, user_id("rep_b")).active = False
        db.session.get(CrmUser, user_id("rep_a")).expires_on = date.today() - timedelta(days=1)
        db.session.commit()
    headers = api("manager")
    info = client.get("/api/v1/customer/_info?q=(keys:!(add_columns,edit_columns))", headers=headers).get_json()

    def owners(key: str) -> set[str]:
        field = next(f for f in info[key] if f["name"] == "owner")
        return {value["value"] for value in field["values"]}

    assert owners("add_columns") == {"Manager Test"}
    assert owners("edit_columns") == {"Manager Test", "Rep_A Test", "Rep_B Test"}  # a stored owner stays choosable
