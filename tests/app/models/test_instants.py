"""Instant columns (``UtcDateTime``): aware UTC in Python, UTC in the database, timestamptz on
PostgreSQL, model defaults from ``clock.utc_now`` (issue 11 §5)."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, select, text

from app import clock
from app.extensions import db
from app.models import AuditLog, Customer, FollowUp
from app.models.base import NaiveInstantWarning, UtcDateTime
from app.services import audit

AT = datetime(2026, 11, 30, 13, 9, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_default_instant_is_stored_in_utc_and_read_back_aware(app: Any, make_customer: Any) -> None:
    with clock.frozen(AT):
        pk = make_customer("rep_a")
    with app.app_context():
        customer = db.session.get(Customer, pk)
        assert customer.created_on == AT and customer.created_on.tzinfo is UTC
        stored = db.session.scalar(text("select created_on from customer where id = :id"), {"id": pk})
        if db.engine.dialect.name == "sqlite":
            assert stored == "2026-11-30 13:09:00.000000"  # UTC wall time: SQLite has no zone
        else:
            assert stored == AT  # timestamptz: the instant itself


def test_an_aware_value_in_another_zone_is_the_same_instant(app: Any, make_customer: Any,
                                                            make_follow_up: Any) -> None:
    pk = make_follow_up(make_customer("rep_a"), "rep_a",
                        followed_at=datetime(2026, 11, 30, 21, 9, tzinfo=SHANGHAI))
    with app.app_context():
        assert db.session.get(FollowUp, pk).followed_at == AT
        later = db.session.scalar(select(FollowUp.id).where(FollowUp.followed_at > datetime(2026, 11, 30, 13, 8,
                                                                                                tzinfo=UTC)))
        assert later == pk  # comparisons in SQL see instants, whatever zone the value is written in


def test_a_naive_value_is_taken_as_utc_and_warned_about(app: Any) -> None:
    kind = UtcDateTime()
    with app.app_context(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bound = kind.process_bind_param(datetime(2026, 11, 30, 13, 9), db.engine.dialect)
    assert clock.as_utc(bound) == AT
    assert [w.category for w in caught] == [NaiveInstantWarning]


def test_audit_entries_hash_naive_utc_and_verify(app: Any) -> None:
    with app.app_context():
        with clock.frozen(AT):
            audit.record("tz-check")
            db.session.commit()
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "tz-check"))
        assert entry.created_at == AT
        row = {name: getattr(entry, name) for name in audit.HASHED_COLUMNS}
        assert entry.hash == audit.entry_hash({**row, "created_at": datetime(2026, 11, 30, 13, 9)})
        assert audit.verify_chain(db.session).ok


def _instant_columns() -> list[tuple[str, str]]:
    from flask_appbuilder import Model

    return sorted((table.name, column.name) for table in Model.metadata.tables.values()
                  for column in table.columns if isinstance(column.type, UtcDateTime))


def test_every_crm_date_time_column_is_an_instant() -> None:
    """Every date-time column of ours (and FAB's ab_user ones) is a UtcDateTime; the naive
    ones left are FAB's own tables, which FAB compares with its naive clock."""
    from flask_appbuilder import Model
    from sqlalchemy import DateTime

    naive = sorted((table.name, column.name) for table in Model.metadata.tables.values()
                   for column in table.columns if isinstance(column.type, DateTime))
    assert {table for table, _ in naive} <= {"ab_api_key", "ab_register_user"}
    assert ("ab_user", "last_login") in _instant_columns() and ("follow_up", "followed_at") in _instant_columns()


def test_postgresql_columns_are_timestamptz(app: Any) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL only")
        columns = inspect(db.engine)
        for table, name in _instant_columns():
            if table not in columns.get_table_names():
                continue  # a model of a change whose migration is not here yet
            kind = next(c["type"] for c in columns.get_columns(table) if c["name"] == name)
            assert getattr(kind, "timezone", False), f"{table}.{name} is {kind}"
