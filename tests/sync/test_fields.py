"""Canonical text: formatting noise is not a change; dates and dictionary values round-trip."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from openpyxl import Workbook

from app.services.importing import columns
from sync.backends import _set
from sync.fields import FieldCodec, cell_text


def test_cells_and_dates_have_one_canonical_text(app: Any, ctx: Any) -> None:
    codec = FieldCodec(columns.FOLLOW_UP, ["next_step_date", "method", "content"], chinese=True, reveal_phone=True)
    for typed in ("2024-05-01", "2024/5/1", "2024年5月1日", datetime(2024, 5, 1), 45413):
        assert codec.sheet_text("next_step_date", typed) == "2024-05-01"
    assert codec.display("next_step_date", "2024-05-01") == date(2024, 5, 1)  # a real date in the workbook
    assert codec.sheet_text("method", "电话") == codec.sheet_text("method", "Phone") == "phone"
    assert codec.display("method", "phone") == "电话"
    assert codec.sheet_text("next_step_date", "someday") == "someday"  # kept as typed for the error message
    assert cell_text(13800000001.0) == "13800000001"


def test_customer_phone_noise_is_not_a_change(app: Any, ctx: Any) -> None:
    codec = FieldCodec(columns.CUSTOMER, ["contact_phone", "industry"], chinese=False, reveal_phone=True)
    assert codec.sheet_text("contact_phone", "+86 138-0000-0001") == "13800000001"
    assert codec.sheet_text("contact_phone", "138****0001") == "138****0001"  # a masked echo stays masked
    assert codec.sheet_text("industry", "汽车制造") == "36" and codec.display("industry", "36") == "Manufacture of Automobiles"


def test_xlsx_cells_keep_formula_text_and_real_dates() -> None:
    sheet = Workbook().active
    _set(sheet["A1"], "=SUM(A2:A3)")
    _set(sheet["B1"], date(2024, 5, 1))
    assert sheet["A1"].data_type == "s" and sheet["A1"].value == "=SUM(A2:A3)"
    assert sheet["B1"].is_date and sheet["B1"].number_format == "yyyy-mm-dd"


@pytest.mark.parametrize(("text", "shown"), [
    ("13800001234 is not in the list", "138****1234 is not in the list"),
    ("+86 138 0000 1234; 0755-87654321", "138****1234; 0755-****4321"),
    ("C20240501001, G20240501002, 2024-05-01 10:00, row 12", "C20240501001, G20240501002, 2024-05-01 10:00, row 12"),
    ("138****1234", "138****1234"),
    ("e.g. 010-12345678.", "e.g. 010-12345678."),  # the rules' own sample number stays readable
])
def test_phones_in_sync_messages_are_masked(text: str, shown: str) -> None:
    from sync.fields import mask_phones_in

    assert mask_phones_in(text) == shown
