"""Personal-data erasure (issue 19) of a converted lead: the customer and primary contact its
conversion made hold the same person's name, phone and e-mail; the preview lists them as
copies and the erasure clears those values there too (and everywhere they were copied
from there), while the company and someone else's data on a linked customer stay."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer
from app.models.sales import Contact, Lead
from app.services import erasure, leads
from app.services.audit import ERASED, verify_chain
from tests.app.services.leads_support import lead_data  # noqa: F401
from tests.app.services.test_erasure import _all_text

NAME, PHONE, EMAIL = "转化测试人", "13700456789", "zhuanhua.person@example.cn"


@pytest.fixture(autouse=True)
def _leads(lead_data):  # noqa: F811
    yield


def _user(name):
    return appbuilder.sm.find_user(username=name)


def _converted(app, phone=PHONE, lead_values=None, **convert):
    """A qualified lead of the person (``lead_values`` on top), converted; returns the lead's id."""
    with app.app_context():
        values = {"company": "转化测试有限公司", "contact_name": NAME, "phone": phone, "email": EMAIL,
                  **(lead_values or {})}
        item = leads.save_lead(values, _user("rep_a"))
        db.session.commit()
        for status in ("contacted", "qualified"):
            leads.save_lead({"status": status}, _user("rep_a"), pk=item.id, version=item.version)
            db.session.commit()
        leads.convert_lead(item.id, _user("rep_a"), **convert)
        db.session.commit()
        pk = item.id
        db.session.remove()
    return pk


def test_erasing_a_converted_lead_erases_the_customer_and_contact_it_made(app):
    pk = _converted(app, phone="137 0045 6789")
    with app.app_context():
        lead = db.session.get(Lead, pk)
        customer, contact = lead.customer, lead.contact
        assert customer.contact_phone and contact is not None and contact.phone  # the copies exist
        seen = erasure.preview(_user("admin"), "lead", pk)
        assert set(seen.linked) == {customer.code, contact.code}  # "Copies erased too: …"
        erasure.erase(_user("admin"), "lead", pk, "本人要求删除")
        db.session.remove()
        lead = db.session.get(Lead, pk)
        customer, contact = db.session.get(Customer, lead.customer_id), db.session.get(Contact, lead.contact_id)
        assert (lead.contact_name, lead.phone, lead.email) == (ERASED, ERASED, None)
        assert (customer.contact_name, customer.contact_phone, customer.email) == (ERASED, ERASED, None)
        assert (contact.name, contact.phone, contact.email) == (ERASED, ERASED, None)
        assert customer.name == "转化测试有限公司" and lead.company == "转化测试有限公司"  # the company stays
        assert verify_chain(db.session).ok
        db.session.remove()
    after = _all_text(app)
    for value in (NAME, PHONE, EMAIL, "137 0045 6789"):
        assert value not in after, value


def test_a_linked_customer_keeps_someone_elses_data(app, make_customer):
    """Converted into an existing customer whose contact is another person: that person's
    name, phone and e-mail stay, and the customer is not offered as a copy."""
    existing = make_customer("rep_a", name="已有客户公司", contact_name="另一位联系人", contact_phone="13911112222",
                             email="other.one@example.cn")
    pk = _converted(app, existing_customer_id=existing)
    with app.app_context():
        assert erasure.preview(_user("admin"), "lead", pk).linked == []
        erasure.erase(_user("admin"), "lead", pk, "本人要求删除")
        db.session.remove()
        customer = db.session.get(Customer, existing)
        assert (customer.contact_name, customer.contact_phone, customer.email) == \
            ("另一位联系人", "13911112222", "other.one@example.cn")
        primary = db.session.scalars(select(Contact).where(Contact.customer_id == existing)).all()
        assert all(c.name != ERASED for c in primary)
        assert db.session.get(Lead, pk).phone == ERASED
        db.session.remove()
    after = _all_text(app)
    assert PHONE not in after and EMAIL not in after and "13911112222" in after


def test_only_the_fields_holding_the_leads_values_are_cleared(app):
    """The customer made from the lead got a new e-mail since: its phone and name (the lead's)
    go, the new e-mail (not the lead's) stays."""
    pk = _converted(app)
    with app.app_context():
        customer = db.session.get(Lead, pk).customer
        customer.email = "front.desk@example.cn"
        db.session.commit()
        erasure.erase(_user("admin"), "lead", pk, "本人要求删除")
        db.session.remove()
        customer = db.session.get(Customer, db.session.get(Lead, pk).customer_id)
        assert (customer.contact_name, customer.contact_phone, customer.email) == \
            (ERASED, ERASED, "front.desk@example.cn")
        db.session.remove()
    assert EMAIL not in _all_text(app)


def test_a_masked_custom_value_the_conversion_carried_goes_from_the_customer(app, make_custom_field):
    """An ID card number in a masked custom field of the lead (always erased) was carried to
    the customer by the conversion: it goes there too, and from every stored text."""
    number = "110101199003075555"
    for record_type in ("lead", "customer"):
        make_custom_field(record_type, "id_card", "text", masked=True, label_en="ID card", label_zh="身份证号")
    pk = _converted(app, lead_values={"cf_id_card": number})
    with app.app_context():
        customer_id = db.session.get(Lead, pk).customer_id
        assert db.session.get(Customer, customer_id).custom == {"id_card": number}
        erasure.erase(_user("admin"), "lead", pk, "本人要求删除")
        db.session.remove()
        assert not (db.session.get(Customer, customer_id).custom or {}).get("id_card")
        db.session.remove()
    assert number not in _all_text(app)


def test_a_company_ticked_as_a_persons_name_goes_from_the_customer_named_after_it(app):
    """The conversion names the customer after the lead's company; the admin says that
    company is a person's name (an individual, 个体户): the customer's name goes too. Not
    ticked, the customer keeps it (a company's name is not personal data)."""
    person = "张个体户王小明"
    kept = _converted(app, lead_values={"company": "普通贸易有限公司"}, phone="13700451111")
    pk = _converted(app, lead_values={"company": person})
    with app.app_context():
        erasure.erase(_user("admin"), "lead", kept, "本人要求删除")
        erasure.erase(_user("admin"), "lead", pk, "本人要求删除", ["company"])
        db.session.remove()
        assert db.session.get(Customer, db.session.get(Lead, kept).customer_id).name == "普通贸易有限公司"
        assert db.session.get(Customer, db.session.get(Lead, pk).customer_id).name == ERASED
        db.session.remove()
    assert person not in _all_text(app)
