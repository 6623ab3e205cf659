"""Duplicates screens (issue 11 §6): a reviewed false match is dismissed and stays dismissed;
the list and the review hide it, the *Dismissed* tab lists it for managers and admins, who
can restore it; reps cannot dismiss; a colleague's customer answers 404 like a missing one."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from app.extensions import db
from app.models import Customer, DismissedPair
from tests.app.services.test_dedup_clusters import fresh_clusters  # noqa: F401 (autouse fixture)
from tests.app.services.test_dedup_dismiss import forget_dismissals  # noqa: F401 (autouse fixture)


def crescent(make_customer: Any) -> tuple[int, int]:
    a = make_customer("rep_a", name="Crescent Electronics", contact_name="Wu", contact_phone="13800000011")
    b = make_customer("rep_b", name="Crescent Optoelectronics", contact_name="Zhang", contact_phone="13900000022")
    return a, b


def pairs(app: Any) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count(DismissedPair.id)))
        db.session.remove()
        return count


def test_manager_dismisses_the_crescent_pair_and_it_stays_dismissed(app: Any, client: Any, auth: Any,
                                                                    make_customer: Any) -> None:
    a, b = crescent(make_customer)
    auth.login("manager")
    index = client.get("/duplicates/").get_data(as_text=True)
    assert f"ids={a},{b}" in index.replace("%2C", ",") and "score 90" in index
    review = client.get(f"/duplicates/review?ids={a},{b}").get_data(as_text=True)
    assert 'id="dismiss-form"' in review and "Not duplicates" in review

    response = client.post("/duplicates/dismiss", data={"a": str(b), "b": str(a), "reason": "Different makers",
                                                        "ids": f"{a},{b}", "back": "review"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/duplicates/")
    index = client.get("/duplicates/").get_data(as_text=True)
    assert "No likely duplicates found." in index and "marked as not duplicates" in index  # and the flash

    with app.app_context():
        item = db.session.get(Customer, b)
        version = item.version
        db.session.remove()
    edit = client.post(f"/customerview/edit/{b}", data={
        "name": "Crescent Optoelectronics", "contact_name": "Zhang", "contact_phone": "139 0000 0022",
        "note": "edited after the review", "edit_version": str(version)})
    assert edit.status_code == 302
    assert "No likely duplicates found." in client.get("/duplicates/").get_data(as_text=True)

    dismissed = client.get("/duplicates/dismissed").get_data(as_text=True)
    table = dismissed[dismissed.index('id="dismissed-pairs"'):]
    assert "Crescent Electronics" in table and "Different makers" in table and "Manager" in table


def test_restore_from_the_dismissed_tab_brings_the_pair_back(app: Any, client: Any, auth: Any,
                                                             make_customer: Any) -> None:
    a, b = crescent(make_customer)
    auth.login("admin")
    client.post("/duplicates/dismiss", data={"a": str(a), "b": str(b)})
    assert pairs(app) == 1
    page = client.get("/duplicates/dismissed").get_data(as_text=True)
    assert 'action="/duplicates/restore"' in page
    response = client.post("/duplicates/restore", data={"a": str(a), "b": str(b), "back": "dismissed"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/duplicates/dismissed")
    assert pairs(app) == 0
    assert f"ids={a},{b}" in client.get("/duplicates/").get_data(as_text=True).replace("%2C", ",")
    assert client.post("/duplicates/restore", data={"a": str(a), "b": str(b)}).status_code == 404


def test_cluster_of_three_shows_its_other_pairs_and_names_the_dismissed_one(app: Any, client: Any, auth: Any,
                                                                            make_customer: Any) -> None:
    a = make_customer("rep_a", name="Alpha Trading", contact_phone="13700000001")
    b = make_customer("rep_a", name="Beta Works", contact_phone="13700000001")
    c = make_customer("rep_b", name="Gamma Foods", contact_phone="13700000001")
    with app.app_context():
        codes = {pk: db.session.get(Customer, pk).code for pk in (a, b, c)}
        db.session.remove()
    auth.login("manager")
    response = client.post("/duplicates/dismiss", data={"a": str(a), "b": str(b), "ids": f"{a},{b},{c}",
                                                        "back": "review"})
    assert response.headers["Location"].replace("%2C", ",").endswith(f"/duplicates/review?ids={a},{b},{c}")
    index = client.get("/duplicates/").get_data(as_text=True)
    assert f"ids={a},{b},{c}" in index.replace("%2C", ",")
    assert f"Not duplicates: {codes[a]} and {codes[b]}" in index
    review = client.get(f"/duplicates/review?ids={a},{b},{c}").get_data(as_text=True)
    assert 'id="dismissed-here"' in review and "Merge</button>" in review
    form = review[review.index('id="dismiss-form"'):]
    selected = re.findall(r'<option value="(\d+)" selected>', form)
    assert selected == [str(a), str(c)]  # the first pair still to review, not the dismissed one


def test_review_of_a_dismissed_pair_offers_nothing_to_merge(client: Any, auth: Any, make_customer: Any) -> None:
    a, b = crescent(make_customer)
    auth.login("manager")
    client.post("/duplicates/dismiss", data={"a": str(a), "b": str(b)})
    review = client.get(f"/duplicates/review?ids={a},{b}").get_data(as_text=True)
    assert 'id="all-dismissed"' in review and "Merge</button>" not in review and 'id="dismiss-form"' not in review
    assert 'action="/duplicates/restore"' in review


def test_reps_cannot_dismiss_or_see_dismissed_pairs(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Crescent Electronics", contact_phone="13800000011")
    b = make_customer("rep_a", name="Crescent Optoelectronics", contact_phone="13900000022")
    auth.login("rep_a")
    assert client.post("/duplicates/dismiss", data={"a": str(a), "b": str(b)}).status_code in (302, 403)
    assert pairs(app) == 0
    assert client.get("/duplicates/dismissed").status_code in (302, 403)


def test_a_colleagues_customer_is_404_like_a_missing_one(app: Any, client: Any, auth: Any,
                                                         make_customer: Any) -> None:
    mine = make_customer("rep_a", name="Crescent Electronics", contact_phone="13800000011")
    south = make_customer("rep_c", name="Crescent Optoelectronics", contact_phone="13900000022")
    auth.login("manager")
    outside = client.post("/duplicates/dismiss", data={"a": str(mine), "b": str(south)})
    missing = client.post("/duplicates/dismiss", data={"a": str(mine), "b": "999999"})
    assert outside.status_code == missing.status_code == 404
    same = re.compile(r'nonce="[^"]*"')
    assert same.sub("", outside.get_data(as_text=True)) == same.sub("", missing.get_data(as_text=True))
    assert client.post("/duplicates/dismiss", data={"a": str(mine), "b": "9" * 40}).status_code == 404
    assert pairs(app) == 0


def test_bad_input_gets_a_message_not_a_500(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    a, b = crescent(make_customer)
    auth.login("manager")
    same = client.post("/duplicates/dismiss", data={"a": str(a), "b": str(a)}, follow_redirects=True)
    assert same.status_code == 200 and "Pick two different customers." in same.get_data(as_text=True)
    long = client.post("/duplicates/dismiss", data={"a": str(a), "b": str(b), "reason": "x" * 300},
                       follow_redirects=True)
    assert "At most 255 characters." in long.get_data(as_text=True)
    assert client.post("/duplicates/dismiss", data={}).status_code == 404
    assert pairs(app) == 0
    client.post("/duplicates/dismiss", data={"a": str(a), "b": str(b)})
    again = client.post("/duplicates/dismiss", data={"a": str(b), "b": str(a)})  # a second click
    assert again.status_code == 302 and pairs(app) == 1
