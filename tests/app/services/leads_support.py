"""Shared by the lead tests: clean-up of lead data (tests/conftest.py clears customers only),
and small factories."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select

from app.extensions import db
from app.models.dictionaries import CustomerSource, Industry
from app.models.sales import (
    AssignmentRule,
    AssignmentRuleUser,
    Competitor,
    Contact,
    Lead,
    LeadStatusChange,
    Opportunity,
    OpportunityLine,
    OpportunityStageChange,
)
from tests.conftest import user_id


def clear_leads() -> None:
    """Remove what lead tests create, children first (PostgreSQL enforces the keys)."""
    db.session.rollback()
    for model in (LeadStatusChange, Lead, AssignmentRuleUser, AssignmentRule, OpportunityStageChange,
                  OpportunityLine, Competitor, Opportunity, Contact):
        db.session.execute(delete(model))
    db.session.commit()


@pytest.fixture
def lead_data(app: Any) -> Any:
    """Use in a module's autouse fixture: lead tables are emptied after each test."""
    yield
    with app.app_context():
        clear_leads()
        db.session.remove()


def source(code: str) -> CustomerSource:
    return db.session.scalars(select(CustomerSource).filter_by(code=code)).one()


def industry(code: str) -> Industry:
    return db.session.scalars(select(Industry).filter_by(code=code)).one()


def make_rule(name: str, users: tuple[str, ...] = (), position: int = 0, **conditions: Any) -> int:
    """An active assignment rule over ``users`` (user names); returns its id."""
    from app.models.org import CrmUser

    rule = AssignmentRule(name=name, position=position, active=True, **conditions)
    rule.users = [db.session.get(CrmUser, user_id(u)) for u in users]
    db.session.add(rule)
    db.session.commit()
    return rule.id


def make_lead(owner: str | None, **fields: Any) -> int:
    """A lead stored directly (no rules), owned by ``owner`` (or nobody); returns its id."""
    lead = Lead(company=fields.pop("company", f"Lead of {owner}"), phone=fields.pop("phone", "13912345678"),
                owner_id=user_id(owner) if owner else None, status=fields.pop("status", "new"), **fields)
    db.session.add(lead)
    db.session.commit()
    return lead.id
