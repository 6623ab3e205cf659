"""The page that reveals one masked custom field of one record (issue 18; 001 使用规范:
脱敏, 查看需授权并记录): ``GET /customfield-reveal/<record_type>/<pk>/<key>`` shows the
masked value and asks; ``POST`` reveals it through ``custom_fields.reveal`` (scope, the
reveal right, a step-up code, an audit entry). Record pages link here from a masked
field (``reveal_url``); the REST API has ``POST /api/v1/<type>/<id>/custom/<key>/reveal``.
"""

from __future__ import annotations

from typing import Any

from flask import abort, g, redirect, render_template_string, request, url_for
from flask_appbuilder import BaseView, expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.services import custom_fields, records
from app.services.custom_fields import reveal as cf_reveal
from app.services.errors import NotFound
from views.writes import reveal_on_page

_PAGE = """{% extends "appbuilder/base.html" %}
{% block content %}
<div class="panel panel-default"><div class="panel-body">
  <h3>{{ title }}</h3>
  {% if revealed is not none %}
    <p style="font-size:20px"><strong>{{ label }}</strong>: <strong id="revealed-value">{{ revealed }}</strong></p>
    <p class="text-muted">{{ _("This reveal has been recorded in the audit log.") }}</p>
  {% else %}
    <p>{{ label }}: <strong>{{ masked }}</strong></p>
    <p>{{ _("Revealing the full value is recorded in the audit log.") }}</p>
    <form method="post">
      {% if csrf_token is defined and csrf_token %}<input type="hidden" name="csrf_token" value="{{ csrf_token() }}"/>{% endif %}
      <button class="btn btn-warning" type="submit"><i class="fa fa-eye"></i> {{ _("Reveal full value") }}</button>
    </form>
  {% endif %}
</div></div>
{% endblock %}
"""


def reveal_url(record_type: str, pk: Any, field: Any) -> str:
    """The reveal page of ``field`` (a ``FieldDef`` or its key) on record ``pk``."""
    key = getattr(field, "key", field)
    return url_for("CustomFieldRevealView.reveal", record_type=record_type, pk=pk, key=key)


class CustomFieldRevealView(BaseView):
    """The reveal page (no menu). Signed-in users only; everything else is the use case's:
    a record out of scope or an unknown field is a 404, no reveal right a 403."""

    route_base = "/customfield-reveal"
    default_view = "reveal"

    @expose("/<record_type>/<int:pk>/<key>", methods=["GET", "POST"])
    def reveal(self, record_type: str, pk: int, key: str) -> Any:
        """GET: the masked value and the button; POST: the full value (recorded)."""
        if not current_user.is_authenticated:
            return redirect(url_for(self.appbuilder.sm.auth_view.endpoint + ".login", next=request.full_path))
        model = cf_reveal.model_of(record_type)
        field = custom_fields.field_named(record_type, key) if model is not None else None
        if field is None or not field.masked:
            abort(404)
        try:
            item = records.load(model, pk, g.user)
        except NotFound:
            abort(404)
        revealed = None
        if request.method == "POST":
            revealed, refusal = reveal_on_page(
                lambda: cf_reveal.reveal(record_type, pk, field.key, g.user, via="web"))
            if refusal is not None:
                return refusal
        title = " ".join(str(part) for part in (getattr(item, "code", None), _name(item)) if part)
        return render_template_string(
            _PAGE, appbuilder=self.appbuilder, base_template=self.appbuilder.base_template, title=title,
            label=field.label(), revealed=revealed,
            masked=custom_fields.masked_text(field, custom_fields.value_of(item, field)) or str(_l("(empty)")))


def _name(item: Any) -> str:
    for attribute in ("name", "subject", "title"):
        value = getattr(item, attribute, None)
        if isinstance(value, str) and value:
            return value
    return ""


def register(appbuilder: Any) -> None:
    """Wire the reveal page (``views/__init__.py``)."""
    appbuilder.add_view_no_menu(CustomFieldRevealView)
