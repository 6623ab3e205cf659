"""search at a million: indexes for quick search and the customer page (issue 12)

Revision ID: f3b5d7e9a1c2
Revises: e2a4c6e8f0b1
Create Date: 2026-12-01 00:05:00
"""

# revision identifiers, used by Alembic.
revision = 'f3b5d7e9a1c2'
down_revision = 'e2a4c6e8f0b1'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
