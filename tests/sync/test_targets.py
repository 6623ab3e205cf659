"""Which sync target settings are sensitive (issue 10): a target that may overwrite CRM data on
its schedule, or that writes full phone numbers into a sheet, needs a step-up to be saved, and
every save is audited. The screens are tested in tests/views/test_sync.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import AuditLog, SyncTarget
from app.security import step_up
from sync import targets
from tests.conftest import user_id

SAFE = {"direction": "both", "conflict_policy": "review", "deleted_rows": "review", "enabled": True,
        "cron": "*/5 * * * *", "model": "customer"}


def _target(run_as: str = "viewer", **settings: Any) -> SyncTarget:
    return SyncTarget(name="t", backend="xlsx", location="/tmp/t.xlsx", worksheet="客户",
                      run_as_id=user_id(run_as), **{**SAFE, **settings})


@pytest.mark.parametrize(("run_as", "settings", "expected"), [
    ("viewer", {}, []),
    ("viewer", {"conflict_policy": "sheet"}, [targets.OVERWRITE]),
    ("viewer", {"conflict_policy": "newest"}, [targets.OVERWRITE]),
    ("viewer", {"direction": "pull"}, [targets.OVERWRITE]),
    ("viewer", {"deleted_rows": "archive"}, [targets.OVERWRITE]),
    ("viewer", {"conflict_policy": "sheet", "enabled": False}, []),  # never runs unattended
    ("viewer", {"conflict_policy": "sheet", "direction": "push"}, []),  # a push never changes the CRM
    ("viewer", {"conflict_policy": "app"}, []),
    ("manager", {}, [targets.FULL_PHONES]),  # managers may reveal contact details
    ("rep_a", {"model": "follow_up"}, []),  # follow-ups carry no phone
    ("manager", {"conflict_policy": "sheet"}, [targets.OVERWRITE, targets.FULL_PHONES]),
])
def test_sensitive_settings(ctx: Any, run_as: str, settings: dict, expected: list[str]) -> None:
    assert targets.sensitive_actions(_target(run_as, **settings)) == expected


def test_a_deactivated_run_as_user_who_may_reveal_still_counts(ctx: Any) -> None:
    target = _target("manager")
    target.run_as = appbuilder.sm.find_user(username="manager")
    target.run_as.active = False  # reactivating them later must not make this target sensitive unasked
    assert targets.sensitive_actions(target) == [targets.FULL_PHONES]
    db.session.rollback()


def test_the_actions_are_listed_as_sensitive() -> None:
    assert {targets.OVERWRITE, targets.FULL_PHONES, targets.SHEET_WINS} <= set(step_up.SENSITIVE)


def test_save_outside_a_request_is_audited_with_the_changes(ctx: Any) -> None:
    admin = appbuilder.sm.find_user(username="admin")
    target = _target("viewer")
    assert targets.save_target(target, admin) == []
    db.session.commit()
    target.conflict_policy, target.run_as = "sheet", appbuilder.sm.find_user(username="manager")
    assert targets.save_target(target, admin) == [targets.OVERWRITE, targets.FULL_PHONES]
    db.session.commit()
    entries = db.session.scalars(select(AuditLog).where(AuditLog.action == "sync_target_save")
                                 .order_by(AuditLog.id)).all()
    assert [e.object_id for e in entries] == [str(target.id)] * 2
    created, edited = (json.loads(e.detail) for e in entries)
    assert created["created"] and created["sensitive"] == []
    assert edited["changes"] == {"conflict_policy": ["review", "sheet"],
                                 "run_as_id": [user_id("viewer"), user_id("manager")]}
    assert edited["sensitive"] == [targets.OVERWRITE, targets.FULL_PHONES]
