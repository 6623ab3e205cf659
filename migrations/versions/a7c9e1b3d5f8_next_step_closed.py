"""Follow-ups remember whether their next step was closed, and open next steps are indexed by date (issue 12)

The home page counts the follow-ups in scope whose next step is due and still to do: no
activity the follow-up planned was done or cancelled. That was a NOT EXISTS on the activity
table for every follow-up in scope, so the count walked the whole history: 365 ms of a
manager's home page at 1,000,000 customers on SQLite, with not one next step due.
``follow_up.next_step_closed`` keeps the answer (``app.services.activities`` sets it whenever
a planned activity changes) and ``ix_follow_up_next_step_open`` holds the open, dated next
steps by date (not the follow-ups without one: an import of those writes nothing to it), so
the count reads the open ones only.

Existing rows: the flag is set from the activities as they are.

Revision ID: a7c9e1b3d5f8
Revises: d9f1b3c5e7a2
Create Date: 2026-12-03 21:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = "a7c9e1b3d5f8"
down_revision = "d9f1b3c5e7a2"
branch_labels = None
depends_on = None

NAME = "ix_follow_up_next_step_open"


def upgrade() -> None:
    # a plain ADD COLUMN, not a batch: SQLite's batch copies the table, which drops its search triggers
    op.add_column("follow_up", sa.Column("next_step_closed", sa.Boolean(), nullable=False, server_default=sa.false()))
    # only the closed ones: the rest keep the default (not every row rewritten)
    op.execute("UPDATE follow_up SET next_step_closed = true WHERE EXISTS (SELECT 1 FROM activity"
               " WHERE activity.from_follow_up_id = follow_up.id AND activity.status != 'open')")
    op.create_index(NAME, "follow_up", ["next_step_date"],
                    sqlite_where=sa.text("next_step_closed = 0 AND next_step_date IS NOT NULL"),
                    postgresql_where=sa.text("next_step_closed = false AND next_step_date IS NOT NULL"))


def downgrade() -> None:
    op.drop_index(NAME, table_name="follow_up")
    op.drop_column("follow_up", "next_step_closed")  # SQLite 3.35+: in place, its triggers kept
