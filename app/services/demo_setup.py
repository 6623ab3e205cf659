"""Demo organisation for `python3 run.py --demo`: two departments, six users, ~300 customers.

Only ever run on request: without it, no account with a known password exists.
"""

from __future__ import annotations

from sqlalchemy import select

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
    ("service", "赵", "敏", "Customer Service", None, "Customer service agent"),
]


def _departments() -> dict[str, Department]:
    east = Department(name="华东销售部 East China Sales")
    south = Department(name="华南销售部 South China Sales")
    db.session.add_all([east, south])
    db.session.flush()
    return {"East": east, "South": south}


def _dictionaries() -> dict[str, list]:
    active = lambda model: db.session.scalars(select(model).where(model.active.is_(True))).all()  # noqa: E731
    return {
        "type": active(CustomerType),
        "industry": [i for i in active(Industry) if i.parent_id is not None],
        "level": active(CustomerLevel),
        "source": active(CustomerSource),
        "method": active(FollowUpMethod),
    }


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
    build_demo_customers(db.session, owners, _dictionaries(), count=customer_count)
    db.session.commit()
    return created
