"""Merging duplicates moves every record that belongs to a customer (not only follow-ups and
contacts): opportunities, planned activities and the lead it was converted from go to the
survivor, and each move is in the record's history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from app.clock import utc_now
from app.extensions import appbuilder, db
from app.models import Activity, AuditLog, Customer, Lead, Opportunity, Stage
from app.services import merge
from tests.conftest import user_id


def test_merge_moves_opportunities_activities_and_leads_to_the_survivor(ctx: Any, make_customer: Any) -> None:
    keep = make_customer("rep_a", name="Acme", contact_phone="13800000001")
    gone = make_customer("rep_a", name="ACME", contact_phone="13800000002")
    stage = db.session.scalar(select(Stage).order_by(Stage.sort_order))
    deal = Opportunity(customer_id=gone, title="ERP rollout", stage_id=stage.id, owner_id=user_id("rep_a"))
    call = Activity(customer_id=gone, kind="call", subject="Call back", due_at=utc_now() + timedelta(days=1),
                    assignee_id=user_id("rep_a"))
    lead = Lead(company="ACME", owner_id=user_id("rep_a"), status="converted", customer_id=gone)
    db.session.add_all([deal, call, lead])
    db.session.commit()
    merge.merge(db.session.get(Customer, keep), [db.session.get(Customer, gone)], {},
                appbuilder.sm.find_user(username="manager"))
    db.session.commit()
    assert db.session.get(Opportunity, deal.id).customer_id == keep
    assert db.session.get(Activity, call.id).customer_id == keep
    assert db.session.get(Lead, lead.id).customer_id == keep
    moved = {(e.object_type, e.object_id) for e in db.session.scalars(
        select(AuditLog).where(AuditLog.action == "update", AuditLog.changes.contains('"customer_id"')))}
    assert {("Opportunity", str(deal.id)), ("Activity", str(call.id)), ("Lead", str(lead.id))} <= moved
