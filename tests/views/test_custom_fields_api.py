"""Custom fields in the REST API (issue 18; 001 扩展信息 客户规模 / 合作年限 / 关键需求标签):
``cf_<key>`` in POST/PUT bodies (checked per field, 422), in every answer (masked fields
masked), as list filters, in the OpenAPI document, and the recorded reveal of a masked one."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Customer

SCALE = [("small", "Small", "小型"), ("medium", "Medium", "中型"), ("large", "Large", "大型")]
NEEDS = [("price", "Price", "价格", "#f00"), ("service", "Service", "服务", "#0f0"), ("speed", "Speed", "交付", "#00f")]
WECHAT = "wxid_13812345678"


@pytest.fixture
def fields(make_custom_field: Any) -> None:
    make_custom_field("customer", "scale", "choice", label_en="Company size", label_zh="客户规模", choices=SCALE)
    make_custom_field("customer", "years", "integer", label_en="Years of cooperation", label_zh="合作年限")
    make_custom_field("customer", "needs", "tags", label_en="Key needs", label_zh="关键需求标签", choices=NEEDS)
    make_custom_field("customer", "wechat", "text", label_en="WeChat", label_zh="微信", masked=True)


def _customer(client: Any, headers: dict[str, str], **extra: Any) -> Any:
    return client.post("/api/v1/customer/", json={"name": "Custom Co", "contact_phone": "13912345678", **extra},
                       headers=headers)


def test_post_put_get_carry_custom_fields(fields: None, client: Any, api: Any, app: Any) -> None:
    headers = api("rep_a")
    created = _customer(client, headers, cf_scale="中型", cf_years="１２", cf_needs=["price", "服务"])
    assert created.status_code == 201, created.get_json()
    result = created.get_json()["result"]
    assert (result["cf_scale"], result["cf_years"], result["cf_needs"]) == ("medium", 12, ["price", "service"])
    pk = created.get_json()["id"]
    changed = client.put(f"/api/v1/customer/{pk}", json={"version": 1, "cf_years": 3, "cf_needs": "speed"},
                         headers=headers)
    assert changed.status_code == 200, changed.get_json()
    shown = client.get(f"/api/v1/customer/{pk}", headers=headers).get_json()["result"]
    assert (shown["cf_scale"], shown["cf_years"], shown["cf_needs"]) == ("medium", 3, ["speed"])
    rows = client.get("/api/v1/customer/", headers=headers).get_json()["result"]
    assert [row["cf_years"] for row in rows if row["id"] == pk] == [3]
    with app.app_context():
        assert db.session.get(Customer, pk).custom == {"scale": "medium", "years": 3, "needs": ["speed"]}


def test_bad_values_are_422_per_field_and_nothing_is_saved(fields: None, client: Any, api: Any, app: Any) -> None:
    headers = api("rep_a")
    response = _customer(client, headers, cf_scale="huge", cf_years="1.5", cf_needs=["price", "nope"])
    assert response.status_code == 422
    message = response.get_json()["message"]
    assert set(message) == {"cf_scale", "cf_years", "cf_needs"}
    assert "huge" in message["cf_scale"] and "nope" in message["cf_needs"]
    assert _customer(client, headers, cf_years=True).status_code == 422
    assert _customer(client, headers, cf_years=[1]).status_code == 422
    with app.app_context():
        assert db.session.scalar(select(Customer.id).where(Customer.name == "Custom Co")) is None


def test_unknown_custom_key_is_refused(fields: None, client: Any, api: Any, make_customer: Any) -> None:
    headers = api("rep_a")
    response = _customer(client, headers, cf_nosuch="x")
    assert response.status_code == 422 and "cf_nosuch" in response.get_json()["message"]
    pk = make_customer("rep_a")
    response = client.put(f"/api/v1/customer/{pk}", json={"version": 1, "cf_nosuch": 1}, headers=headers)
    assert response.status_code == 422 and "cf_nosuch" in response.get_json()["message"]


def test_required_field_is_named_when_missing(make_custom_field: Any, client: Any, api: Any) -> None:
    make_custom_field("customer", "region", "text", label_en="Sales region", label_zh="销售区域", required=True)
    response = _customer(client, api("rep_a"))
    assert response.status_code == 422 and response.get_json()["message"]["cf_region"] == "Required."
    assert _customer(client, api("rep_a"), cf_region="华东").status_code == 201


def test_another_reps_record_is_404(fields: None, client: Any, api: Any, make_customer: Any) -> None:
    pk = make_customer("rep_c", custom={"years": 7, "wechat": WECHAT})
    headers = api("rep_a")
    assert client.get(f"/api/v1/customer/{pk}", headers=headers).status_code == 404
    assert client.put(f"/api/v1/customer/{pk}", json={"version": 1, "cf_years": 1}, headers=headers).status_code == 404
    assert client.post(f"/api/v1/customer/{pk}/custom/wechat/reveal", headers=headers).status_code == 404


def test_list_filters_by_custom_field(fields: None, client: Any, api: Any, make_customer: Any) -> None:
    tagged = make_customer("rep_a", name="Tagged", custom={"needs": ["price", "speed"], "years": 5})
    make_customer("rep_a", name="Other", custom={"needs": ["service"], "years": 2})
    headers = api("rep_a")
    rows = client.get("/api/v1/customer/?cf_needs=价格", headers=headers).get_json()["result"]
    assert [row["id"] for row in rows] == [tagged]
    rows = client.get("/api/v1/customer/?cf_years=5", headers=headers).get_json()["result"]
    assert [row["id"] for row in rows] == [tagged]
    assert client.get("/api/v1/customer/?cf_years=five", headers=headers).status_code == 400
    assert client.get("/api/v1/customer/?cf_wechat=wxid", headers=headers).status_code == 400  # masked: no oracle
    assert client.get("/api/v1/customer/?cf_nosuch=1", headers=headers).status_code == 400


def test_openapi_lists_the_active_fields(fields: None, make_custom_field: Any, client: Any, api: Any) -> None:
    make_custom_field("customer", "old", "text", active=False)
    spec = client.get("/api/v1/_openapi", headers=api("admin")).get_json()
    schemas = spec["components"]["schemas"]
    for name in ("CustomerApi.get", "CustomerApi.get_list", "CustomerApi.post", "CustomerApi.put"):
        properties = schemas[name]["properties"]
        assert properties["cf_scale"]["enum"] == ["small", "medium", "large"]
        assert properties["cf_years"]["type"] == "integer"
        assert properties["cf_needs"] == {**properties["cf_needs"], "type": "array",
                                          "items": {"type": "string", "enum": ["price", "service", "speed"]}}
        assert "cf_old" not in properties
    assert "客户规模" in schemas["CustomerApi.post"]["properties"]["cf_scale"]["description"]


def test_masked_field_is_masked_in_every_answer(fields: None, client: Any, api: Any, app: Any) -> None:
    for user in ("rep_a", "admin"):
        created = _customer(client, api(user), name=f"Masked {user}", cf_wechat=WECHAT)
        assert created.status_code == 201, created.get_json()
        pk = created.get_json()["id"]
        assert WECHAT not in created.get_data(as_text=True)
        assert created.get_json()["result"]["cf_wechat"] == "****"
        assert WECHAT not in client.get(f"/api/v1/customer/{pk}", headers=api(user)).get_data(as_text=True)
        assert WECHAT not in client.get("/api/v1/customer/", headers=api(user)).get_data(as_text=True)
        echoed = client.put(f"/api/v1/customer/{pk}", json={"version": 1, "cf_wechat": "****"},
                            headers=api(user))
        assert echoed.status_code == 200 and WECHAT not in echoed.get_data(as_text=True)
        with app.app_context():  # the masked echo kept the stored value
            assert db.session.get(Customer, pk).custom["wechat"] == WECHAT
    viewer = client.get(f"/api/v1/customer/{pk}", headers=api("viewer"))
    assert viewer.status_code == 200 and WECHAT not in viewer.get_data(as_text=True)


def test_reveal_needs_the_right_and_a_code_and_is_audited(fields: None, client: Any, api: Any, app: Any,
                                                          make_customer: Any, totp: Any) -> None:
    pk = make_customer("rep_a", custom={"wechat": WECHAT})
    url = f"/api/v1/customer/{pk}/custom/wechat/reveal"
    assert client.post(url, headers=api("viewer")).status_code == 403
    assert client.post(url, headers=api("rep_a")).status_code == 401  # not enrolled: no reveal
    totp.enrol(app, "rep_a")
    assert client.post(url, headers=api("rep_a")).status_code == 401  # no code sent
    response = client.post(url, headers={**api("rep_a"), "X-TOTP-Code": totp.code("rep_a")})
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["field"], response.get_json()["value"]) == ("cf_wechat", WECHAT)
    with app.app_context():
        reveals = db.session.scalars(select(AuditLog).where(AuditLog.action == "reveal")).all()
        assert [(r.object_type, r.object_id) for r in reveals] == [("Customer", str(pk))]
        assert '"cf_wechat"' in reveals[0].detail and '"api"' in reveals[0].detail
        assert not any(WECHAT in (entry.changes or "") + (entry.detail or "")
                       for entry in db.session.scalars(select(AuditLog)))


def test_unmasked_and_unknown_fields_on_the_reveal_action(fields: None, client: Any, api: Any,
                                                          make_customer: Any) -> None:
    pk = make_customer("rep_a", custom={"years": 4})
    plain = client.post(f"/api/v1/customer/{pk}/custom/years/reveal", headers=api("viewer"))
    assert plain.status_code == 200 and plain.get_json()["value"] == 4  # not masked: nothing to hide
    assert client.post(f"/api/v1/customer/{pk}/custom/nosuch/reveal", headers=api("rep_a")).status_code == 404


def test_declared_type_carries_custom_fields(make_custom_field: Any, client: Any, api: Any, app: Any) -> None:
    make_custom_field("lead", "budget", "decimal", label_en="Budget", label_zh="预算", places=2)
    make_custom_field("lead", "channels", "multi", choices=[("web", "Web", "网站"), ("fair", "Fair", "展会")])
    headers = api("rep_a")
    created = client.post("/api/v1/lead/", json={"company": "Lead Co", "phone": "13800000077", "cf_budget": "1,200.5",
                                                "cf_channels": "网站，展会"}, headers=headers)
    assert created.status_code == 201, created.get_json()
    result = created.get_json()["result"]
    assert (result["cf_budget"], result["cf_channels"]) == ("1200.50", ["web", "fair"])
    pk = created.get_json()["id"]
    bad = client.put(f"/api/v1/lead/{pk}", json={"version": 1, "cf_budget": "1.234"}, headers=headers)
    assert bad.status_code == 422 and set(bad.get_json()["message"]) == {"cf_budget"}
    assert client.get(f"/api/v1/lead/{pk}", headers=api("rep_c")).status_code == 404
    spec = client.get("/api/v1/_openapi", headers=api("admin")).get_json()
    assert spec["components"]["schemas"]["LeadApi.post"]["properties"]["cf_channels"]["type"] == "array"


def test_api_without_custom_column_refuses_cf_keys(client: Any, api: Any, make_customer: Any) -> None:
    """Record types that hold no custom values (dictionaries have no use case): cf_ keys are no
    columns there, so FAB's own schema refuses them."""
    response = client.post("/api/v1/industry/", json={"code": "ZZ9", "label_en": "X", "label_zh": "X", "cf_a": 1},
                           headers=api("admin"))
    assert response.status_code in (400, 422)


def test_odd_json_values_are_422_and_a_retired_choice_still_filters(make_custom_field: Any, client: Any, api: Any,
                                                                    make_customer: Any) -> None:
    """A JSON number for a date, a masked text typed with its mask: 422 naming the field (a
    number once failed with a 500); a choice no longer offered still finds the old records."""
    make_custom_field("customer", "signed", "date", label_en="Signed", label_zh="签约日期")
    make_custom_field("customer", "secret", "text", masked=True)
    make_custom_field("customer", "tier", "choice", choices=[
        {"code": "a", "label_en": "Alpha", "label_zh": "甲"},
        {"code": "b", "label_en": "Beta", "label_zh": "乙", "active": False}])
    headers = api("rep_a")
    for body in ({"cf_signed": 99999999}, {"cf_signed": [2026]}, {"cf_secret": "139****1111"}):
        answer = _customer(client, headers, **body)
        assert answer.status_code == 422 and set(answer.get_json()["message"]) == set(body), answer.get_json()
    assert _customer(client, headers, cf_signed=46000).get_json()["result"]["cf_signed"] == "2025-12-09"
    old = make_customer("rep_a", name="Old tier", custom={"tier": "b"})
    rows = client.get("/api/v1/customer/?cf_tier=b", headers=headers).get_json()["result"]
    assert [row["id"] for row in rows] == [old]
    answer = client.get("/api/v1/customer/?cf_sort=cf_tier", headers=headers)
    assert answer.status_code == 200 and old in [row["id"] for row in answer.get_json()["result"]]


def test_info_describes_the_custom_fields(fields: None, client: Any, api: Any) -> None:
    info = client.get("/api/v1/customer/_info", headers=api("rep_a")).get_json()
    added = {field["name"]: field for field in info["add_columns"]}
    assert added["cf_scale"]["label"] == "Company size" and added["cf_scale"]["type"] == "choice"
    assert {value["id"] for value in added["cf_scale"]["values"]} >= {"medium"}
    assert "cf_years" in {field["name"] for field in info["edit_columns"]}


@pytest.fixture
def api_listed(fields: None, make_custom_field: Any, make_customer: Any) -> dict[str, int]:
    """rep_a's customers with sizes, years (one without) and notes; rep_c's in another department."""
    make_custom_field("customer", "note", "text", label_en="Note", label_zh="备注")
    made = {
        "small": make_customer("rep_a", name="small", custom={"scale": "small", "years": 2, "note": "Big Deal"}),
        "large": make_customer("rep_a", name="large", custom={"scale": "large", "years": 9, "wechat": WECHAT}),
        "medium": make_customer("rep_a", name="medium", custom={"scale": "medium", "years": 9}),
        "none": make_customer("rep_a", name="none", custom={"needs": ["price"]}),
        "rep_c": make_customer("rep_c", name="rep_c", custom={"scale": "large", "years": 5, "note": "Big Deal"}),
    }
    return made


def _ids(client: Any, headers: dict[str, str], query: str) -> list[int]:
    answer = client.get(f"/api/v1/customer/?{query}", headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return [row["id"] for row in answer.get_json()["result"]]


def test_the_api_filters_with_the_screens_operators(api_listed: dict[str, int], client: Any, api: Any) -> None:
    made, headers = api_listed, api("rep_a")
    assert sorted(_ids(client, headers, "cf_scale=large&cf_scale=小型")) == sorted([made["small"], made["large"]])
    assert _ids(client, headers, "cf_note__contains=deal") == [made["small"]]
    assert _ids(client, headers, "cf_note=Big Deal") == [made["small"]]  # equals: the screens' rule
    assert _ids(client, headers, "cf_note=Big") == []
    assert sorted(_ids(client, headers, "cf_years__from=5&cf_years__to=9")) == sorted([made["large"], made["medium"]])


def test_the_api_sorts_by_a_custom_field_with_stable_pages(api_listed: dict[str, int], client: Any, api: Any,
                                                           app: Any) -> None:
    made, headers = api_listed, api("rep_a")
    with app.app_context():
        nulls_first = db.engine.dialect.name == "sqlite"  # going up: where each database puts NULL, as the screens
    valued = [made["small"], made["large"], made["medium"]]  # 2, 9, 9 (ties by id)
    assert _ids(client, headers, "cf_sort=cf_years") == ([made["none"], *valued] if nulls_first
                                                         else [*valued, made["none"]])
    descending = _ids(client, headers, "cf_sort=-cf_years")
    assert [pk for pk in descending if pk != made["none"]] == valued[::-1]
    paged = [pk for page in range(4) for pk in _ids(client, headers, f"cf_sort=cf_years&q=(page:{page},page_size:1)")]
    assert paged == _ids(client, headers, "cf_sort=cf_years")
    by_name = _ids(client, headers, "cf_sort=-cf_scale&q=(order_column:name,order_direction:asc)")
    valued_by_scale = [pk for pk in by_name if pk != made["none"]]
    assert valued_by_scale == [made["small"], made["medium"], made["large"]]  # cf_sort first, then the column
    # no listed column selected: the page is read keys first on SQLite, in the same order
    bare = client.get("/api/v1/customer/?cf_sort=-cf_scale&q=(order_column:name,order_direction:asc,"
                      "select_columns:!(nowhere))", headers=headers)
    assert bare.get_json()["ids"] == by_name


def test_the_api_refuses_what_the_screens_refuse_with_a_400_naming_the_argument(api_listed: dict[str, int],
                                                                               client: Any, api: Any) -> None:
    headers = api("rep_a")
    for query, argument in (("cf_years__from=many", "cf_years__from"), ("cf_wechat=wxid", "cf_wechat"),
                            ("cf_sort=cf_wechat", "cf_sort"), ("cf_sort=-cf_needs", "cf_sort"),
                            ("cf_scale__contains=a", "cf_scale__contains"), ("cf_nosuch=1", "cf_nosuch"),
                            (f"cf_note={'x' * 201}", "cf_note")):
        answer = client.get(f"/api/v1/customer/?{query}", headers=headers)
        assert answer.status_code == 400, query
        assert answer.get_json()["message"].startswith(f"{argument}: "), answer.get_json()
    message = client.get("/api/v1/customer/?cf_years=five", headers=headers).get_json()["message"]
    assert message == "cf_years: Years of cooperation: Give a whole number."


def test_api_filters_and_sort_stay_inside_the_scope(api_listed: dict[str, int], client: Any, api: Any) -> None:
    made, headers = api_listed, api("rep_a")
    assert _ids(client, headers, "cf_scale=large") == [made["large"]]
    assert _ids(client, headers, "cf_note__contains=deal&cf_sort=-cf_years") == [made["small"]]
    answer = client.get("/api/v1/customer/?cf_sort=-cf_years", headers=headers).get_json()
    assert made["rep_c"] not in [row["id"] for row in answer["result"]] and answer["count"] == 4
    assert made["rep_c"] in _ids(client, api("admin"), "cf_scale=large&cf_sort=cf_years")
