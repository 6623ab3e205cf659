"""Organisation → Custom fields screen (issue 18): an admin adds 客户规模 / 合作年限 / 关键需求标签
in Chinese and English; nobody else reaches a page; purge asks for a code; a deactivated
field's values stay."""

from __future__ import annotations

from typing import Any

import pytest

from app.extensions import db
from app.models.custom_fields import CustomField
from app.models.customers import Customer

SIZE = {"record_type": "customer", "key": "size", "label_en": "Company size", "label_zh": "客户规模",
        "kind": "choice", "choices": "small | Small | 小型\nmedium | Medium | 中型\nlarge | Large | 大型\n"
                                     "group | Group | 集团", "searchable": "on", "in_list": "on", "active": "on"}
YEARS = {"record_type": "customer", "key": "years", "label_en": "Years together", "label_zh": "合作年限",
         "kind": "integer", "active": "on"}
NEEDS = {"record_type": "customer", "key": "needs", "label_en": "Key needs", "label_zh": "关键需求标签", "kind": "tags",
         "choices": "high_value | High-value | 高价值客户 | #5cb85c\nchurn | Churn risk | 流失风险客户 | #d9534f",
         "active": "on"}


def _field(app: Any, key: str) -> CustomField | None:
    with app.app_context():
        row = db.session.query(CustomField).filter_by(key=key).one_or_none()
        if row is not None:
            db.session.expunge(row)
        db.session.remove()
        return row


def test_admin_adds_fields_in_chinese_and_english(app: Any, client: Any, auth: Any) -> None:
    auth.login("admin")
    page = client.get("/custom_fields/add")
    assert page.status_code == 200
    assert client.post("/custom_fields/add", data=SIZE).status_code == 302
    assert client.post("/custom_fields/add", data=YEARS).status_code == 302
    assert client.post("/custom_fields/add", data=NEEDS).status_code == 302
    listing = client.get("/custom_fields/?record_type=customer").get_data(as_text=True)
    assert "Company size" in listing and "cf_years" in listing and "Churn risk" in listing
    size = _field(app, "size")
    assert size.searchable and size.in_list and [c["label_zh"] for c in size.choices] == ["小型", "中型", "大型", "集团"]
    assert _field(app, "needs").choices[1]["colour"] == "#d9534f"
    client.get("/lang/zh")
    chinese = client.get("/custom_fields/?record_type=customer").get_data(as_text=True)
    assert "客户规模" in chinese and "流失风险客户" in chinese


def test_mistakes_are_shown_by_field_and_nothing_is_stored(app: Any, client: Any, auth: Any) -> None:
    auth.login("admin")
    response = client.post("/custom_fields/add", data={**SIZE, "key": "Size!", "choices": "a | A"})
    text = response.get_data(as_text=True)
    assert response.status_code == 400 and "group-key" in text and "Line 1" in text
    assert _field(app, "size") is None
    client.post("/custom_fields/add", data=SIZE)
    row = _field(app, "size")
    stale = client.post(f"/custom_fields/edit/{row.id}", data={**SIZE, "version": "0"})
    assert stale.status_code == 400
    edited = client.post(f"/custom_fields/edit/{row.id}", data={**SIZE, "label_en": "Size", "version": row.version,
                                                                 "key": "other"})
    assert edited.status_code == 302  # the key is fixed: the form's is ignored
    assert _field(app, "size").label_en == "Size" and _field(app, "size").key == "size"
    assert client.get("/custom_fields/edit/999999").status_code == 404


@pytest.mark.parametrize("name", ["rep_a", "manager", "viewer"])
def test_nobody_but_an_admin_reaches_a_page(app: Any, client: Any, auth: Any, make_custom_field: Any,
                                            name: str) -> None:
    pk = make_custom_field("customer", "years", "integer")
    auth.login(name)
    for url in ("/custom_fields/", "/custom_fields/add", f"/custom_fields/edit/{pk}", f"/custom_fields/purge/{pk}"):
        assert client.get(url).status_code in (302, 403), url
    for url, data in (("/custom_fields/add", SIZE), (f"/custom_fields/edit/{pk}", YEARS),
                      (f"/custom_fields/active/{pk}", {"active": "0"}), (f"/custom_fields/delete/{pk}", {}),
                      (f"/custom_fields/purge/{pk}", {"confirm": "yes"})):
        assert client.post(url, data=data).status_code in (302, 403), url
    row = _field(app, "years")
    assert row is not None and row.active and _field(app, "size") is None


def test_deactivated_field_keeps_values_delete_refused_purge_needs_a_code(app: Any, client: Any, auth: Any,
                                                                          make_customer: Any, totp: Any) -> None:
    auth.login("admin")
    client.post("/custom_fields/add", data=SIZE)
    row = _field(app, "size")
    customer = make_customer("rep_a", custom={"size": "large"})
    assert client.post(f"/custom_fields/active/{row.id}", data={"active": "0"}).status_code == 302
    assert _field(app, "size").active is False
    refused = client.post(f"/custom_fields/delete/{row.id}", follow_redirects=True).get_data(as_text=True)
    assert "1 records hold" in refused and _field(app, "size") is not None
    totp.enrol(app, "admin")
    unconfirmed = client.post(f"/custom_fields/purge/{row.id}", data={"_step_up_code": totp.code("admin")})
    assert unconfirmed.status_code == 400
    no_code = client.post(f"/custom_fields/purge/{row.id}", data={"confirm": "yes"})
    assert no_code.status_code == 401 and "_step_up_code" in no_code.get_data(as_text=True)
    wrong = client.post(f"/custom_fields/purge/{row.id}", data={"confirm": "yes", "_step_up_code": "000000"})
    assert wrong.status_code == 403
    with app.app_context():
        assert db.session.get(Customer, customer).custom == {"size": "large"}
        db.session.remove()
    done = client.post(f"/custom_fields/purge/{row.id}", data={"confirm": "yes", "_step_up_code": totp.code("admin")})
    assert done.status_code == 302 and _field(app, "size") is None
    with app.app_context():
        assert not db.session.get(Customer, customer).custom
        db.session.remove()
