"""Scratch databases a backup is restored into: a SQLite file, or a throw-away PostgreSQL
database on the live server (``CREATE DATABASE``, dropped after)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from app.extensions import db
from app.services.backups import common, dump


@contextmanager
def sqlite_scratch(dumped: Path) -> Iterator[Engine]:
    """An engine on the extracted SQLite file itself (it is a scratch copy already)."""
    engine = dump.sqlite_engine(dumped)
    try:
        yield engine
    finally:
        engine.dispose()


def _admin_engine() -> Engine:
    return create_engine(db.engine.url.set(database="postgres"), poolclass=NullPool,
                         isolation_level="AUTOCOMMIT")


def drop_database(name: str) -> None:
    """Drop a scratch PostgreSQL database (ends its sessions first)."""
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
                              "AND pid <> pg_backend_pid()"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


@contextmanager
def pg_scratch(dumped: Path) -> Iterator[Engine]:
    """``CREATE DATABASE crm_verify_<random>``, ``pg_restore`` the dump into it, yield an
    engine on it, drop it after (whatever happened)."""
    name = f"crm_verify_{secrets.token_hex(6)}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    engine = create_engine(db.engine.url.set(database=name), poolclass=NullPool)
    try:
        args, env = common.pg_args(db.engine.url, name)
        dump.run_tool([common.pg_tool("pg_restore"), "--no-owner", "--exit-on-error", *args, str(dumped)], env)
        yield engine
    finally:
        engine.dispose()
        drop_database(name)


def restored(kind: str, dumped: Path) -> AbstractContextManager[Engine]:
    """The scratch context for a database kind ("sqlite" | "postgresql")."""
    return sqlite_scratch(dumped) if kind == "sqlite" else pg_scratch(dumped)
