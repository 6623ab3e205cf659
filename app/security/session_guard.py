"""Per-request session rules: the second factor at login, forced enrolment, headers.

* After a password login, a user who needs a code (``totp.login_factor_required``) can
  only reach the code page until they type one.
* A user whose role requires an authenticator and who has none can only reach the
  enrolment page (and log out).
* The API login hands out a token only to users who pass the same two rules.
* Sessions are bound to the account's session epoch at login; logging out raises it, so
  every session and API token of the account ends server-side (``sessions``).
* Login POSTs pass the password budgets of ``login_guard`` first.
* A ``StepUpRequired`` nobody caught (e.g. the flush hook of ``app.services.accounts``)
  becomes the step-up page or the API's 401/403/429 answer, never a 500.
* Every response carries the security headers (CSP with our own assets only, no framing).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Flask, current_app, flash, g, jsonify, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, user_logged_in, user_logged_out

from app.extensions import appbuilder, db
from app.security import login_guard, sessions, step_up, totp
from app.security.step_up import StepUpRequired
from app.security.totp import Outcome
from app.services import audit

PENDING = "_totp_login_pending"
CHECKED = "_totp_policy_checked"
#: Reachable while a code or an enrolment is still owed.
OPEN_ENDPOINTS = {
    "static", "appbuilder.static", "AuthDBView.login", "AuthDBView.logout", "LocaleView.index",
    "TotpView.login", "TotpView.enrol", "TotpView.index",
}
API_LOGIN = "SecurityApi.login"


def _on_login(app: Flask, user: Any) -> None:
    sessions.stamp(user)
    if totp.login_factor_required(user):
        session[PENDING] = user.id


def _on_logout(app: Flask, user: Any) -> None:
    """Logging out ends every session and API token of the account, not just this cookie:
    a copy of the cookie (or a token) taken before the logout is refused from now on."""
    session.pop(PENDING, None)
    session.pop(sessions.EPOCH_KEY, None)
    step_up.revoke_session_grant()
    if user is not None and not getattr(user, "is_anonymous", True):
        sessions.end_all(user.id)
        audit.record("logout", user, user=user)
        appbuilder.session.commit()


def _step_up_refused(exc: StepUpRequired) -> Any:
    db.session.rollback()  # the refused write may have left the transaction half-flushed
    return step_up.refusal(exc)


def enforce_second_factor() -> Any:
    if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None or step_up.is_api_request():
        return None
    if not current_user.is_authenticated:
        return None
    if session.get(PENDING) == current_user.id:
        return redirect(url_for("TotpView.login", next=request.full_path))
    # The enrolment rule costs two queries: re-checked once a minute per session.
    checked = [current_user.id, int(time.time() // 60)]
    if session.get(CHECKED) == checked:
        return None
    if totp.enrolment_required(current_user) and not totp.is_enrolled(current_user):
        flash(str(_l("Your role requires two-factor authentication. Set up your authenticator app to continue.")),
              "warning")
        return redirect(url_for("TotpView.enrol"))
    session[CHECKED] = checked
    return None


def _api_login_refusal(status: int, message: Any) -> Any:
    response = jsonify(message=str(message))
    response.status_code = status
    return response


def guard_api_login(response: Any) -> Any:
    """A token is only released after the same second-factor rules as the login form."""
    if request.endpoint != API_LOGIN or response.status_code != 200:
        return response
    payload = request.get_json(silent=True) or {}
    user = appbuilder.sm.find_user(username=payload.get("username"))
    if user is None:
        return response
    if totp.enrolment_required(user) and not totp.is_enrolled(user):
        return _api_login_refusal(403, _l("Your role requires two-factor authentication: enrol in the web app first."))
    if not totp.login_factor_required(user):
        return response
    code = request.headers.get(step_up.CODE_HEADER)  # FAB's login schema refuses extra JSON fields
    if not code:
        return _api_login_refusal(401, _l("A TOTP code is required: send it in the X-TOTP-Code header."))
    outcome = totp.verify(user, code, purpose="login_totp")
    if outcome is not Outcome.OK:
        status = 429 if outcome in (Outcome.LOCKED, Outcome.LIMITED) else 401
        return _api_login_refusal(status, step_up.MESSAGES[outcome])
    return response


def csp_nonce() -> str:
    """Per-request nonce; FAB's templates put it on every inline script (``baselib.get_nonce``)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def security_headers(response: Any) -> Any:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", current_app.config["CRM_CONTENT_SECURITY_POLICY"].format(
        nonce=csp_nonce()))
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def init_app(app: Flask) -> None:
    app.before_request(login_guard.guard_login)
    app.before_request(enforce_second_factor)
    app.register_error_handler(StepUpRequired, _step_up_refused)
    app.after_request(guard_api_login)
    app.after_request(security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    user_logged_in.connect(_on_login, app)
    user_logged_out.connect(_on_logout, app)
