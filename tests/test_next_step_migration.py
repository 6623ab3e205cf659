"""Migration a7c9e1b3d5f8 (issue 12): each existing follow-up learns whether its next step
was closed (the activity it planned done or cancelled) from the activities as they are, on
SQLite and on PostgreSQL; the table keeps its search triggers (a batch copy of the table
on SQLite dropped them: new follow-ups went unsearchable); downgrading drops the flag again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, inspect, text

from tests.conftest import flask_cli
from tests.test_contacts_migration import old_user, postgres_database  # noqa: F401 (fixture)

BEFORE, AFTER = "d9f1b3c5e7a2", "a7c9e1b3d5f8"
AT = "2026-11-30 08:00:00.000000"
#: follow-up id -> the status of the activity it planned (None: it planned none).
PLANNED = {1: "done", 2: "open", 3: None, 4: "cancelled"}


def _old_follow_ups(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        old_user(conn)
        conn.execute(text("insert into customer (id, code, name, contact_name, contact_phone, owner_id, created_on, changed_on, version)"
                          " values (1, 'C20261130001', 'Acme', 'Zhou', '13800000001', 1, :at, :at, 1)"), {"at": AT})
        for pk, status in PLANNED.items():
            conn.execute(text(
                "insert into follow_up (id, code, customer_id, followed_at, content, next_step, next_step_date,"
                " owner_id, created_on, changed_on, version) values (:id, :code, 1, :at, 'Called', 'Quote',"
                " '2026-11-29', 1, :at, :at, 1)"), {"id": pk, "code": f"G20261130{pk:03d}", "at": AT})
            if status is not None:
                conn.execute(text(
                    "insert into activity (code, kind, subject, due_at, assignee_id, customer_id, status,"
                    " from_follow_up_id, created_on, changed_on, version) values (:code, 'call', 'Quote', :at, 1, 1,"
                    " :status, :id, :at, :at, 1)"), {"code": f"A20261130{pk:03d}", "at": AT, "status": status,
                                                      "id": pk})
    engine.dispose()


def _triggers(url: str) -> set[str]:
    """The names of the follow-up table's own triggers (search noting)."""
    engine = create_engine(url)
    query = ("select name from sqlite_master where type = 'trigger' and tbl_name = 'follow_up'"
             if engine.dialect.name == "sqlite" else
             "select tgname from pg_trigger where tgrelid = 'follow_up'::regclass and not tgisinternal")
    with engine.connect() as conn:
        found = set(conn.execute(text(query)).scalars())
    engine.dispose()
    return found


#: What each run sees: the flags after the upgrade, and whether the follow-up table kept its
#: triggers after the upgrade and after the downgrade, and the flag column after the downgrade.
EXPECTED = ({1: True, 2: False, 3: False, 4: True}, True, True, False)


def _scenario(tmp_path: Any, url: str) -> tuple[dict[int, bool], bool, bool, bool]:
    """Follow-ups written at ``BEFORE``, upgraded to ``AFTER`` and downgraded again (``EXPECTED``)."""
    flask_cli(tmp_path, url, "db", "upgrade", BEFORE)
    _old_follow_ups(url)
    triggers = _triggers(url)
    flask_cli(tmp_path, url, "db", "upgrade", AFTER)
    engine = create_engine(url)
    with engine.connect() as conn:
        flags = {pk: bool(flag) for pk, flag in conn.execute(text("select id, next_step_closed from follow_up"))}
    engine.dispose()
    kept_up = bool(triggers) and _triggers(url) == triggers
    flask_cli(tmp_path, url, "db", "downgrade", BEFORE)
    engine = create_engine(url)
    column_left = "next_step_closed" in {column["name"] for column in inspect(engine).get_columns("follow_up")}
    engine.dispose()
    return flags, kept_up, _triggers(url) == triggers, column_left


def test_sqlite_follow_ups_learn_whether_their_next_step_was_closed(tmp_path: Any) -> None:
    assert _scenario(tmp_path, f"sqlite:///{tmp_path / 'old.db'}") == EXPECTED


def test_postgresql_follow_ups_learn_whether_their_next_step_was_closed(tmp_path: Any,
                                                                        postgres_database: str) -> None:  # noqa: F811
    assert _scenario(tmp_path, postgres_database) == EXPECTED
