"""Migration a4c6e8f0b2d5 (issue 13): every existing customer's 联系人姓名/联系方式 becomes
its one primary contact (a customer without a contact name: the contact is named after the
customer), on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import flask_cli

BEFORE, CONTACTS = "9f2b4d6e8a13", "a4c6e8f0b2d5"
AT = "2026-11-30 08:00:00.000000"


def old_user(conn: Any) -> None:
    """User 1 as an older schema holds it (the owner of the old rows these tests write)."""
    conn.execute(text(
        "insert into ab_user (id, first_name, last_name, username, email, active, created_on, changed_on)"
        " values (1, 'Old', 'User', 'old', 'old@example.com', :t, :at, :at)"), {"at": AT, "t": True})


def _old_customers(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        old_user(conn)
        for pk, code, name, contact in ((1, "C20261130001", "Acme", "Zhou"), (2, "C20261130002", "Nameless Ltd", None)):
            conn.execute(text(
                "insert into customer (id, code, name, contact_name, contact_phone, owner_id, created_on,"
                " changed_on, version) values (:id, :code, :name, :contact, :phone, 1, :at, :at, 1)"),
                {"id": pk, "code": code, "name": name, "contact": contact, "phone": f"1380000000{pk}", "at": AT})
    engine.dispose()


EXPECTED = [
    (1, "PC20261130001", "Zhou", "13800000001", True, 1),
    (2, "PC20261130002", "Nameless Ltd", "13800000002", True, 1),
]


def _scenario(tmp_path: Any, url: str) -> list[tuple]:
    """Customers written at 9f2b4d6e8a13, upgraded to a4c6e8f0b2d5: the contact rows."""
    flask_cli(tmp_path, url, "db", "upgrade", BEFORE)
    _old_customers(url)
    flask_cli(tmp_path, url, "db", "upgrade", CONTACTS)
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "select customer_id, code, name, phone, is_primary, version from contact order by customer_id")).all()
    engine.dispose()
    return [(r.customer_id, r.code, r.name, r.phone, bool(r.is_primary), r.version) for r in rows]


def test_sqlite_customers_get_exactly_one_primary_contact(tmp_path: Any) -> None:
    assert _scenario(tmp_path, f"sqlite:///{tmp_path / 'old.db'}") == EXPECTED


@pytest.fixture
def postgres_database() -> Any:
    """A fresh database on the suite's PostgreSQL server (skipped on SQLite)."""
    base = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    if not base.startswith("postgresql"):
        pytest.skip("PostgreSQL only (TEST_DATABASE_URL)")
    name = f"crm_contacts_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_postgresql_customers_get_exactly_one_primary_contact(tmp_path: Any, postgres_database: str) -> None:
    assert _scenario(tmp_path, postgres_database) == EXPECTED
