"""Duplicate detection: the manual's rule, the scan's clusters and the fuzzy name score."""

from __future__ import annotations

from typing import Any

from app.security.data_scope import visible_owner_ids
from app.services import dedup
from app.services.validation import credit_code_check_char
from tests.app.services.test_dedup_clusters import fresh_clusters  # noqa: F401 (autouse fixture)
from tests.conftest import user_id

CREDIT = "91350100M000100Y4" + credit_code_check_char("91350100M000100Y4")


def test_name_keys_ignore_width_case_spaces_and_legal_form() -> None:
    assert dedup.name_key("ＡＢＣ 科技（北京）") == dedup.name_key("abc科技(北京)")
    assert dedup.core_name("深圳前海微众科技有限公司") == dedup.core_name("深圳前海微众科技公司") == "深圳前海微众科技"
    assert dedup.core_name("Acme Co., Ltd.") == dedup.core_name("ACME Limited") == "acme"
    assert dedup.entry_key("A", "", "13800000000") is None  # blanks never match


def test_scan_groups_by_each_rule_within_scope(app: Any, ctx: Any, make_customer: Any) -> None:
    a1 = make_customer("rep_a", name="Credit One", credit_code=CREDIT, contact_phone="13800000001")
    a2 = make_customer("rep_b", name="Credit Two", credit_code=CREDIT, contact_phone="13800000002")
    p1 = make_customer("rep_a", name="Phone A", contact_phone="13900000009")
    p2 = make_customer("rep_a", name="Phone B", contact_phone="13900000009")
    n1 = make_customer("rep_a", name="同名公司", contact_name="王五", contact_phone="13700000001")
    n2 = make_customer("rep_b", name="同名 公司", contact_name="王五", contact_phone="13700000002")
    f1 = make_customer("rep_a", name="深圳前海微众科技有限公司", contact_phone="13600000001")
    f2 = make_customer("rep_a", name="深圳前海微众科技公司", contact_phone="13600000002")
    make_customer("rep_a", name="Completely different", contact_phone="13500000001")
    far = make_customer("rep_c", name="深圳前海微众科技有限公司", contact_phone="13600000003")

    clusters = {tuple(c.ids): c for c in dedup.scan(None)}
    assert clusters[(a1, a2)].rules == {dedup.CREDIT}
    assert clusters[(p1, p2)].rules == {dedup.PHONE}
    assert clusters[(n1, n2)].rules >= {dedup.NAME_CONTACT}
    assert (f1, f2, far) in clusters and clusters[(f1, f2, far)].rules == {dedup.FUZZY}
    assert len(clusters) == 4

    from app.extensions import appbuilder

    scoped = {tuple(c.ids) for c in dedup.scan(visible_owner_ids(appbuilder.sm.find_user("rep_a")))}
    assert (f1, f2) in scoped and (p1, p2) in scoped
    assert all(far not in ids and a2 not in ids for ids in scoped)  # others' customers stay out
    assert user_id("rep_c") != user_id("rep_a")


def test_entry_rule_finds_same_name_contact_phone_or_credit_code(app: Any, ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_b", name="Acme Ltd", contact_name="Zhou", contact_phone="13800000001", credit_code=CREDIT)
    found = dedup.matches_for_entry("ACME  ltd", "zhou", "13800000001", None)
    assert [(c.id, rule) for c, rule in found] == [(pk, dedup.NAME_CONTACT)]
    assert [rule for _, rule in dedup.matches_for_entry("Other", "x", "13900000000", CREDIT)] == [dedup.CREDIT]
    assert dedup.matches_for_entry("Acme Ltd", "Someone else", "13800000001", None) == []
    assert dedup.matches_for_entry("Acme Ltd", "Zhou", "13800000001", None, exclude_id=pk) == []


def test_names_whose_numbers_differ_are_not_similar(app: Any, ctx: Any, make_customer: Any) -> None:
    """Numbered branches and stores are different companies one character apart; a typo
    elsewhere in the name still matches."""
    one = make_customer("rep_a", name="深圳华腾信息科技1号店有限公司", contact_phone="13600000011")
    make_customer("rep_a", name="深圳华腾信息科技2号店有限公司", contact_phone="13600000012")
    make_customer("rep_a", name="上海锦程国际物流第一分公司", contact_phone="13600000013")
    make_customer("rep_a", name="上海锦程国际物流第二分公司", contact_phone="13600000014")
    typo = make_customer("rep_a", name="深圳华藤信息科技1号店有限公司", contact_phone="13600000015")
    assert [(c.ids, c.rules) for c in dedup.scan(None)] == [([one, typo], {dedup.FUZZY})]
