"""accounts: session epoch, authenticator required for admins, user admin for admins only

Revision ID: c3a9e1f27b54
Revises: 8ea551801bd1
Create Date: 2026-12-02 10:00:00.000000

* ``ab_user.session_epoch``: raised on logout, password change and deactivation, so
  sessions and API tokens issued before end server-side (``app.security.sessions``).
* Existing databases get the new defaults of ``app/services/setup.py``:
  - the Admin role requires an authenticator (admins enrol at their next login);
  - the user administration list and pages (``can_list`` / ``can_show`` on the user
    view) are taken from every role but Admin: the old self-service set granted them
    to sales reps, who could read everyone's e-mail, roles and login history.
  Downgrading drops the column only; the permission and policy changes stay.
"""
from alembic import op
import sqlalchemy as sa
from flask import current_app


# revision identifiers, used by Alembic.
revision = 'c3a9e1f27b54'
down_revision = '8ea551801bd1'
branch_labels = None
depends_on = None

_USER_VIEWS = ("CrmUserDBModelView", "UserDBModelView")
_ADMIN_ONLY = ("can_list", "can_show")

role = sa.table("ab_role", sa.column("id", sa.Integer), sa.column("name", sa.String))
scope = sa.table("role_data_scope", sa.column("role_id", sa.Integer), sa.column("totp_required", sa.Boolean))
permission = sa.table("ab_permission", sa.column("id", sa.Integer), sa.column("name", sa.String))
view_menu = sa.table("ab_view_menu", sa.column("id", sa.Integer), sa.column("name", sa.String))
permission_view = sa.table("ab_permission_view", sa.column("id", sa.Integer),
                           sa.column("permission_id", sa.Integer), sa.column("view_menu_id", sa.Integer))
permission_view_role = sa.table("ab_permission_view_role", sa.column("permission_view_id", sa.Integer),
                                sa.column("role_id", sa.Integer))


def _admin_role() -> str:
    try:
        return current_app.config.get("AUTH_ROLE_ADMIN", "Admin")
    except RuntimeError:  # run outside the app (plain alembic)
        return "Admin"


def upgrade():
    with op.batch_alter_table('ab_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False))

    admin_ids = sa.select(role.c.id).where(role.c.name == _admin_role())
    op.execute(scope.update().where(scope.c.role_id.in_(admin_ids)).values(totp_required=sa.true()))

    user_admin = (
        sa.select(permission_view.c.id)
        .join(permission, permission.c.id == permission_view.c.permission_id)
        .join(view_menu, view_menu.c.id == permission_view.c.view_menu_id)
        .where(permission.c.name.in_(_ADMIN_ONLY), view_menu.c.name.in_(_USER_VIEWS))
    )
    op.execute(permission_view_role.delete().where(
        permission_view_role.c.permission_view_id.in_(user_admin),
        permission_view_role.c.role_id.not_in(admin_ids),
    ))


def downgrade():
    with op.batch_alter_table('ab_user', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')
