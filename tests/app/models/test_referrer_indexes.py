"""Deleting or merging a record finds the rows that refer to it by an index (issue 12):
a foreign key's check or ``ON DELETE`` action otherwise reads the whole child table for
every parent row deleted, so erasing or merging one customer grew with every table."""

from __future__ import annotations

from typing import Any

from flask_appbuilder import Model
from sqlalchemy import ForeignKeyConstraint, Table, text

import app.models  # noqa: F401  (every table in the metadata)
from app.extensions import db

#: Parents that are settings, not records: a handful of rows an admin edits, deleted rarely
#: and one at a time (people are deactivated, dictionary entries retired), so one read of
#: each referring table per deletion is acceptable. Every other parent's referrers are indexed.
SETTINGS = frozenset({
    "ab_user", "ab_role", "ab_permission", "ab_view_menu", "ab_permission_view", "ab_group",
    "department", "assignment_rule", "transfer_rule", "sla_policy", "work_calendar",
    "approval_policy", "activity_template", "product", "transfer_schedule",
})


def _settings(name: str) -> bool:
    return name in SETTINGS or name.startswith("dict_")


def _leads_an_index(table: Table, columns: list[str]) -> bool:
    keyed = [list(table.primary_key.columns.keys())]
    keyed += [[c.name for c in index.columns] for index in table.indexes]
    keyed += [[c.name for c in constraint.columns] for constraint in table.constraints
              if constraint.__class__.__name__ == "UniqueConstraint"]
    return any(found[:len(columns)] == columns for found in keyed)


def _referrers() -> list[tuple[str, list[str], str]]:
    found = []
    for table in Model.metadata.sorted_tables:
        for constraint in table.constraints:
            if isinstance(constraint, ForeignKeyConstraint) and not _settings(constraint.referred_table.name):
                found.append((table.name, [c.name for c in constraint.columns], constraint.referred_table.name))
    return found


def test_every_record_a_row_refers_to_is_found_back_by_an_index() -> None:
    referrers = _referrers()
    assert ("activity", ["follow_up_id"], "follow_up") in referrers  # the walk sees the tables
    missing = [f"{table}.{'/'.join(columns)} -> {parent}" for table, columns, parent in referrers
               if not _leads_an_index(Model.metadata.tables[table], columns)]
    assert missing == []


def _plan(table: str, column: str) -> str:
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL enable_seqscan = off"))  # test tables are tiny
        rows = connection.execute(text(f"EXPLAIN SELECT 1 FROM {table} WHERE {column} = 1"))
        return "\n".join(row[0] for row in rows)
    rows = connection.execute(text(f"EXPLAIN QUERY PLAN SELECT 1 FROM {table} WHERE {column} = :parent"), {"parent": 1})
    return "\n".join(row[-1] for row in rows)


def test_the_lookup_a_deletion_runs_reads_the_index_on_this_database(ctx: Any) -> None:
    """``column = parent id`` (what the check and the action run) uses the index, the partial
    ones (``column IS NOT NULL``) included: SQLite and PostgreSQL both prove the predicate."""
    for table, columns, _parent in _referrers():
        plan = _plan(table, columns[0])
        assert "Seq Scan" not in plan and "SCAN " not in plan, (table, columns, plan)  # SQLite: SEARCH
    db.session.rollback()
