"""REST API (FAB ModelRestApi): explicit columns, data scope, masking, same rules as forms."""

from __future__ import annotations

from typing import Any

from flask import g, request
from flask_appbuilder.api import expose, safe
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.models.customers import Customer, FollowUp
from app.models.dictionaries import (
    CampaignType,
    CustomerLevel,
    CustomerSource,
    CustomerType,
    FollowUpMethod,
    Industry,
    PaymentMethod,
)
from app.models.service import DemandStatus, DemandType, FeedbackType, Priority, TicketType
from app.services import approvals, customers, dictionaries, follow_ups
from views import approvals as approvals_views
from views.base import CUSTOMER_PERMISSIONS, READ_WRITE_PERMISSIONS, SCOPE_FILTER, ScopedApi
from views.customers import NotArchivedFilter
from views.writes import UseCaseApiMixin

_OWNER = ["owner.id", "owner.username"]
_STAMPS = ["version", "created_on", "changed_on"]
_CUSTOMER_EDIT = [
    "name", "credit_code", "type", "industry", "contact_name", "contact_phone",
    "email", "address", "level", "source", "owner", "note",
]
_ACTIVE = [["id", NotArchivedFilter, lambda: None]]


class CustomerApi(UseCaseApiMixin, ScopedApi):
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

    def save_record(self, values: dict[str, Any], *, pk: Any, version: Any) -> Customer:
        return customers.save_customer(values, g.user, pk=pk, version=version,
                                       allow_duplicate=request.args.get("allow_duplicate") == "1",
                                       contract_number=g.get("customer_contract_number"))

    def _payload(self) -> tuple[dict[str, Any] | None, Any]:
        """The JSON body; ``contract_number`` (001: making a customer won) is not a column:
        taken off for the use case."""
        payload, error = super()._payload()
        if payload is not None and "contract_number" in payload:
            number = payload.pop("contract_number")
            if number is not None and not isinstance(number, str):
                message = str(_l("Give the contract number as text."))
                return None, self.response_400(message={"contract_number": [message]})
            g.customer_contract_number = number
        return payload, error

    def delete_headless(self, pk: Any) -> Any:
        """DELETE archives the customer (never a hard delete), through the archive use case."""
        result, refusal = self.call_use_case(lambda: customers.archive_customers([pk], g.user))
        if refusal is not None:
            return refusal
        archived, refused = result
        if refused:
            db.session.rollback()
            return self.response(403, message={"_": refused[0]})
        db.session.commit()
        held = approvals.held()
        if held and not archived:
            return self.response(202, message="held for approval", held_for_approval=approvals_views.held_json(held))
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
        phone, refusal = self.call_use_case(lambda: customers.reveal_contact(pk, g.user, via="api"))
        if refusal is not None:
            return refusal
        db.session.commit()
        return self.response(200, contact_phone=phone)


class FollowUpApi(UseCaseApiMixin, ScopedApi):
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

    def save_record(self, values: dict[str, Any], *, pk: Any, version: Any) -> FollowUp:
        return follow_ups.save_follow_up(values, g.user, pk=pk, version=version)


def _dictionary_api(model: type, resource: str) -> type:
    columns = ["id", "code", "label_en", "label_zh", "aliases", "sort_order", "active"]
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
            "search_columns": ["code", "label_en", "label_zh", "aliases", "active"],
            "pre_add": lambda self, item: dictionaries.check_entry(item),
            "pre_update": lambda self, item: dictionaries.check_entry(item),
            "pre_delete": lambda self, item: dictionaries.check_delete(item),
        },
    )


DICTIONARY_APIS = [
    _dictionary_api(CustomerType, "customer_type"),
    _dictionary_api(Industry, "industry"),
    _dictionary_api(CustomerSource, "customer_source"),
    _dictionary_api(FollowUpMethod, "follow_up_method"),
    _dictionary_api(CustomerLevel, "customer_level"),
    _dictionary_api(TicketType, "ticket_type"),
    _dictionary_api(Priority, "priority"),
    _dictionary_api(DemandType, "demand_type"),
    _dictionary_api(DemandStatus, "demand_status"),
    _dictionary_api(FeedbackType, "feedback_type"),
    _dictionary_api(PaymentMethod, "payment_method"),
    _dictionary_api(CampaignType, "campaign_type"),
]
