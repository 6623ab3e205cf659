"""PostgreSQL no longer checks the stamps' users row by row (issue 12)

``created_by_fk`` and ``changed_by_fk`` (``StampMixin``) say who created and last changed a
row: history, like ``audit_log.user_id``, which never had a key. PostgreSQL looked the
account up for each of them on every inserted row: measured with ``COPY`` of 98,000 planned
activities, 4.2-4.9 s with the two keys against 2.5-2.9 s without; ~1.6 s per 100,000
imported customers with their primary contacts. The models still declare the keys
(``app.models.base.unchecked_key``): joins, ``records.references`` and
``app.models.on_delete`` read them, so an account a stamp names is still never deleted.

SQLite never enforced the clauses (foreign keys are off on the CRM's connections) and drops
one only by rebuilding the table (which loses its search triggers): its databases keep them.

Revision ID: d5f7b9c1e3a6
Revises: c8e0a2b4d6f9
Create Date: 2026-12-04 15:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = "d5f7b9c1e3a6"
down_revision = "c8e0a2b4d6f9"
branch_labels = None
depends_on = None

#: The tables with stamps (``StampMixin``) at this revision.
STAMPED = ("activity", "activity_template", "approval_policy", "approval_request", "assignment_rule", "campaign",
           "contact", "contract", "custom_field", "customer", "demand", "follow_up", "lead", "opportunity", "product",
           "sales_order", "sales_target", "saved_report", "service_feedback", "sla_policy", "ticket",
           "transfer_rule", "work_calendar")
STAMPS = ("created_by_fk", "changed_by_fk")


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    inspector = sa.inspect(bind)
    for table in STAMPED:
        for key in inspector.get_foreign_keys(table):
            if key["referred_table"] == "ab_user" and len(key["constrained_columns"]) == 1 \
                    and key["constrained_columns"][0] in STAMPS:
                op.drop_constraint(key["name"], table, type_="foreignkey")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in STAMPED:
        for column in STAMPS:
            # a stamp naming an account deleted meanwhile (nothing stopped a raw DELETE) is cleared first
            op.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} IS NOT NULL "
                       f"AND NOT EXISTS (SELECT 1 FROM ab_user WHERE ab_user.id = {table}.{column})")
            op.create_foreign_key(f"{table}_{column}_fkey", table, "ab_user", [column], ["id"])
