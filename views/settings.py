"""Screens for issue 14 (settings): filled in by this issue's work."""

from __future__ import annotations

from flask_appbuilder import AppBuilder


def register_settings(appbuilder: AppBuilder) -> None:
    """Add this area's views and menus to appbuilder."""
