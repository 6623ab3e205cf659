"""Custom fields (issue 18): definitions, and a JSON column of values on every record table

Revision ID: b6c8d0e2f4a7
Revises: a5b7c9d1e3f6
Create Date: 2026-12-01 21:10:22
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "b6c8d0e2f4a7"
down_revision = "a5b7c9d1e3f6"
branch_labels = None
depends_on = None

#: Record tables that carry custom values (app.models.base.CustomValuesMixin).
RECORD_TABLES = ("customer", "follow_up", "contact", "lead", "product", "opportunity", "sales_order", "contract",
                 "ticket", "demand", "service_feedback", "activity", "campaign")


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    op.create_table(
        "custom_field",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_type", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("label_en", sa.String(length=100), nullable=False),
        sa.Column("label_zh", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("default", _json(), nullable=True),
        sa.Column("help_en", sa.String(length=255), nullable=True),
        sa.Column("help_zh", sa.String(length=255), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("section_en", sa.String(length=60), nullable=True),
        sa.Column("section_zh", sa.String(length=60), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("masked", sa.Boolean(), nullable=False),
        sa.Column("searchable", sa.Boolean(), nullable=False),
        sa.Column("in_list", sa.Boolean(), nullable=False),
        sa.Column("places", sa.Integer(), nullable=True),
        sa.Column("max_length", sa.Integer(), nullable=True),
        sa.Column("dictionary", sa.String(length=40), nullable=True),
        sa.Column("choices", _json(), nullable=True),
        sa.Column("index_name", sa.String(length=63), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_on", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_on", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_fk", sa.Integer(), nullable=True),
        sa.Column("changed_by_fk", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["changed_by_fk"], ["ab_user.id"]),
        sa.ForeignKeyConstraint(["created_by_fk"], ["ab_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_type", "key", name="uq_custom_field_type_key"),
    )
    for table in RECORD_TABLES:
        # A nullable column without a default: an instant change on both databases, whatever the size.
        op.add_column(table, sa.Column("custom", _json(), nullable=True))


def downgrade():
    for table in RECORD_TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("custom")
    op.drop_table("custom_field")
