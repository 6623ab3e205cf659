"""The daily checklist (000 附录2): green on a healthy fixture, red per line when its
condition fails; stored once per day (a re-run replaces it); red lines tell the admins."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from app import clock
from app.extensions import db
from app.models import AuditLog, Customer, Notification
from app.models.dictionaries import CustomerSource, Industry
from app.models.operations import BackupRun, DailyCheck, EndpointTiming, ErrorEvent, OnlineSample, SlowRequest
from app.models.org import CrmUser
from app.services import audit, company, notifications
from app.services.monitoring import checklist

pytestmark = pytest.mark.usefixtures("shanghai")
NOW = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # 08:00 on 30 November in Shanghai
DAY = date(2026, 11, 30)
YESTERDAY = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)  # noon on the 29th in Shanghai


@pytest.fixture
def healthy(app: Any, make_customer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(company, "licensed_users", lambda: 10)
    with app.app_context():
        industry, source = db.session.scalars(select(Industry.id)).first(), db.session.scalars(
            select(CustomerSource.id)).first()
    make_customer("rep_a", industry_id=industry, source_id=source, contact_name="Li Lei")
    with app.app_context():
        db.session.execute(update(CrmUser).values(last_login=NOW - timedelta(days=1)))
        db.session.add(BackupRun(kind="scheduled", status="ok", started_at=NOW - timedelta(hours=6),
                                 finished_at=NOW - timedelta(hours=6), verify_status="passed",
                                 second_copy_path="/copy/a.tar", copied_at=NOW - timedelta(hours=6)))
        db.session.add(EndpointTiming(endpoint="CustomerView.list", minute=YESTERDAY, count=20, total_ms=2000,
                                      max_ms=400, buckets=json.dumps({"100": 19, "500": 1})))
        db.session.add(OnlineSample(at=YESTERDAY, users=4))
        db.session.commit()


def _lines(app: Any) -> dict[str, bool]:
    with app.app_context(), clock.frozen(NOW):
        check = checklist.run()
        return {line["key"]: line["ok"] for line in checklist.lines_of(check)}


def _red(app: Any) -> set[str]:
    return {key for key, ok in _lines(app).items() if not ok}


def test_a_healthy_day_is_all_green_and_stored_once(app: Any, healthy: None) -> None:
    assert _lines(app) == dict.fromkeys(("backup", "performance", "permissions", "data", "logs"), True)
    _lines(app)  # again: replaces the day's row
    with app.app_context():
        rows = db.session.scalars(select(DailyCheck)).all()
        assert [(r.day, r.ok) for r in rows] == [(DAY, True)]
        assert not db.session.scalars(select(Notification).where(Notification.event == "checklist_red")).all()


def test_no_backup_or_a_failed_restore_test_or_no_copy_is_red(app: Any, healthy: None) -> None:
    with app.app_context():
        run = db.session.scalars(select(BackupRun)).one()
        run.second_copy_path = None
        db.session.commit()
    assert _red(app) == {"backup"}
    with app.app_context():
        db.session.execute(update(BackupRun).values(second_copy_path="/copy/a.tar", verify_status="failed"))
        db.session.commit()
    assert _red(app) == {"backup"}
    with app.app_context():
        db.session.execute(update(BackupRun).values(started_at=NOW - timedelta(days=3), verify_status="passed"))
        db.session.commit()
    assert _red(app) == {"backup"}
    with app.app_context():
        told = db.session.scalars(select(Notification).where(Notification.event == "checklist_red")).all()
        assert told and all(notifications.text_of(n, language="en") == (
            "The daily checklist of 2026-11-30 has red lines: Data backup: integrity and restore test.")
            for n in told)


def test_the_red_lines_notification_names_the_lines_in_each_reader_s_language(app: Any, healthy: None,
                                                                               make_customer: Any) -> None:
    make_customer("rep_b")  # no industry, contact or source: the data line is red too
    with app.app_context():
        db.session.execute(update(BackupRun).values(verify_status="failed"))
        db.session.commit()
    assert _red(app) == {"backup", "data"}
    with app.app_context():
        told = db.session.scalars(select(Notification).where(Notification.event == "checklist_red")).first()
        english = notifications.text_of(told, language="en")
        chinese = notifications.text_of(told, language="zh")
    assert "Data backup: integrity and restore test, Data accuracy: complete customers, duplicates" in english
    assert "数据备份：备份完整性、恢复测试结果" in chinese and "Data backup" not in chinese
    for text in (english, chinese):
        assert "backup," not in text and ": backup" not in text and "data." not in text


def test_slow_pages_or_a_peak_over_the_licence_is_red(app: Any, healthy: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with app.app_context():
        db.session.add(SlowRequest(at=YESTERDAY, endpoint="CustomerView.list", path="/customers/", ms=6200))
        db.session.commit()
    assert _red(app) == {"performance"}
    with app.app_context():
        db.session.query(SlowRequest).delete()
        db.session.add(EndpointTiming(endpoint="ReportView.show", minute=YESTERDAY, count=10, total_ms=40000,
                                      max_ms=4800, buckets=json.dumps({"3000": 2, "5000": 8})))
        db.session.commit()
    assert _red(app) == {"performance"}  # p95 ≤ 5000 ms is over 3 s
    with app.app_context():
        db.session.query(EndpointTiming).filter(EndpointTiming.endpoint == "ReportView.show").delete()
        db.session.commit()
    monkeypatch.setattr(company, "licensed_users", lambda: 3)
    assert _red(app) == {"performance"}  # yesterday's peak 4 > 3


def test_flagged_accounts_are_red_and_named(app: Any, healthy: None) -> None:
    with app.app_context():
        db.session.execute(update(CrmUser).where(CrmUser.username == "viewer").values(last_login=None))
        db.session.commit()
    assert _red(app) == {"permissions"}
    with app.app_context():
        line = checklist.lines_of(db.session.scalars(select(DailyCheck)).one())[2]
        assert list(line["detail"]["flagged"]) == ["viewer"]


def test_incomplete_customers_or_duplicates_are_red(app: Any, healthy: None, make_customer: Any) -> None:
    make_customer("rep_b")  # no industry, contact or source
    assert _red(app) == {"data"}
    with app.app_context():
        assert checklist.incomplete_customers() == 1
        db.session.execute(update(Customer).values(archived_at=NOW))  # archived ones do not count
        db.session.commit()
        assert checklist.incomplete_customers() == 0


def test_errors_or_alerts_yesterday_are_red_sensitive_operations_listed(app: Any, healthy: None) -> None:
    with app.app_context(), clock.frozen(YESTERDAY):
        audit.record("step_up_success", None, {"action": "contact.reveal"})
        audit.record("step_up_success", None, {"action": "contact.reveal"})
        audit.record("step_up_success", None, {"action": "customer.merge"})
        db.session.commit()
    assert _lines(app)["logs"] is True  # sensitive operations are listed, not a problem
    with app.app_context():
        line = checklist.lines_of(db.session.scalars(select(DailyCheck)).one())[4]
        assert line["detail"]["sensitive"] == {"contact.reveal": 2, "customer.merge": 1}
        db.session.add(ErrorEvent(at=YESTERDAY, where="CustomerView.list", kind="ValueError"))
        db.session.commit()
    assert _red(app) == {"logs"}
    with app.app_context():
        db.session.query(ErrorEvent).delete()
        db.session.commit()
        with clock.frozen(YESTERDAY):
            audit.record("audit_chain_broken", None, {"seq": 1})
            db.session.commit()
    assert _red(app) == {"logs"}
    with app.app_context():
        assert db.session.scalars(select(AuditLog).where(AuditLog.action == "audit_chain_broken")).all()


def test_a_verified_manual_backup_counts_when_the_nightly_one_failed(app: Any, healthy: None) -> None:
    """The nightly backup failed, then an admin took one by hand and it verified: the day
    is backed up, the line is green (and names the good backup, not the failed one)."""
    with app.app_context():
        db.session.execute(update(BackupRun).values(status="failed", verify_status=None))
        manual = BackupRun(kind="manual", status="ok", started_at=NOW - timedelta(hours=2),
                           finished_at=NOW - timedelta(hours=2), verify_status="passed",
                           second_copy_path="/copy/b.tar", copied_at=NOW - timedelta(hours=2))
        db.session.add(manual)
        db.session.commit()
        manual_id = manual.id
    assert "backup" not in _red(app)
    with app.app_context(), clock.frozen(NOW):
        line = next(line for line in checklist.lines_of(checklist.run()) if line["key"] == "backup")
        assert line["figure"] == f"#{manual_id}"
