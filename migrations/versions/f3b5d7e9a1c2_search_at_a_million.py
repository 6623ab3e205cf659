"""search at a million: indexes for quick search and the customer page (issue 12)

Contains-search ("the name contains 华腾科技7") through an index instead of a scan of every
row in scope:

- SQLite: FTS5 tables with the trigram tokenizer (SQLite 3.34+), external content
  (``customer``, ``follow_up``, ``contact``, ``lead``), kept current by triggers written in
  plain SQL (no application function: any connection may write customers, the sqlite3 shell
  included). Updates and deletes change the index at once; inserts are noted in
  ``search_pending`` and indexed in bulk when the transaction commits.
- PostgreSQL: ``pg_trgm`` GIN indexes on the folded columns (``lower(normalize(col, NFKC))``,
  the expression ``app.services.search.folded`` compares), created only when the extension
  is available (or can be created); without it search falls back to the bounded scan.

The names are listed in ``app.services.search.SEARCH_INDEX_NAMES`` (schema comparisons skip
them: they are derived data, not part of the models).

Revision ID: f3b5d7e9a1c2
Revises: e2a4c6e8f0b1
Create Date: 2026-12-01 00:05:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f3b5d7e9a1c2'
down_revision = 'e2a4c6e8f0b1'
branch_labels = None
depends_on = None

#: FTS table -> (content table, indexed columns). Same columns as the search compares.
FTS = {
    "customer_search": ("customer", ("name", "code", "contact_name", "credit_code")),
    "follow_up_search": ("follow_up", ("code", "content")),
    "contact_search": ("contact", ("code", "name", "title", "email")),
    "lead_search": ("lead", ("code", "company", "contact_name", "province", "city", "status")),
}
#: PostgreSQL trigram indexes: name -> (table, column).
TRGM = {
    f"ix_{table}_{column}_trgm": (table, column)
    for table, columns in (("customer", ("name", "code", "contact_name", "credit_code")),
                           ("follow_up", ("code", "content")),
                           ("contact", ("code", "name", "title", "email")))
    for column in columns
}


def _sqlite_fts_available(bind) -> bool:
    """FTS5 with the trigram tokenizer (SQLite 3.34+) compiled in."""
    try:
        bind.exec_driver_sql("CREATE VIRTUAL TABLE temp.crm_fts_probe USING fts5(x, tokenize='trigram')")
    except sa.exc.OperationalError:
        return False
    bind.exec_driver_sql("DROP TABLE temp.crm_fts_probe")
    return True


def _sqlite_upgrade(bind) -> None:
    if not _sqlite_fts_available(bind):
        return
    # A new row is only noted here (an FTS insert per row from a trigger costs ~30 us: SQLite
    # flushes the index at every triggered statement); the commit indexes the noted rows in one
    # INSERT ... SELECT (app.services.search._index_pending), in the same transaction.
    op.execute("CREATE TABLE search_pending (tbl VARCHAR(40) NOT NULL, row_id INTEGER NOT NULL, "
               "PRIMARY KEY (tbl, row_id))")
    for name, (table, columns) in FTS.items():
        listed = ", ".join(columns)
        new = ", ".join(f"new.{c}" for c in columns)
        old = ", ".join(f"old.{c}" for c in columns)
        pending = f"SELECT 1 FROM search_pending WHERE tbl = '{table}' AND row_id = "
        op.execute(f"CREATE VIRTUAL TABLE {name} USING fts5({listed}, tokenize='trigram', "
                   f"content='{table}', content_rowid='id')")
        op.execute(f"CREATE TRIGGER {name}_ai AFTER INSERT ON {table} BEGIN "
                   f"INSERT OR IGNORE INTO search_pending (tbl, row_id) VALUES ('{table}', new.id); END")
        op.execute(f"CREATE TRIGGER {name}_ad AFTER DELETE ON {table} BEGIN "
                   f"INSERT INTO {name}({name}, rowid, {listed}) SELECT 'delete', old.id, {old} "
                   f"WHERE NOT EXISTS ({pending}old.id); "
                   f"DELETE FROM search_pending WHERE tbl = '{table}' AND row_id = old.id; END")
        op.execute(f"CREATE TRIGGER {name}_au AFTER UPDATE OF {listed} ON {table} "
                   f"WHEN NOT EXISTS ({pending}new.id) BEGIN "
                   f"INSERT INTO {name}({name}, rowid, {listed}) VALUES ('delete', old.id, {old}); "
                   f"INSERT INTO {name}(rowid, {listed}) VALUES (new.id, {new}); END")
        op.execute(f"INSERT INTO {name}({name}) VALUES ('rebuild')")  # the rows already there


def _postgresql_upgrade(bind) -> None:
    available = bind.exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").scalar()
    if not available:
        return
    try:
        with bind.begin_nested():  # a role without CREATE on the database: no index, the scan stays
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError:
        return
    for name, (table, column) in TRGM.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                   f"USING gin (lower(normalize({column}, NFKC)) gin_trgm_ops)")


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite_upgrade(bind)
    elif bind.dialect.name == "postgresql":
        _postgresql_upgrade(bind)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in FTS:
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {name}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_pending")
    elif bind.dialect.name == "postgresql":
        for name in TRGM:
            op.execute(f"DROP INDEX IF EXISTS {name}")
