"""follow-up list order index: follow_up(followed_at, id)

Revision ID: d7f9b1c3e5a8
Revises: b5d7f9a1c3e6
Create Date: 2026-11-30 22:15:00

The follow-up list shows the newest first; without an index the database sorts every
follow-up in scope to show 25 (issue 12: 197 ms of a 367 ms page at 100k follow-ups).
Existing rows are indexed as they are.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd7f9b1c3e5a8'
down_revision = 'b5d7f9a1c3e6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_follow_up_followed_at", "follow_up", ["followed_at", "id"])


def downgrade():
    op.drop_index("ix_follow_up_followed_at", table_name="follow_up")
