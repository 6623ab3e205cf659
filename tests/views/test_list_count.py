"""List totals are counted up to a cap (issue 12): a list past the cap reads "N+" and its pager
still reaches every counted page; under the cap, in scope and filtered, the total is exact;
exports keep the exact total."""

from __future__ import annotations

import re
from typing import Any

import pytest

from views import list_count


@pytest.fixture
def cap_of_three(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(list_count, "COUNT_CAP", 3)


def _total(page: str) -> str:
    return re.search(r"Record Count:</strong>\s*(?:<span[^>]*>)?([^<\s]+)", page).group(1)


def test_a_list_past_the_cap_reads_plus_and_pages_to_the_cap(client: Any, auth: Any, make_customer: Any,
                                                             cap_of_three: None) -> None:
    for n in range(5):
        make_customer("rep_a", name=f"Cap {n}")
    auth.login("rep_a")
    page = client.get("/customerview/list/?psize_CustomerView=2").get_data(as_text=True)
    assert _total(page) == "3+"
    assert "page_CustomerView=1" in page and "page_CustomerView=2" not in page  # 4 counted rows: two pages
    second = client.get("/customerview/list/?psize_CustomerView=2&page_CustomerView=2").get_data(as_text=True)
    assert "Cap " in second  # a page past the counted ones still lists its records


def test_under_the_cap_the_total_is_exact_in_scope_and_filtered(client: Any, auth: Any, make_customer: Any,
                                                                cap_of_three: None) -> None:
    make_customer("rep_a", name="Alpha")
    make_customer("rep_a", name="Beta")
    for n in range(4):
        make_customer("rep_c", name=f"South {n}")
    auth.login("rep_a")
    assert _total(client.get("/customerview/list/").get_data(as_text=True)) == "2"
    assert _total(client.get("/customerview/list/?_flt_2_name=Alp").get_data(as_text=True)) == "1"
    client.get("/lang/zh")
    assert "3+" not in client.get("/customerview/list/").get_data(as_text=True)


def test_exports_count_every_row(app: Any, client: Any, auth: Any, make_customer: Any, cap_of_three: None) -> None:
    for n in range(5):
        make_customer("rep_a", name=f"Export {n}")
    auth.login("rep_a")
    download = client.get("/customerview/export/csv")
    assert download.get_data().decode("utf-8-sig").count("Export ") == 5


def test_follow_up_totals_count_the_customers_in_scope(client: Any, auth: Any, make_customer: Any,
                                                       make_follow_up: Any, cap_of_three: None) -> None:
    mine, other = make_customer("rep_a"), make_customer("rep_a", name="Second")
    south = make_customer("rep_c")
    make_follow_up(mine, "rep_a")
    make_follow_up(other, "rep_c")  # written by someone else: still rep_a's customer's
    for _ in range(4):
        make_follow_up(south, "rep_a")  # written by rep_a on a customer out of scope
    auth.login("rep_a")
    assert _total(client.get("/followupview/list/").get_data(as_text=True)) == "2"
    auth.logout()
    auth.login("manager_s")
    assert _total(client.get("/followupview/list/").get_data(as_text=True)) == "3+"
    one = client.get(f"/followupview/list/?_flt_0_customer={other}").get_data(as_text=True)
    assert "No records found" in one  # a customer out of scope adds nothing


def test_count_all_gives_the_exact_total_of_the_same_list(client: Any, auth: Any, make_customer: Any,
                                                          cap_of_three: None) -> None:
    for n in range(5):
        make_customer("rep_a", name=f"Many {n}")
    make_customer("rep_a", name="Other")
    for n in range(7):
        make_customer("rep_c", name=f"Many south {n}")  # out of rep_a's scope
    auth.login("rep_a")
    page = client.get("/customerview/list/?_flt_2_name=Many").get_data(as_text=True)
    link = re.search(r'class="crm-count-all" data-url="([^"]+)"', page)
    assert _total(page) == "3+" and link and "count all" in page
    url = link.group(1).replace("&amp;", "&")
    assert url.startswith("/customerview/count/?") and "_flt_2_name=Many" in url
    assert client.get(url).get_json() == {"count": 5, "text": "5"}
    assert client.get("/customerview/count/").get_json()["count"] == 6
    client.get("/lang/zh")
    assert "统计全部" in client.get("/customerview/list/").get_data(as_text=True)


def test_count_all_needs_the_list_permission(client: Any, auth: Any, make_customer: Any) -> None:
    make_customer("rep_a")
    assert client.get("/customerview/count/").status_code in (302, 401)  # signed out
    auth.login("service")
    answer = client.get("/auditlogview/count/")
    assert answer.status_code in (302, 403) and b'"count"' not in answer.data


def test_one_customers_related_list_counts_exactly(client: Any, auth: Any, make_customer: Any,
                                                   make_follow_up: Any, cap_of_three: None) -> None:
    customer = make_customer("rep_a")
    for _ in range(5):
        make_follow_up(customer, "rep_a")
    auth.login("rep_a")
    assert _total(client.get(f"/followupview/list/?_flt_0_customer={customer}").get_data(as_text=True)) == "5"


def test_count_all_refuses_what_the_list_refuses(client: Any, auth: Any, make_customer: Any) -> None:
    make_customer("rep_a", contact_phone="13800000001")
    auth.login("rep_a")
    for args in ("_flt_0_contact_phone=999", "_flt_2_contact_phone=999"):  # a masked column: an oracle
        answer = client.get(f"/customerview/count/?{args}")
        # refused (sent back without it) or ignored: never the count of the filter (0)
        assert answer.status_code == 302 or answer.get_json()["count"] == 1, args


def test_pages_keep_their_order_and_scope_page_after_page(client: Any, auth: Any, make_customer: Any) -> None:
    """A page read keys first (SQLite: ``ListInterface._rows_by_keys``) lists the same records
    in the same order as the list's order says, and only the records in scope."""
    names = ["Delta", "Alpha", "Echo", "Bravo", "Charlie"]
    for name in names:
        make_customer("rep_a", name=name)
    make_customer("rep_b", name="Aardvark of rep_b")
    auth.login("rep_a")
    seen = []
    for page in range(3):
        html = client.get(f"/customerview/list/?_oc_CustomerView=name&_od_CustomerView=asc"
                          f"&psize_CustomerView=2&page_CustomerView={page}").get_data(as_text=True)
        seen += [name for name in re.findall(r">(Delta|Alpha|Echo|Bravo|Charlie|Aardvark of rep_b)<", html)]
    assert seen == sorted(names)


def test_a_list_without_an_order_keeps_the_order_it_had(client: Any, auth: Any) -> None:
    """A list with no order column (departments) is not read keys first: SQLite would pick
    any index for the keys and the rows would come in its order."""
    from app.extensions import db
    from app.models.org import Department

    with client.application.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("pages are read keys first on SQLite only")
    auth.login("admin")
    page = client.get("/departmentview/list/?psize_DepartmentView=100").get_data(as_text=True)
    with client.application.app_context():
        names = [department.name for department in db.session.query(Department).all()]
    shown = [name for name in re.findall(r"<td>\s*([^<>]+?)\s*</td>", page) if name in names]
    assert shown[:len(names)] == names
