"""Personal-data erasure (issue 19): a phone written with ANY separators between ANY of its
digits — the last four split too, slashes, dots, underscores, full-width forms, invisible
characters, a +86 / 0086 prefix — is found and erased in every table and in audit entries
about other rows (the SQL candidate search and the Python match); a different number
that merely contains the digits stays."""

from __future__ import annotations

import json

import pytest

from app.extensions import appbuilder, db
from app.models import AuditLog, Customer, TransferJob
from app.services import audit, erasure
from app.services.audit import verify_chain
from app.services.erasure.matching import Matcher
from tests.app.services.test_erasure import _all_text
from tests.conftest import user_id

PHONE = "13800131234"
WIDE = "".join(chr(ord(c) + 0xFEE0) for c in PHONE)
#: The phone as people and systems write it (each has its last four digits split or
#: separated in a way a fixed "1234" substring misses, or characters not searched before).
SPLIT = [
    "138 0013 12 34", "1380013-12-34", "138-0013-1-234", "138/0013/1234", "138.0013.12.34",
    "138_0013_1234", "138\u200b0013\u200b12\u200b34", "138\u00ad0013\u00ad1234", "138\u20600013 1 2 3 4",
    "１３８ ００１３ １２ ３４", "１３８／００１３／１２３４", "138　0013　12　34", "１38-0０13-1２-34",
    "+86 138 0013 12 34", "0086-1380013-12-34", "+８６ １３８ ００１３ １２３４", "００８６ 138 0013 12 34",
    "(138) 0013-12 34", "138－0013－12－34", "138\u2014 0013 \u2014 12\u00b734",
]
#: Longer numbers holding the same digits: another person's data, kept.
OTHERS = ["113800131234", "138001312345", "1380013123 45", "138\u200b0013123\u200b45", "5\u200b13800131234",
          "13800131235"]
#: Those of them without the phone's digits in one run (kept in the tables below).
KEPT = ["13800131235", "1380013123 45", "138\u200b0013123\u200b45"]


def _user(name):
    return appbuilder.sm.find_user(username=name)


@pytest.mark.parametrize("text", SPLIT)
def test_the_matcher_finds_the_phone_written_any_way(text):
    matcher = Matcher([PHONE])
    assert matcher.distinct(text), text
    assert matcher.replace(f"电话：{text}。") == f"电话：{erasure.ERASED}。"


@pytest.mark.parametrize("text", OTHERS)
def test_a_longer_number_holding_the_digits_is_not_the_phone(text):
    assert not Matcher([PHONE]).distinct(f"编号 {text} 号"), text


def test_two_phones_beside_each_other_only_the_erased_one_goes():
    matcher = Matcher(["138 0013 12 34"])  # the stored value itself split
    assert matcher.replace("13800131234/13900001111、1380013-1234") == \
        f"{erasure.ERASED}/13900001111、{erasure.ERASED}"
    assert Matcher(["010-1234 5678"]).replace("座机 010 12345678-801") == f"座机 {erasure.ERASED}-801"


def test_every_split_form_is_erased_in_every_table_and_in_other_audit_entries(app, make_customer):
    """The person's phone in a text column, a JSON column and an audit entry about another
    record, written each of the ways above: the SQL search must pick the rows (the Python
    match alone never sees them) and nothing is left; the other numbers stay."""
    person = make_customer("rep_a", name="分隔号码测试公司", contact_name="分隔测试人", contact_phone=PHONE)
    bystander = make_customer("rep_a", name="无关公司", contact_name="无关的人", contact_phone="13900001111")
    with app.app_context():
        jobs = []
        for n, form in enumerate(SPLIT):
            job = TransferJob(kind="import", model="customer", user_id=user_id("admin"), filename=f"x{n}.xlsx",
                              error=f"第{n}行：{form}；另 {KEPT[n % len(KEPT)]}",
                              preview={"rows": [["某人", form]]})
            db.session.add(job)
            jobs.append(job)
        audit.record("note_about", db.session.get(Customer, bystander),
                     {"text": "回电 " + " / ".join(SPLIT)})
        db.session.commit()
        job_ids = [job.id for job in jobs]
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        db.session.expire_all()
        for n, pk in enumerate(job_ids):
            job = db.session.get(TransferJob, pk)
            assert SPLIT[n] not in job.error and KEPT[n % len(KEPT)] in job.error, job.error
            assert SPLIT[n] not in json.dumps(job.preview, ensure_ascii=False)
            assert json.dumps(SPLIT[n])[1:-1] not in json.dumps(job.preview)
        entry = db.session.query(AuditLog).filter(AuditLog.action == "note_about").one()
        assert all(form not in entry.detail for form in SPLIT) and entry.erased_in is not None
        assert verify_chain(db.session).ok
    after = _all_text(app)
    for form in (PHONE, WIDE, *SPLIT):
        assert form not in after, form
    assert "13900001111" in after and all(kept in after for kept in KEPT)


def test_a_landline_stored_with_its_extension_is_found_without_it():
    matcher = Matcher(["0755-12345678-801"])
    for text in ("她的座机 0755-12345678，分机找前台", "座机 0755 1234 5678 转 801", "+86 755 1234 5678",
                 "0755-12345678-801"):
        assert matcher.distinct(text), text
    assert Matcher(["0755-12345678 转 801"]).distinct("0755-12345678")


def test_a_landline_without_its_trunk_zero_is_another_number_unless_after_the_country_code():
    """``010-12345678``: a tracking number ``1012345678`` or an amount ``10.12345678`` is
    someone else's; ``+86 10 1234 5678`` is this landline."""
    matcher = Matcher(["010-12345678"])
    for text in ("快递单号 1012345678 已寄出", "金额 10.12345678 万"):
        assert not matcher.distinct(text), text
    for text in ("010-12345678", "(010)12345678", "+86 10 1234 5678", "+86 (0)10 12345678", "０１０－１２３４５６７８"):
        assert matcher.distinct(text), text


def test_another_customers_number_that_shares_the_digits_stays(app, make_customer, make_follow_up):
    from sqlalchemy import select

    from app.models.customers import FollowUp

    pk = make_customer("rep_a", name="座机公司", contact_name="北京座机人", contact_phone="010-12345678")
    other = make_customer("rep_b", name="别的公司", contact_name="别人", contact_phone="13900001111")
    text = "快递单号 1012345678 已寄出，金额 10.12345678 万"
    make_follow_up(other, "rep_b", content=text)
    make_follow_up(pk, "rep_a", content="座机 0101 2345 678 打不通")  # the same digits, split oddly: the person's
    with app.app_context():
        erasure.erase(_user("admin"), "customer", pk, "本人要求删除")
        db.session.remove()
        assert db.session.scalars(select(FollowUp.content).where(FollowUp.customer_id == other)).all() == [text]
        assert db.session.scalars(select(FollowUp.content).where(FollowUp.customer_id == pk)).all() == \
            ["座机 (erased) 打不通"]
