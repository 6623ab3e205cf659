"""Demo data for the sales pipeline (app.services.demo_data): products, contacts, leads and
opportunities that pass the types' own rules and look lived in (stale, won, lost, lines)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from app import clock
from app.extensions import appbuilder, db
from app.models.customers import Customer
from app.models.sales import (
    Competitor,
    Contact,
    Lead,
    LeadStatusChange,
    Opportunity,
    OpportunityLine,
    OpportunityStageChange,
    Product,
    Stage,
)
from app.record_types import REGISTRY
from app.services import demo_data
from app.services.demo_setup import _dictionaries


def _clear() -> None:
    for model in (OpportunityLine, Competitor, OpportunityStageChange, Opportunity, LeadStatusChange, Lead,
                  Contact, Product):
        db.session.execute(delete(model))


@pytest.fixture
def demo(ctx: Any) -> Any:
    _clear()
    yield
    db.session.rollback()
    _clear()
    db.session.commit()


def test_demo_pipeline_is_complete_and_valid(demo: Any) -> None:
    for name in ("product", "contact", "lead", "opportunity"):
        if name not in REGISTRY:  # numbering comes from the declaration
            pytest.skip(f"{name} is not declared yet")
    sm = appbuilder.sm
    reps = [sm.find_user(username=u) for u in ("rep_a", "rep_b", "rep_c")]
    dictionaries = _dictionaries()
    demo_data.build_demo_customers(db.session, reps, dictionaries, count=40)
    customers = db.session.scalars(select(Customer)).all()
    products = demo_data.build_demo_products(db.session)
    demo_data.build_demo_contacts(db.session, customers)
    demo_data.build_demo_leads(db.session, reps, dictionaries, count=60)
    stages = {s.code: s for s in db.session.scalars(select(Stage))}
    demo_data.build_demo_opportunities(db.session, customers, products, stages, count=80)
    db.session.commit()

    from app.services.products import clean_product

    assert len(products) == 10 and all(p.code.startswith("S") for p in products)
    for product in products:
        clean_product(product)  # the product rules accept every demo product
    per_customer = dict(db.session.execute(select(Contact.customer_id, func.count()).group_by(Contact.customer_id)).all())
    assert set(per_customer) == {c.id for c in customers} and set(per_customer.values()) <= {1, 2, 3}
    primaries = {c.customer_id: c for c in db.session.scalars(select(Contact).where(Contact.is_primary.is_(True)))}
    assert all(primaries[c.id].name == c.contact_name and primaries[c.id].phone == c.contact_phone for c in customers)

    leads = db.session.scalars(select(Lead)).all()
    assert {lead.status for lead in leads} >= {"new", "contacted", "qualified", "invalid"}
    assert all(lead.invalid_reason for lead in leads if lead.status == "invalid")
    assert any(lead.owner_id is None for lead in leads) and all(lead.code.startswith("L") for lead in leads)

    opportunities = db.session.scalars(select(Opportunity)).all()
    today, now = clock.local_today(), clock.utc_now()
    assert {o.stage.code for o in opportunities} == set(demo_data.STAGE_WEIGHTS)
    open_ = [o for o in opportunities if not (o.stage.is_won or o.stage.is_lost)]
    assert all(today < o.expected_close <= today + timedelta(days=183) for o in open_)
    assert all(o.lost_reason for o in opportunities if o.stage.is_lost)
    for o in opportunities:  # what entering its stage requires is filled in
        assert all(getattr(o, name) not in (None, "") for name in o.stage.required_list), (o.stage.code, o.code)
    stale = [o for o in opportunities if o.stage.code == "proposal" and now - o.changed_on > timedelta(days=7)]
    assert stale, "a few stale proposals"
    lined = [o for o in opportunities if o.lines]
    assert lined and all(o.amount == sum(line.amount for line in o.lines) for o in lined)
    assert any(o.competitors for o in opportunities)
