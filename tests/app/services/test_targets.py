"""Sales targets (002 §十(二) target attainment; 003 第三步 4): admin only, any day names its
month, amounts are Decimal >= 0, every change audited with before and after."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models.audit import AuditLog
from app.models.reports import SalesTarget
from app.services import targets
from app.services.errors import RuleForbidden, RuleViolation


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


@pytest.mark.parametrize("who", ["rep_a", "manager", "viewer", "service"])
def test_only_admins_set_targets(ctx: Any, who: str) -> None:
    with pytest.raises(RuleForbidden):
        targets.set_target(user(who), user(who).id, date(2026, 3, 1), "1000")
    with pytest.raises(RuleForbidden):
        targets.set_year(user(who), 2026, {(user(who).id, 3): "1000"})
    assert db.session.scalars(select(SalesTarget)).all() == []


def test_month_amount_and_audit(ctx: Any) -> None:
    admin, rep = user("admin"), user("rep_a")
    item = targets.set_target(admin, rep.id, date(2026, 3, 17), "50000.005")
    db.session.commit()
    assert item.month == date(2026, 3, 1)
    assert targets.targets_for(date(2026, 3, 31), [rep.id]) == {rep.id: Decimal("50000.01")}
    targets.set_target(admin, rep.id, date(2026, 3, 1), Decimal("60000"))
    db.session.commit()
    assert db.session.scalars(select(SalesTarget)).all().__len__() == 1
    details = [json.loads(d) for d in db.session.scalars(
        select(AuditLog.detail).where(AuditLog.action == "sales_target_set").order_by(AuditLog.id))]
    assert [(d["before"], d["after"]) for d in details] == [(None, "50000.01"), ("50000.01", "60000.00")]
    assert details[0]["user"] == "rep_a" and details[0]["month"] == "2026-03-01"


@pytest.mark.parametrize("amount", ["-1", "abc", "1e30", "NaN", ""])
def test_bad_amounts_refused(ctx: Any, amount: str) -> None:
    with pytest.raises(RuleViolation) as refused:
        targets.set_target(user("admin"), user("rep_a").id, date(2026, 3, 1), amount)
    assert "amount" in refused.value.errors


def test_year_grid_checks_all_before_writing(ctx: Any) -> None:
    admin, rep_a, rep_b = user("admin"), user("rep_a"), user("rep_b")
    with pytest.raises(RuleViolation) as refused:
        targets.set_year(admin, 2026, {(rep_a.id, 1): "100", (rep_b.id, 2): "-5"})
    assert list(refused.value.errors) == [f"target-{rep_b.id}-2"]
    assert db.session.scalars(select(SalesTarget)).all() == []
    changed = targets.set_year(admin, 2026, {(rep_a.id, 1): "100", (rep_a.id, 2): "", (rep_b.id, 12): "7.5"})
    db.session.commit()
    assert changed == 2
    assert targets.targets_for_year(2026) == {(rep_a.id, 1): Decimal("100.00"), (rep_b.id, 12): Decimal("7.50")}
    assert targets.set_year(admin, 2026, {(rep_a.id, 1): "100.00"}) == 0  # unchanged: no audit noise


def test_reps_listed_for_the_grid(ctx: Any) -> None:
    names = {u.username for u in targets.target_reps()}
    assert {"rep_a", "rep_b", "rep_c"} <= names
    assert "viewer" not in names and "service" not in names
