"""roles: follow-up and archived-customer downloads; archived customers for sales reps

Revision ID: 7d4f2a9c1b36
Revises: 5b7d2c9e4a10
Create Date: 2026-12-10 10:00:00.000000

Existing databases get the new defaults of ``app/services/setup.py`` (``ROLES``):
* Sales Rep: ``can_export`` on FollowUp; ``can_read`` / ``can_write`` (restore) on
  ArchivedCustomer and its menu entry: reps archive with Delete and could not see or
  restore what they archived (the screen is scoped: own customers only).
* Sales Manager: ``can_export`` on FollowUp and on ArchivedCustomer.
Only roles that exist are changed, and only by adding; a permission the screens will
declare (``can_export`` on the two lists) is created here when it is missing, so the grant
does not wait for ``crm init``. A new, empty database gets the plan from
``app.services.setup.seed_roles`` instead. Downgrading changes nothing (admins may have
made the grants their own).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '7d4f2a9c1b36'
down_revision = '5b7d2c9e4a10'
branch_labels = None
depends_on = None

#: role -> [(permission, view menu)] added to it
GRANTS = {
    "Sales Rep": [("can_export", "FollowUp"), ("can_read", "ArchivedCustomer"), ("can_write", "ArchivedCustomer"),
                  ("menu_access", "Archived customers")],
    "Sales Manager": [("can_export", "FollowUp"), ("can_export", "ArchivedCustomer")],
}

role = sa.table("ab_role", sa.column("id", sa.Integer), sa.column("name", sa.String))
permission = sa.table("ab_permission", sa.column("id", sa.Integer), sa.column("name", sa.String))
view_menu = sa.table("ab_view_menu", sa.column("id", sa.Integer), sa.column("name", sa.String))
permission_view = sa.table("ab_permission_view", sa.column("id", sa.Integer),
                           sa.column("permission_id", sa.Integer), sa.column("view_menu_id", sa.Integer))
permission_view_role = sa.table("ab_permission_view_role", sa.column("id", sa.Integer),
                                sa.column("permission_view_id", sa.Integer), sa.column("role_id", sa.Integer))


def _id(conn, table, **where):
    """The id of the row matching ``where`` in ``table``, inserted when missing."""
    query = sa.select(table.c.id).where(*(table.c[k] == v for k, v in where.items()))
    found = conn.scalar(query)
    if found is None:
        conn.execute(table.insert().values(**where))
        found = conn.scalar(query)
    return found


def upgrade():
    conn = op.get_bind()
    for role_name, grants in GRANTS.items():
        role_id = conn.scalar(sa.select(role.c.id).where(role.c.name == role_name))
        if role_id is None:  # a new database: setup.seed_roles creates the role with the plan
            continue
        for perm_name, view_name in grants:
            pv_id = _id(conn, permission_view, permission_id=_id(conn, permission, name=perm_name),
                        view_menu_id=_id(conn, view_menu, name=view_name))
            _id(conn, permission_view_role, permission_view_id=pv_id, role_id=role_id)


def downgrade():
    pass
