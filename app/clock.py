"""The CRM's clock: instants are stored in UTC, shown, parsed and scheduled in the CRM's zone.

One zone for the whole CRM: the company's time zone (Organisation → Company profile, 003 第一步),
which ``app.services.company`` keeps in this process's memory (``set_company_zone``), else
``CRM_TIMEZONE`` (IANA name, default ``Asia/Shanghai``; the initial default).
Every instant the code handles is a timezone-aware ``datetime``:

- ``utc_now()`` is what a model default, a job or a comparison uses;
- ``to_local(value)`` is what a screen, an export or a spreadsheet shows;
- ``from_local(value)`` reads what a person typed (a naive wall-clock time in the CRM's
  zone) into an instant.

A naive value handed to these functions is taken as UTC in ``to_local`` (what older
code and the database driver give back) and as CRM-local wall time in ``from_local``
(what a form, a CSV cell or a spreadsheet date gives). Calendar days ("today", a
next-step date, the date in a record code) are days in the CRM's zone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, has_app_context

DEFAULT_ZONE = "Asia/Shanghai"


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuntimeError(f"CRM_TIMEZONE={name!r} is not an IANA time zone name") from exc


#: The company's stored zone (``set_company_zone``); None: ``CRM_TIMEZONE`` decides.
_company_zone: str | None = None


def set_company_zone(name: str | None) -> None:
    """Use ``name`` (an IANA name; None or "" for ``CRM_TIMEZONE``) as the CRM's zone in this
    process. ``app.services.company`` calls it at start-up, on a save and on its refresh.
    Raises RuntimeError for a name the system does not know (nothing changes then)."""
    global _company_zone
    if name:
        _zone(name)
    _company_zone = name or None


#: The zone ``zone_pinned`` holds for its block in this thread/task: (IANA name, zone), or None.
_pinned: ContextVar[tuple[str, ZoneInfo] | None] = ContextVar("crm_zone_pinned", default=None)


def zone_name() -> str:
    """The CRM zone's IANA name: the one ``zone_pinned`` holds, else the company's
    (``set_company_zone``), else ``CRM_TIMEZONE`` (the default outside an app). No query:
    called for every time shown."""
    pinned = _pinned.get()
    if pinned is not None:
        return pinned[0]
    if _company_zone:
        return _company_zone
    if has_app_context():
        return current_app.config.get("CRM_TIMEZONE") or DEFAULT_ZONE
    return DEFAULT_ZONE


def crm_zone() -> ZoneInfo:
    """The CRM's time zone. Raises RuntimeError for a name the system does not know."""
    pinned = _pinned.get()
    if pinned is not None:
        return pinned[1]
    return _zone(zone_name())


@contextmanager
def zone_pinned() -> Iterator[ZoneInfo]:
    """Inside the block ``crm_zone``/``zone_name`` (and so every function here) answer the
    zone in force at its start without looking it up again (not through Flask's
    ``current_app`` for each of 100,000s of cells): a bulk job's chunk. A company zone saved
    meanwhile applies from the next block. Per thread and task (a ``ContextVar``); blocks
    nest. Yields the zone; RuntimeError as ``crm_zone``."""
    name = zone_name()
    zone = _zone(name)
    token = _pinned.set((name, zone))
    try:
        yield zone
    finally:
        _pinned.reset(token)


def pinned_zone_name() -> str | None:
    """The zone name ``zone_pinned`` holds here, or None: to carry a chunk's pin to another
    process (``importing.writer``)."""
    pinned = _pinned.get()
    return None if pinned is None else pinned[0]


@contextmanager
def zone_pinned_to(name: str | None) -> Iterator[None]:
    """``zone_pinned`` with the zone another process pinned (``pinned_zone_name``); None: no
    pin. RuntimeError for a name the system does not know."""
    token = _pinned.set(None if name is None else (name, _zone(name)))
    try:
        yield
    finally:
        _pinned.reset(token)


def system_now() -> datetime:
    """The machine's clock as an aware UTC instant."""
    return datetime.now(UTC)


#: Where ``utc_now`` reads the time: the machine's clock, or a fixed instant (``frozen``).
_source: Callable[[], datetime] = system_now


def utc_now() -> datetime:
    """The current instant, timezone-aware, in UTC (model defaults, jobs, comparisons)."""
    return _source()


@contextmanager
def frozen(at: datetime) -> Iterator[datetime]:
    """Inside the block every ``utc_now``/``local_now``/``local_today`` reads ``at`` (aware;
    naive is taken as UTC): tests and demos at a chosen moment. Not for concurrent use."""
    global _source
    instant = as_utc(at)
    previous, _source = _source, (lambda: instant)
    try:
        yield instant
    finally:
        _source = previous


def as_utc(value: datetime | None) -> datetime | None:
    """An instant as aware UTC; a naive value is taken as UTC already (stored values)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_local(value: datetime | None) -> datetime | None:
    """An instant as aware wall-clock time in the CRM's zone (naive input is taken as UTC)."""
    if value is None:
        return None
    return as_utc(value).astimezone(crm_zone())


def local_naive(value: datetime | None) -> datetime | None:
    """CRM-zone wall-clock time without tzinfo: for spreadsheet cells, which hold no zone."""
    local = to_local(value)
    return None if local is None else local.replace(tzinfo=None)


def from_local(value: datetime | None) -> datetime | None:
    """What a person typed as an instant in UTC.

    A naive value is wall-clock time in the CRM's zone (a form, a CSV cell, a sheet's
    date); an aware value keeps its own zone. In a DST gap or fold, ``fold=0`` decides
    (zoneinfo's rule); Asia/Shanghai has neither.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=crm_zone())
    return value.astimezone(UTC)


def naive_utc(value: datetime | None) -> datetime | None:
    """An instant as naive UTC wall time: what SQLite stores and the audit chain hashes."""
    moment = as_utc(value)
    return None if moment is None else moment.replace(tzinfo=None)


#: How screens show an instant: to the minute, in the CRM's zone.
MINUTE_FORMAT = "%Y-%m-%d %H:%M"


def local_text(value: datetime | None, fmt: str = MINUTE_FORMAT) -> str:
    """An instant as text in the CRM's zone ("" for None; naive input is taken as UTC)."""
    local = to_local(value)
    return "" if local is None else local.strftime(fmt)


def local_now() -> datetime:
    """The current wall-clock time in the CRM's zone (aware): a form's default time."""
    return utc_now().astimezone(crm_zone())


def local_today() -> date:
    """Today's date in the CRM's zone (due dates, record codes, reports)."""
    return local_now().date()
