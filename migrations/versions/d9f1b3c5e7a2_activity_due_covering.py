"""The assignee's due-time index of activities carries the record columns the scope reads (issue 12)

The home page and the sales dashboard count a person's open activities due today and overdue
in their scope. The scope rule reads each activity's customer (or lead), so every counted
activity was also read from the table: a manager with 97,800 overdue activities waited 267 ms
for the dashboard's card on SQLite. ``ix_activity_assignee_due`` now ends with ``customer_id``
and ``lead_id``, so the count reads the index alone; its leading columns, and every query that
used them, are unchanged.

Revision ID: d9f1b3c5e7a2
Revises: c7e9a1b3d5f2
Create Date: 2026-12-03 12:40:00
"""
from alembic import op

revision = "d9f1b3c5e7a2"
down_revision = "c7e9a1b3d5f2"
branch_labels = None
depends_on = None

NAME = "ix_activity_assignee_due"


def upgrade() -> None:
    op.drop_index(NAME, table_name="activity")
    op.create_index(NAME, "activity", ["assignee_id", "status", "due_at", "customer_id", "lead_id"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="activity")
    op.create_index(NAME, "activity", ["assignee_id", "status", "due_at"])
