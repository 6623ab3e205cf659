"""Birthday greetings (issue 14; 003 第三步 3 客户生日前3天 with a greeting e-mail template).

The owner (or anyone who may see the contact) opens a greeting to a contact: a template in
English or Chinese, chosen by the sender, prefilled from the contact and the sender
(``draft``), edited, then queued through the outbox (``send_greeting``) and audited
(``greeting_sent``). The templates are ``views/templates/mail/greeting_<language>.txt``:
first line the subject, the rest the body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from markupsafe import escape

from app.models.notifications import OutboxMessage
from app.models.sales import Contact
from app.services import audit, mail, records, validation
from app.services.errors import RuleViolation

#: Languages a greeting template exists in.
LANGUAGES = ("en", "zh")


def language_names() -> dict[str, str]:
    """Code -> name of each greeting language, as the language menu names it (in itself)."""
    configured = current_app.config.get("LANGUAGES") or {}
    return {code: configured.get(code, {}).get("name", code) for code in LANGUAGES}
SUBJECT_LIMIT, BODY_LIMIT = 255, 10000


@dataclass(frozen=True)
class Draft:
    """A greeting ready to edit: to whom (name, e-mail), subject, body, language."""

    contact: Contact
    to_address: str
    subject: str
    body: str
    language: str


def _language(language: str | None, user: Any) -> str:
    chosen = (language or getattr(user, "language", None) or "en").split("_")[0]
    return chosen if chosen in LANGUAGES else "en"


def _contact(contact_pk: Any, user: Any) -> Contact:
    """The contact in ``user``'s scope with an e-mail (``NotFound`` / ``RuleViolation``)."""
    contact = records.load(Contact, contact_pk, user)
    if not (contact.email or "").strip():
        raise RuleViolation({"email": str(_l("%(name)s has no e-mail address; add one to send a greeting.",
                                             name=contact.name))})
    return contact


def draft(contact_pk: Any, user: Any, language: str | None = None) -> Draft:
    """The greeting template for a contact in ``user``'s scope, prefilled with the
    contact's and the sender's names, in ``language`` ("en"/"zh"; default the sender's).

    Raises ``NotFound`` for a contact out of scope, ``RuleViolation`` without an e-mail."""
    from app.services.reminders import render_mail

    contact = _contact(contact_pk, user)
    chosen = _language(language, user)
    subject, body, _html = render_mail("greeting", chosen, contact=contact, customer=contact.customer,
                                       sender=user)
    return Draft(contact, contact.email.strip(), subject, body, chosen)


def _checked(subject: str | None, body: str | None, fallback: Draft) -> tuple[str, str]:
    raw = fallback.subject if subject is None else subject
    # any line or record separator (\v, \x1c, U+2028 …) would end the e-mail's header line
    one_line = len(raw.splitlines()) <= 1 and not any(ord(ch) < 0x20 and ch != "\t" for ch in raw)
    subject = validation.clean_line(raw)
    body = validation.clean_block(fallback.body if body is None else body)
    errors = {}
    if not subject:
        errors["subject"] = str(_l("Enter a subject."))
    elif len(subject) > SUBJECT_LIMIT or not one_line:
        errors["subject"] = str(_l("A subject is one line of at most %(n)d characters.", n=SUBJECT_LIMIT))
    if not body:
        errors["body"] = str(_l("Enter the greeting."))
    elif len(body) > BODY_LIMIT:
        errors["body"] = str(_l("At most %(n)d characters.", n=BODY_LIMIT))
    if errors:
        raise RuleViolation(errors)
    return subject, body


def send_greeting(contact_pk: Any, user: Any, subject: str | None = None, body: str | None = None,
                  language: str | None = None) -> OutboxMessage:
    """Queue a greeting e-mail to a contact in ``user``'s scope: ``subject``/``body`` as
    edited (None: the template's), the template in ``language``. Audited
    ("greeting_sent": contact, language; not the text). The caller commits.

    Raises ``NotFound`` (contact out of scope), ``RuleViolation`` (no e-mail, empty or
    too long subject/body)."""
    template = draft(contact_pk, user, language)
    subject, body = _checked(subject, body, template)
    html = "<html><body><p>" + str(escape(body)).replace("\n", "<br>\n") + "</p></body></html>"
    message = mail.queue(template.to_address, subject, body + "\n", html, language=template.language)
    audit.record("greeting_sent", template.contact, {"contact": template.contact.code,
                                                     "language": template.language, "outbox": message.id},
                 user=user)
    return message
