"""Customer, follow-up and status-history screens (客户, 跟进记录, 状态变更)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import abort, flash, g, has_request_context, make_response, redirect, request, url_for
from flask_appbuilder import action, expose, has_access
from flask_appbuilder._compat import as_unicode
from flask_appbuilder.const import FLAMSG_ERR_SEC_ACCESS_DENIED, PERMISSION_PREFIX
from flask_appbuilder.hooks import before_request
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import selectinload
from wtforms import StringField
from wtforms.validators import Length

from app.extensions import appbuilder, db
from app.models.audit import AuditLog
from app.models.customers import Customer, CustomerStatusChange, FollowUp
from app.security import masking, step_up
from app.security.data_scope import has_scope, scope_clause
from app.security.request_bounds import db_int
from app.services import approvals, customers, exporting, follow_ups, search
from app.services.dedup import DuplicateFound
from app.services.errors import NotFound, RuleForbidden, RuleViolation
from views import activities as activities_views
from views import approvals as approvals_views
from views import display, forms
from views.base import (
    CRUD_PERMISSIONS,
    CUSTOMER_PERMISSIONS,
    READ_WRITE_PERMISSIONS,
    SCOPE_FILTER,
    ListExportMixin,
    ScopedModelView,
    served_routes,
)
from views.contacts import ContactView
from views.custom_form import CustomFieldsFormMixin
from views.custom_list import CustomFieldsListMixin
from views.opportunities import OpportunityView
from views.writes import UseCaseFormMixin, reveal_page

CUSTOMER_FIELDS = [
    "name", "credit_code", "type", "industry", "contact_name", "contact_phone",
    "email", "address", "level", "source", "owner", "note",
]


def contract_number_field() -> StringField:
    """001: the contract number a customer is made won with (kept in the status history)."""
    return StringField(_l("Contract number"), validators=[Length(max=100)],
                       description=_l("Required to make the customer won when it has no signed contract yet (001)."))


class NotArchivedFilter(BaseFilter):
    name = "Not archived"
    arg_name = "not_archived"

    def apply(self, query: Any, value: Any) -> Any:
        return query.filter(self.model.archived_at.is_(None))


class ArchivedFilter(BaseFilter):
    name = "Archived"
    arg_name = "archived"

    def apply(self, query: Any, value: Any) -> Any:
        return query.filter(self.model.archived_at.isnot(None))


#: The lists' search box argument, and the endpoints it narrows (the lists as shown and
#: their downloads; never a record's page, edit or action).
SEARCH_ARG = "q"
_SEARCHED_ENDPOINTS = ("CustomerView.list", "CustomerView.export", "FollowUpView.list", "FollowUpView.export")


def search_text() -> str:
    """What was typed in a list's search box, on the endpoints it applies to."""
    if not has_request_context() or request.endpoint not in _SEARCHED_ENDPOINTS:
        return ""
    return request.args.get(SEARCH_ARG, "")


class QuickSearchFilter(BaseFilter):
    """The customer list's search box (``?q=``): ``search.customer_clause``, ANDed with the scope filter."""

    name = "Search"
    arg_name = "quick_search"

    def apply(self, query: Any, value: Any) -> Any:
        try:
            clause = search.customer_clause(search_text(), db.session)
        except ValueError:  # refused with a message by SearchBoxMixin.refuse_long_search
            return query
        return query if clause is None else query.filter(clause)


class FollowUpSearchFilter(BaseFilter):
    """The follow-up list's search box (``?q=``): code, content, the customer's name or code
    (``search.follow_up_clause``, as the navbar's search finds follow-ups), ANDed with the scope."""

    name = "Search"
    arg_name = "quick_search"

    def apply(self, query: Any, value: Any) -> Any:
        try:
            clause = search.follow_up_clause(search.quick_text(search_text()), db.session)
        except ValueError:  # refused with a message by SearchBoxMixin.refuse_long_search
            return query
        return query if clause is None else query.filter(clause)


class NextStepOpenFilter(BaseFilter):
    """``?next_step_open=1`` (the home page's "next step due" link): only follow-ups with a
    dated next step still to do (``follow_ups.next_steps_open``), as the home page counts them."""

    name = "Next step open"
    arg_name = "next_step_open"

    def apply(self, query: Any, value: Any) -> Any:
        return query.filter(follow_ups.next_steps_open()) if request.args.get("next_step_open") == "1" else query


def _too_long(text: str) -> bool:
    """Whether either search (``customer_clause`` folds, ``quick_text`` cleans) refuses ``text``."""
    try:
        search.quick_text(text)
    except ValueError:
        return True
    return len(search.fold(text)) > search.MAX_QUERY_LENGTH


class SearchBoxMixin:
    """A list with a search box (``?q=``, ``crm/search_box.html``): a text too long to
    search is refused with a message, never silently ignored."""

    @before_request
    def refuse_long_search(self) -> Any:
        """A search text over ``search.MAX_QUERY_LENGTH`` characters: the list without it, and why."""
        if not _too_long(search_text()):
            return None
        flash(str(_l("Search text is too long (at most %(most)d characters).", most=search.MAX_QUERY_LENGTH)),
              "warning")
        return redirect(url_for(f"{self.endpoint}.list"))


def export_list(view: ListExportMixin, fmt: str, filename: str) -> Any:
    """The list download of a screen without unmasking (``exporting.authorise``: the user
    needs the screen's ``can_export``); scope, filters, order and masking as the list shows."""
    try:
        exporting.authorise(g.user, view.class_permission_name)
    except RuleForbidden:
        abort(403)
    return view.export_response(fmt, filename)


class StatusHistoryView(ScopedModelView):
    """Read-only status history, shown on the customer's page."""

    datamodel = SQLAInterface(CustomerStatusChange)
    class_permission_name = "CustomerStatusChange"
    base_permissions = ["can_read"]
    list_title = _l("Status history")
    show_title = _l("Status change")
    list_columns = ["changed_at", "from_type", "to_type", "changed_by", "reason"]
    show_columns = list_columns
    base_order = ("changed_at", "desc")
    label_columns = {
        "changed_at": _l("Changed at"), "from_type": _l("From"), "to_type": _l("To"),
        "changed_by": _l("Changed by"), "reason": _l("Reason"), "customer": _l("Customer"),
    }


class FollowUpView(SearchBoxMixin, CustomFieldsFormMixin, CustomFieldsListMixin, UseCaseFormMixin, ListExportMixin,
                   ScopedModelView):
    datamodel = SQLAInterface(FollowUp)
    class_permission_name = "FollowUp"
    base_permissions = CRUD_PERMISSIONS + ["can_export"]
    base_filters = SCOPE_FILTER + [["id", FollowUpSearchFilter, lambda: None], ["id", NextStepOpenFilter, lambda: None]]
    list_template = "crm/followup_list.html"
    list_title = _l("Follow-ups")
    show_title = _l("Follow-up")
    add_title = _l("Add follow-up")
    edit_title = _l("Edit follow-up")
    list_columns = ["code", "customer", "followed_at", "method", "content", "next_step", "next_step_date", "owner"]
    show_columns = list_columns + ["created_by", "created_on", "changed_by", "changed_on", "version"]
    add_columns = ["template", "customer", "followed_at", "method", "content", "next_step", "next_step_date", "owner"]
    edit_columns = add_columns[1:] + ["edit_version"]
    search_columns = ["code", "customer", "followed_at", "method", "content", "next_step_date", "owner"]
    base_order = ("followed_at", "desc")
    #: the task-template picker (003 任务模板) pre-fills content and next step in the browser
    #: (crm/activity_form.js); it is not a field of the follow-up (not in use_case_fields)
    add_template = "crm/activity_form.html"
    add_form_extra_fields = {"owner": forms.owner_field(), "template": activities_views.template_field()}
    edit_form_extra_fields = {"owner": forms.owner_field(True), "edit_version": forms.version_field()}
    use_case_fields = follow_ups.EDITABLE
    label_columns = {
        "code": _l("Code"), "customer": _l("Customer"), "followed_at": _l("Time"),
        "method": _l("Method"), "content": _l("Content"), "next_step": _l("Next step"),
        "next_step_date": _l("Next step date"), "owner": _l("Owner"), "version": _l("Version"),
        "created_by": _l("Created by"), "created_on": _l("Created on"),
        "changed_by": _l("Changed by"), "changed_on": _l("Changed on"),
    }

    def prefill_form(self, form: Any, pk: Any) -> None:
        form.edit_version.data = self.datamodel.get(pk).version

    def save_record(self, values: dict[str, Any], *, pk: Any, version: Any, form: Any) -> FollowUp:
        item = follow_ups.save_follow_up(values, g.user, pk=pk, version=version)
        g.saved_follow_up_customer = item.customer_id
        return item

    def _preset_customer_id(self) -> int | None:
        """The customer an add form was opened for (``?_flt_0_customer=<id>``, the link on
        the customer's page and in its follow-up list), or None."""
        if request.endpoint != "FollowUpView.add":
            return None
        for flt, value in self._filters.get_filters_values():
            if flt.column_name == "customer" and value:
                values = value if isinstance(value, list) else [value]  # FAB keeps a list per filter
                return db_int(values[0]) if len(values) == 1 else None
        return None

    def _get_add_widget(self, form: Any, exclude_cols: Any = None, widgets: Any = None) -> Any:
        """Opened from a customer: the customer field stays on the form (FAB hides it),
        chosen, so the user sees for whom the follow-up is written and may change it."""
        preset = self._preset_customer_id()
        if preset is not None:
            exclude_cols = [c for c in exclude_cols or [] if c != "customer"]
            if request.method == "GET":
                form.customer.data = db.session.scalars(
                    select(Customer).where(Customer.id == preset, scope_clause(g.user, Customer),
                                           Customer.archived_at.is_(None))).first()
        return super()._get_add_widget(form, exclude_cols=exclude_cols, widgets=widgets)

    def _fill_form_exclude_cols(self, exclude_cols: Any, form: Any) -> None:
        """The customer shown on the form wins over the one in the URL (FAB overwrites it)."""
        if "customer" in form and form.customer.data is not None:
            exclude_cols = [c for c in exclude_cols if c != "customer"]
        super()._fill_form_exclude_cols(exclude_cols, form)

    def post_add_redirect(self) -> Any:
        """Added from a customer's page: back to that customer's follow-ups, where it shows."""
        customer_id = g.get("saved_follow_up_customer")
        if customer_id is not None and self._preset_customer_id() is not None:
            return redirect(url_for("CustomerView.show", pk=customer_id, tab="activities"))
        return super().post_add_redirect()

    @expose("/export/<string:fmt>")
    @has_access
    def export(self, fmt: str) -> Any:
        """Download the current list (scope, filters and order applied)."""
        return export_list(self, fmt, "follow-ups")


# -- the customer's full view (客户信息全景视图, 001 关联信息整合; issue 16) ---------------------

#: Rows per page of a tab's list.
TAB_PAGE_SIZE = 20


@dataclass(frozen=True)
class CustomerTab:
    """One tab of the customer's page: ``key`` (``?tab=``), label, and the sources it lists
    (record type names of ``app.record_types.REGISTRY``, or keys of ``OTHER_SOURCES``)."""

    key: str
    label: Any
    sources: tuple[str, ...] = ()


#: The tabs in their order. A source that is not declared (yet) lists nothing, and a tab
#: without any source the user may read is not shown: orders and contracts appear when
#: their record types are declared, with no change here.
KNOWN_TABS = (
    CustomerTab("overview", _l("Overview")),
    CustomerTab("contacts", _l("Contacts"), ("contact",)),
    CustomerTab("activities", _l("Follow-ups and activities"), ("follow_up", "activity")),
    CustomerTab("opportunities", _l("Opportunities"), ("opportunity",)),
    CustomerTab("orders", _l("Orders"), ("order",)),
    CustomerTab("contracts", _l("Contracts"), ("contract",)),
    CustomerTab("tickets", _l("Tickets"), ("ticket",)),
    CustomerTab("demands", _l("Demands"), ("demand",)),
    CustomerTab("feedback", _l("Service feedback"), ("service_feedback",)),
)
HISTORY_TAB = CustomerTab("history", _l("History"))
#: Sources that are no declared record type: name -> model (listed like a declared type).
OTHER_SOURCES: dict[str, type] = {"follow_up": FollowUp, "status_change": CustomerStatusChange}
#: The overview's own list (the status history).
OVERVIEW_SOURCES = ("status_change",)
#: The "new" button of a source (default "Add <type>"), and its element id.
NEW_LABELS = {"contact": _l("New contact"), "follow_up": _l("Add follow-up"), "activity": _l("Plan an activity"),
              "opportunity": _l("New opportunity"), "ticket": _l("New ticket"), "demand": _l("New demand"),
              "service_feedback": _l("New feedback")}
NEW_IDS = {"follow_up": "add-follow-up", "activity": "plan-activity"}


def source_model(name: str) -> type | None:
    """The model a tab source lists, or None while it is not declared (or has no customer)."""
    from app.record_types import REGISTRY

    model = OTHER_SOURCES.get(name) or getattr(REGISTRY.get(name), "model", None)
    if model is None or model is Customer or not hasattr(model, "customer_id"):
        return None
    return model if has_scope(model) else None


def all_tabs() -> list[CustomerTab]:
    """The known tabs, then one per other declared record type with a customer, then history."""
    from app.record_types import REGISTRY

    known = {source for tab in KNOWN_TABS for source in tab.sources} | set(OTHER_SOURCES)
    keys = {tab.key for tab in KNOWN_TABS} | {HISTORY_TAB.key}
    extra = [CustomerTab(rt.name if rt.name not in keys else f"type_{rt.name}", rt.plural, (rt.name,))
             for rt in REGISTRY.values() if rt.name not in known and source_model(rt.name) is not None]
    return [*KNOWN_TABS, *extra, HISTORY_TAB]


def _screen_of(model: type) -> Any:
    """The registered screen listing ``model`` (the first one with a show page), or None."""
    for view in appbuilder.baseviews:
        datamodel = getattr(view, "datamodel", None)
        if datamodel is not None and datamodel.obj is model and "show" in served_routes(view):
            return view
    return None


def _may(view: Any, route: str) -> bool:
    """Whether the current user may use ``view``'s ``route`` (its FAB permission)."""
    if route not in served_routes(view):
        return False
    return appbuilder.sm.has_access(PERMISSION_PREFIX + view.get_method_permission(route), view.class_permission_name)


@dataclass
class TabSection:
    """One list on a tab: a source the user may read, its screen and (once loaded) a page."""

    name: str
    model: type
    view: Any
    rows: list[Any] = field(default_factory=list)
    total: int = 0
    page: int = 0

    @property
    def title(self) -> Any:
        """The list's heading: its screen's list title (translated)."""
        return self.view.list_title

    @property
    def page_arg(self) -> str:
        """The page argument (checked like every list's ``page_`` argument: ``list_arg_problems``)."""
        return f"page_{self.name}"

    @property
    def columns(self) -> list[str]:
        """The screen's list columns without the customer (every row is this customer's)."""
        return [c for c in self.view.list_columns if c.split(".")[0] != "customer"]

    @property
    def last_page(self) -> int:
        """The last 0-based page (0 when empty)."""
        return max(0, (self.total - 1) // TAB_PAGE_SIZE)

    def label(self, column: str) -> Any:
        """A column's heading, as its own screen labels it."""
        return self.view.label_columns.get(column, column)

    def cell(self, item: Any, column: str) -> Any:
        """A row's value as its own screen shows it (masked columns masked, always)."""
        value = item
        for part in column.split("."):
            value = getattr(value, part, None) if value is not None else None
        if masking.is_masked_path(self.model, column):
            return masking.mask(value) if value else ""
        formatter = self.view.formatters_columns.get(column, display.display)
        return "" if value is None else formatter(value)

    def link(self, item: Any) -> str:
        """The row's own page."""
        return url_for(f"{self.view.endpoint}.show", pk=item.id)


def readable_sections(names: tuple[str, ...]) -> list[TabSection]:
    """The sources of ``names`` that are declared and that the current user may read."""
    sections = []
    for name in names:
        model = source_model(name)
        view = _screen_of(model) if model is not None else None
        if view is not None and _may(view, "show"):
            sections.append(TabSection(name, model, view))
    return sections


def shown_tabs(may_read_history: bool) -> list[tuple[CustomerTab, list[TabSection]]]:
    """The tabs the current user sees, each with its readable sections (no queries of rows)."""
    shown = []
    for tab in all_tabs():
        sections = readable_sections(tab.sources)
        if tab.key == "overview" or sections or (tab is HISTORY_TAB and may_read_history):
            shown.append((tab, sections))
    return shown


def _eager(model: type, columns: list[str]) -> list[Any]:
    """Load the relations the columns show in one query each (never a query per row)."""
    options = []
    for column in columns:
        current, option = model, None
        for part in column.split(".")[:-1] if "." in column else [column]:
            relation = sa_inspect(current).relationships.get(part)
            if relation is None:
                break
            attr = getattr(current, part)
            option = selectinload(attr) if option is None else option.selectinload(attr)
            current = relation.mapper.class_
        if option is not None:
            options.append(option)
    return options


def _order(section: TabSection) -> list[Any]:
    """The screen's default order (a dotted or unknown column: newest first), ties by id."""
    column, direction = section.view.base_order or ("id", "desc")
    attr = getattr(section.model, column, None) if "." not in column else None
    if attr is None:
        attr, direction = section.model.id, "desc"
    return [attr.desc() if direction == "desc" else attr.asc(), section.model.id.desc()]


def load_section(section: TabSection, customer_id: int, user: Any, page: int) -> TabSection:
    """One page (``TAB_PAGE_SIZE`` rows, 0-based ``page``; past the end: the last) of the
    section's rows of the customer in ``user``'s data scope (``scope_clause``), and their count."""
    model = section.model
    where = (model.customer_id == customer_id, scope_clause(user, model))
    section.total = db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0
    section.page = min(max(page, 0), section.last_page)
    section.rows = list(db.session.scalars(
        select(model).where(*where).options(*_eager(model, section.columns)).order_by(*_order(section))
        .offset(section.page * TAB_PAGE_SIZE).limit(TAB_PAGE_SIZE)))
    return section


@dataclass
class HistoryPage:
    """One page of the customer's audit trail (newest first)."""

    rows: list[Any]
    total: int
    page: int
    name: str = "history"

    @property
    def page_arg(self) -> str:
        """The page argument (``?page_history=<n>``, 0-based)."""
        return "page_history"

    @property
    def last_page(self) -> int:
        """The last 0-based page (0 when empty)."""
        return max(0, (self.total - 1) // TAB_PAGE_SIZE)


def load_history(customer_id: int, page: int) -> HistoryPage:
    """One page of the audit entries about the customer (``audit.history``, paged)."""
    where = (AuditLog.object_type == "Customer", AuditLog.object_id == str(customer_id))
    total = db.session.scalar(select(func.count()).select_from(AuditLog).where(*where)) or 0
    page = min(max(page, 0), max(0, (total - 1) // TAB_PAGE_SIZE))
    rows = list(db.session.scalars(select(AuditLog).where(*where).order_by(AuditLog.seq.desc())
                                   .offset(page * TAB_PAGE_SIZE).limit(TAB_PAGE_SIZE)))
    return HistoryPage(rows, total, page)


def new_buttons(customer_id: int) -> list[tuple[str, Any, str]]:
    """(element id, label, url) of the "new" links the user may follow, the customer chosen."""
    from app.record_types import REGISTRY

    buttons = []
    for name in [s for tab in all_tabs() for s in tab.sources]:
        model = source_model(name)
        view = _screen_of(model) if model is not None else None
        if view is None or "customer" not in (view.add_columns or []) or not _may(view, "add"):
            continue  # a type chosen for a customer only (a lead becomes one: no "new" here)
        label = NEW_LABELS.get(name) or _l("Add %(type)s", type=REGISTRY[name].label if name in REGISTRY
                                           else view.list_title)
        buttons.append((NEW_IDS.get(name, f"new-{name}"), label,
                        url_for(f"{view.endpoint}.add", _flt_0_customer=customer_id)))
    if appbuilder.sm.has_access("can_read", "Approval"):  # the record's requests and 数据变更申请 (000)
        buttons.append(("customer-approvals", _l("Approvals and data-change requests"),
                        url_for("ApprovalRequestView.for_record", record_type="customer", pk=customer_id)))
    return buttons


def _page_number(arg: str) -> int:
    """A tab's page argument (already refused by ``refuse_bad_list_args`` when no number)."""
    value = request.args.get(arg, "0")
    return (db_int(value) or 0) if value.isdigit() else 0


class CustomerTabsMixin:
    """The customer's page in tabs (``?tab=<key>&page_<source>=<n>``): only the opened tab's
    lists are queried, each scoped and paged; the overview is the record and its status history."""

    @expose("/show/<pk>")
    @has_access
    def show(self, pk: Any) -> Any:
        item = self.scoped_get(pk)
        if item is None:
            abort(404)
        may_history = self.appbuilder.sm.has_access("can_history", "Customer")
        tabs = shown_tabs(may_history)
        key = request.args.get("tab", "overview")
        current = next(((tab, sections) for tab, sections in tabs if tab.key == key), None)
        if current is None:
            abort(404)
        tab, sections = current
        widgets: dict[str, Any] = {}
        if tab.key == "overview":
            widgets = self._get_show_widget(item.id, item)
            sections = readable_sections(OVERVIEW_SOURCES)
        lists = [load_section(s, item.id, g.user, _page_number(s.page_arg)) for s in sections]
        if tab is HISTORY_TAB:
            lists = [load_history(item.id, _page_number("page_history"))]
        self.update_redirect()
        return self.render_template(
            self.show_template, pk=item.id, item=item, title=self.show_title, widgets=widgets, tabs=tabs,
            tab=tab, lists=lists, new_buttons=new_buttons(item.id), page_size=TAB_PAGE_SIZE,
            tab_total=sum(s.total for s in lists))


class CustomerView(CustomerTabsMixin, SearchBoxMixin, CustomFieldsFormMixin, CustomFieldsListMixin, UseCaseFormMixin,
                   ListExportMixin, ScopedModelView):
    datamodel = SQLAInterface(Customer)
    class_permission_name = "Customer"
    method_permission_name = {
        **READ_WRITE_PERMISSIONS, "archive_action": "delete", "reveal": "reveal_contact",
    }
    base_permissions = list(CUSTOMER_PERMISSIONS)
    base_filters = SCOPE_FILTER + [["id", NotArchivedFilter, lambda: None], ["id", QuickSearchFilter, lambda: None]]
    list_title = _l("Customers")
    show_title = _l("Customer")
    add_title = _l("Add customer")
    edit_title = _l("Edit customer")
    list_template = "crm/customer_list.html"
    show_template = "crm/customer_show.html"
    list_columns = ["code", "name", "type", "industry", "contact_name", "contact_phone", "level", "owner"]
    show_fieldsets = [
        (_l("Customer"), {"fields": ["code", "name", "credit_code", "type", "industry", "level", "source"]}),
        (_l("Contact"), {"fields": ["contact_name", "contact_phone", "email", "address"]}),
        (_l("Responsibility"), {"fields": ["owner", "note"]}),
        (
            _l("Record"),
            {"fields": ["created_by", "created_on", "changed_by", "changed_on", "version"], "expanded": False},
        ),
    ]
    add_columns = CUSTOMER_FIELDS + ["contract_number", "allow_duplicate"]
    edit_columns = CUSTOMER_FIELDS + ["status_reason", "contract_number", "edit_version", "allow_duplicate"]
    search_columns = ["code", "name", "credit_code", "type", "industry", "contact_name", "level", "source", "owner", "created_on"]
    base_order = ("id", "desc")
    related_views = [FollowUpView, StatusHistoryView, ContactView, OpportunityView]
    add_form_extra_fields = {"owner": forms.owner_field(), "allow_duplicate": forms.duplicate_field(),
                             "contract_number": contract_number_field()}
    edit_form_extra_fields = {
        "owner": forms.owner_field(True),
        "allow_duplicate": forms.duplicate_field(),
        "contract_number": contract_number_field(),
        "status_reason": forms.status_reason_field(),
        "edit_version": forms.version_field(),
    }
    use_case_fields = customers.EDITABLE
    label_columns = {
        "code": _l("Customer code"), "name": _l("Customer name"), "credit_code": _l("Unified social credit code"),
        "type": _l("Customer type"), "industry": _l("Industry"), "contact_name": _l("Contact name"),
        "contact_phone": _l("Contact phone"), "email": _l("E-mail"), "address": _l("Address"),
        "level": _l("Customer level"), "source": _l("Source"), "owner": _l("Owner"), "note": _l("Note"),
        "created_by": _l("Created by"), "created_on": _l("Created on"), "changed_by": _l("Changed by"),
        "changed_on": _l("Changed on"), "version": _l("Version"),
    }
    description_columns = {
        "contact_phone": _l("Mobile (13812345678) or landline with area code (010-12345678); +86 accepted."),
        "credit_code": _l("Optional; 18 characters, checked against the national checksum."),
    }

    def prefill_form(self, form: Any, pk: Any) -> None:
        form.edit_version.data = self.datamodel.get(pk).version

    def save_record(self, values: dict[str, Any], *, pk: Any, version: Any, form: Any) -> Customer:
        """The save use case (a change held for approval is told by ``UseCaseFormMixin``)."""
        return customers.save_customer(values, g.user, pk=pk, version=version,
                                       allow_duplicate=bool(form.allow_duplicate.data),
                                       contract_number=form.contract_number.data if "contract_number" in form
                                       else None)

    def show_rule_errors(self, form: Any, exc: RuleViolation) -> None:
        """A duplicate: links to the matches the user may open, the message on 'Save anyway'."""
        if isinstance(exc, DuplicateFound):
            links = Markup(", ").join(
                Markup('<a href="{}">{} {}</a>').format(url_for("CustomerView.show", pk=c.id), c.code, c.name)
                for c, _ in exc.matches if c.code in exc.errors["duplicates"])
            if links:
                flash(Markup(_l("Possible duplicate of: %(links)s", links=links)), "warning")
            exc = RuleViolation({"allow_duplicate": exc.errors["duplicate"]})
        super().show_rule_errors(form, exc)

    def _archive(self, pks: list[Any]) -> Any:
        """Archive (the screens' delete) through the use case; None when done, else a response."""
        try:
            archived, refused = customers.archive_customers(pks, g.user)
        except step_up.StepUpRequired as exc:
            db.session.rollback()
            return make_response(step_up.refusal(exc))
        except NotFound:
            db.session.rollback()
            abort(404)
        db.session.commit()
        approvals_views.flash_held(approvals.held())
        if archived:
            flash(str(_l("Archived: %(codes)s", codes=", ".join(c.code for c in archived))), "success")
        for reason in refused:
            flash(reason, "danger")
        return None

    @expose("/delete/<pk>", methods=["GET", "POST"])
    @has_access
    def delete(self, pk: Any) -> Any:
        self.update_redirect()
        if request.method == "GET" and not self.is_get_mutation_allowed():
            flash(as_unicode(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(self.get_redirect())
        return self._archive([pk]) or redirect(self.get_redirect())

    def _delete(self, pk: Any) -> None:
        """Any FAB path that deletes archives instead (customers are never hard-deleted)."""
        response = self._archive([pk])
        if response is not None:
            abort(response)

    @action("archive", _l("Archive"), _l("Archive the selected customers?"), "fa-archive", single=False)
    def archive_action(self, items: Any) -> Any:
        items = items if isinstance(items, list) else [items]
        self.update_redirect()
        return self._archive([item.id for item in items]) or redirect(self.get_redirect())

    @expose("/reveal/<int:pk>", methods=["GET", "POST"])
    @has_access
    def reveal(self, pk: int) -> Any:
        """Explicit, recorded reveal of a full phone number (GET asks, POST reveals)."""
        return reveal_page(self, pk, lambda key: customers.reveal_contact(key, g.user), lambda c: c.contact_phone,
                           phone_label=_l("Contact phone"), back_url=url_for("CustomerView.show", pk=pk),
                           back_label=_l("Back to the customer"))

    @expose("/export/<string:fmt>")
    @has_access
    def export(self, fmt: str) -> Any:
        """Download the current list (scope, filters and order applied; phones masked).

        ``?unmasked=1`` gives full phone numbers to users who may reveal them, after a step-up.
        """
        unmasked = frozenset({"contact_phone", *exporting.masked_custom_names(Customer)}) \
            if request.args.get("unmasked") else frozenset()
        try:
            exporting.authorise(g.user, self.class_permission_name, unmasked)
        except step_up.StepUpRequired as exc:
            return step_up.refusal(exc)
        except RuleForbidden:
            abort(403)
        if unmasked:
            return self.export_response(fmt, "customers", unmasked=unmasked)
        return self.export_response(fmt, "customers")


class ArchivedCustomerView(ListExportMixin, ScopedModelView):
    """Archived customers: list, page, download and restore (scoped like the customer list)."""

    datamodel = SQLAInterface(Customer)
    class_permission_name = "ArchivedCustomer"
    #: Read and restore only: adding or editing customers is the customer screen's use case.
    include_route_methods = {"list", "show", "action", "action_post", "api_read", "export"}
    method_permission_name = {**READ_WRITE_PERMISSIONS, "restore_action": "write"}
    base_permissions = ["can_read", "can_write", "can_export"]
    base_filters = SCOPE_FILTER + [["id", ArchivedFilter, lambda: None]]
    list_title = _l("Archived customers")
    show_title = _l("Archived customer")
    list_columns = ["code", "name", "type", "contact_name", "contact_phone", "owner", "archived_at"]
    show_columns = list_columns
    search_columns = ["code", "name", "owner"]
    label_columns = {**CustomerView.label_columns, "archived_at": _l("Archived at")}
    base_order = ("archived_at", "desc")

    @action("restore", _l("Restore"), _l("Restore the selected customers?"), "fa-undo")
    def restore_action(self, items: Any) -> Any:
        items = items if isinstance(items, list) else [items]
        try:
            restored = customers.restore_customers([item.id for item in items], g.user)
        except RuleViolation as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            db.session.commit()
            flash(str(_l("Restored: %(codes)s", codes=", ".join(i.code for i in restored))), "success")
        return redirect(url_for(f"{self.__class__.__name__}.list"))

    @expose("/export/<string:fmt>")
    @has_access
    def export(self, fmt: str) -> Any:
        """Download the current list (scope, filters and order applied; phones masked)."""
        return export_list(self, fmt, "archived-customers")

