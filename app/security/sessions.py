"""Ending sessions and API tokens server-side: one epoch per account.

Flask keeps the session in a signed cookie, so a copy of the cookie (or of a JWT) keeps
working until it expires unless the server can tell it is stale. Every browser session
and every token therefore carries the account's ``session_epoch`` from when it was made
(``stamp`` at login, ``token_claims`` when a token is issued), and the user loaders
refuse one whose epoch is not the account's current one (``session_is_current``,
``token_is_current``). Raising the epoch (``end_all``) ends every session and token of
the account at once, in every worker, with no session store to keep:

* logging out (every browser and token of the account, so a cookie copied before the
  logout is refused);
* a password change or reset, a deactivation, an expiry date in the past
  (``app.services.accounts`` raises it in the same flush as the change); the user who
  changes their own password keeps their current session (``stamp`` again).
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context, session
from sqlalchemy import update

from app.extensions import db
from app.models.org import CrmUser

EPOCH_KEY = "_crm_epoch"
CLAIM = "epoch"


def current_epoch(user: Any) -> int:
    """The account's epoch (0 for a row written before the column existed)."""
    return int(getattr(user, "session_epoch", 0) or 0)


def stamp(user: Any) -> None:
    """Bind the current browser session to the account's epoch (login, own password change)."""
    if has_request_context():
        session[EPOCH_KEY] = current_epoch(user)


def session_is_current(user: Any) -> bool:
    """Whether the browser session was made under the account's current epoch.

    A session without a stamp (made before this check existed, or forged without one) is
    not current: its owner logs in again once.
    """
    return session.get(EPOCH_KEY) == current_epoch(user)


def token_claims(identity: Any) -> dict[str, int]:
    """Extra JWT claims for the user id ``identity`` (flask-jwt-extended's claims loader)."""
    try:
        user = db.session.get(CrmUser, int(identity))
    except (TypeError, ValueError):
        user = None
    return {CLAIM: current_epoch(user)} if user is not None else {}


def token_is_current(user: Any, claims: dict[str, Any]) -> bool:
    """Whether a decoded JWT was issued under the account's current epoch."""
    return claims.get(CLAIM) == current_epoch(user)


def end_all(user_id: int) -> None:
    """Raise the account's epoch: every session and token issued so far stops working.

    Joins the caller's transaction (the caller commits).
    """
    db.session.execute(
        update(CrmUser).where(CrmUser.id == user_id).values(session_epoch=CrmUser.session_epoch + 1)
    )
