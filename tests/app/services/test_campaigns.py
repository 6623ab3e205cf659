"""Marketing campaigns (issue 15, 002 §五): the plan's rules, the approval flow (real
``app.services.approvals``), the status flow, the lead's campaign at every entry point and
the evaluation's figures against a hand-computed fixture, counted in the viewer's scope."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.clock import utc_now
from app.extensions import appbuilder, db
from app.models import ApprovalPolicy, ApprovalStep, Customer, CustomerType, Lead, Opportunity
from app.models.marketing import Campaign
from app.models.sales import Stage
from app.services import approvals, campaigns, leads
from app.services.errors import NotFound, RuleForbidden, RuleViolation, StaleRecord
from tests.app.services.importing.conftest import run_job, write_xlsx  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("shanghai")


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def plan(**extra: Any) -> dict[str, Any]:
    return {"name": "春季展会", "starts_on": date(2026, 3, 1), "ends_on": date(2026, 3, 3), "form": "offline",
            "budget": Decimal("20000.00"), **extra}


def _stage(won: bool) -> Stage:
    return db.session.scalar(select(Stage).where(Stage.is_won.is_(won), Stage.is_lost.is_(False)).limit(1))


def _customer(owner: Any, name: str) -> Customer:
    item = Customer(name=name, contact_phone="13812345678", owner_id=owner.id,
                    type=db.session.scalar(select(CustomerType).where(CustomerType.code == "potential")))
    db.session.add(item)
    db.session.flush()
    return item


def _lead(campaign: Campaign | None, owner: Any, name: str, *, won: Decimal | None = None,
          converted: bool = False) -> Lead:
    """A lead of ``owner`` carrying ``campaign``; ``converted`` links a customer (and, with
    ``won``, an opportunity in a won stage of that amount)."""
    stage = _stage(True)
    item = Lead(company=name, phone="13900001111", owner_id=owner.id, status="new",
                campaign_id=campaign.id if campaign else None)
    if converted or won is not None:
        item.customer = _customer(owner, name)
        item.status, item.converted_at = "converted", utc_now()
    if won is not None:
        item.opportunity = Opportunity(customer=item.customer, title=name, stage=stage, amount=won,
                                       owner_id=owner.id)
    db.session.add(item)
    db.session.flush()
    return item


def roi_fixture() -> int:
    """A campaign of manager_s (South), actual cost 12,345.67, 300 participants: rep_c's
    3 leads (2 converted, 1 won opportunity of 50,000.00) and manager_s's 2 leads (1
    converted with a won opportunity of 10,000.00). Returns the campaign id (committed)."""
    owner = user("manager_s")
    item = campaigns.save_campaign(plan(actual_cost="12,345.67", participants=300), owner)
    rep = user("rep_c")
    _lead(item, rep, "甲公司", won=Decimal("50000.00"))
    _lead(item, rep, "乙公司", converted=True)
    _lead(item, rep, "丙公司")
    _lead(item, owner, "丁公司", won=Decimal("10000.00"))
    _lead(item, owner, "戊公司")
    _lead(None, rep, "无活动公司", won=Decimal("99999.00"))  # not the campaign's
    db.session.commit()
    return item.id


# --- the plan -------------------------------------------------------------------------------

def test_save_checks_the_plan(ctx: Any) -> None:
    with pytest.raises(RuleViolation) as exc:
        campaigns.save_campaign(plan(name=" ", ends_on=date(2026, 2, 1), budget="-5", form="radio",
                                     participants=-1), user("manager"))
    assert set(exc.value.errors) >= {"name", "ends_on", "budget", "form", "participants"}


def test_save_reads_money_as_decimal(ctx: Any) -> None:
    item = campaigns.save_campaign(plan(budget="￥1,200.50", actual_cost="0"), user("manager"))
    assert item.code.startswith("MC") and item.status == campaigns.PLANNING
    assert item.budget == Decimal("1200.50") and item.actual_cost == Decimal("0.00")
    assert item.owner.username == "manager"


def test_a_rep_reads_but_cannot_write(ctx: Any) -> None:
    with pytest.raises(RuleForbidden):
        campaigns.save_campaign(plan(), user("rep_a"))
    item = campaigns.save_campaign(plan(), user("manager"))
    db.session.commit()
    with pytest.raises(RuleForbidden):
        campaigns.change_status(item.id, user("rep_a"), "cancelled")
    # rep_a (East) sees the East manager's campaign, rep_c (South) does not
    assert records_visible(item.id, "rep_a") and not records_visible(item.id, "rep_c")
    with pytest.raises(NotFound):
        campaigns.evaluate(item.id, user("rep_c"))
    with pytest.raises(NotFound):
        campaigns.save_campaign({"note": "x"}, user("manager_s"), pk=item.id, version=item.version)


def records_visible(pk: int, name: str) -> bool:
    from app.services import records

    try:
        records.load(Campaign, pk, user(name))
    except NotFound:
        return False
    return True


def test_stale_version_refused(ctx: Any) -> None:
    item = campaigns.save_campaign(plan(), user("manager"))
    db.session.commit()
    with pytest.raises(StaleRecord):
        campaigns.save_campaign({"note": "late"}, user("manager"), pk=item.id, version=item.version - 1)


# --- approval and status ----------------------------------------------------------------

def _policy(min_amount: str | None = None) -> None:
    db.session.add(ApprovalPolicy(name="Approve a campaign", kind=campaigns.KIND, position=1, active=True,
                                  min_amount=Decimal(min_amount) if min_amount else None,
                                  steps=[ApprovalStep(position=0, approver="manager")]))
    db.session.commit()


def clear_policies() -> None:
    """No "Approve a campaign" policy (whatever the defaults seed): submitting approves at once."""
    for policy in db.session.scalars(select(ApprovalPolicy).where(ApprovalPolicy.kind == campaigns.KIND)):
        db.session.delete(policy)
    db.session.commit()


def test_no_policy_approves_at_once(ctx: Any) -> None:
    clear_policies()
    item = campaigns.save_campaign(plan(), user("manager"))
    assert campaigns.submit(item.id, user("manager")).status == campaigns.APPROVED


def test_submit_needs_dates_and_budget(ctx: Any) -> None:
    item = campaigns.save_campaign({"name": "x"}, user("manager"))
    with pytest.raises(RuleViolation) as exc:
        campaigns.submit(item.id, user("manager"))
    assert set(exc.value.errors) == {"starts_on", "ends_on", "budget"}


def test_approval_flow_locks_the_plan_until_approved(ctx: Any, department_managers: Any) -> None:
    clear_policies()
    _policy(min_amount="10000")
    owner = user("manager_s")
    small = campaigns.save_campaign(plan(budget="5000"), owner)
    assert campaigns.submit(small.id, owner).status == campaigns.APPROVED  # under the policy's amount
    item = campaigns.save_campaign(plan(), owner)
    db.session.commit()
    assert campaigns.submit(item.id, owner).status == campaigns.WAITING
    db.session.commit()
    request = approvals.pending("campaign", item.id, campaigns.KIND)
    assert request is not None
    with pytest.raises(RuleViolation) as exc:  # the plan is held
        campaigns.save_campaign({"budget": "30000"}, owner, pk=item.id, version=item.version)
    assert exc.value.status == 409 and "budget" in exc.value.errors
    with pytest.raises(RuleViolation):  # cannot start before approval
        campaigns.change_status(item.id, owner, campaigns.RUNNING)
    db.session.rollback()
    approver = db.session.get(type(owner), request.approvers[0].user_id)
    assert approver.id != owner.id  # never self-approval
    approvals.approve(request.id, approver, version=request.version)
    db.session.commit()
    assert db.session.get(Campaign, item.id).status == campaigns.APPROVED
    # approved: plan locked, execution figures editable; revise goes back to planning
    item = db.session.get(Campaign, item.id)
    with pytest.raises(RuleViolation):
        campaigns.save_campaign({"budget": "30000"}, owner, pk=item.id, version=item.version)
    db.session.rollback()
    item = campaigns.save_campaign({"actual_cost": "100", "participants": "12"}, owner, pk=item.id,
                                   version=db.session.get(Campaign, item.id).version)
    assert item.participants == 12
    assert campaigns.change_status(item.id, owner, "planning").status == campaigns.PLANNING
    assert campaigns.save_campaign({"budget": "30000"}, owner, pk=item.id, version=item.version).budget == \
        Decimal("30000.00")


def test_rejection_returns_to_planning(ctx: Any, department_managers: Any) -> None:
    clear_policies()
    _policy()
    owner = user("manager_s")
    item = campaigns.save_campaign(plan(), owner)
    campaigns.submit(item.id, owner)
    db.session.commit()
    request = approvals.pending("campaign", item.id, campaigns.KIND)
    approver = db.session.get(type(owner), request.approvers[0].user_id)
    approvals.reject(request.id, approver, "too expensive", version=request.version)
    db.session.commit()
    assert db.session.get(Campaign, item.id).status == campaigns.PLANNING


def test_status_flow(ctx: Any) -> None:
    clear_policies()
    owner = user("manager")
    item = campaigns.save_campaign(plan(), owner)
    for bad in ("running", "done", "approved", "waiting", "nonsense"):
        with pytest.raises(RuleViolation) as exc:
            campaigns.change_status(item.id, owner, bad)
        assert exc.value.status == 409
    campaigns.submit(item.id, owner)
    assert campaigns.change_status(item.id, owner, "running").status == campaigns.RUNNING
    assert campaigns.change_status(item.id, owner, "done").status == campaigns.DONE
    with pytest.raises(RuleViolation):
        campaigns.change_status(item.id, owner, "cancelled")
    with pytest.raises(RuleViolation):
        campaigns.save_campaign({"actual_cost": "1"}, owner, pk=item.id, version=item.version)


# --- the lead's campaign ----------------------------------------------------------------

def test_lead_carries_a_campaign_in_scope_only(ctx: Any) -> None:
    east = campaigns.save_campaign(plan(name="East fair"), user("manager"))
    south = campaigns.save_campaign(plan(name="South fair"), user("manager_s"))
    gone = campaigns.save_campaign(plan(name="Gone"), user("manager"))
    campaigns.change_status(gone.id, user("manager"), "cancelled")
    db.session.commit()
    rep = user("rep_b")  # East Team: sees the East manager's campaigns
    lead = leads.save_lead({"company": "A", "phone": "13800000001", "campaign": east.id}, rep)
    assert lead.campaign_id == east.id
    by_code = leads.save_lead({"company": "B", "phone": "13800000002", "campaign": f"{east.code} East fair"}, rep)
    assert by_code.campaign_id == east.id
    for value in (south.id, south.code, "South fair", 999999):
        with pytest.raises(RuleViolation) as exc:
            leads.save_lead({"company": "C", "phone": "13800000003", "campaign": value}, rep)
        assert "campaign" in exc.value.errors
        db.session.rollback()
    with pytest.raises(RuleViolation) as exc:
        leads.save_lead({"company": "D", "phone": "13800000004", "campaign": gone.id}, rep)
    assert "cancelled" in exc.value.errors["campaign"]
    db.session.rollback()


def test_import_sets_a_campaign_in_scope_only(app: Any, run_job: Any, tmp_path: Any) -> None:  # noqa: F811
    with app.app_context():
        east = campaigns.save_campaign(plan(name="East fair"), user("manager"))
        south = campaigns.save_campaign(plan(name="South fair"), user("manager_s"))
        db.session.commit()
        east_code, south_code = east.code, south.code
        db.session.remove()
    path = write_xlsx(tmp_path / "线索.xlsx", {"线索": [["公司名称", "联系电话", "市场活动"],
                                                     ["甲公司", "13912345678", east_code],
                                                     ["乙公司", "13912345679", south_code],
                                                     ["丙公司", "13912345670", "East fair"]]})
    job = run_job("rep_a", path, model="lead")
    assert (job.created, job.rejected) == (2, 1)
    with app.app_context():
        carried = dict(db.session.execute(select(Lead.company, Lead.campaign_id)).all())
        assert set(carried) == {"甲公司", "丙公司"} and set(carried.values()) == {east.id}


def test_lead_keeps_its_campaign_once_cancelled(ctx: Any) -> None:
    item = campaigns.save_campaign(plan(), user("manager"))
    lead = leads.save_lead({"company": "A", "phone": "13800000001", "campaign": item}, user("rep_a"))
    campaigns.change_status(item.id, user("manager"), "cancelled")
    db.session.commit()
    saved = leads.save_lead({"city": "上海", "campaign": item}, user("rep_a"), pk=lead.id, version=lead.version)
    assert saved.campaign_id == item.id
    cleared = leads.save_lead({"campaign": None}, user("rep_a"), pk=lead.id, version=saved.version)
    assert cleared.campaign_id is None


def test_delete_refused_when_leads_carry_it(ctx: Any) -> None:
    item = campaigns.save_campaign(plan(), user("manager"))
    _lead(item, user("rep_a"), "A")
    with pytest.raises(RuleViolation):
        campaigns.delete_campaign(item.id, user("manager"))


# --- evaluation ----------------------------------------------------------------------------

def test_evaluation_against_hand_computed_figures(ctx: Any) -> None:
    pk = roi_fixture()
    mine = campaigns.evaluate(pk, user("rep_c"))  # rep_c sees only rep_c's leads and opportunities
    assert (mine.leads, mine.converted, mine.won_count, mine.all_leads) == (3, 2, 1, 5)
    assert mine.won_amount == Decimal("50000.00")
    assert mine.conversion_rate == Decimal("66.7")
    assert mine.cost_per_lead == Decimal("4115.22")
    assert mine.roi == Decimal("305.0")
    assert mine.as_dict()["roi"] == "305.0" and mine.as_dict()["participants"] == 300
    team = campaigns.evaluate(pk, user("manager_s"))
    assert (team.leads, team.converted, team.won_count, team.won_amount) == (5, 3, 2, Decimal("60000.00"))
    assert team.cost_per_lead == Decimal("2469.13")  # 12345.67 / 5
    assert team.roi == Decimal("386.0")  # (60000 - 12345.67) / 12345.67 = 3.8600...


def test_evaluation_without_cost_or_leads_shows_a_dash(ctx: Any) -> None:
    item = campaigns.save_campaign(plan(), user("manager"))
    figures = campaigns.evaluate(item.id, user("manager")).as_dict()
    assert figures["conversion_rate"] == figures["cost_per_lead"] == figures["roi"] == campaigns.DASH
    assert figures["leads"] == 0


def test_later_opportunity_of_a_converted_customer_counts_but_older_does_not(ctx: Any) -> None:
    owner = user("manager")
    item = campaigns.save_campaign(plan(actual_cost="1000"), owner)
    lead = _lead(item, owner, "Linked", converted=True)
    stage = _stage(True)
    old = Opportunity(customer=lead.customer, title="old", stage=stage, amount=Decimal("7"),
                      owner_id=owner.id, created_on=lead.converted_at - timedelta(days=30))
    new = Opportunity(customer=lead.customer, title="new", stage=stage, amount=Decimal("3000"),
                      owner_id=owner.id, created_on=lead.converted_at + timedelta(days=3))
    db.session.add_all([old, new])
    db.session.flush()
    result = campaigns.evaluate(item.id, owner)
    assert result.won_amount == Decimal("3000.00") and result.roi == Decimal("200.0")


def test_evaluation_sheets_mask_phones(ctx: Any) -> None:
    pk = roi_fixture()
    result = campaigns.evaluate(pk, user("rep_c"))
    figures, rows = campaigns.evaluation_sheets(result, user("rep_c"))
    assert len(rows) == 1 + 3
    assert all("13900001111" not in str(row) for row in rows)
    assert any("3" in str(row[1]) and "5" in str(row[1]) for row in figures if row[0] == "Counted")


def test_demo_campaigns_have_figures(ctx: Any) -> None:
    owner, rep = user("manager"), user("rep_a")
    for index in range(4):
        lead = _lead(None, rep, f"Demo {index}")
        customer = _customer(rep, f"Customer {index}")
        db.session.add(Opportunity(customer=customer, title=f"Deal {index}", stage=_stage(False),
                                   amount=Decimal("8000.00"), owner_id=rep.id))
        lead.status, lead.converted_at, lead.customer, lead.opportunity = "new", None, None, None
    db.session.flush()
    assert campaigns.build_demo(db.session, [owner, rep]) == 2
    first = db.session.scalar(select(Campaign).where(Campaign.status == campaigns.DONE))
    result = campaigns.evaluate(first.id, owner)
    assert result.leads == 2 and result.converted == 2 and result.won_count == 1
    assert result.won_amount == Decimal("8000.00") and result.roi is not None
