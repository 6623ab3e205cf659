"""Organisation → Custom fields use cases (issue 18): definitions checked before anything is
written, Admin only, delete only when unused, purge behind a step-up and audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditLog
from app.models.custom_fields import CustomField
from app.models.customers import Customer
from app.models.org import CrmUser
from app.security import step_up
from app.services import custom_fields
from app.services.custom_fields import admin
from app.services.customers import save_customer
from app.services.errors import RuleForbidden, RuleViolation

SIZE = {"record_type": "customer", "key": "size", "label_en": "Company size", "label_zh": "客户规模",
        "kind": "choice", "choices": "small | Small | 小型\nlarge | Large | 大型 | #D9534F", "searchable": "on"}


def _user(name: str) -> CrmUser:
    return db.session.query(CrmUser).filter_by(username=name).one()


@pytest.fixture
def ctx(app: Any) -> Any:
    with app.app_context():
        yield
        db.session.rollback()
        db.session.remove()


def _errors(values: dict, pk: Any = None) -> dict[str, str]:
    with pytest.raises(RuleViolation) as caught:
        admin.save_field(values, _user("admin"), pk=pk)
    db.session.rollback()
    return caught.value.errors


def test_admin_adds_a_choice_field_customers_then_carry(ctx: None) -> None:
    row = admin.save_field(dict(SIZE), _user("admin"))
    db.session.commit()
    assert row.choices[1] == {"code": "large", "label_en": "Large", "label_zh": "大型", "active": True,
                              "colour": "#d9534f"}
    assert row.active and row.searchable and row.index_name == "ix_cf_customer_size"
    item = save_customer({"name": "华腾", "contact_phone": "13812345678", "cf_size": "大型"}, _user("rep_a"))
    db.session.commit()
    assert db.session.get(Customer, item.id).custom == {"size": "large"}
    assert db.session.scalar(select(AuditLog).where(AuditLog.object_type == "CustomField")) is not None


@pytest.mark.parametrize("name", ["rep_a", "manager", "viewer", "service"])
def test_only_an_admin_changes_fields(ctx: None, name: str, make_custom_field: Any) -> None:
    pk = make_custom_field("customer", "years", "integer")
    for call in (lambda: admin.save_field(dict(SIZE), _user(name)), lambda: admin.delete_field(pk, _user(name)),
                 lambda: admin.set_active(pk, _user(name), False), lambda: admin.purge_field(pk, _user(name))):
        with pytest.raises(RuleForbidden):
            call()
    assert db.session.scalar(select(CustomField.key).where(CustomField.key == "size")) is None


def test_every_rule_is_named_by_field(ctx: None) -> None:
    errors = _errors({"record_type": "planet", "key": "2bad", "label_en": "", "label_zh": "x" * 101,
                      "kind": "colour"})
    assert set(errors) == {"record_type", "key", "label_en", "label_zh", "kind"}
    assert set(_errors({**SIZE, "choices": ""})) == {"choices"}
    assert "Line 2" in _errors({**SIZE, "choices": "a | A | 甲\nb c | B | 乙"})["choices"]
    assert "Line 2" in _errors({**SIZE, "choices": "a | A | 甲\na | B | 乙"})["choices"]
    assert "#rrggbb" in _errors({**SIZE, "choices": "a | A | 甲 | red"})["choices"]
    assert set(_errors({**SIZE, "kind": "tags", "dictionary": "dict_industry", "choices": ""})) == {"dictionary"}
    assert set(_errors({**SIZE, "kind": "decimal", "places": "9", "default": "abc"})) == {"places"}
    assert set(_errors({**SIZE, "kind": "decimal", "default": "abc"})) == {"default"}
    assert set(_errors({**SIZE, "kind": "text", "max_length": "0"})) == {"max_length"}
    assert set(_errors({**SIZE, "default": "huge"})) == {"default"}


def test_default_is_stored_as_a_value_and_dictionaries_give_choices(ctx: None) -> None:
    row = admin.save_field({**SIZE, "default": "大型"}, _user("admin"))
    assert row.default == "large"
    years = admin.save_field({"record_type": "customer", "key": "years", "label_en": "Years", "label_zh": "合作年限",
                              "kind": "decimal", "places": "1", "default": "１２.３"}, _user("admin"))
    assert years.default == "12.3" and years.places == 1
    industry = admin.save_field({"record_type": "customer", "key": "sector", "label_en": "Sector",
                                 "label_zh": "所属板块", "kind": "choice", "dictionary": "dict_industry"}, _user("admin"))
    assert industry.dictionary == "dict_industry" and industry.choices is None
    # a label a built-in column already answers to would map a workbook's column to that column
    assert set(_errors({**SIZE, "key": "trade", "label_zh": "行业"})) == {"label_zh"}
    # two choices read alike: a cell, a filter or a report group could not tell them apart
    assert set(_errors({**SIZE, "key": "tier", "label_en": "Tier", "label_zh": "层级",
                        "choices": "p | Same | 同\nq | same | 异"})) == {"choices"}


def test_key_is_unique_and_fixed_kind_fixed_once_used(ctx: None) -> None:
    row = admin.save_field(dict(SIZE), _user("admin"))
    db.session.commit()
    assert set(_errors(dict(SIZE))) == {"key"}
    assert set(_errors({**SIZE, "key": "other", "record_type": "lead"}, pk=row.id)) == {"key", "record_type"}
    save_customer({"name": "A", "contact_phone": "13812345678", "cf_size": "small"}, _user("rep_a"))
    db.session.commit()
    assert "1 records" in _errors({**SIZE, "kind": "text"}, pk=row.id)["kind"]


def test_a_held_choice_can_be_deactivated_not_removed(ctx: None) -> None:
    row = admin.save_field(dict(SIZE), _user("admin"))
    db.session.commit()
    item = save_customer({"name": "A", "contact_phone": "13812345678", "cf_size": "large"}, _user("rep_a"))
    db.session.commit()
    assert "large" in _errors({**SIZE, "choices": "small | Small | 小型"}, pk=row.id)["choices"]
    admin.save_field({**SIZE, "choices": "small | Small | 小型\nlarge | Large | 大型 | | inactive"}, _user("admin"),
                     pk=row.id)
    db.session.commit()
    field = custom_fields.field_named("customer", "size")
    assert [c.code for c in field.offered] == ["small"] and field.choice("large").active is False
    assert db.session.get(Customer, item.id).custom == {"size": "large"}
    assert "inactive" in admin.choice_lines(db.session.get(CustomField, row.id).choices)


def test_deactivated_field_keeps_values_and_delete_needs_it_unused(ctx: None, make_custom_field: Any) -> None:
    row = admin.save_field(dict(SIZE), _user("admin"))
    db.session.commit()
    item = save_customer({"name": "A", "contact_phone": "13812345678", "cf_size": "large"}, _user("rep_a"))
    db.session.commit()
    admin.set_active(row.id, _user("admin"), False)
    db.session.commit()
    assert custom_fields.field_named("customer", "size").active is False
    assert db.session.get(Customer, item.id).custom == {"size": "large"}
    with pytest.raises(RuleViolation) as caught:
        admin.delete_field(row.id, _user("admin"))
    assert "1 records" in caught.value.errors["_"]
    db.session.rollback()
    unused = make_custom_field("customer", "spare", "text", searchable=True)
    admin.delete_field(unused, _user("admin"))
    db.session.commit()
    assert db.session.get(CustomField, unused) is None


def test_purge_needs_a_step_up_then_removes_every_value(app: Any, ctx: None, make_customer: Any) -> None:
    row = admin.save_field(dict(SIZE), _user("admin"))
    db.session.commit()
    admin.save_field({"record_type": "customer", "key": "years", "label_en": "Years", "label_zh": "合作年限",
                      "kind": "integer"}, _user("admin"))
    db.session.commit()
    kept = make_customer("rep_c")
    ids = [save_customer({"name": f"C{n}", "contact_phone": f"1381234567{n}", "cf_size": "small", "cf_years": n},
                         _user("rep_a")).id for n in range(3)]
    db.session.commit()
    with app.test_request_context(method="POST"):
        with pytest.raises(step_up.StepUpRequired):
            admin.purge_field(row.id, _user("admin"))
    db.session.rollback()
    assert admin.purge_field(row.id, _user("admin")) == 3  # no request: a script was asked when set up
    db.session.commit()
    assert [db.session.get(Customer, pk).custom for pk in ids] == [{"years": n} for n in range(3)]
    assert db.session.get(Customer, kept).custom in (None, {})
    assert db.session.get(CustomField, row.id) is None and custom_fields.field_named("customer", "size") is None
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "custom_field_purged"))
    assert entry is not None and '"count": 3' in entry.detail


def test_demo_fields_are_added_once(ctx: None) -> None:
    admin.demo_fields()
    admin.demo_fields()
    db.session.commit()
    fields = {f.key: f for f in custom_fields.fields_of("customer")}
    assert set(fields) == {"size", "years", "needs", "products"}
    assert [c.label_zh for c in fields["size"].choices] == ["小型", "中型", "大型", "集团"]
    assert {"高价值客户", "流失风险客户"} <= {c.label_zh for c in fields["needs"].choices}
    assert all(c.colour for c in fields["needs"].choices)


def test_a_purged_or_deleted_field_leaves_the_sync_targets_mapping(app: Any, ctx: None) -> None:
    from app.models.sync import SyncTarget

    row = admin.save_field(dict(SIZE), _user("admin"))
    other = admin.save_field({"record_type": "customer", "key": "years", "label_en": "Years", "label_zh": "合作年限",
                              "kind": "integer"}, _user("admin"))
    target = SyncTarget(name="team", backend="xlsx", location="/tmp/x.xlsx", worksheet="客户",
                        run_as_id=_user("manager").id, mapping={"规模": "cf_size", "年限": "cf_years", "名称": "name"})
    db.session.add(target)
    db.session.commit()
    admin.purge_field(row.id, _user("admin"))
    db.session.commit()
    assert db.session.get(SyncTarget, target.id).mapping == {"年限": "cf_years", "名称": "name"}
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "custom_field_purged"))
    assert '"target": "team"' in entry.detail
    admin.delete_field(other.id, _user("admin"))
    db.session.commit()
    assert db.session.get(SyncTarget, target.id).mapping == {"名称": "name"}
    db.session.delete(db.session.get(SyncTarget, target.id))
    db.session.commit()
