"""Field rules shared by forms, the REST API, imports and the sync."""

from __future__ import annotations

import pytest

from app.models import CustomerSource
from app.services import validation
from app.services.validation import (
    check_choice,
    credit_code_check_char,
    normalize_credit_code,
    normalize_email,
    normalize_phone,
)

FIRST17 = "91350100M000100Y4"
CREDIT_CODE = FIRST17 + credit_code_check_char(FIRST17)


@pytest.mark.parametrize("raw", [
    "13812345678", "+8613812345678", "+86 138 1234 5678", "0086 138-1234-5678",
    "8613812345678", "138 1234 5678", " 138-1234-5678 ",
])
def test_mobile_numbers_are_normalised(ctx, raw):
    assert normalize_phone(raw) == "13812345678"


@pytest.mark.parametrize("raw,expected", [
    ("010-12345678", "010-12345678"),
    ("(0755)12345678", "0755-12345678"),
    ("0755 1234 5678", "0755-12345678"),
    ("+86 755 1234 5678", "0755-12345678"),
    ("0086 21 8765 4321", "021-87654321"),
    ("021-87654321转801", "021-87654321-801"),
    ("0755-12345678 ext 12", "0755-12345678-12"),
])
def test_landlines_get_area_code_dash_number(ctx, raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", [
    "13812345678", "010-12345678", "0755-12345678", "021-87654321-801", "0755-12345678-12",
])
def test_a_normalised_phone_is_accepted_again(ctx, raw):
    """Stored values are re-validated on every edit, so the output must be valid input."""
    assert normalize_phone(raw) == raw


@pytest.mark.parametrize("raw", ["1381234567", "12345678901", "23812345678", "138123456789",
                                 "1381234567a", "phone", "755 12345678", "123"])
def test_bad_phone_is_rejected_with_a_hint(ctx, raw):
    with pytest.raises(ValueError, match="Not a valid phone number"):
        normalize_phone(raw)


@pytest.mark.parametrize("raw", ["", "   ", None])
def test_missing_phone_is_required(ctx, raw):
    with pytest.raises(ValueError, match="required"):
        normalize_phone(raw)


def test_valid_credit_code_is_normalised_to_upper_case(ctx):
    assert normalize_credit_code(CREDIT_CODE) == CREDIT_CODE
    assert normalize_credit_code(f" {CREDIT_CODE.lower()} ") == CREDIT_CODE


def test_credit_code_with_wrong_check_character_is_rejected(ctx):
    wrong = FIRST17 + ("0" if CREDIT_CODE[-1] != "0" else "1")
    with pytest.raises(ValueError, match="checksum"):
        normalize_credit_code(wrong)


@pytest.mark.parametrize("raw", [CREDIT_CODE[:-1], CREDIT_CODE + "0"])
def test_credit_code_must_have_18_characters(ctx, raw):
    with pytest.raises(ValueError, match="18 characters"):
        normalize_credit_code(raw)


@pytest.mark.parametrize("letter", ["I", "O", "S", "V", "Z"])
def test_credit_code_letters_outside_the_standard_are_named(ctx, letter):
    with pytest.raises(ValueError, match=f"Character {letter} is not allowed"):
        normalize_credit_code(CREDIT_CODE[:8] + letter + CREDIT_CODE[9:])


@pytest.mark.parametrize("raw", ["", "  ", None])
def test_credit_code_is_optional(ctx, raw):
    assert normalize_credit_code(raw) is None


def test_email_is_trimmed_and_lower_cased(ctx):
    assert normalize_email("  Sales@Example.COM ") == "sales@example.com"
    assert normalize_email("") is None


@pytest.mark.parametrize("raw", ["sales", "sales@example", "sa les@example.com", "a@@example.com"])
def test_bad_email_is_rejected(ctx, raw):
    with pytest.raises(ValueError, match="e-mail"):
        normalize_email(raw)


def test_inactive_dictionary_entry_cannot_be_newly_picked(ctx):
    fax = CustomerSource(id=9001, code="fax", label_en="Fax", label_zh="传真", active=False)
    with pytest.raises(ValueError, match="Fax is no longer in use"):
        check_choice(fax, previous_id=None)
    with pytest.raises(ValueError, match="Fax is no longer in use"):
        check_choice(fax, previous_id=1)


def test_inactive_dictionary_entry_stays_on_records_that_had_it(ctx):
    fax = CustomerSource(id=9001, code="fax", label_en="Fax", label_zh="传真", active=False)
    check_choice(fax, previous_id=9001)
    check_choice(None, previous_id=9001)


def test_stored_extension_form_validates_again(ctx):
    stored = normalize_phone("0755-12345678转801")
    assert normalize_phone(stored) == stored == "0755-12345678-801"


@pytest.mark.parametrize("typed, stored", [
    ("１３８１２３４５６７０", "13812345670"),          # full-width digits (IME)
    ("138１２３４５６７１", "13812345671"),            # half and half
    ("\u202a138 1234 5672\u202c", "13812345672"),      # bidi marks copied from a chat app
    ("\ufeff138\u200b1234\u00a05673", "13812345673"),  # BOM, zero-width and no-break spaces
    ("13812345679.0", "13812345679"),                  # a CSV cell that went through a float
])
def test_phones_as_people_type_and_paste_them(ctx: object, typed: str, stored: str) -> None:
    assert validation.normalize_phone(typed) == stored


@pytest.mark.parametrize("typed", ["13812345679.5", "1.3812345679E10", "1381234567.8"])
def test_a_phone_with_a_real_fraction_is_refused(ctx: object, typed: str) -> None:
    with pytest.raises(ValueError):
        validation.normalize_phone(typed)


def test_text_keeps_what_was_written_without_invisible_characters(ctx: object) -> None:
    assert validation.clean_line(" 深圳\u3000前海\u200b科技 ") == "深圳 前海科技"
    assert validation.clean_line("ＡＣＭＥ") == "ＡＣＭＥ"  # a name keeps its width; searches fold it
    assert validation.clean_block("first\r\n\u00a0second  line\n\n") == "first\nsecond line"
    assert validation.normalize_email(" Ｌｉ＠Example.COM\u200b") == "li@example.com"
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in CREDIT_CODE)
    assert validation.normalize_credit_code(full_width + "\u200b") == CREDIT_CODE
