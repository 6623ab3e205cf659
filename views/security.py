"""Security screens: TOTP self-service, sensitive actions, audit log, alerts, permission report."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, g, redirect, request, session, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

from app.models.audit import AuditLog
from app.security import alerts, step_up, totp
from app.security.session_guard import PENDING
from app.security.step_up import SENSITIVE, declare, sensitive
from app.security.totp import Outcome
from app.services import accounts, exporting, message_text, permission_report
from app.services.errors import RuleViolation
from views import display
from views.base import READ_WRITE_PERMISSIONS, CrmModelView, ListExportMixin

REENROL = declare("totp.reenrol", _l("Replace your own authenticator"), _l("Two-factor authentication page"))
ENROL_SECRET = "_totp_enrol_secret"
#: [user id, clock] of the password typed on the enrolment page; fresh for ENROL_PASSWORD_SECONDS.
ENROL_PASSWORD = "_totp_enrol_password"
ENROL_PASSWORD_SECONDS = 600


def _login_redirect() -> Any:
    return redirect(url_for("AuthDBView.login", next=request.full_path))


def _password_fresh(user: Any) -> bool:
    """Whether this session typed the user's password on the enrolment page recently."""
    proof = session.get(ENROL_PASSWORD)
    if not isinstance(proof, list) or len(proof) != 2 or proof[0] != user.id:
        return False
    return 0 <= totp.clock() - float(proof[1]) <= ENROL_PASSWORD_SECONDS


class TotpView(BaseView):
    """Every user's own authenticator: enrol, re-enrol, and the code pages."""

    route_base = "/totp"
    default_view = "index"

    @expose("/")
    def index(self) -> Any:
        if not current_user.is_authenticated:
            return _login_redirect()
        user = g.user
        return self.render_template(
            "crm/totp_index.html", credential=display.local_record(totp.credential(user)),
            required=totp.enrolment_required(user),
            codes_left=totp.recovery_codes_left(user), login_factor=totp.login_factor_required(user),
        )

    @expose("/enrol", methods=["GET", "POST"])
    @sensitive(REENROL, when=lambda self: current_user.is_authenticated and totp.is_enrolled(g.user))
    def enrol(self) -> Any:
        """First enrolment: the current password first (a stolen session alone must not be
        able to enrol its own authenticator and pass every step-up); replacing one: a code
        from the old one (``totp.reenrol``). The secret is shown only after that."""
        if not current_user.is_authenticated:
            return _login_redirect()
        user = g.user
        if not totp.is_enrolled(user) and not _password_fresh(user):
            return self._password_gate(user)
        secret = session.get(ENROL_SECRET) or totp.new_secret()
        session[ENROL_SECRET] = secret
        if request.method == "POST":
            codes = totp.confirm_enrolment(user, secret, request.form.get("code", ""))
            if codes is not None:
                for key in (ENROL_SECRET, ENROL_PASSWORD, PENDING):
                    session.pop(key, None)
                return self.render_template("crm/totp_codes.html", codes=codes)
            flash(str(_l("That code does not match. Type the 6 digits your app shows now.")), "danger")
        uri = totp.provisioning_uri(user, secret)
        return self.render_template("crm/totp_enrol.html", qr=Markup(totp.qr_svg(uri)), secret=secret,
                                    required=totp.enrolment_required(user), need_password=False)

    def _password_gate(self, user: Any) -> Any:
        """The enrolment page's first step: type your current password."""
        session.pop(ENROL_SECRET, None)  # a secret is made only after the password
        error, status = None, 200
        if request.method == "POST" and "password" in request.form:
            account = self.appbuilder.sm.get_user_by_id(user.id)
            try:
                accounts.check_current_password(account, request.form.get("password"), purpose="totp_enrol")
            except RuleViolation as exc:
                error, status = str(exc), (429 if exc.status == 429 else 200)
            else:
                session[ENROL_PASSWORD] = [user.id, totp.clock()]
                return redirect(url_for("TotpView.enrol"))
        html = self.render_template("crm/totp_enrol.html", need_password=True, error=error,
                                    required=totp.enrolment_required(user))
        return html, status

    @expose("/login", methods=["GET", "POST"])
    def login(self) -> Any:
        """The second factor after a password login."""
        if not current_user.is_authenticated:
            return _login_redirect()
        target = step_up.safe_next(request.values.get("next"), self.appbuilder.get_url_for_index)
        if session.get(PENDING) != g.user.id:
            return redirect(target)
        error = None
        if request.method == "POST":
            outcome = totp.verify(g.user, request.form.get("code"), purpose="login_totp")
            if outcome is Outcome.OK:
                session.pop(PENDING, None)
                return redirect(target)
            error = step_up.MESSAGES[outcome]
        return self.render_template("crm/totp_login.html", error=error, next=target)

    @expose("/step-up", methods=["POST"])
    def step_up(self) -> Any:
        """Code typed on the intermediate page of a GET action: check, then go back to it."""
        if not current_user.is_authenticated:
            return _login_redirect()
        target = step_up.safe_next(request.form.get("next"), self.appbuilder.get_url_for_index)
        name = request.form.get("action_name", "")
        outcome = step_up.check(g.user, name, request.form.get(step_up.CODE_FIELD) or None)
        if outcome is not Outcome.OK:
            flash(str(step_up.MESSAGES.get(outcome, _l("Type the 6-digit code from your app."))), "danger")
        return redirect(target)


class SensitiveActionsView(BaseView):
    """Admin page: which actions ask for a fresh code, and the limits around codes."""

    route_base = "/security/sensitive-actions"
    class_permission_name = "SensitiveAction"
    method_permission_name = {"list": "read"}
    base_permissions = ["can_read"]
    default_view = "list"

    @expose("/")
    @has_access
    def list(self) -> Any:
        config = current_app.config
        return self.render_template(
            "crm/sensitive_actions.html", actions=sorted(SENSITIVE.values(), key=lambda a: a.name),
            settings={key: config[key] for key in (
                "TOTP_AT_LOGIN", "TOTP_STEP_UP_MINUTES", "TOTP_MAX_FAILURES", "TOTP_LOCKOUT_MINUTES",
                "TOTP_FAIL_LIMIT_PER_USER", "TOTP_FAIL_LIMIT_PER_IP", "AUTH_RATE_LIMIT",
                "CRM_LOGIN_LIMIT_PER_USERNAME_IP", "CRM_LOGIN_LIMIT_PER_USERNAME", "CRM_LOGIN_KNOWN_ADDRESS_DAYS",
                "RATELIMIT_STORAGE_URI")},
        )


#: The audit screens' own words for the entry's time and origin (the plain "Time" and
#: "Source" msgids are a follow-up's time and a customer's lead source in Chinese).
ENTRY_TIME = _l("Recorded at")
ENTRY_SOURCE = _l("Entered via")


class ObjectTypeEqual(FilterEqual):
    """"Equal to" a record type typed as the audit log shows it (its label, in the reader's
    language or English, any case) or as stored (``display.object_type_named``)."""

    def apply(self, query: Any, value: Any) -> Any:
        return super().apply(query, display.object_type_named(value))


class AuditLogView(ListExportMixin, CrmModelView):
    """Read-only audit log with filters and export (no add, edit or delete routes)."""

    datamodel = SQLAInterface(AuditLog)
    class_permission_name = "AuditLog"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = ["can_read", "can_export"]
    list_title = _l("Audit log")
    show_title = _l("Audit entry")
    list_columns = ["created_at", "user_name", "source", "action", "object_type", "object_id", "reason", "ip"]
    show_columns = list_columns + ["changes", "detail", "user_agent", "seq", "prev_hash", "hash"]
    search_columns = ["created_at", "user_name", "user_id", "action", "object_type", "object_id", "source", "ip"]
    base_order = ("seq", "desc")
    page_size = 50
    formatters_columns = {"source": display.labelled(display.SOURCE_LABELS),
                          "action": display.labelled(display.ACTION_LABELS), "object_type": display.object_label,
                          "reason": message_text.shown, "detail": display.audit_detail}
    label_columns = {
        "created_at": ENTRY_TIME, "user_name": _l("User"), "user_id": _l("User id"), "source": ENTRY_SOURCE,
        "action": _l("Action"), "object_type": _l("Object"), "object_id": _l("Object id"), "reason": _l("Reason"),
        "ip": _l("IP address"), "changes": _l("Changes"), "detail": _l("Detail"), "user_agent": _l("Browser"),
        "seq": _l("Sequence"), "prev_hash": _l("Previous hash"), "hash": _l("Hash"),
    }

    def _init_properties(self) -> None:
        """The object columns are filtered by their exact value only: "starts with" compares
        lower-cased text, which no index serves, so it read every entry of the log (issue 12:
        200-250 ms at 196,000 entries, and the log only grows); "equal to" reads
        ``ix_audit_log_object`` (the type as the list shows it: ``ObjectTypeEqual``)."""
        super()._init_properties()
        offered, applied = self._filters.get_search_filters(), self._filters._all_filters  # FAB applies by index
        offered["object_type"] = applied["object_type"] = [ObjectTypeEqual("object_type", self.datamodel)]
        offered["object_id"] = applied["object_id"] = [FilterEqual("object_id", self.datamodel)]

    @expose("/export/<string:fmt>")
    @has_access
    def export(self, fmt: str) -> Any:
        return self.export_response(fmt, "audit-log")

    def _get_show_widget(self, pk: Any, item: Any, widgets: Any = None, actions: Any = None,
                         show_fieldsets: Any = None) -> Any:
        """The entry's changes with the record screen's field labels and related names
        (they depend on the entry's object type, which a column formatter does not see)."""
        widgets = super()._get_show_widget(pk, item, widgets=widgets, actions=actions,
                                           show_fieldsets=show_fieldsets)
        args = widgets["show"].template_args
        args["formatters_columns"] = {
            **args["formatters_columns"],
            "changes": lambda value: display.audit_changes_table(value, item.object_type),
        }
        return widgets


class AlertFilter(BaseFilter):
    name = "Security alerts"
    arg_name = "alerts"

    def apply(self, query: Any, value: Any) -> Any:
        return query.filter(self.model.action.in_(alerts.actions()))


class SecurityAlertView(AuditLogView):
    """Lockouts and a broken audit chain: what an administrator must look at."""

    class_permission_name = "SecurityAlert"
    list_title = _l("Security alerts")
    base_filters = [["id", AlertFilter, lambda: None]]


class PermissionReportView(BaseView):
    """Each user's roles, scope, last login, authenticator and flags; page and xlsx."""

    route_base = "/security/permission-report"
    class_permission_name = "PermissionReport"
    method_permission_name = {"list": "read", "download": "export"}
    base_permissions = ["can_read", "can_export"]
    default_view = "list"

    @expose("/")
    @has_access
    def list(self) -> Any:
        rows = permission_report.build_report()
        return self.render_template("crm/permission_report.html", rows=rows, columns=permission_report.COLUMNS)

    @expose("/download.xlsx")
    @has_access
    def download(self) -> Any:
        rows = permission_report.build_report()
        header = [str(column) for column in permission_report.COLUMNS]
        return exporting.response(header, (row.cells(sheet=True) for row in rows), "xlsx", "permission-report")
