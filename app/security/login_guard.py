"""Password throttling: wrong passwords are budgeted per (account, address) and per account.

A budget per account alone lets anyone lock a colleague out: ten wrong passwords from
anywhere and the real user gets 429 on the right one. So:

* ``CRM_LOGIN_LIMIT_PER_USERNAME_IP`` (5 per 15 minutes): wrong passwords for one account
  from one address. Past it that address gets 429 for that account; the real user, from
  their own address, is not affected. A successful login clears it.
* ``CRM_LOGIN_LIMIT_PER_USERNAME`` (50 per hour): wrong passwords for one account from all
  addresses together, for attacks spread over many addresses. The first time it runs out
  in a window a *Security alert* (``login_throttled``) is raised; until the window ends,
  only addresses the account logged in from in the last ``CRM_LOGIN_KNOWN_ADDRESS_DAYS``
  days (audit log) may try, each still within its own budget.

Only failures spend the budgets, so a busy office is never throttled by its own logins.
The counters live in Flask-Limiter's storage (``RATELIMIT_STORAGE_URI``; Redis with several
workers). The form login, ``POST /api/v1/security/login`` and every "type your current
password" check (own password change, enrolment) share them. FAB's per-address limit on
all login requests (``AUTH_RATE_LIMIT``) stays in front.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app, flash, has_request_context, jsonify, request
from flask_babel import lazy_gettext as _l
from limits import RateLimitItem, parse
from sqlalchemy import exists, select

from app.clock import utc_now
from app.extensions import appbuilder, db
from app.models.audit import AuditLog
from app.services import audit

PAIR = "login-fail-pair"
ACCOUNT = "login-fail-account"
#: Audit actions: the alert (once per window) and each attempt refused by a budget.
ALERT = "login_throttled"
REFUSED = "login_refused"
LOGIN_ENDPOINTS = {"AuthDBView.login", "SecurityApi.login"}

MESSAGES = {
    "address": _l("Too many wrong passwords for this account from your address. Try again in %(minutes)d minute(s)."),
    "account": _l("Too many wrong passwords for this account from many addresses: for now it only accepts logins "
                  "from addresses it used before. Try again in %(minutes)d minute(s) or ask an administrator."),
}


@dataclass(frozen=True)
class Throttle:
    """Why an attempt is refused (``scope``: "address" or "account") and for how long (seconds)."""

    scope: str
    retry_after: int

    def message(self) -> str:
        return str(MESSAGES[self.scope] % {"minutes": max(1, -(-self.retry_after // 60))})


def _limits() -> tuple[RateLimitItem, RateLimitItem]:
    config = current_app.config
    return parse(config["CRM_LOGIN_LIMIT_PER_USERNAME_IP"]), parse(config["CRM_LOGIN_LIMIT_PER_USERNAME"])


def _strategy() -> Any:
    return appbuilder.sm.limiter.limiter


def _address() -> str:
    return (request.remote_addr or "unknown") if has_request_context() else "local"


def account_key(username: str | None, user: Any = None) -> str:
    """One key per account whichever name it was tried with (username, e-mail, case)."""
    if user is not None:
        return f"id:{user.id}"
    return "name:" + (username or "").strip().lower()[:64]


def resolve(username: str | None) -> Any:
    """The account a login name points at (username or e-mail, as FAB's login), or None."""
    name = (username or "").strip()
    if not name:
        return None
    sm = appbuilder.sm
    return sm.find_user(username=name) or sm.find_user(email=name)


def known_address(user: Any, ip: str) -> bool:
    """Whether ``user`` logged in from ``ip`` in the last ``CRM_LOGIN_KNOWN_ADDRESS_DAYS`` days."""
    if user is None:
        return False
    since = utc_now() - timedelta(days=current_app.config["CRM_LOGIN_KNOWN_ADDRESS_DAYS"])
    return bool(db.session.scalar(select(exists().where(
        AuditLog.action == "login", AuditLog.user_id == user.id, AuditLog.ip == ip, AuditLog.created_at >= since,
    ))))


def _retry_after(item: RateLimitItem, *keys: str) -> int:
    reset_time, _remaining = _strategy().get_window_stats(item, *keys)
    return max(1, int(reset_time - time.time()))


def throttled(user: Any, username: str | None) -> Throttle | None:
    """The reason a password attempt for this account from this address is refused now, or None."""
    pair, account = _limits()
    key, ip = account_key(username, user), _address()
    strategy = _strategy()
    if not strategy.test(pair, PAIR, key, ip):
        return Throttle("address", _retry_after(pair, PAIR, key, ip))
    if not strategy.test(account, ACCOUNT, key) and not known_address(user, ip):
        return Throttle("account", _retry_after(account, ACCOUNT, key))
    return None


def failed(user: Any, username: str | None) -> None:
    """Spend both budgets for a wrong password; raise the alert when the account's runs out.

    The alert joins the caller's transaction (the caller commits).
    """
    pair, account = _limits()
    key, ip = account_key(username, user), _address()
    strategy = _strategy()
    strategy.hit(pair, PAIR, key, ip)
    was_open = strategy.test(account, ACCOUNT, key)
    strategy.hit(account, ACCOUNT, key)
    if was_open and not strategy.test(account, ACCOUNT, key) and user is not None:
        audit.record(ALERT, user, {"limit": str(account), "last_address": ip})


def succeeded(user: Any, username: str | None) -> None:
    """A right password clears this address's budget for the account."""
    pair, _account = _limits()
    _strategy().clear(pair, PAIR, account_key(username, user), _address())


def _posted_username() -> str | None:
    if request.is_json:
        payload = request.get_json(silent=True)
        name = payload.get("username") if isinstance(payload, dict) else None
    else:
        name = request.form.get("username")
    return name if isinstance(name, str) and name.strip() else None


def _refusal(throttle: Throttle) -> Any:
    message = throttle.message()
    if request.endpoint == "SecurityApi.login":
        response = jsonify(message=message)
    else:
        from flask_appbuilder.security.forms import LoginForm_db

        flash(message, "danger")
        view = appbuilder.sm.auth_view
        response = current_app.make_response(view.render_template(
            view.login_template, title=view.title, form=LoginForm_db(), appbuilder=appbuilder))
    response.status_code = 429
    response.headers["Retry-After"] = str(throttle.retry_after)
    return response


def guard_login() -> Any:
    """``before_request``: refuse a login POST whose (account, address) is throttled."""
    if request.method != "POST" or request.endpoint not in LOGIN_ENDPOINTS:
        return None
    username = _posted_username()
    if username is None:
        return None
    user = resolve(username)
    throttle = throttled(user, username)
    if throttle is None:
        return None
    audit.record(REFUSED, user, {"username": username[:64], "scope": throttle.scope})
    db.session.commit()
    return _refusal(throttle)
