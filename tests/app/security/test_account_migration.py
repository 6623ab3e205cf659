"""Existing databases get the new role plan: user administration for admins only, and the
Admin role requires an authenticator (migration c3a9e1f27b54)."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from tests.conftest import flask_cli

BEFORE = "8ea551801bd1"
USER_ADMIN = """
    select r.name from ab_permission_view_role pvr
    join ab_role r on r.id = pvr.role_id
    join ab_permission_view pv on pv.id = pvr.permission_view_id
    join ab_permission p on p.id = pv.permission_id
    join ab_view_menu v on v.id = pv.view_menu_id
    where v.name = 'CrmUserDBModelView' and p.name = :perm
"""


def _old_role_plan(conn) -> None:
    """What the old default plan left: every role may list and show all users; Admin needs no TOTP."""
    conn.execute(text("""
        insert into ab_permission_view_role (id, permission_view_id, role_id)
        select (select coalesce(max(id), 0) from ab_permission_view_role) + row_number() over (), pv.id, r.id
        from ab_permission_view pv join ab_permission p on p.id = pv.permission_id
        join ab_view_menu v on v.id = pv.view_menu_id, ab_role r
        where v.name = 'CrmUserDBModelView' and p.name in ('can_list', 'can_show')
          and r.name in ('Sales Rep', 'Read Only') and not exists (
            select 1 from ab_permission_view_role x where x.permission_view_id = pv.id and x.role_id = r.id)
    """))
    conn.execute(text("update role_data_scope set totp_required = false"))


def test_upgrade_takes_user_admin_from_other_roles_and_requires_totp_for_admin(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    # Set up with today's code on today's schema, then step back: ``crm init`` writes the
    # current models, which later migrations may have widened (dictionary aliases).
    flask_cli(tmp_path, url, "db", "upgrade")
    flask_cli(tmp_path, url, "crm", "init")
    flask_cli(tmp_path, url, "db", "downgrade", BEFORE)
    engine = create_engine(url)
    with engine.begin() as conn:
        _old_role_plan(conn)
        assert set(conn.scalars(text(USER_ADMIN), {"perm": "can_list"})) == {"Admin", "Sales Rep", "Read Only"}
    flask_cli(tmp_path, url, "db", "upgrade")
    with engine.connect() as conn:
        for perm in ("can_list", "can_show"):
            assert set(conn.scalars(text(USER_ADMIN), {"perm": perm})) == {"Admin"}
        required = dict(conn.execute(text(
            "select r.name, s.totp_required from role_data_scope s join ab_role r on r.id = s.role_id")).all())
        # Self-service stays: the own profile page.
        assert "Sales Rep" in set(conn.scalars(text(USER_ADMIN), {"perm": "can_userinfo"}))
    engine.dispose()
    assert bool(required.pop("Admin")) is True and not any(required.values())
