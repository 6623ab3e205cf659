"""PostgreSQL search text in side tables, indexed later for imports (issue 12)

The trigram (GIN) indexes on ``customer``, ``contact`` and ``follow_up`` cost an import most of
the database's time: pg_trgm extracts every trigram of every folded column as each row is
inserted (100,000 customers: ~2 s of server CPU for customer's four indexes, as much again
for contact's). The searched columns now have a copy in a side table per record type
(``customer_search``, ``contact_search``, ``follow_up_search``: ``id`` plus the columns),
and the trigram indexes move there, with the same expression (``lower(normalize(col, NFKC))``).

Statement triggers with transition tables keep the copy: an insert copies the new rows in the
same statement, unless the transaction set ``crm.search_deferred`` (an import's chunks,
``app.services.search.defer_indexing``): then the new rows are only noted in
``search_pending`` and ``app.services.search.index_pending`` copies them in bulk right after
the import (and every minute). A noted row is found meanwhile by a scan of the noted rows'
own columns, so search never misses one. An update copies the changed columns; a delete or
a TRUNCATE removes the copies and the notes. No foreign key ties a copy to its row: a backup
taken before this migration is restored with ``pg_restore --clean``, which drops and makes
the record tables again and could not while another table depended on their keys; the
upgrade that follows such a restore makes everything here anew from the restored rows.

SQLite keeps its FTS5 tables (``f3b5d7e9a1c2``). Without pg_trgm nothing changes here.

Revision ID: b2d4f6a8c0e1
Revises: e9f1a3b5c7d0
Create Date: 2026-12-03 07:30:00
"""
from alembic import op

revision = "b2d4f6a8c0e1"
down_revision = "e9f1a3b5c7d0"
branch_labels = None
depends_on = None

#: table -> its searched columns (as ``app.services.search.PG_SEARCH_COLUMNS``).
SIDE = {
    "customer": ("name", "code", "contact_name", "credit_code"),
    "contact": ("code", "name", "title", "email"),
    "follow_up": ("code", "content"),
}


def _trigram_indexes(bind) -> bool:
    """Whether f3b5d7e9a1c2 made the trigram indexes (pg_trgm was available)."""
    return bind.exec_driver_sql("SELECT 1 FROM pg_class WHERE relname = 'ix_customer_name_trgm'").scalar() is not None


def _functions(table: str, columns: tuple[str, ...]) -> None:
    listed = ", ".join(columns)
    new = ", ".join(f"n.{c}" for c in columns)
    op.execute(f"""
CREATE FUNCTION crm_{table}_search_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('crm.search_deferred', true) = 'on' THEN
    INSERT INTO search_pending (tbl, row_id) SELECT '{table}', n.id FROM added n ON CONFLICT DO NOTHING;
  ELSE
    INSERT INTO {table}_search (id, {listed}) SELECT n.id, {new} FROM added n
      ON CONFLICT (id) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in columns)};
  END IF;
  RETURN NULL;
END $$""")
    op.execute(f"""
CREATE FUNCTION crm_{table}_search_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE {table}_search s SET {", ".join(f"{c} = n.{c}" for c in columns)} FROM changed n
   WHERE s.id = n.id AND ({", ".join(f"s.{c}" for c in columns)}) IS DISTINCT FROM ({new});
  RETURN NULL;
END $$""")
    op.execute(f"""
CREATE FUNCTION crm_{table}_search_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM {table}_search s USING removed o WHERE s.id = o.id;
  DELETE FROM search_pending p USING removed o WHERE p.tbl = '{table}' AND p.row_id = o.id;
  RETURN NULL;
END $$""")
    op.execute(f"""
CREATE FUNCTION crm_{table}_search_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE {table}_search;
  DELETE FROM search_pending WHERE tbl = '{table}';
  RETURN NULL;
END $$""")
    op.execute(f"CREATE TRIGGER {table}_search_added AFTER INSERT ON {table} REFERENCING NEW TABLE AS added "
               f"FOR EACH STATEMENT EXECUTE FUNCTION crm_{table}_search_added()")
    op.execute(f"CREATE TRIGGER {table}_search_changed AFTER UPDATE ON {table} REFERENCING NEW TABLE AS changed "
               f"FOR EACH STATEMENT EXECUTE FUNCTION crm_{table}_search_changed()")
    op.execute(f"CREATE TRIGGER {table}_search_removed AFTER DELETE ON {table} REFERENCING OLD TABLE AS removed "
               f"FOR EACH STATEMENT EXECUTE FUNCTION crm_{table}_search_removed()")
    op.execute(f"CREATE TRIGGER {table}_search_emptied AFTER TRUNCATE ON {table} "
               f"FOR EACH STATEMENT EXECUTE FUNCTION crm_{table}_search_emptied()")


#: The trigger functions made per table (each with its trigger of the same name).
_FUNCTIONS = ("added", "changed", "removed", "emptied")


def _drop(table: str) -> None:
    """This migration's objects for ``table`` (none, or left by a restore of an older backup)."""
    for suffix in _FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS crm_{table}_search_{suffix}() CASCADE")  # and its trigger
    op.execute(f"DROP TABLE IF EXISTS {table}_search")


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _trigram_indexes(bind):
        return
    for table in SIDE:
        _drop(table)
    op.execute("DROP TABLE IF EXISTS search_pending")
    op.execute("CREATE TABLE search_pending (tbl VARCHAR(40) NOT NULL, row_id INTEGER NOT NULL, "
               "PRIMARY KEY (tbl, row_id))")
    for table, columns in SIDE.items():
        listed = ", ".join(columns)
        op.execute(f"CREATE TABLE {table}_search (id INTEGER PRIMARY KEY, "
                   + ", ".join(f"{c} TEXT" for c in columns) + ")")
        op.execute(f"INSERT INTO {table}_search (id, {listed}) SELECT id, {listed} FROM {table}")
        for column in columns:
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_{column}_trgm")
            op.execute(f"CREATE INDEX ix_{table}_search_{column}_trgm ON {table}_search "
                       f"USING gin (lower(normalize({column}, NFKC)) gin_trgm_ops)")
        _functions(table, columns)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if bind.exec_driver_sql("SELECT to_regclass('customer_search')").scalar() is None:
        return
    for table, columns in SIDE.items():
        _drop(table)
        for column in columns:
            op.execute(f"CREATE INDEX IF NOT EXISTS ix_{table}_{column}_trgm ON {table} "
                       f"USING gin (lower(normalize({column}, NFKC)) gin_trgm_ops)")
    op.execute("DROP TABLE IF EXISTS search_pending")
