"""PostgreSQL: an import's chunk notes its new rows as one span, not one row each (issue 12)

While an import defers search indexing (``crm.search_deferred``, b2d4f6a8c0e1), the insert
triggers noted every new row in ``search_pending``: an ``INSERT ... ON CONFLICT`` of 100,000
rows per searched table, ~0.6 s of the server's time for each of ``customer`` and ``contact``
in a 100,000-customer import, inside the chunks' transactions. The ids of one chunk's
statement are consecutive (the writer takes them from the sequence), so the trigger now notes
``(table, lowest id, highest id)`` in ``search_pending_span``; ``app.services.search``
turns spans into row notes when it indexes (``index_pending``) and scans a span's rows
meanwhile, as it scans noted rows. A statement of fewer than 50 rows (the writer's
``executemany`` inserts one row per statement), or whose ids are sparse (fewer than half the
ids of its range are its own), still notes its rows one by one. A span may cover rows other
transactions inserted: they are indexed again, which changes nothing. A deleted row in a span
is simply not found there; a delete that leaves a span without rows, or a TRUNCATE, forgets it.

SQLite (FTS5) notes as before. Without the side tables (no pg_trgm) nothing changes here.

Revision ID: c8e0a2b4d6f9
Revises: e9c55ffedf1e
Create Date: 2026-12-04 12:30:00
"""
from alembic import op

revision = "c8e0a2b4d6f9"
down_revision = "e9c55ffedf1e"
branch_labels = None
depends_on = None

#: The tables with side tables (b2d4f6a8c0e1) -> their searched columns.
SIDE = {
    "customer": ("name", "code", "contact_name", "credit_code"),
    "contact": ("code", "name", "title", "email"),
    "follow_up": ("code", "content"),
}


def _side_tables(bind) -> bool:
    return bind.dialect.name == "postgresql" and bind.exec_driver_sql(
        "SELECT to_regclass('customer_search')").scalar() is not None


def _copy_now(table: str, columns: tuple[str, ...]) -> str:
    """The trigger's indexing in the statement (b2d4f6a8c0e1, unchanged)."""
    listed = ", ".join(columns)
    new = ", ".join(f"n.{c}" for c in columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    return (f"INSERT INTO {table}_search (id, {listed}) SELECT n.id, {new} FROM added n\n"
            f"      ON CONFLICT (id) DO UPDATE SET {updates};")


def _added(table: str, columns: tuple[str, ...], spans: bool) -> None:
    if spans:
        noted = f"""DECLARE lo integer; hi integer; cnt bigint;
BEGIN
  IF current_setting('crm.search_deferred', true) = 'on' THEN
    SELECT min(a.id), max(a.id), count(*) INTO lo, hi, cnt FROM added a;
    IF cnt = 0 THEN
      RETURN NULL;
    ELSIF cnt >= 50 AND hi::bigint - lo < 2 * cnt THEN
      INSERT INTO search_pending_span (tbl, low_id, high_id) VALUES ('{table}', lo, hi);
    ELSE
      INSERT INTO search_pending (tbl, row_id) SELECT '{table}', a.id FROM added a ON CONFLICT DO NOTHING;
    END IF;"""
    else:
        noted = f"""BEGIN
  IF current_setting('crm.search_deferred', true) = 'on' THEN
    INSERT INTO search_pending (tbl, row_id) SELECT '{table}', n.id FROM added n ON CONFLICT DO NOTHING;"""
    op.execute(f"""
CREATE OR REPLACE FUNCTION crm_{table}_search_added() RETURNS trigger LANGUAGE plpgsql AS $$
{noted}
  ELSE
    {_copy_now(table, columns)}
  END IF;
  RETURN NULL;
END $$""")


def _emptied(table: str, spans: bool) -> None:
    forget = f"\n  DELETE FROM search_pending_span WHERE tbl = '{table}';" if spans else ""
    op.execute(f"""
CREATE OR REPLACE FUNCTION crm_{table}_search_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE {table}_search;
  DELETE FROM search_pending WHERE tbl = '{table}';{forget}
  RETURN NULL;
END $$""")


def _removed(table: str, spans: bool) -> None:
    # A span none of whose rows is left goes (as a deleted row's note does). One that
    # ``index_pending`` holds is skipped: it is copying and dropping it anyway, and waiting for
    # it could deadlock (it may wait for a note this delete removed).
    declare, forget = "", ""
    if spans:
        declare = "DECLARE lo integer; hi integer;\n"
        forget = f"""
  SELECT min(o.id), max(o.id) INTO lo, hi FROM removed o;
  DELETE FROM search_pending_span WHERE ctid IN (
    SELECT s.ctid FROM search_pending_span s WHERE s.tbl = '{table}' AND s.low_id <= hi AND s.high_id >= lo
       AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id BETWEEN s.low_id AND s.high_id)
       FOR UPDATE SKIP LOCKED);"""
    op.execute(f"""
CREATE OR REPLACE FUNCTION crm_{table}_search_removed() RETURNS trigger LANGUAGE plpgsql AS $$
{declare}BEGIN
  DELETE FROM {table}_search s USING removed o WHERE s.id = o.id;
  DELETE FROM search_pending p USING removed o WHERE p.tbl = '{table}' AND p.row_id = o.id;{forget}
  RETURN NULL;
END $$""")


def upgrade():
    if not _side_tables(op.get_bind()):
        return
    # anew: after a restore of a backup from before this migration (``--clean`` leaves tables the
    # backup does not hold) old spans would name the restored rows
    op.execute("DROP TABLE IF EXISTS search_pending_span")
    op.execute("CREATE TABLE search_pending_span (tbl VARCHAR(40) NOT NULL, "
               "low_id INTEGER NOT NULL, high_id INTEGER NOT NULL)")
    for table, columns in SIDE.items():
        _added(table, columns, spans=True)
        _removed(table, spans=True)
        _emptied(table, spans=True)


def downgrade():
    if not _side_tables(op.get_bind()):
        return
    for table, columns in SIDE.items():
        _added(table, columns, spans=False)
        _removed(table, spans=False)
        _emptied(table, spans=False)
        op.execute(f"INSERT INTO search_pending (tbl, row_id) SELECT '{table}', t.id FROM {table} t "
                   f"JOIN search_pending_span s ON s.tbl = '{table}' AND t.id BETWEEN s.low_id AND s.high_id "
                   "ON CONFLICT DO NOTHING")
    op.execute("DROP TABLE IF EXISTS search_pending_span")
