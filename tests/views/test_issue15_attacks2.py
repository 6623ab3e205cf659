"""Second attack on issue 15 through the screens and the REST API: the key-contact gate
through the contacts screen and API, the approval policy screen's typed numbers in
Chinese. A failing test is a finding (see attacker2's report)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from app.models.approvals import ApprovalPolicy, ApprovalStep
from app.models.sales import Contact
from tests.conftest import user_id


def _contact_policy() -> None:
    policy = ApprovalPolicy(name="Key contact", kind="customer.contact", position=9, active=True)
    policy.steps = [ApprovalStep(position=0, approver="user", user_id=user_id("admin"))]
    db.session.add(policy)
    db.session.commit()


def test_contact_api_cannot_change_a_customers_phone_without_approval(app: Any, client: Any, api: Any,
                                                                      make_customer: Any,
                                                                      department_managers: Any) -> None:
    """001 使用规范二 on: the manager PUTs the primary contact's phone through
    /api/v1/contact/<id>; the customer's 联系方式 must not change before the admin approves."""
    pk = make_customer("rep_a", contact_phone="13812345678")
    with app.app_context():
        _contact_policy()
        contact = db.session.scalars(select(Contact).where(Contact.customer_id == pk)).one()
        cid, version = contact.id, contact.version
    response = client.put(f"/api/v1/contact/{cid}", headers=api("manager"),
                          json={"phone": "13999990000", "version": version})
    assert response.status_code < 500, response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Customer, pk).contact_phone == "13812345678", \
            "the customer's phone changed through the contacts API without approval"


def _policy_form(client: Any, **fields: str) -> str:
    data = {"name": "Big orders", "kind": "order.confirm", "position": "5", "active": "y", **fields}
    return client.post("/approvalpolicyview/add", data=data, follow_redirects=True).get_data(as_text=True)


def test_policy_screen_reads_no_scientific_amount(app: Any, client: Any, auth: Any) -> None:
    """An admin types "12e2" as the order amount threshold: refused, not stored as 1200."""
    auth.login("admin")
    _policy_form(client, min_amount="12e2")
    with app.app_context():
        stored = db.session.scalars(select(ApprovalPolicy.min_amount).where(ApprovalPolicy.name == "Big orders")).all()
        assert Decimal("1200") not in stored, "'12e2' was stored as a threshold of 1200"


def test_policy_screen_grouped_amount_in_chinese(app: Any, client: Any, auth: Any) -> None:
    """"10,000" (thousands grouped, the way every other money field accepts it) on the
    Chinese policy screen: read as 10000, or refused with a Chinese message — never an
    English one."""
    auth.login("admin")
    client.get("/lang/zh")
    page = _policy_form(client, min_amount="10,000")
    with app.app_context():
        stored = db.session.scalars(select(ApprovalPolicy.min_amount).where(ApprovalPolicy.name == "Big orders")).all()
    if stored:
        assert stored == [Decimal("10000")], stored
    else:
        text = re.sub(r"<script.*?</script>|<[^>]+>", " ", page, flags=re.S)
        assert not re.search(r"Not a valid|Invalid", text), "English validation message on a Chinese page"


def test_policy_discount_with_three_decimals_is_refused(app: Any, client: Any, auth: Any) -> None:
    """The policy screen says "a percentage from 0 to 100 with at most 2 decimals": 5.555 is refused
    rather than rounded silently into another threshold."""
    auth.login("admin")
    _policy_form(client, min_discount="5.555")
    with app.app_context():
        stored = db.session.scalars(select(ApprovalPolicy.min_discount)
                                    .where(ApprovalPolicy.name == "Big orders")).all()
        assert not stored, f"5.555 % was stored as {stored}"
