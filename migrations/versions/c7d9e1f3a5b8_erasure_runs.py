"""Personal-data erasure runs (issue 19): the erasure request queues a run, the task queue does the sweep

Revision ID: c7d9e1f3a5b8
Revises: b6c8d0e2f4a7
Create Date: 2026-12-02 04:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = "c7d9e1f3a5b8"
down_revision = "b6c8d0e2f4a7"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "erasure_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_type", sa.String(length=20), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=True),
        sa.Column("extra_fields", sa.JSON(), nullable=True),
        sa.Column("reason", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("step", sa.String(length=80), nullable=True),
        sa.Column("steps_done", sa.Integer(), nullable=False),
        sa.Column("steps_total", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(length=40), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("erasure_run", schema=None) as batch_op:
        batch_op.create_index("ix_erasure_run_record", ["record_type", "record_id", "id"], unique=False)
        batch_op.create_index("uq_erasure_run_active", ["record_type", "record_id"], unique=True,
                              sqlite_where=sa.text("finished_at IS NULL"),
                              postgresql_where=sa.text("finished_at IS NULL"))


def downgrade():
    with op.batch_alter_table("erasure_run", schema=None) as batch_op:
        batch_op.drop_index("uq_erasure_run_active")
        batch_op.drop_index("ix_erasure_run_record")
    op.drop_table("erasure_run")
