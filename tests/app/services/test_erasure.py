"""Personal-data erasure (issue 19): no trace of the value anywhere, the record lives on,
the audit chain still verifies and tampering with a redacted entry is caught."""

from __future__ import annotations

import io
import json
import zipfile

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
        run = erasure.erase(_user("admin"), "customer", person, "本人要求删除", ["note", "follow_ups"])
        summary = erasure.summary_of(run)  # the queue runs inline in tests: done on return
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


# --- the erasure runs on the task queue (the request only queues it) --------------------


@pytest.fixture
def queue(monkeypatch):
    """The task queue held back: ``background.submit`` records the jobs; ``queue.run()``
    then runs them as a worker would (each in a fresh session)."""
    from app.services import background

    class Held(list):
        def run(self):
            while self:
                func, args = self.pop(0)
                db.session.remove()
                func(*args)
                db.session.remove()

    held = Held()
    monkeypatch.setattr(background, "submit", lambda func, *args: held.append((func, args)))
    return held


def _ledger_lines(backup_dirs):
    path = backup_dirs["backups"] / erasure.ledger.LEDGER_NAME
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_the_request_only_queues_and_the_worker_erases(app, person, queue, backup_dirs):
    from app.models.erasure import ErasureRun

    with app.app_context():
        run = erasure.erase(_user("admin"), "customer", person, "本人要求删除", ["note"])
        run_id = run.id
        assert run.status == "queued" and erasure.summary_of(run) is None and len(queue) == 1
        db.session.remove()
        # nothing swept yet: the request did the bounded part only
        assert db.session.get(Customer, person).contact_phone == PHONE
        assert not _ledger_lines(backup_dirs)
        queue.run()
        run = db.session.get(ErasureRun, run_id)
        assert run.status == "done" and run.finished_at is not None and run.reason is None
        summary = erasure.summary_of(run)
        assert "contact_phone" in summary.fields[summary.code] and summary.redacted >= 2
        assert db.session.get(Customer, person).contact_phone == ERASED
        assert verify_chain(db.session).ok
        assert db.session.scalar(select(func_count()).where(AuditLog.action == audit.ERASURE_ACTION)) == 1
        db.session.remove()
    assert len(_ledger_lines(backup_dirs)) == 1  # exactly once
    text_now = _all_text(app)
    for value in (PHONE, PERSON, EMAIL, SECRET_NOTE):
        assert value not in text_now, value


def func_count():
    from sqlalchemy import func

    return func.count(AuditLog.id)


def test_a_second_erasure_of_the_same_record_is_refused_while_one_is_under_way(app, person, queue):
    with app.app_context():
        first = erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        with pytest.raises(RuleViolation) as refused:
            erasure.erase(_user("admin"), "customer", person, "又一次")
        assert "already under way" in refused.value.errors["record"] and f"#{first.id}" in refused.value.errors["record"]
        assert len(queue) == 1
        db.session.remove()
        queue.run()
        # once done, a new erasure (e.g. of the follow-ups) may be asked
        erasure.erase(_user("admin"), "customer", person, "再次请求", ["follow_ups"])
        queue.run()
        content = db.session.scalars(select(FollowUp.content).where(FollowUp.customer_id == person)).one()
        assert content == ERASED


def test_the_database_refuses_two_unfinished_runs_of_one_record(app, person):
    from sqlalchemy.exc import IntegrityError

    from app.models.erasure import ErasureRun

    with app.app_context():
        db.session.add(ErasureRun(record_type="customer", record_id=person, status="queued"))
        db.session.commit()
        db.session.add(ErasureRun(record_type="customer", record_id=person, status="running"))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_a_failed_run_changes_nothing_says_so_and_is_tried_again(app, person, queue, backup_dirs, monkeypatch):
    from app.models.erasure import ErasureRun
    from app.services.erasure import runs, sweep

    real = sweep.everywhere

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sweep, "everywhere", broken)
    with app.app_context():
        run_id = erasure.erase(_user("admin"), "customer", person, "本人要求删除").id
        db.session.remove()
        queue.run()
        run = db.session.get(ErasureRun, run_id)
        shown = runs.state(run)
        assert run.status == "failed" and run.error == "failed" and shown["retry"]
        assert "changed nothing" in str(shown["error"])
        assert db.session.get(Customer, person).contact_phone == PHONE  # rolled back whole
        assert verify_chain(db.session).ok
        assert not _ledger_lines(backup_dirs)
        with pytest.raises(RuleForbidden):
            erasure.retry(_user("manager"), run_id)
        monkeypatch.setattr(sweep, "everywhere", real)
        erasure.retry(_user("admin"), run_id)
        db.session.remove()
        queue.run()
        run = db.session.get(ErasureRun, run_id)
        assert run.status == "done" and run.attempts == 2 and run.error is None
        assert db.session.get(Customer, person).contact_phone == ERASED
        assert verify_chain(db.session).ok
        with pytest.raises(RuleViolation):  # a done run is not tried again
            erasure.retry(_user("admin"), run_id)
    assert len(_ledger_lines(backup_dirs)) == 1


def test_a_retry_refused_because_another_run_is_under_way_asks_no_step_up(app, person, queue, monkeypatch):
    """The admin's step-up code is not spent on a retry that is refused anyway (another run of
    the same record queued meanwhile)."""
    from app.models.erasure import ErasureRun
    from app.services.erasure import sweep

    real = sweep.everywhere
    monkeypatch.setattr(sweep, "everywhere", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("disk")))
    with app.app_context():
        failed = erasure.erase(_user("admin"), "customer", person, "本人要求删除").id
        db.session.remove()
        queue.run()
        assert db.session.get(ErasureRun, failed).status == "failed"
        monkeypatch.setattr(sweep, "everywhere", real)
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")  # a new run, queued
        asked = []
        monkeypatch.setattr(erasure.step_up, "demand", lambda *args, **kwargs: asked.append(args))
        with pytest.raises(RuleViolation):
            erasure.retry(_user("admin"), failed)
        assert asked == []


def test_progress_names_the_step_while_the_run_works(app, person, queue, monkeypatch):
    from app.models.erasure import ErasureRun
    from app.services.erasure import runs, sweep

    seen = []
    real = sweep.merge_search_index

    def watching():
        run_id = db.session.scalars(select(ErasureRun.id)).one()
        if db.engine.dialect.name == "sqlite":  # one process: kept in memory
            seen.append(runs._LOCAL[run_id])
        else:  # a server database: another connection reads the committed progress
            with db.engine.connect() as other:
                row = other.execute(select(ErasureRun.step, ErasureRun.steps_done, ErasureRun.steps_total)
                                    .where(ErasureRun.id == run_id)).one()
                seen.append(tuple(row))
        real()

    monkeypatch.setattr(sweep, "merge_search_index", watching)
    with app.app_context():
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        db.session.remove()
        queue.run()
    step, done, total = seen[0]
    assert step == "search" and total == erasure.step_count() and done == total - 1


def test_a_missing_record_fails_with_its_own_message(app, person, queue):
    from app.models.erasure import ErasureRun
    from app.services.erasure import runs

    with app.app_context():
        run_id = erasure.erase(_user("admin"), "customer", person, "本人要求删除").id
        db.session.execute(update(ErasureRun).where(ErasureRun.id == run_id).values(record_id=999999))
        db.session.commit()
        queue.run()
        run = db.session.get(ErasureRun, run_id)
        assert run.status == "failed" and "no longer exists" in str(runs.state(run)["error"])


# --- brief 31 (erase19b): files of every kind, variants, held changes, tied rows, alerts --------


def _job_file(app, suffix, data, user="admin"):
    """A stored import upload (a ``TransferJob`` pointing at a file under the instance)."""
    import uuid
    from pathlib import Path

    from app.models import TransferJob
    from tests.conftest import user_id

    folder = Path(app.instance_path) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"erase19b-{uuid.uuid4().hex}{suffix}"
    path.write_bytes(data)
    db.session.add(TransferJob(kind="import", model="customer", user_id=user_id(user), filename=f"客户{suffix}",
                               stored_path=str(path)))
    return path


def _ods(text_xml: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", f"<office:document-content>{text_xml}</office:document-content>")
    return buffer.getvalue()


def test_uploads_of_every_kind_are_rewritten_in_their_encoding_or_removed(app, person):
    """Finding 1: GB18030 .csv, .tsv, UTF-16 .txt and .xlsm are rewritten in their own
    encoding/format (another person's row kept); an .ods and a Big5 text cannot be
    rewritten safely: removed, and the run's summary says so."""
    from openpyxl import Workbook, load_workbook

    header, other = "客户名称,联系人,联系电话,邮箱\n", "别家公司,李四,13600001111,li@example.com\n"
    mine = f"隐私测试有限公司,{PERSON},{PHONE},{EMAIL}\n"
    with app.app_context():
        gbk = _job_file(app, ".csv", (header + mine + other).encode("gb18030"))
        tsv = _job_file(app, ".tsv", (header + mine + other).replace(",", "\t").encode())
        utf16 = _job_file(app, ".txt", (header + mine + other).encode("utf-16"))
        book = Workbook()
        for row in (header, mine, other):
            book.active.append(row.strip().split(","))
        buffer = io.BytesIO()
        book.save(buffer)
        xlsm = _job_file(app, ".xlsm", buffer.getvalue())
        ods = _job_file(app, ".ods", _ods(f"<p>{PERSON}</p><p>{PHONE}</p>"))
        big5 = _job_file(app, ".csv", f"名稱,電話\n{PERSON},{PHONE}\n".encode("big5", "ignore"))
        untouched = _job_file(app, ".ods", _ods("<p>别家公司</p><p>13600001111</p>"))
        db.session.commit()
        run = erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        summary = erasure.summary_of(run)
        assert summary.swept["files"] == 4 and summary.swept[erasure.FILES_REMOVED] == 2
    text = gbk.read_bytes().decode("gb18030")  # still GB18030
    assert text == header + f"隐私测试有限公司,{ERASED},{ERASED},{ERASED}\n" + other
    assert PHONE not in tsv.read_text() and "李四\t13600001111" in tsv.read_text()
    assert utf16.read_bytes().startswith((b"\xff\xfe", b"\xfe\xff"))
    assert PERSON not in utf16.read_text(encoding="utf-16") and "李四" in utf16.read_text(encoding="utf-16")
    cells = [c.value for row in load_workbook(xlsm).active.iter_rows() for c in row]
    assert PHONE not in cells and EMAIL not in cells and "李四" in cells
    assert not ods.exists() and not big5.exists() and untouched.exists()


def test_a_phone_and_an_email_in_other_formats_are_found_everywhere(app, person):
    """Finding 2: 139-5550-1234, +86 139 5550 1234, (0086)139.5550.1234, full-width digits and
    the e-mail in capitals or full-width go, in text and JSON columns and in audit entries
    about other rows; an unrelated number stays."""
    from app.models import TransferJob
    from tests.conftest import user_id

    variants = ["139-5550-1234", "+86 139 5550 1234", "0086 (139) 5550.1234", "１３９５５５０１２３４",
                EMAIL.upper(), "".join(chr(ord(c) + 0xFEE0) for c in EMAIL)]
    with app.app_context():
        job = TransferJob(kind="import", model="customer", user_id=user_id("admin"), filename="x.xlsx",
                          error="；".join(variants) + "；另 13955501235",
                          preview={"rows": [[PERSON, v] for v in variants]})
        db.session.add(job)
        other = db.session.get(Customer, person)
        audit.record("note_about", other, {"text": f"回电 {variants[1]} / {variants[4]}"})
        db.session.commit()
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        db.session.expire_all()
        job = db.session.get(TransferJob, job.id)
        for value in variants:
            assert value not in job.error and value not in json.dumps(job.preview, ensure_ascii=False)
        assert "13955501235" in job.error  # another number is not the person's
        assert PERSON not in json.dumps(job.preview, ensure_ascii=False)
        assert verify_chain(db.session).ok
    after = _all_text(app)
    for value in (*variants, "5550 1234"):
        assert value not in after, value


def _approval(customer_id, change, reason, status="pending", code="AP-E19B-1"):
    from app.models.approvals import ApprovalRequest
    from tests.conftest import user_id

    request = ApprovalRequest(code=code, kind="customer.contact", record_type="customer", record_id=customer_id,
                              record_label="C 隐私测试有限公司", requester_id=user_id("rep_a"), reason=reason,
                              change=json.dumps(change, ensure_ascii=False),
                              before=json.dumps({"contact_phone": PHONE}, ensure_ascii=False), status=status)
    db.session.add(request)
    return request


def test_a_held_change_is_withdrawn_and_its_values_erased(app, person):
    """Finding 3: a pending approval request on the erased customer is withdrawn (approving
    it later cannot write the person back) and its proposed values and reason go, the
    proposed new phone everywhere else too; a decided request keeps its status."""
    from app.models.approvals import ApprovalRequest
    from app.services import approvals

    new_phone = "13766655544"
    with app.app_context():
        pending = _approval(person, {"contact_phone": new_phone, "contact_name": PERSON + "先生"}, f"{PERSON}换号了")
        done = _approval(person, {"contact_phone": PHONE}, "旧申请", status="approved", code="AP-E19B-2")
        db.session.flush()
        audit.record("approval_submitted", pending, {"change": {"contact_phone": new_phone}})
        db.session.commit()
        ids = pending.id, done.id
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        db.session.expire_all()
        pending, done = (db.session.get(ApprovalRequest, i) for i in ids)
        assert pending.status == approvals.WITHDRAWN and pending.decided_at is not None
        assert [a.action for a in pending.actions][-1] == "withdrawn"
        assert json.loads(pending.change) == {"contact_phone": ERASED, "contact_name": ERASED}
        assert PERSON not in pending.reason and done.status == "approved"
        assert json.loads(done.before) == {"contact_phone": ERASED}
        with pytest.raises(RuleViolation):  # no longer pending: cannot be approved
            approvals.approve(pending.id, _user("manager"))
        assert verify_chain(db.session).ok
    after = _all_text(app)
    assert new_phone not in after and PERSON not in after


def test_names_go_in_rows_tied_to_the_record_and_stay_elsewhere(app, person, make_customer):
    """Finding 4: an activity of the customer and of its contact, and an approval request's
    reason, hold only the person's name: it goes there and in their audit entries; the same
    name on another customer's activity stays (another person may share it)."""
    from datetime import timedelta

    from app.clock import utc_now
    from app.models.activities import Activity
    from tests.conftest import user_id

    stranger = make_customer("rep_a", name="别家公司", contact_phone="13600002222")
    with app.app_context():
        contact = Contact(customer_id=person, name=PERSON, phone=PHONE, is_primary=True)
        db.session.add(contact)
        db.session.flush()
        due = utc_now() + timedelta(days=1)
        own = Activity(code="AC-E19B-1", subject=f"拜访{PERSON}", note=f"{PERSON}说下周再谈", due_at=due,
                       assignee_id=user_id("rep_a"), customer_id=person)
        by_contact = Activity(code="AC-E19B-2", subject=f"电话{PERSON}", due_at=due, assignee_id=user_id("rep_a"),
                              contact_id=contact.id)
        elsewhere = Activity(code="AC-E19B-3", subject=f"拜访{PERSON}", due_at=due, assignee_id=user_id("rep_a"),
                             customer_id=stranger)
        db.session.add_all([own, by_contact, elsewhere])
        _approval(person, {}, f"{PERSON}要求改级别", status="rejected")
        db.session.commit()
        ids = own.id, by_contact.id, elsewhere.id
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        db.session.expire_all()
        own, by_contact, elsewhere = (db.session.get(Activity, i) for i in ids)
        assert own.subject == f"拜访{ERASED}" and own.note == f"{ERASED}说下周再谈"
        assert by_contact.subject == f"电话{ERASED}"
        assert elsewhere.subject == f"拜访{PERSON}"
        entries = db.session.scalars(select(AuditLog.changes).where(
            AuditLog.object_type == "Activity", AuditLog.object_id.in_([str(ids[0]), str(ids[1])]))).all()
        assert entries and not any(PERSON in (e or "") for e in entries)
        assert verify_chain(db.session).ok
    assert _all_text(app).count(PERSON) == _stranger_copies(app, ids[2])


def _stranger_copies(app, activity_id):
    """How often the name is stored for the unrelated activity (its row, audit, search)."""
    from app.models.activities import Activity

    with app.app_context():
        rows = [db.session.get(Activity, activity_id).subject]
        rows += db.session.scalars(select(AuditLog.changes).where(AuditLog.object_type == "Activity",
                                                                  AuditLog.object_id == str(activity_id))).all()
        db.session.remove()
    text_now = "\n".join(r or "" for r in rows)
    return text_now.count(PERSON) + _search_copies(app)


def _search_copies(app):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            return 0
        from app.services.search import fts_tables

        found = 0
        for name in fts_tables(db.session):
            for row in db.session.execute(text(f'SELECT * FROM "{name}"')):
                found += " ".join(str(v) for v in row).count(PERSON)
        db.session.remove()
        return found


def test_a_failed_run_tells_the_admins(app, person, queue, monkeypatch):
    """Finding 6: a failed erasure notifies every admin (in-app), once per attempt."""
    from app.models.notifications import Notification
    from app.services.erasure import runs, sweep

    monkeypatch.setattr(sweep, "everywhere", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with app.app_context():
        run_id = erasure.erase(_user("admin"), "customer", person, "本人要求删除").id
        db.session.remove()
        queue.run()
        notes = db.session.scalars(select(Notification).where(Notification.event == runs.FAILED_EVENT.key)).all()
        assert {n.user_id for n in notes} == {_user("admin").id}
        assert notes[0].params["id"] == run_id and PERSON not in json.dumps(notes[0].params, ensure_ascii=False)


def _xlsx_upload(filename, row):
    """An uploaded workbook (what ``attachments.store`` reads) holding one ``row``."""
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)

    class Upload:
        stream = io.BytesIO(buffer.getvalue())

        def read(self, *args):
            return self.stream.read(*args)

    upload = Upload()
    upload.filename = filename
    return upload


def test_an_xlsx_attachment_of_the_record_is_rewritten_under_its_new_digest(app, person):
    """Finding 1 (attachments): a workbook attached to the customer holds the person's name
    and phone: rewritten (stored by SHA-256: new path, digest and size), the old file gone."""
    import hashlib

    from openpyxl import load_workbook

    from app.models.service import Attachment
    from app.services import attachments, files

    with app.app_context():
        item = attachments.store(db.session.get(Customer, person), _xlsx_upload("报价.xlsx", [PERSON, PHONE, "报价单"]),
                                 _user("admin"), kinds=("xlsx",))
        db.session.commit()
        old_path, pk = files.roots()[0] / item.path, item.id
        erasure.erase(_user("admin"), "customer", person, "本人要求删除")
        db.session.expire_all()
        item = db.session.get(Attachment, pk)
        path = files.roots()[0] / item.path
        assert not old_path.exists() and path.is_file()
        assert item.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and item.size == path.stat().st_size
        cells = [c.value for row in load_workbook(io.BytesIO(path.read_bytes())).active.iter_rows() for c in row]
        assert cells == [ERASED, ERASED, "报价单"]


def test_an_erasure_that_fails_after_rewriting_an_attachment_leaves_it_readable(app, person, queue, monkeypatch):
    """The rewritten workbook replaces the old file only once the erasure committed: a later
    step failing (or the worker dying) rolls the row back to the old path, which must still
    hold the file; the retry then rewrites it and removes the old one."""
    from app.models.service import Attachment
    from app.services import attachments, files
    from app.services.erasure import runs, sweep

    with app.app_context():
        item = attachments.store(db.session.get(Customer, person), _xlsx_upload("名单.xlsx", [PERSON, PHONE]),
                                 _user("admin"), kinds=("xlsx",))
        db.session.commit()
        pk, old_path = item.id, files.roots()[0] / item.path
        real = sweep.merge_search_index
        monkeypatch.setattr(sweep, "merge_search_index", lambda: (_ for _ in ()).throw(RuntimeError("disk full")))
        run_id = erasure.erase(_user("admin"), "customer", person, "本人要求删除").id
        db.session.remove()
        queue.run()
        assert db.session.get(runs.ErasureRun, run_id).status == runs.FAILED
        item = db.session.get(Attachment, pk)
        assert files.roots()[0] / item.path == old_path and old_path.is_file()  # nothing lost
        monkeypatch.setattr(sweep, "merge_search_index", real)
        erasure.retry(_user("admin"), run_id)
        db.session.remove()
        queue.run()
        item = db.session.get(Attachment, pk)
        assert not old_path.exists() and (files.roots()[0] / item.path).is_file()


def test_a_short_latin_name_goes_as_a_word_and_codes_stay(app, make_customer):
    """A contact named "En": "Call En" loses the name, but "open" (an activity's status, and
    a word in its note) and "client" keep theirs. The sweep rewrote every substring of every
    text column: the status became "op(erased)", the activity left "My activities" and
    could never be completed."""
    from datetime import timedelta

    from app.clock import utc_now
    from app.models.activities import Activity
    from app.services import activities
    from tests.conftest import user_id

    pk = make_customer("rep_a", name="Short Name Trading", contact_name="En", contact_phone="13600004444")
    with app.app_context():
        item = Activity(code="AC-E19W-1", subject="Call En", note="Open the account; the client (En) agreed",
                        due_at=utc_now() + timedelta(days=1), assignee_id=user_id("rep_a"), customer_id=pk)
        db.session.add(item)
        db.session.commit()
        activity_id = item.id
        erasure.erase(_user("admin"), "customer", pk, "本人要求删除")
        db.session.expire_all()
        item = db.session.get(Activity, activity_id)
        assert (item.status, item.kind) == ("open", "call")
        assert item.subject == f"Call {ERASED}"
        assert item.note == f"Open the account; the client ({ERASED}) agreed"
        activities.complete_activity(activity_id, _user("rep_a"))
        db.session.commit()
        assert db.session.get(Activity, activity_id).status == "done"
        db.session.remove()


def test_a_name_inside_chinese_text_still_goes():
    from app.services.erasure.matching import Matcher

    matcher = Matcher(["Tom", "王伟"])
    assert matcher.replace("和王伟通话，Tom说好") == f"和{ERASED}通话，{ERASED}说好"
    assert matcher.replace("Tomorrow, atom") == "Tomorrow, atom"
    assert matcher.replace("TOM: yes") == f"{ERASED}: yes"
    # digits, underscores and scripts without spaces are not letters of the name's word
    assert matcher.replace("NDA_Tom.pdf, Tom2, 2024Tom") == f"NDA_{ERASED}.pdf, {ERASED}2, 2024{ERASED}"
    assert Matcher(["สมชาย"]).replace("คุณสมชายโทรมา") == f"คุณ{ERASED}โทรมา"
    # a value with a digit (an address) matches anywhere, as before
    assert Matcher(["12 Main St"]).replace("Room 5, 12 Main Street") == f"Room 5, {ERASED}reet"


def test_the_sweep_reads_people_s_text_not_codes_keys_or_paths(app):
    """What the program wrote is never swept (a file's path under the files root, its
    digest, a status); what people typed is."""
    from app.services.erasure.tied import _text_columns

    tables = Model.metadata.tables
    swept = {f"{name}.{c.name}" for name in ("activity", "attachment", "ticket") for c in _text_columns(tables[name])}
    assert {"activity.subject", "activity.note", "attachment.filename", "ticket.subject", "ticket.description"} <= swept
    assert not swept & {"activity.status", "activity.kind", "activity.code", "attachment.path", "attachment.sha256",
                        "attachment.content_type", "attachment.record_type", "ticket.status", "ticket.channel"}
