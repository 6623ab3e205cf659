"""Opportunity rules (issue 13): stages with required fields, lost reason, probability
override, expected amount, stage history, stale list, plausibility, lines, scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select

from app import clock
from app.extensions import db
from app.models.org import CrmUser
from app.models.sales import Competitor, Contact, Opportunity, OpportunityLine, OpportunityStageChange, Product, Stage
from app.services import opportunities
from app.services.errors import NotFound, RuleViolation
from app.services.opportunities import AmountImplausible, move_stage, save_opportunity
from tests.conftest import user_id

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


#: The stages the migration seeds (a4c6e8f0b2d5): what these tests expect.
SEEDED = ("contact", "needs", "proposal", "negotiation", "won", "lost")


def clean_sales() -> None:
    """Opportunities and what hangs on them, products, contacts, and stages other tests
    added (a screen walk adds one that would become everyone's first stage)."""
    for model in (OpportunityStageChange, OpportunityLine, Competitor, Opportunity, Product, Contact):
        db.session.execute(delete(model))
    db.session.execute(delete(Stage).where(Stage.code.not_in(SEEDED)))
    db.session.commit()


@pytest.fixture(autouse=True)
def _clean_sales(app: Any) -> Any:
    with app.app_context():
        clean_sales()
        db.session.remove()
    yield
    with app.app_context():
        clean_sales()
        db.session.remove()


def person(name: str) -> CrmUser:
    return db.session.get(CrmUser, user_id(name))


def stage(code: str) -> Stage:
    return db.session.scalars(select(Stage).where(Stage.code == code)).one()


def new_opp(owner: str, customer_id: int, **values: Any) -> Opportunity:
    from app.models.customers import Customer

    item = save_opportunity({"customer": db.session.get(Customer, customer_id), "title": "ERP rollout", **values},
                            person(owner))
    db.session.commit()
    return item


def test_new_opportunity_takes_the_first_stage_and_records_its_entry(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"))
    assert item.code.startswith("O") and item.stage.code == "contact"
    assert item.probability == 10
    [entry] = item.stage_changes
    assert entry.from_stage_id is None and entry.to_stage_id == item.stage_id and entry.days_in_stage is None


def test_move_stage_needs_the_entered_stages_required_fields(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"))
    with pytest.raises(RuleViolation) as caught:
        move_stage(item.id, stage("needs").id, person("rep_a"))
    assert "Demand description" in caught.value.errors["demand"]
    db.session.rollback()
    assert db.session.get(Opportunity, item.id).stage.code == "contact"
    moved = move_stage(item.id, stage("needs").id, person("rep_a"), values={"demand": "50 seats"})
    db.session.commit()
    assert moved.stage.code == "needs" and moved.demand == "50 seats"
    assert [c.to_stage.code for c in moved.stage_changes] == ["contact", "needs"]


def test_move_stage_names_every_missing_field(ctx: Any, make_customer: Any) -> None:
    stage("negotiation").required_fields = "expected_close\nproposal_version"
    db.session.commit()
    try:
        item = new_opp("rep_a", make_customer("rep_a"))
        with pytest.raises(RuleViolation) as caught:
            move_stage(item.id, stage("negotiation").id, person("rep_a"))
        assert set(caught.value.errors) == {"expected_close", "proposal_version"}
        db.session.rollback()
        moved = move_stage(item.id, stage("negotiation").id, person("rep_a"),
                           values={"expected_close": "2026-06-30", "proposal_version": "v2"})
        assert moved.expected_close.isoformat() == "2026-06-30"
    finally:
        db.session.rollback()
        stage("negotiation").required_fields = "expected_close"
        db.session.commit()


def test_move_stage_refuses_other_fields_and_unknown_or_inactive_stages(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"))
    with pytest.raises(RuleViolation) as caught:
        move_stage(item.id, stage("needs").id, person("rep_a"), values={"demand": "x", "owner": person("rep_b")})
    assert "owner" in caught.value.errors
    db.session.rollback()
    with pytest.raises(RuleViolation) as caught:
        move_stage(item.id, 999999, person("rep_a"))
    assert "stage" in caught.value.errors
    db.session.rollback()
    stage("needs").active = False
    db.session.commit()
    try:
        with pytest.raises(RuleViolation) as caught:
            move_stage(item.id, stage("needs").id, person("rep_a"), values={"demand": "x"})
        assert "stage" in caught.value.errors
    finally:
        db.session.rollback()
        stage("needs").active = True
        db.session.commit()


def test_save_opportunity_goes_through_the_same_stage_rule(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"))
    with pytest.raises(RuleViolation) as caught:
        save_opportunity({"stage": stage("proposal")}, person("rep_a"), pk=item.id, version=item.version)
    assert set(caught.value.errors) == {"proposal_version"}
    db.session.rollback()
    saved = save_opportunity({"stage": stage("proposal"), "proposal_version": "v1"}, person("rep_a"),
                             pk=item.id, version=item.version)
    assert saved.stage.code == "proposal" and len(saved.stage_changes) == 2


def test_a_new_opportunity_in_a_later_stage_needs_its_fields(ctx: Any, make_customer: Any) -> None:
    with pytest.raises(RuleViolation) as caught:
        new_opp("rep_a", make_customer("rep_a"), stage=stage("won"))
    assert set(caught.value.errors) == {"amount"}


def test_a_required_field_cannot_be_cleared_while_in_the_stage(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"), stage=stage("needs"), demand="Needs a CRM")
    with pytest.raises(RuleViolation) as caught:
        save_opportunity({"demand": ""}, person("rep_a"), pk=item.id, version=item.version)
    assert "demand" in caught.value.errors


def test_lost_needs_a_reason_even_if_the_stage_forgot_to_require_it(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"))
    stage("lost").required_fields = None
    db.session.commit()
    try:
        with pytest.raises(RuleViolation) as caught:
            move_stage(item.id, stage("lost").id, person("rep_a"))
        assert "Lost reason" in caught.value.errors["lost_reason"]
        db.session.rollback()
        with pytest.raises(RuleViolation):
            move_stage(item.id, stage("lost").id, person("rep_a"), values={"lost_reason": "   "})
        db.session.rollback()
        moved = move_stage(item.id, stage("lost").id, person("rep_a"), values={"lost_reason": "Price"})
        assert moved.stage.is_lost and moved.probability == 0
    finally:
        db.session.rollback()
        stage("lost").required_fields = "lost_reason"
        db.session.commit()


def test_probability_override_survives_stage_changes_until_cleared(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"), probability_override=65)
    assert item.probability == 65
    item = move_stage(item.id, stage("needs").id, person("rep_a"), values={"demand": "x"})
    db.session.commit()
    assert item.probability == 65 and item.probability_override == 65
    item = save_opportunity({"probability_override": None}, person("rep_a"), pk=item.id, version=item.version)
    db.session.commit()
    assert item.probability == 30
    for bad in (101, -1, "50.5", "abc"):
        with pytest.raises(RuleViolation) as caught:
            save_opportunity({"probability_override": bad}, person("rep_a"), pk=item.id, version=item.version)
        assert "probability_override" in caught.value.errors
        db.session.rollback()


def test_amount_is_unit_price_times_quantity(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"), unit_price="1,200.50", quantity="3")
    assert item.amount == Decimal("3601.50")
    item = save_opportunity({"quantity": Decimal("4"), "amount": Decimal("3601.50")}, person("rep_a"),
                            pk=item.id, version=item.version)  # the form sends the stored amount back
    assert item.amount == Decimal("4802.00")
    with pytest.raises(RuleViolation) as caught:
        save_opportunity({"amount": Decimal("10")}, person("rep_a"), pk=item.id, version=item.version)
    assert "unit price" in caught.value.errors["amount"]
    db.session.rollback()
    with pytest.raises(RuleViolation) as caught:
        new_opp("rep_a", make_customer("rep_a"), quantity="0", unit_price="-1")
    assert set(caught.value.errors) == {"quantity", "unit_price"}


def test_amount_is_the_sum_of_the_lines(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"), unit_price="10", quantity="2")
    crm = Product(code="P-CRM", name="CRM seat", list_price=Decimal("999.99"))
    db.session.add(crm)
    db.session.commit()
    first = opportunities.save_line(item.id, {"product": crm.id, "quantity": "3"}, person("rep_a"))
    assert first.unit_price == Decimal("999.99") and first.amount == Decimal("2999.97")
    second = opportunities.save_line(item.id, {"product": crm, "quantity": "1", "unit_price": "100",
                                               "discount": "12.5"}, person("rep_a"))
    db.session.commit()
    assert second.amount == Decimal("87.50")
    assert db.session.get(Opportunity, item.id).amount == Decimal("3087.47")
    opportunities.delete_line(item.id, first.id, person("rep_a"))
    db.session.commit()
    assert db.session.get(Opportunity, item.id).amount == Decimal("87.50")
    opp = db.session.get(Opportunity, item.id)
    with pytest.raises(RuleViolation) as caught:  # lines win over unit price × quantity
        save_opportunity({"amount": Decimal("5")}, person("rep_a"), pk=item.id, version=opp.version)
    assert "product lines" in caught.value.errors["amount"]


def test_line_rules(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"))
    old = Product(code="P-OLD", name="Retired", list_price=None, active=False)
    bare = Product(code="P-BARE", name="No price")
    db.session.add_all([old, bare])
    db.session.commit()
    cases = [
        ({"product": old.id, "quantity": "1", "unit_price": "1"}, "product"),
        ({"product": 999999, "quantity": "1"}, "product"),
        ({"product": bare.id, "quantity": "0", "unit_price": "1"}, "quantity"),
        ({"product": bare.id, "quantity": "1"}, "unit_price"),
        ({"product": bare.id, "quantity": "1", "unit_price": "1", "discount": "101"}, "discount"),
        ({"product": bare.id, "quantity": "1", "unit_price": "1", "amount": "1"}, "amount"),
    ]
    for values, field in cases:
        with pytest.raises(RuleViolation) as caught:
            opportunities.save_line(item.id, values, person("rep_a"))
        assert field in caught.value.errors, (values, caught.value.errors)
        db.session.rollback()


def test_stage_history_counts_whole_days_in_the_stage(ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    with clock.frozen(T0):
        item = new_opp("rep_a", customer)
    with clock.frozen(T0 + timedelta(days=3, hours=23)):
        move_stage(item.id, stage("needs").id, person("rep_a"), values={"demand": "x"})
        db.session.commit()
    with clock.frozen(T0 + timedelta(days=10)):
        moved = move_stage(item.id, stage("proposal").id, person("rep_a"),
                           values={"proposal_version": "v1"})
        db.session.commit()
        assert clock.as_utc(moved.stage_entered_at) == T0 + timedelta(days=10)
    changes = db.session.scalars(select(OpportunityStageChange).where(
        OpportunityStageChange.opportunity_id == item.id).order_by(OpportunityStageChange.id)).all()
    assert [(c.from_stage and c.from_stage.code, c.to_stage.code, c.days_in_stage) for c in changes] == [
        (None, "contact", None), ("contact", "needs", 3), ("needs", "proposal", 6)]
    assert changes[1].changed_by_id == user_id("rep_a")


def test_stale_list(ctx: Any, make_customer: Any) -> None:
    with clock.frozen(T0):
        mine = new_opp("rep_a", make_customer("rep_a"), stage=stage("proposal"), proposal_version="v1")
        other = new_opp("rep_b", make_customer("rep_b"), stage=stage("proposal"), proposal_version="v1")
        fresh_stage = new_opp("rep_a", make_customer("rep_a"))  # 接触 has no stale rule
    with clock.frozen(T0 + timedelta(days=6)):
        assert db.session.scalars(opportunities.stale_opportunities(person("rep_a"))).all() == []
    with clock.frozen(T0 + timedelta(days=8)):
        assert db.session.scalars(opportunities.stale_opportunities(person("rep_a"))).all() == [mine]
        assert set(db.session.scalars(opportunities.stale_opportunities(person("admin")))) == {mine, other}
        save_opportunity({"title": "ERP rollout, phase 1"}, person("rep_a"), pk=mine.id, version=mine.version)
        db.session.commit()
        assert db.session.scalars(opportunities.stale_opportunities(person("rep_a"))).all() == []
    assert fresh_stage.stage.stale_days is None


def test_plausibility_warns_above_the_factor_of_the_largest_won(ctx: Any, make_customer: Any) -> None:
    customer = make_customer("rep_a")
    assert new_opp("rep_a", customer, amount="1000000").amount  # no won history: no question
    new_opp("rep_a", customer, stage=stage("won"), amount="1000")
    assert new_opp("rep_a", customer, amount="5000").amount == Decimal("5000")
    with pytest.raises(AmountImplausible) as caught:
        new_opp("rep_a", customer, unit_price="5000.01", quantity="1")
    assert caught.value.status == 409 and "5 times" in caught.value.errors["confirm_amount"]
    db.session.rollback()
    from app.models.customers import Customer

    item = save_opportunity({"customer": db.session.get(Customer, customer), "title": "Big", "amount": "6000"},
                            person("rep_a"), confirm_amount=True)
    db.session.commit()
    # an unchanged amount is not asked again
    save_opportunity({"title": "Big one", "amount": Decimal("6000")}, person("rep_a"), pk=item.id,
                     version=item.version)


def test_an_opportunity_is_deleted_with_its_lines_competitors_and_stage_history(ctx: Any,
                                                                               make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"))
    move_stage(item.id, stage("needs").id, person("rep_a"), values={"demand": "x"})
    opportunities.save_competitor(item.id, {"name": "Rival Co"}, person("rep_a"))
    db.session.commit()
    pk = item.id
    opportunities.delete_opportunity(pk, person("rep_a"))
    db.session.commit()
    for model, key in ((Opportunity, Opportunity.id), (OpportunityStageChange, OpportunityStageChange.opportunity_id),
                       (Competitor, Competitor.opportunity_id)):
        assert db.session.scalars(select(model).where(key == pk)).all() == []


def test_rep_b_cannot_reach_rep_a_s_opportunity(ctx: Any, make_customer: Any) -> None:
    item = new_opp("rep_a", make_customer("rep_a"))
    crm = Product(code="P-1", name="Seat", list_price=Decimal("1"))
    db.session.add(crm)
    db.session.commit()
    line = opportunities.save_line(item.id, {"product": crm.id, "quantity": "1"}, person("rep_a"))
    rival = opportunities.save_competitor(item.id, {"name": "Rival Inc"}, person("rep_a"))
    db.session.commit()
    b = person("rep_b")
    attacks = [
        lambda: move_stage(item.id, stage("needs").id, b, values={"demand": "x"}),
        lambda: save_opportunity({"title": "mine"}, b, pk=item.id, version=item.version),
        lambda: opportunities.save_line(item.id, {"product": crm.id, "quantity": "1"}, b),
        lambda: opportunities.delete_line(item.id, line.id, b),
        lambda: opportunities.save_competitor(item.id, {"name": "x"}, b),
        lambda: opportunities.delete_competitor(item.id, rival.id, b),
        lambda: opportunities.delete_opportunity(item.id, b),
    ]
    for attack in attacks:
        with pytest.raises(NotFound):
            attack()
        db.session.rollback()
    # nor through an opportunity of their own: a line pk must belong to the opportunity named
    own = new_opp("rep_b", make_customer("rep_b"))
    for attack in (lambda: opportunities.delete_line(own.id, line.id, b),
                   lambda: opportunities.save_competitor(own.id, {"name": "x"}, b, pk=rival.id)):
        with pytest.raises(NotFound):
            attack()
        db.session.rollback()
    # and not onto a customer of rep_a's
    with pytest.raises(RuleViolation) as caught:
        new_opp("rep_b", make_customer("rep_a"))
    assert "customer" in caught.value.errors


def test_import_rows_go_through_the_stage_rule(ctx: Any, make_customer: Any, tmp_path: Any) -> None:
    from app.extensions import appbuilder
    from app.models.customers import Customer
    from app.services.importing import columns, declared, engine, reading
    from tests.app.services.importing.conftest import write_xlsx

    code = db.session.get(Customer, make_customer("rep_a")).code
    other = db.session.get(Customer, make_customer("rep_b")).code
    path = write_xlsx(tmp_path / "商机.xlsx", {"商机": [
        ["客户编号", "商机名称", "阶段", "单价", "数量", "方案版本", "输单原因"],
        [code, "好的", "方案提交", "100", "3", "v1", ""],
        [code, "缺方案版本", "方案提交", "", "", "", ""],
        [code, "输单无原因", "输单", "", "", "", ""],
        [other, "别人的客户", "", "", "", "", ""],
    ]})
    table = reading.read_table(path)
    mapping = columns.auto_map(columns.MODELS["opportunity"], table.headers)
    settings = engine.Settings("opportunity", "create", "code", chunk_size=10)
    result = declared.run_import(table, mapping, settings, appbuilder.sm.find_user(username="rep_a"), True,
                                 label="test")
    assert result.summary()["created"] == 1 and result.rejected == 3
    created = db.session.scalars(select(Opportunity)).one()
    assert created.stage.code == "proposal" and created.amount == Decimal("300.00")
    errors = {line: str(message) for line, _raw, message in result.rejected_rows}
    assert "Proposal version" in errors[3] and "Lost reason" in errors[4] and "客户编号" in errors[5]


def test_a_refused_move_leaves_nothing_behind_for_a_retry_without_rollback(ctx: Any, make_customer: Any) -> None:
    """The kanban retries a drop with the fields it asked for, in the same session."""
    customer = make_customer("rep_a")
    new_opp("rep_a", customer, stage=stage("won"), amount="100")
    item = new_opp("rep_a", customer, title="Second")
    with pytest.raises(RuleViolation):
        move_stage(item.id, stage("needs").id, person("rep_a"), version=1)
    with pytest.raises(AmountImplausible):
        move_stage(item.id, stage("needs").id, person("rep_a"), version=1, values={"demand": "x", "amount": "900"})
    moved = move_stage(item.id, stage("needs").id, person("rep_a"), version=1,
                       values={"demand": "x", "amount": "900"}, confirm_amount=True)
    db.session.commit()
    assert moved.version == 2 and [c.to_stage.code for c in moved.stage_changes] == ["contact", "needs"]
    with pytest.raises(RuleViolation):
        opportunities.save_line(item.id, {"product": 999999, "quantity": "1"}, person("rep_a"))
    with pytest.raises(RuleViolation):
        opportunities.save_competitor(item.id, {"name": ""}, person("rep_a"))
    db.session.commit()  # nothing half-made is flushed
    assert db.session.get(Opportunity, item.id).lines == [] and db.session.get(Opportunity, item.id).competitors == []
