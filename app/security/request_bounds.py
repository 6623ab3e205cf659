"""Bounds on what a request may carry before any view or query sees it.

Numbers and nesting that no record can have are refused at the door, for every route:

* an integer in a URL (``/show/<pk>``, ``/api/v1/customer/<pk>``, ``/import/<job_id>``)
  beyond the database's integer range is a 404 (it cannot name a record);
* a JSON body nested deeper than Python's parser can follow, or with an integer beyond
  that range, is not JSON (400): ids, versions and page numbers are database integers;
* FAB's rison ``q`` argument of the REST API that does not parse, nests too deep or
  carries such an integer is a 400.

Without these, the database driver (SQLite: ``OverflowError``) or the parsers
(``RecursionError``) fail inside the view, and the answer is a 500.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, abort, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

#: The widest integer a database column holds (SQLite INTEGER, PostgreSQL BIGINT).
INT_MAX = 2**63 - 1
#: Deepest JSON / rison structure accepted (no record needs more than a few levels).
MAX_DEPTH = 32


def db_int(value: Any) -> int | None:
    """``value`` as an integer a database column can hold, or None (not a number, too big)."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if isinstance(value, float) and number != value:
        return None
    return number if -INT_MAX - 1 <= number <= INT_MAX else None


def _parse_int(text: str) -> int:
    if len(text) > 19 or db_int(text) is None:
        raise ValueError("integer out of range")
    return int(text)


def _depth_problem(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_depth_problem(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_depth_problem(v, depth + 1) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return db_int(value) is None
    return False


class BoundedJSONProvider(DefaultJSONProvider):
    """Request bodies: integers within ``INT_MAX``, nesting the parser can follow.

    A violation raises ``ValueError``, which Flask turns into a 400 (or ``None`` with
    ``get_json(silent=True)``), like any other malformed JSON.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_int", _parse_int)
        try:
            value = json.loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        if _depth_problem(value):
            raise ValueError("JSON nested too deeply or a number out of range")
        return value


def rison_problem(text: str) -> bool:
    """Whether FAB's rison argument ``q`` cannot be parsed safely."""
    import prison

    try:
        value = prison.loads(text)
    except RecursionError:
        return True
    except Exception:  # noqa: BLE001 (FAB reports its own parse errors as 400)
        return False
    return _depth_problem(value)


def _bounded_view_args(endpoint: str | None, values: dict[str, Any] | None) -> None:
    for value in (values or {}).values():
        if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()):
            if db_int(value) is None:
                abort(404)


def _bounded_rison() -> None:
    text = request.args.get("q")
    if text and rison_problem(text):
        abort(400, description="q: nested too deeply or a number out of range")


def _api_error(exc: HTTPException) -> Any:
    """REST API clients get JSON for the refusals above (screens keep the HTML page)."""
    if request.path.startswith("/api/"):
        return jsonify(message=exc.description or exc.name), exc.code
    return exc


def init_app(app: Flask) -> None:
    app.json_provider_class = BoundedJSONProvider
    app.json = BoundedJSONProvider(app)
    app.url_value_preprocessor(_bounded_view_args)
    app.before_request(_bounded_rison)
    for status in (400, 404):
        app.register_error_handler(status, _api_error)
