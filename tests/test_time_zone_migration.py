"""Migration 8e1a3c5d7f92: stored date-times become UTC instants without losing a row or
breaking the audit hash chain (issue 11 §5).

Rows written before it hold the server's naive ``datetime.now()``; the migration reads them
in ``CRM_LEGACY_NAIVE_ZONE`` (default: the machine's zone). A customer created at 21:09 on a
Shanghai server is 13:09 UTC afterwards; entries hashed with that wall time still verify, and
so do the entries written after the migration.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.services.audit import entry_hash
from config import BASE_DIR

BEFORE = "7d4f2a9c1b36"
TZ_REVISION = "8e1a3c5d7f92"
WRITTEN = "2026-11-30 21:09:00.000000"  # the naive wall time a Shanghai server wrote
INSTANT = datetime(2026, 11, 30, 13, 9, tzinfo=UTC)


def _cli(tmp_path: Any, url: str, *command: str, zone: str | None = None) -> str:
    """``flask --app app:create_app <command>`` on ``url`` with ``CRM_LEGACY_NAIVE_ZONE=zone``."""
    env = {"DATABASE_URL": url, "CRM_INSTANCE_DIR": str(tmp_path), "CRM_SCHEDULER": "0", "PATH": "/usr/bin:/bin"}
    if zone:
        env["CRM_LEGACY_NAIVE_ZONE"] = zone
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app", *command], cwd=BASE_DIR,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _old_rows(url: str) -> None:
    """A customer and two chained audit entries, as the code before the migration wrote them."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "insert into ab_user (id, first_name, last_name, username, email, active, last_login, created_on,"
            " changed_on) values (1, 'Old', 'User', 'old', 'old@example.com', :t, :at, :at, :at)"),
            {"at": WRITTEN, "t": True})
        conn.execute(text(
            "insert into customer (id, code, name, contact_phone, owner_id, created_on, changed_on, version)"
            " values (1, 'C20261130001', 'Written at 21:09', '13800138000', 1, :at, :at, 1)"), {"at": WRITTEN})
        prev = ""
        for seq in (1, 2):
            row = {"seq": seq, "created_at": datetime.fromisoformat(WRITTEN), "user_id": None, "user_name": None,
                   "ip": None, "user_agent": None, "source": "script", "action": f"old-{seq}",
                   "object_type": None, "object_id": None, "changes": None, "reason": None, "detail": None,
                   "prev_hash": prev}
            row["hash"] = prev = entry_hash(row)  # naive created_at: the hash the old code computed
            conn.execute(text(
                "insert into audit_log (seq, created_at, source, action, prev_hash, hash)"
                " values (:seq, :created_at, :source, :action, :prev_hash, :hash)"),
                {**row, "created_at": WRITTEN})
        conn.execute(text("update audit_chain_head set seq = 2, last_hash = :h where id = 1"), {"h": prev})
    engine.dispose()


def _stored(url: str) -> tuple[Any, Any, Any]:
    engine = create_engine(url)
    with engine.connect() as conn:
        created = conn.scalar(text("select created_on from customer where id = 1"))
        assert conn.scalar(text("select last_login from ab_user where id = 1")) == created  # FAB's columns too
        head = conn.execute(text("select legacy_seq, legacy_zone from audit_chain_head where id = 1")).one()
    engine.dispose()
    return created, head.legacy_seq, head.legacy_zone


def _as_instant(value: Any) -> datetime:
    """A stored value as an aware instant (SQLite keeps naive UTC text, PostgreSQL timestamptz)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _scenario(tmp_path: Any, url: str) -> tuple:
    """Rows written on a Shanghai server, migrated, then ``crm init``: (the stored instant, the
    legacy marks, audit-verify after the migration, after init, the newest entry's age in s)."""
    _cli(tmp_path, url, "db", "upgrade", BEFORE)
    _old_rows(url)
    _cli(tmp_path, url, "db", "upgrade", TZ_REVISION, zone="Asia/Shanghai")
    created, legacy_seq, legacy_zone = _stored(url)
    migrated = _cli(tmp_path, url, "crm", "audit-verify")
    _cli(tmp_path, url, "db", "upgrade")
    _cli(tmp_path, url, "crm", "init")  # writes new entries (roles, permissions), hashed in UTC
    report = _cli(tmp_path, url, "crm", "audit-verify")
    engine = create_engine(url)
    with engine.connect() as conn:
        latest = conn.scalar(text("select created_at from audit_log order by seq desc limit 1"))
    engine.dispose()
    age = abs((datetime.now(UTC) - _as_instant(latest)).total_seconds())
    return _as_instant(created), (legacy_seq, legacy_zone), migrated, report, age


def _check(observed: tuple) -> None:
    created, legacy, migrated, report, age = observed
    assert created == INSTANT  # 21:09 in Shanghai is 13:09 UTC
    assert legacy == (2, "Asia/Shanghai")
    assert "Audit log intact: 2 entries verified." in migrated
    verified = re.search(r"Audit log intact: (\d+) entries verified", report)
    assert verified and int(verified.group(1)) > 2  # init's new entries chained onto the migrated ones
    assert age < 600  # a new entry: now, in UTC


def test_sqlite_rows_written_in_shanghai_become_utc_instants_and_the_chain_verifies(tmp_path: Any) -> None:
    created, legacy, migrated, report, age = _scenario(tmp_path, f"sqlite:///{tmp_path / 'old.db'}")
    assert created == INSTANT and legacy == (2, "Asia/Shanghai")  # 21:09 in Shanghai is 13:09 UTC
    _check((created, legacy, migrated, report, age))


def test_sqlite_rows_from_a_utc_server_are_kept_as_they_are(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'utc.db'}"
    _cli(tmp_path, url, "db", "upgrade", BEFORE)
    _old_rows(url)
    _cli(tmp_path, url, "db", "upgrade", TZ_REVISION, zone="UTC")
    created, legacy_seq, legacy_zone = _stored(url)
    assert created == WRITTEN and (legacy_seq, legacy_zone) == (None, None)
    assert "Audit log intact: 2 entries verified." in _cli(tmp_path, url, "crm", "audit-verify")


def test_sqlite_downgrade_gives_the_wall_time_back(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'down.db'}"
    _cli(tmp_path, url, "db", "upgrade", BEFORE)
    _old_rows(url)
    _cli(tmp_path, url, "db", "upgrade", TZ_REVISION, zone="Asia/Shanghai")
    _cli(tmp_path, url, "db", "downgrade", BEFORE, zone="Asia/Shanghai")
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(text("select created_on from customer where id = 1")) == WRITTEN
    engine.dispose()


def test_an_unknown_legacy_zone_stops_the_migration_before_it_changes_anything(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    _cli(tmp_path, url, "db", "upgrade", BEFORE)
    _old_rows(url)
    env = {"DATABASE_URL": url, "CRM_INSTANCE_DIR": str(tmp_path), "CRM_SCHEDULER": "0", "PATH": "/usr/bin:/bin",
           "CRM_LEGACY_NAIVE_ZONE": "Mars/Olympus"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app", "db", "upgrade"],
                            cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(text("select created_on from customer where id = 1")) == WRITTEN
        assert conn.scalar(text("select version_num from alembic_version")) == BEFORE
    engine.dispose()


@pytest.fixture
def postgres_database() -> Any:
    """A fresh database on the suite's PostgreSQL server (skipped on SQLite)."""
    base = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    if not base.startswith("postgresql"):
        pytest.skip("PostgreSQL only (TEST_DATABASE_URL)")
    name = f"crm_tz_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_postgresql_rows_written_in_shanghai_become_timestamptz(tmp_path: Any, postgres_database: str) -> None:
    created, legacy, migrated, report, age = _scenario(tmp_path, postgres_database)
    assert created == INSTANT and legacy == (2, "Asia/Shanghai")
    _check((created, legacy, migrated, report, age))
    engine = create_engine(postgres_database)
    with engine.connect() as conn:
        kind = conn.scalar(text("select data_type from information_schema.columns"
                                " where table_name = 'customer' and column_name = 'created_on'"))
    engine.dispose()
    assert kind == "timestamp with time zone"
