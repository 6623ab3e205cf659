"""The pipeline read side (app.services.pipeline): board totals, weighted totals, cards,
filters, scope, the forecast, and the kanban move's own refusals."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from app.clock import UTC
from app.extensions import appbuilder, db
from app.models import Customer
from app.models.org import CrmUser, Department
from app.models.sales import Contact, Opportunity, OpportunityStageChange, Stage
from app.services import pipeline
from app.services.errors import NotFound, RuleViolation
from tests.conftest import user_id

#: The stages the migration seeds (a4c6e8f0b2d5), in id order: code, en, zh, weight, won, lost, required.
SEED_STAGES = [
    ("contact", "Contact", "接触", 10, False, False, ""),
    ("needs", "Needs analysis", "需求分析", 30, False, False, "demand"),
    ("proposal", "Proposal", "方案提交", 50, False, False, "proposal_version"),
    ("negotiation", "Negotiation", "商务谈判", 80, False, False, "expected_close"),
    ("won", "Won", "成交", 100, True, False, "amount"),
    ("lost", "Lost", "输单", 0, False, True, "lost_reason"),
]
#: Who works where, as tests/conftest.py builds the org.
DEPARTMENTS = {"manager": "East", "rep_a": "East", "rep_b": "East Team", "rep_c": "South", "manager_s": "South"}


def _seeded_org_and_stages() -> None:
    """Put back the seeded stages and the users' departments: screens' round-trip tests edit the
    first stage and user admin tests re-save users, and these figures depend on both."""
    ids = db.session.scalars(select(Stage.id).order_by(Stage.id).limit(len(SEED_STAGES))).all()
    for pk, (code, en, zh, weight, won, lost, required) in zip(ids, SEED_STAGES, strict=True):
        db.session.execute(update(Stage).where(Stage.id == pk).values(
            code=code, label_en=en, label_zh=zh, weight=weight, is_won=won, is_lost=lost, required_fields=required,
            sort_order=ids.index(pk), active=True))
    departments = dict(db.session.execute(select(Department.name, Department.id)).tuples().all())
    for username, name in DEPARTMENTS.items():
        db.session.execute(update(CrmUser).where(CrmUser.username == username).values(department_id=departments[name]))
    db.session.commit()


@pytest.fixture(autouse=True)
def _clean_opportunities(app: Any) -> Any:
    """Seeded stages and departments in place; opportunities removed after each test (they
    point at customers, which the shared clean-up deletes)."""
    with app.app_context():
        _seeded_org_and_stages()
        db.session.remove()
    yield
    with app.app_context():
        db.session.rollback()
        db.session.execute(delete(OpportunityStageChange))
        db.session.execute(delete(Opportunity))
        db.session.execute(delete(Contact))
        db.session.execute(update(Stage).values(active=True))
        db.session.commit()
        db.session.remove()


def stage_id(code: str) -> int:
    return db.session.scalar(select(Stage.id).where(Stage.code == code))


def add_opportunity(owner: str, stage: str, amount: str | None, *, close: date | None = None,
                    override: int | None = None, changed: datetime | None = None, **fields: Any) -> int:
    """An opportunity of ``owner``'s (and a customer of theirs), written straight to the table;
    returns its id. Call inside an app context."""
    customer = Customer(name=f"Customer {owner} {amount}", contact_phone="13812345678", owner_id=user_id(owner))
    db.session.add(customer)
    db.session.flush()
    item = Opportunity(customer_id=customer.id, title=fields.pop("title", f"Deal {amount}"), stage_id=stage_id(stage),
                       amount=None if amount is None else Decimal(amount), owner_id=user_id(owner),
                       expected_close=close, probability_override=override, **fields)
    if changed is not None:
        item.changed_on = changed
    db.session.add(item)
    db.session.commit()
    return item.id


def user(username: str) -> Any:
    return appbuilder.sm.find_user(username=username)


def by_code(columns: list[pipeline.Column]) -> dict[str, pipeline.Column]:
    return {column.stage.code: column for column in columns}


def test_board_totals_and_weighted_totals(ctx):
    add_opportunity("rep_a", "contact", "1000.00")                   # 10 % -> 100.00
    add_opportunity("rep_a", "contact", "500.50", override=50)       # override 50 % -> 250.25
    add_opportunity("rep_a", "contact", None)                        # counted, no amount
    add_opportunity("rep_a", "needs", "0.10", demand="x")
    add_opportunity("rep_a", "needs", "0.20", demand="x")            # 30 % of 0.30 = 0.09, exact
    add_opportunity("rep_a", "won", "300.00", override=20)           # won counts at 100 %
    add_opportunity("rep_a", "lost", "400.00", override=90, lost_reason="price")  # lost counts at 0 %
    add_opportunity("rep_b", "contact", "9999.00")
    columns = by_code(pipeline.board(user("rep_a")))
    seeded = [code for code, *_ in SEED_STAGES]
    assert [code for code in columns if code in seeded] == seeded  # in the stages' order
    contact = columns["contact"]
    assert (contact.count, contact.total, contact.weighted) == (3, Decimal("1500.50"), Decimal("350.25"))
    assert (columns["needs"].total, columns["needs"].weighted) == (Decimal("0.30"), Decimal("0.09"))
    assert (columns["won"].total, columns["won"].weighted) == (Decimal("300.00"), Decimal("300.00"))
    assert (columns["lost"].total, columns["lost"].weighted) == (Decimal("400.00"), Decimal("0.00"))
    assert (columns["proposal"].count, columns["proposal"].total, columns["proposal"].cards) == (0, 0, [])
    card = next(c for c in contact.cards if c.amount == Decimal("500.50"))
    assert (card.probability, card.owner, card.customer) == (50, "Rep_A Test", "Customer rep_a 500.50")


def test_cards_are_bounded_newest_changed_first(ctx):
    start = datetime(2024, 5, 1, tzinfo=UTC)
    ids = [add_opportunity("rep_a", "contact", str(n), changed=start + timedelta(hours=n)) for n in range(5)]
    column = by_code(pipeline.board(user("rep_a"), cards=3))["contact"]
    assert [c.id for c in column.cards] == ids[::-1][:3]
    assert (column.count, column.more) == (5, 2)
    assert column.totals()["more"] == 2


def test_scope_rep_never_sees_a_colleagues_cards_or_amounts(ctx):
    mine = add_opportunity("rep_b", "contact", "10.00")
    theirs = add_opportunity("rep_a", "contact", "5000.00")
    column = by_code(pipeline.board(user("rep_b")))["contact"]
    assert [c.id for c in column.cards] == [mine]
    assert (column.count, column.total) == (1, Decimal("10.00"))
    manager = by_code(pipeline.board(user("manager")))["contact"]   # East and its sub-department
    assert {c.id for c in manager.cards} == {mine, theirs}
    south = by_code(pipeline.board(user("manager_s")))["contact"]
    assert (south.count, south.total, south.cards) == (0, Decimal("0.00"), [])


def test_filters_owner_department_and_close_month(ctx):
    a_may = add_opportunity("rep_a", "contact", "100.00", close=date(2024, 5, 31))
    a_june = add_opportunity("rep_a", "contact", "200.00", close=date(2024, 6, 1))
    b_may = add_opportunity("rep_b", "contact", "400.00", close=date(2024, 5, 1))
    add_opportunity("rep_c", "contact", "800.00", close=date(2024, 5, 2))   # South: outside the manager's scope
    manager = user("manager")
    team = db.session.scalar(select(Department.id).where(Department.name == "East Team"))
    east = db.session.scalar(select(Department.id).where(Department.name == "East"))

    def shown(**args: str) -> tuple[set[int], Decimal]:
        column = by_code(pipeline.board(manager, pipeline.parse_filters(args, manager)))["contact"]
        return {c.id for c in column.cards}, column.total

    assert shown() == ({a_may, a_june, b_may}, Decimal("700.00"))
    assert shown(owner=str(user_id("rep_a"))) == ({a_may, a_june}, Decimal("300.00"))
    assert shown(department=str(team)) == ({b_may}, Decimal("400.00"))
    assert shown(department=str(east)) == ({a_may, a_june, b_may}, Decimal("700.00"))  # with sub-departments
    assert shown(close_month="2024-05") == ({a_may, b_may}, Decimal("500.00"))
    assert shown(owner=str(user_id("rep_a")), close_month="2024-06") == ({a_june}, Decimal("200.00"))
    admin = user("admin")
    south = db.session.scalar(select(Department.id).where(Department.name == "South"))
    column = by_code(pipeline.board(admin, pipeline.parse_filters({"department": str(south)}, admin)))["contact"]
    assert column.total == Decimal("800.00")


@pytest.mark.parametrize(("who", "args", "field"), [
    ("rep_a", {"owner": "rep_b"}, "owner"),
    ("rep_a", {"owner": "99999999999999999999"}, "owner"),
    ("manager", {"department": "south"}, "department"),
    ("manager", {"close_month": "2024-13"}, "close_month"),
    ("manager", {"close_month": "May 2024"}, "close_month"),
])
def test_bad_or_out_of_scope_filters_are_refused_not_ignored(ctx, who, args, field):
    ids = {"rep_b": str(user_id("rep_b")),
           "south": str(db.session.scalar(select(Department.id).where(Department.name == "South")))}
    args = {key: ids.get(value, value) for key, value in args.items()}
    with pytest.raises(RuleViolation) as refused:
        pipeline.parse_filters(args, user(who))
    assert field in refused.value.errors and refused.value.status == 400


def test_filter_choices_are_scoped(ctx):
    names = {name for _, name in pipeline.owner_choices(user("rep_a"))}
    assert names == {"Rep_A Test"}
    manager_departments = {name for _, name in pipeline.department_choices(user("manager"))}
    assert {"East", "East Team"} <= manager_departments and "South" not in manager_departments
    assert {name for _, name in pipeline.department_choices(user("admin"))} >= {"East", "East Team", "South"}


def test_forecast_by_month_and_owner(ctx):
    may, june = date(2024, 5, 1), date(2024, 6, 1)
    add_opportunity("rep_a", "contact", "1000.00", close=date(2024, 5, 10))          # 100.00
    add_opportunity("rep_a", "proposal", "200.00", close=date(2024, 5, 31), override=25,
                    proposal_version="v1")                                             # 50.00
    add_opportunity("rep_a", "won", "300.00", close=date(2024, 6, 2), override=10)   # won: 300.00
    add_opportunity("rep_a", "lost", "9000.00", close=date(2024, 6, 2), lost_reason="price")  # left out
    add_opportunity("rep_a", "contact", "7000.00", close=date(2024, 8, 1))           # outside the months
    add_opportunity("rep_a", "contact", "100.00")                                     # undated
    add_opportunity("rep_b", "negotiation", "100.00", close=date(2024, 6, 15))       # 80.00
    result = pipeline.forecast(user("manager"), "owner", months=2, start=may)
    assert result.months == [may, june]
    rows = {label: (values, total) for _, label, values, total in result.rows}
    assert rows["Rep_A Test"] == ({may: Decimal("150.00"), june: Decimal("300.00")}, Decimal("450.00"))
    assert rows["Rep_B Test"] == ({june: Decimal("80.00")}, Decimal("80.00"))
    assert result.month_totals == {may: Decimal("150.00"), june: Decimal("380.00")}
    assert (result.total, result.undated) == (Decimal("530.00"), 1)
    mine = pipeline.forecast(user("rep_b"), "owner", months=2, start=may)
    assert [(label, total) for _, label, _, total in mine.rows] == [("Rep_B Test", Decimal("80.00"))]
    assert mine.undated == 0


def test_forecast_by_department(ctx):
    may = date(2024, 5, 1)
    add_opportunity("rep_a", "contact", "1000.00", close=date(2024, 5, 3))     # East: 100.00
    add_opportunity("manager", "contact", "500.00", close=date(2024, 5, 4))    # East: 50.00
    add_opportunity("rep_b", "contact", "2000.00", close=date(2024, 5, 5))     # East Team: 200.00
    add_opportunity("rep_c", "contact", "3000.00", close=date(2024, 5, 6))     # South: not the manager's
    rows = {label: total for _, label, _, total in pipeline.forecast(user("manager"), "department", 1, may).rows}
    assert rows == {"East": Decimal("150.00"), "East Team": Decimal("200.00")}
    everyone = {label: total for _, label, _, total in pipeline.forecast(user("admin"), "department", 1, may).rows}
    assert everyone["South"] == Decimal("300.00")


@pytest.mark.parametrize(("group_by", "months"), [("region", 6), ("owner", 0), ("owner", 25), ("owner", True)])
def test_forecast_refuses_bad_arguments(ctx, group_by, months):
    with pytest.raises(RuleViolation) as refused:
        pipeline.forecast(user("admin"), group_by, months)
    assert refused.value.status == 400


def test_month_start_and_add_months():
    assert pipeline.month_start("2024-12", "m") == date(2024, 12, 1)
    assert pipeline.month_start(" ", "m") is None
    assert pipeline.add_months(date(2024, 12, 1), 1) == date(2025, 1, 1)
    assert pipeline.add_months(date(2024, 1, 1), 23) == date(2025, 12, 1)


def test_move_refuses_unknown_or_inactive_stage_and_foreign_fields(ctx):
    pk = add_opportunity("rep_a", "contact", "10.00")
    rep = user("rep_a")
    for target in (999999, "x", None):
        with pytest.raises(RuleViolation) as refused:
            pipeline.move(pk, target, rep, version=1)
        assert "stage" in refused.value.errors
    db.session.execute(update(Stage).where(Stage.code == "proposal").values(active=False))
    with pytest.raises(RuleViolation):
        pipeline.move(pk, stage_id("proposal"), rep, version=1, values={"proposal_version": "v1"})
    with pytest.raises(RuleViolation) as refused:
        pipeline.move(pk, stage_id("needs"), rep, version=1, values={"owner": "rep_b", "demand": "x"})
    assert set(refused.value.errors) == {"owner"}
    db.session.rollback()
    assert db.session.get(Opportunity, pk).stage_id == stage_id("contact")


def test_move_goes_through_the_use_case(ctx):
    pk = add_opportunity("rep_a", "contact", "10.00")
    version = db.session.get(Opportunity, pk).version
    with pytest.raises(NotFound):
        pipeline.move(pk, stage_id("needs"), user("rep_b"), version=version, values={"demand": "x"})
    with pytest.raises(RuleViolation) as refused:
        pipeline.move(pk, stage_id("needs"), user("rep_a"), version=version)
    assert set(refused.value.errors) == {"demand"}
    fields = pipeline.missing_fields(refused.value.errors)
    assert [(f["name"], f["label"], f["kind"]) for f in fields] == [("demand", "Demand description", "textarea")]
    db.session.rollback()  # as every caller does after a refusal
    moved = pipeline.move(pk, stage_id("needs"), user("rep_a"), version=version, values={"demand": "Two servers"})
    db.session.commit()
    assert (moved.stage_id, moved.demand, moved.version) == (stage_id("needs"), "Two servers", version + 1)


def test_a_retired_stage_has_no_column_but_its_open_deals_stay_in_the_forecast(ctx):
    add_opportunity("rep_a", "proposal", "100.00", close=date(2024, 5, 2), proposal_version="v1")
    db.session.execute(update(Stage).where(Stage.code == "proposal").values(active=False))
    db.session.commit()
    assert "proposal" not in by_code(pipeline.board(user("rep_a")))
    result = pipeline.forecast(user("rep_a"), "owner", 1, date(2024, 5, 1))
    assert result.total == Decimal("50.00")
