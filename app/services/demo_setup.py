"""Demo organisation for `python3 run.py --demo`: three departments, six users, ~300 customers
with their follow-ups, the sales pipeline (products, contacts, ~200 leads, ~300 opportunities)
and the service desk (tickets, demands, feedback, a transfer rule), six months of orders,
this year's sales targets and a shared, scheduled report.

Only ever run on request: without it, no account with a known password exists.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select

from app import clock
from app.extensions import appbuilder, db
from app.models.dictionaries import CustomerLevel, CustomerSource, CustomerType, FollowUpMethod, Industry
from app.models.org import CrmUser, Department

DEMO_PASSWORD = "Demo-Pass-2024"
#: username, first name, last name, role, department, job title
DEMO_USERS = [
    ("admin", "Ada", "Admin", "Admin", None, "System administrator"),
    ("manager", "王", "经理", "Sales Manager", "East", "Sales manager"),
    ("rep1", "李", "娜", "Sales Rep", "East", "Sales representative"),
    ("rep2", "Tom", "Baker", "Sales Rep", "East", "Sales representative"),
    ("rep3", "陈", "伟", "Sales Rep", "South", "Sales representative"),
    ("service", "赵", "敏", "Customer Service", "Service", "Customer service agent"),
]


def _departments() -> dict[str, Department]:
    east = Department(name="华东销售部 East China Sales")
    south = Department(name="华南销售部 South China Sales")
    service = Department(name="客服部 Customer Service")
    db.session.add_all([east, south, service])
    db.session.flush()
    return {"East": east, "South": south, "Service": service}


def _dictionaries() -> dict[str, list]:
    active = lambda model: db.session.scalars(select(model).where(model.active.is_(True))).all()  # noqa: E731
    return {
        "type": active(CustomerType),
        "industry": _demo_industries(active(Industry)),
        "level": active(CustomerLevel),
        "source": active(CustomerSource),
        "method": active(FollowUpMethod),
    }


def _demo_industries(entries: list[Industry]) -> list[Industry]:
    """The divisions the demo has trade words for (``TRADES``), else every sub-industry:
    a demo spread over all 97 GB/T divisions would look like no real customer base."""
    from app.services.demo_data import TRADES

    children = [i for i in entries if i.parent_id is not None]
    return [i for i in children if i.code in TRADES] or children


def load_demo(customer_count: int = 300) -> list[tuple[str, str]]:
    """Create the demo data once; returns (username, role) pairs, empty if already there."""
    from app.services.demo_data import build_demo_customers

    sm = appbuilder.sm
    if sm.find_user(username="manager") is not None:
        return []
    departments = _departments()
    created = []
    for username, first, last, role, dep, title in DEMO_USERS:
        user = sm.add_user(username, first, last, f"{username}@demo.example.com", sm.find_role(role),
                           password=DEMO_PASSWORD)
        user = db.session.get(CrmUser, user.id)
        user.department = departments.get(dep)
        user.job_title = title
        created.append((username, role))
    departments["East"].manager = sm.find_user(username="manager")
    owners = [sm.find_user(username=u) for u in ("manager", "rep1", "rep2", "rep3")]
    dictionaries = _dictionaries()
    build_demo_customers(db.session, owners, dictionaries, count=customer_count)
    _demo_custom_fields()
    _demo_pipeline(owners, dictionaries)
    _demo_sales(owners)
    _demo_service_desk(owners, departments["Service"])
    _demo_reports(owners)
    _demo_sync_target(owners[0])
    db.session.commit()
    return created


#: Demo values of the custom fields (客户规模, 合作年限, 关键需求标签), cycled over the customers.
_DEMO_SIZES = ("small", "medium", "large", "group", "medium")
_DEMO_NEEDS = (["price"], ["service", "high_value"], [], ["tech"], ["price", "churn_risk"], ["high_value"])


def _demo_custom_fields() -> None:
    """The issue-18 example fields on customers (``custom_fields.admin.demo_fields``) and a
    value in most demo customers, so lists, filters and reports show them from the start."""
    from app.models.customers import Customer
    from app.services.custom_fields.admin import demo_fields

    demo_fields()
    db.session.flush()
    for n, customer in enumerate(db.session.scalars(select(Customer).order_by(Customer.id))):
        if n % 7 == 6:
            continue  # some customers without: empty values exist in real data too
        needs = _DEMO_NEEDS[n % len(_DEMO_NEEDS)]
        customer.custom = {"size": _DEMO_SIZES[n % len(_DEMO_SIZES)], "years": n % 12 + 1,
                           **({"needs": needs} if needs else {})}


def _demo_pipeline(owners: list[CrmUser], dictionaries: dict[str, list]) -> None:
    """Products, and contacts, leads and opportunities for each of those types that is
    declared (``app.record_types.REGISTRY``): a type still being built is left out."""
    from app.models.customers import Customer
    from app.models.sales import Stage
    from app.record_types import REGISTRY
    from app.services import demo_data

    products = demo_data.build_demo_products(db.session) if "product" in REGISTRY else []
    customers = db.session.scalars(select(Customer).order_by(Customer.id)).all()
    if "contact" in REGISTRY:
        demo_data.build_demo_contacts(db.session, customers)
    if "lead" in REGISTRY:
        reps = [owner for owner in owners if owner.username.startswith("rep")] or owners
        demo_data.build_demo_leads(db.session, reps, dictionaries, count=min(200, 2 * len(customers) // 3))
    if "opportunity" in REGISTRY:
        stages = {stage.code: stage for stage in db.session.scalars(select(Stage).where(Stage.active.is_(True)))}
        demo_data.build_demo_opportunities(db.session, customers, products, stages, count=len(customers))
    if "activity" in REGISTRY:
        REGISTRY["activity"].demo(db.session, owners)  # app.services.activities.build_demo


def _demo_sales(owners: list[CrmUser]) -> None:
    """Orders, contracts and campaigns (issue 15), for each of those types that is declared:
    they need the pipeline's customers, opportunities and leads."""
    from app.record_types import REGISTRY

    for name in ("order", "contract", "campaign"):
        if name in REGISTRY and REGISTRY[name].demo is not None:
            REGISTRY[name].demo(db.session, owners)


def _demo_reports(owners: list[CrmUser]) -> None:
    """Issue 17: this year's monthly sales targets for the demo sellers (a little above what
    the demo orders sell, so some months are met and some not), and the manager's
    level × industry report (001 §四), shared with the reps and e-mailed to the manager on
    Mondays. Through the use cases, as an admin and the manager would."""
    from app.models.orders import SalesOrder
    from app.services import reports, targets

    admin = appbuilder.sm.find_user(username="admin")
    year = clock.local_today().year
    sold = dict(db.session.execute(select(SalesOrder.owner_id, func.sum(SalesOrder.total))
                                   .group_by(SalesOrder.owner_id)).all())
    values = {}
    for owner in owners:
        monthly = (Decimal(sold.get(owner.id) or 0) * 11 / 60_000).quantize(Decimal(1), rounding=ROUND_HALF_UP) * 1000
        values.update({(owner.id, month): max(monthly, Decimal(10000)) for month in range(1, 13)})
    targets.set_year(admin, year, values)
    manager = owners[0]
    rep_role = appbuilder.sm.find_role("Sales Rep")
    reports.save(manager, "客户等级 × 行业", reports.parse_spec(
        {"source": "customers", "dimensions": ["level", "industry"], "measure": "count", "chart": "bar"}),
        roles=[rep_role.id], schedule="weekly", weekday=0, recipients=[manager.id])


def _demo_service_desk(owners: list[CrmUser], team: Department) -> None:
    """The service desk (issue 16): the service agent leads the customer service team,
    complaints go to that team in turn (转派规则, 000), and tickets, demands and feedback
    for each of those types that is declared."""
    from app.models.service import TicketType, TransferRule
    from app.record_types import REGISTRY

    agent = appbuilder.sm.find_user(username="service")
    team.manager = agent
    complaint = db.session.scalar(select(TicketType).where(TicketType.code == "complaint"))
    if complaint is not None:
        db.session.add(TransferRule(name="投诉转客服部", position=10, ticket_type=complaint, team=team,
                                    strategy="round_robin"))
    for name in ("ticket", "demand", "service_feedback"):
        if name in REGISTRY and REGISTRY[name].demo is not None:
            REGISTRY[name].demo(db.session, [*owners, agent] if name == "ticket" else owners)


def _demo_sync_target(manager: CrmUser) -> None:
    """A team workbook in the files folder (the first CRM_FILES_ROOT, where admin-set paths
    must lie) with three rows typed by hand and no codes: Sync > Sync targets > Sync now turns
    them into customers and fills the sheet."""
    from openpyxl import Workbook

    from app.models.sync import SyncTarget
    from app.services.files import roots

    path = roots()[0] / "team-customers.xlsx"
    path.parent.mkdir(parents=True, exist_ok=True)  # a configured files folder may not exist yet
    book = Workbook()
    sheet = book.active
    sheet.title = "客户"
    sheet.append(["客户编号", "客户名称", "所属行业", "联系人姓名", "联系方式", "客户等级", "信息来源", "备注"])
    sheet.append(["", "苏州工业园区精密机械有限公司", "机械设备", "周明", "0512-66778899", "重要", "展会", "表格里新加的"])
    sheet.append(["", "杭州云栖软件有限公司", "软件开发", "陈静", "13967001234", "一般", "官网", ""])
    sheet.append(["", "坏电话示例公司", "批发", "王五", "12345", "", "展会", "联系方式有误，同步后看状态列"])
    book.create_sheet("说明")["A1"] = "同步只改「客户」表；这张表保持不变。"
    book.save(path)
    db.session.add(SyncTarget(name="团队客户表 Team sheet (demo)", backend="xlsx", location=str(path),
                              worksheet="客户", run_as_id=manager.id, enabled=False, conflict_policy="review"))
