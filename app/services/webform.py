"""Web form capture (官网表单, issue 13): a company website posts a lead to the CRM.

Public and unauthenticated, so everything is bounded before the lead use case runs:
body size (``CRM_WEBFORM_MAX_BYTES``, 413), requests per client address
(``CRM_WEBFORM_RATE_LIMIT``, 429), a shared token when configured (``CRM_WEBFORM_TOKEN``,
403), the JSON shape (400), every field's length and the number of fields (422). A filled
honeypot field is answered like a success and creates nothing (counted in the audit log
as ``webform_honeypot``). The lead is saved by ``leads.save_lead`` as the configured
system user (``CRM_WEBFORM_USER``, else ``CRM_LEAD_FALLBACK_OWNER``), source 官网表单
(code ``website``), owner by the assignment rules.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from html import escape
from typing import Any

from flask_babel import lazy_gettext as _l
from limits import parse_many
from sqlalchemy import func, or_, select

from app.clock import utc_now
from app.extensions import appbuilder, db
from app.models.audit import AuditLog
from app.models.base import acting_user_id
from app.models.dictionaries import CustomerSource, Industry
from app.models.org import CrmUser
from app.services import audit, leads
from app.services.errors import RuleViolation

SOURCE_CODE = "website"
HONEYPOT_ACTION = "webform_honeypot"
#: Lead field -> (names a website may use for it, longest value accepted).
FIELDS: dict[str, tuple[tuple[str, ...], int]] = {
    "company": (("company", "company_name", "organisation", "organization"), 200),
    "contact_name": (("contact_name", "name", "contact"), 64),
    "phone": (("phone", "mobile", "tel", "telephone"), 32),
    "email": (("email", "e-mail", "mail"), 120),
    "province": (("province", "region", "state"), 32),
    "city": (("city",), 32),
    "industry": (("industry",), 100),
    "note": (("message", "note", "comments", "content"), 2000),
}
#: Fields a website adds that are not lead fields (UTM tags, a page name …) are kept in the
#: note as ``name: value`` lines, at most this many, each bounded.
MAX_EXTRA_FIELDS, MAX_EXTRA_NAME, MAX_EXTRA_VALUE = 20, 40, 500
IGNORED = ("token", "submit")


@dataclass
class Answer:
    """What the endpoint answers: HTTP status, a message, field errors, JSON or HTML."""

    status: int
    message: str
    errors: dict[str, str] = field(default_factory=dict)
    as_json: bool = False


def _client(request: Any) -> str:
    return request.remote_addr or "unknown"


def _wants_json(request: Any) -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


def system_user_name(config: Any) -> str:
    """The account web-form leads are created as (empty: not configured)."""
    return config.get("CRM_WEBFORM_USER") or config.get("CRM_LEAD_FALLBACK_OWNER") or ""


def _refuse_size(request: Any, config: Any) -> Answer | None:
    limit = int(config["CRM_WEBFORM_MAX_BYTES"])
    length = request.content_length
    if length is None and request.headers.get("Transfer-Encoding"):
        return Answer(411, str(_l("Send the form with a Content-Length.")))
    if length is not None and length > limit:
        return Answer(413, str(_l("The form is too large (at most %(n)d bytes).", n=limit)))
    return None


def _over_rate(request: Any, config: Any) -> bool:
    strategy = appbuilder.sm.limiter.limiter
    return not all([strategy.hit(item, "webform", _client(request)) for item in parse_many(
        config["CRM_WEBFORM_RATE_LIMIT"])])


def _payload(request: Any) -> tuple[dict[str, Any] | None, Answer | None]:
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return None, Answer(400, str(_l("Not valid JSON: send one JSON object of form fields.")))
        return data, None
    return {key: request.form.get(key) for key in request.form}, None


def _token_refused(data: dict[str, Any], request: Any, config: Any) -> bool:
    expected = config.get("CRM_WEBFORM_TOKEN") or ""
    if not expected:
        return False
    sent = data.get("token") or request.headers.get("X-Webform-Token") or ""
    return not (isinstance(sent, str) and hmac.compare_digest(sent.encode(), expected.encode()))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError(_l("Send text."))


def read_fields(data: dict[str, Any], honeypot: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Lead values from the posted fields, and errors (lengths, kinds, too many fields)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    extras: list[str] = []
    known = {alias: name for name, (aliases, _) in FIELDS.items() for alias in aliases}
    for key, raw in data.items():
        if key in IGNORED or key == honeypot:
            continue
        try:
            text = _text(raw)
        except ValueError as exc:
            errors[str(key)[:MAX_EXTRA_NAME]] = str(exc)
            continue
        name = known.get(str(key).lower())
        if name is None:
            if len(extras) >= MAX_EXTRA_FIELDS:
                errors["_"] = str(_l("Too many fields (at most %(n)d besides the lead's).", n=MAX_EXTRA_FIELDS))
            elif len(str(key)) > MAX_EXTRA_NAME or len(text or "") > MAX_EXTRA_VALUE:
                errors[str(key)[:MAX_EXTRA_NAME]] = str(_l("At most %(n)d characters.", n=MAX_EXTRA_VALUE))
            elif text:
                extras.append(f"{key}: {text}")
            continue
        if text and len(text) > FIELDS[name][1]:
            errors[name] = str(_l("At most %(n)d characters.", n=FIELDS[name][1]))
        elif text:
            values[name] = text
    if extras:
        values["note"] = "\n".join(filter(None, [values.get("note"), *extras]))
    return values, errors


def _industry(text: str | None) -> Any:
    if not text:
        return None
    key = text.strip()
    return db.session.scalar(select(Industry).where(Industry.active.is_(True), or_(
        Industry.code == key, Industry.label_zh == key, func.lower(Industry.label_en) == key.lower())).limit(1))


def _save(values: dict[str, Any], config: Any) -> Answer | None:
    """Create the lead as the system user; an Answer when it cannot be."""
    name = system_user_name(config)
    user = db.session.scalar(select(CrmUser).where(CrmUser.username == name)) if name else None
    if user is None or not user.is_active:
        return Answer(503, str(_l("The web form is not configured on this CRM.")))
    industry_text = values.pop("industry", None)
    values["industry"] = _industry(industry_text)
    if industry_text and values["industry"] is None:
        values["note"] = "\n".join(filter(None, [values.get("note"), f"industry: {industry_text}"]))
    values["source"] = db.session.scalar(select(CustomerSource).where(CustomerSource.code == SOURCE_CODE))
    token = acting_user_id.set(user.id)
    try:
        with audit.audit_context(source="webform"):
            leads.save_lead(values, user)
    except RuleViolation as exc:
        db.session.rollback()
        return Answer(422, str(_l("Please correct the form.")), {k: str(v) for k, v in exc.errors.items()})
    finally:
        acting_user_id.reset(token)
    db.session.commit()
    return None


def capture(request: Any, config: Any) -> Answer:
    """Handle one web-form post (a Flask request): the checks above, then the lead."""
    refusal = _refuse_size(request, config)
    if refusal is None and _over_rate(request, config):
        refusal = Answer(429, str(_l("Too many submissions from your address; try again later.")))
    data = None
    if refusal is None:
        data, refusal = _payload(request)
    if refusal is None and _token_refused(data, request, config):
        refusal = Answer(403, str(_l("This form is not accepted here.")))
    thanks = Answer(200, str(_l("Thank you! We will contact you soon.")))
    if refusal is None and data.get(config["CRM_WEBFORM_HONEYPOT"]):
        audit.record(HONEYPOT_ACTION, detail={"ip": _client(request)})
        db.session.commit()
        refusal = thanks  # looks accepted; nothing created
    if refusal is None:
        values, errors = read_fields(data, config["CRM_WEBFORM_HONEYPOT"])
        refusal = Answer(422, str(_l("Please correct the form.")), errors) if errors else _save(values, config)
    answer = refusal or thanks
    answer.as_json = _wants_json(request)
    return answer


def honeypot_count(days: int = 1) -> int:
    """Posts caught by the honeypot in the last ``days`` days."""
    since = utc_now() - timedelta(days=days)
    return db.session.scalar(select(func.count(AuditLog.id)).where(
        AuditLog.action == HONEYPOT_ACTION, AuditLog.created_at >= since)) or 0


def snippet_html(endpoint: str, config: Any) -> str:
    """The HTML form a website pastes in (the honeypot hidden from people, the token if set)."""
    token = config.get("CRM_WEBFORM_TOKEN") or ""
    hidden = f'\n  <input type="hidden" name="token" value="{escape(token)}">' if token else ""
    trap = escape(config["CRM_WEBFORM_HONEYPOT"])
    return f"""<form method="post" action="{escape(endpoint)}" accept-charset="utf-8">{hidden}
  <div style="position:absolute;left:-10000px" aria-hidden="true">
    <input type="text" name="{trap}" tabindex="-1" autocomplete="off">
  </div>
  <label>公司名称 Company <input name="company" maxlength="200" required></label>
  <label>联系人 Name <input name="contact_name" maxlength="64"></label>
  <label>电话 Phone <input name="phone" type="tel" maxlength="32"></label>
  <label>邮箱 E-mail <input name="email" type="email" maxlength="120"></label>
  <label>省份 Province <input name="province" maxlength="32"></label>
  <label>城市 City <input name="city" maxlength="32"></label>
  <label>留言 Message <textarea name="message" maxlength="2000"></textarea></label>
  <button type="submit">提交 Submit</button>
</form>"""
