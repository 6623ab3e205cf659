"""Notifications: one service from an event to its readers and channels (issue 14, DESIGN).

``notify(event, recipients, record=…, params=…, occasion=…)`` is the one entry point.
For each recipient it writes one in-app ``Notification`` (unique per recipient and
occasion: a reminder that two ticks, two workers or a restart try again is dropped, by
the database, not by a check that could race) and hands it to the recipient's other
channels (``CHANNELS``: e-mail through the outbox, SMS), chosen by the recipient's
preferences (``NotificationPreference``) or the event's defaults.

Text is made when shown, in the reader's language, from the event's template and the
stored ``params`` (codes and names, never a phone: ``safe_params`` masks any); a
notification about a record links to it and names it only while the reader may see it
(``visible_records``). E-mail (``render_email``: text + HTML in the recipient's language)
and SMS go through the outbox (``app.services.mail``); an event whose user ticked *digest*
waits for the morning digest (``digest_pending`` / ``mark_digested``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app, has_request_context
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models.notifications import Notification, NotificationPreference, OutboxMessage
from app.models.org import CrmUser
from app.security.masking import mask_phone, mask_phones_in

IN_APP, EMAIL, SMS = "in_app", "email", "sms"
#: Longest address the outbox stores (``OutboxMessage.to_address``).
MAX_ADDRESS = 200
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """A kind of notification. ``text``: lazy template over ``params`` ("%(code)s …");
    ``channels``: the default channels of a recipient without a preference row;
    ``action``: (endpoint taking ``pk`` = the record's id, lazy label) of what the reader
    can do next (the birthday's "Send a greeting"), offered while the record is visible."""

    key: str
    label: Any
    text: Any
    channels: tuple[str, ...] = (IN_APP,)
    action: tuple[str, Any] | None = None


#: key -> Event. Other modules add theirs with ``declare_event`` at import.
EVENTS: dict[str, Event] = {}
#: channel -> sender(notification, user, event): queues the message (never sends inline).
CHANNELS: dict[str, Callable[[Notification, CrmUser, Event], None]] = {}


def declare_event(event: Event) -> Event:
    """Register an event kind (re-declaring a key replaces it)."""
    EVENTS[event.key] = event
    return event


def channels_for(user_id: int, event: Event) -> tuple[str, ...]:
    """The channels ``user_id`` receives ``event`` on: its preference row, else the
    event's defaults. In-app is one of them unless the user turned it off."""
    pref = db.session.get(NotificationPreference, (user_id, event.key))
    if pref is None:
        return event.channels
    # *digest* is an e-mail that waits for the morning: ticking it alone still means e-mail.
    return tuple(name for name, on in ((IN_APP, pref.in_app), (EMAIL, pref.email or pref.digest), (SMS, pref.sms))
                 if on)


def notify(event: str, recipients: Iterable[int | None], *, record: Any = None,
           params: dict[str, Any] | None = None, occasion: str | None = None) -> list[Notification]:
    """Tell ``recipients`` (user ids; None and duplicates skipped; inactive users skipped)
    about ``event`` (a key of ``EVENTS``; ``KeyError`` otherwise).

    ``record``: the loaded record it is about (a declared type, a customer, a follow-up),
    stored as (type name, id); ``params``: JSON values for the event's text; ``occasion``:
    what makes it one occasion (``"birthday:P2026…:2026"``) — a recipient already told of
    that occasion is not told again. Returns the notifications written now. The caller
    commits (the rows and their outbox messages commit with the change that caused them).

    ``params`` are stored through ``safe_params`` (phones masked). A recipient who turned
    *In the CRM* off for the event still gets the row (the e-mail links to it), read at
    once: it never rings the bell."""
    kind = EVENTS[event]
    wanted = list(dict.fromkeys(uid for uid in recipients if uid is not None))
    if not wanted:
        return []
    users = {user.id: user for user in db.session.scalars(
        select(CrmUser).where(CrmUser.id.in_(wanted), CrmUser.active.is_(True)))}
    record_type, record_id = record_key(record)
    params = safe_params(params)
    written = []
    for uid in wanted:
        user = users.get(uid)
        if user is None:
            continue
        item = _insert_once(uid, kind.key, record_type, record_id, params, occasion)
        if item is None:
            continue
        written.append(item)
        channels = channels_for(uid, kind)
        if IN_APP not in channels:  # kept (its e-mail links to it) but never rings the bell
            from app.clock import utc_now

            item.read_at = utc_now()
        for channel in channels:
            if channel != IN_APP and channel in CHANNELS:
                CHANNELS[channel](item, user, kind)
    return written


def record_key(record: Any) -> tuple[str | None, int | None]:
    """(type name, id) of a record: the declared type's name, else the table name."""
    if record is None:
        return None, None
    from app.record_types import for_model

    declared = for_model(type(record))
    return (declared.name if declared else type(record).__tablename__), record.id


def _insert_once(user_id: int, event: str, record_type: str | None, record_id: int | None,
                 params: dict[str, Any], occasion: str | None) -> Notification | None:
    values = {"user_id": user_id, "event": event, "record_type": record_type, "record_id": record_id,
              "params": params, "occasion": occasion}
    if occasion is None:
        item = Notification(**values)
        db.session.add(item)
        db.session.flush()
        return item
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    from app.clock import utc_now

    stmt = insert(Notification).values(created_at=utc_now(), **values).on_conflict_do_nothing(
        index_elements=["user_id", "occasion"]).returning(Notification.id)
    pk = db.session.execute(stmt).scalar()
    return None if pk is None else db.session.get(Notification, pk)


# --- params: never a phone ------------------------------------------------------------

#: Param names that hold a phone (``phone``, ``contact_phone``, ``mobile``, ``tel``).
_PHONE_KEY = re.compile(r"phone|mobile|(^|_)tel(_|$)", re.IGNORECASE)
def safe_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` as stored: phones masked (``138****5678``), by name and inside texts
    (stored messages, dicts, are masked once rendered: ``text_of``).

    Params are shown to their reader and e-mailed in full; the manuals show a phone in full
    only on an explicit, audited reveal, so a notification never carries one."""
    clean: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if _PHONE_KEY.search(str(key)) and value:
            clean[key] = mask_phone(str(value))
        elif isinstance(value, str):
            clean[key] = mask_phones_in(value)
        else:
            clean[key] = value
    return clean


# --- text, record, visibility -----------------------------------------------------------


class _Params(dict):
    """A template's params: a name the event's text reads but the row lacks shows "…"."""

    def __missing__(self, key: str) -> str:
        return "…"


def label_of(item: Notification) -> str:
    """The event's name in the current locale (the key itself for an event no longer declared)."""
    kind = EVENTS.get(item.event)
    return str(kind.label) if kind else item.event


def text_of(item: Notification, visible: bool | None = None, *, language: str | None = None) -> str:
    """The notification's sentence. ``visible``: whether its reader may see its record (None:
    checked now for ``item.user``); if not, the sentence names nothing of it. ``language``:
    None is the current locale in a request (the reader's screen), else the recipient's
    e-mail language (``language_of``: a digest or job renders for someone else)."""
    if visible is None:
        visible = not item.record_type or bool(visible_records(item.user, [item]))
    if language is None and not has_request_context():
        language = language_of(item.user)
    if language is not None:
        with force_locale(language):
            return _sentence(item, visible)
    return _sentence(item, visible)


def _sentence(item: Notification, visible: bool) -> str:
    kind = EVENTS.get(item.event)
    if kind is None:
        return item.event
    if not visible:
        return str(_l("%(event)s: about a record you cannot see.", event=str(kind.label)))
    try:
        return str(kind.text) % _Params(safe_params(rendered_params(item.params)))
    except (TypeError, ValueError):  # a param of the wrong type for its placeholder
        return str(kind.label)


#: Params may be stored messages (``app.services.messages.Message`` dicts): each reader sees
#: them in their own language (``rendered_params``). Hooks check this flag.
MESSAGE_PARAMS = True


def rendered_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` with each stored message (``app.services.messages.Message`` dicts, e.g. an
    import's summary) rendered in the current locale; other values as they are."""
    from app.services import messages

    return {key: messages.render(value) if isinstance(value, dict) else value for key, value in (params or {}).items()}


def model_for(record_type: str | None) -> type | None:
    """The model a stored ``record_type`` names: a declared type's name (``app.record_types``)
    or a table name (``customer``, ``follow_up``); None if nothing matches."""
    if not record_type:
        return None
    from app.record_types import REGISTRY

    if record_type in REGISTRY:
        return REGISTRY[record_type].model
    from flask_appbuilder import Model

    for mapper in Model.registry.mappers:
        if getattr(mapper.class_, "__tablename__", None) == record_type and mapper.class_ is not CrmUser:
            return mapper.class_
    return None


def visible_records(user: Any, items: Iterable[Notification]) -> set[tuple[str, int]]:
    """The (record_type, record_id) of ``items`` that ``user`` may see now: one scoped query
    per record type (``data_scope.scope_clause``). A type without a scope rule, or a deleted
    record, is not visible (fail closed)."""
    from app.security.data_scope import scope_clause

    wanted: dict[str, set[int]] = {}
    for item in items:
        if item.record_type and item.record_id is not None:
            wanted.setdefault(item.record_type, set()).add(item.record_id)
    seen: set[tuple[str, int]] = set()
    for record_type, ids in wanted.items():
        model = model_for(record_type)
        if model is None:
            continue
        try:
            clause = scope_clause(user, model)
        except LookupError:
            continue
        found = db.session.scalars(select(model.id).where(model.id.in_(sorted(ids)), clause))
        seen.update((record_type, pk) for pk in found)
    return seen


def record_path(record_type: str | None, record_id: int | None) -> str | None:
    """The path of the record's page (``<Model>View.show``), or None if it has none.
    Built without a request (e-mails are rendered by background jobs)."""
    model = model_for(record_type)
    if model is None or record_id is None:
        return None
    return _path(f"{model.__name__}View.show", record_id)


def _path(endpoint: str, pk: int) -> str | None:
    from werkzeug.routing import BuildError

    try:
        return current_app.url_map.bind("localhost").build(endpoint, {"pk": pk})
    except BuildError:
        return None


def action_of(item: Notification, visible: bool) -> tuple[str, str] | None:
    """(path, label in the current language) of the event's next step on this record
    (``Event.action``), or None: no action, no record, or a record the reader may not see."""
    kind = EVENTS.get(item.event)
    if kind is None or kind.action is None or not visible or item.record_id is None:
        return None
    path = _path(kind.action[0], item.record_id)
    return (path, str(kind.action[1])) if path else None


def absolute_url(path: str | None) -> str | None:
    """``path`` under ``CRM_BASE_URL`` (e-mails link to the CRM as users reach it)."""
    if not path:
        return None
    return current_app.config.get("CRM_BASE_URL", "http://localhost:5000").rstrip("/") + path


# --- the inbox --------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """One notification as its reader sees it: label and text in the current locale, the
    record's page (None when there is none or the reader may not see it)."""

    id: int
    label: str
    text: str
    path: str | None
    created_at: datetime
    unread: bool
    hidden: bool
    action: tuple[str, str] | None = None


def shown(user: Any, items: list[Notification]) -> list[Shown]:
    """``items`` (the user's own) as the reader sees them, scope checked once per type."""
    seen = visible_records(user, items)
    result = []
    for item in items:
        visible = not item.record_type or (item.record_type, item.record_id) in seen
        path = record_path(item.record_type, item.record_id) if visible else None
        result.append(Shown(item.id, label_of(item), text_of(item, visible), path, item.created_at,
                            item.read_at is None, not visible, action_of(item, visible)))
    return result


PAGE_SIZE = 20


def inbox(user: Any, page: int = 1, per_page: int = PAGE_SIZE) -> tuple[list[Shown], int]:
    """Page ``page`` (1-based) of ``user``'s notifications, newest first, and their total."""
    mine = Notification.user_id == user.id
    total = db.session.scalar(select(func.count()).select_from(Notification).where(mine)) or 0
    items = db.session.scalars(select(Notification).where(mine).order_by(Notification.id.desc())
                               .offset((max(page, 1) - 1) * per_page).limit(per_page)).all()
    return shown(user, list(items)), total


def unread_count(user_id: int) -> int:
    """How many of the user's notifications are unread: one COUNT on ``ix_notification_inbox``
    (the navbar bell, on every page)."""
    return db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None))) or 0


def mark_read(user: Any, ids: Iterable[int] | None = None) -> int:
    """Mark ``user``'s unread notifications ``ids`` (None: all) read; returns how many.
    Another user's ids match nothing. The caller commits."""
    from app.clock import utc_now

    stmt = update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(list(ids)))
    return db.session.execute(stmt.values(read_at=utc_now()).execution_options(synchronize_session=False)).rowcount


# --- preferences ------------------------------------------------------------------------

PREFERENCE_FIELDS = (IN_APP, EMAIL, SMS, "digest")


def preferences(user_id: int) -> dict[str, dict[str, bool]]:
    """Event key -> {in_app, email, sms, digest} for the user: their rows, else the event's defaults."""
    rows = {row.event: row for row in db.session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id == user_id))}
    result = {}
    for key, kind in EVENTS.items():
        row = rows.get(key)
        if row is None:
            result[key] = {IN_APP: IN_APP in kind.channels, EMAIL: EMAIL in kind.channels,
                           SMS: SMS in kind.channels, "digest": False}
        else:
            result[key] = {IN_APP: row.in_app, EMAIL: row.email, SMS: row.sms, "digest": row.digest}
    return result


def save_preferences(user: Any, chosen: dict[str, Iterable[str]], language: str | None) -> None:
    """Store ``user``'s channels per event (event key -> the ticked fields of
    ``PREFERENCE_FIELDS``; an event not in ``chosen`` has none ticked) and the language of
    their e-mails ("" or None: the CRM's default). ``RuleViolation`` for an unknown event,
    field or language. The caller commits."""
    from app.services.errors import RuleViolation

    languages = current_app.config.get("LANGUAGES") or {}
    errors = {key: str(_l("Unknown event.")) for key in chosen if key not in EVENTS}
    errors.update({key: str(_l("Unknown channel.")) for key, fields in chosen.items()
                   if set(fields) - set(PREFERENCE_FIELDS)})
    if language and language not in languages:
        errors["language"] = str(_l("Unknown language."))
    if errors:
        raise RuleViolation(errors)
    for key in EVENTS:
        fields = set(chosen.get(key, ()))
        row = db.session.get(NotificationPreference, (user.id, key)) or NotificationPreference(user_id=user.id,
                                                                                             event=key)
        row.in_app, row.email, row.sms = IN_APP in fields, EMAIL in fields, SMS in fields
        row.digest = "digest" in fields
        db.session.add(row)
    db.session.execute(update(CrmUser.__table__).where(CrmUser.__table__.c.id == user.id)
                       .values(language=language or None))
    db.session.flush()


def record_language(user: Any, locale: str | None) -> bool:
    """Remember the language ``user`` chose on screen for their e-mails (the flag menu);
    True if it changed. Unknown locales are ignored. The caller commits."""
    if not locale or locale not in (current_app.config.get("LANGUAGES") or {}) or user.language == locale:
        return False
    db.session.execute(update(CrmUser.__table__).where(CrmUser.__table__.c.id == user.id).values(language=locale))
    return True


def language_of(user: Any) -> str:
    """The language a user's e-mails and SMS are written in: theirs, else the company's
    default language (Organisation → Company profile, 003 第一步)."""
    from app.services import company  # not at import: company reads settings declared elsewhere

    if user.language and user.language in (current_app.config.get("LANGUAGES") or {}):
        return user.language
    return company.default_language()


# --- e-mail, SMS, digest ---------------------------------------------------------------


def render_email(item: Notification, user: CrmUser) -> tuple[str, str, str]:
    """(subject, text body, HTML body) of ``item`` for ``user``, in the user's language; the
    record's link (absolute, ``CRM_BASE_URL``) only if the user may see it."""
    visible = not item.record_type or bool(visible_records(user, [item]))
    url = absolute_url(record_path(item.record_type, item.record_id)) if visible else None
    env = current_app.jinja_env
    language = language_of(user)
    with force_locale(language):
        action = action_of(item, visible)
        context = {"label": label_of(item), "text": text_of(item, visible, language=language), "url": url, "user": user,
                   "action_url": absolute_url(action[0]) if action else None, "action_label": action[1] if action else "",
                   "app_name": current_app.config.get("APP_NAME", "CRM"),
                   "preferences_url": absolute_url("/notifications/preferences")}
        subject = f"[{context['app_name']}] {context['label']}"
        return (subject, env.get_template("mail/notification.txt").render(**context),
                env.get_template("mail/notification.html").render(**context))


def _email_channel(item: Notification, user: CrmUser, kind: Event) -> None:
    """Queue the e-mail (held for the morning digest if the user asked for it)."""
    from app.services import mail

    if "@" not in (user.email or ""):  # FAB requires a unique e-mail: "" or a placeholder means none
        return
    if len(user.email) > MAX_ADDRESS:  # the outbox column's size; FAB allows longer
        log.warning("E-mail address of user %s is too long for the outbox; not sent", user.id)
        return
    subject, text, html = render_email(item, user)
    message = mail.queue(user.email, subject, text, html, user_id=user.id, notification_id=item.id,
                         language=language_of(user))
    pref = db.session.get(NotificationPreference, (user.id, kind.key))
    if pref is not None and pref.digest:
        message.status = mail.HELD


def _sms_channel(item: Notification, user: CrmUser, kind: Event) -> None:
    """Queue the SMS to the user's phone (``CrmUser.phone``): the sentence, no link."""
    from app.services import mail

    if not user.phone or len(user.phone) > MAX_ADDRESS:
        return
    visible = not item.record_type or bool(visible_records(user, [item]))
    language = language_of(user)
    with force_locale(language):
        text = f"[{current_app.config.get('APP_NAME', 'CRM')}] {text_of(item, visible, language=language)}"
        mail.queue(user.phone, label_of(item), text, user_id=user.id, notification_id=item.id,
                   language=language_of(user), channel=SMS)


CHANNELS[EMAIL] = _email_channel
CHANNELS[SMS] = _sms_channel


def digest_pending(user_id: int) -> list[Notification]:
    """The user's notifications whose e-mail waits for the morning digest (events with
    *digest* ticked), oldest first. The digest reads their text with ``text_of`` (in the
    user's language, ``visible_records`` for the link) and then calls ``mark_digested``."""
    from app.services import mail

    return list(db.session.scalars(
        select(Notification).join(OutboxMessage, OutboxMessage.notification_id == Notification.id)
        .where(OutboxMessage.user_id == user_id, OutboxMessage.status == mail.HELD)
        .order_by(Notification.id)))


def mark_digested(ids: Iterable[int]) -> int:
    """The held e-mails of notifications ``ids`` went out in a digest: never sent alone.
    Returns how many rows changed. The caller commits (with the digest's own e-mail)."""
    from app.services import mail

    ids = list(ids)
    if not ids:
        return 0
    return db.session.execute(update(OutboxMessage).where(OutboxMessage.notification_id.in_(ids),
                                                          OutboxMessage.status == mail.HELD)
                              .values(status=mail.DIGESTED).execution_options(synchronize_session=False)).rowcount


IN_APP_LABEL, EMAIL_LABEL, SMS_LABEL = _l("In the CRM"), _l("E-mail"), _l("SMS")

# The events of issue 14 (params each text reads in brackets). Contracts, the service desk
# and approvals declare theirs (contract_expiry, sla_breach, approval_waiting) when they land.
for _event in (
    Event("activity_due", _l("Activity due"), _l("%(code)s %(subject)s is due at %(due)s.")),
    Event("activity_assigned", _l("Activity assigned to you"),
          _l("%(by)s gave you %(code)s %(subject)s, due %(due)s.")),
    Event("follow_up_missing", _l("Follow-up not recorded"),
          _l("%(code)s %(subject)s was done %(hours)s hours ago and no follow-up is recorded yet.")),
    Event("birthday", _l("Contact's birthday"), _l("%(name)s (%(customer)s) has a birthday on %(date)s."),
          (IN_APP, EMAIL), action=("GreetingView.compose", _l("Send a greeting"))),
    Event("lead_assigned", _l("Lead assigned to you"), _l("Lead %(code)s %(company)s is yours now."),
          (IN_APP, EMAIL)),
    Event("mention", _l("Mentioned"), _l("%(by)s mentioned you on %(record)s.")),
    Event("import_finished", _l("Import finished"), _l("Import of %(file)s finished: %(summary)s")),
    Event("sync_conflicts", _l("Sync conflicts waiting"), _l("%(count)s conflicts wait on sync target %(target)s.")),
    Event("security_alert", _l("Security alert"), _l("Security alert: %(action)s."), (IN_APP, EMAIL)),
    Event("opportunity_stale", _l("Opportunity not updated"),
          _l("%(code)s %(title)s has not been updated for %(days)s days.")),
):
    declare_event(_event)
