"""Events announced from inside the use cases (issue 14): a lead assigned (rules, a manager, an
import, the web form's save), an import job ended, a security alert (to every active Admin,
in the alert's own transaction). Sync conflicts: tests/sync/test_conflict_notifications.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Notification
from app.services import audit, leads, messages, notifications
from tests.app.services.importing.conftest import run_job, write_xlsx  # noqa: F401
from tests.app.services.leads_support import lead_data, make_lead, make_rule  # noqa: F401
from tests.conftest import user_id


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def told(event: str, username: str | None = None) -> list[Notification]:
    stmt = select(Notification).where(Notification.event == event).order_by(Notification.id)
    if username:
        stmt = stmt.where(Notification.user_id == user_id(username))
    return list(db.session.scalars(stmt))


# --- lead assigned ----------------------------------------------------------------------------

def test_a_lead_the_rules_give_to_someone_else_tells_them(ctx: Any, lead_data: Any) -> None:  # noqa: F811
    make_rule("East", ("rep_b",))
    item = leads.save_lead({"company": "Acme Ltd", "phone": "138 1234 5678"}, user("manager"))
    db.session.commit()
    assert item.owner.username == "rep_b"
    (note,) = told("lead_assigned", "rep_b")
    assert note.params == {"code": item.code, "company": "Acme Ltd"}
    assert note.record_type == "lead" and note.record_id == item.id
    assert "5678" not in str(note.params)


def test_a_writer_who_keeps_the_lead_is_not_told_and_an_edit_tells_nobody(ctx: Any,
                                                                       lead_data: Any) -> None:  # noqa: F811
    item = leads.save_lead({"company": "Mine Ltd", "phone": "13812345678"}, user("rep_a"))
    db.session.commit()
    leads.save_lead({"note": "called"}, user("rep_a"), pk=item.id, version=item.version)
    db.session.commit()
    assert told("lead_assigned") == []


def test_a_manager_assigning_a_lead_tells_the_new_owner_each_time(ctx: Any, lead_data: Any) -> None:  # noqa: F811
    pk = make_lead("rep_a")
    item = db.session.get(leads.Lead, pk)
    leads.save_lead({"owner": user("rep_b")}, user("manager"), pk=pk, version=item.version)
    db.session.commit()
    leads.save_lead({"owner": user("rep_a")}, user("manager"), pk=pk, version=item.version)
    db.session.commit()
    assert len(told("lead_assigned", "rep_b")) == 1 and len(told("lead_assigned", "rep_a")) == 1


def test_re_running_the_rules_tells_the_new_owner(ctx: Any, lead_data: Any) -> None:  # noqa: F811
    pk = make_lead(None)
    make_rule("East", ("rep_b",))
    leads.rerun_rules([pk], user("admin"))
    db.session.commit()
    assert [n.record_id for n in told("lead_assigned", "rep_b")] == [pk]


def test_imported_leads_tell_their_owners(app: Any, run_job: Any, tmp_path: Path,  # noqa: F811
                                          lead_data: Any) -> None:  # noqa: F811
    path = write_xlsx(tmp_path / "线索.xlsx", {"线索": [["公司名称", "联系电话", "负责人"],
                                                     ["甲公司", "13912345678", "rep_b"],
                                                     ["乙公司", "13912345679", "manager"]]})
    job = run_job("manager", path, model="lead")
    assert job.created == 2
    with app.app_context():
        assert [n.params["company"] for n in told("lead_assigned", "rep_b")] == ["甲公司"]
        assert told("lead_assigned", "manager") == []  # the importer's own lead


def test_a_web_form_lead_tells_the_owner_the_rules_chose(app: Any, client: Any, monkeypatch: Any,
                                                         lead_data: Any) -> None:  # noqa: F811
    monkeypatch.setitem(app.config, "CRM_WEBFORM_USER", "service")
    monkeypatch.setitem(app.config, "CRM_WEBFORM_TOKEN", "")
    with app.app_context():
        make_rule("Guangdong", ("rep_b",), province="广东省")
        db.session.remove()
    answer = client.post("/webform/lead", json={"company": "Web Co", "phone": "13812345678", "province": "广东"})
    assert answer.status_code == 200
    with app.app_context():
        assert [n.params["company"] for n in told("lead_assigned", "rep_b")] == ["Web Co"]


def test_a_notification_that_fails_does_not_lose_the_lead(ctx: Any, lead_data: Any,  # noqa: F811
                                                         monkeypatch: Any) -> None:
    from app.services import notifications

    make_rule("East", ("rep_b",))

    def broken(*args: Any, **kwargs: Any) -> None:
        db.session.add(Notification(user_id=user_id("rep_b"), event="lead_assigned"))
        db.session.flush()
        raise RuntimeError("template missing")

    monkeypatch.setattr(notifications, "notify", broken)
    item = leads.save_lead({"company": "Kept Ltd", "phone": "13812345678"}, user("manager"))
    db.session.commit()
    assert db.session.get(leads.Lead, item.id).owner_id == user_id("rep_b")
    assert told("lead_assigned") == []  # the half-written notice was rolled back with its savepoint


# --- import finished ---------------------------------------------------------------------------

def test_a_finished_import_tells_its_user_with_a_summary(app: Any, run_job: Any,  # noqa: F811
                                                         tmp_path: Path) -> None:
    from app.services import notifications
    from tests.app.services.importing.conftest import MANUAL_HEADERS

    path = write_xlsx(tmp_path / "客户.xlsx", {"客户": [MANUAL_HEADERS,
                                                    ["", "甲公司", "", "张三", "13812345678", "", "", "", ""],
                                                    ["", "", "", "李四", "13812345679", "", "", "", ""]]})
    job = run_job("rep_a", path)
    with app.app_context():
        notes = told("import_finished", "rep_a")
        assert len(notes) == 1  # the dry run before it tells nobody
        assert notes[0].params["file"] == "客户.xlsx"
        assert notifications.text_of(notes[0], True, language="en") == \
            "Import of 客户.xlsx finished: 1 created, 0 updated, 0 unchanged, 1 rejected."
        assert notes[0].occasion.startswith(f"import_finished:{job.id}:")


def test_without_message_params_the_summary_is_text_in_the_users_language(app: Any, run_job: Any,  # noqa: F811
                                                                           tmp_path: Path, monkeypatch: Any) -> None:
    from app.services import notifications
    from tests.app.services.importing.conftest import MANUAL_HEADERS

    monkeypatch.setattr(notifications, "MESSAGE_PARAMS", False)
    path = write_xlsx(tmp_path / "客户.xlsx", {"客户": [MANUAL_HEADERS,
                                                    ["", "甲公司", "", "张三", "13812345678", "", "", "", ""]]})
    run_job("rep_a", path)
    with app.app_context():
        (note,) = told("import_finished", "rep_a")
        assert note.params["summary"] == "1 created, 0 updated, 0 unchanged, 0 rejected."


def test_the_summary_is_kept_as_a_message_when_the_inbox_renders_those(app: Any, run_job: Any,  # noqa: F811
                                                                        tmp_path: Path, monkeypatch: Any) -> None:
    from tests.app.services.importing.conftest import MANUAL_HEADERS

    monkeypatch.setattr(notifications, "MESSAGE_PARAMS", True, raising=False)
    path = write_xlsx(tmp_path / "客户.xlsx", {"客户": [MANUAL_HEADERS,
                                                    ["", "甲公司", "", "张三", "13812345678", "", "", "", ""]]})
    run_job("rep_a", path)
    with app.app_context():
        (note,) = told("import_finished", "rep_a")
        summary = note.params["summary"]
        assert isinstance(summary, dict)  # rendered in each reader's language when shown
        assert messages.render(summary, "en") == "1 created, 0 updated, 0 unchanged, 0 rejected."


def test_a_failed_import_tells_its_user_why(app: Any, tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"not a workbook")
    from app.services.importing import jobs

    with app.app_context():
        job = jobs.create_job(user("rep_a"), "customer", path.name, path.read_bytes())
        job.mapping = {}
        db.session.commit()
        jobs.start(job, commit=False)
        job = db.session.get(type(job), job.id)
        assert job.status == "failed"
        (note,) = told("import_finished", "rep_a")
        summary = messages.render(note.params["summary"], "en")
        assert summary.startswith("failed: ") and len(summary) > len("failed: ")


# --- security alerts -------------------------------------------------------------------------

def test_a_security_alert_tells_every_active_admin_in_its_transaction(ctx: Any) -> None:
    audit.record("totp_locked", user("rep_a"), {"purpose": "login"}, user=user("rep_a"))
    (note,) = told("security_alert")
    assert note.user_id == user_id("admin")
    assert note.params["user"] == "rep_a"
    assert messages.render(note.params["action"], "en") == "Authenticator locked"  # its name, not its code
    assert notifications.text_of(note, language="zh") == "安全警报：身份验证器已锁定。"  # in the reader's language
    db.session.rollback()  # the alert's transaction rolled back: no notification either
    assert told("security_alert") == []


def test_an_ordinary_audit_entry_tells_nobody(ctx: Any) -> None:
    audit.record("login_failure", user("rep_a"), {"x": 1})
    db.session.commit()
    assert told("security_alert") == []


def test_wrong_passwords_that_raise_the_login_alert_tell_the_admins(app: Any, client: Any,
                                                                    monkeypatch: Any) -> None:
    monkeypatch.setitem(app.config, "CRM_LOGIN_LIMIT_PER_USERNAME", "2 per hour")
    for _ in range(3):
        client.post("/login/", data={"username": "rep_a", "password": "wrong-password"})
    with app.app_context():
        (note,) = told("security_alert")
        assert note.user_id == user_id("admin")
        assert note.params["user"] == "rep_a"
        assert messages.render(note.params["action"], "en") == "Logins limited after wrong passwords"
