"""Screens for issue 14 (reminders): filled in by this issue's work."""

from __future__ import annotations

from flask_appbuilder import AppBuilder


def register_reminders(appbuilder: AppBuilder) -> None:
    """Add this area's views (the birthday greeting) to ``appbuilder``."""
