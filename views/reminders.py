"""The birthday greeting page (issue 14): ``/greeting/<contact id>``, reached from the
birthday notification and the contact.

GET shows the greeting template prefilled from the contact and the sender (``?language=zh``
switches the template); POST queues the edited e-mail through ``greetings.send_greeting``.
A contact outside the sender's scope is "not found" (404), as everywhere.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_babel import lazy_gettext as _l

import app.services.reminders  # noqa: F401  (the reminder rules, their settings and jobs)
from app.extensions import db
from app.services import greetings
from app.services.errors import NotFound, RuleViolation


class GreetingView(BaseView):
    """Compose and send a greeting e-mail to one contact."""

    route_base = "/greeting"
    class_permission_name = "Greeting"
    method_permission_name = {"compose": "send"}
    default_view = "compose"

    @expose("/<pk>", methods=["GET", "POST"])
    @has_access
    def compose(self, pk: Any) -> Any:
        """GET: the prefilled template; POST: send it (the form again with messages when refused)."""
        language = request.values.get("language")
        try:
            draft = greetings.draft(pk, g.user, language)
        except NotFound:
            abort(404)
        except RuleViolation as exc:
            return self._refused(exc)
        form = {"subject": draft.subject, "body": draft.body}
        errors: dict[str, str] = {}
        if request.method == "POST":
            form = {"subject": request.form.get("subject", ""), "body": request.form.get("body", "")}
            try:
                greetings.send_greeting(pk, g.user, form["subject"], form["body"], draft.language)
            except RuleViolation as exc:
                db.session.rollback()
                errors = {key: str(message) for key, message in exc.errors.items()}
            else:
                db.session.commit()
                flash(str(_l("The greeting to %(name)s is queued for sending.", name=draft.contact.name)), "success")
                return redirect(url_for(f"{self.endpoint}.compose", pk=draft.contact.id, language=draft.language))
        page = self.render_template("crm/greeting.html", draft=draft, form=form, errors=errors,
                                    languages=greetings.language_names(), title=_l("Birthday greeting"))
        return (page, 400) if errors else page

    def _refused(self, exc: RuleViolation) -> Any:
        db.session.rollback()
        for message in exc.errors.values():
            flash(str(message), "danger")
        return self.render_template("crm/greeting.html", draft=None, form={}, errors={},
                                    languages=greetings.language_names(), title=_l("Birthday greeting")), 400


def register_reminders(appbuilder: AppBuilder) -> None:
    """Add the greeting page (no menu: reached from the birthday notification and the contact)."""
    appbuilder.add_view_no_menu(GreetingView)
