"""Related fields query on demand (issue 12): no page, form, search filter or API answer
materialises every record of a related model. A related field carries only its chosen
record(s); the choices come one page at a time from the view's ``related`` route (the
AJAX select) or the API's ``/related/<column>``, in the viewer's data scope, with phones
masked.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import g
from flask_appbuilder import ModelRestApi
from flask_appbuilder.baseviews import BaseCRUDView
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Contact, CrmUser, Customer, FollowUp, Lead, Opportunity, Product
from app.services.related import PER_PAGE
from tests.conftest import api_token, user_id

#: Models that grow with the business: a field of one never lists them all.
GROWING = (Customer, Contact, Product, CrmUser, User, Lead, Opportunity, FollowUp)
SECRET = "Hidden Rival Trading"
FULL_PHONE = "13912348765"


class Selects(HTMLParser):
    """Every ``<select>`` of a page (also those inside FAB's search-filter script): name ->
    list of option counts, and the AJAX ones' lookup URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.options: dict[str, list[int]] = {}
        self.urls: set[str] = set()
        self._name: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "select":
            self._name = a.get("name") or ""
            self.options.setdefault(self._name, []).append(0)
            if a.get("data-related-url"):
                self.urls.add(html.unescape(a["data-related-url"]))
        elif tag == "option" and self._name is not None:
            self.options[self._name][-1] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._name = None


def selects_of(page: str) -> Selects:
    """Parse a page, with the search widget's fields (JSON-escaped HTML in a script) unescaped."""
    parser = Selects()
    page = re.sub(r"</?script[^>]*>", "", page)  # the search fields are HTML inside a script
    unescaped = page.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&").replace('\\"', '"')
    parser.feed(unescaped)
    return parser


@pytest.fixture
def crowd(app: Any, make_customer: Any) -> dict[str, Any]:
    """PAGE + 5 customers (each with a contact and a follow-up), products, leads and users,
    all in the admin's scope, so a field that lists them all shows more than a page."""
    many = PER_PAGE + 5
    customers = [make_customer("rep_a", name=f"Crowd Customer {n:02d}", contact_name=f"Crowd Contact {n:02d}")
                 for n in range(many)]
    with app.app_context():
        for n, pk in enumerate(customers):
            db.session.add(Contact(customer_id=pk, name=f"Crowd Person {n:02d}", phone=FULL_PHONE))
            db.session.add(FollowUp(customer_id=pk, owner_id=user_id("rep_a"), content=f"Crowd call {n:02d}"))
            db.session.add(Product(name=f"Crowd Product {n:02d}"))
            db.session.add(Lead(company=f"Crowd Lead {n:02d}", owner_id=user_id("rep_a")))
            db.session.add(CrmUser(username=f"crowd{n:02d}", first_name="Crowd", last_name=f"User {n:02d}",
                                   email=f"crowd{n:02d}@example.com", active=True, password="!"))
        db.session.commit()
        db.session.remove()
    return {"customers": customers}


def _growing_relation(view: Any, name: str) -> bool:
    datamodel = view.datamodel
    return datamodel.is_relation(name) and datamodel.get_related_model(name) in GROWING


def _first_pk(app: Any, view: Any) -> Any:
    with app.test_request_context():
        g.user = db.session.get(CrmUser, user_id("admin"))
        _, items = view.datamodel.query(view._base_filters, page_size=1)
        pk = view.datamodel.get_pk_value(items[0]) if items else None
        db.session.remove()
        return pk


def _pages(app: Any, view: Any) -> list[str]:
    """The list (search widget), add and edit pages ``view`` serves."""
    from views.base import served_routes

    routes, base = served_routes(view), view.route_base
    pages = [f"{base}/list/"] if "list" in routes else []
    pages += [f"{base}/add"] if "add" in routes else []
    pk = _first_pk(app, view) if "edit" in routes else None
    pages += [f"{base}/edit/{pk}"] if pk is not None else []
    return pages


def test_no_form_filter_or_api_info_loads_more_than_a_page(app: Any, client: Any, auth: Any, crowd: Any) -> None:
    """Walk every registered view and API as the admin (who sees everything): every select
    of a growing related model holds at most a page of options, every lookup it names
    answers at most a page, and every ``_info`` gives at most a page of choices."""
    auth.login("admin")
    auth.grant_step_up("admin")
    problems, lookups, walked = [], set(), 0
    for view in [v for v in appbuilder.baseviews if isinstance(v, BaseCRUDView)]:
        for url in _pages(app, view):
            response = client.get(url)
            assert response.status_code == 200, url
            found = selects_of(response.get_data(as_text=True))
            walked += 1
            for name, counts in found.options.items():
                if _growing_relation(view, name) and max(counts) > PER_PAGE:
                    problems.append(f"{url}: {name} lists {max(counts)} records")
            lookups |= found.urls
    for url in sorted(lookups):
        answer = client.get(url)
        if answer.status_code != 200 or len(answer.get_json()["results"]) > PER_PAGE:
            problems.append(f"{url}: {answer.status_code}")
    headers = api_token(client, "admin")
    for api in [v for v in appbuilder.baseviews if isinstance(v, ModelRestApi)]:
        info = client.get(f"{api.route_base}/_info?q=(keys:!(add_columns,edit_columns))", headers=headers)
        assert info.status_code == 200, api.route_base
        for key in ("add_columns", "edit_columns"):
            for field in info.get_json()[key]:
                if _growing_relation(api, field["name"]) and len(field.get("values", [])) > PER_PAGE:
                    problems.append(f"{api.route_base}/_info {key} {field['name']}: {len(field['values'])}")
    assert problems == [], "\n".join(problems)
    assert walked > 30 and "/followupview/related/add/customer" in lookups
    assert "/customerview/related/search/owner" in lookups


def test_follow_up_list_and_add_form_stay_page_sized(app: Any, client: Any, auth: Any, crowd: Any) -> None:
    """The follow-up list's search filters and the add form offer no customer or user at all."""
    auth.login("admin")
    for url in ("/followupview/list/", "/followupview/add"):
        found = selects_of(client.get(url).get_data(as_text=True))
        assert found.options["customer"] == [1] and found.options["owner"] == [1], url  # the empty choice
        assert {f"/followupview/related/{'search' if 'list' in url else 'add'}/{column}"
                for column in ("customer", "owner")} <= found.urls


def test_lookup_pages_through_the_customers_in_scope(client: Any, auth: Any, crowd: Any) -> None:
    auth.login("rep_a")
    first = client.get("/followupview/related/add/customer?q=Crowd").get_json()
    second = client.get("/followupview/related/add/customer?q=Crowd&page=1").get_json()
    assert len(first["results"]) == PER_PAGE and first["pagination"]["more"] is True
    assert len(second["results"]) == 5 and second["pagination"]["more"] is False
    ids = [r["id"] for r in first["results"] + second["results"]]
    assert sorted(ids) == sorted(str(pk) for pk in crowd["customers"])
    assert first["results"][0]["text"].startswith("C") and "Crowd Customer 24" in first["results"][0]["text"]


def test_a_rep_cannot_find_another_reps_customer(app: Any, client: Any, auth: Any, api: Any,
                                                 make_customer: Any) -> None:
    """Not by name, not by its exact code, not by its id, neither on screens nor the API."""
    hidden = make_customer("rep_b", name=SECRET, contact_phone=FULL_PHONE)
    mine = make_customer("rep_a", name="Mine Trading")
    with app.app_context():
        code = db.session.get(Customer, hidden).code
    auth.login("rep_a")
    for typed in ("Rival", code, str(hidden), FULL_PHONE, ""):
        for url in ("/followupview/related/add/customer", "/followupview/related/search/customer",
                    "/opportunityview/related/add/customer", "/contactview/related/add/customer"):
            answer = client.get(url, query_string={"q": typed})
            assert answer.status_code == 200, url
            assert SECRET not in answer.get_data(as_text=True), (url, typed)
            assert str(hidden) not in [r["id"] for r in answer.get_json()["results"]], (url, typed)
    everything = client.get("/followupview/related/add/customer").get_json()
    assert [r["id"] for r in everything["results"]] == [str(mine)]
    headers = api("rep_a")
    for typed in ("Rival", code):
        answer = client.get(f"/api/v1/follow_up/related/customer?q=(filter:'{typed}')", headers=headers)
        assert answer.status_code == 200 and answer.get_json()["result"] == []
    # the manager of both reps finds it
    manager = api_token(client, "manager")
    answer = client.get("/api/v1/follow_up/related/customer?q=(filter:Rival)", headers=manager).get_json()
    assert [r["value"] for r in answer["result"]] == [hidden]


def test_a_posted_customer_out_of_scope_is_refused_and_not_shown(app: Any, client: Any, auth: Any,
                                                                 make_customer: Any) -> None:
    hidden = make_customer("rep_b", name=SECRET)
    auth.login("rep_a")
    response = client.post("/followupview/add", data={"customer": str(hidden), "followed_at": "2026-05-01 09:30:00",
                                                      "content": "sneaky"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Not a valid choice" in page and SECRET not in page
    assert selects_of(page).options["customer"] == [1]  # the refused id is not offered back
    with app.app_context():
        assert db.session.scalars(select(FollowUp)).all() == []


def test_owners_offered_are_the_users_in_scope(client: Any, auth: Any) -> None:
    auth.login("rep_a")
    names = {r["text"] for r in client.get("/customerview/related/add/owner").get_json()["results"]}
    assert names == {"Rep_A Test (rep_a)"}
    auth.logout()
    auth.login("manager")
    names = {r["text"] for r in client.get("/customerview/related/add/owner?q=rep").get_json()["results"]}
    assert names == {"Rep_A Test (rep_a)", "Rep_B Test (rep_b)"}


def test_labels_mask_phones(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Masked Phone Co", contact_name="Li Lei", contact_phone=FULL_PHONE)
    with app.app_context():
        db.session.add(Contact(customer_id=pk, name="Han Mei", phone="13700001234"))
        db.session.commit()
    auth.login("rep_a")
    customer = client.get("/followupview/related/add/customer?q=Masked").get_json()["results"][0]["text"]
    assert customer.endswith("Masked Phone Co (Li Lei, 139****8765)")
    contact = client.get("/leadview/related/edit/contact?q=Han").get_data(as_text=True)
    found = client.get("/api/v1/opportunity/related/customer?q=(filter:Masked)",
                       headers=api_token(client, "rep_a")).get_data(as_text=True)
    for text in (customer, contact, found):
        assert FULL_PHONE not in text and "13700001234" not in text


def test_edit_page_shows_the_current_customer_only(app: Any, client: Any, auth: Any, make_customer: Any,
                                                   make_follow_up: Any) -> None:
    chosen = make_customer("rep_a", name="Chosen Customer Co")
    make_customer("rep_a", name="Other Customer Co")
    pk = make_follow_up(chosen, "rep_a")
    auth.login("rep_a")
    page = client.get(f"/followupview/edit/{pk}").get_data(as_text=True)
    options = re.findall(r'<select[^>]*name="customer"[^>]*>(.*?)</select>', page, re.S)[0]
    assert re.search(rf'<option value="{chosen}" selected>C\d+ Chosen Customer Co \(', options)
    assert "Other Customer Co" not in page


def test_the_posted_customer_survives_a_validation_error(app: Any, client: Any, auth: Any,
                                                         make_customer: Any) -> None:
    chosen = make_customer("rep_a", name="Kept Customer Co")
    auth.login("rep_a")
    response = client.post("/followupview/add", data={"customer": str(chosen), "followed_at": "not a time",
                                                      "content": "Called"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Not a valid datetime value" in page
    assert re.search(rf'<option value="{chosen}" selected>C\d+ Kept Customer Co', page)
    with app.app_context():
        assert db.session.scalars(select(FollowUp)).all() == []


def test_a_posted_owner_survives_a_validation_error(app: Any, client: Any, auth: Any) -> None:
    with app.app_context():
        rep_b = user_id("rep_b")
    auth.login("manager")
    response = client.post("/customerview/add", data={"name": "", "contact_phone": "13712345678",
                                                      "owner": str(rep_b)})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "This field is required." in page
    assert f'<option value="{rep_b}" selected>Rep_B Test (rep_b)</option>' in page


def test_search_filter_keeps_the_filtered_customer(app: Any, client: Any, auth: Any, make_customer: Any,
                                                   make_follow_up: Any) -> None:
    """FAB's "Relation equal" filter: the list is filtered, and the filter's select carries
    the chosen customer (the filter script selects it) and nothing else."""
    wanted = make_customer("rep_a", name="Filtered Customer Co")
    other = make_customer("rep_a", name="Unfiltered Customer Co")
    make_follow_up(wanted, "rep_a", content="Wanted call")
    make_follow_up(other, "rep_a", content="Other call")
    auth.login("rep_a")
    page = client.get(f"/followupview/list/?_flt_0_customer={wanted}").get_data(as_text=True)
    assert "Wanted call" in page and "Other call" not in page
    fields = selects_of(page)
    assert fields.options["customer"] == [2]  # the empty choice and the filtered customer
    assert "Filtered Customer Co" in page and "Unfiltered Customer Co" not in page


def test_lookups_need_the_forms_permission(client: Any, auth: Any, make_customer: Any) -> None:
    make_customer("rep_a")
    assert client.get("/followupview/related/add/customer").status_code in (401, 302)
    auth.login("viewer")
    assert client.get("/followupview/related/add/customer").status_code == 403
    assert client.get("/followupview/related/search/customer").status_code == 200
    auth.logout()
    auth.login("rep_a")
    assert client.get("/followupview/related/add/content").status_code == 404
    assert client.get("/followupview/related/add/method").status_code == 404  # a dictionary: a plain select
    assert client.get("/followupview/related/nonsense/customer").status_code == 403
    assert client.get("/followupview/related/add/customer?page=x").status_code == 400
    assert client.get("/followupview/related/add/customer?page=99999999").status_code == 400
    long = client.get("/followupview/related/add/customer", query_string={"q": "x" * 101}).get_json()
    assert long["results"] == [] and "100" in long["message"]


def test_api_related_pages_and_refuses_bad_arguments(client: Any, crowd: Any) -> None:
    headers = api_token(client, "rep_a")
    first = client.get("/api/v1/follow_up/related/customer?q=(filter:Crowd,page:0,page_size:10)", headers=headers)
    assert first.status_code == 200
    body = first.get_json()
    assert len(body["result"]) == 10 and body["more"] is True
    last = client.get("/api/v1/follow_up/related/customer?q=(filter:Crowd,page:2,page_size:10)",
                      headers=headers).get_json()
    assert len(last["result"]) == 5 and last["more"] is False
    assert client.get("/api/v1/follow_up/related/content", headers=headers).status_code == 404
    assert client.get("/api/v1/follow_up/related/customer?q=(page_size:1000)", headers=headers).status_code == 400
    assert client.get("/api/v1/follow_up/related/customer?q=(page:-1)", headers=headers).status_code == 400


def test_chinese_names_are_found_and_the_form_reads_in_chinese(app: Any, client: Any, auth: Any,
                                                               make_customer: Any) -> None:
    pk = make_customer("rep_a", name="上海华东贸易有限公司", contact_name="王小明")
    auth.login("rep_a")
    client.get("/lang/zh")
    found = client.get("/followupview/related/add/customer", query_string={"q": "华东贸易"}).get_json()
    assert [r["id"] for r in found["results"]] == [str(pk)]
    assert "上海华东贸易有限公司 (王小明, 138****5678)" in found["results"][0]["text"]
    page = client.get("/followupview/add").get_data(as_text=True)
    assert "客户" in page and "上海华东贸易有限公司" not in page
    edit_page = client.post("/followupview/add", data={"customer": str(pk), "followed_at": "x",
                                                       "content": "电话"}).get_data(as_text=True)
    assert "上海华东贸易有限公司" in edit_page  # the chosen customer is kept, by its Chinese name


def test_no_label_of_a_record_out_of_scope_reaches_the_page(app: Any, client: Any, auth: Any,
                                                            make_customer: Any) -> None:
    """Whatever puts an id on a form (FAB's "add from the parent record" link, a posted
    owner the use case refuses, a list filter) the page never names a record out of scope."""
    hidden = make_customer("rep_c", name=SECRET)
    with app.app_context():
        rep_c = user_id("rep_c")
    auth.login("rep_a")
    pages = [client.get(f"/followupview/add?_flt_0_customer={hidden}"),
             client.post(f"/followupview/add?_flt_0_customer={hidden}",
                         data={"followed_at": "2026-05-01 09:30:00", "content": "sneaky"}),
             client.post("/customerview/add", data={"name": "", "contact_phone": "13712345678", "owner": str(rep_c)}),
             client.get(f"/followupview/list/?_flt_0_customer={hidden}&_flt_0_owner={rep_c}")]
    for response in pages:
        text = response.get_data(as_text=True)
        assert response.status_code == 200
        assert SECRET not in text and "Rep_C Test" not in text and "rep_c@example.com" not in text
    with app.app_context():
        assert db.session.scalars(select(FollowUp)).all() == []


@pytest.mark.parametrize("actor,owner,visible", [("rep_a", "rep_a", True), ("rep_a", "rep_c", False),
                                                 ("manager", "rep_b", True), ("manager", "rep_c", False),
                                                 ("admin", "rep_c", True)])
def test_lookups_offer_exactly_the_customers_in_scope(client: Any, auth: Any, make_customer: Any, actor: str,
                                                      owner: str, visible: bool) -> None:
    """The form's and the search filters' lookups (follow-ups, status history) answer what
    the dropdowns used to list: the customers in the viewer's scope."""
    make_customer(owner, name=f"{SECRET} of {owner}")
    auth.login(actor)
    for url in ("/followupview/related/add/customer", "/followupview/related/search/customer",
                "/statushistoryview/related/search/customer"):
        answer = client.get(url, query_string={"q": SECRET})
        assert answer.status_code == 200, url
        assert (SECRET in answer.get_data(as_text=True)) is visible, url
