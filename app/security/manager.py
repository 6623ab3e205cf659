"""The one security-manager subclass: CRM users, their extra fields, scope-aware admin."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, g, has_request_context, redirect, request, url_for
from flask_appbuilder import action
from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import assoc_permissionview_role
from flask_appbuilder.security.views import (
    PermissionViewModelView,
    ResetMyPasswordView,
    ResetPasswordView,
    RoleModelView,
    UserDBModelView,
    UserGroupModelView,
)
from flask_appbuilder.validators import PasswordComplexityValidator
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo

from app import clock
from app.models.org import FAB_USER_INSTANTS, CrmUser
from app.security import login_guard, sessions, step_up
from app.security.step_up import SensitiveWritesMixin, StepUpRequired, declare
from app.services import accounts
from app.services.errors import RuleViolation
from views.base import ReadableViewMixin

TOTP_RESET = declare("totp.reset", _l("Reset another user's authenticator"), _l("Security > List Users"))

_ORG_FIELDS = ["department", "employee_no", "job_title", "phone", "expires_on"]


class CrmUserDBModelView(SensitiveWritesMixin, ReadableViewMixin, UserDBModelView):
    """FAB's user admin plus department, employee number, phone, job title and expiry.

    Admins only (``setup._SELF_SERVICE`` gives other roles their own profile page). Creating
    or deleting a user and any change to who may log in or what they may do ask for a fresh
    code (``accounts.changes_access``; the flush hook there backs every route up). Values,
    empty choices and labels read as on every CRM screen (``ReadableViewMixin``), the own
    profile page (``userinfo``) too.
    """

    sensitive_action = accounts.USER_ACCESS
    extra_fieldsets = ("user_show_fieldsets",)
    #: What the audit log calls a user record (``display.object_label``).
    object_label = _l("User")
    exclude_route_methods = {"download"}  # FAB's file-column download: no file columns, a 500 without UPLOAD_FOLDER

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
    #: Instants shown in the CRM's zone, to the minute (as every CRM screen shows them).
    formatters_columns = {name: clock.local_text for name in FAB_USER_INSTANTS}
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

    def pre_delete(self, item: Any) -> None:
        """An account that records name is deactivated, not deleted (``accounts.check_delete``:
        its message is the screen's answer)."""
        accounts.check_delete(item)

    def pre_update(self, item: Any) -> None:
        """FAB's stamp, as an aware instant (FAB writes the server's naive clock)."""
        super().pre_update(item)
        item.changed_on = clock.utc_now()

    def sensitive_name(self, kind: str, pk: Any = None) -> str | None:
        """Creating a user, deleting one, any change to roles, active flag or expiry date
        (``accounts.changes_access``) and TOTP resets. Ordinary edits and the self-service
        actions (own password, own profile) are not asked. A form that fails validation is
        not asked either: FAB shows its errors and writes nothing."""
        if kind == "action":
            name = (request.view_args or {}).get("name") or request.form.get("action")
            return TOTP_RESET if name == "reset_totp" else None
        if kind == "delete":
            return accounts.USER_ACCESS
        if request.method != "POST":
            return None
        if kind == "add":
            return accounts.USER_CREATE if self.add_form.refresh().validate() else None
        user = self.datamodel.get(pk)
        if user is None:
            return None
        form = self.edit_form.refresh(request.form)
        form._id = user.id  # FAB's trick for the unique validators
        if not form.validate():
            return None
        return accounts.USER_ACCESS if accounts.changes_access(user, form.data) else None

    @action("resetpasswords", _l("Reset Password"), "", "fa-lock", multiple=False)
    def resetpasswords(self, item: Any) -> Any:
        """FAB's link to the reset-password form, for one existing user (a list from the bulk
        route, or a missing record, is a message, not a 500)."""
        users = [user for user in (item if isinstance(item, list) else [item]) if user is not None]
        if len(users) != 1:
            flash(str(_l("No such user.")), "danger")
            return redirect(self.get_redirect())
        return redirect(url_for(self.appbuilder.sm.resetpasswordview.__name__ + ".this_form_get", pk=users[0].id))

    @action("reset_totp", _l("Reset authenticator"), _l("Remove this user's authenticator app and recovery codes?"),
            "fa-key", multiple=False)
    def reset_totp(self, item: Any) -> Any:
        from app.security.totp import reset

        users = [user for user in (item if isinstance(item, list) else [item]) if user is not None]
        if not users:
            flash(str(_l("No such user.")), "danger")
            return redirect(self.get_redirect())
        for user in users:
            reset(user, reason="reset by an administrator")
        flash(str(_l("Authenticator removed for %(names)s.", names=", ".join(u.username for u in users))), "info")
        return redirect(self.get_redirect())


class CrmRoleModelView(SensitiveWritesMixin, ReadableViewMixin, RoleModelView):
    """FAB's role admin; every change to roles or their permissions needs a fresh code."""

    sensitive_action = accounts.ROLE_CHANGE
    exclude_route_methods = {"download"}  # FAB's file-column download: no file columns, a 500 without UPLOAD_FOLDER
    object_label = _l("Role")
    #: FAB labels the shown columns only; its search form offers every relation too.
    label_columns = {**RoleModelView.label_columns, "user": _l("Users"), "groups": _l("Groups"),
                     "data_scope_rows": _l("Data scope settings")}


class CrmGroupModelView(SensitiveWritesMixin, ReadableViewMixin, UserGroupModelView):
    """FAB's groups: a group gives its members its roles, so every change needs a fresh code."""

    sensitive_action = accounts.GROUP_CHANGE
    exclude_route_methods = {"download"}  # as above
    class_permission_name = "UserGroupModelView"  # the permission names of existing databases
    object_label = _l("Group")
    #: FAB declares no labels for groups (its pages showed "Name", "Label" ... in every language).
    label_columns = {"name": _l("Name"), "label": _l("Label"), "description": _l("Description"),
                     "users": _l("Users"), "roles": _l("Roles")}


class CrmPermissionViewModelView(ReadableViewMixin, PermissionViewModelView):
    """FAB's list of permissions on views and menus; its search form offers the roles too."""

    class_permission_name = "PermissionViewModelView"  # the permission names of existing databases
    label_columns = {**PermissionViewModelView.label_columns, "role": _l("Roles")}


class CrmResetPasswordView(ResetPasswordView):
    """An administrator sets someone's password (``?pk=``): a sensitive action, audited,
    and the user's sessions and API tokens end."""

    class_permission_name = "ResetPasswordView"

    def form_post(self, form: DynamicForm) -> Any:
        try:
            accounts.reset_password(request.args.get("pk"), form.password.data, actor=g.user)
        except StepUpRequired as exc:
            return step_up.refusal(exc)
        except RuleViolation as exc:
            flash(str(exc), "danger")
            return None
        flash(str(self.message), "info")
        return None


class OwnPasswordForm(DynamicForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired()],
                                     widget=BS3PasswordFieldWidget())
    password = PasswordField(_l("New password"), validators=[DataRequired(), PasswordComplexityValidator()],
                             widget=BS3PasswordFieldWidget())
    conf_password = PasswordField(_l("Confirm Password"),
                                  validators=[EqualTo("password", message=_l("Passwords must match"))],
                                  widget=BS3PasswordFieldWidget())


class CrmResetMyPasswordView(ResetMyPasswordView):
    """Changing one's own password asks for the current one (a stolen session alone cannot
    take the account over); the account's other sessions and tokens end."""

    class_permission_name = "ResetMyPasswordView"
    form = OwnPasswordForm

    def form_post(self, form: DynamicForm) -> Any:
        user = self.appbuilder.sm.get_user_by_id(g.user.id)
        try:
            accounts.change_own_password(user, form.current_password.data, form.password.data)
        except RuleViolation as exc:
            for name, message in exc.errors.items():
                getattr(form, name, form.current_password).errors = [str(message)]
            html = self.render_template(self.form_template, title=self.form_title,
                                        widgets=self._get_edit_widget(form=form), appbuilder=self.appbuilder)
            return html, (429 if exc.status == 429 else 200)
        flash(str(self.message), "info")
        return None


class CrmSecurityManager(SecurityManager):
    user_model = CrmUser
    userdbmodelview = CrmUserDBModelView
    rolemodelview = CrmRoleModelView
    groupmodelview = CrmGroupModelView
    permissionviewmodelview = CrmPermissionViewModelView
    resetpasswordview = CrmResetPasswordView
    resetmypasswordview = CrmResetMyPasswordView
    #: FAB's user statistics chart loads Google Charts from the internet: not offered.
    userstatschartview = None

    @property
    def auth_rate_limit(self) -> Any:
        """Read per request, so a deployment (or a test) can change it without a restart."""
        return lambda: current_app.config["AUTH_RATE_LIMIT"]

    def register_views(self) -> None:
        """FAB limits login requests per address on the form; do the same on the API login.

        Wrong passwords are budgeted per (account, address) and per account by
        ``login_guard`` (a ``before_request`` hook and ``auth_user_db``), not here: a limit
        on every request per username would let anyone lock a colleague out.
        """
        super().register_views()
        if not self.is_auth_limited:
            return
        for view in self.appbuilder.baseviews:
            if isinstance(view, self.security_api):
                self.limiter.limit(self.auth_rate_limit, methods=["POST"])(view.blueprint)

    def auth_user_db(self, username: str, password: str) -> Any:
        """FAB's password check, with every success and failure in the audit log and in
        the login budgets (form and API login)."""
        from app.services import audit

        user = super().auth_user_db(username, password)
        if user is not None:
            login_guard.succeeded(user, username)
            audit.record("login", user, user=user)
        else:
            target = login_guard.resolve(username)
            login_guard.failed(target, username)
            audit.record("login_failed", target, {"username": (username or "")[:64]}, user=target)
        self.session.commit()
        return user

    def update_user_auth_stat(self, user: Any, success: bool = True) -> None:
        """FAB's login counters, with the last login as an aware instant (``clock.utc_now``;
        FAB writes the server's naive ``datetime.now()``)."""
        user.login_count = user.login_count or 0
        user.fail_login_count = user.fail_login_count or 0
        if success:
            user.login_count += 1
            user.last_login = clock.utc_now()
            user.fail_login_count = 0
        else:
            user.fail_login_count += 1
        self.update_user(user)
        if success:
            self.on_user_login(user)
        else:
            self.on_user_login_failed(user)

    def load_user(self, pk: Any) -> Any:
        """Browser sessions: FAB's check (active, not expired) plus the session epoch, so a
        cookie from before a logout or a password change is refused."""
        user = super().load_user(pk)
        if user is not None and has_request_context() and not sessions.session_is_current(user):
            return None
        return user

    def load_user_jwt(self, _jwt_header: Any, jwt_data: dict) -> Any:
        """API tokens: active account, and the token's epoch is the account's current one."""
        user = super().load_user(jwt_data["sub"])
        if user is None or not sessions.token_is_current(user, jwt_data):
            return None
        g.user = user
        return user

    def create_jwt_manager(self, app: Any) -> Any:
        """FAB's JWT manager; every token also carries the account's session epoch."""
        manager = super().create_jwt_manager(app)
        manager.additional_claims_loader(sessions.token_claims)
        return manager

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
