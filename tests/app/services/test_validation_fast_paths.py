"""The cleaners' fast paths (issue 12: imports clean 100,000s of cells) give exactly what
their definitions say, for every odd space and invisible character and mixes of them."""

from __future__ import annotations

import itertools
import re
import sys
import unicodedata

from app.services import validation
from app.services.validation import INVISIBLE, ODD_SPACES


def _line_by_definition(raw: object) -> str:
    text = INVISIBLE.sub("", "" if raw is None else str(raw))
    return " ".join(ODD_SPACES.sub(" ", text).split())


def _block_by_definition(raw: object) -> str:
    text = INVISIBLE.sub("", "" if raw is None else str(raw)).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(" ".join(ODD_SPACES.sub(" ", line).split()) for line in text.split("\n")).strip("\n")


def _code_by_definition(raw: object) -> str:
    return INVISIBLE.sub("", unicodedata.normalize("NFKC", "" if raw is None else str(raw))).strip()


def _samples() -> list[object]:
    odd = [chr(c) for c in range(sys.maxunicode + 1) if ODD_SPACES.match(chr(c)) or INVISIBLE.match(chr(c))]
    words = ["", "a", "测试", " x ", "１３９", "Ａ＠ｂ", "\n", "\r\n", "\r", "\t", "line\nnext", " ", "\x1c"]
    mixed = [a + b + c for a, b, c in itertools.product(words, odd + [" ", "\n"], words)]
    return [None, 0, 12.5, *words, *odd, *mixed, "  多行\r\n\r\n  备注\u3000内容  \n\n", "ｔｅｓｔ\u200b@ｘ.ｃｎ"]


def test_cleaners_match_their_definition():
    samples = _samples()
    assert len(samples) > 5000
    for raw in samples:
        assert validation.clean_line(raw) == _line_by_definition(raw), repr(raw)
        assert validation.clean_block(raw) == _block_by_definition(raw), repr(raw)
        assert validation.clean_code(raw) == _code_by_definition(raw), repr(raw)


def test_phone_fast_path_matches_the_full_rule():
    """A plain mobile number takes the short way; the answers are the rule's (normalised
    full-width digits, noise removed, +86 dropped, landlines, refusals)."""
    assert validation.normalize_phone("13912345678") == "13912345678"
    assert validation.normalize_phone("１３９１２３４５６７８") == "13912345678"
    assert validation.normalize_phone(" 139 1234 5678\u200b") == "13912345678"
    assert validation.normalize_phone("+86 139-1234-5678") == "13912345678"
    assert validation.normalize_phone("13912345678.0") == "13912345678"
    assert validation.normalize_phone("075512345678转12") == "0755-12345678-12"
    for bad in ("12912345678", "1391234567", "139123456789", "13912345678.5"):
        try:
            validation.normalize_phone(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} was accepted")


def test_credit_code_empty_is_none():
    assert validation.normalize_credit_code(None) is None
    assert validation.normalize_credit_code("") is None
    assert validation.normalize_credit_code(" \u200b ") is None
    assert re.fullmatch(r"[0-9A-Z]{18}", validation.normalize_credit_code("91350100M000100Y43"))
