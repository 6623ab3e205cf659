"""Take a consistent copy of the live database, and count its rows in that same state.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies pages while the app
keeps writing; the counts come from the copy. PostgreSQL: a ``REPEATABLE READ``
transaction exports its snapshot (``pg_export_snapshot``), counts rows in it, and
``pg_dump -Fc --snapshot`` dumps exactly that state.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from app.extensions import db
from app.services.backups import common

#: Longest a pg_dump / pg_restore may run (seconds) before the backup is failed.
TOOL_TIMEOUT = 2 * 3600


def table_counts(conn: Connection) -> dict[str, int]:
    """Rows per table (table name -> count), every table of the default schema."""
    names = sorted(inspect(conn).get_table_names())
    quote = conn.dialect.identifier_preparer.quote
    return {name: int(conn.execute(text(f"SELECT count(*) FROM {quote(name)}")).scalar() or 0) for name in names}


def chain_head(conn: Connection) -> dict[str, Any]:
    """The audit chain's head: {"seq": int, "hash": str} (seq 0 when empty or absent)."""
    try:
        row = conn.execute(text("SELECT seq, last_hash FROM audit_chain_head WHERE id = 1")).first()
    except Exception:  # a database older than the audit chain
        return {"seq": 0, "hash": ""}
    return {"seq": int(row[0]), "hash": row[1]} if row else {"seq": 0, "hash": ""}


def facts(conn: Connection) -> dict[str, Any]:
    """What the manifest records about a database state: counts, chain head, migration."""
    try:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:
        head = None
    return {"row_counts": table_counts(conn), "audit_head": chain_head(conn), "migration": head}


def sqlite_engine(path: Path) -> Engine:
    """An engine on a SQLite file (no pool: files are closed when done)."""
    return create_engine(f"sqlite:///{path}", poolclass=NullPool)


def copy_sqlite(source: sqlite3.Connection, target: Path) -> None:
    """Copy a SQLite database into ``target`` with the online backup API, in ONE step: a
    copy made in steps starts again whenever another connection writes between two steps
    (page views write presence and timings), so on a busy instance it might never end. In
    WAL mode one step is one read transaction: writers go on meanwhile and the copy is the
    database as of its start."""
    destination = sqlite3.connect(target)
    try:
        source.backup(destination, pages=-1)
    finally:
        destination.close()


def sqlite_snapshot(target: Path) -> dict[str, Any]:
    """Copy the live SQLite database to ``target``; returns ``facts`` of the copy."""
    raw = db.engine.raw_connection()
    try:
        copy_sqlite(raw.driver_connection, target)
    finally:
        raw.close()
    engine = sqlite_engine(target)
    try:
        with engine.connect() as conn:
            return facts(conn)
    finally:
        engine.dispose()


def run_tool(argv: list[str], env: dict[str, str], timeout: int = TOOL_TIMEOUT) -> None:
    """Run a PostgreSQL tool; ``RuntimeError`` with its last error line when it fails."""
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"{Path(argv[0]).name} failed: {lines[-1] if lines else done.returncode}")


def pg_snapshot(target: Path) -> dict[str, Any]:
    """``pg_dump -Fc`` of the live database into ``target``; ``facts`` taken in the same
    snapshot (``REPEATABLE READ`` + ``pg_export_snapshot`` + ``pg_dump --snapshot``)."""
    url = db.engine.url
    args, env = common.pg_args(url)
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar()
            found = facts(conn)
            run_tool([common.pg_tool("pg_dump"), "-Fc", "--no-owner", f"--snapshot={snapshot}", "-f", str(target),
                      *args], env)
    return found


def snapshot(target_dir: Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """Dump the live database into ``target_dir``: (dump file, facts)."""
    if kind == "sqlite":
        target = target_dir / common.SQLITE_MEMBER
        return target, sqlite_snapshot(target)
    target = target_dir / common.PG_MEMBER
    return target, pg_snapshot(target)
