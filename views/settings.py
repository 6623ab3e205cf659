"""Organisation → Settings: every declared admin setting (``app.services.settings``), Admin only.

The page lists each setting with its label, help and current value as a typed input
(number, checkbox, checkboxes); a save goes through ``settings.save`` (checked, all or
none, each change audited). A bad value is shown next to its field, nothing is stored.
"""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_babel import lazy_gettext as _l

import app.services.reminders  # noqa: F401  (declares the reminder thresholds)
from app.extensions import db
from app.services import settings
from app.services.errors import RuleViolation


def on_page(page: str = "settings") -> dict[str, settings.Setting]:
    """The declared settings edited on ``page`` (key -> declaration, in declaration order)."""
    return {key: setting for key, setting in settings.SETTINGS.items() if setting.page == page}


def submitted(form: Any, page: str = "settings") -> dict[str, Any]:
    """Form fields -> raw setting values, one per setting of ``page``: an unticked checkbox
    is ``False``, unticked choices an empty list."""
    values: dict[str, Any] = {}
    for key, setting in on_page(page).items():
        if setting.kind == settings.BOOL:
            values[key] = form.get(key) == "on"
        elif setting.kind == settings.CHOICES:
            values[key] = form.getlist(key)
        else:
            values[key] = form.get(key, "")
    return values


class CrmSettingsView(BaseView):
    """The settings page (``/settings/``)."""

    route_base = "/settings"
    class_permission_name = "CrmSettings"
    method_permission_name = {"index": "edit"}
    default_view = "index"

    @expose("/", methods=["GET", "POST"])
    @has_access
    def index(self) -> Any:
        """GET: the settings; POST: save them (400 with the messages on a bad value)."""
        errors: dict[str, str] = {}
        values = {key: settings.get(key) for key in on_page()}
        if request.method == "POST":
            values = submitted(request.form)
            try:
                changed = settings.save(values, g.user)
            except RuleViolation as exc:
                db.session.rollback()
                errors = {key: str(message) for key, message in exc.errors.items()}
            else:
                db.session.commit()
                flash(str(_l("Settings saved (%(n)d changed).", n=len(changed))), "success")
                return redirect(url_for(f"{self.endpoint}.index"))
        page = self.render_template("crm/settings.html", settings=list(on_page().values()), values=values,
                                    errors=errors, kinds=settings, title=_l("Settings"))
        return (page, 400) if errors else page


def register_settings(appbuilder: AppBuilder) -> None:
    """Add *Organisation → Settings* (Admin only: no role but Admin is granted it)."""
    appbuilder.add_view(CrmSettingsView, "Settings", label=_l("Settings"), icon="fa-sliders",
                        category="Organisation", category_label=_l("Organisation"), category_icon="fa-users")
