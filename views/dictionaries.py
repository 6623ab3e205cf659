"""Admin screens for the data dictionaries (数据字典)."""

from __future__ import annotations

from typing import Any

from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l

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
from app.services import dictionaries
from views.base import CRUD_PERMISSIONS, READ_WRITE_PERMISSIONS, CrmModelView

LABELS = {
    "code": _l("Code"), "label_en": _l("English label"), "label_zh": _l("Chinese label"),
    "sort_order": _l("Sort order"), "active": _l("Active"), "parent": _l("Parent industry"),
    "aliases": _l("Aliases"),
}


class DictionaryView(CrmModelView):
    """One screen per dictionary; all share the ``Dictionary`` permissions (safe list
    arguments and actions, active-only parents on add forms: ``CrmModelView``)."""

    class_permission_name = "Dictionary"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    list_columns = ["code", "label_en", "label_zh", "aliases", "sort_order", "active"]
    add_columns = edit_columns = show_columns = list_columns
    search_columns = ["code", "label_en", "label_zh", "aliases", "active"]
    base_order = ("sort_order", "asc")
    label_columns = LABELS
    description_columns = {
        "active": _l("Inactive entries stay on old records but cannot be picked for new ones."),
        "aliases": _l("Other names people write for this entry (e.g. 信息技术, IT), one per line or "
                      "separated by commas; imports and the sync accept them. An alias must name one entry only."),
    }

    # The rules are the service's (FAB shows their message on the form or the list).
    def pre_add(self, item: Any) -> None:
        dictionaries.check_entry(item)

    def pre_update(self, item: Any) -> None:
        dictionaries.check_entry(item)

    def pre_delete(self, item: Any) -> None:
        dictionaries.check_delete(item)


def _dictionary_view(model: type, title: str, titles: tuple[str, str, str], extra: list[str] | None = None) -> type:
    """A screen over one dictionary; ``titles``: its show, add and edit page titles (FAB's
    default, "Add Customer Level", is built from the class name and never translated)."""
    columns = ["code"] + (extra or []) + ["label_en", "label_zh", "aliases", "sort_order", "active"]
    return type(
        f"{model.__name__}View",
        (DictionaryView,),
        {
            "datamodel": SQLAInterface(model),
            "list_title": title,
            "show_title": titles[0],
            "add_title": titles[1],
            "edit_title": titles[2],
            "list_columns": columns,
            "add_columns": columns,
            "edit_columns": columns,
            "show_columns": columns,
        },
    )


CustomerTypeView = _dictionary_view(CustomerType, _l("Customer types"), (
    _l("Customer type"), _l("Add customer type"), _l("Edit customer type")))
IndustryView = _dictionary_view(Industry, _l("Industries"), (
    _l("Industry"), _l("Add industry"), _l("Edit industry")), ["parent"])
CustomerSourceView = _dictionary_view(CustomerSource, _l("Customer sources"), (
    _l("Customer source"), _l("Add customer source"), _l("Edit customer source")))
FollowUpMethodView = _dictionary_view(FollowUpMethod, _l("Follow-up methods"), (
    _l("Follow-up method"), _l("Add follow-up method"), _l("Edit follow-up method")))
CustomerLevelView = _dictionary_view(CustomerLevel, _l("Customer levels"), (
    _l("Customer level"), _l("Add customer level"), _l("Edit customer level")))

TicketTypeView = _dictionary_view(TicketType, _l("Ticket types"), (
    _l("Ticket type"), _l("Add ticket type"), _l("Edit ticket type")))
PriorityView = _dictionary_view(Priority, _l("Priorities"), (
    _l("Priority"), _l("Add priority"), _l("Edit priority")))
DemandTypeView = _dictionary_view(DemandType, _l("Demand types"), (
    _l("Demand type"), _l("Add demand type"), _l("Edit demand type")))
DemandStatusView = _dictionary_view(DemandStatus, _l("Demand statuses"), (
    _l("Demand status"), _l("Add demand status"), _l("Edit demand status")))
FeedbackTypeView = _dictionary_view(FeedbackType, _l("Feedback types"), (
    _l("Feedback type"), _l("Add feedback type"), _l("Edit feedback type")))
PaymentMethodView = _dictionary_view(PaymentMethod, _l("Payment methods"), (
    _l("Payment method"), _l("Add payment method"), _l("Edit payment method")))
CampaignTypeView = _dictionary_view(CampaignType, _l("Campaign types"), (
    _l("Campaign type"), _l("Add campaign type"), _l("Edit campaign type")))

DICTIONARY_VIEWS = [
    (CustomerTypeView, _l("Customer types")),
    (IndustryView, _l("Industries")),
    (CustomerSourceView, _l("Customer sources")),
    (FollowUpMethodView, _l("Follow-up methods")),
    (CustomerLevelView, _l("Customer levels")),
    (TicketTypeView, _l("Ticket types")),
    (PriorityView, _l("Priorities")),
    (DemandTypeView, _l("Demand types")),
    (DemandStatusView, _l("Demand statuses")),
    (FeedbackTypeView, _l("Feedback types")),
    (PaymentMethodView, _l("Payment methods")),
    (CampaignTypeView, _l("Campaign types")),
]
