"""REST API (FAB ModelRestApi): explicit columns, data scope, masking, same rules as forms."""

from __future__ import annotations

from typing import Any

from flask import g, request
from flask_appbuilder.api import expose, safe
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import protect

from app.extensions import db
from app.models.customers import Customer, FollowUp
from app.models.dictionaries import CustomerLevel, CustomerSource, CustomerType, FollowUpMethod, Industry
from app.security import masking, step_up
from app.services import audit
from app.services import customers as rules
from app.services.errors import RuleViolation
from views.base import CUSTOMER_PERMISSIONS, READ_WRITE_PERMISSIONS, SCOPE_FILTER, ScopedApi
from views.customers import REVEAL, NotArchivedFilter

_OWNER = ["owner.id", "owner.username"]
_STAMPS = ["version", "created_on", "changed_on"]
_CUSTOMER_EDIT = [
    "name", "credit_code", "type", "industry", "contact_name", "contact_phone",
    "email", "address", "level", "source", "owner", "note",
]
_ACTIVE = [["id", NotArchivedFilter, lambda: None]]


def _mask_row(row: dict[str, Any]) -> None:
    if row.get("contact_phone"):
        row["contact_phone"] = masking.mask_phone(row["contact_phone"])


class CustomerApi(ScopedApi):
    resource_name = "customer"
    datamodel = SQLAInterface(Customer)
    class_permission_name = "Customer"
    method_permission_name = {**READ_WRITE_PERMISSIONS, "reveal_contact": "reveal_contact"}
    base_permissions = list(CUSTOMER_PERMISSIONS)
    base_filters = SCOPE_FILTER + _ACTIVE
    list_columns = [
        "id", "code", "name", "credit_code", "type.code", "industry.code", "contact_name",
        "contact_phone", "email", "level.code", "source.code", *_OWNER, *_STAMPS,
    ]
    show_columns = list_columns + ["address", "note"]
    add_columns = _CUSTOMER_EDIT
    edit_columns = _CUSTOMER_EDIT
    search_columns = ["code", "name", "credit_code", "type", "industry", "contact_name", "level", "source", "owner"]
    order_columns = ["id", "code", "name", "created_on", "changed_on"]
    add_query_rel_fields = {"owner": SCOPE_FILTER}
    edit_query_rel_fields = {"owner": SCOPE_FILTER}

    def pre_get(self, data: dict[str, Any]) -> None:
        _mask_row(data.get("result", {}))

    def pre_get_list(self, data: dict[str, Any]) -> None:
        for row in data.get("result", []):
            _mask_row(row)

    def pre_add(self, item: Customer) -> None:
        rules.clean_customer(item, g.user)
        rules.check_duplicates(item, g.user, confirmed=request.args.get("allow_duplicate") == "1")

    def pre_update(self, item: Customer) -> None:
        rules.check_version(item, g.submitted_version)
        rules.clean_customer(item, g.user)
        rules.check_duplicates(item, g.user, confirmed=request.args.get("allow_duplicate") == "1")

    def delete_headless(self, pk: Any) -> Any:
        """DELETE archives the customer (never a hard delete)."""
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        may_archive_won = self.appbuilder.sm.has_access("can_archive_won", "Customer")
        name = rules.archive_step_up([item], may_archive_won)
        refusal = step_up.require(name) if name else None
        if refusal is not None:
            return refusal
        try:
            rules.archive(item, may_archive_won)
        except RuleViolation as exc:
            return self._rule_response(exc)
        db.session.commit()
        return self.response(200, message="archived")

    @expose("/<int:pk>/contact", methods=["POST"])
    @protect()
    @safe
    def reveal_contact(self, pk: int) -> Any:
        """Reveal the full contact phone of one customer (recorded in the audit log).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          - in: header
            name: X-TOTP-Code
            schema:
              type: string
            description: A fresh TOTP code (sensitive action), unless a step-up is still fresh
          responses:
            200:
              description: The unmasked phone number
            401:
              description: Step-up required (send X-TOTP-Code)
            404:
              $ref: '#/components/responses/404'
        """
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            return self.response_404()
        refusal = step_up.require(REVEAL)
        if refusal is not None:
            return refusal
        audit.record("reveal", item, {"field": "contact_phone", "code": item.code, "via": "api"})
        db.session.commit()
        return self.response(200, contact_phone=item.contact_phone)


class FollowUpApi(ScopedApi):
    resource_name = "follow_up"
    datamodel = SQLAInterface(FollowUp)
    class_permission_name = "FollowUp"
    list_columns = [
        "id", "code", "customer.id", "customer.code", "followed_at", "method.code", "content",
        "next_step", "next_step_date", *_OWNER, *_STAMPS,
    ]
    show_columns = list_columns
    add_columns = ["customer", "followed_at", "method", "content", "next_step", "next_step_date", "owner"]
    edit_columns = add_columns
    search_columns = ["code", "customer", "followed_at", "method", "next_step_date", "owner"]
    order_columns = ["id", "code", "followed_at", "next_step_date"]
    add_query_rel_fields = {"customer": SCOPE_FILTER, "owner": SCOPE_FILTER}
    edit_query_rel_fields = {"customer": SCOPE_FILTER, "owner": SCOPE_FILTER}

    def pre_add(self, item: FollowUp) -> None:
        rules.clean_follow_up(item, g.user)

    def pre_update(self, item: FollowUp) -> None:
        rules.check_version(item, g.submitted_version)
        rules.clean_follow_up(item, g.user)


def _dictionary_api(model: type, resource: str) -> type:
    columns = ["id", "code", "label_en", "label_zh", "sort_order", "active"]
    if model is Industry:
        columns = columns + ["parent_id"]
    return type(
        f"{model.__name__}Api",
        (ScopedApi,),
        {
            "resource_name": resource,
            "datamodel": SQLAInterface(model),
            "class_permission_name": "Dictionary",
            "base_filters": [],
            "list_columns": columns,
            "show_columns": columns,
            "add_columns": columns[1:],
            "edit_columns": columns[1:],
            "search_columns": ["code", "label_en", "label_zh", "active"],
        },
    )


DICTIONARY_APIS = [
    _dictionary_api(CustomerType, "customer_type"),
    _dictionary_api(Industry, "industry"),
    _dictionary_api(CustomerSource, "customer_source"),
    _dictionary_api(FollowUpMethod, "follow_up_method"),
    _dictionary_api(CustomerLevel, "customer_level"),
]
