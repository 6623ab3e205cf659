"""First-start setup: permissions, the five CRM roles with their data scopes, dictionaries.

Idempotent: existing roles and dictionary entries are left as admins edited them;
only what is missing is created. The Admin role requires an authenticator by default.
Changes of this plan that existing databases need too ship as a data migration
(e.g. ``c3a9e1f27b54``: user administration for admins only, Admin requires TOTP;
``7d4f2a9c1b36``: follow-up and archived-customer downloads, archived customers for reps).
"""

from __future__ import annotations

import re
from typing import Any

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy import inspect as sa_inspect

from app import record_types
from app.extensions import appbuilder, db
from app.models.dictionaries import (
    CampaignType,
    CustomerLevel,
    CustomerSource,
    CustomerType,
    FollowUpMethod,
    Industry,
    PaymentMethod,
)
from app.models.org import (
    SCOPE_ALL,
    SCOPE_DEPARTMENT,
    SCOPE_OWN,
    TICKET_SCOPE_CUSTOMER,
    TICKET_SCOPE_TEAM,
    RoleDataScope,
)
from app.models.sales import Stage
from app.models.service import DemandStatus, DemandType, FeedbackType, Priority, TicketType
from app.services.industries_gbt4754 import INDUSTRY_ALIASES, OTHER_ALIASES, SECTIONS, alias_text

#: Every role's own profile and password, the menu and the API docs. Nothing that lists or
#: shows other accounts: the user administration screens (list, show, add, edit, reset
#: password, groups, roles) stay with Admin.
_SELF_SERVICE = [
    (r"(can_userinfo|resetmypassword|userinfoedit)", r"(Crm)?UserDBModelView"),
    (r"can_this_form_(get|post)", r"(UserInfoEditView|ResetMyPasswordView)"),
    (r"can_get", r"(OpenApi|MenuApi)"),
    (r"can_show", r"SwaggerView"),
    # issue 14: every user's inbox, mark read, own notification preferences
    (r"can_(read|write)", r"Notifications"),
    # issue 16 (000 附录3): every user reports problems with the CRM and follows their own reports;
    # attachment downloads are checked against the record's data scope
    (r"can_(read|write)", r"ProblemReport"), (r"can_read", r"Attachment"),
    (r"menu_access", r"(Service|Report a problem|My problem reports)"),
    # issue 15: every user's approvals inbox and own requests (a request's scope is its requester,
    # approvers and admins); the policies stay with Admin
    (r"can_(read|write)", r"Approval"), (r"menu_access", r"(Approvals|Waiting for me|My requests)"),
]
#: The activities' own pages (the Activity permission comes from its declaration).
_MENUS_ACTIVITIES = (r"menu_access", r"(My activities|Activity calendar)")
#: The service desk's queue page (the Ticket permission comes from its declaration).
_MENUS_SERVICE = (r"menu_access", r"Ticket queue")
_MENUS_SALES = (r"menu_access", r"(Customers|Follow-ups|CRM|Import)")
_IMPORT = (r"can_(read|write)", r"Import|Export")
#: Issue 15: the Sales and Marketing categories and their own pages (the Order, Contract and
#: Campaign permissions come from their declarations).
_MENUS_COMMERCE = (r"menu_access", r"(Sales|Marketing|Expiring contracts|Overdue deliveries|Overdue payments)")

#: Issue 17: the Reports menu. Every role runs, saves and exports reports in its own scope;
#: exporting a report with contact data stays with managers (003 第三步 4); targets with Admin.
_REPORTS = (r"can_(read|write|export)", r"Reports")
_MENUS_REPORTS = (r"menu_access", r"(Reports|Report builder|Saved reports)")

#: role -> (data scope, [(permission regex, view regex)])
ROLES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "Sales Rep": (SCOPE_OWN, [
        (r"can_read", r"Pipeline"), (r"menu_access", r"(Pipeline|Forecast)"),
        (r"can_(read|write|delete|export|reveal_contact)", r"Customer"),
        # Reps archive with Delete: they see and restore their archived customers (scoped).
        (r"can_(read|write)", r"ArchivedCustomer"),
        (r"can_(read|write|delete|export)", r"FollowUp"),
        (r"can_read", r"(Dictionary|CustomerStatusChange)"),
        _IMPORT, _MENUS_SALES, (r"menu_access", r"Archived customers"), *_SELF_SERVICE,
        _MENUS_ACTIVITIES, (r"can_send", r"Greeting"), _MENUS_SERVICE, _MENUS_COMMERCE,
        (r"can_sales", r"Dashboards"), _REPORTS, _MENUS_REPORTS,
    ]),
    "Sales Manager": (SCOPE_DEPARTMENT, [
        (r"can_read", r"Pipeline"), (r"menu_access", r"(Pipeline|Forecast)"),
        (r"can_(read|write|delete|export|reveal_contact|archive_won|history)", r"Customer"),
        (r"can_(read|write|export)", r"ArchivedCustomer"),
        (r"can_(read|write|delete|export)", r"FollowUp"),
        (r"can_read", r"(Dictionary|CustomerStatusChange)"),
        _IMPORT, (r"can_(read|merge)", r"Duplicates"),
        (r"menu_access", r"(Customers|Follow-ups|Archived customers|CRM|Import|Duplicates)"), *_SELF_SERVICE,
        _MENUS_ACTIVITIES, (r"can_send", r"Greeting"), _MENUS_SERVICE, _MENUS_COMMERCE,
        (r"can_(sales|manager)", r"Dashboards"), (r"can_(read|write|export|export_contacts)", r"Reports"),
        _MENUS_REPORTS, (r"menu_access", r"Sales dashboard"),
    ]),
    "Customer Service": (SCOPE_ALL, [
        (r"can_read", r"Pipeline"), (r"menu_access", r"(Pipeline|Forecast)"),
        (r"can_(read|reveal_contact)", r"Customer"),
        (r"can_(read|write)", r"FollowUp"),
        (r"can_read", r"(Dictionary|CustomerStatusChange)"),
        _IMPORT, _MENUS_SALES, *_SELF_SERVICE, _MENUS_ACTIVITIES, _MENUS_SERVICE, _MENUS_COMMERCE,
        (r"can_(sales|service)", r"Dashboards"), _REPORTS, _MENUS_REPORTS, (r"menu_access", r"Service dashboard"),
    ]),
    "Read Only": (SCOPE_ALL, [
        (r"can_read", r"Pipeline"), (r"menu_access", r"(Pipeline|Forecast)"),
        (r"can_read", r"(Customer|FollowUp|Dictionary|CustomerStatusChange)"),
        _MENUS_SALES, *_SELF_SERVICE, _MENUS_ACTIVITIES, _MENUS_SERVICE, _MENUS_COMMERCE,
        (r"can_(sales|manager|service)", r"Dashboards"), (r"can_read", r"Reports"), _MENUS_REPORTS,
        (r"menu_access", r"(Sales dashboard|Service dashboard)"),
    ]),
}

DICTIONARY_SEED: dict[type, list[tuple[str, str, str]]] = {
    CustomerType: [("potential", "Potential", "潜在客户"), ("won", "Won", "成交客户"), ("lost", "Lost", "流失客户")],
    CustomerLevel: [("A", "A - high", "A 重要"), ("B", "B - medium", "B 一般"), ("C", "C - low", "C 潜在")],
    CustomerSource: [
        ("trade_show", "Trade show", "展会推广"), ("online_ad", "Online ad", "线上广告"),
        ("referral", "Referral", "客户转介绍"), ("website", "Website form", "官网表单"),
        ("phone", "Phone inquiry", "电话咨询"),
    ],
    FollowUpMethod: [("phone", "Phone", "电话"), ("visit", "Visit", "拜访"), ("email", "E-mail", "邮件"),
                     ("meeting", "Meeting", "会议")],
    # issue 16: 000 服务工单流程 (咨询 / 投诉 / 售后支持; 附录3 问题反馈), 001 tables 3 and 4
    TicketType: [("consult", "Consultation", "咨询"), ("complaint", "Complaint", "投诉"),
                 ("after_sales", "After-sales support", "售后支持"), ("internal", "CRM problem", "系统问题")],
    Priority: [("high", "High", "高"), ("medium", "Medium", "中"), ("low", "Low", "低")],
    DemandType: [("product_inquiry", "Product inquiry", "产品咨询"), ("tech_support", "Technical support", "技术支持"),
                 ("custom", "Custom cooperation", "合作定制")],
    DemandStatus: [("pending", "Pending", "待处理"), ("in_progress", "In progress", "处理中"),
                   ("done", "Done", "已完成"), ("closed", "Closed", "已关闭")],
    FeedbackType: [("complaint", "Product complaint", "产品投诉"), ("suggestion", "Service suggestion", "服务建议"),
                   ("praise", "Praise", "表扬")],
    # issue 15: 002 §四(二)3 (收款情况), §五(一) (活动形式)
    PaymentMethod: [("bank_transfer", "Bank transfer", "银行转账"), ("cash", "Cash", "现金"),
                    ("cheque", "Cheque", "支票"), ("alipay", "Alipay", "支付宝"), ("wechat", "WeChat Pay", "微信支付")],
    CampaignType: [("exhibition", "Exhibition", "展会"), ("seminar", "Seminar", "研讨会"),
                   ("online", "Online promotion", "线上推广"), ("email", "E-mail marketing", "邮件营销"),
                   ("customer_event", "Customer appreciation event", "客户答谢会")],
}
#: Roles whose ticket scope is not "customer" (``RoleDataScope.ticket_scope``): Customer
#: Service reads every customer, so it sees its team's tickets rather than every ticket.
TICKET_SCOPES = {"Customer Service": TICKET_SCOPE_TEAM}
#: Opportunity stages (000 §二(二), 003 第二步): code, English, Chinese, weight %, won, lost,
#: fields required to enter, stale days (003 第三步 2: 方案提交 超7天未更新). The migration
#: a4c6e8f0b2d5 seeded the same rows; ``seed_dictionaries`` fills an empty stage table.
STAGE_SEED = [
    ("contact", "Contact", "接触", 10, False, False, "", None),
    ("needs", "Needs analysis", "需求分析", 30, False, False, "demand", None),
    ("proposal", "Proposal", "方案提交", 50, False, False, "proposal_version", 7),
    ("negotiation", "Negotiation", "商务谈判", 80, False, False, "expected_close", None),
    ("won", "Won", "成交", 100, True, False, "amount", None),
    ("lost", "Lost", "输单", 0, False, True, "lost_reason", None),
]
#: GB/T 4754-2017: 20 sections with their 97 divisions (``app.services.industries_gbt4754``).
INDUSTRY_SEED = SECTIONS


def sync_permissions() -> None:
    """Create every view's permissions and the Admin/Public roles (FAB_CREATE_DB is off)."""
    sm = appbuilder.sm
    sm.add_role(current_app.config["AUTH_ROLE_ADMIN"])
    sm.add_role(current_app.config["AUTH_ROLE_PUBLIC"])
    appbuilder.add_permissions(update_perms=True)


def _matching_permissions(patterns: list[tuple[str, str]]) -> list[Any]:
    sm = appbuilder.sm
    result = []
    for pv in db.session.scalars(select(sm.permissionview_model)).all():
        if pv.permission is None or pv.view_menu is None:
            continue
        for perm_re, view_re in patterns:
            if re.fullmatch(perm_re, pv.permission.name) and re.fullmatch(view_re, pv.view_menu.name):
                result.append(pv)
                break
    return result


def seed_roles(new_permission_ids: set[int] | frozenset[int] = frozenset()) -> None:
    """Create missing CRM roles. Existing roles keep the admins' edits, except that the
    self-service permissions (own profile, password) are always granted, and permissions
    of screens added by an upgrade (``new_permission_ids``) follow the default role plan."""
    sm = appbuilder.sm
    admin = sm.find_role(current_app.config["AUTH_ROLE_ADMIN"])
    _ensure_scope(admin, SCOPE_ALL, totp_required=True)
    self_service = _matching_permissions(_SELF_SERVICE)
    for name, (scope, own_patterns) in ROLES.items():
        patterns = own_patterns + record_types.role_patterns(name)
        role = sm.find_role(name)
        if role is None:
            role = sm.add_role(name, _matching_permissions(patterns))
            _ensure_scope(role, scope, ticket_scope=TICKET_SCOPES.get(name, TICKET_SCOPE_CUSTOMER))
        else:
            added = [pv for pv in _matching_permissions(patterns) if pv.id in new_permission_ids]
            role.permissions.extend(pv for pv in [*self_service, *added] if pv not in role.permissions)
    db.session.commit()


def _permission_ids() -> set[int]:
    return set(db.session.scalars(select(appbuilder.sm.permissionview_model.id)))


def _ensure_scope(role: Any, scope: str, totp_required: bool = False,
                  ticket_scope: str = TICKET_SCOPE_CUSTOMER) -> None:
    """Create the role's settings row if missing (an existing one keeps the admins' edits)."""
    # ids only: ``crm init`` also runs on databases migrated part way (columns of later revisions missing)
    if role is None or db.session.scalar(select(RoleDataScope.id).where(RoleDataScope.role_id == role.id)):
        return
    columns = {column["name"] for column in sa_inspect(db.engine).get_columns(RoleDataScope.__tablename__)}
    if "ticket_scope" in columns:
        db.session.add(RoleDataScope(role_id=role.id, scope=scope, totp_required=totp_required,
                                     ticket_scope=ticket_scope))
    else:  # before revision d2e4f6a8b0c3 (tests of old revisions): the columns it has
        db.session.execute(text("INSERT INTO role_data_scope (role_id, scope, totp_required) VALUES (:r, :s, :t)"),
                           {"r": role.id, "s": scope, "t": totp_required})


def seed_dictionaries() -> None:
    """Fill empty dictionaries: the defaults above with their aliases (``OTHER_ALIASES``),
    industries from GB/T 4754-2017 (sections, divisions as their children, ``INDUSTRY_ALIASES``).
    A dictionary that has any entry is left as the admins made it."""
    tables = set(sa_inspect(db.engine).get_table_names())
    for model, rows in DICTIONARY_SEED.items():
        if model.__tablename__ not in tables or db.session.scalar(select(func.count(model.id))):
            continue
        aliases = OTHER_ALIASES.get(model.__name__, {})
        for order, (code, en, zh) in enumerate(rows, start=1):
            db.session.add(model(code=code, label_en=en, label_zh=zh, sort_order=order * 10, active=True,
                                 aliases=alias_text(aliases.get(code, ()))))
    # ``crm init`` also runs on databases migrated part way (tests of old revisions): no table, no seed.
    if sa_inspect(db.engine).has_table(Stage.__tablename__) and not db.session.scalar(select(func.count(Stage.id))):
        db.session.add_all(stage_rows())
    if not db.session.scalar(select(func.count(Industry.id))):
        for order, (code, zh, en, children) in enumerate(INDUSTRY_SEED, start=1):
            parent = _industry(code, en, zh, order * 100)
            db.session.add(parent)
            for sub_order, (c_code, c_zh, c_en) in enumerate(children, start=1):
                db.session.add(_industry(c_code, c_en, c_zh, order * 100 + sub_order, parent))
    db.session.commit()


def stage_rows() -> list[Stage]:
    """New ``Stage`` rows of ``STAGE_SEED`` (order 10, 20 …)."""
    return [Stage(code=code, label_en=en, label_zh=zh, weight=weight, is_won=won, is_lost=lost,
                  required_fields=required or None, stale_days=stale, sort_order=(i + 1) * 10, active=True)
            for i, (code, en, zh, weight, won, lost, required, stale) in enumerate(STAGE_SEED)]


def _industry(code: str, en: str, zh: str, sort_order: int, parent: Industry | None = None) -> Industry:
    return Industry(code=code, label_en=en, label_zh=zh, parent=parent, sort_order=sort_order, active=True,
                    aliases=alias_text(INDUSTRY_ALIASES.get(code, ())))


def initialise() -> None:
    """Everything a migrated, empty database needs before the first login."""
    before = _permission_ids()
    sync_permissions()
    seed_roles(_permission_ids() - before if before else frozenset())
    seed_dictionaries()
    from app.models.activities import ActivityTemplate
    from app.services.activities import seed_templates

    if sa_inspect(db.engine).has_table(ActivityTemplate.__tablename__):  # a database not yet migrated to it
        seed_templates()  # 任务模板: the manual's examples when the table is empty
    from app.models.service import SlaPolicy
    from app.services import sla

    if sa_inspect(db.engine).has_table(SlaPolicy.__tablename__):
        sla.seed_defaults()  # the standard working calendar (China's holidays, 调休) and SLA policies
    from app.models.approvals import ApprovalPolicy
    from app.services import approvals

    if sa_inspect(db.engine).has_table(ApprovalPolicy.__tablename__):
        approvals.seed_defaults()  # 000/003: archive a won customer, change a level, data-change requests
