"""Screens and APIs, registered on the AppBuilder in one place (menus in order)."""

from __future__ import annotations

from flask import current_app
from flask_appbuilder import AppBuilder
from flask_babel import lazy_gettext as _l


def register_views(appbuilder: AppBuilder) -> None:
    from views import display, errors, fields, list_links

    fields.install()
    list_links.install(current_app)  # page / order links keep repeated arguments (?cf_size=a&cf_size=b)
    current_app.jinja_env.globals.update(
        html_lang=display.html_lang,
        display=display.display, audit_rows=display.audit_rows,
        audit_source=display.labelled(display.SOURCE_LABELS), audit_action=display.labelled(display.ACTION_LABELS))
    errors.install(appbuilder)
    from views.api import DICTIONARY_APIS, CustomerApi, FollowUpApi
    from views.customers import ArchivedCustomerView, CustomerView, FollowUpView, StatusHistoryView
    from views.dictionaries import DICTIONARY_VIEWS
    from views.duplicates import DuplicatesView
    from views.exports import ExportView
    from views.imports import ImportView, upload_too_large
    from views.jobs import ScheduledJobsView, TransferScheduleView
    from views.org import DepartmentView, RoleDataScopeView
    from views.search import QuickSearchView
    from views.security import (
        AuditLogView,
        PermissionReportView,
        SecurityAlertView,
        SensitiveActionsView,
        TotpView,
    )
    from views.sync import SyncConflictView, SyncRunView, SyncTargetView

    crm = "CRM"
    appbuilder.add_view(CustomerView, "Customers", label=_l("Customers"), icon="fa-building",
                        category=crm, category_label=_l("CRM"), category_icon="fa-address-book")
    appbuilder.add_view(FollowUpView, "Follow-ups", label=_l("Follow-ups"), icon="fa-comments", category=crm)
    appbuilder.add_view(ArchivedCustomerView, "Archived customers", label=_l("Archived customers"),
                        icon="fa-archive", category=crm)
    appbuilder.add_view_no_menu(StatusHistoryView)
    appbuilder.add_view(ImportView, "Import", label=_l("Import"), icon="fa-upload", category=crm)
    current_app.register_error_handler(413, upload_too_large)
    appbuilder.add_view_no_menu(ExportView)
    appbuilder.add_view(DuplicatesView, "Duplicates", label=_l("Duplicates"), icon="fa-clone", category=crm)
    appbuilder.add_view_no_menu(QuickSearchView)  # the navbar's search box (every logged-in user)
    import views.activities  # noqa: F401  (OWN_VIEWS/OWN_APIS for activities)
    import views.leads  # noqa: F401  (OWN_VIEWS/OWN_APIS for leads)

    # OWN_VIEWS/OWN_APIS for tickets, demands, feedback (issue 16), orders, contracts, campaigns (issue 15)
    from views import (
        approvals,
        campaigns,
        contracts,
        dashboards,
        orders,
        reports,
        service_desk,
        service_records,
        sla,
        targets,
    )
    from views.declared import register_declared
    from views.leads import register as register_leads
    from views.opportunities import StageView  # fills OWN_VIEWS / OWN_APIS for opportunities

    register_declared(appbuilder)  # contacts, leads, opportunities, products (app.record_types)
    register_leads(appbuilder)  # assignment rules + web form
    from views.pipeline import register_pipeline

    register_pipeline(appbuilder)  # /pipeline/ kanban + /pipeline/forecast (menus "Pipeline", "Forecast")
    from views.activities import register_activities
    from views.notifications import register_notifications
    from views.reminders import register_reminders
    from views.settings import register_settings

    register_activities(appbuilder)  # my activities, calendar, task templates
    register_notifications(appbuilder)  # inbox, bell count, preferences, outbox
    register_settings(appbuilder)  # Organisation > Settings (app.services.settings)
    register_reminders(appbuilder)  # the birthday greeting e-mail
    service_desk.register(appbuilder)  # Service > Tickets, My tickets, Transfer rules (issue 16)
    service_records.register(appbuilder)  # Service > Demands, Feedback, Report a problem
    sla.register(appbuilder)  # Service > SLA policies, Working calendars
    orders.register(appbuilder)  # Sales > orders' tracking pages and actions (issue 15)
    contracts.register(appbuilder)  # Sales > contracts' actions, attachments
    campaigns.register(appbuilder)  # Marketing > campaign evaluation
    approvals.register(appbuilder)  # Approvals > Waiting for me, My requests, Policies
    dashboards.register(appbuilder)  # Reports > Sales / Service / Admin dashboards, drill-down (issue 17)
    reports.register(appbuilder)  # Reports > Report builder, Saved reports
    targets.register(appbuilder)  # Reports > Sales targets (admins)

    for view, label in DICTIONARY_VIEWS:
        appbuilder.add_view(view, view.__name__, label=label, icon="fa-list", category="Dictionaries",
                            category_label=_l("Dictionaries"), category_icon="fa-book")
    appbuilder.add_view(StageView, "Stages", label=_l("Stages"), icon="fa-tasks", category="Dictionaries")

    appbuilder.add_view(DepartmentView, "Departments", label=_l("Departments"), icon="fa-sitemap",
                        category="Organisation", category_label=_l("Organisation"), category_icon="fa-users")
    appbuilder.add_view(RoleDataScopeView, "Data scopes", label=_l("Role settings"), icon="fa-eye",
                        category="Organisation")
    appbuilder.add_view(ScheduledJobsView, "Scheduled jobs", label=_l("Scheduled jobs"), icon="fa-clock-o",
                        category="Organisation")
    appbuilder.add_view(TransferScheduleView, "Scheduled imports and exports", label=_l("Scheduled imports/exports"),
                        icon="fa-exchange", category="Organisation")
    from views import backups, company, custom_fields, custom_reveal, lifecycle, system_health

    company.register(appbuilder)  # Organisation > Company: name, logo, zone, currency, formats (issue 19)
    backups.register(appbuilder)  # Organisation > Backups: run, verify, restore
    system_health.register(appbuilder)  # Organisation > System health, Daily checklist
    lifecycle.register(appbuilder)  # Organisation > Data retention, Personal data erasure
    custom_fields.register(appbuilder)  # Organisation > Custom fields: definitions, tags, searchable indexes (issue 18)
    custom_reveal.register(appbuilder)  # a masked custom field's recorded reveal (step-up, audited)

    sync_menu = "Sync"
    appbuilder.add_view(SyncTargetView, "Sync targets", label=_l("Sync targets"), icon="fa-refresh",
                        category=sync_menu, category_label=_l("Sync"), category_icon="fa-exchange")
    appbuilder.add_view(SyncRunView, "Sync runs", label=_l("Sync runs"), icon="fa-list", category=sync_menu)
    appbuilder.add_view(SyncConflictView, "Sync conflicts", label=_l("Sync conflicts"), icon="fa-code-fork",
                        category=sync_menu)

    security = "Security"
    appbuilder.add_view_no_menu(TotpView)
    appbuilder.add_view(AuditLogView, "Audit log", label=_l("Audit log"), icon="fa-history", category=security)
    appbuilder.add_view(SecurityAlertView, "Security alerts", label=_l("Security alerts"), icon="fa-bell",
                        category=security)
    appbuilder.add_view(PermissionReportView, "Permission report", label=_l("Permission report"),
                        icon="fa-id-badge", category=security)
    appbuilder.add_view(SensitiveActionsView, "Sensitive actions", label=_l("Sensitive actions"),
                        icon="fa-shield", category=security)
    from views.notifications import add_outbox_menu

    add_outbox_menu(appbuilder)  # Security > Outbox (Admin): e-mail/SMS queue, retry, test e-mail

    for api in (CustomerApi, FollowUpApi, *DICTIONARY_APIS):
        appbuilder.add_api(api)
    from views.health import register_health

    register_health(current_app, appbuilder)  # /health/live, /health/ready: no login, no limits
