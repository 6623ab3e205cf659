"""Contacts (issue 13): the primary contact mirrors the customer's 联系人姓名/联系方式 both
ways from every writer, one primary per customer, scope through the customer, the
customers' reveal rule, merge moves contacts, and duplicates seen through any contact."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import delete, select

from app.extensions import appbuilder, db
from app.models import AuditLog, Customer, DismissedPair
from app.models.sales import Contact
from app.security import step_up
from app.services import contacts, customers, dedup, merge
from app.services.errors import NotFound, RuleForbidden, RuleViolation
from tests.conftest import user_id


@pytest.fixture(autouse=True)
def forget_contacts(app: Any) -> Any:
    """Test data is removed with bulk deletes, which SQLite does not cascade (runs before
    the shared clean-up, which deletes the customers)."""
    yield
    with app.app_context():
        db.session.rollback()
        db.session.execute(delete(DismissedPair))
        db.session.execute(delete(Contact))
        db.session.commit()
        db.session.remove()


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def of(customer_id: int) -> list[Contact]:
    return list(db.session.scalars(select(Contact).where(Contact.customer_id == customer_id).order_by(Contact.id)))


def primary(customer_id: int) -> Contact:
    (found,) = [c for c in of(customer_id) if c.is_primary]
    return found


def add(customer_id: int, owner: str = "rep_a", **values: Any) -> Contact:
    values = {"customer": db.session.get(Customer, customer_id), "name": "Wang Wu", **values}
    item = contacts.save_contact(values, user(owner))
    db.session.commit()
    return item


# --- the mirror, customer -> primary contact ------------------------------------------------

def test_save_customer_creates_and_updates_its_primary_contact(ctx: Any) -> None:
    item = customers.save_customer({"name": "Acme", "contact_name": "Zhou", "contact_phone": "138 1234 5678"},
                                   user("rep_a"))
    db.session.commit()
    (only,) = of(item.id)
    assert (only.name, only.phone, only.is_primary) == ("Zhou", "13812345678", True)
    assert only.code.startswith("P")
    customers.save_customer({"contact_name": "Li", "contact_phone": "010-12345678"}, user("rep_a"), pk=item.id,
                            version=item.version)
    db.session.commit()
    (only,) = of(item.id)
    assert (only.name, only.phone) == ("Li", "010-12345678")


def test_a_customer_without_contact_name_gets_a_primary_contact_named_after_it(ctx: Any, make_customer: Any) -> None:
    """Any writer (here a plain ORM insert, as scripts and the sync do): the flush hook."""
    pk = make_customer("rep_a", name="Nameless Trading", contact_phone="13900000009")
    assert [(c.name, c.phone, c.is_primary) for c in of(pk)] == [("Nameless Trading", "13900000009", True)]


def test_bulk_inserted_customers_get_primary_contacts(ctx: Any) -> None:
    rows = [{"name": f"Bulk {n}", "contact_name": f"Person {n}" if n % 2 else None,
             "contact_phone": f"1380000000{n}", "owner_id": user_id("rep_a"), "type_id": None}
            for n in range(4)]
    customers.insert_customers(rows)
    db.session.commit()
    found = {c.customer_id: (c.name, c.phone, c.is_primary) for c in db.session.scalars(select(Contact))}
    assert found == {row["id"]: (row["contact_name"] or row["name"], row["contact_phone"], True) for row in rows}
    assert len({c.code for c in db.session.scalars(select(Contact))}) == 4


# --- the mirror, primary contact -> customer ------------------------------------------------

def test_saving_the_primary_contact_updates_the_customer(ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", contact_name="Zhou")
    contact = primary(pk)
    contacts.save_contact({"name": "Zhou Jie", "phone": "+86 139 0000 0001"}, user("rep_a"), pk=contact.id,
                          version=contact.version)
    db.session.commit()
    customer = db.session.get(Customer, pk)
    assert (customer.contact_name, customer.contact_phone) == ("Zhou Jie", "13900000001")


def test_a_bad_primary_phone_gets_the_customer_rules_message(ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    contact = primary(pk)
    expected = customers.check_customer({"name": "x", "contact_phone": "12345"})["contact_phone"]
    with pytest.raises(RuleViolation) as refused:
        contacts.save_contact({"phone": "12345"}, user("rep_a"), pk=contact.id, version=contact.version)
    assert refused.value.errors == {"phone": expected}
    db.session.rollback()
    with pytest.raises(RuleViolation) as refused:  # the customer's phone is required: so is the primary's
        contacts.save_contact({"phone": ""}, user("rep_a"), pk=contact.id, version=contact.version)
    assert refused.value.errors == {"phone": customers.check_customer({"name": "x"})["contact_phone"]}
    db.session.rollback()
    assert db.session.get(Customer, pk).contact_phone == "13812345678"


def test_editing_only_the_title_of_a_primary_named_after_the_customer_leaves_the_customer(
        ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Nameless Trading")
    contact = primary(pk)
    contacts.save_contact({"title": "Boss"}, user("rep_a"), pk=contact.id, version=contact.version)
    db.session.commit()
    assert db.session.get(Customer, pk).contact_name is None


# --- one primary per customer ------------------------------------------------------------------

def test_making_a_contact_primary_moves_the_flag_and_the_customer_follows(ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", contact_name="Zhou")
    second = add(pk, name="Qian", phone="13700000002", title="CFO")
    assert not second.is_primary and primary(pk).name == "Zhou"
    contacts.set_primary(second.id, user("rep_a"), version=second.version)
    db.session.commit()
    assert [(c.name, c.is_primary) for c in of(pk)] == [("Zhou", False), ("Qian", True)]
    customer = db.session.get(Customer, pk)
    assert (customer.contact_name, customer.contact_phone) == ("Qian", "13700000002")
    third = add(pk, name="Sun", phone="13700000003", is_primary="是")  # a new contact can take it too
    assert [c.name for c in of(pk) if c.is_primary] == ["Sun"] and third.is_primary


def test_the_primary_contact_cannot_give_up_the_flag_by_itself(ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    contact = primary(pk)
    with pytest.raises(RuleViolation) as refused:
        contacts.save_contact({"is_primary": False}, user("rep_a"), pk=contact.id, version=contact.version)
    assert set(refused.value.errors) == {"is_primary"}


def test_a_primary_contact_without_a_phone_is_refused(ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    with pytest.raises(RuleViolation) as refused:
        add(pk, name="No Phone", is_primary=True)
    assert set(refused.value.errors) == {"phone"}


# --- fields -------------------------------------------------------------------------------------

def test_fields_are_normalised_and_checked(ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    item = add(pk, name="  Wang  Wu ", phone="0755 1234 5678", email="WANG@Example.COM", birthday="1990年5月1日",
               is_decision_maker="是")
    assert (item.name, item.phone, item.email, item.birthday, item.is_decision_maker) == (
        "Wang Wu", "0755-12345678", "wang@example.com", date(1990, 5, 1), True)
    with pytest.raises(RuleViolation) as refused:
        add(pk, name="", phone="123", email="nope", birthday="soon", is_decision_maker="maybe")
    assert set(refused.value.errors) == {"name", "phone", "email", "birthday", "is_decision_maker"}


def test_a_contact_stays_with_its_customer(ctx: Any, make_customer: Any) -> None:
    first, other = make_customer("rep_a"), make_customer("rep_a")
    item = add(first)
    with pytest.raises(RuleViolation) as refused:
        contacts.save_contact({"customer": db.session.get(Customer, other)}, user("rep_a"), pk=item.id,
                              version=item.version)
    assert set(refused.value.errors) == {"customer"}


# --- scope: a contact belongs to its customer's owner -----------------------------------------

def test_a_colleague_cannot_read_change_delete_or_reveal_a_contact(ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    item = add(pk, phone="13700000002")
    rep_b = user("rep_b")
    with pytest.raises(NotFound):
        contacts.save_contact({"name": "Taken"}, rep_b, pk=item.id, version=item.version)
    with pytest.raises(NotFound):
        contacts.delete_contact(item.id, rep_b)
    with pytest.raises(NotFound):
        contacts.reveal_contact_phone(item.id, rep_b)
    with pytest.raises(RuleViolation) as refused:  # nor add one to rep_a's customer
        add(pk, owner="rep_b", name="Spy")
    assert refused.value.errors == {"customer": "Customer not found."}
    db.session.rollback()
    assert [c.name for c in of(pk)] == ["Customer of rep_a", "Wang Wu"]
    assert contacts.save_contact({"title": "Sales"}, user("manager"), pk=item.id, version=item.version).title \
        == "Sales"  # rep_a's manager may


def test_no_contact_for_an_archived_customer(ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    customers.archive(db.session.get(Customer, pk), may_delete_won=False)
    db.session.commit()
    with pytest.raises(RuleViolation) as refused:
        add(pk)
    assert "archived" in refused.value.errors["customer"]


# --- delete ---------------------------------------------------------------------------------------

def test_delete_a_secondary_contact_but_never_the_primary(ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    lone = primary(pk)
    with pytest.raises(RuleViolation) as refused:  # the last one: the customer keeps its phone
        contacts.delete_contact(lone.id, user("rep_a"))
    assert refused.value.status == 409
    second = add(pk, phone="13700000002")
    with pytest.raises(RuleViolation):  # others exist: make one of them primary first
        contacts.delete_contact(lone.id, user("rep_a"))
    contacts.delete_contact(second.id, user("rep_a"))
    db.session.commit()
    assert [c.id for c in of(pk)] == [lone.id]


# --- reveal: the customers' rule ----------------------------------------------------------------

def test_reveal_needs_the_permission_a_step_up_and_is_audited(app: Any, make_customer: Any) -> None:
    with app.app_context():
        pk = make_customer("rep_a")
        item = add(pk, phone="13700000002")
        with app.test_request_context():
            with pytest.raises(RuleForbidden):
                contacts.reveal_contact_phone(item.id, user("viewer"))
            with pytest.raises(step_up.StepUpRequired):
                contacts.reveal_contact_phone(item.id, user("rep_a"))
        assert contacts.reveal_contact_phone(item.id, user("rep_a"), via="api") == "13700000002"  # no request: no code
        db.session.commit()
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "reveal"))
        assert (entry.object_type, entry.object_id) == ("Contact", str(item.id)) and '"via": "api"' in entry.detail
        db.session.remove()


# --- merge and duplicates -----------------------------------------------------------------------

def test_merge_moves_contacts_to_the_survivor_without_their_primary_flag(ctx: Any, make_customer: Any) -> None:
    keep = make_customer("rep_a", name="Acme", contact_name="Zhou", contact_phone="13800000001")
    gone = make_customer("rep_a", name="ACME", contact_name="Li", contact_phone="13800000002")
    extra = add(gone, name="Qian", phone="13800000003")
    merge.merge(db.session.get(Customer, keep), [db.session.get(Customer, gone)], {"contact_phone": gone},
                user("manager"))
    db.session.commit()
    assert of(gone) == []
    moved = {c.name: (c.phone, c.is_primary) for c in of(keep)}
    assert moved == {"Zhou": ("13800000002", True), "Li": ("13800000002", False), "Qian": ("13800000003", False)}
    assert db.session.get(Contact, extra.id).customer_id == keep


def test_a_secondary_contacts_phone_makes_a_duplicate(ctx: Any, make_customer: Any) -> None:
    acme = make_customer("rep_a", name="Acme Ltd", contact_name="Zhou", contact_phone="13800000001")
    add(acme, name="Qian", phone="13700000002")
    newcomer = make_customer("rep_b", name="Totally Different", contact_name="Qian", contact_phone="13700000002")
    clusters = {tuple(c.ids): c.rules for c in dedup.scan(None)}
    assert clusters == {tuple(sorted((acme, newcomer))): {dedup.PHONE}}
    # the manual's rule on save: same name + any contact + that contact's phone
    found = dedup.matches_for_entry("ACME ltd", "qian", "13700000002", None)
    assert [(c.id, rule) for c, rule in found] == [(acme, dedup.NAME_CONTACT)]
    assert dedup.matches_for_entry("Acme Ltd", "Someone", "13700000002", None) == []
    with pytest.raises(dedup.DuplicateFound):
        customers.save_customer({"name": "Acme Ltd", "contact_name": "Qian", "contact_phone": "137 0000 0002"},
                                user("rep_a"))


def test_the_scan_sees_contact_phones_only_in_scope(ctx: Any, make_customer: Any) -> None:
    a = make_customer("rep_a", name="Alpha", contact_phone="13800000001")
    add(a, name="Qian", phone="13700000002")
    make_customer("rep_c", name="Gamma", contact_phone="13700000002")
    assert dedup.scan({user_id("rep_a")}) == []
    assert len(dedup.scan(None)) == 1


def test_a_deleted_contact_leaves_its_leads_with_their_own_copy(ctx: Any, make_customer: Any) -> None:
    """The lead's link goes (the foreign key's SET NULL, on SQLite too); its name and phone stay."""
    from app.models.sales import Lead

    pk = make_customer("rep_a")
    item = add(pk, name="Lead Source Person", phone="13700000009")
    lead = Lead(company="From a contact", contact_name="Lead Source Person", phone="13700000009",
                owner_id=user_id("rep_a"), contact_id=item.id)
    db.session.add(lead)
    db.session.commit()
    contacts.delete_contact(item.id, user("rep_a"))
    db.session.commit()
    db.session.expire_all()
    assert (lead.contact_id, lead.contact_name) == (None, "Lead Source Person")
