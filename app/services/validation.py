"""Field rules shared by forms, the REST API, imports and the sync.

Each function returns the normalised value or raises ``ValueError`` with a message a
user can act on. Messages are lazily translated so the same rule speaks both languages.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l

from app import clock

#: Characters nobody sees: zero-width marks, bidi controls (copied from chat apps and PDFs),
#: the byte-order mark, soft hyphens, variation selectors, Hangul fillers.
INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
                       "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]")
#: Spaces that look like a space: no-break, ideographic (全角空格), thin, figure ... and tabs.
ODD_SPACES = re.compile("[\t\v\f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


# Every ODD_SPACES character is whitespace to ``str.split()`` (and no INVISIBLE one is, nor
# ASCII): splitting already turns them into one plain space, and ASCII text has nothing to
# drop. The cleaners below rely on that for speed (imports clean 100,000s of cells); the
# test ``test_cleaners_match_their_definition`` holds them to it.


def _text(raw: object) -> str:
    return raw if type(raw) is str else "" if raw is None else str(raw)


def clean_line(raw: object) -> str:
    """One line of text as a person meant it: invisible characters dropped, odd spaces and
    line breaks turned into one plain space, trimmed. Letters and digits are kept as typed
    (a name written in full-width stays so; searches compare case- and width-folded)."""
    text = _text(raw)
    return " ".join((text if text.isascii() else INVISIBLE.sub("", text)).split())


def clean_block(raw: object) -> str:
    """Multi-line text (notes, follow-up content): like ``clean_line`` per line, line breaks
    kept (``\r\n`` and ``\r`` become ``\n``), blank lines at the ends dropped."""
    text = _text(raw)
    if not text.isascii():
        text = INVISIBLE.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" not in text:
        return " ".join(text.split())
    return "\n".join([" ".join(line.split()) for line in text.split("\n")]).strip("\n")


def clean_code(raw: object) -> str:
    """Codes, phones, e-mail addresses: NFKC (full-width ０-９ Ａ-Ｚ ＠ become ASCII), no
    invisible characters; safe because such fields hold no prose."""
    text = _text(raw)
    if text.isascii():  # NFKC keeps ASCII as it is
        return text.strip()
    return INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).strip()


_PHONE_NOISE = re.compile(r"[\s\-()（）.]")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_FLOAT_DIGITS = re.compile(r"\d{7,15}\.\d+")
# Area code: 010 and 02x are three digits, every other area code four (0xxx).
_CANONICAL_EXTENSION = re.compile(r"^0(?:10|2\d|[3-9]\d{2})-\d{7,8}-\d{1,6}$")
_LANDLINE = re.compile(r"^(0(?:10|2\d|[3-9]\d{2}))(\d{7,8})(?:(?:转|ext|#|x)(\d{1,6}))?$")


def normalize_phone(raw: str | None) -> str:
    """Mainland mobile (1[3-9] + 9 digits) or landline with area code.

    ``+86``/``0086`` prefixes, spaces, dashes and brackets are accepted and removed;
    landlines come back as ``0755-12345678`` (``-123`` for an extension).
    """
    stripped = clean_code(raw)
    if _MOBILE.match(stripped):  # the common case, returned as the steps below would
        return stripped
    if _FLOAT_DIGITS.fullmatch(stripped):  # a number that went through a float
        whole, fraction = stripped.split(".")
        if fraction.strip("0"):  # 1381234567.8 is a number, not a phone with a dot in it
            raise ValueError(_l("A phone number cannot have a fraction (%(value)s).", value=stripped))
        stripped = whole
    if _CANONICAL_EXTENSION.match(stripped):  # our own stored form must validate again
        return stripped
    text = _PHONE_NOISE.sub("", stripped).lower()
    if not text:
        raise ValueError(_l("Phone number is required."))
    international = False
    for prefix in ("+86", "0086"):
        if text.startswith(prefix):
            text, international = text[len(prefix):], True
    if text.startswith("86") and len(text) == 13:
        text, international = text[2:], True
    if _MOBILE.match(text):
        return text
    if international and not text.startswith("0"):
        # A landline typed after +86 loses its trunk zero: +86 755 1234 5678.
        candidate = "0" + text
        if _LANDLINE.match(candidate):
            text = candidate
    match = _LANDLINE.match(text)
    if match:
        area, number, ext = match.groups()
        return f"{area}-{number}" + (f"-{ext}" if ext else "")
    raise ValueError(
        _l(
            "Not a valid phone number: use a mobile number (11 digits starting 13-19) "
            "or a landline with area code, e.g. 010-12345678."
        )
    )


_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_SPACE = re.compile(r"\s")
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check_char(first17: str) -> str:
    """Check character of a unified social credit code (GB 32100-2015)."""
    total = sum(_CREDIT_CHARS.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=False))
    return _CREDIT_CHARS[(31 - total % 31) % 31]


def normalize_credit_code(raw: str | None) -> str | None:
    """Optional 18-character unified social credit code with a valid checksum."""
    if raw is None or raw == "":
        return None
    text = _SPACE.sub("", clean_code(raw)).upper()
    if not text:
        return None
    if len(text) != 18:
        raise ValueError(_l("A unified social credit code has 18 characters."))
    bad = [c for c in text if c not in _CREDIT_CHARS]
    if bad:
        raise ValueError(
            _l("Character %(char)s is not allowed in a unified social credit code.", char=bad[0])
        )
    if credit_code_check_char(text[:17]) != text[17]:
        raise ValueError(_l("The unified social credit code fails its checksum: check for a typo."))
    return text


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(raw: str | None) -> str | None:
    text = clean_code(raw)
    if not text:
        return None
    if not _EMAIL.match(text):
        raise ValueError(_l("Not a valid e-mail address."))
    return text.lower()


def require_text(raw: str | None, max_length: int, block: bool = False) -> str:
    """Required text, cleaned (``clean_line``, or ``clean_block`` for multi-line fields)."""
    text = clean_block(raw) if block else clean_line(raw)
    if not text:
        raise ValueError(_l("This field is required."))
    if len(text) > max_length:
        raise ValueError(_l("At most %(n)d characters.", n=max_length))
    return text


def check_choice(entry, previous_id: int | None) -> None:
    """Inactive dictionary entries stay on old records but cannot be newly picked."""
    if entry is not None and not entry.active and entry.id != previous_id:
        raise ValueError(
            _l("%(label)s is no longer in use; pick another value.", label=entry)
        )


_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d")
_TIME_FORMATS = ("", " %H:%M", " %H:%M:%S", "T%H:%M", "T%H:%M:%S")
#: Excel serial day 1 is 1900-01-01; the epoch below absorbs Excel's 1900 leap-year bug.
_EXCEL_EPOCH = datetime(1899, 12, 30)
_DATE_HINT = _l("Not a date: use 2024-05-01, 2024/5/1, 2024年5月1日 or an Excel date cell.")


def parse_datetime(raw: object) -> datetime | None:
    """The instant a cell, a sheet value or typed text means (None when empty).

    Date and date-time objects, Excel serial numbers and common text forms are wall time in
    the CRM's zone (a workbook cell, a CSV cell and sync text hold no zone); an aware value
    or text with an offset (``2026-11-30T13:09:00+00:00``) is that instant. The result is
    aware and expressed in the CRM's zone (``clock.from_local`` then ``clock.to_local``), so
    ``.date()`` is the CRM's day; instant columns store it in UTC. ``ValueError`` with a
    hint for anything else.
    """
    wall = _wall_time(raw)
    if wall is None:
        return None
    try:
        return clock.to_local(clock.from_local(wall))
    except OverflowError:  # 0001-01-01 or 9999-12-31 moved across the zone's offset
        raise ValueError(_DATE_HINT) from None


def _wall_time(raw: object) -> datetime | None:
    """What ``raw`` says, as written: naive wall time, or aware when it carries an offset."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, datetime):
        return raw
    if isinstance(raw, date):
        return datetime(raw.year, raw.month, raw.day)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if 1 <= raw < 2958466:  # Excel's valid range, up to 9999-12-31
            return (_EXCEL_EPOCH + timedelta(days=float(raw))).replace(microsecond=0)
        raise ValueError(_DATE_HINT)
    # width folded (２０２６－０１－０１ is 2026-01-01), invisible characters dropped
    text = re.sub(r"\s+", " ", clean_code(str(raw)))
    if re.fullmatch(r"\d{5}(\.\d+)?", text):  # a serial that arrived as text (CSV)
        return _wall_time(float(text))
    for day_format in _DATE_FORMATS:
        for time_format in _TIME_FORMATS:
            try:
                return datetime.strptime(text, day_format + time_format)
            except ValueError:
                continue
    return _iso_with_offset(text)


def _iso_with_offset(text: str) -> datetime:
    """ISO 8601 text with an offset or ``Z`` (an API answer, another system's export) as
    that instant; ``ValueError`` for anything else (naive forms are the formats above)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(_DATE_HINT)
    return moment


#: Dates a CRM record can carry (a typo such as 0202 or 2202 is caught, history is not).
DATE_RANGE = (date(1900, 1, 1), date(2100, 12, 31))


def date_problem(value: date | datetime | None) -> str | None:
    """Why a date or time is outside ``DATE_RANGE`` (None when it is inside, or empty)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        day = (clock.to_local(value) if value.tzinfo is not None else value).date()
    else:
        day = value
    if DATE_RANGE[0] <= day <= DATE_RANGE[1]:
        return None
    return str(_l("Give a date between %(first)s and %(last)s.", first=DATE_RANGE[0].isoformat(),
                  last=DATE_RANGE[1].isoformat()))


def parse_date(raw: object) -> date | None:
    """The day a cell or text means, in the CRM's zone (a date-time with an offset is first
    turned into the CRM's wall time). ``ValueError`` as ``parse_datetime``."""
    moment = parse_datetime(raw)
    return moment.date() if moment is not None else None


def day_value(raw: Any, field: str, errors: dict[str, str]) -> date | None:
    """A calendar day from a form, API or sheet value (text in the accepted formats, a
    date, or a datetime's day); on a bad or implausible value, ``errors[field]`` gets the
    message and the answer is None. Empty stays None. A number (a JSON body's 20260101, a
    spreadsheet's serial) is read as a spreadsheet serial day, or refused with the hint."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = str(raw)
    if isinstance(raw, str):
        try:
            raw = parse_date(raw)
        except ValueError as exc:
            errors[field] = str(exc)
            return None
    if isinstance(raw, datetime):
        raw = raw.date()
    problem = date_problem(raw)
    if problem:
        errors[field] = problem
        return None
    return raw


_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
_PLAIN = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def number_text(raw: str) -> str:
    """Typed number text ready for ``Decimal``: width folded, spaces trimmed, a leading
    ￥/¥ dropped, and commas removed only where they group thousands ("1,234,567.50");
    any other comma stays, so "1,2,3" is refused as a number rather than read as 123."""
    text = clean_code(raw).lstrip("￥¥").strip()
    return text.replace(",", "") if _GROUPED.fullmatch(text) else text


def decimal_value(raw: Any) -> Decimal:
    """A typed number as ``Decimal``, written as people write numbers: digits with an
    optional sign, decimal point and thousands commas (``number_text``). Exponents
    ("12e2"), underscores ("1_000"), hex, NaN and infinity are refused with ``ValueError``
    rather than read as another number ("-0" stays signed: a field that takes no negative
    number refuses it). Non-text values (a Decimal,
    an int, a spreadsheet's number) are taken as they are, through ``str``."""
    text = number_text(raw) if isinstance(raw, str) else str(raw)
    if not _PLAIN.fullmatch(text) and not (not isinstance(raw, str) and _finite(text)):
        raise ValueError(text)
    return Decimal(text)


def _finite(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except ArithmeticError:
        return False
