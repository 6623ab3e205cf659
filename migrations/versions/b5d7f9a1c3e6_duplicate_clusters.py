"""duplicate clusters stored: clusters, members, blocking keys, dirty customers, scans, state

Revision ID: b5d7f9a1c3e6
Revises: a4c6e8f0b2d5
Create Date: 2026-11-30 20:45:00

Existing data: the tables start empty. The first visit of *Duplicates* finds no scan and
starts one in the background (``app.services.dedup.refresh``); the page says so until it
is done. Instants are timestamptz on PostgreSQL, UTC text on SQLite (``UtcDateTime``).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b5d7f9a1c3e6'
down_revision = 'a4c6e8f0b2d5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "duplicate_cluster",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("order_key", sa.Integer(), nullable=False),
        sa.Column("rules", sa.String(80), nullable=False),
    )
    op.create_index("ix_duplicate_cluster_order", "duplicate_cluster", ["order_key", "id"])
    op.create_table(
        "duplicate_member",
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("cluster_id", sa.Integer(), sa.ForeignKey("duplicate_cluster.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("rules", sa.String(80), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
    )
    op.create_index("ix_duplicate_member_cluster", "duplicate_member", ["cluster_id", "customer_id"])
    op.create_index("ix_duplicate_member_owner", "duplicate_member", ["owner_id", "cluster_id"])
    op.create_table(
        "duplicate_key",
        sa.Column("key", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
    )
    op.create_index("ix_duplicate_key_customer", "duplicate_key", ["customer_id"])
    op.create_table(
        "duplicate_dirty",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), nullable=False),
    )
    op.create_table(
        "duplicate_scan",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), sa.ForeignKey("ab_user.id"), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("clusters", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_table(
        "duplicate_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("scan_id", sa.Integer(), nullable=True),
        sa.Column("last_scan_id", sa.Integer(), nullable=True),
        sa.Column("indexed_upto", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.bulk_insert(sa.table("duplicate_state", sa.column("id", sa.Integer()), sa.column("indexed_upto", sa.Integer())),
                   [{"id": 1, "indexed_upto": 0}])


def downgrade():
    for table in ("duplicate_state", "duplicate_scan", "duplicate_dirty", "duplicate_key", "duplicate_member",
                  "duplicate_cluster"):
        op.drop_table(table)
