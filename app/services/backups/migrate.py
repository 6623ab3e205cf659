"""Bring a restored (scratch or live) database to this code's migration head with Alembic,
in process, against any engine (not only the app's): the backups' "migrated to head" step."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy.engine import Engine


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(current_app.root_path).parent / "migrations"))
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def code_head() -> str | None:
    """The newest migration of this code."""
    return _script().get_current_head()


def current(engine: Engine) -> str | None:
    """The migration ``engine``'s database is at (None when never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Migrate ``engine``'s database to head; returns (before, after). Nothing runs when
    it is already there. Raises whatever a migration raises."""
    before = current(engine)
    config = _config()
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    if before == head:
        return before, head

    def steps(revision: str, _context: object) -> list:
        return script._upgrade_revs(head, revision)

    with EnvironmentContext(config, script, fn=steps, destination_rev=head) as env, engine.begin() as conn:
        env.configure(connection=conn, render_as_batch=conn.dialect.name == "sqlite")
        with env.begin_transaction():
            env.run_migrations()
    return before, current(engine)
