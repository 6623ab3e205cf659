"""Organisation → Settings: every declared admin setting (``app.services.settings``), Admin only.

The page lists each setting with its label, help and current value as a typed input
(number, checkbox, checkboxes); a save goes through ``settings.save`` (checked, all or
none, each change audited). A bad value is shown next to its field, nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
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
        return settings_form(self, "settings", "crm/settings.html", _save_settings,
                             lambda: {"title": _l("Settings")})


def _save_settings() -> dict[str, str]:
    try:
        changed = settings.save(submitted(request.form), g.user)
    except RuleViolation as exc:
        db.session.rollback()
        return {key: str(message) for key, message in exc.errors.items()}
    db.session.commit()
    flash(str(_l("Settings saved (%(n)d changed).", n=len(changed))), "success")
    return {}


def settings_form(view: BaseView, page: str, template: str, save: Callable[[], dict[str, str]],
                  context: Callable[[], dict[str, Any]]) -> Any:
    """One settings page (``page``: the settings declared for it) for ``view``'s index: GET
    the form with the stored values; POST ``save()`` -> field -> message ({} after its
    commit): back to the page, else the form again with what was typed and status 400.
    ``context()``: the template's other values, read after the save."""
    errors: dict[str, str] = {}
    values = {key: settings.get(key) for key in on_page(page)}
    if request.method == "POST":
        errors = save()
        if not errors:
            return redirect(url_for(f"{view.endpoint}.index"))
        values = {**values, **submitted(request.form, page)}
    html = view.render_template(template, settings=list(on_page(page).values()), values=values, errors=errors,
                                kinds=settings, **context())
    return (html, 400) if errors else html


def register_settings(appbuilder: AppBuilder) -> None:
    """Add *Organisation → Settings* (Admin only: no role but Admin is granted it)."""
    appbuilder.add_view(CrmSettingsView, "Settings", label=_l("Settings"), icon="fa-sliders",
                        category="Organisation", category_label=_l("Organisation"), category_icon="fa-users")
