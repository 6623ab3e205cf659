"""Existing databases get the role plan's new grants (migration 7d4f2a9c1b36): follow-up
downloads for sales roles, archived-customer downloads for managers, archived customers
(read and restore, and the menu) for sales reps; nothing else of the roles changes."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from tests.conftest import flask_cli

BEFORE = "5b7d2c9e4a10"
NEW = {
    "Sales Rep": {("can_export", "FollowUp"), ("can_read", "ArchivedCustomer"), ("can_write", "ArchivedCustomer"),
                  ("menu_access", "Archived customers")},
    "Sales Manager": {("can_export", "FollowUp"), ("can_export", "ArchivedCustomer")},
}
GRANTS = text("select r.name, p.name, v.name from ab_permission_view_role pvr"
              " join ab_role r on r.id = pvr.role_id join ab_permission_view pv on pv.id = pvr.permission_view_id"
              " join ab_permission p on p.id = pv.permission_id join ab_view_menu v on v.id = pv.view_menu_id")


def _grants(conn) -> dict[str, set[tuple[str, str]]]:
    result: dict[str, set[tuple[str, str]]] = {}
    for role, perm, view in conn.execute(GRANTS):
        result.setdefault(role, set()).add((perm, view))
    return result


def _as_before(conn) -> None:
    """The old plan: none of the new grants, and no export permission on follow-ups yet."""
    for role, grants in NEW.items():
        for perm, view in grants:
            conn.execute(text(
                "delete from ab_permission_view_role where role_id = (select id from ab_role where name = :r)"
                " and permission_view_id = (select pv.id from ab_permission_view pv"
                " join ab_permission p on p.id = pv.permission_id join ab_view_menu v on v.id = pv.view_menu_id"
                " where p.name = :p and v.name = :v)"), {"r": role, "p": perm, "v": view})
    conn.execute(text(
        "delete from ab_permission_view_role where permission_view_id in (select pv.id from ab_permission_view pv"
        " join ab_permission p on p.id = pv.permission_id join ab_view_menu v on v.id = pv.view_menu_id"
        " where p.name = 'can_export' and v.name = 'FollowUp')"))
    conn.execute(text(
        "delete from ab_permission_view where view_menu_id = (select id from ab_view_menu where name = 'FollowUp')"
        " and permission_id = (select id from ab_permission where name = 'can_export')"))


def test_upgrade_grants_the_new_plan_to_existing_roles(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    flask_cli(tmp_path, url, "db", "upgrade", BEFORE)
    flask_cli(tmp_path, url, "crm", "init")
    engine = create_engine(url)
    with engine.begin() as conn:
        _as_before(conn)
        before = _grants(conn)
    assert not NEW["Sales Rep"] & before["Sales Rep"]
    flask_cli(tmp_path, url, "db", "upgrade")
    with engine.connect() as conn:
        after = _grants(conn)
    engine.dispose()
    for role in before:
        assert after[role] - before[role] == NEW.get(role, set()), role
        assert before[role] <= after[role], role
