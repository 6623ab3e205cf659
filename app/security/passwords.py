"""Password policy, plugged into FAB's complexity hook (forms) and ``add_user`` (scripts)."""

from __future__ import annotations

import re

from flask import current_app
from flask_appbuilder.exceptions import PasswordComplexityValidationError
from flask_babel import gettext

_CLASSES = (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]")


def password_policy(password: str | None) -> None:
    """At least ``CRM_PASSWORD_MIN_LENGTH`` characters from at least three of: lower case,
    upper case, digits, symbols; never empty or only spaces."""
    password = password or ""
    minimum = current_app.config.get("CRM_PASSWORD_MIN_LENGTH", 10)
    kinds = sum(1 for pattern in _CLASSES if re.search(pattern, password))
    if not password.strip() or len(password) < minimum or kinds < 3:
        raise PasswordComplexityValidationError(gettext(
            "Use at least %(n)d characters with at least three of: lower case, upper case, digits, symbols.",
            n=minimum,
        ))
