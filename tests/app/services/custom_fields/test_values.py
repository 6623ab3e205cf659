"""Custom field values through the save use cases (issue 18): one rule per kind, whichever
entry point calls ``records.assign``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from app.extensions import db
from app.models.base import acting_user_id
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


# -- a user field: the owner's rule (active, in the saver's scope) ------------------------------

@contextmanager
def _acting(name: str | None) -> Iterator[None]:
    """Save as ``name`` (an import or sync job's acting user); None: a job without one."""
    token = acting_user_id.set(_user(name).id if name else None)
    try:
        yield
    finally:
        acting_user_id.reset(token)


def _save_buddy(buddy: Any, pk: int | None = None, version: int | None = None, saver: str = "rep_a") -> Customer:
    values = {"cf_buddy": buddy} if pk else {"name": "Buddy Co", "contact_phone": "13812345678", "cf_buddy": buddy}
    return save_customer(values, _user(saver), pk=pk, version=version)


def _refusal(buddy: Any, saver: str | None) -> str:
    with _acting(saver), pytest.raises(RuleViolation) as caught:
        _save_buddy(buddy, saver=saver or "admin")
    db.session.rollback()
    return caught.value.errors["cf_buddy"]


def test_a_user_field_takes_active_users_in_the_savers_scope(app: Any, make_custom_field: Any) -> None:
    make_custom_field("customer", "buddy", "user")
    with app.app_context():
        assert _refusal("rep_b", "rep_a") == "No active user rep_b in your data scope."  # Sales Rep: own scope
        assert _refusal("ghost", "rep_a") == _refusal("rep_b", "rep_a").replace("rep_b", "ghost")  # no oracle
        assert _refusal("rep_c", "manager") == "No active user rep_c in your data scope."  # South, not East
        with _acting("manager"):
            assert _save_buddy("rep_b", saver="manager").custom == {"buddy": _user("rep_b").id}
        with _acting("rep_a"):
            assert _save_buddy("rep_a").custom == {"buddy": _user("rep_a").id}
        db.session.rollback()
        assert _refusal("ghost", None) == "No user ghost."
        with _acting(None):  # a job without a saving user: any active user
            assert _save_buddy("rep_c").custom == {"buddy": _user("rep_c").id}
        db.session.rollback()


def test_a_deactivated_user_stays_on_old_records_but_is_not_picked_again(app: Any, make_custom_field: Any) -> None:
    make_custom_field("customer", "buddy", "user")
    make_custom_field("customer", "note", "text")
    with app.app_context():
        with _acting("manager"):
            item = _save_buddy("rep_b", saver="manager")
        db.session.commit()
        pk, version = item.id, item.version
        _user("rep_b").active = False
        db.session.commit()
        try:
            with _acting("manager"):
                kept = save_customer({"cf_buddy": "rep_b", "cf_note": "still"}, _user("manager"), pk=pk,
                                     version=version)
                assert kept.custom == {"buddy": _user("rep_b").id, "note": "still"}
            db.session.rollback()
            assert _refusal("rep_b", "manager") == "rep_b is deactivated; pick an active user."
            assert _refusal("rep_b", None) == "rep_b is deactivated; pick an active user."
        finally:
            _user("rep_b").active = True
            db.session.commit()


def test_a_value_stored_before_the_field_was_tightened_saves_unchanged(app: Any, make_custom_field: Any) -> None:
    make_custom_field("customer", "amount", "decimal", places=2, label_en="Budget", label_zh="预算")
    make_custom_field("customer", "code", "text", max_length=20)
    with app.app_context():
        item = save_customer({"name": "A", "contact_phone": "13812345678", "cf_amount": "12.50",
                              "cf_code": "ABCDEFGHIJ"}, _user("rep_a"))
        db.session.commit()
        from app.models.custom_fields import CustomField

        db.session.query(CustomField).filter_by(key="amount").update({"places": 0})
        db.session.query(CustomField).filter_by(key="code").update({"max_length": 5})
        db.session.commit()
        custom_fields.refresh(force=True)
        # the form and the API send back what they showed: saved as it is
        saved = save_customer({"cf_amount": "12.50", "cf_code": "ABCDEFGHIJ", "note": "x"}, _user("rep_a"),
                              pk=item.id, version=item.version)
        assert saved.custom == {"amount": "12.50", "code": "ABCDEFGHIJ"}
        db.session.commit()
        with pytest.raises(RuleViolation) as caught:  # a changed value follows the field as it is now
            save_customer({"cf_amount": "12.75", "cf_code": "ABCDEFGHIK"}, _user("rep_a"), pk=item.id,
                          version=saved.version)
        assert set(caught.value.errors) == {"cf_amount", "cf_code"}


def test_dates_and_numbers_typed_in_full_width_read_as_digits(app: Any, make_custom_field: Any) -> None:
    make_custom_field("customer", "due", "date")
    make_custom_field("customer", "amount", "decimal", places=2)
    with app.app_context():
        item = save_customer({"name": "A", "contact_phone": "13812345678", "cf_due": "２０２６－０１－０２",
                              "cf_amount": "-0"}, _user("rep_a"))
        assert item.custom == {"due": "2026-01-02", "amount": "0.00"}
