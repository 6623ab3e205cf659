"""Bulk inserts convert each distinct value once (``app.services.bulk``): values equal as
Python compares them but meaning different instants stay apart."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

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
