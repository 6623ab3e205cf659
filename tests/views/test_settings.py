"""Organisation → Settings (issue 14): every declared setting with its label, help and value;
saved through settings.save (checked, audited); bad values are messages, not 500s; Admin only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog
from app.services import settings


def stored(app: Any, key: str) -> Any:
    with app.app_context():
        value = settings.get(key)
        db.session.remove()
        return value


def form(**changes: Any) -> dict[str, Any]:
    """The page's form as posted: every number as shown, checkboxes ticked, plus ``changes``."""
    data: dict[str, Any] = {}
    for key, setting in settings.SETTINGS.items():
        if setting.kind == settings.BOOL:
            if setting.default:
                data[key] = "on"
        elif setting.kind == settings.CHOICES:
            data[key] = list(setting.default)
        else:
            data[key] = str(setting.default)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_the_page_lists_every_declared_setting_with_its_value(client: Any, auth: Any) -> None:
    auth.login("admin")
    page = client.get("/settings/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for key in ("birthday_days_before", "follow_up_within_hours", "contract_expiry_days",
                "digest_hour", "reminder_birthday"):
        assert f'name="{key}"' in text
    assert "Birthday reminder (days before)" in text and 'value="3"' in text
    assert "003: 3 days" in text  # the help
    assert 'href="/settings/"' in client.get("/").get_data(as_text=True)  # Organisation → Settings


def test_admin_saves_a_threshold_and_switches_a_rule_off_audited(client: Any, auth: Any, app: Any) -> None:
    auth.login("admin")
    answer = client.post("/settings/", data=form(birthday_days_before="5", reminder_birthday=None))
    assert answer.status_code == 302
    assert stored(app, "birthday_days_before") == 5 and stored(app, "reminder_birthday") is False
    with app.app_context():
        changes = db.session.scalars(select(AuditLog).where(AuditLog.action == "setting_change")).all()
        assert {entry.user_name for entry in changes} == {"admin"} and len(changes) == 2
    assert "5" in client.get("/settings/").get_data(as_text=True)


def test_a_bad_value_is_a_message_and_nothing_is_stored(client: Any, auth: Any, app: Any) -> None:
    auth.login("admin")
    answer = client.post("/settings/", data=form(birthday_days_before="many", digest_hour="24",
                                                  follow_up_within_hours="12"))
    assert answer.status_code == 400
    text = answer.get_data(as_text=True)
    assert "Enter a whole number." in text and "Enter a number from 0 to 23." in text
    assert stored(app, "follow_up_within_hours") == 24  # all or none


def test_only_admins_reach_the_settings(client: Any, auth: Any, app: Any) -> None:
    for name in ("rep_a", "manager", "viewer"):
        auth.login(name)
        assert client.get("/settings/").status_code in (302, 403)
        answer = client.post("/settings/", data=form(birthday_days_before="9"))
        assert answer.status_code in (302, 403)
        auth.logout()
    assert stored(app, "birthday_days_before") == 3
