"""Users online against the licence (000 §三(二)) and storage against the 80 % threshold."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from app import clock
from app.extensions import db
from app.models import Notification
from app.models.org import CrmUser
from app.services import company, notifications, settings
from app.services.monitoring import online, storage

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
Disk = namedtuple("Disk", "total used free")


def _seen(names: list[str], at: datetime) -> None:
    db.session.execute(update(CrmUser).where(CrmUser.username.in_(names)).values(last_seen_at=at))
    db.session.commit()


def test_online_now_peak_and_licence(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(company, "licensed_users", lambda: 2)
    with app.app_context(), clock.frozen(NOW):
        _seen(["admin", "rep_a", "rep_b"], NOW - timedelta(minutes=2))
        _seen(["manager"], NOW - timedelta(minutes=6))  # outside the 5-minute window
        assert online.online_now() == 3
        assert online.sample(NOW - timedelta(hours=3)) == 0  # nobody was seen then
        online.sample(NOW)
        _seen(["admin", "rep_a", "rep_b"], NOW - timedelta(minutes=30))
        assert online.online_now() == 0
        yesterday_late = NOW - timedelta(hours=15)  # 23:00 yesterday in Shanghai: not today's
        db.session.execute(online.OnlineSample.__table__.insert().values(at=yesterday_late, users=9))
        db.session.commit()
        found = online.licence()
        assert (found.now, found.peak, found.licensed) == (0, 3, 2)
        assert found.over and found.accounts_over
        assert online.peak(clock.local_today() - timedelta(days=1)) == 9
    monkeypatch.setattr(company, "licensed_users", lambda: 0)
    with app.app_context(), clock.frozen(NOW):
        assert not online.licence().over  # 0 = not limited


def test_database_and_disks_against_the_threshold(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    gib = 1024 ** 3
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: Disk(100 * gib, 85 * gib, 15 * gib))
    with app.app_context():
        usage = {u.key: u for u in storage.all_usage()}
        assert {"database", "instance", "files", "backups"} <= set(usage)
        assert usage["backups"].percent == 85.0 and usage["backups"].warn
        assert storage.database_bytes() > 0
        assert not usage["database"].warn  # a small test database on a 100 GiB disk
        settings.save({"storage_warning_percent": 90, "database_size_limit_mb": 1}, None)
        db.session.commit()
        usage = {u.key: u for u in storage.all_usage()}
        assert not usage["backups"].warn  # 85 % < 90 %
        assert usage["database"].total == storage.MB and usage["database"].warn  # over 1 MB
        assert storage.check_storage() == ["database"]
        told = db.session.scalars(select(Notification).where(Notification.event == "storage_low")).all()
        # named in each reader's language, never by its key
        assert notifications.text_of(told[0], language="en").startswith("Database is at ")
        assert notifications.text_of(told[0], language="zh").startswith("数据库 已用到上限的")
        storage.check_storage()  # once a day per thing
        assert len(db.session.scalars(select(Notification).where(Notification.event == "storage_low")).all()) \
            == len(told)
