"""Dictionary values as people write them: the GB/T 4754 industries, aliases on every entry,
the lookup that imports and the sync use, the rules of saving an alias."""

from __future__ import annotations

import io
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models.dictionaries import DICTIONARIES, CustomerLevel, CustomerSource, Industry
from app.services import dictionaries
from app.services.errors import RuleViolation

#: What people write -> the entry it must find (dictionary, code).
WRITTEN = [
    (Industry, "信息技术", "I"), (Industry, "IT", "I"), (Industry, "ＩＴ", "I"), (Industry, "软件", "65"),
    (Industry, "软件开发", "65"), (Industry, "互联网", "64"), (Industry, "教育", "83"), (Industry, "医疗", "84"),
    (Industry, "卫生", "84"), (Industry, "零售业", "52"), (Industry, "零售", "52"), (Industry, "制造", "C"),
    (Industry, "制造业", "C"), (Industry, "汽车制造", "36"), (Industry, "Automotive", "36"), (Industry, "65", "65"),
    (Industry, "i", "I"), (Industry, "信息传输、软件和信息技术服务业 > 软件和信息技术服务业", "65"),
    (Industry, "Education", "83"), (Industry, "房地产", "70"),
    (CustomerLevel, "重要", "A"), (CustomerLevel, "重点", "A"), (CustomerSource, "官网", "website"),
    (CustomerSource, "官网表单", "website"), (CustomerSource, "官網表單", "website"),
]


def test_industries_are_the_gbt4754_sections_and_divisions(ctx: Any) -> None:
    entries = db.session.scalars(select(Industry)).all()
    sections = {e.code: e for e in entries if e.parent_id is None}
    divisions = {e.code: e for e in entries if e.parent_id is not None}
    assert sorted(sections) == [chr(c) for c in range(ord("A"), ord("T") + 1)]
    assert sorted(divisions) == [f"{n:02d}" for n in range(1, 98)]
    assert (sections["I"].label_zh, sections["I"].label_en) == (
        "信息传输、软件和信息技术服务业", "Information Transmission, Software and Information Technology Services")
    assert divisions["65"].parent is sections["I"] and divisions["52"].label_zh == "零售业"
    assert divisions["36"].parent is sections["C"] and divisions["97"].parent is sections["T"]


@pytest.mark.parametrize(("model", "written", "code"), WRITTEN)
def test_what_people_write_finds_the_entry(ctx: Any, model: type, written: str, code: str) -> None:
    assert dictionaries.DictionaryLookup(model).find(written).code == code


def test_unknown_and_ambiguous_values_say_so(ctx: Any) -> None:
    lookup = dictionaries.DictionaryLookup(Industry)
    with pytest.raises(ValueError, match="not in the list"):
        lookup.find("星际旅行")
    with pytest.raises(ValueError, match="several entries"):
        lookup.find("其他")  # 其他采矿业, 其他制造业, 其他金融业, 其他服务业


def test_every_seeded_entry_passes_the_rules(ctx: Any) -> None:
    """No seeded alias names two entries (the save rule would refuse it)."""
    for model in DICTIONARIES:
        for entry in db.session.scalars(select(model)).all():
            dictionaries.check_entry(entry)
    db.session.rollback()


def test_alias_that_names_another_entry_is_refused_at_save(ctx: Any) -> None:
    software = db.session.scalar(select(Industry).where(Industry.code == "65"))
    software.aliases = "软件\n互联网"  # 互联网 is the alias of 64
    with pytest.raises(RuleViolation) as caught:
        dictionaries.check_entry(software)
    assert "互联网" in str(caught.value.errors["aliases"]) and "64" in str(caught.value.errors["aliases"])
    db.session.rollback()

    software.aliases = "零售业"  # the label of 52
    with pytest.raises(RuleViolation, match="零售业"):
        dictionaries.check_entry(software)
    db.session.rollback()

    new = Industry(code="X1", label_en="Cloud", label_zh="IT", sort_order=1, active=True)  # IT is I's alias
    with pytest.raises(RuleViolation) as caught:
        dictionaries.check_entry(new)
    assert "label_zh" in caught.value.errors
    db.session.rollback()


def test_aliases_are_normalised_when_saved(ctx: Any) -> None:
    entry = db.session.scalar(select(Industry).where(Industry.code == "65"))
    entry.aliases = " ＳａａＳ ,云服务、 云计算\n\n云服务；软件和信息技术服务业"
    dictionaries.check_entry(entry)
    assert entry.aliases == "SaaS\n云服务\n云计算"  # NFKC, split, repeats and its own label dropped
    assert entry.alias_list == ["SaaS", "云服务", "云计算"]
    db.session.rollback()
    with pytest.raises(ValueError, match="At most"):
        dictionaries.normalise_aliases("x" * 101)
    with pytest.raises(ValueError, match="At most"):
        dictionaries.normalise_aliases(",".join(f"a{n}" for n in range(51)))


def test_a_section_and_its_division_with_one_name_give_the_division(ctx: Any) -> None:
    lookup = dictionaries.DictionaryLookup(Industry)
    assert lookup.find("教育").code == "83" and lookup.find("国际组织").code == "97"
    assert lookup.find("P").code == "P"  # the code still names the section


def test_import_template_lists_every_industry_on_the_hidden_sheet(client: Any, auth: Any) -> None:
    auth.login("rep_a")
    response = client.get("/imports/template/customer")
    workbook = load_workbook(io.BytesIO(response.data))
    sheet, lists = workbook.worksheets[0], workbook["lists"]
    column = [c.value for c in sheet[1]].index("Industry") + 1
    values = [r[0] for r in lists.iter_rows(min_col=column, max_col=column, values_only=True) if r[0]]
    assert len(values) == 117 and "Information Transmission, Software and Information Technology Services" in values
    validation = next(dv for dv in sheet.data_validations.dataValidation if f"${chr(64 + column)}$117" in dv.formula1)
    assert validation.type == "list" and "lists" in validation.formula1
    assert validation.errorStyle == "warning"  # an alias typed over the dropdown is accepted by the import


def test_demo_customers_use_gbt_divisions(ctx: Any) -> None:
    from app.services.demo_data import TRADES
    from app.services.demo_setup import _dictionaries

    industries = _dictionaries()["industry"]
    assert {i.code for i in industries} == set(TRADES)
