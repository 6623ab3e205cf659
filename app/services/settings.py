"""Admin settings: each declared once (key, kind, default, bounds, label), stored in ``crm_setting``.

A module that needs a threshold declares it (``declare``) at import; the admin's
*Organisation → Settings* page lists every declared setting with its label and help in
the reader's language and saves through ``save`` (checked, audited). Readers call ``get``,
which answers the stored value or the declared default. Issue 14 declares the reminder
thresholds (003 第三步 3: birthday 3 days, contract 30 days, stale 7 days; 001: follow-up
within 24 hours) and the required follow-up fields (000 跟进记录必填字段).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models.activities import CrmSetting
from app.services import audit
from app.services.errors import RuleViolation
from app.services.validation import clean_line

INT, BOOL, CHOICES, CHOICE, TEXT = "int", "bool", "choices", "choice", "text"


@dataclass(frozen=True)
class Setting:
    """One setting. ``kind``: ``int`` (``low``..``high``), ``bool``, ``choices`` (a
    subset of ``options``: value -> lazy label, stored as a list in ``options`` order),
    ``choice`` (one of ``options``) or ``text`` (at most ``high`` characters, default 200,
    matching the regular expression ``pattern`` when given; ``pattern_message`` says why
    not). ``page``: where an admin edits it ("settings" is Organisation → Settings; another
    page, e.g. "company", lists its own)."""

    key: str
    kind: str
    default: Any
    label: Any
    help: Any = ""
    low: int | None = None
    high: int | None = None
    options: dict[str, Any] | None = None
    section: Any = ""
    pattern: str | None = None
    pattern_message: Any = ""
    page: str = "settings"


#: key -> declaration, in declaration order (the settings page keeps it).
SETTINGS: dict[str, Setting] = {}


def declare(setting: Setting) -> Setting:
    """Register a setting (re-declaring a key replaces it); returns it."""
    SETTINGS[setting.key] = setting
    return setting


def get(key: str) -> Any:
    """The stored value of ``key``, or its declared default (``KeyError``: undeclared).
    A stored value the declaration no longer accepts reads as the default.

    Read once per transaction (rules that run per imported row ask for the same setting
    thousands of times): the session forgets it at commit, rollback and ``save``, so a
    long-lived worker sees another process's change at its next transaction."""
    setting = SETTINGS[key]
    cache = db.session.info.setdefault(_CACHE, {})
    if key not in cache:
        raw = db.session.scalar(select(CrmSetting.value).where(CrmSetting.key == key))
        try:
            cache[key] = setting.default if raw is None else coerce(setting, json.loads(raw))
        except (ValueError, TypeError):
            cache[key] = setting.default
    return cache[key]


_CACHE = "crm_settings"
_CHANGED = "crm_settings_changed"
#: key -> callbacks run with the new value after a commit that changed it (``watch``).
_WATCHERS: dict[str, list[Callable[[Any], None]]] = {}


def watch(key: str, callback: Callable[[Any], None]) -> None:
    """Call ``callback(new value)`` in this process after each commit whose ``save`` changed
    ``key`` (a rolled-back save calls nothing): readers that keep a value in memory."""
    _WATCHERS.setdefault(key, []).append(callback)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_CACHE, None)


@event.listens_for(Session, "after_commit")
def _tell_watchers(session: Session) -> None:
    for key, value in session.info.pop(_CHANGED, {}).items():
        for callback in _WATCHERS.get(key, ()):
            callback(value)


@event.listens_for(Session, "after_rollback")
def _forget_changes(session: Session) -> None:
    session.info.pop(_CHANGED, None)


def coerce(setting: Setting, value: Any) -> Any:
    """``value`` as ``setting`` stores it; ``ValueError`` with a message for a bad one.

    Form text ("7", "on", ["content", "next_step"]) and JSON values are both accepted."""
    if setting.kind == INT:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError(str(_l("Enter a whole number."))) from None
        if (setting.low is not None and number < setting.low) or (setting.high is not None and number > setting.high):
            raise ValueError(str(_l("Enter a number from %(low)d to %(high)d.", low=setting.low, high=setting.high)))
        return number
    if setting.kind == BOOL:
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in {"1", "true", "on", "yes", "y"}
    if setting.kind == CHOICES:
        chosen = [value] if isinstance(value, str) else list(value or ())
        unknown = [item for item in chosen if item not in (setting.options or {})]
        if unknown:
            raise ValueError(str(_l("Unknown choice: %(value)s.", value=", ".join(map(str, unknown)))))
        return [option for option in setting.options or {} if option in chosen]
    if setting.kind == CHOICE:
        if isinstance(value, list | tuple):  # stored by an older CHOICES declaration: its first item
            value = value[0] if value else setting.default
        if not isinstance(value, str) or value not in (setting.options or {}):
            raise ValueError(str(_l("Unknown choice: %(value)s.", value=value)))
        return value
    if setting.kind == TEXT:
        return _text(setting, value)
    raise ValueError(f"unknown setting kind {setting.kind!r}")


def _text(setting: Setting, value: Any) -> str:
    text = clean_line(value)
    limit = setting.high or 200
    if len(text) > limit:
        raise ValueError(str(_l("At most %(n)d characters.", n=limit)))
    if setting.pattern and text and not re.fullmatch(setting.pattern, text):
        raise ValueError(str(setting.pattern_message or _l("Not in the expected form.")))
    return text


def save(values: dict[str, Any], user: Any) -> dict[str, Any]:
    """Store the settings in ``values`` (key -> raw value) that changed: all or none.

    Raises ``RuleViolation`` (key -> message) for unknown keys or bad values. Each change
    is audited (``setting_change``, old and new value). Returns key -> stored value of
    the changes. The caller commits."""
    errors, clean = {}, {}
    for key, raw in values.items():
        setting = SETTINGS.get(key)
        if setting is None:
            errors[key] = str(_l("Unknown setting."))
            continue
        try:
            clean[key] = coerce(setting, raw)
        except ValueError as exc:
            errors[key] = str(exc)
    if errors:
        raise RuleViolation(errors)
    changed = {}
    for key, value in clean.items():
        old = get(key)
        if value == old:
            continue
        row = db.session.get(CrmSetting, key) or CrmSetting(key=key)
        row.value = json.dumps(value, ensure_ascii=False)
        row.changed_by_id = getattr(user, "id", None)
        db.session.add(row)
        audit.record("setting_change", None, {"key": key, "old": old, "new": value})
        changed[key] = value
    db.session.info.setdefault(_CHANGED, {}).update(changed)
    db.session.flush()
    db.session.info.pop(_CACHE, None)
    return changed
