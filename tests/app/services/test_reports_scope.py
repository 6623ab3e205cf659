"""Report builder attacks: a report never counts records outside the viewer's scope (own,
department tree), a shared report runs in the OPENER's scope, contact data is masked for
those who may not reveal it, and saved reports cannot be opened, changed or shared beyond
what their user holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models.audit import AuditLog
from app.models.reports import SavedReport
from app.services import reports
from app.services.errors import NotFound, RuleForbidden, RuleViolation, StaleRecord


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def role_id(name: str) -> int:
    return appbuilder.sm.find_role(name).id


def spec(**data: Any) -> reports.ReportSpec:
    return reports.parse_spec(data)


@pytest.fixture
def spread(make_customer: Any, make_follow_up: Any) -> dict[str, int]:
    """Customers: rep_a 3, rep_b 2 (East Team), rep_c 4 (South); one follow-up on each."""
    counts = {"rep_a": 3, "rep_b": 2, "rep_c": 4}
    for owner, n in counts.items():
        for i in range(n):
            cid = make_customer(owner, name=f"{owner} co {i}", contact_name=f"联系人{owner}{i}")
            make_follow_up(cid, owner)
    return counts


def total(result: reports.ReportResult) -> Any:
    return result.pivot.loc["Total", "Total"]


@pytest.mark.parametrize(("who", "expected"), [
    ("rep_a", 3), ("rep_b", 2), ("rep_c", 4), ("manager", 5), ("manager_s", 4), ("admin", 9), ("viewer", 9)])
def test_each_user_counts_only_their_scope(ctx: Any, spread: dict, who: str, expected: int) -> None:
    for source in ("customers", "follow_ups"):
        assert total(reports.run(spec(source=source, dimensions=["owner"]), user(who))) == expected


def test_filter_on_another_reps_records_gives_nothing(ctx: Any, spread: dict) -> None:
    """rep_a asking for rep_c's customers or South's department sees nothing, not an error that leaks."""
    other = user("rep_c")
    by_owner = reports.run(spec(source="customers", dimensions=["level"], owner=other.id), user("rep_a"))
    assert total(by_owner) == 0 and by_owner.rows == []
    by_dept = reports.run(spec(source="customers", dimensions=["level"], department=other.department_id),
                          user("rep_a"))
    assert total(by_dept) == 0


def test_contact_names_masked_unless_revealable(ctx: Any, spread: dict) -> None:
    masked = reports.run(spec(source="customers", dimensions=["contact_name"]), user("viewer"))
    assert masked.contact_data is True
    shown = " ".join(masked.figure.categories) + " ".join(str(i) for i in masked.pivot.index)
    assert "联系人" not in shown
    assert all(k is None for k in masked.figure.keys)  # the raw value must not ride along as a key
    assert total(masked) == 9
    revealed = reports.run(spec(source="customers", dimensions=["contact_name"]), user("manager"))
    assert revealed.contact_data is True
    assert "联系人rep_a0" in revealed.figure.categories
    assert "联系人rep_c0" not in revealed.figure.categories  # and only in the manager's scope


def test_follow_up_contact_person_is_sensitive(ctx: Any, spread: dict) -> None:
    result = reports.run(spec(source="follow_ups", dimensions=["owner", "contact_name"]), user("viewer"))
    assert result.contact_data
    assert not any("联系人" in str(c) for c in result.pivot.columns)


def test_shared_report_runs_in_the_openers_scope(ctx: Any, spread: dict) -> None:
    manager = user("manager")
    saved = reports.save(manager, "Customers by owner", spec(source="customers", dimensions=["owner"]),
                         roles=[role_id("Sales Manager")])
    db.session.commit()
    south = user("manager_s")
    assert total(reports.run(reports.spec_of(reports.load(saved.id, south)), south)) == 4  # South's, not East's
    assert total(reports.run(reports.spec_of(reports.load(saved.id, manager)), manager)) == 5
    saved = reports.save(user("admin"), "For reps", spec(source="customers", dimensions=["owner"]),
                         roles=[role_id("Sales Rep")])
    db.session.commit()
    rep = user("rep_a")
    opened = reports.load(saved.id, rep)
    result = reports.run(reports.spec_of(opened), rep)
    assert total(result) == 3
    assert result.figure.keys == [rep.id]


def test_private_report_is_not_found_for_others(ctx: Any) -> None:
    mine = reports.save(user("rep_a"), "Mine", spec(source="customers", dimensions=["level"]))
    db.session.commit()
    for other in ("rep_b", "rep_c", "manager", "viewer"):
        with pytest.raises(NotFound):
            reports.load(mine.id, user(other))
        assert mine.id not in [r.id for r in reports.visible(user(other))]
    assert reports.load(mine.id, user("admin")).id == mine.id
    assert [r.id for r in reports.visible(user("rep_a"))] == [mine.id]


def test_shares_with_any_role_but_admin(ctx: Any) -> None:
    """Sharing hands over the definition, not records (each reader runs it in their own
    scope): any role but Admin; only an admin shares with Admin."""
    rep_shared = reports.save(user("rep_a"), "For managers too", spec(source="customers", dimensions=["level"]),
                              roles=[role_id("Sales Manager"), role_id("Sales Rep")])
    assert sorted(r.name for r in rep_shared.roles) == ["Sales Manager", "Sales Rep"]
    with pytest.raises(RuleViolation) as refused:
        reports.save(user("rep_a"), "Leak", spec(source="customers", dimensions=["level"]),
                     roles=[role_id("Admin")])
    assert "Admin" in refused.value.errors["roles"]
    assert "Admin" not in [r.name for r in reports.share_roles(user("manager"))]
    admin_shared = reports.save(user("admin"), "For admins", spec(source="customers", dimensions=["level"]),
                                roles=[role_id("Admin")])
    assert [r.name for r in admin_shared.roles] == ["Admin"]


def test_shared_report_cannot_be_changed_or_deleted_by_a_reader(ctx: Any) -> None:
    saved = reports.save(user("manager"), "Team", spec(source="customers", dimensions=["level"]),
                         roles=[role_id("Sales Manager")])
    db.session.commit()
    with pytest.raises(RuleForbidden):
        reports.save(user("manager_s"), "Hijacked", spec(source="customers", dimensions=["owner"]), pk=saved.id,
                     version=saved.version)
    with pytest.raises(RuleForbidden):
        reports.delete(saved.id, user("manager_s"))
    with pytest.raises(NotFound):  # not shared with reps: they cannot even learn it exists
        reports.delete(saved.id, user("rep_a"))


def test_read_only_user_cannot_save(ctx: Any) -> None:
    with pytest.raises(RuleForbidden):
        reports.save(user("viewer"), "Nope", spec(source="customers", dimensions=["level"]))


def test_save_rules_versioned_and_audited(ctx: Any) -> None:
    rep = user("rep_a")
    with pytest.raises(RuleViolation) as empty:
        reports.save(rep, "  ", spec(source="customers", dimensions=["level"]))
    assert "name" in empty.value.errors
    first = reports.save(rep, "Levels", spec(source="customers", dimensions=["level"], period_start="2026-01-01"))
    db.session.commit()
    with pytest.raises(RuleViolation) as twice:
        reports.save(rep, "Levels", spec(source="customers", dimensions=["industry"]))
    assert "name" in twice.value.errors
    reports.save(user("rep_b"), "Levels", spec(source="customers", dimensions=["level"]))  # per owner
    version = first.version
    reports.save(rep, "Levels 2", spec(source="customers", dimensions=["industry"]), pk=first.id, version=version)
    db.session.commit()
    with pytest.raises(StaleRecord):
        reports.save(rep, "Levels 3", spec(source="customers", dimensions=["level"]), pk=first.id, version=version)
    db.session.rollback()
    stored = db.session.get(SavedReport, first.id)
    assert stored.name == "Levels 2" and json.loads(stored.definition)["dimensions"] == ["industry"]
    assert reports.spec_of(stored).dimensions == ("industry",)
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.object_type == "SavedReport",
                                                               AuditLog.object_id == str(first.id))).all()
    assert actions.count("report_saved") == 2
    reports.delete(first.id, rep)
    db.session.commit()
    assert db.session.get(SavedReport, first.id) is None
    assert "report_deleted" in db.session.scalars(select(AuditLog.action).where(
        AuditLog.object_type == "SavedReport", AuditLog.object_id == str(first.id))).all()


def test_schedule_needs_active_recipients_who_may_open_reports(ctx: Any) -> None:
    manager = user("manager")
    base = spec(source="customers", dimensions=["level"])
    with pytest.raises(RuleViolation) as no_one:
        reports.save(manager, "Weekly", base, schedule="weekly", weekday=0)
    assert "recipients" in no_one.value.errors
    with pytest.raises(RuleViolation) as bad_day:
        reports.save(manager, "Weekly", base, schedule="weekly", weekday=9, recipients=[manager.id])
    assert "schedule_weekday" in bad_day.value.errors
    rep = user("rep_a")
    rep.active = False
    db.session.flush()
    with pytest.raises(RuleViolation) as inactive:
        reports.save(manager, "Weekly", base, schedule="weekly", weekday=0, recipients=[rep.id])
    assert "recipients" in inactive.value.errors


def test_recipients_must_be_able_to_open_the_report(ctx: Any) -> None:
    """The owner, or people holding a role the report is shared with; others refused by name."""
    manager, rep, south = user("manager"), user("rep_a"), user("manager_s")
    base = spec(source="customers", dimensions=["level"])
    with pytest.raises(RuleViolation) as private:
        reports.save(manager, "Weekly", base, schedule="weekly", weekday=0, recipients=[manager.id, rep.id])
    message = private.value.errors["recipients"]
    assert "rep_a" in message and "(manager)" not in message
    with pytest.raises(RuleViolation) as other_role:
        reports.save(manager, "Weekly", base, schedule="weekly", weekday=0, recipients=[rep.id, south.id],
                     roles=[role_id("Sales Rep")])
    assert "manager_s" in other_role.value.errors["recipients"]
    assert "rep_a" not in other_role.value.errors["recipients"]
    saved = reports.save(manager, "Weekly", base, schedule="weekly", weekday=0, recipients=[manager.id, rep.id],
                         roles=[role_id("Sales Rep")])
    assert sorted(u.username for u in saved.recipients) == ["manager", "rep_a"]
