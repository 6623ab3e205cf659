"""Custom fields in the audit log (issue 18): one before/after per ``cf_<key>`` on create,
edit and bulk insert (imports, sync), masked fields masked, the chain intact."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog
from app.models.customers import Customer
from app.models.org import CrmUser
from app.services import audit
from app.services.audit import verify_chain
from app.services.customers import save_customer

NEEDS = [("price", "Price", "价格敏感", "#d9534f"), ("service", "Service", "重视服务", "#5cb85c")]
WECHAT = "wxid_13812345678"


@pytest.fixture
def fields(make_custom_field: Any) -> None:
    make_custom_field("customer", "years", "integer", label_en="Years together", label_zh="合作年限")
    make_custom_field("customer", "needs", "tags", label_en="Key needs", label_zh="关键需求标签", choices=NEEDS)
    make_custom_field("customer", "wechat", "text", label_en="WeChat", label_zh="微信", masked=True)


def _user(name: str) -> CrmUser:
    return db.session.query(CrmUser).filter_by(username=name).one()


def _changes(pk: int, action: str) -> dict[str, list[Any]]:
    entry = db.session.scalars(select(AuditLog).where(AuditLog.object_type == "Customer", AuditLog.object_id == str(pk),
                                                      AuditLog.action == action).order_by(AuditLog.seq.desc())).first()
    return json.loads(entry.changes)


def test_create_and_edit_log_each_field(app: Any, fields: None) -> None:
    with app.app_context():
        item = save_customer({"name": "审计科技", "contact_phone": "13812345678", "cf_years": 3,
                              "cf_needs": ["price"], "cf_wechat": WECHAT}, _user("rep_a"))
        db.session.commit()
        pk = item.id
        created = _changes(pk, "create")
        assert created["cf_years"] == [None, 3] and created["cf_needs"] == [None, ["price"]]
        assert created["cf_wechat"] == [None, "****"]
        assert "custom" not in created
        save_customer({"cf_years": 5, "cf_needs": ["price", "service"], "cf_wechat": "wxid_13900001111"},
                      _user("rep_a"), pk=pk, version=1)
        db.session.commit()
        changed = _changes(pk, "update")
        assert changed == {"cf_years": [3, 5], "cf_needs": [["price"], ["price", "service"]],
                           "cf_wechat": ["****", "****"]}
        save_customer({"cf_needs": None}, _user("rep_a"), pk=pk, version=2)
        db.session.commit()
        assert _changes(pk, "update") == {"cf_needs": [["price", "service"], None]}
        assert verify_chain(db.session).ok


def test_masked_value_never_reaches_the_log(app: Any, fields: None) -> None:
    with app.app_context():
        item = save_customer({"name": "Mask Co", "contact_phone": "13812345678", "cf_wechat": WECHAT},
                             _user("rep_a"))
        db.session.commit()
        save_customer({"cf_wechat": None}, _user("rep_a"), pk=item.id, version=1)
        db.session.commit()
        texts = db.session.scalars(select(AuditLog.changes)).all()
        assert texts and not any(WECHAT in (text or "") for text in texts)


def test_bulk_insert_logs_fields_like_the_flush(app: Any, fields: None) -> None:
    """Imports insert in bulk (``created_changes``, ``append_created``): the same per-field entry,
    keys sorted like the flush's, masked fields masked, the chain intact."""
    with app.app_context():
        row = {"id": 987654, "name": "Bulk Co", "code": "C-BULK", "custom": {"years": 2, "wechat": WECHAT}}
        audit.append_created(Customer, [row["id"]], audit.created_changes(Customer, [row]))
        db.session.commit()
        entry = db.session.scalars(select(AuditLog).where(AuditLog.object_id == "987654")).one()
        changes = json.loads(entry.changes)
        assert changes["cf_years"] == [None, 2] and changes["cf_wechat"] == [None, "****"]
        assert list(changes) == sorted(changes) and "custom" not in changes
        assert verify_chain(db.session).ok


def test_history_reads_the_fields_label_and_choice_labels(app: Any, fields: None) -> None:
    with app.app_context():
        rows = audit.change_rows(json.dumps({"cf_needs": [None, ["price", "service"]], "cf_wechat": [None, "****"]}),
                                 "Customer")
        assert ("Key needs", None, "Price, Service") in rows
        assert ("WeChat", None, "****") in rows


def test_a_field_masked_later_reads_masked_in_old_entries(app: Any, make_custom_field: Any) -> None:
    make_custom_field("customer", "salary", "text", label_en="Salary", label_zh="薪资")
    with app.app_context():
        item = save_customer({"name": "后来遮蔽", "contact_phone": "13812345670", "cf_salary": "JUPITER-4242"},
                             _user("rep_a"))
        db.session.commit()
        entry = db.session.scalars(select(AuditLog).where(AuditLog.object_type == "Customer",
                                                          AuditLog.object_id == str(item.id))).first()
        assert ("Salary", None, "JUPITER-4242") in audit.change_rows(entry.changes, "Customer")
        from app.models.custom_fields import CustomField
        from app.services import custom_fields

        db.session.query(CustomField).filter_by(key="salary").update({"masked": True})
        db.session.commit()
        custom_fields.refresh(force=True)
        shown = [row for row in audit.change_rows(entry.changes, "Customer") if row[0] == "Salary"]
        assert shown and "JUPITER-4242" not in str(shown)
