"""The three-way merge of one record, field by field (pure: no database, no sheet).

``base`` is what both sides agreed on after the last successful run, ``app`` and
``sheet`` what each side holds now, all as canonical text. A field changed on one
side flows to the other; changed on both sides to different values it is a conflict,
settled by the target's policy or kept for a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

APP_WINS, SHEET_WINS, NEWEST, REVIEW = "app", "sheet", "newest", "review"
POLICIES = (APP_WINS, SHEET_WINS, NEWEST, REVIEW)


@dataclass
class Conflict:
    field: str
    base: str | None
    app: str
    sheet: str


@dataclass
class RowMerge:
    to_app: dict[str, str] = field(default_factory=dict)  # fields to change in the app
    to_sheet: dict[str, str] = field(default_factory=dict)  # cells to rewrite in the sheet
    conflicts: list[Conflict] = field(default_factory=list)  # kept for review
    agreed: dict[str, str] = field(default_factory=dict)  # the new base once both sides hold it

    @property
    def changed(self) -> bool:
        return bool(self.to_app or self.to_sheet or self.conflicts)


def merge_row(base: dict[str, str] | None, app: dict[str, str], sheet: dict[str, str], policy: str,
              app_changed_at: datetime | None = None, sheet_changed_at: datetime | None = None) -> RowMerge:
    """Merge one record. Without a base (first sync) differing values are conflicts.

    ``newest`` compares the record's last change in the app with the sheet's (the
    workbook's modification time; unknown for Google Sheets, where the sheet counts as
    changed at the time it was read).
    """
    result = RowMerge()
    for name, app_value in app.items():
        if name not in sheet:
            result.agreed[name] = app_value  # not mapped in the sheet: the app's alone
            continue
        sheet_value = sheet[name]
        before = None if base is None else base.get(name)
        if app_value == sheet_value:
            result.agreed[name] = app_value
        elif before is not None and sheet_value == before:
            result.to_sheet[name] = result.agreed[name] = app_value
        elif before is not None and app_value == before:
            result.to_app[name] = result.agreed[name] = sheet_value
        else:
            _settle(result, Conflict(name, before, app_value, sheet_value), policy, app_changed_at, sheet_changed_at)
    return result


def _instant(value: datetime | None) -> datetime | None:
    """An aware instant; a naive one is the machine's clock (a file's modification time)."""
    return value.astimezone(UTC) if value is not None else None


def _settle(result: RowMerge, conflict: Conflict, policy: str, app_at: datetime | None,
            sheet_at: datetime | None) -> None:
    if policy == NEWEST:  # an unknown sheet time means "as late as the read": the sheet is newer
        app_at, sheet_at = _instant(app_at), _instant(sheet_at)
        policy = APP_WINS if app_at is not None and sheet_at is not None and app_at > sheet_at else SHEET_WINS
    if policy == APP_WINS:
        result.to_sheet[conflict.field] = result.agreed[conflict.field] = conflict.app
    elif policy == SHEET_WINS:
        result.to_app[conflict.field] = result.agreed[conflict.field] = conflict.sheet
    else:
        result.conflicts.append(conflict)
        if conflict.base is not None:
            result.agreed[conflict.field] = conflict.base  # undecided: the old agreement stands
