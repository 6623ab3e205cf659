"""Customer rules every writer goes through: cleaning, optimistic locking, archiving."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, CrmUser, Customer
from app.services.customers import archive, clean_customer
from app.services.errors import RuleForbidden, RuleViolation, StaleRecord
from app.services.records import check_version
from app.services.validation import credit_code_check_char
from tests.conftest import user_id

FIRST17 = "91350100M000100Y4"
CREDIT_CODE = FIRST17 + credit_code_check_char(FIRST17)


def user(username: str) -> CrmUser:
    return db.session.get(CrmUser, user_id(username))


def test_clean_customer_normalises_fields_and_defaults_the_owner(ctx):
    rep = user("rep_a")
    item = Customer(name="  Acme Ltd ", contact_phone="+86 138-1234-5678",
                    credit_code=CREDIT_CODE.lower(), email=" Buyer@Acme.COM")
    clean_customer(item, rep)
    assert (item.name, item.contact_phone, item.credit_code, item.email) == (
        "Acme Ltd", "13812345678", CREDIT_CODE, "buyer@acme.com")
    assert item.owner is rep


def test_clean_customer_reports_every_bad_field_at_once(ctx):
    item = Customer(name=" ", contact_phone="12345", credit_code="91350100M000100Y", email="nope")
    with pytest.raises(RuleViolation) as caught:
        clean_customer(item, user("rep_a"))
    assert set(caught.value.errors) == {"name", "contact_phone", "credit_code", "email"}
    assert caught.value.status == 422


def test_masked_phone_sent_back_keeps_the_stored_number(ctx, make_customer):
    rep = user("rep_a")  # query before editing: a query autoflushes pending changes
    customer = db.session.get(Customer, make_customer("rep_a", contact_phone="13812345678"))
    customer.contact_phone = "138****5678"
    clean_customer(customer, rep)
    assert customer.contact_phone == "13812345678"


def test_mask_that_does_not_match_the_stored_number_is_rejected(ctx, make_customer):
    rep = user("rep_a")  # query before editing: a query autoflushes pending changes
    customer = db.session.get(Customer, make_customer("rep_a", contact_phone="13812345678"))
    customer.contact_phone = "139****5678"
    with pytest.raises(RuleViolation) as caught:
        clean_customer(customer, rep)
    assert set(caught.value.errors) == {"contact_phone"}


def test_customer_with_an_extension_can_be_saved_again(ctx):
    """Editing another field re-validates the stored phone (API PUT, import update)."""
    rep = user("rep_a")
    customer = Customer(name="Acme Ltd", contact_phone="021-87654321转801")
    clean_customer(customer, rep)
    db.session.add(customer)
    db.session.commit()
    stored = customer.contact_phone
    customer.name = "Renamed Ltd"
    clean_customer(customer, rep)
    assert customer.contact_phone == stored == "021-87654321-801"


def test_old_version_is_refused_as_stale(ctx, make_customer):
    customer = db.session.get(Customer, make_customer("rep_a"))
    customer.name = "Second version"
    db.session.commit()
    assert customer.version == 2
    check_version(customer, "2")
    with pytest.raises(StaleRecord, match="Someone else changed this record") as caught:
        check_version(customer, 1)
    assert caught.value.status == 409


@pytest.mark.parametrize("submitted", [None, "", "two"])
def test_missing_or_garbled_version_is_invalid_not_stale(ctx, make_customer, submitted):
    customer = db.session.get(Customer, make_customer("rep_a"))
    with pytest.raises(RuleViolation) as caught:
        check_version(customer, submitted)
    assert not isinstance(caught.value, StaleRecord)
    assert set(caught.value.errors) == {"version"}


def test_won_customer_is_archived_only_with_permission(ctx, make_customer):
    customer = db.session.get(Customer, make_customer("rep_a", type_code="won"))
    with pytest.raises(RuleForbidden, match="won customer"):
        archive(customer, may_delete_won=False)
    assert customer.archived_at is None
    archive(customer, may_delete_won=True)
    db.session.commit()
    assert db.session.get(Customer, customer.id).archived_at is not None


def test_archiving_stamps_the_time_and_writes_an_audit_entry(ctx, make_customer):
    pk = make_customer("rep_a")
    archive(db.session.get(Customer, pk), may_delete_won=False)
    db.session.commit()
    db.session.remove()
    assert db.session.get(Customer, pk).archived_at is not None
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.object_type == "Customer",
                                                               AuditLog.object_id == str(pk))
                                 .order_by(AuditLog.seq)).all()
    assert actions == ["create", "archive"]


def test_archived_customer_cannot_be_archived_again(ctx, make_customer):
    customer = db.session.get(Customer, make_customer("rep_a"))
    archive(customer, may_delete_won=False)
    with pytest.raises(RuleForbidden, match="already archived"):
        archive(customer, may_delete_won=True)
