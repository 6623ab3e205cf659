"""sync at 50k rows: what an agreed row was checked against, to skip unchanged rows (issue 12)

Revision ID: a7c9e1f3b5d8
Revises: f3b5d7e9a1c2
Create Date: 2026-12-01 00:15:00
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a7c9e1f3b5d8'
down_revision = 'f3b5d7e9a1c2'
branch_labels = None
depends_on = None


def upgrade():
    # Existing agreed rows get no digest: each is compared field by field once, then stored with one.
    with op.batch_alter_table("sync_row") as batch:
        batch.add_column(sa.Column("checked", sa.String(length=32), nullable=True))


def downgrade():
    with op.batch_alter_table("sync_row") as batch:
        batch.drop_column("checked")
