"""dismissed duplicate pairs: reviewed false matches the dedup scan leaves out

Revision ID: 9f2b4d6e8a13
Revises: 8e1a3c5d7f92
Create Date: 2026-11-30 18:00:00.000000

One row per pair of customers a person marked "not duplicates" (``app.models.duplicates``),
ids stored low/high so a pair has one row. Both foreign keys cascade on delete (PostgreSQL;
SQLite without ``PRAGMA foreign_keys`` relies on ``app.services.dedup``'s flush hook, which
also drops the pairs of a customer merged away). ``dismissed_at`` is an instant
(timestamptz on PostgreSQL, UTC text on SQLite), as ``app.models.base.UtcDateTime``.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '9f2b4d6e8a13'
down_revision = '8e1a3c5d7f92'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "dismissed_duplicate_pair",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_low_id", sa.Integer(), nullable=False),
        sa.Column("customer_high_id", sa.Integer(), nullable=False),
        sa.Column("dismissed_by_id", sa.Integer(), nullable=True),
        sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.CheckConstraint("customer_low_id < customer_high_id", name="ck_dismissed_duplicate_pair_order"),
        sa.ForeignKeyConstraint(["customer_low_id"], ["customer.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["customer_high_id"], ["customer.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["dismissed_by_id"], ["ab_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_low_id", "customer_high_id", name="uq_dismissed_duplicate_pair"),
    )
    op.create_index("ix_dismissed_duplicate_pair_high", "dismissed_duplicate_pair", ["customer_high_id"])


def downgrade():
    op.drop_index("ix_dismissed_duplicate_pair_high", table_name="dismissed_duplicate_pair")
    op.drop_table("dismissed_duplicate_pair")
