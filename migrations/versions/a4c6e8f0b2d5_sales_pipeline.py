"""sales pipeline: contacts, leads, assignment rules, stages, opportunities, products

Revision ID: a4c6e8f0b2d5
Revises: 9f2b4d6e8a13
Create Date: 2026-11-30 18:16:21.068596

Existing data: every customer's contact name/phone becomes its primary contact
(code ``P`` + the customer's code), so the manual's single 联系人姓名/联系方式 columns keep
meaning the primary contact. The stage dictionary gets the manuals' stages (000 §二(二),
003 第二步) with weights, won/lost flags, the fields required to enter each and the
7-day stale rule of 方案提交 (003 第三步 2).
"""
import sqlalchemy as sa
from alembic import op

#: code, English, Chinese, weight %, won, lost, required fields, stale days
STAGES = [
    ("contact", "Contact", "接触", 10, False, False, "", None),
    ("needs", "Needs analysis", "需求分析", 30, False, False, "demand", None),
    ("proposal", "Proposal", "方案提交", 50, False, False, "proposal_version", 7),
    ("negotiation", "Negotiation", "商务谈判", 80, False, False, "expected_close", None),
    ("won", "Won", "成交", 100, True, False, "amount", None),
    ("lost", "Lost", "输单", 0, False, True, "lost_reason", None),
]


# revision identifiers, used by Alembic.
revision = 'a4c6e8f0b2d5'
down_revision = '9f2b4d6e8a13'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('dict_stage',
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.Column('is_won', sa.Boolean(), nullable=False),
    sa.Column('is_lost', sa.Boolean(), nullable=False),
    sa.Column('required_fields', sa.Text(), nullable=True),
    sa.Column('stale_days', sa.Integer(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('label_en', sa.String(length=100), nullable=False),
    sa.Column('label_zh', sa.String(length=100), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('aliases', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('assignment_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('province', sa.String(length=32), nullable=True),
    sa.Column('city', sa.String(length=32), nullable=True),
    sa.Column('industry_id', sa.Integer(), nullable=True),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('last_user_id', sa.Integer(), nullable=True),
    sa.Column('created_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_fk', sa.Integer(), nullable=True),
    sa.Column('changed_by_fk', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['changed_by_fk'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['created_by_fk'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], ),
    sa.ForeignKeyConstraint(['industry_id'], ['dict_industry.id'], ),
    sa.ForeignKeyConstraint(['last_user_id'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['source_id'], ['dict_customer_source.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('product',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('unit', sa.String(length=16), nullable=True),
    sa.Column('list_price', sa.Numeric(precision=16, scale=2), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_fk', sa.Integer(), nullable=True),
    sa.Column('changed_by_fk', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['changed_by_fk'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['created_by_fk'], ['ab_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('assignment_rule_user',
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['rule_id'], ['assignment_rule.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('rule_id', 'user_id')
    )
    op.create_table('contact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=64), nullable=True),
    sa.Column('is_decision_maker', sa.Boolean(), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=120), nullable=True),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_fk', sa.Integer(), nullable=True),
    sa.Column('changed_by_fk', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['changed_by_fk'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['created_by_fk'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.create_index('ix_contact_customer', ['customer_id', 'is_primary'], unique=False)
        batch_op.create_index('ix_contact_phone', ['phone'], unique=False)

    op.create_table('opportunity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=16, scale=2), nullable=True),
    sa.Column('unit_price', sa.Numeric(precision=16, scale=2), nullable=True),
    sa.Column('quantity', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('expected_close', sa.Date(), nullable=True),
    sa.Column('probability_override', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('lost_reason', sa.String(length=255), nullable=True),
    sa.Column('demand', sa.Text(), nullable=True),
    sa.Column('proposal_version', sa.String(length=64), nullable=True),
    sa.Column('stage_entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_fk', sa.Integer(), nullable=True),
    sa.Column('changed_by_fk', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['changed_by_fk'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['created_by_fk'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['stage_id'], ['dict_stage.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('opportunity', schema=None) as batch_op:
        batch_op.create_index('ix_opportunity_customer', ['customer_id'], unique=False)
        batch_op.create_index('ix_opportunity_owner_stage', ['owner_id', 'stage_id', 'changed_on'], unique=False)
        batch_op.create_index('ix_opportunity_stage_changed', ['stage_id', 'changed_on'], unique=False)
        batch_op.create_index('ix_opportunity_stage_totals', ['stage_id', 'probability_override', 'amount'],
                              unique=False)
        batch_op.create_index('ix_opportunity_close_forecast',
                              ['expected_close', 'owner_id', 'stage_id', 'probability_override', 'amount'],
                              unique=False)
        batch_op.create_index('ix_opportunity_stage_close', ['stage_id', 'expected_close'], unique=False)

    op.create_table('competitor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('strengths', sa.Text(), nullable=True),
    sa.Column('weaknesses', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunity.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('competitor', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_competitor_opportunity_id'), ['opportunity_id'], unique=False)

    op.create_table('lead',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('company', sa.String(length=200), nullable=False),
    sa.Column('contact_name', sa.String(length=64), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=120), nullable=True),
    sa.Column('province', sa.String(length=32), nullable=True),
    sa.Column('city', sa.String(length=32), nullable=True),
    sa.Column('industry_id', sa.Integer(), nullable=True),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('invalid_reason', sa.String(length=255), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('assigned_by_rule_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('opportunity_id', sa.Integer(), nullable=True),
    sa.Column('converted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_on', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_fk', sa.Integer(), nullable=True),
    sa.Column('changed_by_fk', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['assigned_by_rule_id'], ['assignment_rule.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['changed_by_fk'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['created_by_fk'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['industry_id'], ['dict_industry.id'], ),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunity.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['source_id'], ['dict_customer_source.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.create_index('ix_lead_owner_status', ['owner_id', 'status'], unique=False)
        batch_op.create_index('ix_lead_phone', ['phone'], unique=False)

    op.create_table('opportunity_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=16, scale=2), nullable=False),
    sa.Column('discount', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('amount', sa.Numeric(precision=16, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunity.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('opportunity_id', 'position', name='uq_opportunity_line_position')
    )
    op.create_table('opportunity_stage_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('from_stage_id', sa.Integer(), nullable=True),
    sa.Column('to_stage_id', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by_id', sa.Integer(), nullable=True),
    sa.Column('days_in_stage', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['changed_by_id'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['from_stage_id'], ['dict_stage.id'], ),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunity.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['to_stage_id'], ['dict_stage.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('opportunity_stage_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opportunity_stage_change_opportunity_id'), ['opportunity_id'], unique=False)

    op.create_table('lead_status_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['changed_by_id'], ['ab_user.id'], ),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lead_status_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_status_change_lead_id'), ['lead_id'], unique=False)


    _seed_stages()
    _primary_contacts()


def _seed_stages():
    stage = sa.table("dict_stage", *(sa.column(c) for c in (
        "code", "label_en", "label_zh", "weight", "is_won", "is_lost", "required_fields", "stale_days",
        "sort_order", "active")))
    op.bulk_insert(stage, [
        {"code": code, "label_en": en, "label_zh": zh, "weight": weight, "is_won": won, "is_lost": lost,
         "required_fields": required or None, "stale_days": stale, "sort_order": (i + 1) * 10, "active": True}
        for i, (code, en, zh, weight, won, lost, required, stale) in enumerate(STAGES)])


def _primary_contacts():
    """One INSERT ... SELECT: fast at a million customers, on SQLite and PostgreSQL alike."""
    op.execute(sa.text(
        "INSERT INTO contact (code, customer_id, name, phone, email, is_primary, is_decision_maker,"
        " created_on, changed_on, created_by_fk, changed_by_fk, version)"
        " SELECT 'P' || code, id, COALESCE(NULLIF(TRIM(contact_name), ''), SUBSTR(name, 1, 64)), contact_phone, NULL,"
        " :yes, :no, created_on, changed_on, created_by_fk, changed_by_fk, 1"
        " FROM customer WHERE COALESCE(TRIM(contact_name), '') <> '' OR COALESCE(contact_phone, '') <> ''"
    ).bindparams(yes=True, no=False))


def downgrade():
    with op.batch_alter_table('lead_status_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_status_change_lead_id'))

    op.drop_table('lead_status_change')
    with op.batch_alter_table('opportunity_stage_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opportunity_stage_change_opportunity_id'))

    op.drop_table('opportunity_stage_change')
    op.drop_table('opportunity_line')
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_index('ix_lead_phone')
        batch_op.drop_index('ix_lead_owner_status')

    op.drop_table('lead')
    with op.batch_alter_table('competitor', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_competitor_opportunity_id'))

    op.drop_table('competitor')
    with op.batch_alter_table('opportunity', schema=None) as batch_op:
        batch_op.drop_index('ix_opportunity_close_forecast')
        batch_op.drop_index('ix_opportunity_stage_totals')
        batch_op.drop_index('ix_opportunity_stage_changed')
        batch_op.drop_index('ix_opportunity_stage_close')
        batch_op.drop_index('ix_opportunity_owner_stage')
        batch_op.drop_index('ix_opportunity_customer')

    op.drop_table('opportunity')
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_phone')
        batch_op.drop_index('ix_contact_customer')

    op.drop_table('contact')
    op.drop_table('assignment_rule_user')
    op.drop_table('product')
    op.drop_table('assignment_rule')
    op.drop_table('dict_stage')
