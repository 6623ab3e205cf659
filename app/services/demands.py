"""Demand analysis (客户需求分析, 001 表3, issue 16): a customer's need, numbered D + date +
sequence, with its type, priority, proposed solution, owner and completion status.

The manual's table, field by field (required as it says): 需求编号 (the CRM numbers it),
客户编号 (required: a live customer in the writer's scope), 需求类型 (required: 产品咨询 /
技术支持 / 合作定制), 需求描述 (required, long text), 优先级 (required: 高 / 中 / 低),
解决方案 (optional), 负责人 (required: an active user in the writer's scope who can see the
customer; empty = the writer), 完成状态 (required: 待处理 / 处理中 / 已完成 / 已关闭; a new
demand starts 待处理).

Scope: a demand is visible like its customer (``VIA_CUSTOMER``). Every entry point (form,
REST API, import, sync) calls ``save_demand``.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models.customers import Customer
from app.models.org import CrmUser
from app.models.service import Demand, DemandStatus, DemandType, Priority
from app.record_types import VIA_CUSTOMER, RecordType, declare
from app.security import data_scope
from app.services import records, validation
from app.services.errors import RuleForbidden, RuleViolation
from app.services.importing.columns import CUSTOMER, DICT, USER, ImportField

PREFIX = "D"
#: Fields a save may set (form, API, import and sync rows).
EDITABLE = ("customer", "demand_type", "description", "priority", "solution", "owner", "status")
TEXT_LIMIT = 10000
#: The status a new demand starts in (待处理).
START_STATUS = "pending"

LABELS = {
    "customer": _l("Customer"), "demand_type": _l("Demand type"), "description": _l("Demand description"),
    "priority": _l("Priority"), "solution": _l("Solution"), "owner": _l("Owner"), "status": _l("Completion status"),
}
#: 001 表3's required fields (the code is the CRM's own).
REQUIRED = ("customer", "demand_type", "description", "priority", "owner", "status")


def required_message(name: str, labels: dict[str, Any]) -> str:
    """"<label> is required." in the reader's language (the field's own label)."""
    return str(_l("%(label)s is required.", label=labels[name]))


def customer_visible_to(person: Any, customer_id: int) -> bool:
    """Whether ``person`` (a user) may see the customer ``customer_id`` (their data scope)."""
    stmt = select(Customer.id).where(Customer.id == customer_id, data_scope.scope_clause(person, Customer))
    return db.session.execute(stmt).first() is not None


def check_customer(item: Any, user: Any, errors: dict[str, str], labels: dict[str, Any]) -> None:
    """The record's customer: required, in ``user``'s scope, not archived (the follow-up
    rule, ``follow_ups.customer_problem``). Adds its message under ``customer``."""
    from app.services.follow_ups import customer_problem

    customer_id = records.related_id(item, "customer")
    if customer_id is None:
        errors["customer"] = required_message("customer", labels)
        return
    problem = customer_problem(customer_id, user)
    if problem:
        errors["customer"] = problem


def clean_text(item: Any, name: str, errors: dict[str, str], labels: dict[str, Any], *, required: bool) -> None:
    """Normalise a long text field in place (``validation.clean_block``); a required one
    empty, or any longer than ``TEXT_LIMIT``, adds its message under ``name``."""
    text = validation.clean_block(getattr(item, name)) or None
    setattr(item, name, text)
    if text is None and required:
        errors[name] = required_message(name, labels)
    elif text is not None and len(text) > TEXT_LIMIT:
        errors[name] = str(_l("At most %(n)d characters.", n=TEXT_LIMIT))


def check_choices(item: Any, names: tuple[str, ...], errors: dict[str, str], labels: dict[str, Any],
                  required: tuple[str, ...]) -> None:
    """Dictionary fields: required ones present, inactive entries not newly picked."""
    for name in names:
        entry = getattr(item, name)
        if entry is None:
            if name in required:
                errors[name] = required_message(name, labels)
            continue
        column = type(item).__mapper__.relationships[name].local_columns
        previous_id = records.previous(item, next(iter(column)).key)
        try:
            validation.check_choice(entry, previous_id)
        except ValueError as exc:
            errors[name] = str(exc)


def _default_status(item: Demand) -> None:
    if item.status is None and records.previous(item, "status_id") is None:
        item.status = db.session.scalar(select(DemandStatus).where(DemandStatus.code == START_STATUS))


def _check_owner(item: Demand, user: Any, errors: dict[str, str]) -> None:
    """负责人: empty on a new demand = the writer; a new or changed owner must be active, in
    the writer's scope (``records.check_owner``: 403 outside it) and able to see the customer."""
    records.default_owner(item, user)
    owner_id = records.related_id(item, "owner")
    changed = owner_id != records.previous(item, "owner_id") or records.related_id(item, "customer") != \
        records.previous(item, "customer_id")
    if owner_id is None:
        errors["owner"] = required_message("owner", LABELS)
        return
    if not changed or "customer" in errors:
        return
    try:
        records.check_owner(user, owner_id)
    except RuleForbidden:
        raise
    except RuleViolation as exc:
        errors["owner"] = str(exc.errors.get("owner", exc))
        return
    person = db.session.get(CrmUser, owner_id)
    if not customer_visible_to(person, records.related_id(item, "customer")):
        errors["owner"] = str(_l("%(name)s cannot see this customer; pick someone who can.",
                                 name=person.get_full_name()))


def save_demand(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> Demand:
    """Add (``pk`` None) or change one demand (需求): the use case behind the form, the API,
    import and sync.

    ``values``: field -> value of ``EDITABLE`` (``customer``, ``demand_type``, ``priority``,
    ``status``, ``owner`` as loaded objects; texts as typed). Loads the demand in ``user``'s
    scope (``NotFound``), refuses a stale ``version`` (``StaleRecord``), checks 001 表3's
    required fields (each missing one named with its label), the customer (live, in scope),
    the dictionaries and the owner (``RuleViolation`` field -> message; an owner outside the
    writer's scope ``RuleForbidden``). A new demand starts 待处理 (pending) and belongs to the
    writer unless told otherwise. Flushes (numbered D + date + sequence, audited); the
    caller commits.
    """
    is_new = pk is None
    item = Demand() if is_new else records.load(Demand, pk, user)
    if not is_new:
        records.check_version(item, version)
    errors: dict[str, str] = {}
    with db.session.no_autoflush:
        records.assign(item, values, EDITABLE)
        check_customer(item, user, errors, LABELS)
        clean_text(item, "description", errors, LABELS, required=True)
        clean_text(item, "solution", errors, LABELS, required=False)
        _default_status(item)
        check_choices(item, ("demand_type", "priority", "status"), errors, LABELS, REQUIRED)
        try:
            _check_owner(item, user, errors)
        except RuleForbidden as exc:
            raise RuleForbidden({"owner": str(exc.errors.get("owner", exc))}) from None
        if errors:
            raise RuleViolation(errors)
    if is_new:
        db.session.add(item)
    db.session.flush()
    return item


def for_customer(user: Any, customer_id: int, limit: int = 50) -> list[Demand]:
    """The demands of one customer that ``user`` may see, newest first (the customer page)."""
    stmt = select(Demand).where(Demand.customer_id == customer_id, data_scope.scope_clause(user, Demand)) \
        .order_by(Demand.id.desc()).limit(limit)
    return list(db.session.scalars(stmt))


def _search(text: str) -> Any:
    """Quick search: code or description contains ``text`` (wildcards typed are literal)."""
    return or_(Demand.code.icontains(text, autoescape=True), Demand.description.icontains(text, autoescape=True))


#: Demo needs (001 表3's examples): type code, priority code, status code, description, solution.
DEMO_ROWS = (
    ("product_inquiry", "high", "pending", "客户希望了解产品A的批量采购价格及交付周期。", None),
    ("tech_support", "medium", "in_progress", "系统对接ERP时数据同步失败，需要技术支持。", "安排技术支持工程师远程排查接口配置。"),
    ("custom", "low", "done", "希望在标准版基础上定制报表模块。", "已提供定制方案及报价，客户确认。"),
)


def build_demo(session: Session, owners: list[Any], count: int = 30) -> int:
    """Demo demands: the manual's examples on the first customers of each owner. Flushes;
    returns how many."""
    def entry(model: type, code: str) -> Any:
        return session.scalar(select(model).where(model.code == code))

    made = 0
    per_owner = max(1, count // max(1, len(owners)))
    for owner in owners:
        customers = session.scalars(select(Customer).where(Customer.owner_id == owner.id,
                                                           Customer.archived_at.is_(None))
                                    .order_by(Customer.id).limit(per_owner)).all()
        for index, customer in enumerate(customers):
            kind, priority, status, description, solution = DEMO_ROWS[index % len(DEMO_ROWS)]
            session.add(Demand(customer_id=customer.id, demand_type=entry(DemandType, kind),
                               priority=entry(Priority, priority), status=entry(DemandStatus, status),
                               description=description, solution=solution, owner_id=owner.id))
            made += 1
    session.flush()
    return made


DEMAND = declare(RecordType(
    name="demand", model=Demand, label=_l("Demand"), plural=_l("Demands"), plural_en="Demands",
    permission="Demand", scope=VIA_CUSTOMER, code_prefix=PREFIX,
    editable=EDITABLE, save=save_demand, delete=None,
    list_columns=("code", "customer", "demand_type", "priority", "status", "owner", "changed_on"),
    show_columns=("code", "customer", "demand_type", "description", "priority", "solution", "owner", "status"),
    search_columns=("code", "customer", "demand_type", "description", "priority", "status", "owner"),
    order_columns=("code", "changed_on"),
    labels=dict(LABELS),
    descriptions={
        "owner": _l("Empty: you. The owner must be able to see the customer."),
        "status": _l("Empty: pending."),
    },
    fields=(
        ImportField("code", _l("Demand code"), "需求编号", ("code", "demand no", "demand code", "编号"), max_length=20,
                    note=_l("Leave empty for new demands: the CRM numbers them.")),
        ImportField("customer", _l("Customer code"), "客户编号", ("customer", "customer no", "客户代码"), CUSTOMER,
                    required=True),
        ImportField("demand_type", _l("Demand type"), "需求类型", ("type", "demand type", "类型"), DICT,
                    dictionary=DemandType, required=True),
        ImportField("description", _l("Demand description"), "需求描述", ("description", "demand", "需求", "需求内容"),
                    required=True, max_length=TEXT_LIMIT),
        ImportField("priority", _l("Priority"), "优先级", ("priority", "优先"), DICT, dictionary=Priority,
                    required=True),
        ImportField("solution", _l("Solution"), "解决方案", ("solution", "方案"), max_length=TEXT_LIMIT),
        ImportField("owner", _l("Owner"), "负责人", ("owner", "responsible", "assignee", "跟进人"), USER,
                    note=_l("User name; empty = you.")),
        ImportField("status", _l("Completion status"), "完成状态", ("status", "completion status", "状态"), DICT,
                    dictionary=DemandStatus, note=_l("Empty = pending.")),
    ),
    roles={"Sales Rep": "read|write|export", "Sales Manager": "read|write|export",
           "Customer Service": "read|write|export", "Read Only": "read"},
    menu_category="Service", menu_icon="fa-lightbulb-o",
    search=_search,
    demo=build_demo,
))
