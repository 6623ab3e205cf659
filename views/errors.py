"""Error pages (403, 404, 429) inside the app's layout, in the user's language.

Screens get the FAB base template with a translated heading and explanation; REST API
paths (``/api/``) keep a JSON body ``{"message": ...}`` as before. The status code and
headers (e.g. a rate limit's ``Retry-After``) are kept.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify, make_response, render_template, request
from flask_appbuilder import AppBuilder
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.exceptions import HTTPException

#: status -> (heading, explanation) shown on the page.
PAGES = {
    403: (_l("Access denied"), _l("You do not have permission to open this page or do this.")),
    404: (_l("Page not found"), _l("This page or record does not exist, or it is outside what you may see.")),
    429: (_l("Too many requests"), _l("Too many attempts in a short time. Wait a little and try again.")),
}


def error_page(exc: HTTPException) -> Any:
    """The page for ``exc`` (one of ``PAGES``); JSON on API paths."""
    if request.path.startswith("/api/"):
        response = make_response(jsonify(message=exc.description or exc.name))
    else:
        heading, text = PAGES[exc.code]
        if "user" not in g:  # refused before FAB's before_request (e.g. request_bounds' 404)
            g.user = current_user
        appbuilder = current_app.appbuilder
        response = make_response(render_template("crm/error.html", code=exc.code, heading=heading, text=text,
                                                 base_template=appbuilder.base_template, appbuilder=appbuilder))
    response.status_code = exc.code
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def install(appbuilder: AppBuilder) -> None:
    """Register the error pages on the app (after ``request_bounds``: these replace its 404)."""
    for status in PAGES:
        current_app.register_error_handler(status, error_page)
