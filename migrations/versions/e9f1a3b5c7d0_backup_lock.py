"""One running backup at a time, enforced by the database (issue 19)

The lock was a check for a "running" row before inserting one: two workers starting a backup
at the same moment could both pass it. A partial unique index over running, non-safety
backups lets only one insert win (a safety backup is exempt: a restore takes it while another
backup may run).

Revision ID: e9f1a3b5c7d0
Revises: d8e0f2a4b6c9
Create Date: 2026-12-02 04:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = "e9f1a3b5c7d0"
down_revision = "d8e0f2a4b6c9"
branch_labels = None
depends_on = None

WHERE = "status = 'running' AND kind != 'safety'"


def upgrade():
    # Older rows left "running" by a stopped process (all but the newest) are interrupted ones.
    op.execute(sa.text(
        "UPDATE backup_run SET status = 'failed', error = COALESCE(error, 'interrupted') "
        f"WHERE {WHERE} AND id < (SELECT max(id) FROM backup_run WHERE {WHERE})"))
    op.create_index("ux_backup_run_one_running", "backup_run", ["status"], unique=True,
                    sqlite_where=sa.text(WHERE), postgresql_where=sa.text(WHERE))


def downgrade():
    op.drop_index("ux_backup_run_one_running", table_name="backup_run")
