"""Custom field values through the save use cases (issue 18): one rule per kind, whichever
entry point calls ``records.assign``."""

from __future__ import annotations

from typing import Any

import pytest

from app.extensions import db
from app.models.customers import Customer
from app.models.org import CrmUser
from app.services import custom_fields
from app.services.customers import save_customer
from app.services.errors import RuleViolation

SIZES = [("small", "Small", "小型"), ("large", "Large", "大型")]
NEEDS = [("price", "Price", "价格敏感", "#d9534f"), ("service", "Service", "重视服务", "#5cb85c")]


def _user(name: str) -> CrmUser:
    return db.session.query(CrmUser).filter_by(username=name).one()


@pytest.fixture
def fields(make_custom_field: Any) -> None:
    make_custom_field("customer", "size", "choice", label_en="Company size", label_zh="客户规模", choices=SIZES,
                      required=True)
    make_custom_field("customer", "years", "integer", label_en="Years together", label_zh="合作年限")
    make_custom_field("customer", "needs", "tags", label_en="Key needs", label_zh="关键需求标签", choices=NEEDS)


def test_values_are_cleaned_and_stored(app: Any, fields: None) -> None:
    with app.app_context():
        item = save_customer({"name": "华腾科技", "contact_phone": "13812345678", "cf_size": "大型",
                              "cf_years": "１２", "cf_needs": "价格敏感，Service"}, _user("rep_a"))
        db.session.commit()
        assert db.session.get(Customer, item.id).custom == {"size": "large", "years": 12,
                                                            "needs": ["price", "service"]}


def test_required_and_kind_rules_name_every_field(app: Any, fields: None) -> None:
    with app.app_context():
        with pytest.raises(RuleViolation) as caught:
            save_customer({"name": "华腾科技", "contact_phone": "13812345678", "cf_years": "1.5",
                           "cf_needs": "cheap", "cf_nothing": "x"}, _user("rep_a"))
        assert set(caught.value.errors) == {"cf_size", "cf_years", "cf_needs", "cf_nothing"}


def test_inactive_choice_kept_unchanged_but_not_offered(app: Any, make_custom_field: Any) -> None:
    make_custom_field("customer", "size", "choice", choices=[
        {"code": "old", "label_en": "Old", "label_zh": "旧", "active": False}, *[
            {"code": c, "label_en": en, "label_zh": zh} for c, en, zh in SIZES]])
    with app.app_context():
        item = save_customer({"name": "A", "contact_phone": "13812345678", "cf_size": "small"}, _user("rep_a"))
        item.custom = {"size": "old"}
        db.session.commit()
        saved = save_customer({"cf_size": "old", "note": "x"}, _user("rep_a"), pk=item.id, version=item.version)
        assert saved.custom == {"size": "old"}
        with pytest.raises(RuleViolation):
            save_customer({"name": "B", "contact_phone": "13812345679", "cf_size": "old"}, _user("rep_a"))


def test_text_helpers(app: Any, fields: None) -> None:
    with app.app_context():
        needs = custom_fields.field_named("customer", "cf_needs")
        assert custom_fields.as_text(needs, ["price", "service"], "zh") == "价格敏感, 重视服务"
        assert custom_fields.choice_labels(needs, ["price"], "en") == [("Price", "#d9534f")]


def test_odd_values_are_refused_with_a_message(app: Any, make_custom_field: Any) -> None:
    """Numbers beyond any column, booleans where no yes/no is asked: a message, never a 500."""
    make_custom_field("customer", "amount", "decimal", places=2)
    make_custom_field("customer", "signed", "date")
    make_custom_field("customer", "buddy", "user")
    with app.app_context():
        for name, raw in (("cf_amount", 1e308), ("cf_amount", "9" * 400), ("cf_signed", True), ("cf_buddy", True)):
            with pytest.raises(RuleViolation) as caught:
                save_customer({"name": "A", "contact_phone": "13812345678", name: raw}, _user("rep_a"))
            assert set(caught.value.errors) == {name}


def test_merge_keeps_values_only_a_merged_record_held(app: Any, fields: None, make_customer: Any) -> None:
    from app.services import merge

    survivor = make_customer("rep_a", name="Keep", custom={"size": "large", "years": 5})
    other = make_customer("rep_a", name="Go", custom={"size": "small", "needs": ["price"]})
    with app.app_context():
        kept, gone = db.session.get(Customer, survivor), db.session.get(Customer, other)
        merge.merge(kept, [gone], {}, _user("manager"))
        db.session.commit()
        assert db.session.get(Customer, survivor).custom == {"size": "large", "years": 5, "needs": ["price"]}


def test_a_converted_lead_carries_the_fields_both_types_have(app: Any, fields: None, make_custom_field: Any) -> None:
    from app.models.sales import Lead
    from app.services import leads

    make_custom_field("lead", "size", "choice", choices=SIZES)
    make_custom_field("lead", "years", "text")  # another kind than the customer's: stays behind
    with app.app_context():
        lead = Lead(company="Lead Co", contact_name="Li", phone="13955501234", owner_id=_user("rep_a").id,
                    status="qualified", custom={"size": "large", "years": "ten"})
        db.session.add(lead)
        db.session.commit()
        customer = leads._new_customer(lead, _user("rep_a"), allow_duplicate=True)
        assert customer.custom == {"size": "large"}
