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
