"""Personal-data erasure (issue 19): no trace of the value anywhere, the record lives on,
the audit chain still verifies and tampering with a redacted entry is caught."""

from __future__ import annotations

import json

import pytest
from flask_appbuilder import Model
from sqlalchemy import select, text, update

from app.extensions import appbuilder, db
from app.models import AuditLog, Customer
from app.models.customers import FollowUp
from app.models.sales import Contact
from app.services import audit, customers, erasure
from app.services.audit import ERASED, verify_chain
from app.services.errors import RuleForbidden, RuleViolation

PHONE, PERSON, EMAIL, STREET = "13955501234", "隐私测试人", "yinsi.person@example.cn", "幸福路88号隐私小区"
SECRET_NOTE = "只说给销售听的隐私备注"


def _user(name):
    return appbuilder.sm.find_user(username=name)


@pytest.fixture
def person(app, make_customer, make_follow_up):
    """A customer with a person's data, edited once (the old phone in its history), one
    follow-up naming the person and a notification embedding the phone."""
    pk = make_customer("rep_a", name="隐私测试有限公司", contact_phone="13800009999", contact_name=PERSON,
                       email=EMAIL, address=STREET, note=SECRET_NOTE)
    with app.app_context():
        item = db.session.get(Customer, pk)
        item.contact_phone = PHONE
        db.session.commit()
        db.session.remove()
    make_follow_up(pk, "rep_a", content=f"和{PERSON}通话，电话{PHONE}")
    return pk


def _all_text(app) -> str:
    """Every text value of every table (the mapped ones and any other, e.g. search tables)."""
    with app.app_context():
        names = set(Model.metadata.tables)
        if db.engine.dialect.name == "sqlite":
            names |= set(db.session.scalars(text("SELECT name FROM sqlite_master WHERE type='table'")))
        chunks = []
        for name in sorted(names):
            try:
                rows = db.session.execute(text(f'SELECT * FROM "{name}"')).all()
            except Exception:  # noqa: BLE001 - a virtual table's shadow may not be readable
                db.session.rollback()
                continue
            chunks += [" ".join(str(v) for v in row) for row in rows]
        db.session.remove()
        return "\n".join(chunks)


def test_erase_leaves_no_trace_in_any_table(app, person):
    before = _all_text(app)
    assert PHONE in before and PERSON in before and EMAIL in before
    with app.app_context():
        summary = erasure.erase(_user("admin"), "customer", person, "本人要求删除", ["note", "follow_ups"])
        assert set(summary.fields[summary.code]) >= {"contact_name", "contact_phone", "email", "address", "note"}
        assert summary.redacted >= 2
        db.session.remove()
    after = _all_text(app)
    for value in (PHONE, "13800009999", PERSON, EMAIL, STREET, SECRET_NOTE, "139****1234"):
        assert value not in after, value


def test_sqlite_file_keeps_no_bytes_of_the_value(app, person):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("a file check for SQLite")
        erasure.erase(_user("admin"), "customer", person, "本人要求删除", ["note", "follow_ups"])
        path = db.engine.url.database
        db.session.remove()
    data = b""
    for suffix in ("", "-wal"):
        try:
            with open(path + suffix, "rb") as handle:
                data += handle.read()
        except FileNotFoundError:
            pass
    for value in (EMAIL, PHONE, PERSON, STREET, SECRET_NOTE):
        assert value.encode() not in data, value


def test_record_lives_on_and_saves_again(app, person):
    with app.app_context():
        code = db.session.get(Customer, person).code
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        db.session.remove()
        item = db.session.get(Customer, person)
        assert item.code == code and item.name == "隐私测试有限公司"
        assert (item.contact_name, item.contact_phone, item.email, item.address) == (ERASED, ERASED, None, None)
        primary = db.session.scalars(select(Contact).where(Contact.customer_id == person)).one()
        assert (primary.name, primary.phone) == (ERASED, ERASED)
        # a later edit of another field still passes the customer rules
        saved = customers.save_customer({"note": "继续合作"}, _user("admin"), pk=person, version=item.version)
        db.session.commit()
        assert saved.note == "继续合作" and saved.contact_phone == ERASED


def test_follow_ups_stay_unless_ticked(app, person):
    with app.app_context():
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        content = db.session.scalars(select(FollowUp.content).where(FollowUp.customer_id == person)).one()
        # not ticked: the text stays, but it holds the phone, so the copy of the person's
        # data in it (the phone and the name beside it) goes
        assert content == f"和{ERASED}通话，电话{ERASED}"
        erasure.erase(_user("admin"), "customer", person, "再次请求", ["follow_ups"])
        content = db.session.scalars(select(FollowUp.content).where(FollowUp.customer_id == person)).one()
        assert content == ERASED


def test_audit_keeps_the_fact_not_the_values_and_the_chain_verifies(app, person):
    with app.app_context():
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        entry = db.session.scalars(select(AuditLog).where(AuditLog.action == audit.ERASURE_ACTION)).one()
        detail = json.loads(entry.detail)
        assert entry.reason == "本人要求删除" and entry.user_name == "admin"
        assert "contact_phone" in json.dumps(detail) and PHONE not in entry.detail
        redacted = db.session.scalars(select(AuditLog).where(AuditLog.erased_in == entry.seq)).all()
        assert {e.seq for e in redacted} <= {item[0] for item in detail["redacted"]}
        assert all(PHONE not in (e.changes or "") for e in redacted)
        assert verify_chain(db.session).ok


def _tamper(values):
    entry = db.session.scalars(select(AuditLog).where(AuditLog.erased_in.is_not(None)).order_by(AuditLog.seq)).first()
    db.session.execute(update(AuditLog.__table__).where(AuditLog.__table__.c.seq == entry.seq).values(**values))
    return entry.seq


@pytest.mark.parametrize("change", [{"hash": "0" * 64}, {"prev_hash": "f" * 64}, {"user_name": "mallory"},
                                    {"action": "login"}, {"changes": '{"name": ["A", "B"]}'}])
def test_tampering_a_redacted_entry_is_detected(app, person, change):
    with app.app_context():
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        seq = _tamper(change)
        report = verify_chain(db.session)
        assert not report.ok and report.broken_seq in (seq, seq + 1)
        db.session.rollback()


def test_forged_erased_in_breaks_the_chain(app, person, make_customer):
    other = make_customer("rep_a", name="Other Ltd")
    with app.app_context():
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        erasure_seq = db.session.scalar(select(AuditLog.seq).where(AuditLog.action == audit.ERASURE_ACTION))
        target = db.session.scalars(select(AuditLog).where(AuditLog.object_id == str(other),
                                                           AuditLog.object_type == "Customer")).first()
        db.session.execute(update(AuditLog.__table__).where(AuditLog.__table__.c.seq == target.seq)
                           .values(erased_in=erasure_seq, changes='{"name": ["(erased)", null]}'))
        report = verify_chain(db.session)
        assert not report.ok and report.broken_seq == target.seq
        db.session.rollback()


def test_reason_is_required_and_only_admins_erase(app, person):
    with app.app_context():
        with pytest.raises(RuleViolation) as refused:
            erasure.erase(_user("admin"), "customer", person, "   ")
        assert "reason" in refused.value.errors
        for name in ("rep_a", "manager", "viewer"):
            with pytest.raises(RuleForbidden):
                erasure.erase(_user(name), "customer", person, "本人要求删除")
        with pytest.raises(RuleViolation):
            erasure.erase(_user("admin"), "customer", person, "本人要求删除", ["password"])
        assert db.session.get(Customer, person).contact_phone == PHONE


def test_contact_and_lead_erasure(app, person):
    from app.models.org import CrmUser
    from app.models.sales import Lead

    with app.app_context():
        owner = db.session.scalars(select(CrmUser).where(CrmUser.username == "rep_a")).one()
        lead = Lead(company="Lead Co", contact_name="线索联系人", phone="13955507777", email="lead.p@example.cn",
                    owner_id=owner.id)
        db.session.add(lead)
        db.session.commit()
        lead_id = lead.id
        erasure.erase(_user("admin"), "lead", lead_id, "本人要求删除")
        db.session.remove()
        lead = db.session.get(Lead, lead_id)
        assert (lead.contact_name, lead.phone, lead.email, lead.company) == (ERASED, ERASED, None, "Lead Co")
        contact = db.session.scalars(select(Contact).where(Contact.customer_id == person)).one()
        erasure.erase(_user("admin"), "contact", contact.id, "本人要求删除")
        db.session.remove()
        assert db.session.get(Customer, person).contact_phone == ERASED
    assert "13955507777" not in _all_text(app) and PHONE not in _all_text(app)


def test_preview_counts_copies(app, person):
    with app.app_context():
        seen = erasure.preview(_user("admin"), "customer", person)
        assert set(seen.fields) == {"contact_name", "contact_phone", "email", "address"}
        assert seen.audit_entries >= 3 and seen.follow_ups == 1 and seen.linked
        assert [key for key, _ in erasure.find(_user("admin"), PERSON)] == ["customer", "contact"]



def test_an_entry_inside_an_import_step_is_redacted_and_the_chain_verifies(app):
    from app.models.dictionaries import CustomerType
    from app.services.audit import audit_context

    with app.app_context():
        kind = db.session.scalars(select(CustomerType).where(CustomerType.code == "potential")).one()
        with audit_context(source="import", steps=True):
            rows = [Customer(name=f"步骤公司{n}", contact_name=f"步骤人{n}", contact_phone=f"1395550000{n}",
                             owner_id=_user("rep_a").id, type=kind) for n in range(2)]
            db.session.add_all(rows)
            db.session.commit()
        first, second = rows[0].id, rows[1].id
        step = db.session.scalars(select(AuditLog).where(AuditLog.source == "import")).all()
        assert len({e.hash for e in step}) == 1 and len(step) >= 2  # one chain step
        erasure.erase(_user("admin"), "customer", first, "本人要求删除")
        assert verify_chain(db.session).ok
        kept = db.session.scalars(select(AuditLog).where(AuditLog.object_id == str(second),
                                                         AuditLog.object_type == "Customer")).first()
        assert "步骤人1" in kept.changes and kept.erased_in is None
    assert "步骤人0" not in _all_text(app) and "13955500000" not in _all_text(app)


def test_a_second_erasure_redacts_an_entry_the_first_one_already_redacted(app, person, make_customer):
    """An entry about person A that also names B's phone: erasing A redacts A's values in it,
    erasing B later must redact B's phone in the same entry, and the chain still verifies."""
    other_phone = "13766604321"
    other = make_customer("rep_a", name="另一家公司", contact_phone=other_phone, contact_name="另一个人")
    with app.app_context():
        customer = db.session.get(Customer, person)
        audit.record("merge", customer, {"survivor": customer.code, "merged": ["C-X"],
                                         "note": PERSON, "phone": other_phone})
        db.session.commit()
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        shared = db.session.scalars(select(AuditLog).where(AuditLog.action == "merge")).one()
        assert shared.erased_in is not None and other_phone in shared.detail
        erasure.erase(_user("admin"), "customer", other, "本人要求删除")
        db.session.expire_all()
        shared = db.session.scalars(select(AuditLog).where(AuditLog.action == "merge")).one()
        assert other_phone not in shared.detail and PERSON not in shared.detail
        assert verify_chain(db.session).ok


def test_a_name_beside_the_erased_phone_in_an_import_job_is_erased_too(app, person):
    """An import job's preview row and error text hold the person's name next to the phone:
    the whole copy goes; a name alone (another person's, maybe) elsewhere stays."""
    from app.models import TransferJob
    from tests.conftest import user_id

    with app.app_context():
        job = TransferJob(kind="import", model="customer", user_id=user_id("admin"), filename="客户.xlsx",
                          preview={"rows": [[PERSON, PHONE, EMAIL]]},
                          error=f"第 2 行: 电话 {PHONE} 与 {PERSON} 重复")
        alone = TransferJob(kind="import", model="customer", user_id=user_id("admin"), filename="其他.xlsx",
                            error=f"第 3 行: {PERSON} 缺少行业")
        db.session.add_all([job, alone])
        db.session.commit()
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        db.session.expire_all()
        job, alone = db.session.get(TransferJob, job.id), db.session.get(TransferJob, alone.id)
        assert PERSON not in json.dumps(job.preview, ensure_ascii=False) and PHONE not in json.dumps(job.preview)
        assert PERSON not in job.error and PHONE not in job.error
        assert PERSON in alone.error


def test_the_ledger_outlives_a_restore_and_erases_again(app, person, tmp_path, monkeypatch):
    """An erasure is written to the ledger beside the backups (no value, no reason); when a
    restore brings the old row back, ``reapply_since`` erases it again."""
    from datetime import timedelta

    from app import clock
    from app.services.erasure import ledger

    monkeypatch.setitem(app.config, "CRM_BACKUP_DIR", str(tmp_path / "backups"))
    monkeypatch.setitem(app.config, "CRM_BACKUP_COPY_DIR", str(tmp_path / "copy"))
    with app.app_context():
        before = clock.utc_now() - timedelta(seconds=1)
        erasure.erase(_user("admin"), "customer", person, f"{PERSON} 本人要求删除", ["follow_ups"])
        for path in ledger.paths():
            written = path.read_text(encoding="utf-8")
            assert '"record_type": "customer"' in written and PHONE not in written and PERSON not in written
        assert [item["record_id"] for item in ledger.since(before)] == [person]
        assert ledger.since(clock.utc_now()) == []
        # an older backup restored: the person's data is back
        db.session.execute(update(Customer.__table__).where(Customer.__table__.c.id == person)
                           .values(contact_name=PERSON, contact_phone=PHONE))
        db.session.commit()
        assert ledger.reapply_since(before) == [db.session.get(Customer, person).code]
        db.session.expire_all()
        again = db.session.get(Customer, person)
        assert (again.contact_name, again.contact_phone) == (ERASED, ERASED)
        assert verify_chain(db.session).ok


def test_custom_fields_masked_always_and_text_when_ticked(app, person, make_custom_field):
    """A masked custom field (an ID card number) is personal data: always erased; a text
    custom field (WeChat) is offered as an extra and erased when ticked (issue 18)."""
    id_card, wechat, size = "110101199003077777", "wx_yinsi_person", "large"
    make_custom_field("customer", "id_card", "text", masked=True, label_en="ID card", label_zh="身份证号")
    make_custom_field("customer", "wechat", "text", label_en="WeChat", label_zh="微信")
    make_custom_field("customer", "size", "choice", choices=[("large", "Large", "大型")])
    with app.app_context():
        item = db.session.get(Customer, person)
        customers.save_customer({"cf_id_card": id_card, "cf_wechat": wechat, "cf_size": size}, _user("rep_a"),
                                pk=person, version=item.version)
        db.session.commit()
        preview = erasure.preview(_user("admin"), "customer", person)
        assert "cf_id_card" in preview.fields and "cf_wechat" in preview.extras
        erasure.erase(_user("admin"), "customer", person, "本人要求删除", ["cf_wechat"])
        db.session.remove()
        assert db.session.get(Customer, person).custom == {"size": size}  # a company's size is not personal
    after = _all_text(app)
    assert id_card not in after and wechat not in after
