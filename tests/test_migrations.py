"""Migrations own the schema: the migrated database matches the models exactly."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.extensions import db
from config import BASE_DIR


def _target_metadata():
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from flask_appbuilder import Model

    from app.scheduler import JOB_TABLE

    return [Model.metadata, SQLAlchemyJobStore(url="sqlite://", tablename=JOB_TABLE).jobs_t.metadata]


def test_models_and_migrated_schema_agree(ctx):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), _target_metadata())
    assert diff == []


def test_upgrade_from_empty_database_then_init(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "CRM_INSTANCE_DIR": str(tmp_path),
           "CRM_SCHEDULER": "0", "PATH": "/usr/bin:/bin"}
    flask = [sys.executable, "-m", "flask", "--app", "app:create_app"]
    for command in (["db", "upgrade"], ["crm", "init"]):
        result = subprocess.run(flask + command, cwd=BASE_DIR, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    engine = create_engine(env["DATABASE_URL"])
    tables = set(inspect(engine).get_table_names())
    assert {"customer", "follow_up", "ab_user", "department", "apscheduler_jobs", "alembic_version"} <= tables
    with engine.connect() as conn:
        scopes = dict(conn.exec_driver_sql(
            "select r.name, s.scope from role_data_scope s join ab_role r on r.id = s.role_id").fetchall())
    assert scopes == {"Admin": "all", "Sales Rep": "own", "Sales Manager": "department",
                      "Customer Service": "all", "Read Only": "all"}
