"""Phone masking: ``138****5678`` everywhere unless a full number is explicitly revealed."""

from __future__ import annotations

MASK = "****"


def mask_phone(value: str | None) -> str:
    """Keep the first 3 and last 4 digits of a mobile, the area code and last 4 of a landline."""
    if not value:
        return ""
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
