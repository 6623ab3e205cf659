"""Phone and credit-code rules (the same functions serve forms, API, import and sync)."""

from __future__ import annotations

import pytest

from app.services.validation import credit_code_check_char, normalize_credit_code, normalize_phone

VALID_CREDIT = "91350100M000100Y4"  # 17 chars; the check character is computed below


@pytest.mark.parametrize("raw,expected", [
    ("13812345678", "13812345678"),
    ("+86 138-1234-5678", "13812345678"),
    ("0086 13812345678", "13812345678"),
    ("010-12345678", "010-12345678"),
    ("(0755) 1234 5678", "0755-12345678"),
    ("+86 755 1234 5678", "0755-12345678"),
    ("021-87654321转801", "021-87654321-801"),
])
def test_phone_normalised(ctx, raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["", "12345", "12812345678", "1381234567x", "755 12345678", "138123456789"])
def test_bad_phone_has_a_message(ctx, raw):
    with pytest.raises(ValueError, match="."):
        normalize_phone(raw)


def test_credit_code_checksum(ctx):
    good = VALID_CREDIT + credit_code_check_char(VALID_CREDIT)
    assert normalize_credit_code(good.lower()) == good
    assert normalize_credit_code("  ") is None
    wrong = VALID_CREDIT + ("0" if good[-1] != "0" else "1")
    for bad, message in ((wrong, "checksum"), (good[:-1], "18"), ("I" + good[1:], "not allowed")):
        with pytest.raises(ValueError, match=message):
            normalize_credit_code(bad)


def test_published_credit_code_is_accepted(ctx):
    """A real code format from GB 32100-2015 examples."""
    assert normalize_credit_code("91350100M000100Y43") == "91350100M000100Y43"
