"""How an erasure finds the person's values in stored text (issue 19): not only as typed.

- a phone matches with ANY separators between ANY of its digits (``_SEP``: spaces of every
  width, hyphens and dashes, dots, slashes, underscores, brackets, invisible characters
  such as a zero-width space or a soft hyphen), an optional ``+86`` / ``0086`` / ``86``
  prefix, full-width digits (mixed with ASCII too), and a landline's leading 0 dropped after
  the prefix: ``139-7771-2345``, ``+86 139 7771 23 45``, ``(139)77712345``,
  ``１３９／７７７１／２３４５`` are all ``13977712345``. Not inside a longer number: a digit
  right before or after it (directly or across invisible characters only, which read as
  one run) means another number; a visible separator before the next digit is a boundary
  (``13977712345/13800001111`` holds two phones, ``010-12345678-801`` the landline);
- an e-mail matches case-insensitively, full-width letters too
  (``WANG.YINSI@EXAMPLE.CN``);
- any other value (a name, an address) matches as written (case-insensitively for Latin
  letters), as a whole word where its script has words (``_whole``: "En" is not in
  "open"); a phone's masked form (``139****2345``) as written.

A ``Matcher`` answers "does this text hold the person's data" (``distinct``: a phone, an
e-mail or another distinctive value; ``found``: any value, names included) and replaces
every match with ``ERASED``. ``candidates(column, dialect)`` is the SQL that picks rows
which may hold a copy, to be confirmed in Python by the regex: ``lower(column) LIKE`` on an
e-mail's local part and the other distinctive values, and for a phone its digits in order
with anything between (SQLite ``GLOB '*[1１]*[3３]*…'``, PostgreSQL a ``~`` regex allowing
only non-digits between them) — a fixed substring such as the last 4 digits misses
``138 0013 12 34``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from sqlalchemy import false, func, or_

from app.security.masking import mask_phone
from app.services.audit import ERASED

#: Invisible characters (format controls, zero-width spaces and joiners, bidi marks, soft
#: hyphen, BOM, variation selectors): between digits they join them into one run.
_INVISIBLE = ("\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
              "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb")
#: Visible separators people put between a phone's digits: spaces of every width (``\s``),
#: hyphens, dashes, minus and wave signs, dots, slashes and bars, underscores, brackets —
#: half- and full-width. (Not commas, colons or semicolons: they separate values.)
_VISIBLE = (r"\s\-\u2010-\u2015\u2212\u2043\u02d7\u2e3a\u2e3b\u301c\u3030\u30fc\ufe58\ufe63\uff0d\uff70~\uff5e"
            r".\u00b7\u2022\u2027\u2219\u30fb\uff0e\uff65\u3002\uff61"
            r"/\\|\u2044\u2215\uff0f\uff3c\uff5c_\uff3f"
            r"()\[\]\uff08\uff09\uff3b\uff3d\u3010\u3011\u3014\u3015")
#: Characters allowed between a phone's digits (any number of them).
_SEP = rf"[{_VISIBLE}{_INVISIBLE}]*"
#: Optional country prefix before a phone (+86, 0086, 86; full-width forms, separators too).
_COUNTRY = rf"(?:(?:[+＋]{_SEP}|[0０]{_SEP}[0０]{_SEP})?[8８]{_SEP}[6６]{_SEP})"
_PREFIX = _COUNTRY + "?"
#: Not inside a longer number: no digit right before or after, directly or across
#: invisible characters only (they render as one run of digits).
_BEFORE = rf"(?<!\d)(?<!\d[{_INVISIBLE}])(?<!\d[{_INVISIBLE}][{_INVISIBLE}])"
_AFTER = rf"(?![{_INVISIBLE}]*\d)"
#: A value that is only digits, separators and a leading plus is a phone (7+ digits).
_PHONE_CHARS = re.compile(rf"^[+＋]?[\d{_VISIBLE}{_INVISIBLE}]+$")
#: A value this long, with a digit or "@", is distinctive enough to look for everywhere.
DISTINCT_LENGTH = 6
#: Full-width digits (PostgreSQL regex classes; ``\d`` there is ASCII only).
_WIDE_DIGITS = "０-９"


def _wide(ch: str) -> str:
    """The full-width form of a printable ASCII character."""
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


def _class(ch: str) -> str:
    forms = dict.fromkeys((ch, ch.lower(), ch.upper(), _wide(ch.lower()), _wide(ch.upper())))
    return "[" + "".join(re.escape(f) for f in forms) + "]" if len(forms) > 1 else re.escape(ch)


def phone_digits(value: str) -> str | None:
    """The national digits (ASCII) of a phone-like value: 7+ digits in any width with only
    separators between them (``_SEP``); a +86/0086 prefix dropped. None for anything else."""
    text = value.strip()
    if not _PHONE_CHARS.match(text):
        return None
    digits = "".join(str(unicodedata.digit(ch)) for ch in text if ch.isdigit())
    if len(digits) < 7:
        return None
    for prefix in ("0086", "86"):
        rest = digits[len(prefix):]
        if digits.startswith(prefix) and (len(rest) == 11 and rest.startswith("1") or text[:1] in "+＋"):
            return rest
    return digits


def _phone_pattern(digits: str) -> str:
    """A phone's digits with any separators; a landline's trunk 0 may be left out only
    after the country prefix (``+86 755…``): ``1012345678`` alone is another number than
    ``010-12345678`` (a tracking number, an amount)."""
    body = _SEP.join(_class(d) for d in digits.lstrip("0"))
    if not digits.startswith("0"):
        return rf"{_BEFORE}{_PREFIX}(?:[(（]\s*)?{body}{_AFTER}"
    bracket = r"(?:[(（]\s*)?"
    lead = rf"(?:{_COUNTRY}{bracket}(?:[0０]{_SEP})?|{bracket}[0０]{_SEP})"
    return rf"{_BEFORE}{lead}{body}{_AFTER}"


#: Words that introduce an extension, read as a hyphen (``0755-12345678 转 801``).
_EXTENSION_WORDS = re.compile(r"\s*(?:转|轉|分机|ext\.?|x)\s*(?=\d{1,6}\s*$)", re.IGNORECASE)
#: A landline and its extension after a hyphen (``0755-12345678-801``; words read as one):
#: the number alone is the person's too.
_EXTENSION = re.compile(r"^(.*\d)\s*[-‐-―－]\s*\d{1,6}$")


def phone_forms(value: str) -> list[str]:
    """The national digits of a phone-like value (``phone_digits``), and of the landline
    without its extension when it has one (a landline is at most 12 digits with its 0)."""
    text = _EXTENSION_WORDS.sub("-", value.strip())
    digits = phone_digits(text)
    if digits is None:
        return []
    forms = [digits]
    split = _EXTENSION.match(text)
    if digits.startswith("0") and len(digits) > 12 and split:
        bare = phone_digits(split.group(1))
        if bare is not None and 10 <= len(bare) <= 12:
            forms.append(bare)
    return forms


def _phone_glob(digits: str) -> str:
    """SQLite GLOB: the digits in order (either width) with anything between. A JSON
    column's ``\\uff11`` escape of a full-width digit ends in the ASCII digit: matched too."""
    return "*" + "*".join(f"[{d}{_wide(d)}]" for d in digits.lstrip("0")) + "*"


def _phone_regex_sql(digits: str) -> str:
    """PostgreSQL regex: the digits in order (either width, or a JSON ``\\uffXX`` escape)
    with only non-digits (or JSON ``\\uXXXX`` escapes) between them."""
    between = rf"(?:[^0-9{_WIDE_DIGITS}]|\\u[0-9a-fA-F]{{4}})*"
    return between.join(rf"(?:[{d}{_wide(d)}]|\\uff1{d})" for d in digits.lstrip("0"))


def escaped(value: str) -> str:
    """``value`` as a JSON document stores it (non-ASCII as \\uXXXX escapes)."""
    return json.dumps(value)[1:-1]


def _email_pattern(value: str) -> str:
    return "".join(_class(ch) for ch in value)


def _is_email(value: str) -> bool:
    return "@" in value and " " not in value.strip() and len(value.strip()) >= 5


class Matcher:
    """The erased values as patterns. ``values``: every erased text value (others ignored)."""

    def __init__(self, values: Iterable[Any]) -> None:
        texts = sorted({v.strip() for v in values if isinstance(v, str) and len(v.strip()) >= 2 and v != ERASED},
                       key=len, reverse=True)
        self.values = tuple(texts)
        self.phones = tuple(dict.fromkeys(d for text in texts for d in phone_forms(text)))
        self.emails = tuple(v for v in texts if _is_email(v))
        masks = {mask_phone(v) for v in texts if phone_digits(v)} | {mask_phone(d) for d in self.phones}
        masks -= set(texts)
        others = [v for v in texts if not phone_digits(v) and not _is_email(v)] + sorted(masks, key=len, reverse=True)
        others.sort(key=len, reverse=True)
        self.others = tuple(others)
        self.distinct_others = tuple(v for v in others if len(v) >= DISTINCT_LENGTH
                                     and any(ch.isdigit() or ch == "@" for ch in v))
        strong = [_phone_pattern(d) for d in self.phones] + [_email_pattern(e) for e in self.emails]
        self._distinct = _compile(strong + [_whole(v) for v in self.distinct_others])
        self._any = _compile(strong + [_whole(v) for v in self.others])

    def __bool__(self) -> bool:
        return bool(self.values)

    @property
    def has_distinct(self) -> bool:
        """True when there is a phone, an e-mail or another distinctive value to look for."""
        return self._distinct is not None

    def distinct(self, text: str | None) -> bool:
        """``text`` holds a phone, an e-mail or another distinctive value of the person."""
        return bool(text) and self._distinct is not None and self._distinct.search(text) is not None

    def found(self, text: str | None) -> bool:
        """``text`` holds any of the values (names included)."""
        return bool(text) and self._any is not None and self._any.search(text) is not None

    def replace(self, text: str) -> str:
        """``text`` with every match (names included) replaced by ``ERASED``."""
        return self._any.sub(ERASED, text) if text and self._any is not None else text

    def redact(self, value: Any, names: bool = True) -> Any:
        """A decoded JSON value with every matching string part replaced (``names`` False:
        only strings holding a distinctive value are touched, all values in them replaced)."""
        if isinstance(value, dict):
            return {k: self.redact(v, names) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v, names) for v in value]
        if isinstance(value, str) and (self.distinct(value) if not names else self.found(value)):
            return self.replace(value)
        return value

    def prefilters(self, names: bool = False) -> tuple[str, ...]:
        """Lower-case substrings that any stored copy of an e-mail or another distinctive
        value contains (an e-mail's local part, the value itself); with ``names``, every
        other value too. For ``lower(column) LIKE '%…%'``. Phones have no such substring
        (any separator may split any two digits): ``candidates`` finds them."""
        locals_ = [e.split("@", 1)[0].lower() if len(e.split("@", 1)[0]) >= 3 else e.lower() for e in self.emails]
        found = [form for e in locals_ for form in (e, "".join(map(_wide, e)))]
        found += [v.lower() for v in (self.others if names else self.distinct_others)]
        return tuple(dict.fromkeys(found))

    def candidates(self, column: Any, dialect: str) -> Any:
        """SQL condition on a text expression ``column`` picking every row that may hold a
        distinctive value in any format (a superset; confirm with ``distinct``): a
        prefilter substring as typed or JSON-escaped, or a phone's digits in order (any
        width, any characters between on SQLite, only non-digits on PostgreSQL; other
        databases: the digits with ``%`` between, ASCII or full-width). ``false()`` when
        there is nothing distinctive."""
        forms = {form for p in self.prefilters() for form in (p, escaped(p).lower())}
        conditions = [func.lower(column).contains(f, autoescape=True) for f in sorted(forms)]
        for digits in self.phones:
            if dialect == "sqlite":
                conditions.append(column.op("GLOB")(_phone_glob(digits)))
            elif dialect == "postgresql":
                conditions.append(column.op("~")(_phone_regex_sql(digits)))
            else:
                conditions += [column.like("%" + "%".join(form) + "%")
                               for form in (digits.lstrip("0"), "".join(map(_wide, digits.lstrip("0"))))]
        return or_(*conditions) if conditions else false()


#: A letter of a script that separates words by spaces: not a digit, an underscore, a
#: CJK ideograph, kana, hangul, Thai, Lao, Myanmar, Khmer or a full-width form (those
#: scripts run names into the words around them).
_SPACED = (r"[^\W\d_\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u9fff\uac00-\ud7af"
           r"\uf900-\ufaff\uff00-\uffef]")
_SPACED_CHAR = re.compile(_SPACED)


def _whole(value: str) -> str:
    """``value`` as a pattern matching it only as a whole word where its script has words:
    ``En`` is a name in "Call En" and not in "open", ``Li`` not in "client"; ``王伟`` still
    matches in "和王伟通话", "Alice" in "NDA_Alice.pdf" and "Alice2". Every match is erased,
    so a match inside another word would rewrite words (and codes) that are not the
    person's. A value with a digit (an address, a masked phone) matches anywhere: it is
    not a short word that other words contain by chance."""
    pattern = re.escape(value)
    if any(ch.isdigit() for ch in value):
        return pattern
    if _SPACED_CHAR.fullmatch(value[0]):
        pattern = rf"(?<!{_SPACED}){pattern}"
    if _SPACED_CHAR.fullmatch(value[-1]):
        pattern = rf"{pattern}(?!{_SPACED})"
    return pattern


def _compile(patterns: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None
