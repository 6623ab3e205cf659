"""Reminder rules (issue 14): scheduled, in the CRM's time zone, each firing once per occasion.

Rules from the manuals: 001 (follow-up within 24 hours of the contact) and 003 第三步 3
(任务提醒规则: 客户生日前3天, 合同到期前30天, 方案提交阶段超7天未更新). Their thresholds and
on/off switches are admin settings (``app.services.settings``, *Organisation → Settings*).

Each rule is a module-level function the scheduler hands to the task queue (``JOBS`` below,
cron fields in the CRM zone). A rule finds its occasions and calls ``notify`` with an
occasion key; the notification table's unique (user, occasion) index drops a second attempt,
so a re-run, a restart or two ticks at once never tell anyone twice. The morning digest is
kept once per user and local day by ``DigestSent``'s unique (user, day) index the same way.

After an outage a rule looks back a bounded window (``CATCH_UP``), not forever: an activity
that fell due more than a day ago is not announced late (the morning digest still lists it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import current_app, render_template
from flask_babel import lazy_gettext as _l
from jinja2 import TemplateNotFound
from sqlalchemy import and_, exists, extract, false, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import contains_eager

from app import clock, scheduler
from app.extensions import db
from app.models.activities import Activity
from app.models.customers import Customer, FollowUp
from app.models.notifications import DigestSent, Notification, NotificationPreference
from app.models.org import CrmUser
from app.models.sales import Contact, Opportunity
from app.security.masking import mask_phones_in
from app.services import mail, notifications
from app.services import settings as crm_settings
from app.services.settings import BOOL, INT, Setting

#: How far back a late tick still announces an occasion (an outage longer than this is not
#: flooded with old reminders: those activities are in the morning digest).
CATCH_UP = timedelta(days=1)
#: Rows one query of a rule reads; a rule walks its occasions in batches this size.
BATCH = 500
#: Open activities listed in one digest e-mail (the rest are counted).
DIGEST_LIMIT = 30
#: Call and visit activities (001: 拜访/电话 后24小时内记录跟进).
CONTACT_KINDS = ("call", "visit")

_SECTION = _l("Reminders")


def _int(key: str, default: int, label: Any, help_: Any, low: int, high: int) -> Setting:
    return crm_settings.declare(Setting(key, INT, default, label, help_, low=low, high=high, section=_SECTION))


def _switch(key: str, label: Any) -> Setting:
    return crm_settings.declare(Setting(key, BOOL, True, label, section=_SECTION))


# Thresholds (003 第三步 3; 001) and one switch per rule, in the settings page's order.
_switch("reminder_activity_due", _l("Remind assignees when an activity falls due"))
_switch("reminder_digest", _l("Send each user a morning digest of today's and overdue activities"))
_int("digest_hour", 8, _l("Digest hour"), _l("Hour of the day (CRM time zone) the morning digest is sent."), 0, 23)
_switch("reminder_follow_up", _l("Remind when no follow-up is recorded after a call or visit"))
_int("follow_up_within_hours", 24, _l("Follow-up within (hours)"),
     _l("A done call or visit with a customer needs a follow-up record within this many hours (001)."), 1, 720)
_switch("reminder_birthday", _l("Remind owners of their contacts' birthdays"))
_int("birthday_days_before", 3, _l("Birthday reminder (days before)"),
     _l("Days before a contact's birthday the customer's owner is told (003: 3 days)."), 0, 60)
_switch("reminder_opportunity_stale", _l("Remind owners of opportunities not updated"))
_int("contract_expiry_days", 30, _l("Contract expiry reminder (days before)"),
     _l("Days before a contract expires its owner is told (003: 30 days)."), 1, 365)


def enabled(rule: str) -> bool:
    """Whether the admin left reminder ``rule`` on (``reminder_<rule>`` setting)."""
    return bool(crm_settings.get(f"reminder_{rule}"))


def _batches(stmt: Any, key: Any) -> Iterator[list[Any]]:
    """The rows of ``stmt`` in batches of ``BATCH``, by ascending ``key`` (keyset paging)."""
    last = None
    while True:
        page = stmt if last is None else stmt.where(key > last)
        rows = db.session.scalars(page.order_by(key).limit(BATCH)).all()
        if not rows:
            return
        last = rows[-1].id  # before the caller commits (expired rows would be read again)
        yield rows


@dataclass(frozen=True)
class Occasion:
    """One reminder to give: to ``user_id``, once per ``key``, about ``record`` with ``params``."""

    user_id: int | None
    key: str
    record: Any
    params: dict[str, Any]


def already_told(occasions: list[Occasion]) -> set[tuple[int, str]]:
    """(user id, occasion key) pairs among ``occasions`` that were told before: one query
    on the notifications' unique (user, occasion) index, so a tick that finds everything
    told already costs one query per batch, not one insert attempt per occasion."""
    wanted: dict[int, list[str]] = {}
    for item in occasions:
        if item.user_id is not None:
            wanted.setdefault(item.user_id, []).append(item.key)
    if not wanted:
        return set()
    clause = or_(*(and_(Notification.user_id == uid, Notification.occasion.in_(keys)) for uid, keys in wanted.items()))
    return {(uid, key) for uid, key in db.session.execute(select(Notification.user_id, Notification.occasion)
                                                          .where(clause))}


def tell(event: str, occasions: list[Occasion]) -> int:
    """Notify the occasions not told yet (``already_told`` skips most; the unique index in
    ``notify`` still drops one another tick told in between). Returns how many were told."""
    told, done = 0, already_told(occasions)
    for item in occasions:
        if item.user_id is None or (item.user_id, item.key) in done:
            continue
        told += len(notifications.notify(event, [item.user_id], record=item.record, params=item.params,
                                         occasion=item.key))
    return told


# --- activity due ---------------------------------------------------------------------------


def activity_due_params(item: Activity) -> dict[str, Any]:
    """The ``activity_due`` event's params: code, subject, due (CRM-zone text)."""
    return {"code": item.code, "subject": item.subject, "due": clock.local_text(item.due_at)}


def activities_due(at: datetime | None = None) -> int:
    """Tell each assignee of an open activity whose due time passed.

    Only activities that fell due within the last ``CATCH_UP`` (a day) are announced: after
    a longer outage the older ones are not sent in a flood (the morning digest lists them
    as overdue). Occasion ``activity_due:<id>:<due_at ISO UTC>``: moving the due time re-arms it.
    Returns the notifications written. Commits per batch."""
    if not enabled("activity_due"):
        return 0
    now = clock.as_utc(at) or clock.utc_now()
    stmt = select(Activity).where(Activity.status == "open", Activity.due_at <= now,
                                  Activity.due_at > now - CATCH_UP)
    told = 0
    for rows in _batches(stmt, Activity.id):
        told += tell("activity_due", [
            Occasion(item.assignee_id, f"activity_due:{item.id}:{clock.as_utc(item.due_at).isoformat()}", item,
                     activity_due_params(item)) for item in rows])
        db.session.commit()
    return told


# --- follow-up not recorded (001) -----------------------------------------------------------


def follow_ups_missing(at: datetime | None = None) -> int:
    """Tell the assignee of a done call/visit with a customer when no follow-up of that
    customer was recorded (created) since it was done, ``follow_up_within_hours`` later.

    Looks back ``CATCH_UP`` past the deadline. Occasion ``follow_up_missing:<id>``. Returns
    the notifications written; commits per batch."""
    if not enabled("follow_up"):
        return 0
    now = clock.as_utc(at) or clock.utc_now()
    hours = crm_settings.get("follow_up_within_hours")
    deadline = now - timedelta(hours=hours)
    recorded = exists().where(FollowUp.customer_id == Activity.customer_id, FollowUp.created_on >= Activity.done_at)
    stmt = select(Activity).where(
        Activity.status == "done", Activity.kind.in_(CONTACT_KINDS), Activity.customer_id.is_not(None),
        Activity.follow_up_id.is_(None), Activity.done_at <= deadline, Activity.done_at > deadline - CATCH_UP,
        ~recorded)
    told = 0
    for rows in _batches(stmt, Activity.id):
        told += tell("follow_up_missing", [
            Occasion(item.assignee_id, f"follow_up_missing:{item.id}", item,
                     {"code": item.code, "subject": item.subject, "hours": hours}) for item in rows])
        db.session.commit()
    return told


# --- birthdays (003: 客户生日前3天) ---------------------------------------------------------


def birthday_in(born: date, year: int) -> date:
    """The day ``born``'s birthday is celebrated in ``year``: 29 February is celebrated on
    28 February in a year without one."""
    try:
        return born.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def upcoming_days(today: date, days: int) -> list[date]:
    """The local days ``today`` .. ``today + days`` a birthday reminder looks at."""
    return [today + timedelta(days=offset) for offset in range(days + 1)]


def _birthday_clause(days: list[date]) -> Any:
    """SQL: the contact's birthday (month, day) falls on one of ``days`` (29 February on
    28 February of a common year). ``extract`` works on SQLite and PostgreSQL alike."""
    month, day = extract("month", Contact.birthday), extract("day", Contact.birthday)
    terms = [and_(month == d.month, day == d.day) for d in days]
    terms += [and_(month == 2, day == 29) for d in days if (d.month, d.day) == (2, 28) and not _is_leap(d.year)]
    return or_(*terms) if terms else false()


def birthdays(today: date | None = None) -> int:
    """Tell each customer's owner of a contact's birthday ``birthday_days_before`` days ahead.

    Local dates (``clock.local_today``), every year, across month and year ends; 29 February
    birthdays are celebrated on 28 February in common years. A contact whose birthday is
    within the next ``birthday_days_before`` days and who was not announced yet this year
    is announced (a day the scheduler missed is caught up the next day). Occasion
    ``birthday:<contact code>:<year of the birthday>``. Params: name, customer (code), date
    (ISO) — never a phone. Archived customers are skipped. Returns the notifications written."""
    if not enabled("birthday"):
        return 0
    today = today or clock.local_today()
    days = upcoming_days(today, crm_settings.get("birthday_days_before"))
    stmt = (select(Contact).join(Customer, Customer.id == Contact.customer_id).options(contains_eager(Contact.customer))
            .where(Contact.birthday.is_not(None), Customer.archived_at.is_(None), _birthday_clause(days)))
    told = 0
    for rows in _batches(stmt, Contact.id):
        told += tell("birthday", [item for item in (_birthday_occasion(c, today, days[-1]) for c in rows) if item])
        db.session.commit()
    return told


def _birthday_occasion(contact: Contact, today: date, last: date) -> Occasion | None:
    celebrated = birthday_in(contact.birthday, today.year)
    if celebrated < today:  # the window crosses the year's end: it is next year's birthday
        celebrated = birthday_in(contact.birthday, today.year + 1)
    if celebrated > last:
        return None
    customer = contact.customer
    params = {"name": contact.name, "customer": customer.code, "date": celebrated.isoformat()}
    return Occasion(customer.owner_id, f"birthday:{contact.code}:{celebrated.year}", contact, params)


# --- opportunities not updated (003: 方案提交阶段超7天未更新) -------------------------------


def stale_opportunities(at: datetime | None = None) -> int:
    """Tell each opportunity's owner it has not been updated for its stage's stale days
    (``opportunities.stale_clause``, the pipeline's own rule: 003 方案提交阶段超7天未更新; the
    days are set per stage under *Dictionaries → Stages*, so the kanban badge and the
    reminder never disagree).

    Occasion ``opportunity_stale:<id>:<changed_on ISO>``: an update re-arms it. Returns the
    notifications written; commits per batch."""
    if not enabled("opportunity_stale"):
        return 0
    now = clock.as_utc(at) or clock.utc_now()
    from app.services import opportunities  # not at import: it declares its record type

    told = 0
    for rows in _batches(select(Opportunity).where(opportunities.stale_clause(now)), Opportunity.id):
        told += tell("opportunity_stale", [
            Occasion(item.owner_id, f"opportunity_stale:{item.id}:{clock.as_utc(item.changed_on).isoformat()}", item,
                     {"code": item.code, "title": item.title,
                      "days": item.stage.stale_days})
            for item in rows])
        db.session.commit()
    return told


# --- the morning digest ------------------------------------------------------------------


def _day_end(day: date) -> datetime:
    """The instant the CRM-local ``day`` ends (the next local midnight, in UTC)."""
    return clock.from_local(datetime.combine(day + timedelta(days=1), time()))


def digest_candidates(day: date) -> list[int]:
    """Active users with an e-mail who have open activities due by the end of local ``day``
    (overdue included) or who chose a digest for some event."""
    due = select(Activity.assignee_id).where(Activity.status == "open", Activity.due_at < _day_end(day))
    chose = select(NotificationPreference.user_id).where(NotificationPreference.digest.is_(True))
    stmt = select(CrmUser.id).where(CrmUser.active.is_(True), CrmUser.email.is_not(None), CrmUser.email != "",
                                    or_(CrmUser.id.in_(due), CrmUser.id.in_(chose))).order_by(CrmUser.id)
    return list(db.session.scalars(stmt))


def _claim_day(user_id: int, day: date) -> bool:
    """Record the user's digest for ``day``; False when one was recorded already (by the
    unique index: two ticks at once, the second waits for the first and gets nothing)."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(DigestSent).values(user_id=user_id, day=day.isoformat(), sent_at=clock.utc_now()) \
        .on_conflict_do_nothing(index_elements=["user_id", "day"]).returning(DigestSent.id)
    return db.session.execute(stmt).scalar() is not None


def render_mail(name: str, language: str, **context: Any) -> tuple[str, str, str]:
    """(subject, text, html) of the e-mail template ``mail/<name>_<language>``: the text
    template's first line is the subject. The HTML template is optional ("" without one)."""
    text = render_template(f"mail/{name}_{language}.txt", **context).strip()
    subject, _, body = text.partition("\n")
    try:
        html = render_template(f"mail/{name}_{language}.html", **context)
    except TemplateNotFound:  # a template without an HTML part
        html = ""
    return subject.strip(), body.strip() + "\n", html


def _digest_for(user: CrmUser, day: date) -> bool:
    """Queue ``user``'s digest for ``day`` unless there is nothing to say or it went already."""
    stmt = select(Activity).where(Activity.assignee_id == user.id, Activity.status == "open",
                                  Activity.due_at < _day_end(day)).order_by(Activity.due_at)
    items = db.session.scalars(stmt.limit(DIGEST_LIMIT + 1)).all()
    pending = notifications.digest_pending(user.id)
    if not items and not pending:
        return False
    if not _claim_day(user.id, day):
        return False
    start = clock.from_local(datetime.combine(day, time()))
    language = notifications.language_of(user)
    context = {"user": user, "day": day, "overdue": [a for a in items[:DIGEST_LIMIT] if a.due_at < start],
               "today": [a for a in items[:DIGEST_LIMIT] if a.due_at >= start], "more": len(items) > DIGEST_LIMIT,
               "pending": pending, "local_text": clock.local_text, "text_of": notifications.text_of,
               "mask": mask_phones_in,  # subjects are free text: a phone typed into one stays masked
               "base_url": (current_app.config.get("CRM_BASE_URL") or "").rstrip("/")}
    subject, text, html = render_mail("digest", language, **context)
    mail.queue(user.email, subject, text, html or None, user_id=user.id, language=language)
    notifications.mark_digested([item.id for item in pending])  # held e-mails: never sent alone as well
    return True


def morning_digest(at: datetime | None = None) -> int:
    """Queue each user's morning digest once per local day, from ``digest_hour`` on.

    Scheduled hourly: a tick before ``digest_hour`` does nothing, a later one (the
    scheduler was down at that hour) sends what was not sent yet. One e-mail per user and
    day in the user's language (``notifications.language_of``): today's and overdue open activities
    and the notifications waiting for the digest. Users without an e-mail get none.
    Returns the e-mails queued; commits per user."""
    if not enabled("digest"):
        return 0
    now = clock.as_utc(at) or clock.utc_now()
    local = clock.to_local(now)
    if local.hour < crm_settings.get("digest_hour"):
        return 0
    queued = 0
    for user_id in digest_candidates(local.date()):
        user = db.session.get(CrmUser, user_id)
        if user is not None and _digest_for(user, local.date()):
            queued += 1
        db.session.commit()
    return queued


# --- the jobs --------------------------------------------------------------------------


def run_activities_due() -> int:
    """Every minute: activities that fell due."""
    return activities_due()


def run_follow_ups_missing() -> int:
    """Every 15 minutes: calls and visits without a follow-up."""
    return follow_ups_missing()


def run_birthdays() -> int:
    """Daily: contacts' birthdays ahead."""
    return birthdays()


def run_stale_opportunities() -> int:
    """Daily: opportunities not updated."""
    return stale_opportunities()


def run_morning_digest() -> int:
    """Hourly: the morning digest from ``digest_hour`` on."""
    return morning_digest()


JOBS = (
    ("reminder_activity_due", "Reminders: activities due", run_activities_due, {"minute": "*"}),
    ("reminder_follow_up", "Reminders: follow-up not recorded after a call or visit", run_follow_ups_missing,
     {"minute": "*/15"}),
    ("reminder_birthdays", "Reminders: contacts' birthdays", run_birthdays, {"hour": 7, "minute": 30}),
    ("reminder_stale_opportunities", "Reminders: opportunities not updated", run_stale_opportunities,
     {"hour": 7, "minute": 40}),
    ("reminder_digest", "Reminders: morning digest e-mail", run_morning_digest, {"minute": 0}),
)
for _job_id, _name, _func, _cron in JOBS:
    scheduler.register(_job_id, _name, _func, _cron)
