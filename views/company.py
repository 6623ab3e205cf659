"""Organisation → Company profile (issue 19, 003 第一步): company name, logo, time zone, currency,
date format, default language and licensed user count on one form, Admin only.

The settings save through ``settings.save`` (checked, all or none, audited); the logo
through ``company.save_logo`` (checked, re-encoded). A bad value anywhere stores nothing
and is shown next to its field (400). ``/company/logo`` serves the logo to everyone (the
login page shows it) with an ETag and a long cache (the navbar's link carries its version).
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import abort, current_app, flash, g, request
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.extensions import db
from app.models.org import CrmUser
from app.services import company, settings
from app.services.errors import RuleViolation
from views.settings import settings_form, submitted

PAGE = "company"
#: A year: the navbar's link changes with the logo (``?v=`` its checksum).
LOGO_MAX_AGE = 365 * 24 * 3600


def _save(form: Any, files: Any) -> dict[str, str]:
    """Save the form (settings, then the logo or its removal): field -> message for each
    refusal (nothing stored then), {} after a commit."""
    errors: dict[str, str] = {}
    changed: dict[str, Any] = {}
    try:
        changed = settings.save(submitted(form, PAGE), g.user)
    except RuleViolation as exc:
        errors.update({key: str(message) for key, message in exc.errors.items()})
    upload = files.get("logo")
    try:
        if upload is not None and upload.filename:
            company.save_logo(upload.read(company.LOGO_MAX_BYTES + 1), g.user)
            changed["logo"] = True
        elif form.get("remove_logo") == "on" and company.remove_logo(g.user):
            changed["logo"] = True
    except RuleViolation as exc:
        errors.update({key: str(message) for key, message in exc.errors.items()})
    if errors:
        db.session.rollback()
        company.refresh(force=True)  # a logo stored in memory before the rollback
        return errors
    db.session.commit()
    flash(str(_l("Company settings saved (%(n)d changed).", n=len(changed))), "success")
    _warn_over_licence()
    return {}


def _warn_over_licence() -> None:
    """A licensed count below the active users is allowed (the admin may be about to
    deactivate some) but said at once: nobody can be added or re-activated until then."""
    limit = company.licensed_users()
    active = db.session.scalar(select(func.count()).select_from(CrmUser).where(CrmUser.active.is_(True))) or 0
    if limit and active > limit:
        flash(str(_l("%(active)d users are active but the licence allows %(n)d: deactivate %(over)d of them; "
                     "until then no user can be added or re-activated.", active=active, n=limit,
                     over=active - limit)), "warning")


class CompanyView(BaseView):
    """The Company page (``/company/``) and the public logo (``/company/logo``)."""

    route_base = "/company"
    class_permission_name = "Company"
    method_permission_name = {"index": "edit"}
    default_view = "index"

    @expose("/", methods=["GET", "POST"])
    @has_access
    def index(self) -> Any:
        """GET: the form; POST: save it (400 with the messages by field on a bad value)."""
        return settings_form(self, PAGE, "crm/company.html", lambda: _save(request.form, request.files),
                             lambda: {"brand": company.brand(), "max_kb": company.LOGO_MAX_BYTES // 1024,
                                      "title": _l("Company profile")})

    @expose("/logo")
    def logo(self) -> Any:
        """The logo (PNG) for everyone, with an ETag (304 when unchanged); 404 without one."""
        stored = company.logo()
        if stored is None:
            abort(404)
        data, content_type = stored
        response = current_app.response_class(data, mimetype=content_type)
        response.set_etag(hashlib.sha256(data).hexdigest())
        response.cache_control.public = True
        response.cache_control.max_age = LOGO_MAX_AGE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response.make_conditional(request)


def register(appbuilder: AppBuilder) -> None:
    """Add *Organisation → Company profile* (Admin only: no role but Admin is granted it)."""
    appbuilder.add_view(CompanyView, "Company", label=_l("Company profile"), icon="fa-building",
                        category="Organisation", category_label=_l("Organisation"), category_icon="fa-users")
