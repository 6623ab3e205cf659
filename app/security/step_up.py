"""Step-up for sensitive actions: one registry, one check, for screens and the REST API.

A feature declares its action once (``declare("customer.bulk_archive", ...)``) and then
either decorates a view method with ``@sensitive(name)`` or calls ``require(name)`` where
the sensitivity depends on the data (e.g. archiving a *won* customer). ``require``
returns ``None`` when the user may go on, or the response to send instead:

* a fresh step-up (a grant for this login session, ``TOTP_STEP_UP_MINUTES`` long) passes;
* otherwise a code is taken from the ``X-TOTP-Code`` header, the JSON field
  ``totp_code`` or the form field ``_step_up_code`` and checked by ``totp.verify``;
* screens without a good code get an intermediate page that re-posts the original
  form (data intact) with the code; the API gets a 401/403/429 JSON answer.

The grant is keyed by the browser session (a random id in the signed session cookie)
or the JWT's ``jti``, so a step-up never carries over to another session or token.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, flash, g, has_request_context, jsonify, redirect, render_template, request, session
from flask_appbuilder import expose, has_access
from flask_babel import lazy_gettext as _l
from flask_jwt_extended import get_jwt, verify_jwt_in_request
from sqlalchemy import delete

from app.extensions import appbuilder, db
from app.models.security import StepUpGrant
from app.security import totp
from app.security.totp import Outcome

CODE_FIELD = "_step_up_code"
CODE_HEADER = "X-TOTP-Code"


@dataclass(frozen=True)
class SensitiveAction:
    name: str
    label: Any
    where: Any


SENSITIVE: dict[str, SensitiveAction] = {}


def declare(name: str, label: Any, where: Any) -> str:
    """Register an action name (listed on the admin page "Sensitive actions")."""
    SENSITIVE[name] = SensitiveAction(name, label, where)
    return name


MESSAGES = {
    Outcome.WRONG: _l("That code is not valid. Check the time on your phone and try again."),
    Outcome.REPLAYED: _l("That code was already used. Wait for the next one."),
    Outcome.LOCKED: _l("Too many wrong codes: codes are locked for a while. An administrator has been alerted."),
    Outcome.LIMITED: _l("Too many wrong codes today. Try again later or ask an administrator."),
    Outcome.NOT_ENROLLED: _l("This action needs two-factor authentication: set up an authenticator app first."),
}


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def session_key() -> str:
    if is_api_request():
        verify_jwt_in_request(optional=True)
        jti = get_jwt().get("jti")
        if jti:
            return f"jwt:{jti}"
    if "_step_up_sid" not in session:
        session["_step_up_sid"] = secrets.token_urlsafe(24)
    return f"web:{session['_step_up_sid']}"


def has_fresh_grant(user: Any) -> bool:
    grant = db.session.get(StepUpGrant, session_key())
    return grant is not None and grant.user_id == user.id and grant.expires_at > totp.now()


def grant(user: Any) -> None:
    key = session_key()
    db.session.execute(delete(StepUpGrant).where(
        (StepUpGrant.session_key == key) | (StepUpGrant.expires_at < totp.now())
    ))
    minutes = current_app.config["TOTP_STEP_UP_MINUTES"]
    db.session.add(StepUpGrant(session_key=key, user_id=user.id, expires_at=totp.now() + timedelta(minutes=minutes)))
    db.session.commit()


def revoke_session_grant() -> None:
    """Called at logout: a step-up never outlives the session that earned it."""
    if "_step_up_sid" in session:
        db.session.execute(delete(StepUpGrant).where(StepUpGrant.session_key == f"web:{session['_step_up_sid']}"))
        db.session.commit()


def submitted_code() -> str | None:
    code = request.headers.get(CODE_HEADER)
    if not code and request.is_json:
        payload = request.get_json(silent=True)
        code = payload.get("totp_code") if isinstance(payload, dict) else None
    if not code and request.method == "POST":
        code = request.form.get(CODE_FIELD)
    return code or None


def _api_refusal(name: str, outcome: Outcome | None) -> Any:
    if outcome is None:
        status, message = 401, _l("Step-up required: send a fresh TOTP code in the X-TOTP-Code header.")
    elif outcome is Outcome.NOT_ENROLLED:
        status, message = 401, MESSAGES[outcome]
    else:
        status = 429 if outcome in (Outcome.LOCKED, Outcome.LIMITED) else 403
        message = MESSAGES[outcome]
    response = jsonify(message=str(message), step_up_required=name)
    response.status_code = status
    return response


def _page(name: str, outcome: Outcome | None) -> Any:
    """The intermediate page: asks for the code and carries the original request along."""
    action = SENSITIVE.get(name)
    fields = [(k, v) for k, values in request.form.lists() for v in values if k not in (CODE_FIELD, "csrf_token")]
    verify_in_place = request.method == "POST"
    html = render_template(
        "crm/step_up.html", appbuilder=appbuilder, base_template=appbuilder.base_template, action=action, error=MESSAGES.get(outcome) if outcome else None,
        fields=fields, verify_in_place=verify_in_place, target=request.full_path if not verify_in_place else request.url,
        enrolled=totp.is_enrolled(g.user), code_field=CODE_FIELD, locked=outcome in (Outcome.LOCKED, Outcome.LIMITED),
    )
    return html, 401 if outcome in (None, Outcome.NOT_ENROLLED) else 403


def check(user: Any, name: str, code: str | None) -> Outcome | None:
    """Verify a code for ``name`` and open a grant on success (None when no code was sent)."""
    if code is None:
        return None
    outcome = totp.verify(user, code, purpose="step_up", action=name)
    if outcome is Outcome.OK:
        grant(user)
    return outcome


class StepUpRequired(Exception):
    """Raised by a use case (``app/services``) when ``action`` needs a fresh code first.

    ``outcome`` is why the code was refused (None: no code was sent). Screens turn it into
    the intermediate page, the REST API into a 401/403/429 JSON answer (``refusal``).
    """

    def __init__(self, action: str, outcome: Outcome | None = None) -> None:
        super().__init__(action)
        self.action, self.outcome = action, outcome


def demand(name: str, user: Any = None) -> None:
    """Use cases call this before a sensitive write: raise ``StepUpRequired`` unless the
    current request holds a fresh grant or carries a good code.

    Outside a request (scheduled jobs, sync ticks, scripts) nothing is asked here: the
    person who set the job up was asked when they saved it.
    """
    if not has_request_context():
        return
    user = user if user is not None else g.user
    if has_fresh_grant(user):
        return
    if not totp.is_enrolled(user):
        raise StepUpRequired(name, Outcome.NOT_ENROLLED)
    outcome = check(user, name, submitted_code())
    if outcome is not Outcome.OK:
        raise StepUpRequired(name, outcome)


def refusal(exc: StepUpRequired) -> Any:
    """The response a screen or the API sends for a ``StepUpRequired``."""
    if is_api_request():
        return _api_refusal(exc.action, exc.outcome)
    return _page(exc.action, exc.outcome)


def require(name: str) -> Any:
    """``None`` if the current user may perform ``name`` now, else the response to return."""
    try:
        demand(name)
    except StepUpRequired as exc:
        return refusal(exc)
    return None


def sensitive(name: str, when: Callable[..., bool] | None = None) -> Callable:
    """Decorate a view method: ``when(self, *args, **kwargs)`` limits it to some requests."""

    def decorator(method: Callable) -> Callable:
        @wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if when is None or when(self, *args, **kwargs):
                refusal = require(name)
                if refusal is not None:
                    return refusal
            return method(self, *args, **kwargs)

        return wrapper

    return decorator


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site, else ``default``: where a form goes back to
    (after a step-up, a login code, Done, Mark read). Browsers drop tabs and newlines and
    read a backslash as a slash, so "/", a tab, "/evil.example" would leave the site, and a
    newline in a Location header is a server error: control characters and backslashes are
    refused."""
    if not target or any(ord(ch) < 0x20 or ch in "\\\x7f" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


class SensitiveWritesMixin:
    """For FAB ModelViews whose writes are all (or partly) sensitive: roles, scopes, users.

    Set ``sensitive_action``; override ``sensitive_name(kind, pk)`` to narrow it or pick
    another action (``kind`` is add / edit / delete / action). A GET of add or edit only
    shows the form: never asked. Delete and actions are asked whatever the method (FAB
    runs them on GET when CSRF protection is off).
    """

    sensitive_action = ""

    def sensitive_name(self, kind: str, pk: Any = None) -> str | None:
        mutating = request.method == "POST" or kind in ("delete", "action")
        return self.sensitive_action if mutating else None

    def _guarded(self, kind: str, pk: Any = None) -> Any:
        name = self.sensitive_name(kind, pk)
        return require(name) if name else None

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self) -> Any:
        return self._guarded("add") or super().add()

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk: Any) -> Any:
        return self._guarded("edit", pk) or super().edit(pk)

    @expose("/delete/<pk>", methods=["GET", "POST"])
    @has_access
    def delete(self, pk: Any) -> Any:
        return self._guarded("delete", pk) or super().delete(pk)

    @expose("/action/<string:name>/<pk>", methods=["GET", "POST"])
    def action(self, name: str, pk: Any) -> Any:
        return self._guarded("action", pk) or super().action(name, pk)

    @expose("/action_post", methods=["POST"])
    def action_post(self) -> Any:
        """FAB's bulk action, but an unknown action name, or several records for a
        single-record action, is a message instead of a 500."""
        found = self.actions.get(request.form.get("action", ""))
        if found is None or (not found.multiple and len(request.form.getlist("rowid")) != 1):
            flash(str(_l("Pick an action from the list, with one record for a single-record action.")), "danger")
            return redirect(self.get_redirect())
        return self._guarded("action") or super().action_post()
