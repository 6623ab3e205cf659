"""task queue: background jobs claimed, leased and cancelled in the database (issue 20)

Revision ID: e2a4c6e8f0b1
Revises: d7f9b1c3e5a8
Create Date: 2026-12-01 00:05:00

Every import/export job is claimed by one worker (``claimed_by``) for a lease that its
heartbeat renews (``lease_until``); a cancel asked from any web worker is a flag the job
reads between chunks; ``attempts`` counts deliveries. Existing rows get no claim, no
cancel and the attempts they evidently had (1 once started, else 0). A job a stopped
process left queued or running has no lease, so the minute sweep takes it up again.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e2a4c6e8f0b1'
down_revision = 'd7f9b1c3e5a8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('transfer_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
    job = sa.table('transfer_job', sa.column('started_at', sa.DateTime(timezone=True)),
                   sa.column('attempts', sa.Integer()))
    op.execute(job.update().where(job.c.started_at.isnot(None)).values(attempts=1))
    # Leases are read by the sweep across rows: status first, the instant second.
    op.create_index('ix_transfer_job_lease', 'transfer_job', ['status', 'lease_until'])


def downgrade():
    op.drop_index('ix_transfer_job_lease', table_name='transfer_job')
    with op.batch_alter_table('transfer_job', schema=None) as batch_op:
        batch_op.drop_column('attempts')
        batch_op.drop_column('cancel_requested')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('claimed_by')
