"""Remembered values (issue 11 §4): ``add_alias`` and ``remember_value`` are the one door to
"this text means that entry"; they clean the text the way lookups compare it, refuse what
would name two entries, an inactive or foreign entry, and a user who may not edit the
dictionaries; they audit."""

from __future__ import annotations

from typing import Any

import pytest
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import AuditLog, CustomerLevel, Industry
from app.services import dictionaries
from app.services.errors import RuleViolation
from tests.app.services.importing.value_mapping_helpers import dictionaries_restored


@pytest.fixture
def restored(app: Any) -> Any:
    with dictionaries_restored(app):
        yield


def _user(name: str) -> User:
    return appbuilder.sm.find_user(username=name)


def _industry(code: str) -> Industry:
    return db.session.scalar(select(Industry).where(Industry.code == code))


def test_an_alias_is_stored_cleaned_and_found_in_any_width_or_case(app: Any, ctx: Any, restored: Any) -> None:
    education = _industry("83")
    stored = dictionaries.add_alias(education, "\u202aＥＤＵ  Ｘ\u202c ", _user("admin"), reason="import #1")
    db.session.commit()
    assert stored == "EDU X" and education.alias_list[-1] == "EDU X"
    lookup = dictionaries.DictionaryLookup(Industry)
    for written in ("edu x", "EDUX", "ｅｄｕｘ", "edu\u200bx"):
        assert lookup.find(written) is education
    entry = db.session.scalar(select(AuditLog).where(AuditLog.object_type == "Industry",
                                                     AuditLog.object_id == str(education.id))
                              .order_by(AuditLog.seq.desc()).limit(1))
    assert "EDU X" in entry.changes and entry.reason == "import #1"


def test_an_alias_that_is_already_its_own_name_changes_nothing(ctx: Any, restored: Any) -> None:
    education = _industry("83")
    before = education.aliases
    assert dictionaries.add_alias(education, "ｅｄｕｃａｔｉｏｎ", _user("admin")) == "education"
    assert education.aliases == before


@pytest.mark.parametrize(("text", "message"), [
    ("互联网", "互联网 already names"),  # the alias of 64
    ("零售业", "零售业 already names"),  # the label of 52
    ("教育, 培训", "contains a comma"),  # the dictionary screen would split it in two
    ("   ", "empty"),
    ("长" * 101, "At most 100 characters"),
])
def test_an_alias_that_would_be_ambiguous_or_unstorable_is_refused(ctx: Any, restored: Any, text: str,
                                                                   message: str) -> None:
    education = _industry("83")
    before = education.aliases
    with pytest.raises(RuleViolation, match=message):
        dictionaries.add_alias(education, text, _user("admin"))
    assert education.aliases == before
    db.session.rollback()
    assert _industry("83").aliases == before


def test_only_dictionary_editors_may_add_aliases(ctx: Any, restored: Any) -> None:
    for name in ("rep_a", "manager", "service"):
        with pytest.raises(RuleViolation) as refused:
            dictionaries.add_alias(_industry("83"), "教育x", _user(name))
        assert refused.value.status == 403
        with pytest.raises(RuleViolation):
            dictionaries.remember_value(_user(name), Industry, _industry("83").id, "教育x", everyone=True)
    assert "教育x" not in _industry("83").alias_list


def test_a_personal_value_is_kept_for_that_user_only(ctx: Any, restored: Any) -> None:
    rep = _user("rep_a")
    entry = dictionaries.remember_value(rep, Industry, str(_industry("83").id), " 教育Ｘ ", everyone=False,
                                        reason="import #7")
    db.session.commit()
    assert entry.code == "83" and "教育x" not in entry.alias_list
    assert dictionaries.personal_values(rep.id, Industry) == {"教育x": entry.id}
    assert dictionaries.personal_values(_user("rep_b").id, Industry) == {}
    assert dictionaries.personal_values(rep.id, CustomerLevel) == {}
    logged = db.session.scalar(select(AuditLog).where(AuditLog.action == "value_mapping"))
    assert logged.object_id == str(entry.id) and "教育Ｘ" not in logged.detail and "教育X" in logged.detail


def test_a_personal_value_naming_another_entry_is_refused(ctx: Any, restored: Any) -> None:
    with pytest.raises(RuleViolation, match=r"互联网 already names .*\(64\)"):
        dictionaries.remember_value(_user("rep_a"), Industry, _industry("83").id, "互联网", everyone=False)


def test_personal_values_are_bounded(ctx: Any, restored: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(dictionaries, "MAX_PERSONAL_VALUES", 3)
    rep = _user("rep_a")
    for n in range(5):
        dictionaries.remember_value(rep, Industry, _industry("83").id, f"教育{n}号", everyone=False)
    dictionaries.remember_value(rep, Industry, _industry("84").id, "教育2号", everyone=False)  # chosen again: newest
    assert list(dictionaries.personal_values(rep.id, Industry)) == ["教育3号", "教育4号", "教育2号"]


@pytest.mark.parametrize("everyone", [True, False])
def test_only_an_active_entry_of_the_same_dictionary_can_be_picked(ctx: Any, restored: Any, everyone: bool) -> None:
    retired = Industry(code="X9", label_en="Retired", label_zh="停用行业", sort_order=9999, active=False)
    db.session.add(retired)
    db.session.flush()
    admin = _user("admin")
    with pytest.raises(RuleViolation, match="is inactive and cannot be picked for 教育x"):
        dictionaries.remember_value(admin, Industry, retired.id, "教育x", everyone)
    level_ids = set(db.session.scalars(select(CustomerLevel.id)))
    industry_only = next(pk for pk in db.session.scalars(select(Industry.id)) if pk not in level_ids)
    for foreign in (industry_only, "0", "", "abc", "1e3", "٣", "99999999999"):
        with pytest.raises(RuleViolation, match="Pick an entry of the list for 超级重要"):
            dictionaries.remember_value(admin, CustomerLevel, foreign, "超级重要", everyone)
    assert not any("超级重要" in e.alias_list for e in db.session.scalars(select(CustomerLevel)))
    db.session.rollback()


def test_the_lookup_remembers_misses(ctx: Any, monkeypatch: Any) -> None:
    """A large file repeats its unknown value: one scan of every name per distinct value, not per row."""
    lookup = dictionaries.DictionaryLookup(Industry)
    scans = []
    original = lookup._contained
    monkeypatch.setattr(lookup, "_contained", lambda key: scans.append(key) or original(key))
    for _ in range(1000):
        with pytest.raises(dictionaries.UnknownValue, match="教育x is not in the list") as raised:
            lookup.find("教育x")
        assert not raised.value.ambiguous
    with pytest.raises(dictionaries.UnknownValue) as raised:
        lookup.find("其他")
    assert raised.value.ambiguous and len(scans) == 2
