"""The navbar's quick search (issue 11 §6): one GET box, the first matches of each record type
the user may read, always in their data scope (by name, code, phone in any format, credit code)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.extensions import db
from app.models import Customer, FollowUp
from app.services import search
from app.services.validation import credit_code_check_char

MINE = "91350100M000100Y4" + credit_code_check_char("91350100M000100Y4")
THEIRS = "91110000M000200Y4" + credit_code_check_char("91110000M000200Y4")


@pytest.fixture
def world(app: Any, make_customer: Any, make_follow_up: Any) -> dict[str, Any]:
    """rep_a's and rep_b's (same department as the manager) and rep_c's (South) records."""
    ids = {
        "mine": make_customer("rep_a", name="Crescent Electronics", contact_name="Wu Lei",
                              contact_phone="13812345670", credit_code=MINE),
        "theirs": make_customer("rep_b", name="Crescent Optoelectronics", contact_name="Zhang Min",
                                contact_phone="13912345671", credit_code=THEIRS),
        "south": make_customer("rep_c", name="Crescent Optics South", contact_phone="13712345672"),
    }
    ids["my_note"] = make_follow_up(ids["mine"], "rep_a", content="Quoted the lens assembly")
    ids["their_note"] = make_follow_up(ids["theirs"], "rep_b", content="Secret lens pricing")
    with app.app_context():
        codes = {key: db.session.get(Customer, pk).code for key, pk in ids.items() if "note" not in key}
        codes.update({key: db.session.get(FollowUp, ids[key]).code for key in ("my_note", "their_note")})
        db.session.remove()
    return {"ids": ids, "codes": codes}


def raw(client: Any, q: str) -> str:
    response = client.get("/search/", query_string={"q": q})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def results(client: Any, q: str) -> str:
    """The results page without the typed text echoed back (search boxes, "See all" links)."""
    page = re.sub(r'value="[^"]*"', "", raw(client, q))
    return re.sub(r'href="[^"]*[?&](q|_flt_\d+_\w+)=[^"]*"', "", page)


def hits(page: str) -> list[str]:
    """The text of every result line."""
    return re.findall(r'<a class="list-group-item" href="[^"]+">([^<]*)</a>', page)


def section(page: str, key: str) -> str:
    """One record type's panel of the results page ("" when the type is not shown)."""
    for panel in page.split('<div class="panel panel-default quick-search-section"')[1:]:
        if panel.startswith(f' id="quick-search-{key}"'):
            return panel.split("{% endblock")[0]
    return ""


def test_navbar_has_a_get_search_box_for_logged_in_users(client: Any, auth: Any) -> None:
    assert 'id="quick-search"' not in client.get("/login/").get_data(as_text=True)
    auth.login("rep_a")
    page = client.get("/").get_data(as_text=True)
    form = re.search(r'<form class="navbar-form" id="quick-search"[^>]*>', page).group(0)
    assert 'method="get"' in form and 'action="/search/"' in form
    assert 'name="q"' in page


def test_anonymous_is_sent_to_the_login_page(client: Any) -> None:
    response = client.get("/search/?q=crescent")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]


@pytest.mark.parametrize("q", ["", "   ", "\u200b\u3000 "])
def test_empty_or_blank_query_gets_a_friendly_message(client: Any, auth: Any, q: str) -> None:
    auth.login("rep_a")
    page = results(client, q)
    assert 'id="quick-search-problem"' in page and "Type a name, code, phone number" in page
    assert "quick-search-customer" not in page


def test_too_long_query_is_refused_with_a_message(client: Any, auth: Any) -> None:
    auth.login("rep_a")
    page = results(client, "x" * 101)
    assert "Type at most 100 characters." in page and "quick-search-customer" not in page
    assert 'id="quick-search-customer"' in results(client, "x" * 100)


def test_rep_finds_own_customer_every_way_and_never_a_colleagues(client: Any, auth: Any, world: Any) -> None:
    codes = world["codes"]
    auth.login("rep_a")
    for q in ("crescent", "ＣＲＥＳＣＥＮＴ", "electronics", codes["mine"].lower(), "wu lei", "+86 138-1234-5670",
              "138 1234 5670", "\u202a13812345670\u202c", MINE.lower()):
        page = results(client, q)
        assert codes["mine"] in section(page, "customer"), q
        assert any("138****5670" in line for line in hits(page)) and "13812345670" not in page  # masked
    for q in ("crescent", "optoelectronics", codes["theirs"], "139 1234 5671", "13912345671", THEIRS,
              "Zhang Min", codes["south"], "13712345672"):
        page = results(client, q)
        for secret in (codes["theirs"], "Optoelectronics", "Zhang Min", codes["south"], "Optics South",
                       codes["their_note"], "Secret lens"):
            assert secret not in page, (q, secret)


def test_manager_sees_the_department_not_the_other_one(client: Any, auth: Any, world: Any) -> None:
    codes = world["codes"]
    auth.login("manager")
    customers = section(results(client, "crescent"), "customer")
    assert codes["mine"] in customers and codes["theirs"] in customers and codes["south"] not in customers
    assert codes["south"] not in results(client, "137 1234 5672")


def test_follow_ups_by_code_customer_and_content_in_scope(client: Any, auth: Any, world: Any) -> None:
    codes = world["codes"]
    auth.login("rep_a")
    for q in ("lens", codes["my_note"], codes["mine"], "Crescent Electronics"):
        found = section(results(client, q), "follow_up")
        assert codes["my_note"] in found, q
        assert codes["their_note"] not in found, q
    for q in (codes["their_note"], codes["theirs"], "Secret"):
        assert codes["their_note"] not in results(client, q), q
    link = re.search(r'href="(/followupview/show/\d+)"', section(results(client, "lens"), "follow_up")).group(1)
    assert link == f"/followupview/show/{world['ids']['my_note']}"


def test_users_are_searched_for_admins_only(client: Any, auth: Any, world: Any) -> None:
    auth.login("rep_a")
    assert "quick-search-user" not in results(client, "rep_b")
    auth.logout()
    auth.login("admin")
    users = section(results(client, "Rep_B"), "user")
    assert "rep_b" in users and "/users/show/" in users and "rep_c" not in users


def test_each_hit_links_to_its_page_and_see_all_opens_the_list_searched(client: Any, auth: Any,
                                                                       world: Any) -> None:
    auth.login("manager")
    page = raw(client, "crescent")
    customers = section(page, "customer")
    assert f'href="/customerview/show/{world["ids"]["mine"]}"' in customers
    see_all = re.search(r'class="pull-right quick-search-all" href="([^"]+)"', customers).group(1)
    assert see_all.startswith("/customerview/list/") and "q=crescent" in see_all
    listed = client.get(see_all.replace("&amp;", "&")).get_data(as_text=True)
    assert world["codes"]["mine"] in listed and world["codes"]["theirs"] in listed
    assert world["codes"]["south"] not in listed
    follow_link = re.search(r'class="pull-right quick-search-all" href="([^"]+)"',
                            section(raw(client, "lens"), "follow_up")).group(1)
    assert follow_link.startswith("/followupview/list/") and "lens" in follow_link


def test_at_most_ten_hits_per_type_newest_first(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    ids = [make_customer("rep_a", name=f"Bulk Buyer {n:02d}", contact_phone=f"138000000{n:02d}") for n in range(12)]
    auth.login("rep_a")
    customers = section(results(client, "bulk buyer"), "customer")
    shown = [int(pk) for pk in re.findall(r'href="/customerview/show/(\d+)"', customers)]
    assert shown == sorted(ids, reverse=True)[:10]
    assert "first 10 matches" in customers


def test_a_search_cut_short_says_so_and_exact_lookups_need_no_scan(client: Any, auth: Any, world: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_time(session: Any, milliseconds: int) -> Any:
        raise search.SearchCutShort("interrupted")

    monkeypatch.setattr(search, "time_budget", out_of_time)
    auth.login("rep_a")
    page = results(client, "138 1234 5670")
    assert world["codes"]["mine"] in section(page, "customer")  # the indexed phone lookup answers alone
    assert "took too long" not in section(page, "customer")
    page = results(client, "crescent")
    assert world["codes"]["mine"] not in page and "took too long" in section(page, "customer")


def test_the_results_page_renders_in_chinese(client: Any, auth: Any, world: Any) -> None:
    auth.login("rep_a")
    client.get("/lang/zh")
    page = raw(client, "crescent")
    assert world["codes"]["mine"] in page
    assert "<strong>客户</strong>" in page and "<strong>跟进记录</strong>" in page  # section titles
