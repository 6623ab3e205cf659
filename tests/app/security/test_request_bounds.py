"""Input no record can have (integers beyond the database's range, JSON or rison nested
past the parser) is refused at the door on every route: 400/404, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

BIG = "99999999999999999999"


@pytest.mark.parametrize("method,path", [
    ("get", "/api/v1/customer/{big}"),
    ("put", "/api/v1/customer/{big}"),
    ("delete", "/api/v1/customer/{big}"),
    ("post", "/api/v1/customer/{big}/contact"),
    ("get", "/api/v1/follow_up/{big}"),
])
def test_api_ids_beyond_the_integer_range_are_not_found(client: Any, api: Any, method: str, path: str) -> None:
    response = getattr(client, method)(path.format(big=BIG), json={"version": 1}, headers=api("rep_a"))
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/customerview/show/{big}", "/customerview/edit/{big}",
                                  "/customerview/reveal/{big}", "/followupview/show/{big}"])
def test_screen_ids_beyond_the_integer_range_are_not_found(client: Any, auth: Any, path: str) -> None:
    auth.login("rep_a")
    assert client.get(path.format(big=BIG)).status_code == 404


def test_json_bodies_with_huge_numbers_or_deep_nesting_are_bad_requests(client: Any, api: Any,
                                                                        make_customer: Any) -> None:
    pk = make_customer("rep_a")
    headers = api("rep_a")
    for body in (f'{{"version": 1, "type": {BIG}}}', f'{{"version": {BIG}}}',
                 "[" * 100_000 + "]" * 100_000):
        response = client.put(f"/api/v1/customer/{pk}", data=body, content_type="application/json",
                              headers=headers)
        assert response.status_code == 400, body[:40]
    response = client.post("/api/v1/security/login", data="[" * 100_000 + "]" * 100_000,
                           content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("q", [
    "(((", "(" * 5000, f"(page:{BIG},page_size:10)", "(page:-1,page_size:10)",
    f"(filters:!((col:owner,opr:rel_o_m,value:{BIG})))",
])
def test_rison_arguments_out_of_bounds_are_bad_requests(client: Any, api: Any, q: str) -> None:
    assert client.get(f"/api/v1/customer/?q={q}", headers=api("rep_a")).status_code == 400


def test_version_must_be_a_whole_number(client: Any, api: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    headers = api("rep_a")
    for version in (True, 1.5, 1.0):
        response = client.put(f"/api/v1/customer/{pk}", json={"version": version, "name": "X"}, headers=headers)
        assert response.status_code == 422, version


def test_form_owner_id_beyond_the_integer_range_is_a_field_error(client: Any, auth: Any) -> None:
    auth.login("rep_a")
    response = client.post("/customerview/add", data={"name": "Big owner", "contact_phone": "13812345678",
                                                      "owner": BIG})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/duplicates/?page=abc", "/duplicates/?page=" + BIG,
                                  "/duplicates/review?ids=" + BIG + ",1"])
def test_duplicates_page_arguments_out_of_bounds(client: Any, auth: Any, path: str) -> None:
    auth.login("manager")
    assert client.get(path).status_code in (200, 404)
