"""Notifications: one service from an event to its readers and channels (issue 14, DESIGN).

``notify(event, recipients, record=…, params=…, occasion=…)`` is the one entry point.
For each recipient it writes one in-app ``Notification`` (unique per recipient and
occasion: a reminder that two ticks, two workers or a restart try again is dropped, by
the database, not by a check that could race) and hands it to the recipient's other
channels (``CHANNELS``: e-mail through the outbox, SMS), chosen by the recipient's
preferences (``NotificationPreference``) or the event's defaults.

Text is made when shown, in the reader's language, from the event's template and the
stored ``params`` (codes and names, never a phone); a notification about a record links
to it and names it only while the reader may see it (``visible``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models.notifications import Notification, NotificationPreference
from app.models.org import CrmUser

IN_APP, EMAIL, SMS = "in_app", "email", "sms"


@dataclass(frozen=True)
class Event:
    """A kind of notification. ``text``: lazy template over ``params`` ("%(code)s …");
    ``channels``: the default channels of a recipient without a preference row."""

    key: str
    label: Any
    text: Any
    channels: tuple[str, ...] = (IN_APP,)


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
    return tuple(name for name, on in ((IN_APP, pref.in_app), (EMAIL, pref.email), (SMS, pref.sms)) if on)


def notify(event: str, recipients: Iterable[int | None], *, record: Any = None,
           params: dict[str, Any] | None = None, occasion: str | None = None) -> list[Notification]:
    """Tell ``recipients`` (user ids; None and duplicates skipped; inactive users skipped)
    about ``event`` (a key of ``EVENTS``; ``KeyError`` otherwise).

    ``record``: the loaded record it is about (a declared type, a customer, a follow-up),
    stored as (type name, id); ``params``: JSON values for the event's text; ``occasion``:
    what makes it one occasion (``"birthday:P2026…:2026"``) — a recipient already told of
    that occasion is not told again. Returns the notifications written now. The caller
    commits (the rows and their outbox messages commit with the change that caused them).
    """
    kind = EVENTS[event]
    wanted = list(dict.fromkeys(uid for uid in recipients if uid is not None))
    if not wanted:
        return []
    users = {user.id: user for user in db.session.scalars(
        select(CrmUser).where(CrmUser.id.in_(wanted), CrmUser.active.is_(True)))}
    record_type, record_id = record_key(record)
    written = []
    for uid in wanted:
        user = users.get(uid)
        if user is None:
            continue
        item = _insert_once(uid, kind.key, record_type, record_id, params or {}, occasion)
        if item is None:
            continue
        written.append(item)
        for channel in channels_for(uid, kind):
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
          (IN_APP, EMAIL)),
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
