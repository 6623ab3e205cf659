"""Departments and role data scopes (admin only)."""

from __future__ import annotations

from typing import Any

from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, SelectField

from app.models.org import SCOPE_LABELS, SCOPES, TICKET_SCOPE_LABELS, Department, RoleDataScope
from app.security.step_up import SensitiveWritesMixin
from app.services import records
from app.services.accounts import SCOPE_CHANGE
from views.base import CRUD_PERMISSIONS, READ_WRITE_PERMISSIONS, CrmModelView


class DepartmentView(CrmModelView):
    datamodel = SQLAInterface(Department)
    class_permission_name = "Department"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    list_title = _l("Departments")
    show_title = _l("Department")
    add_title = _l("Add department")
    edit_title = _l("Edit department")
    list_columns = ["name", "parent", "manager"]
    add_columns = edit_columns = show_columns = list_columns
    label_columns = {"name": _l("Name"), "parent": _l("Parent department"), "manager": _l("Manager"),
                     "children": _l("Sub-departments"), "members": _l("Members")}

    def pre_delete(self, item: Any) -> None:
        records.refuse_delete_in_use(item)  # members, sub-departments: move them first


class RoleDataScopeView(SensitiveWritesMixin, CrmModelView):
    """Per-role data scope and TOTP requirement; every change needs a fresh code."""

    sensitive_action = SCOPE_CHANGE
    datamodel = SQLAInterface(RoleDataScope)
    class_permission_name = "DataScope"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    list_title = _l("Role settings")
    show_title = _l("Role settings")
    add_title = _l("Add role settings")
    edit_title = _l("Edit role settings")
    list_columns = ["role", "scope", "ticket_scope", "totp_required"]
    add_columns = edit_columns = show_columns = list_columns
    label_columns = {"role": _l("Role"), "scope": _l("Data scope"), "ticket_scope": _l("Ticket scope"),
                     "totp_required": _l("Authenticator required")}
    formatters_columns = {"scope": lambda value: str(SCOPE_LABELS.get(value, value)),
                          "ticket_scope": lambda value: str(TICKET_SCOPE_LABELS.get(value, value))}
    description_columns = {
        "scope": _l("Which customers and follow-ups users with this role see. "
                    "A user with several roles gets the widest scope."),
        "ticket_scope": _l("Besides the tickets assigned to or reported by them: the tickets of customers they "
                           "see, or those of their own team (department and sub-departments)."),
        "totp_required": _l("Users with this role must enrol an authenticator app before they can do anything "
                            "else, and type a code at login."),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "scope": SelectField(_l("Data scope"), choices=[(s, SCOPE_LABELS[s]) for s in SCOPES]),
        "ticket_scope": SelectField(_l("Ticket scope"), choices=list(TICKET_SCOPE_LABELS.items())),
        # Not-null column, but unticked is a valid answer (FAB would demand a tick).
        "totp_required": BooleanField(_l("Authenticator required"), default=False),
    }
