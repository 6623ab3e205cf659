"""duplicate scan: fuzzy-name keys carry the name's numerals; stored keys are rebuilt by a new scan

Revision ID: c1d3e5f7a9b2
Revises: b8d0f2a4c6e9
Create Date: 2026-12-01 05:30:00

Existing data: the stored blocking keys were made without the numerals, so the incremental
step could not find a new customer's partners among them. They are dropped and no scan
counts as finished: the next visit of *Duplicates* starts a full scan, which stores the
clusters and keys anew (dismissed pairs are kept: they are their own table).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c1d3e5f7a9b2'
down_revision = 'b8d0f2a4c6e9'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(sa.text("DELETE FROM duplicate_key"))
    op.execute(sa.text("DELETE FROM duplicate_dirty"))
    op.execute(sa.text("UPDATE duplicate_state SET scan_id = NULL, last_scan_id = NULL, indexed_upto = 0"))


def downgrade():
    # the old code rebuilds its keys the same way: no finished scan, the next visit scans
    op.execute(sa.text("DELETE FROM duplicate_key"))
    op.execute(sa.text("UPDATE duplicate_state SET scan_id = NULL, last_scan_id = NULL, indexed_upto = 0"))
