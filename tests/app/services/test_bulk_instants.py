"""Bulk inserts convert each distinct value once (``app.services.bulk``): values equal as
Python compares them but meaning different instants stay apart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.models import FollowUp


def test_bulk_binds_each_instant_of_a_repeated_wall_time(app: Any) -> None:
    """``bulk.bound_values`` converts each distinct value once: the two instants of 1:30 on
    the night clocks go back (equal as Python compares them) stay two instants."""
    from app.extensions import db
    from app.services import bulk

    first = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    second = first.replace(fold=1)
    assert first == second
    with app.app_context():
        dialect = db.session.get_bind().dialect
        table = FollowUp.__table__
        bound = bulk.bound_values(dialect, table, ["followed_at"], [{"followed_at": first}, {"followed_at": second}])
        one = bulk.bound_values(dialect, table, ["followed_at"], [{"followed_at": second}])
    assert bound[0] != bound[1]
    assert bound[1] == one[0]



def test_bulk_instants_are_bound_as_sqlalchemy_binds_them(app: Any) -> None:
    """On SQLite a bulk row's instant is the very text SQLAlchemy writes for the column (UTC
    wall time, four-digit year, microseconds), so the ORM reads the same instant back, early
    years included (``strftime`` wrote year 999 as ``999-``, which no reader parses)."""
    from sqlalchemy import DateTime

    from app.extensions import db
    from app.services import bulk

    instants = [datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC), datetime(2026, 11, 30, 21, 9, tzinfo=ZoneInfo("Asia/Shanghai"))]
    with app.app_context():
        dialect = db.session.get_bind().dialect
        if dialect.name != "sqlite":
            pytest.skip("SQLite keeps instants as text")
        bound = bulk.bound_values(dialect, FollowUp.__table__, ["followed_at"], [{"followed_at": at} for at in instants])
        orm = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert [row[0] for row in bound] == [orm(at.astimezone(UTC).replace(tzinfo=None)) for at in instants]
    assert bound[0][0] == "0999-01-02 03:04:05.000006" and bound[1][0] == "2026-11-30 13:09:00.000000"
