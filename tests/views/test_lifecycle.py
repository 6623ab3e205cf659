"""Organisation → Data retention and Personal data erasure (issue 19): admins only, a code
for the sensitive actions, clear messages, and no trace of an erased value in the pages,
exports, audit views or the synced sheet."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import AuditLog, Customer
from app.models.operations import RetentionCase
from app.models.org import CrmUser
from app.models.sales import Contact
from app.services import company, retention, settings
from app.services.audit import ERASED
from tests.sync import conftest as sync_fixtures
from tests.sync.conftest import HEADERS

# the sync tests' fixtures (an xlsx file and the Google Sheets emulator), used here too
side, make_target, sync = sync_fixtures.side, sync_fixtures.make_target, sync_fixtures.sync

PHONE, PERSON, EMAIL = "13955502468", "页面隐私人", "page.person@example.cn"
PAGES = [("get", "/retention/"), ("get", "/erasure/"), ("get", "/erasure/?q=页面"),
         ("post", "/retention/decide"), ("post", "/erasure/erase")]


@pytest.fixture
def person(make_customer):
    return make_customer("rep_a", name="页面隐私公司", contact_name=PERSON, contact_phone=PHONE, email=EMAIL)


def _erase_form(pk, **extra):
    return {"type": "customer", "id": str(pk), "reason": "本人来电要求删除", "confirm": "yes", **extra}


@pytest.mark.parametrize("username", ["rep_a", "manager", "viewer"])
def test_non_admins_are_refused_everywhere(client, auth, person, username):
    auth.login(username)
    for method, url in PAGES:
        data = _erase_form(person) if url == "/erasure/erase" else {"rowid": "1", "decision": "kept"}
        response = client.get(url) if method == "get" else client.post(url, data=data)
        assert response.status_code in (302, 403), (url, response.status_code)
    with client.application.app_context():
        assert db.session.get(Customer, person).contact_phone == PHONE


def test_erasure_needs_a_code(client, auth, totp, person):
    totp.enrol(client.application, "admin")
    auth.login("admin")
    response = client.post("/erasure/erase", data=_erase_form(person))
    assert response.status_code in (200, 401, 403)
    with client.application.app_context():
        assert db.session.get(Customer, person).contact_phone == PHONE
    response = client.post("/erasure/erase", data=_erase_form(person, _step_up_code="000000"))
    with client.application.app_context():
        assert db.session.get(Customer, person).contact_phone == PHONE


def test_reason_and_confirmation_are_required(client, auth, person):
    auth.login("admin")
    auth.grant_step_up("admin")
    page = client.post("/erasure/erase", data=_erase_form(person, reason="  "))
    assert page.status_code == 400 and "Give the reason" in page.get_data(as_text=True)
    page = client.post("/erasure/erase", data=_erase_form(person, confirm=""))
    assert page.status_code == 400 and "Tick the box" in page.get_data(as_text=True)
    page = client.post("/erasure/erase", data=_erase_form(person, extra="password"))
    assert page.status_code == 400
    assert client.get("/erasure/?type=customer&id=999999").status_code == 404
    assert client.get("/erasure/?type=order&id=1").status_code == 404


def test_find_preview_erase_then_no_trace_in_pages_exports_and_history(client, auth, totp, person):
    totp.enrol(client.application, "admin")
    auth.login("admin")
    found = client.get("/erasure/?q=页面隐私").get_data(as_text=True)
    assert "页面隐私公司" in found and PHONE not in found  # masked in the list
    preview = client.get(f"/erasure/?type=customer&id={person}").get_data(as_text=True)
    assert "Contact phone" in preview and "Audit entries about it" in preview
    done = client.post("/erasure/erase", data=_erase_form(person, _step_up_code=totp.code("admin")),
                       follow_redirects=True)  # to the run's page: done (the queue is inline in tests)
    assert done.status_code == 200 and "Personal data erased" in done.get_data(as_text=True)
    show = client.get(f"/customerview/show/{person}")
    assert show.status_code == 200
    history = client.get(f"/customerview/show/{person}?tab=history").get_data(as_text=True)
    for page in (show.get_data(as_text=True), history):
        assert PERSON not in page and EMAIL not in page and "139****2468" not in page
    assert "(erased)" in history or "已删除" in history
    export = client.get("/customerview/export/csv").get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(export)))
    assert any("页面隐私公司" in row for row in rows)
    assert PERSON not in export and EMAIL not in export and PHONE not in export
    audit_page = client.get("/auditlogview/list/").get_data(as_text=True)
    assert PERSON not in audit_page and EMAIL not in audit_page


def _old_customer(app, make_customer, name):
    old = datetime(2014, 3, 1, tzinfo=UTC)
    pk = make_customer("rep_a", name=name, contact_name=f"{name}的人", created_on=old, changed_on=old)
    with app.app_context():
        db.session.query(Contact).filter_by(customer_id=pk).update({"changed_on": old})
        db.session.commit()
    return pk


def _cases(app):
    with app.app_context(), clock.frozen(datetime(2026, 1, 5, tzinfo=UTC)):
        retention.review()
        db.session.commit()
        return {c.record_id: c.id for c in db.session.scalars(select(RetentionCase).where(
            RetentionCase.record_type == "customer"))}


def test_retention_page_lists_and_bulk_keep(app, client, auth, make_customer):
    a, b = _old_customer(app, make_customer, "甲老客户"), _old_customer(app, make_customer, "乙老客户")
    cases = _cases(app)
    auth.login("admin")
    page = client.get("/retention/").get_data(as_text=True)
    assert "甲老客户" in page and "乙老客户" in page and "30 days" in page
    response = client.post("/retention/decide", data={"rowid": [cases[a], cases[b]], "decision": "kept"})
    assert response.status_code == 302
    page = client.get("/retention/").get_data(as_text=True)
    assert f'id="case-{cases[a]}"' not in page and f'id="case-{cases[b]}"' not in page
    assert "甲老客户的人" in page  # its contact is a case of its own, still open
    with app.app_context():
        assert db.session.scalars(select(AuditLog).where(AuditLog.action == "retention_decided")).all()
    bad = client.post("/retention/decide", data={"rowid": [cases[a]], "decision": "shred"}, follow_redirects=True)
    assert bad.status_code == 200 and "Pick archive, anonymise or keep" in bad.get_data(as_text=True)


def test_bulk_anonymise_needs_a_code(app, client, auth, totp, make_customer):
    a, b = _old_customer(app, make_customer, "丙老客户"), _old_customer(app, make_customer, "丁老客户")
    cases = _cases(app)
    totp.enrol(app, "admin")
    auth.login("admin")
    client.post("/retention/decide", data={"rowid": [cases[a], cases[b]], "decision": "anonymised"})
    with app.app_context():
        assert db.session.get(Customer, a).contact_name == "丙老客户的人"
    client.post("/retention/decide", data={"rowid": [cases[a], cases[b]], "decision": "anonymised",
                                           "_step_up_code": totp.code("admin")})
    with app.app_context():
        assert db.session.get(Customer, a).contact_name == ERASED
        assert db.session.get(Customer, b).contact_name == ERASED


def test_the_synced_sheet_gets_the_marker_not_the_old_value(app, side, make_target, sync, make_customer):
    pk = make_customer("rep_a", name="同步隐私公司", contact_name="同步隐私人", contact_phone="13800000077")
    side.create([HEADERS])
    target = make_target()
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert "同步隐私人" in str(side.values())
    from app.extensions import appbuilder
    from app.services import erasure

    with app.app_context():
        erasure.erase(appbuilder.sm.find_user(username="admin"), "customer", pk, "本人要求删除")
    log, _ = sync(target)
    assert log.status == "done", log.message
    values = str(side.values())
    assert "同步隐私人" not in values and "13800000077" not in values and ERASED in values
    with app.app_context():
        assert db.session.get(Customer, pk).contact_name == ERASED


def test_an_export_file_made_before_the_erasure_loses_the_values(app, client, auth, person, make_customer):
    other = make_customer("rep_a", name="无关公司", contact_name=PERSON, contact_phone="13800001111")
    app.config["CRM_EXPORT_BACKGROUND_ROWS"] = 1
    try:
        auth.login("admin")
        response = client.get("/customerview/export/xlsx")
        job_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
        before = client.get(f"/exports/{job_id}/download").data
        rows = list(load_workbook(io.BytesIO(before)).active.iter_rows(values_only=True))
        assert any(PERSON in map(str, row) for row in rows)
        from app.extensions import appbuilder
        from app.services import erasure

        with app.app_context():
            summary = erasure.summary_of(
                erasure.erase(appbuilder.sm.find_user(username="admin"), "customer", person, "本人要求删除"))
            assert summary.swept.get("files") == 1
        after = client.get(f"/exports/{job_id}/download").data
    finally:
        app.config["CRM_EXPORT_BACKGROUND_ROWS"] = 20000
    rows = [list(map(str, row)) for row in load_workbook(io.BytesIO(after)).active.iter_rows(values_only=True)]
    mine = next(row for row in rows if "页面隐私公司" in row)
    theirs = next(row for row in rows if "无关公司" in row)
    assert PERSON not in mine and EMAIL not in " ".join(mine) and ERASED in mine
    assert PERSON in theirs  # another person of the same name keeps it
    with app.app_context():
        assert db.session.get(Customer, other).contact_name == PERSON


def test_retention_dates_follow_the_company_date_format(app, client, auth, make_customer, shanghai):
    _old_customer(app, make_customer, "丙老客户")
    _cases(app)
    with app.app_context():
        admin = db.session.scalar(select(CrmUser).where(CrmUser.username == "admin"))
        settings.save({"date_format": "dmy"}, admin)
        db.session.commit()
    try:
        auth.login("admin")
        page = client.get("/retention/").get_data(as_text=True)
    finally:
        company.forget()
    assert "丙老客户" in page
    assert "01/03/2014 08:00" in page  # last activity, Shanghai time
    assert "01/03/2024" in page  # due since: ten years later
    assert "2014-03-01" not in page and "2024-03-01" not in page


def test_the_erasure_reason_warns_it_is_kept_in_the_audit_log(client, auth, person):
    auth.login("admin")
    form = client.get(f"/erasure/?type=customer&id={person}").get_data(as_text=True)
    assert ("Do not write the person's name or contact details here: the reason is kept in the audit log."
            in form.replace("&#39;", "'"))
    assert 'aria-describedby="reason-help"' in form and 'id="reason-help"' in form


# --- the erasure runs on the task queue: its page shows where it is ---------------------


@pytest.fixture
def held(monkeypatch):
    """The task queue held back (``background.submit`` records the jobs); ``held.run()``
    runs them as a worker would."""
    from app.services import background

    class Held(list):
        def run(self, app):
            with app.app_context():
                while self:
                    func, args = self.pop(0)
                    func(*args)
                    db.session.remove()

    jobs = Held()
    monkeypatch.setattr(background, "submit", lambda func, *args: jobs.append((func, args)))
    return jobs


def _run_id(app):
    from app.models.erasure import ErasureRun

    with app.app_context():
        return db.session.scalars(select(ErasureRun.id).order_by(ErasureRun.id.desc())).first()


def test_the_request_returns_with_the_run_queued_and_its_page_follows_it(app, client, auth, totp, person, held):
    totp.enrol(app, "admin")
    auth.login("admin")
    response = client.post("/erasure/erase", data=_erase_form(person, _step_up_code=totp.code("admin")))
    run_id = _run_id(app)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/erasure/run/{run_id}")
    assert len(held) == 1
    page = client.get(f"/erasure/run/{run_id}").get_data(as_text=True)
    assert 'data-status="queued"' in page and 'http-equiv="refresh"' in page and "Waiting for the task queue" in page
    with app.app_context():
        assert db.session.get(Customer, person).contact_phone == PHONE  # not yet
    # the record's erasure page says one is under way; a second request is refused
    preview = client.get(f"/erasure/?type=customer&id={person}").get_data(as_text=True)
    assert "An erasure of this record is under way" in preview and f"/erasure/run/{run_id}" in preview
    again = client.post("/erasure/erase", data=_erase_form(person))
    assert again.status_code == 400 and "already under way" in again.get_data(as_text=True)
    assert len(held) == 1
    listed = client.get("/erasure/").get_data(as_text=True)
    assert 'id="erasure-runs"' in listed and "Queued" in listed and f"/erasure/run/{run_id}" in listed
    held.run(app)
    page = client.get(f"/erasure/run/{run_id}").get_data(as_text=True)
    assert 'data-status="done"' in page and "Personal data erased" in page and "Audit entries masked" in page
    assert 'http-equiv="refresh"' not in page and PERSON not in page and PHONE not in page
    with app.app_context():
        assert db.session.get(Customer, person).contact_phone == ERASED


def test_a_running_run_shows_its_step(app, client, auth, person, held):
    from app.services.erasure import runs

    auth.login("admin")
    auth.grant_step_up("admin")
    client.post("/erasure/erase", data=_erase_form(person))
    run_id = _run_id(app)
    with app.app_context():  # as a worker in the middle of the text columns
        db.session.execute(update_run(run_id, status="running", step="columns:follow_up", steps_done=5,
                                      steps_total=60))
        db.session.commit()
    try:
        runs._LOCAL.pop(run_id, None)
        page = client.get(f"/erasure/run/{run_id}").get_data(as_text=True)
    finally:
        with app.app_context():
            db.session.execute(update_run(run_id, status="failed"))
            db.session.commit()
    assert 'data-status="running"' in page and "Step 6 of 60: Text columns: follow_up" in page


def update_run(run_id, **values):
    from sqlalchemy import update

    from app.models.erasure import ErasureRun

    return update(ErasureRun).where(ErasureRun.id == run_id).values(**values)


def test_a_failed_run_is_shown_and_tried_again_with_a_code(app, client, auth, totp, person, held, monkeypatch):
    from app.services.erasure import sweep

    totp.enrol(app, "admin")
    auth.login("admin")
    real = sweep.everywhere
    monkeypatch.setattr(sweep, "everywhere", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    client.post("/erasure/erase", data=_erase_form(person, _step_up_code=totp.code("admin")))
    run_id = _run_id(app)
    held.run(app)
    page = client.get(f"/erasure/run/{run_id}").get_data(as_text=True)
    assert 'data-status="failed"' in page and "changed nothing" in page and 'id="erasure-retry"' in page
    assert "disk full" not in page  # the technical error goes to the log, not the page
    preview = client.get(f"/erasure/?type=customer&id={person}").get_data(as_text=True)
    assert "The last erasure of this record failed" in preview
    monkeypatch.setattr(sweep, "everywhere", real)
    with client.session_transaction() as session:  # the code of the first request is spent
        session.pop("_step_up_sid", None)
    refused = client.post(f"/erasure/run/{run_id}/retry", data={})
    assert refused.status_code in (200, 401, 403) and not held
    retried = client.post(f"/erasure/run/{run_id}/retry", data={"_step_up_code": totp.code("admin")})
    assert retried.status_code == 302 and len(held) == 1
    held.run(app)
    page = client.get(f"/erasure/run/{run_id}").get_data(as_text=True)
    assert 'data-status="done"' in page
    with app.app_context():
        assert db.session.get(Customer, person).contact_phone == ERASED


@pytest.mark.parametrize("username", ["rep_a", "manager", "viewer"])
def test_non_admins_cannot_see_or_retry_a_run(app, client, auth, person, held, username):
    auth.login("admin")
    auth.grant_step_up("admin")
    client.post("/erasure/erase", data=_erase_form(person))
    run_id = _run_id(app)
    client.get("/logout/")
    auth.login(username)
    assert client.get(f"/erasure/run/{run_id}").status_code in (302, 403)
    assert client.post(f"/erasure/run/{run_id}/retry", data={}).status_code in (302, 403)
    assert len(held) == 1


def test_the_record_pages_say_an_erasure_is_under_way(app, client, auth, person, held):
    """The customer's page (and its primary contact's) links to the queued run next to
    "Erase personal data"; once it is done, the note is gone."""
    auth.login("admin")
    auth.grant_step_up("admin")
    with app.app_context():
        contact = Contact(customer_id=person, name=PERSON, phone=PHONE, is_primary=True)
        db.session.add(contact)
        db.session.commit()
        contact_id = contact.id
    assert "erasure-under-way" not in client.get(f"/customerview/show/{person}").get_data(as_text=True)
    client.post("/erasure/erase", data=_erase_form(person))
    run_id = _run_id(app)
    page = client.get(f"/customerview/show/{person}").get_data(as_text=True)
    assert 'id="erasure-under-way"' in page and "An erasure of this record is under way" in page
    assert f"/erasure/run/{run_id}" in page
    client.post("/erasure/erase", data={**_erase_form(contact_id), "type": "contact"})
    contact_run = _run_id(app)
    page = client.get(f"/contactview/show/{contact_id}").get_data(as_text=True)
    assert 'id="erasure-under-way"' in page and f"/erasure/run/{contact_run}" in page
    held.run(app)
    assert "erasure-under-way" not in client.get(f"/customerview/show/{person}").get_data(as_text=True)
    assert "erasure-under-way" not in client.get(f"/contactview/show/{contact_id}").get_data(as_text=True)
