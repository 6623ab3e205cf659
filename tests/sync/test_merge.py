"""The three-way merge, field by field, under each conflict policy."""

from __future__ import annotations

from datetime import datetime

import pytest

from sync.merge import APP_WINS, NEWEST, REVIEW, SHEET_WINS, merge_row

BASE = {"name": "Acme", "phone": "13800000001", "note": "old"}


def test_one_side_changes_flow_across() -> None:
    result = merge_row(BASE, {**BASE, "name": "Acme Ltd"}, {**BASE, "note": "typed in the sheet"}, REVIEW)
    assert result.to_sheet == {"name": "Acme Ltd"}
    assert result.to_app == {"note": "typed in the sheet"}
    assert not result.conflicts
    assert result.agreed == {"name": "Acme Ltd", "phone": "13800000001", "note": "typed in the sheet"}


def test_same_change_on_both_sides_is_not_a_conflict() -> None:
    result = merge_row(BASE, {**BASE, "note": "same"}, {**BASE, "note": "same"}, REVIEW)
    assert not result.changed and result.agreed["note"] == "same"


@pytest.mark.parametrize("policy,to_app,to_sheet", [
    (APP_WINS, {}, {"note": "app"}),
    (SHEET_WINS, {"note": "sheet"}, {}),
])
def test_conflicts_under_app_and_sheet_wins(policy: str, to_app: dict, to_sheet: dict) -> None:
    result = merge_row(BASE, {**BASE, "note": "app"}, {**BASE, "note": "sheet"}, policy)
    assert (result.to_app, result.to_sheet, result.conflicts) == (to_app, to_sheet, [])


def test_review_keeps_both_and_the_old_agreement() -> None:
    result = merge_row(BASE, {**BASE, "note": "app"}, {**BASE, "note": "sheet"}, REVIEW)
    assert [(c.field, c.base, c.app, c.sheet) for c in result.conflicts] == [("note", "old", "app", "sheet")]
    assert not result.to_app and not result.to_sheet and result.agreed["note"] == "old"


def test_newest_compares_change_times_and_trusts_the_sheet_when_unknown() -> None:
    app_at, sheet_at = datetime(2026, 1, 2), datetime(2026, 1, 1)
    both = ({**BASE, "note": "app"}, {**BASE, "note": "sheet"})
    assert merge_row(BASE, *both, NEWEST, app_at, sheet_at).to_sheet == {"note": "app"}
    assert merge_row(BASE, *both, NEWEST, sheet_at, app_at).to_app == {"note": "sheet"}
    assert merge_row(BASE, *both, NEWEST, app_at, None).to_app == {"note": "sheet"}


def test_first_sync_without_base_treats_differences_as_conflicts() -> None:
    result = merge_row(None, {"name": "A", "note": "x"}, {"name": "A", "note": "y"}, REVIEW)
    assert [c.field for c in result.conflicts] == ["note"] and "note" not in result.agreed


def test_fields_missing_from_the_sheet_belong_to_the_app() -> None:
    result = merge_row(BASE, {**BASE, "email": "a@b.c"}, {"name": "Acme", "phone": "13800000001", "note": "old"},
                       REVIEW)
    assert not result.changed and result.agreed["email"] == "a@b.c"
