"""The one security-manager subclass: CRM users, their extra fields, scope-aware admin."""

from __future__ import annotations

from flask import g, has_request_context
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import assoc_permissionview_role
from flask_appbuilder.security.views import UserDBModelView
from flask_babel import lazy_gettext as _l

from app.models.org import CrmUser

_ORG_FIELDS = ["department", "employee_no", "job_title", "phone", "expires_on"]


class CrmUserDBModelView(UserDBModelView):
    """FAB's user admin plus department, employee number, phone, job title and expiry."""

    list_columns = ["first_name", "last_name", "username", "department", "job_title", "active", "expires_on", "roles"]
    show_fieldsets = [
        (_l("User info"), {"fields": ["username", "active", "roles", "login_count", "expires_on"]}),
        (_l("Organisation"), {"fields": ["department", "employee_no", "job_title", "phone"]}),
        (_l("Personal Info"), {"fields": ["first_name", "last_name", "email"], "expanded": True}),
        (
            _l("Audit info"),
            {"fields": ["last_login", "fail_login_count", "created_on", "changed_on"], "expanded": False},
        ),
    ]
    user_show_fieldsets = [
        (_l("User info"), {"fields": ["username", "active", "roles", "login_count", "expires_on"]}),
        (_l("Organisation"), {"fields": ["department", "employee_no", "job_title"]}),
        (_l("Personal Info"), {"fields": ["first_name", "last_name", "email"], "expanded": True}),
    ]
    add_columns = [
        "first_name", "last_name", "username", "active", "email", "roles",
        *_ORG_FIELDS, "password", "conf_password",
    ]
    edit_columns = ["first_name", "last_name", "username", "active", "email", "roles", *_ORG_FIELDS]
    search_columns = ["first_name", "last_name", "username", "email", "active", "roles", "department", "job_title", "expires_on"]
    label_columns = {
        **UserDBModelView.label_columns,
        "department": _l("Department"),
        "employee_no": _l("Employee no."),
        "job_title": _l("Job title"),
        "phone": _l("Phone"),
        "expires_on": _l("Account expires on"),
    }
    description_columns = {
        "expires_on": _l("After this date the user can no longer log in (interns: 3 months)."),
    }


class CrmSecurityManager(SecurityManager):
    user_model = CrmUser
    userdbmodelview = CrmUserDBModelView
    #: FAB's user statistics chart loads Google Charts from the internet: not offered.
    userstatschartview = None

    def exist_permission_on_roles(self, view_name: str, permission_name: str, role_ids: list[int]) -> bool:
        """FAB asks this once per menu item and button; answer from one query per request."""
        if not has_request_context():
            return super().exist_permission_on_roles(view_name, permission_name, role_ids)
        cache = g.setdefault("_crm_permissions", {})
        key = tuple(sorted(role_ids))
        if key not in cache:
            cache[key] = self._role_permissions(key)
        return (permission_name, view_name) in cache[key]

    def _role_permissions(self, role_ids: tuple[int, ...]) -> set[tuple[str, str]]:
        pv, perm, view = self.permissionview_model, self.permission_model, self.viewmenu_model
        rows = (
            self.session.query(perm.name, view.name)
            .select_from(pv)
            .join(perm, pv.permission_id == perm.id)
            .join(view, pv.view_menu_id == view.id)
            .join(assoc_permissionview_role, assoc_permissionview_role.c.permission_view_id == pv.id)
            .filter(assoc_permissionview_role.c.role_id.in_(role_ids))
        )
        return {(p, v) for p, v in rows}
