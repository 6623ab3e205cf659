"""Custom fields on the record screens (issue 18; 001 扩展信息 客户规模 / 合作意向产品 / 历史合作记录
/ 关键需求标签; 003 第三步 1 字段设置, 客户标签 高价值客户 / 流失风险客户): forms, pages, list
columns, filters and sorting, as a rep and an admin would use them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from app.models.custom_fields import CustomField
from app.models.sales import Contact, Lead
from app.services import custom_fields

TAGS = [("high_value", "High value", "高价值客户", "#d9534f"), ("churn_risk", "Churn risk", "流失风险客户", "#f0ad4e")]
SIZES = [("small", "Small", "小型"), ("medium", "Medium", "中型"), ("large", "Large", "大型")]


@pytest.fixture
def fields(make_custom_field: Any) -> None:
    """客户规模 (choice, required), 合作年限 (integer), 关键需求标签 (tags), 年采购额 (masked text)."""
    make_custom_field("customer", "size", "choice", label_en="Company size", label_zh="客户规模", required=True,
                      choices=SIZES, in_list=True, searchable=True, position=1, section_en="Profile",
                      section_zh="扩展信息", help_en="How large the company is", help_zh="企业规模")
    make_custom_field("customer", "years", "integer", label_en="Years of cooperation", label_zh="合作年限",
                      in_list=True, searchable=True, position=2, section_en="Profile", section_zh="扩展信息")
    make_custom_field("customer", "needs", "tags", label_en="Key needs", label_zh="关键需求标签", choices=TAGS,
                      in_list=True, position=3)
    make_custom_field("customer", "budget", "text", label_en="Budget holder phone", label_zh="预算负责人电话",
                      masked=True, position=4)


def _customer(app: Any, name: str) -> Customer:
    with app.app_context():
        item = db.session.scalar(select(Customer).where(Customer.name == name))
        db.session.expunge(item)
        return item


def _zh(client: Any) -> None:
    with client.session_transaction() as session:
        session["locale"] = "zh"


def _set_custom(app: Any, pk: int, model: type = Customer, **custom: Any) -> None:
    with app.app_context():
        db.session.get(model, pk).custom = custom
        db.session.commit()


def test_add_form_in_chinese_shows_fields_by_section_and_saves(app, client, auth, fields):
    auth.login("rep_a")
    _zh(client)
    page = client.get("/customerview/add").get_data(as_text=True)
    assert "扩展信息" in page and "客户规模" in page and "关键需求标签" in page and "企业规模" in page
    assert 'name="cf_size"' in page and 'name="cf_needs"' in page and "multiple" in page
    assert re.search(r'<select[^>]*name="cf_size"[^>]*required', page) or 'id="cf_size" name="cf_size" required' in page
    answer = client.post("/customerview/add", data={
        "name": "深圳华腾电子", "contact_phone": "13812345678", "cf_size": "大型", "cf_years": "１２",
        "cf_needs": ["high_value", "churn_risk"]})
    assert answer.status_code == 302, re.findall(r"alert[^>]*>(.{0,300})", answer.get_data(as_text=True), re.S)
    item = _customer(app, "深圳华腾电子")
    assert item.custom == {"size": "large", "years": 12, "needs": ["high_value", "churn_risk"]}


def test_form_errors_show_under_the_fields_and_keep_the_input(app, client, auth, fields):
    auth.login("rep_a")
    page = client.post("/customerview/add", data={
        "name": "Keep me", "contact_phone": "13812345678", "cf_size": "giant", "cf_years": "twelve"}
    ).get_data(as_text=True)
    assert "giant is not one of the choices" in page
    assert "Give a whole number" in page
    assert 'value="twelve"' in page and 'value="Keep me"' in page
    page = client.post("/customerview/add", data={"name": "No size", "contact_phone": "13812345678"}
                       ).get_data(as_text=True)
    assert "Required." in page
    with app.app_context():
        assert db.session.scalar(select(Customer)) is None


def test_edit_in_english_prefills_and_accepts_1200(app, client, auth, make_customer, fields):
    pk = make_customer("rep_a", name="Northwind")
    _set_custom(app, pk, size="small", years=3, needs=["churn_risk"])
    auth.login("rep_a")
    page = client.get(f"/customerview/edit/{pk}").get_data(as_text=True)
    assert "Company size" in page and "Profile" in page
    assert re.search(r'<option selected value="small">|<option value="small" selected', page)
    assert 'value="3"' in page
    answer = client.post(f"/customerview/edit/{pk}", data={
        "name": "Northwind", "contact_phone": "13812345678", "edit_version": "2", "cf_size": "medium",
        "cf_years": "1,200", "cf_needs": ["high_value"]})
    assert answer.status_code == 302, re.findall(r"alert[^>]*>(.{0,300})", answer.get_data(as_text=True), re.S)
    assert _customer(app, "Northwind").custom == {"size": "medium", "years": 1200, "needs": ["high_value"]}


def test_a_deactivated_choice_on_an_old_record_shows_and_saves_unchanged(app, client, auth, make_customer, fields):
    pk = make_customer("rep_a", name="Old Co")
    _set_custom(app, pk, size="small", years=5)
    with app.app_context():
        row = db.session.scalar(select(CustomField).where(CustomField.key == "size"))
        row.choices = [{**c, "active": c["code"] != "small"} for c in row.choices]
        db.session.commit()
    custom_fields.forget()
    auth.login("rep_a")
    page = client.get(f"/customerview/edit/{pk}").get_data(as_text=True)
    assert re.search(r'<option selected value="small">Small|<option value="small" selected>Small', page)
    answer = client.post(f"/customerview/edit/{pk}", data={
        "name": "Old Co 2", "contact_phone": "13812345678", "edit_version": "2", "cf_size": "small", "cf_years": "5"})
    assert answer.status_code == 302
    assert _customer(app, "Old Co 2").custom["size"] == "small"
    other = make_customer("rep_a", name="New Co")
    refused = client.post(f"/customerview/edit/{other}", data={
        "name": "New Co", "contact_phone": "13812345678", "edit_version": "1", "cf_size": "small"})
    assert "no longer offered" in refused.get_data(as_text=True)
    show = client.get(f"/customerview/show/{pk}").get_data(as_text=True)
    assert "Small" in show and "Years of cooperation" in show


def test_show_page_chips_and_masked_value(app, client, auth, make_customer, fields):
    pk = make_customer("rep_a", name="Chips Co")
    _set_custom(app, pk, size="large", needs=["high_value"], budget="13912345678")
    for user in ("rep_a", "viewer", "admin"):
        auth.login(user)
        _zh(client)
        page = client.get(f"/customerview/show/{pk}").get_data(as_text=True)
        assert "高价值客户" in page and "background-color:#d9534f" in page and "大型" in page
        assert "139****5678" in page and "13912345678" not in page
        auth.logout()


def test_masked_field_stays_masked_on_the_edit_form_and_is_kept(app, client, auth, make_customer, fields):
    pk = make_customer("rep_a", name="Masked Co")
    _set_custom(app, pk, size="large", budget="13912345678")
    auth.login("rep_a")
    page = client.get(f"/customerview/edit/{pk}").get_data(as_text=True)
    assert "139****5678" in page and "13912345678" not in page
    answer = client.post(f"/customerview/edit/{pk}", data={
        "name": "Masked Co", "contact_phone": "13812345678", "edit_version": "2", "cf_size": "large",
        "cf_budget": "139****5678"})
    assert answer.status_code == 302
    assert _customer(app, "Masked Co").custom["budget"] == "13912345678"


@pytest.fixture
def listed(app, make_customer, fields):
    """Customers of rep_a, rep_b (same department) and rep_c (another) with custom values."""
    made = {
        "A small": make_customer("rep_a", name="A small"),
        "A large": make_customer("rep_a", name="A large"),
        "A medium": make_customer("rep_a", name="A medium"),
        "C large": make_customer("rep_c", name="C large"),
    }
    _set_custom(app, made["A small"], size="small", years=2, needs=["churn_risk"])
    _set_custom(app, made["A large"], size="large", years=15, needs=["high_value", "churn_risk"])
    _set_custom(app, made["A medium"], size="medium", years=7)
    _set_custom(app, made["C large"], size="large", years=9, needs=["high_value"])
    return made


def _names(client: Any, query: str) -> list[str]:
    page = client.get(f"/customerview/list/?{query}").get_data(as_text=True)
    return [name for name in re.findall(r"<td>\s*([A-C] (?:small|large|medium))\s*</td>", page)]


def test_list_filters_by_choice_tag_and_range_within_scope(client, auth, listed):
    auth.login("rep_a")
    assert sorted(_names(client, "cf_size=large")) == ["A large"]
    assert sorted(_names(client, "cf_size=large&cf_size=small")) == ["A large", "A small"]
    assert sorted(_names(client, "cf_needs=high_value")) == ["A large"]
    assert sorted(_names(client, "cf_years__from=5&cf_years__to=10")) == ["A medium"]
    auth.logout()
    auth.login("admin")
    assert sorted(_names(client, "cf_size=large")) == ["A large", "C large"]
    assert sorted(_names(client, "cf_needs=高价值客户")) == ["A large", "C large"]
    assert sorted(_names(client, "cf_years__from=5&cf_years__to=10")) == ["A medium", "C large"]


def test_list_sorts_by_a_custom_field_and_shows_its_columns(client, auth, listed):
    auth.login("admin")
    assert _names(client, "cf_sort=cf_years") == ["A small", "A medium", "C large", "A large"]
    assert _names(client, "cf_sort=-cf_years") == ["A large", "C large", "A medium", "A small"]
    page = client.get("/customerview/list/").get_data(as_text=True)
    assert "Company size" in page and "Key needs" in page and 'id="custom-filters"' in page
    auth.logout()
    auth.login("rep_a")
    assert _names(client, "cf_sort=-cf_years") == ["A large", "A medium", "A small"]


def test_bad_filter_values_are_a_message_not_a_500(client, auth, listed):
    auth.login("rep_a")
    answer = client.get("/customerview/list/?cf_years__from=many", follow_redirects=True)
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert "The filter was ignored" in page and "Give a whole number" in page
    assert sorted(_names(client, "cf_years__from=many")) == ["A large", "A medium", "A small"]
    for query in ("cf_budget=1", "cf_nope=1", "cf_size__contains=a", "cf_sort=cf_budget", "cf_sort=cf_needs"):
        answer = client.get(f"/customerview/list/?{query}")
        assert answer.status_code == 200, query
        assert "cannot be" in answer.get_data(as_text=True), query


def test_contact_and_lead_forms_carry_their_own_fields(app, client, auth, make_customer, make_custom_field):
    make_custom_field("contact", "hobby", "text", label_en="Hobby", label_zh="爱好")
    make_custom_field("lead", "budget", "decimal", label_en="Budget", label_zh="预算", places=2, in_list=True)
    make_custom_field("customer", "only_customers", "text", label_en="Customers only")
    customer = make_customer("rep_a", name="Parent")
    auth.login("rep_a")
    page = client.get("/contactview/add").get_data(as_text=True)
    assert 'name="cf_hobby"' in page and "cf_only_customers" not in page and "cf_budget" not in page
    answer = client.post("/contactview/add", data={"customer": str(customer), "name": "王伟", "phone": "13700001111",
                                                   "cf_hobby": "围棋"})
    assert answer.status_code == 302, answer.get_data(as_text=True)[-2000:]
    with app.app_context():
        assert db.session.scalar(select(Contact).where(Contact.name == "王伟")).custom == {"hobby": "围棋"}
    page = client.get("/leadview/add").get_data(as_text=True)
    assert 'name="cf_budget"' in page
    answer = client.post("/leadview/add", data={"company": "Lead Co", "contact_name": "Li", "phone": "13700002222",
                                                "cf_budget": "1,200.5"})
    assert answer.status_code == 302, answer.get_data(as_text=True)[-2000:]
    with app.app_context():
        lead = db.session.scalar(select(Lead).where(Lead.company == "Lead Co"))
        assert lead.custom == {"budget": "1200.50"}
        pk = lead.id
    bad = client.post(f"/leadview/edit/{pk}", data={"company": "Lead Co", "contact_name": "Li", "phone": "13700002222",
                                                     "edit_version": "1", "cf_budget": "1.234"})
    assert "At most 2 decimal places" in bad.get_data(as_text=True)
    listing = client.get("/leadview/list/").get_data(as_text=True)
    assert "Budget" in listing and "1200.50" in listing


def test_follow_up_form_kinds_round_trip_in_the_crm_zone(app, client, auth, make_customer, make_custom_field,
                                                        shanghai):
    make_custom_field("follow_up", "visit_at", "datetime", label_en="Visit at", label_zh="拜访时间")
    make_custom_field("follow_up", "signed", "boolean", label_en="Signed", label_zh="已签约")
    make_custom_field("follow_up", "helper", "user", label_en="Helper", label_zh="协助人")
    make_custom_field("follow_up", "due", "date", label_en="Due", label_zh="截止日期")
    make_custom_field("follow_up", "history", "long_text", label_en="History", label_zh="历史合作记录")
    customer = make_customer("rep_a", name="FU Co")
    with app.app_context():
        from app.models import CrmUser

        helper = db.session.scalar(select(CrmUser.id).where(CrmUser.username == "rep_b"))
    auth.login("manager")  # rep_b is in the manager's scope (East), as an owner would have to be
    page = client.get("/followupview/add").get_data(as_text=True)
    assert 'type="datetime-local"' in page and 'type="date"' in page and "<textarea" in page
    assert re.search(r'<select[^>]*name="cf_signed"', page) and 'value="yes"' in page
    answer = client.post("/followupview/add", data={
        "customer": str(customer), "followed_at": "2026-11-30 10:00", "method": "", "content": "Visited",
        "cf_visit_at": "2026-12-01T14:30", "cf_signed": "yes", "cf_helper": str(helper), "cf_due": "2026-12-15",
        "cf_history": "2019 首单\n2023 续约"})
    assert answer.status_code == 302, re.findall(r"alert[^>]*>(.{0,300})", answer.get_data(as_text=True), re.S)
    with app.app_context():
        from app.models import FollowUp

        item = db.session.scalar(select(FollowUp).where(FollowUp.content == "Visited"))
        assert item.custom == {"visit_at": "2026-12-01T06:30:00Z", "signed": True, "helper": helper,
                               "due": "2026-12-15", "history": "2019 首单\n2023 续约"}
        pk = item.id
    page = client.get(f"/followupview/edit/{pk}").get_data(as_text=True)
    assert 'value="2026-12-01T14:30"' in page
    assert 'data-related-url="/followupview/related/edit/owner"' in page  # users looked up as the owner is
    assert re.search(r'<option selected value="yes">|<option value="yes" selected', page)
    show = client.get(f"/followupview/show/{pk}").get_data(as_text=True)
    assert "2026-12-01 14:30" in show and "Yes" in show and "rep_b" in show


def test_page_links_keep_every_value_of_a_filter(app, client, auth, fields, make_customer):
    """Page 2 of a list filtered by two values keeps both (FAB's links kept the first only)."""
    for n in range(30):
        make_customer("rep_a", name=f"Paged {n:02d}", custom={"size": "large" if n % 2 else "medium"})
    auth.login("rep_a")
    page = client.get("/customerview/list/?cf_size=large&cf_size=medium").get_data(as_text=True)
    links = re.findall(r'href="([^"]*page_CustomerView=1[^"]*)"', page)
    assert links and all("cf_size=large" in link and "cf_size=medium" in link for link in links)
    second = client.get(links[0].replace("&amp;", "&")).get_data(as_text=True)
    assert len(set(re.findall(r"Paged \d\d", second))) == 5


def test_new_record_form_starts_from_the_defaults(app, client, auth, make_custom_field):
    make_custom_field("customer", "headcount", "integer", required=True, default=5, label_en="Headcount")
    auth.login("rep_a")
    page = client.get("/customerview/add").get_data(as_text=True)
    assert re.search(r'name="cf_headcount"[^>]*value="5"|value="5"[^>]*name="cf_headcount"', page)


@pytest.mark.parametrize("query", [
    "cf_size=large&cf_size=small", "cf_needs=高价值客户", "cf_years__from=5&cf_years__to=10",
    "cf_sort=-cf_years", "cf_size=large&cf_sort=cf_years", "cf_years__from=many", "cf_budget=1",
    "cf_sort=cf_budget", "cf_size__contains=a", "cf_sort=cf_needs", "cf_needs__to=1",
])
def test_the_list_and_the_api_read_the_same_arguments_the_same_way(client, auth, api, listed, query):
    """One reader: the records the screen lists are the ones the API answers (in the same order
    when sorted), and an argument the screen ignores with a message is a 400 in the API."""
    headers = api("rep_a")
    answer = client.get(f"/api/v1/customer/?{query}", headers=headers)
    auth.login("rep_a")
    page = client.get(f"/customerview/list/?{query}").get_data(as_text=True)
    refused = "cannot be" in page or "The filter was ignored" in page
    assert refused == (answer.status_code == 400), (query, answer.get_json())
    if not refused:
        api_names = [row["name"] for row in answer.get_json()["result"]]
        screen_names = _names(client, query)
        assert api_names == screen_names if "cf_sort" in query else sorted(api_names) == sorted(screen_names)
        assert "C large" not in api_names


def test_a_user_field_and_a_deactivated_field_still_filter_old_records(app, client, auth, listed,
                                                                       make_custom_field):
    """Old records keep a deactivated field's value and a user who has left: both still find them."""
    from app.models import CrmUser

    make_custom_field("customer", "helper", "user", label_en="Helper", label_zh="协助人")
    make_custom_field("customer", "region", "text", active=False)
    with app.app_context():
        helper = db.session.scalar(select(CrmUser.id).where(CrmUser.username == "rep_b"))
    _set_custom(app, listed["A small"], size="small", helper=helper, region="华东")
    auth.login("rep_a")
    assert _names(client, "cf_helper=rep_b") == ["A small"]
    assert _names(client, "cf_region=华东") == ["A small"]
    assert _names(client, "cf_helper=nobody") == []
