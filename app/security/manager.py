"""The one security-manager subclass: CRM users, their extra fields, scope-aware admin."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, g, has_request_context, redirect, request
from flask_appbuilder import action
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import assoc_permissionview_role
from flask_appbuilder.security.views import RoleModelView, UserDBModelView
from flask_babel import lazy_gettext as _l
from wtforms.validators import DataRequired

from app.models.org import CrmUser
from app.security.step_up import SensitiveWritesMixin, declare

USER_ACCESS = declare("user.access_change", _l("Deactivate or delete a user, or change a user's roles"),
                      _l("Security > List Users"))
ROLE_CHANGE = declare("role.change", _l("Add, edit, copy or delete a role and its permissions"),
                      _l("Security > List Roles"))
TOTP_RESET = declare("totp.reset", _l("Reset another user's authenticator"), _l("Security > List Users"))

_ORG_FIELDS = ["department", "employee_no", "job_title", "phone", "expires_on"]


class CrmUserDBModelView(SensitiveWritesMixin, UserDBModelView):
    """FAB's user admin plus department, employee number, phone, job title and expiry.

    Deactivating or deleting a user and changing anyone's roles ask for a fresh code.
    """

    sensitive_action = USER_ACCESS

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
    #: FAB's default roles validator also reads a "groups" field, which the CRM does not use.
    validators_columns = {"roles": [DataRequired(message=_l("Pick at least one role."))]}
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
        "active": _l("Unticking this ends the user's sessions now; the account is purged 30 days later "
                     "and its records go to the department manager."),
    }

    def sensitive_name(self, kind: str, pk: Any = None) -> str | None:
        """Deactivation, deletion, role changes and TOTP resets; not ordinary edits, not the
        self-service actions (own password, own profile)."""
        if request.method != "POST" or kind == "add":
            return None
        if kind == "action":
            name = (request.view_args or {}).get("name") or request.form.get("action")
            return TOTP_RESET if name == "reset_totp" else None
        if kind == "delete":
            return USER_ACCESS
        user = self.datamodel.get(pk)
        if user is None:
            return None
        deactivating = bool(user.active) and not request.form.get("active")
        roles_changed = sorted(request.form.getlist("roles")) != sorted(str(r.id) for r in user.roles)
        return USER_ACCESS if deactivating or roles_changed else None

    @action("reset_totp", _l("Reset authenticator"), _l("Remove this user's authenticator app and recovery codes?"),
            "fa-key", multiple=False)
    def reset_totp(self, item: Any) -> Any:
        from app.security.totp import reset

        users = item if isinstance(item, list) else [item]
        for user in users:
            reset(user, reason="reset by an administrator")
        flash(str(_l("Authenticator removed for %(names)s.", names=", ".join(u.username for u in users))), "info")
        return redirect(self.get_redirect())


class CrmRoleModelView(SensitiveWritesMixin, RoleModelView):
    """FAB's role admin; every change to roles or their permissions needs a fresh code."""

    sensitive_action = ROLE_CHANGE


def _login_username() -> str:
    """Rate-limit key for login POSTs: the username tried, whatever the source address."""
    payload = request.get_json(silent=True) if request.is_json else None
    name = payload.get("username") if isinstance(payload, dict) else request.form.get("username")
    return f"login-user:{str(name or '').strip().lower()[:64]}"


class CrmSecurityManager(SecurityManager):
    user_model = CrmUser
    userdbmodelview = CrmUserDBModelView
    rolemodelview = CrmRoleModelView
    #: FAB's user statistics chart loads Google Charts from the internet: not offered.
    userstatschartview = None

    @property
    def auth_rate_limit(self) -> Any:
        """Read per request, so a deployment (or a test) can change it without a restart."""
        return lambda: current_app.config["AUTH_RATE_LIMIT"]

    def register_views(self) -> None:
        """FAB limits the login form per IP; add per-username limits, and both on the API login."""
        super().register_views()
        if not self.is_auth_limited:
            return
        # One counter per username shared by the login form and the API login.
        per_user = self.limiter.shared_limit(
            lambda: current_app.config["CRM_LOGIN_LIMIT_PER_USERNAME"], scope="login-username",
            key_func=_login_username, methods=["POST"],
        )
        per_user(self.auth_view.blueprint)
        for view in self.appbuilder.baseviews:
            if isinstance(view, self.security_api):
                self.limiter.limit(self.auth_rate_limit, methods=["POST"])(view.blueprint)
                per_user(view.blueprint)

    def auth_user_db(self, username: str, password: str) -> Any:
        """FAB's password check, with every success and failure in the audit log."""
        from app.services import audit

        user = super().auth_user_db(username, password)
        if user is not None:
            audit.record("login", user, user=user)
        else:
            target = self.find_user(username=username) if username else None
            audit.record("login_failed", target, {"username": (username or "")[:64]}, user=target)
        self.session.commit()
        return user

    def add_user(self, username: str, first_name: str, last_name: str, email: str, role: Any,
                 password: str = "", hashed_password: str = "", **kwargs: Any) -> Any:
        """Scripts and the CLI get the same password policy as the forms."""
        if not hashed_password:
            from app.security.passwords import password_policy

            password_policy(password)
        return super().add_user(username, first_name, last_name, email, role, password=password,
                                hashed_password=hashed_password, **kwargs)

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
