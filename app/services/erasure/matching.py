"""How an erasure finds the person's values in stored text (issue 19): not only as typed.

- a phone matches with any separators between its digits (spaces, ``-``, ``.``,
  parentheses, full-width forms), an optional ``+86`` / ``0086`` / ``86`` prefix, full-width
  digits, and a landline's leading 0 dropped after the prefix: ``139-7771-2345``,
  ``+86 139 7771 2345``, ``(139)77712345`` are all ``13977712345``;
- an e-mail matches case-insensitively, full-width letters too
  (``WANG.YINSI@EXAMPLE.CN``);
- any other value (a name, an address) matches as written (case-insensitively for Latin
  letters); a phone's masked form (``139****2345``) as written.

A ``Matcher`` answers "does this text hold the person's data" (``distinct``: a phone, an
e-mail or another distinctive value; ``found``: any value, names included) and replaces
every match with ``ERASED``. ``prefilters`` are cheap lower-case substrings a SQL
``lower(column) LIKE`` can use to pick candidate rows (a phone's last 4 digits, an
e-mail's local part), to be confirmed in Python by the regex.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from app.security.masking import mask_phone
from app.services.audit import ERASED

#: Characters allowed between a phone's digits.
_SEP = r"[\s\-.()（）\u2010-\u2015\uff0d\u3000]*"
#: Optional country prefix before a phone (+86, 0086, 86; full-width plus too).
_PREFIX = r"(?:(?:\+|＋|00)?\s*(?:86|８６)" + _SEP + r")?"
#: A value this long, with a digit or "@", is distinctive enough to look for everywhere.
DISTINCT_LENGTH = 6
_PHONE_CHARS = re.compile(r"^[\d\s\-.()+（）＋]+$")


def _wide(ch: str) -> str:
    """The full-width form of a printable ASCII character."""
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


def _class(ch: str) -> str:
    forms = dict.fromkeys((ch, ch.lower(), ch.upper(), _wide(ch.lower()), _wide(ch.upper())))
    return "[" + "".join(re.escape(f) for f in forms) + "]" if len(forms) > 1 else re.escape(ch)


def phone_digits(value: str) -> str | None:
    """The national digits of a phone-like value (7+ digits, only digits and separators;
    a +86/0086 prefix dropped), None for anything else."""
    text = value.strip()
    if not _PHONE_CHARS.match(text):
        return None
    digits = re.sub(r"\D", "", text)
    if len(digits) < 7:
        return None
    for prefix in ("0086", "86"):
        rest = digits[len(prefix):]
        if digits.startswith(prefix) and (len(rest) == 11 and rest.startswith("1") or text.lstrip().startswith("+")):
            return rest
    return digits


def _phone_pattern(digits: str) -> str:
    body = _SEP.join(_class(d) for d in digits.lstrip("0"))
    lead = "0?" if digits.startswith("0") else ""
    return rf"(?<![0-9０-９]){_PREFIX}(?:[(（]\s*)?{lead}{body}(?![0-9０-９])"


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
        self.phones = tuple(dict.fromkeys(d for d in map(phone_digits, texts) if d))
        self.emails = tuple(v for v in texts if _is_email(v))
        masks = {mask_phone(v) for v in texts if phone_digits(v)} - set(texts)
        others = [v for v in texts if not phone_digits(v) and not _is_email(v)] + sorted(masks, key=len, reverse=True)
        others.sort(key=len, reverse=True)
        self.others = tuple(others)
        self.distinct_others = tuple(v for v in others if len(v) >= DISTINCT_LENGTH
                                     and any(ch.isdigit() or ch == "@" for ch in v))
        strong = [_phone_pattern(d) for d in self.phones] + [_email_pattern(e) for e in self.emails]
        self._distinct = _compile(strong + [re.escape(v) for v in self.distinct_others])
        self._any = _compile(strong + [re.escape(v) for v in self.others])

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
        """Lower-case substrings that any stored copy of a distinctive value contains (a
        phone's last 4 digits, an e-mail's local part, the other distinctive values);
        with ``names``, every other value too. For ``lower(column) LIKE '%…%'``."""
        found = [form for d in self.phones for form in (d[-4:], "".join(map(_wide, d[-4:])))]
        locals_ = [e.split("@", 1)[0].lower() if len(e.split("@", 1)[0]) >= 3 else e.lower() for e in self.emails]
        found += [form for e in locals_ for form in (e, "".join(map(_wide, e)))]
        found += [v.lower() for v in (self.others if names else self.distinct_others)]
        return tuple(dict.fromkeys(found))


def _compile(patterns: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None
