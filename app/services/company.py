"""Company settings (003 第一步): name, logo, time zone, currency, date format, default
language and licensed user count, edited on Organisation → Company profile and read everywhere
instead of constants.

CONTRACT (issue 19): the readers below keep their names and shapes.

Every setting is declared here with ``page="company"`` and saved through
``settings.save`` (checked, all or none, audited ``setting_change``). The values read on
every page (zone, language, date format, name, logo version) are kept in this process's
memory (``Snapshot``): loaded by ``install`` at start, refreshed with one query when older
than ``REFRESH_SECONDS`` as an app context starts (a request, a task on the queue), and
updated at once after a commit of this process that changed them (``settings.watch``).
The logo is checked and re-encoded (``save_logo``) and stored as ``CompanyAsset`` "logo".
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from flask import Flask, appcontext_pushed, current_app, g, has_app_context, has_request_context, request, session
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app import clock
from app.extensions import db
from app.models.activities import CrmSetting
from app.models.operations import CompanyAsset
from app.services import audit, settings
from app.services.errors import RuleViolation

#: How old the in-memory values may get before an app context reloads them (seconds).
REFRESH_SECONDS = 30
SECTION = _l("Company profile")

CURRENCIES = {"CNY": _l("Renminbi (CNY)"), "USD": _l("US dollar (USD)"), "EUR": _l("Euro (EUR)"),
              "HKD": _l("Hong Kong dollar (HKD)"), "JPY": _l("Japanese yen (JPY)"),
              "GBP": _l("Pound sterling (GBP)"), "TWD": _l("New Taiwan dollar (TWD)"),
              "MOP": _l("Macanese pataca (MOP)"), "SGD": _l("Singapore dollar (SGD)")}
#: date format key -> strftime (what the setting stores is the key).
DATE_FORMATS = {"iso": "%Y-%m-%d", "slash": "%Y/%m/%d", "zh": "%Y年%m月%d日", "dmy": "%d/%m/%Y",
                "mdy": "%m/%d/%Y", "dot": "%d.%m.%Y"}
DEFAULT_DATE_FORMAT = "%Y-%m-%d"
LANGUAGES = {"": _l("As configured on the server"), "en": "English", "zh": "简体中文"}


def zone_options() -> dict[str, Any]:
    """"" (the server's ``CRM_TIMEZONE``) then every IANA zone name, sorted, labelled with
    its current UTC offset ("Asia/Shanghai (UTC+08:00)")."""
    now = clock.system_now()
    options: dict[str, Any] = {"": _l("As configured on the server (CRM_TIMEZONE)")}
    for name in sorted(available_timezones()):
        if name.startswith(("posix/", "right/")) or name in {"localtime", "Factory"}:
            continue
        offset = now.astimezone(ZoneInfo(name)).strftime("%z")
        options[name] = f"{name} (UTC{offset[:3]}:{offset[3:]})"
    return options


def _date_options() -> dict[str, Any]:
    sample = date(2026, 12, 1)
    return {key: sample.strftime(fmt) for key, fmt in DATE_FORMATS.items()}


NAME = settings.declare(settings.Setting(
    "company_name", settings.TEXT, "", _l("Company name"),
    _l("Shown in the navigation bar, on the login page and on PDF exports."), high=100, section=SECTION,
    page="company"))
ZONE = settings.declare(settings.Setting(
    "time_zone", settings.CHOICE, "", _l("Time zone"),
    _l("Days, times, reminders and scheduled jobs follow this zone."), options=zone_options(),
    section=SECTION, page="company"))
CURRENCY = settings.declare(settings.Setting(
    "currency", settings.CHOICE, "CNY", _l("Company currency"),
    _l("The currency of new orders; RMB by default."), options=CURRENCIES, section=SECTION, page="company"))
DATE_FORMAT = settings.declare(settings.Setting(
    "date_format", settings.CHOICE, "iso", _l("Date format"),
    _l("How screens and PDF exports show a day; forms keep year-month-day input."), options=_date_options(),
    section=SECTION, page="company"))
LANGUAGE = settings.declare(settings.Setting(
    "default_language", settings.CHOICE, "", _l("Default language"),
    _l("The language of the login page, and of screens and e-mails for users who did not pick one."),
    options=LANGUAGES, section=SECTION, page="company"))
LICENSED = settings.declare(settings.Setting(
    "licensed_users", settings.INT, 0, _l("Licensed users"),
    _l("How many active users the licence allows (0: not limited). Creating or re-activating a user "
       "beyond it is refused."), low=0, high=100000, section=SECTION, page="company"))


@dataclass(frozen=True)
class Snapshot:
    """The values read on every page, held in memory: zone ("" = server), language
    ("" = server), date format key, company name, logo checksum ("" = no logo)."""

    zone: str = ""
    language: str = ""
    date_format: str = "iso"
    name: str = ""
    logo_sha: str = ""


_memory: dict[str, Any] = {"snapshot": Snapshot(), "at": None}
_HOT = {ZONE.key: "zone", LANGUAGE.key: "language", DATE_FORMAT.key: "date_format", NAME.key: "name"}


def current() -> Snapshot:
    """The in-memory company values (no query)."""
    return _memory["snapshot"]


def _apply(snapshot: Snapshot) -> None:
    _memory["snapshot"] = snapshot
    try:
        clock.set_company_zone(snapshot.zone or None)
    except RuntimeError:  # a zone this system no longer knows: the server's
        clock.set_company_zone(None)


def _valid(key: str, raw: str | None) -> Any:
    setting = settings.SETTINGS[key]
    try:
        return setting.default if raw is None else settings.coerce(setting, json.loads(raw))
    except (ValueError, TypeError):
        return setting.default


def load() -> Snapshot:
    """Read the stored values (two queries on a connection of its own, outside the caller's
    transaction). Raises ``SQLAlchemyError`` when the database cannot answer."""
    with db.engine.connect() as connection:
        rows = dict(connection.execute(select(CrmSetting.key, CrmSetting.value)
                                       .where(CrmSetting.key.in_(list(_HOT)))).all())
        sha = connection.scalar(select(CompanyAsset.sha256).where(CompanyAsset.key == "logo"))
    values = {field: _valid(key, rows.get(key)) for key, field in _HOT.items()}
    return Snapshot(logo_sha=sha or "", **values)


def refresh(force: bool = False) -> Snapshot:
    """Reload the in-memory values when older than ``REFRESH_SECONDS`` (or ``force``); a
    database that cannot answer (not migrated yet, down) keeps what is known."""
    now = time.monotonic()
    if not force and _memory["at"] is not None and now - _memory["at"] < REFRESH_SECONDS:
        return current()
    _memory["at"] = now
    try:
        _apply(load())
    except SQLAlchemyError:
        pass
    return current()


def forget() -> None:
    """Back to the built-in defaults in this process (tests restore with it after changing
    the company settings, whose rows the test cleanup deletes)."""
    _memory["at"] = time.monotonic()
    _apply(Snapshot())


def _changed(key: str) -> Any:
    def update(value: Any) -> None:
        _apply(replace(current(), **{_HOT[key]: value}))
        if key == ZONE.key:
            _memory["zone_changed_at"] = clock.utc_now()

    return update


for _key in _HOT:
    settings.watch(_key, _changed(_key))


def logo_changed(sha: str) -> None:
    """This process stored (sha) or removed ("") the logo: the navbar's link changes now."""
    _apply(replace(current(), logo_sha=sha))


def _on_context(sender: Flask, **_: Any) -> None:
    refresh()


def select_locale(fallback: Any = None) -> str | None:
    """The page's language: ``?_l_=`` (FAB's API searches), the session's choice (the flag
    menu), the signed-in user's own language, the company default language, then
    ``BABEL_DEFAULT_LOCALE``. Unknown codes are skipped."""
    known = current_app.config.get("LANGUAGES") or {}
    if has_request_context():
        asked = request.args.get("_l_")
        if asked:
            return asked if asked in known else default_language()
        chosen = session.get("locale")
        if chosen in known:
            return chosen
        own = getattr(getattr(g, "user", None), "language", None)
        if own in known:
            return own
    return default_language()


def install(app: Flask) -> None:
    """Make the stored company settings take effect in ``app``: load them now, refresh them
    as each app context starts (requests and queued tasks), choose the language with
    ``select_locale`` and give templates ``company_brand()``."""
    with app.app_context():
        refresh(force=True)
    appcontext_pushed.connect(_on_context, app)
    babel = app.extensions.get("babel")
    if babel is not None:
        babel.locale_selector = select_locale
    app.jinja_env.globals["company_brand"] = brand


def brand() -> dict[str, str]:
    """What the navbar shows: {"name": company name or "", "logo": logo version or ""}."""
    snapshot = current()
    return {"name": snapshot.name, "logo": snapshot.logo_sha[:16]}


def zone_changed_at() -> Any:
    """When this process last saw a saved zone change (aware UTC), or None: the scheduler's
    resync can compare it with when it built its triggers."""
    return _memory.get("zone_changed_at")


def name() -> str:
    """The company's name ("" when not set): the navbar and PDF exports show it."""
    return current().name


def logo() -> tuple[bytes, str] | None:
    """The logo as (PNG bytes, content type), or None when none was uploaded (one query)."""
    row = db.session.get(CompanyAsset, "logo")
    return None if row is None else (row.data, row.content_type)


def licensed_users() -> int:
    """How many active users the licence allows (0: not limited); monitoring compares online
    and active users with it (000 §三(二)); ``accounts`` refuses users beyond it."""
    return int(settings.get(LICENSED.key))


def date_format() -> str:
    """The ``strftime`` format screens and exports show a day in (default ``%Y-%m-%d``)."""
    return DATE_FORMATS.get(current().date_format, DEFAULT_DATE_FORMAT)


def default_language() -> str:
    """The language of users who did not pick one (and of the login page): the company
    setting, else ``BABEL_DEFAULT_LOCALE`` ("en" outside an app)."""
    chosen = current().language
    if chosen:
        return chosen
    return str(current_app.config.get("BABEL_DEFAULT_LOCALE") or "en") if has_app_context() else "en"


def currency() -> str:
    """The company currency code (ISO 4217, default "CNY"; an older stored list reads as its
    first item)."""
    return str(settings.get(CURRENCY.key) or "CNY")


def summary() -> dict[str, Any]:
    """Every company setting's current value (key -> value): the Company page and backups'
    manifest. ``time_zone`` is the zone in effect, ``logo`` whether one is stored."""
    snapshot = current()
    return {"name": name(), "currency": currency(), "date_format": date_format(),
            "licensed_users": licensed_users(), "time_zone": clock.zone_name(),
            "default_language": default_language(), "logo": bool(snapshot.logo_sha)}


# --- the logo ------------------------------------------------------------------------

#: Upload bounds: bytes of the file, pixels of the picture before it is decoded, and the
#: height it is scaled down to.
LOGO_MAX_BYTES, LOGO_MAX_SIDE, LOGO_HEIGHT = 512 * 1024, 4000, 512
LOGO_FORMATS = {"PNG", "JPEG", "WEBP"}


def clean_logo(data: bytes) -> bytes:
    """An uploaded picture as a clean PNG: PNG, JPEG or WebP of at most ``LOGO_MAX_BYTES``
    bytes and ``LOGO_MAX_SIDE`` pixels a side (checked from the header, before decoding),
    re-encoded (metadata and anything appended dropped) and scaled to at most
    ``LOGO_HEIGHT`` pixels high. Raises ``RuleViolation({"logo": message})``."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise RuleViolation({"logo": _l("Choose a picture file.")})
    if len(data) > LOGO_MAX_BYTES:
        raise RuleViolation({"logo": _l("The picture is larger than %(n)d KB.", n=LOGO_MAX_BYTES // 1024)})
    try:
        with Image.open(io.BytesIO(data), formats=sorted(LOGO_FORMATS)) as picture:
            width, height = picture.size
            if width > LOGO_MAX_SIDE or height > LOGO_MAX_SIDE or width < 1 or height < 1:
                raise Image.DecompressionBombError(f"{width}x{height}")
            picture.load()
            clean = picture.convert("RGBA")
    except Image.DecompressionBombError:  # Pillow's own guard, or the bound above, before decoding
        raise RuleViolation({"logo": _l("The picture may be at most %(n)d × %(n)d pixels.",
                                        n=LOGO_MAX_SIDE)}) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise RuleViolation({"logo": _l("This is not a PNG, JPEG or WebP picture.")}) from None
    if clean.height > LOGO_HEIGHT:
        clean = clean.resize((max(1, round(clean.width * LOGO_HEIGHT / clean.height)), LOGO_HEIGHT))
    out = io.BytesIO()
    clean.save(out, format="PNG", optimize=True)
    return out.getvalue()


def save_logo(data: bytes, user: Any) -> CompanyAsset:
    """Store ``data`` (an upload, see ``clean_logo``) as the company logo, audited
    ``company_logo_change``. Raises ``RuleViolation``. The caller commits; this process's
    navbar follows at once (``logo_changed``)."""
    png = clean_logo(data)
    sha = hashlib.sha256(png).hexdigest()
    row = db.session.get(CompanyAsset, "logo") or CompanyAsset(key="logo")
    old = row.sha256
    row.content_type, row.data, row.sha256, row.updated_at = "image/png", png, sha, clock.utc_now()
    db.session.add(row)
    audit.record("company_logo_change", None, {"old": old, "new": sha, "size": len(png)})
    db.session.flush()
    logo_changed(sha)
    return row


def remove_logo(user: Any) -> bool:
    """Remove the logo (audited ``company_logo_change``); False when there was none. The
    caller commits."""
    row = db.session.get(CompanyAsset, "logo")
    if row is None:
        return False
    audit.record("company_logo_change", None, {"old": row.sha256, "new": None})
    db.session.delete(row)
    db.session.flush()
    logo_changed("")
    return True
