"""Organisation → Backups: Admin only; back up now; restore needs a confirmation and a code
and takes a safety backup; download is sensitive and audited; 503 during a restore."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, BackupRun, Customer, RestoreRun
from app.services import backups


def _backup(app) -> tuple[int, str]:
    with app.app_context():
        run = backups.create("manual")
        assert run.status == "ok", run.error
        result = run.id, run.file_name
        db.session.remove()
        return result


@pytest.mark.parametrize("username", ["rep_a", "manager", "viewer"])
def test_non_admins_are_refused_everywhere(app, client, auth, backup_dirs, username):
    pk, _ = _backup(app)
    auth.login(username)
    for method, url in (("get", "/backups/"), ("post", "/backups/backup"), ("post", f"/backups/verify/{pk}"),
                        ("get", f"/backups/download/{pk}"), ("get", f"/backups/restore/{pk}"),
                        ("post", f"/backups/restore/{pk}")):
        response = getattr(client, method)(url, data={"confirm": "yes"})
        assert response.status_code in (302, 403), (url, response.status_code)
        assert response.status_code == 403 or "/login" in response.location or response.location.endswith("/")
    with app.app_context():
        assert db.session.scalar(select(RestoreRun.id)) is None
        assert len(db.session.scalars(select(BackupRun)).all()) == 1


def test_admin_backs_up_now_and_sees_it_verified(app, client, auth, backup_dirs):
    auth.login("admin")
    response = client.post("/backups/backup", follow_redirects=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "backup-list" in page and "Verify in full" in page
    with app.app_context():
        run = db.session.scalars(select(BackupRun)).one()
        assert run.status == "ok" and run.kind == "manual" and run.verify_status == "passed"
        assert run.created_by.username == "admin"
    assert run.file_name[:20] in page or run.sha256[:12] in page


def test_restore_needs_confirmation_and_a_code_and_takes_a_safety_backup(app, client, auth, backup_dirs, totp,
                                                                        make_customer):
    pk = make_customer("rep_a", name="Before")
    backup_id, backup_name = _backup(app)
    with app.app_context():
        db.session.get(Customer, pk).name = "After"
        db.session.commit()
    totp.enrol(app, "admin")
    auth.login("admin")
    form = client.get(f"/backups/restore/{backup_id}").get_data(as_text=True)
    assert "safety backup" in form
    unconfirmed = client.post(f"/backups/restore/{backup_id}", data={"_step_up_code": totp.code("admin")})
    assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.get_data(as_text=True)
    no_code = client.post(f"/backups/restore/{backup_id}", data={"confirm": "yes"})
    assert no_code.status_code == 401 and "_step_up_code" in no_code.get_data(as_text=True)
    wrong = client.post(f"/backups/restore/{backup_id}", data={"confirm": "yes", "_step_up_code": "000000"})
    assert wrong.status_code == 403
    with app.app_context():
        assert db.session.get(Customer, pk).name == "After"
        assert not db.session.scalars(select(BackupRun).where(BackupRun.kind == "safety")).all()
    done = client.post(f"/backups/restore/{backup_id}", data={"confirm": "yes", "_step_up_code": totp.code("admin")})
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(Customer, pk).name == "Before"
        restore = db.session.scalars(select(RestoreRun)).one()
        assert restore.status == "ok" and restore.source == "web" and restore.user_name == "admin"
        safety = db.session.get(BackupRun, restore.safety_backup_id)
        assert safety.kind == "safety" and safety.status == "ok"
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "backup_restored"))
        assert entry.user_name == "admin" and backup_name in entry.detail
    page = client.get("/backups/").get_data(as_text=True)
    assert "restore-list" in page and backup_name in page


def test_corrupted_backup_is_refused_with_a_message(app, client, auth, backup_dirs):
    backup_id, name = _backup(app)
    path = backup_dirs["backups"] / name
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    auth.login("admin")
    auth.grant_step_up("admin")
    response = client.post(f"/backups/restore/{backup_id}", data={"confirm": "yes"})
    assert response.status_code == 400 and "corrupted" in response.get_data(as_text=True)


def test_download_is_sensitive_and_audited(app, client, auth, backup_dirs):
    backup_id, name = _backup(app)
    auth.login("admin")
    assert client.get(f"/backups/download/{backup_id}").status_code == 401
    auth.grant_step_up("admin")
    response = client.get(f"/backups/download/{backup_id}")
    assert response.status_code == 200 and response.data[:2] == b"\x1f\x8b"
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "backup_downloaded"))
        assert entry is not None and name in entry.detail


def test_every_page_answers_503_during_a_restore(app, client, auth):
    auth.login("admin")
    with app.app_context():
        flag = backups.maintenance.flag_path()
    flag.write_text("restoring")
    try:
        response = client.get("/backups/")
        assert response.status_code == 503 and "restore is under way" in response.get_data(as_text=True)
        assert client.get("/login/").status_code == 503
        assert client.get("/health/live").status_code == 200
    finally:
        flag.unlink()
    assert client.get("/backups/").status_code == 200


# --- fixes of the attack on issue 19 ------------------------------------------------------------


def test_restore_warns_of_and_applies_again_the_later_erasures(app, client, auth, backup_dirs, totp, monkeypatch):
    from app.services.erasure import ledger

    backup_id, _ = _backup(app)
    later = [{"at": None, "record_type": "customer", "record_id": n, "code": f"C{n}"} for n in (1, 2)]
    monkeypatch.setattr(ledger, "since", lambda instant: later)
    monkeypatch.setattr(ledger, "reapply_since", lambda instant, user: ["C1", "C2"])
    totp.enrol(app, "admin")
    auth.login("admin")
    form = client.get(f"/backups/restore/{backup_id}").get_data(as_text=True)
    assert "2 personal-data erasures made after this backup will be applied again after the restore." in form
    done = client.post(f"/backups/restore/{backup_id}", data={"confirm": "yes", "_step_up_code": totp.code("admin")},
                       follow_redirects=True)
    assert done.status_code == 200
    assert "Personal-data erasures made after the backup, applied again: 2." in done.get_data(as_text=True)


def test_next_backup_is_due_now_when_todays_has_not_run(app, client, auth, backup_dirs, shanghai):
    from datetime import UTC, datetime

    from app import clock

    auth.login("admin")
    with clock.frozen(datetime(2026, 12, 1, 1, 0, tzinfo=UTC)):  # 09:00 in Shanghai, 02:00 not run yet
        page = client.get("/backups/").get_data(as_text=True)
    assert "due now, within 5 minutes" in page and "2026-12-01 02:00" not in page


def test_backup_pages_use_the_company_date_format(app, client, auth, backup_dirs, shanghai):
    from datetime import UTC, datetime

    from app import clock
    from app.services import company, settings

    with app.app_context(), clock.frozen(datetime(2026, 11, 30, 3, 0, tzinfo=UTC)):
        backup_id, _ = _backup(app)
        settings.save({"date_format": "dmy"}, app.appbuilder.sm.find_user(username="admin"))
        db.session.commit()
    try:
        auth.login("admin")
        with clock.frozen(datetime(2026, 11, 30, 17, 0, tzinfo=UTC)):  # 01:00 on 1 December in Shanghai
            page = client.get("/backups/").get_data(as_text=True)
            form = client.get(f"/backups/restore/{backup_id}").get_data(as_text=True)
        assert "30/11/2026 11:00" in page and "2026-11-30" not in page
        assert "30/11/2026 11:00" in form and "2026-11-30" not in form
        assert "01/12/2026 02:00" in page  # the next scheduled backup
    finally:
        company.forget()


def test_a_failed_check_reads_in_the_readers_language(app, client, auth, backup_dirs):
    from flask_babel import force_locale

    backup_id, name = _backup(app)
    path = backup_dirs["backups"] / name
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with app.test_request_context("/"), force_locale("en"):
        assert backups.verify(db.session.get(BackupRun, backup_id)).status == "failed"
        db.session.remove()
    auth.login("admin")
    with client.session_transaction() as session:
        session["locale"] = "zh"
    page = client.get("/backups/").get_data(as_text=True)
    assert "已损坏" in page and "is corrupted" not in page
