"""task queue: background jobs claimed, leased and cancelled in the database (issue 20)

Revision ID: e2a4c6e8f0b1
Revises: d7f9b1c3e5a8
Create Date: 2026-12-01 00:05:00
"""

# revision identifiers, used by Alembic.
revision = 'e2a4c6e8f0b1'
down_revision = 'd7f9b1c3e5a8'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
