"""Migrations own the schema: the migrated database matches the models, and a new install works."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from app.extensions import db
from app.models.base import compared
from app.services import search
from config import BASE_DIR

MIGRATIONS = BASE_DIR / "migrations"


def _target_metadata() -> list:
    """The same list as ``get_metadata()`` in migrations/env.py (that module cannot be imported)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from flask_appbuilder import Model

    import app.models  # noqa: F401
    from app.scheduler import JOB_TABLE

    return [Model.metadata, SQLAlchemyJobStore(url="sqlite://", tablename=JOB_TABLE).jobs_t.metadata]


def _head() -> str:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def test_models_and_migrated_schema_agree(ctx):
    with db.engine.connect() as conn:
        # The quick search's text indexes (FTS5 tables, trigram indexes) are derived structures the
        # migration owns outside the models (app.services.search.is_search_index).
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_name": lambda name, kind, parent: not search.is_search_index(name),
            "include_object": compared})  # the stamps' keys: declared, not checked by the database
        assert compare_metadata(context, _target_metadata()) == []
        assert context.get_current_revision() == _head()


def test_new_install_upgrades_an_empty_database_and_seeds_roles(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {"DATABASE_URL": url, "CRM_INSTANCE_DIR": str(tmp_path), "CRM_SCHEDULER": "0", "PATH": "/usr/bin:/bin"}
    flask = [sys.executable, "-m", "flask", "--app", "app:create_app"]
    for command in (["db", "upgrade"], ["crm", "init"]):
        result = subprocess.run(flask + command, cwd=BASE_DIR, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]

    engine = create_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert {"customer", "follow_up", "ab_user", "apscheduler_jobs", "alembic_version"} <= tables
    with engine.connect() as conn:
        assert conn.scalar(text("select version_num from alembic_version")) == _head()
        scopes = dict(conn.execute(text(
            "select r.name, s.scope from role_data_scope s join ab_role r on r.id = s.role_id")).all())
    engine.dispose()
    assert scopes == {"Admin": "all", "Sales Rep": "own", "Sales Manager": "department",
                      "Customer Service": "all", "Read Only": "all"}
