"""Phone masking: ``138****5678`` everywhere unless a full number is explicitly revealed."""

from __future__ import annotations

import re

MASK = "****"


#: What an erased personal value holds (issue 19, ``app.services.erasure``): shown as is,
#: never masked into "(er****sed)"; screens translate it (``views.display``).
ERASED = "(erased)"


def mask_phone(value: str | None) -> str:
    """Keep the first 3 and last 4 digits of a mobile, the area code and last 4 of a landline."""
    if not value:
        return ""
    if value == ERASED:
        return value
    if "-" in value and value.startswith("0"):
        area, rest = value.split("-", 1)
        number = rest.split("-", 1)[0]
        return f"{area}-{MASK}{number[-4:]}" if len(number) > 4 else f"{area}-{MASK}"
    if len(value) <= 7:
        return MASK
    return f"{value[:3]}{MASK}{value[-4:]}"


def is_masked_echo(submitted: str | None, stored: str | None) -> bool:
    """True when a form/API sends back the masked value it was shown: keep the stored one."""
    return bool(submitted) and MASK in submitted and submitted.strip() == mask_phone(stored)


def masked_columns(model: type | None) -> frozenset[str]:
    """Columns of ``model`` that are shown masked: its ``masked_columns`` class attribute.

    Declared once per model (``Customer.masked_columns = ("contact_phone",)``); screens,
    the REST API and exports derive masking from it, and refuse ordering or filtering on
    these columns (a sort or a filter on a masked value is an oracle for the full value).
    """
    return frozenset(getattr(model, "masked_columns", ()) or ())


def is_masked_path(model: type, path: str) -> bool:
    """Whether ``path`` (``contact_phone`` or dotted ``customer.contact_phone``) ends on a
    masked column, following relationships from ``model``; unknown paths are not masked."""
    from sqlalchemy import inspect

    *relations, column = path.split(".")
    for name in relations:
        relationship = inspect(model).relationships.get(name)
        if relationship is None:
            return False
        model = relationship.mapper.class_
    return column in masked_columns(model)


def mask(value: object) -> str:
    """The masked text of a masked column's value (phones are the masked kind today)."""
    return mask_phone(None if value is None else str(value))


#: A number written into free text (8+ digits; spaces, dashes, dots or brackets between; a
#: leading +): a phone someone typed into a subject or a company name. Not after a Latin
#: letter or digit (codes such as C2026… and longer numbers stay), but after a Chinese
#: character, which a word boundary would not see (回访电话13800138000).
_PHONE_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])\+?\(?\d[\d \-.()]{6,}\d(?![A-Za-z0-9])")
#: A date (2026-03-10, 2026.03.10, 2026/3/10), possibly followed by a time: not a phone.
_DATE = re.compile(r"(?<!\d)\d{4}[-./]\d{1,2}[-./]\d{1,2}(?!\d)")


_LANDLINE = re.compile(r"0\d{2,3}-\d{7,8}")


def mask_phones_in(text: str | None) -> str:
    """``text`` with every phone-like number in it masked (``138****5678``), for texts that
    travel beyond the record's own page: notifications, e-mails, the calendar feed. Dates
    (and date-times) are left alone."""
    if not text:
        return text or ""
    return _PHONE_IN_TEXT.sub(_masked_number, text)


def _masked_number(match: re.Match) -> str:
    found = match.group(0)
    digits = "".join(ch for ch in found if ch.isdigit())
    if _DATE.search(found) or len(digits) < 8:
        return found
    # keep a landline's area code as written (010-****4321); other separators go
    if _LANDLINE.fullmatch(found):
        return mask_phone(found)
    return mask_phone(("+" if found.startswith("+") else "") + digits)
