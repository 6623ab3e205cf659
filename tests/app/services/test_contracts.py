"""Contracts (合同, issue 15): the save rules (number unique with full-width variants, dates,
orders of the same customer in scope), the status machine, renewal, the expiry job (once
per contract and end date, only to people who may see it) and attachments."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from app import clock
from app.extensions import appbuilder, db
from app.models import Notification
from app.models.customers import Customer
from app.models.orders import Contract, SalesOrder
from app.services import contracts, settings
from app.services.customer_approvals import signed_numbers
from app.services.errors import NotFound, RuleForbidden, RuleViolation, StaleRecord
from tests.conftest import user_id

pytestmark = pytest.mark.usefixtures("shanghai")

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
#: Noon in Shanghai on 1 June 2026: "today" for the date rules below.
NOON = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
TODAY = date(2026, 6, 1)


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def customer(make_customer: Any, owner: str = "rep_a", **fields: Any) -> Customer:
    return db.session.get(Customer, make_customer(owner, **fields))


def order(customer_id: int, owner: str, code: str) -> SalesOrder:
    item = SalesOrder(code=code, customer_id=customer_id, owner_id=user_id(owner), title=code)
    db.session.add(item)
    db.session.commit()
    return item


def save(by: str = "rep_a", pk: Any = None, **values: Any) -> Contract:
    version = values.pop("version", None)
    if pk is not None and version is None:
        version = db.session.get(Contract, pk).version
    item = contracts.save_contract(values, user(by), pk=pk, version=version)
    db.session.commit()
    return item


def active(cust: Customer, number: str = "HT-2026-001", by: str = "rep_a", **values: Any) -> Contract:
    fields = {"customer": cust, "title": "年度服务合同", "number": number, "amount": "120000.00",
              "signed_on": date(2026, 1, 5), "starts_on": date(2026, 1, 10), "ends_on": date(2026, 12, 31),
              "status": "active", **values}
    return save(by, **fields)


@pytest.fixture
def today() -> Any:
    with clock.frozen(NOON):
        yield TODAY


def test_a_draft_needs_only_customer_and_title_and_gets_a_code(ctx: Any, make_customer: Any, today: date) -> None:
    item = save(customer=customer(make_customer), title="  采购合同 ", amount="1,200.50")
    assert item.code.startswith("HT2026") and item.status == "draft"
    assert item.title == "采购合同" and item.amount == Decimal("1200.50")
    assert item.owner_id == user_id("rep_a")


def test_number_is_unique_across_full_width_case_and_spaces(ctx: Any, make_customer: Any, today: date) -> None:
    cust = customer(make_customer)
    first = active(cust, number=" HT-2026-001 ")
    assert first.number == "HT-2026-001"
    for variant in ("ＨＴ－２０２６－００１", "ht-2026-001", "HT-2026-001\u200b"):
        with pytest.raises(RuleViolation) as err:
            save(customer=cust, title="另一份", number=variant)
        db.session.rollback()
        assert "ht-2026-001" in err.value.errors["number"].casefold()
    # another rep's contract has it too: numbers are company-wide (no leak beyond "taken")
    with pytest.raises(RuleViolation):
        save("rep_c", customer=customer(make_customer, "rep_c"), title="x", number="HT-2026-001")
    db.session.rollback()


def test_dates_amount_and_customer_rules(ctx: Any, make_customer: Any, today: date) -> None:
    cust = customer(make_customer)
    with pytest.raises(RuleViolation) as err:
        save(customer=cust, title="x", starts_on="2026-05-01", ends_on="2026-04-30", amount="-1")
    db.session.rollback()
    assert set(err.value.errors) >= {"ends_on", "amount"}
    with pytest.raises(RuleViolation) as err:
        save(customer=cust, title="x", amount="1.005")
    db.session.rollback()
    assert "amount" in err.value.errors
    with pytest.raises(RuleViolation) as err:  # another rep's customer: not found
        save(customer=customer(make_customer, "rep_c"), title="x")
    db.session.rollback()
    assert err.value.errors["customer"]


def test_orders_of_another_customer_or_out_of_scope_are_refused(ctx: Any, make_customer: Any, today: date) -> None:
    mine, other = customer(make_customer), customer(make_customer)
    own = order(mine.id, "rep_a", "SO-T-1")
    wrong_customer = order(other.id, "rep_a", "SO-T-2")
    someone_elses = order(mine.id, "rep_c", "SO-T-3")
    with pytest.raises(RuleViolation) as err:
        save(customer=mine, title="x", orders=[own.id, wrong_customer.id])
    db.session.rollback()
    assert "SO-T-2" in err.value.errors["orders"]
    with pytest.raises(RuleViolation) as err:
        save(customer=mine, title="x", orders=[someone_elses.id])
    db.session.rollback()
    assert "SO-T-3" not in err.value.errors["orders"]  # "not found": nothing about it leaks
    item = save(customer=mine, title="x", orders=[own.id])
    assert [o.code for o in item.orders] == ["SO-T-1"]


def test_status_machine(ctx: Any, make_customer: Any, today: date) -> None:
    cust = customer(make_customer)
    draft = save(customer=cust, title="x", ends_on=date(2026, 12, 31))
    with pytest.raises(RuleViolation) as err:  # activate needs number, signed and start dates
        contracts.change_status(draft.id, user("rep_a"), "生效")
    db.session.rollback()
    assert set(err.value.errors) == {"number", "signed_on", "starts_on"}
    with pytest.raises(RuleViolation, match="by date"):  # not yet ended
        contracts.change_status(draft.id, user("rep_a"), "expired")
    db.session.rollback()
    save(pk=draft.id, number="N-1", signed_on=date(2026, 1, 1), starts_on=date(2026, 1, 2))
    item = contracts.change_status(draft.id, user("rep_a"), "active")
    db.session.commit()
    assert item.status == "active"
    with pytest.raises(RuleViolation) as err:
        contracts.change_status(draft.id, user("rep_a"), "terminated")
    db.session.rollback()
    assert "terminated_reason" in err.value.errors
    with pytest.raises(RuleViolation):
        contracts.change_status(draft.id, user("rep_a"), "draft")
    db.session.rollback()
    item = contracts.change_status(draft.id, user("rep_a"), "已终止", reason="客户违约")
    db.session.commit()
    assert item.status == "terminated" and item.terminated_reason == "客户违约"
    with pytest.raises(RuleViolation, match="cannot be changed"):
        save(pk=draft.id, amount="5")
    db.session.rollback()
    save(pk=draft.id, note="归档")  # the note stays editable
    with pytest.raises(ValueError, match="Draft, Active"):  # unknown status
        contracts.status_code("maybe")


def test_an_ended_contract_cannot_be_activated(ctx: Any, make_customer: Any, today: date) -> None:
    with pytest.raises(RuleViolation) as err:
        active(customer(make_customer), ends_on=date(2026, 5, 31))
    db.session.rollback()
    assert "ends_on" in err.value.errors
    old = active(customer(make_customer), number="OLD-1", status="已到期", starts_on=date(2025, 1, 1),
                 signed_on=date(2024, 12, 20), ends_on=date(2025, 12, 31))
    assert old.status == "expired"  # an import of an old contract


def test_stale_version_and_scope(ctx: Any, make_customer: Any, today: date) -> None:
    item = active(customer(make_customer))
    with pytest.raises(StaleRecord):
        save(pk=item.id, version=item.version - 1, title="y")
    db.session.rollback()
    for other in ("rep_b", "rep_c", "manager_s"):
        with pytest.raises(NotFound):
            contracts.save_contract({"title": "y"}, user(other), pk=item.id, version=item.version)
        with pytest.raises(NotFound):
            contracts.change_status(item.id, user(other), "terminated", reason="x")
        with pytest.raises(NotFound):
            contracts.renew(item.id, user(other))
        with pytest.raises(NotFound):
            contracts.list_attachments(item.id, user(other))
        db.session.rollback()
    assert contracts.save_contract({"title": "经理改"}, user("manager"), pk=item.id, version=item.version)


def test_renew_follows_on_and_only_once(ctx: Any, make_customer: Any, today: date) -> None:
    old = active(customer(make_customer), starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31))
    new = contracts.renew(old.id, user("rep_a"))
    db.session.commit()
    assert new.status == "draft" and new.renewal_of_id == old.id and new.number is None
    assert (new.customer_id, new.title, new.amount, new.owner_id) == (old.customer_id, old.title, old.amount,
                                                                      old.owner_id)
    assert new.starts_on == date(2027, 1, 1) and new.ends_on == date(2027, 12, 31)
    with pytest.raises(RuleViolation, match=new.code) as err:
        contracts.renew(old.id, user("rep_a"))
    db.session.rollback()
    assert err.value.status == 409
    assert [c.id for c in contracts.renewal_chain(new, user("rep_a"))] == [old.id, new.id]
    with pytest.raises(RuleViolation):  # a draft is not renewed
        contracts.renew(new.id, user("rep_a"))
    db.session.rollback()


def _told(contract_id: int) -> list[str]:
    return sorted(user_name for user_name, in db.session.execute(
        select(appbuilder.sm.user_model.username).join(Notification, Notification.user_id == appbuilder.sm.user_model.id)
        .where(Notification.event == "contract_expiry", Notification.record_id == contract_id)))


def test_expiry_reminder_once_per_end_date_to_those_who_may_see_it(ctx: Any, make_customer: Any,
                                                                    department_managers: Any) -> None:
    with clock.frozen(NOON):
        soon = active(customer(make_customer), number="S-1", ends_on=TODAY + timedelta(days=20))
        later = active(customer(make_customer), number="S-2", ends_on=TODAY + timedelta(days=60))
        south = active(customer(make_customer, "rep_c"), number="S-3", by="rep_c",
                       ends_on=TODAY + timedelta(days=5))
        assert contracts.expiry_reminders() == 4  # rep_a + manager; rep_c + manager_s
        assert _told(soon.id) == ["manager", "rep_a"]
        assert _told(south.id) == ["manager_s", "rep_c"]
        assert _told(later.id) == []
        assert contracts.expiry_reminders() == 0  # run twice: nobody told again
        text = db.session.scalars(select(Notification).where(Notification.record_id == soon.id)).first()
        assert text.params["ends_on"] == soon.ends_on.isoformat() and text.params["days"] == 20
        save(pk=soon.id, ends_on=TODAY + timedelta(days=25))  # extended: a new occasion
        assert contracts.expiry_reminders() == 2
    assert settings.get("contract_expiry_days") == 30


def test_expiry_reminder_skips_a_manager_outside_the_owners_tree(ctx: Any, make_customer: Any,
                                                                 department_managers: Any) -> None:
    """rep_b's department (East Team) has no manager: the reminder walks up to East's."""
    with clock.frozen(NOON):
        item = active(customer(make_customer, "rep_b"), by="rep_b", number="EB-1",
                      ends_on=TODAY + timedelta(days=3))
        contracts.expiry_reminders()
        assert _told(item.id) == ["manager", "rep_b"]


def test_job_expires_past_end_contracts(ctx: Any, make_customer: Any) -> None:
    with clock.frozen(NOON):
        item = active(customer(make_customer), ends_on=TODAY)
    with clock.frozen(NOON + timedelta(days=1)):
        assert contracts.expire_due() == 1
        db.session.commit()
        assert db.session.get(Contract, item.id).status == "expired"
        assert signed_numbers([item.customer_id]) == {item.customer_id: item.number}  # still signed (001)
        assert contracts.expire_due() == 0


def upload(data: bytes, name: str) -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=name, content_type="application/pdf")


def test_attachments_content_checked_and_scoped(ctx: Any, make_customer: Any, today: date) -> None:
    item = active(customer(make_customer))
    stored = contracts.add_attachment(item.id, upload(PDF, "../合同扫描.pdf"), user("rep_a"))
    db.session.commit()
    assert stored.content_type == "application/pdf" and stored.filename == "合同扫描.pdf"
    with pytest.raises(RuleViolation) as err:
        contracts.add_attachment(item.id, upload(HTML, "evil.pdf"), user("rep_a"))
    db.session.rollback()
    assert err.value.status == 415
    big = PDF + b"0" * (5 * 1024 * 1024)  # the default limit is 5 MB
    with pytest.raises(RuleViolation) as err:
        contracts.add_attachment(item.id, upload(big, "big.pdf"), user("rep_a"))
    db.session.rollback()
    assert err.value.status == 413
    with pytest.raises(NotFound):
        contracts.add_attachment(item.id, upload(PDF, "x.pdf"), user("rep_c"))
    with pytest.raises(NotFound):
        contracts.delete_attachment(item.id, stored.id, user("rep_c"))
    db.session.rollback()
    assert [a.id for a in contracts.list_attachments(item.id, user("manager"))] == [stored.id]
    with pytest.raises(RuleForbidden):  # the manager sees it but neither uploaded nor owns it
        contracts.delete_attachment(item.id, stored.id, user("manager"))
    db.session.rollback()
    contracts.delete_attachment(item.id, stored.id, user("rep_a"))
    db.session.commit()
    assert contracts.list_attachments(item.id, user("rep_a")) == []


def test_demo_contracts_on_won_customers_one_expiring_soon(ctx: Any, make_customer: Any, today: date) -> None:
    make_customer("rep_a")
    won = customer(make_customer, type_code="won")
    assert contracts.build_demo(db.session, [user("rep_a")], count=1) == 1
    db.session.commit()
    item = db.session.scalars(select(Contract)).one()
    assert item.customer_id == won.id and item.status == "active"
    assert TODAY < item.ends_on <= TODAY + timedelta(days=30) and item.code.startswith("HT")


def test_import_with_chinese_headers_and_status_aliases(ctx: Any, make_customer: Any, today: date,
                                                        tmp_path: Any) -> None:
    from app.services.importing import columns, declared, engine, reading
    from tests.app.services.importing.conftest import write_xlsx

    code = customer(make_customer).code
    path = write_xlsx(tmp_path / "合同.xlsx", {"合同": [
        ["合同编号", "客户编号", "合同名称", "合同金额", "签订日期", "开始日期", "结束日期", "状态"],
        ["IMP-1", code, "导入合同", "8,000", "2026-01-01", "2026-01-02", "2026-12-31", "生效"],
        ["IMP-2", code, "旧合同", "100", "2024-01-01", "2024-01-02", "2024-12-31", "已到期"],
        ["ＩＭＰ－１", code, "重号", "1", "", "", "", "草稿"],          # the same number in full width
        ["IMP-3", code, "日期反了", "1", "", "2026-05-01", "2026-04-01", ""],
    ]})
    table = reading.read_table(path)
    mapping = columns.auto_map(columns.MODELS["contract"], table.headers)
    result = declared.run_import(table, mapping, engine.Settings("contract", "create", "code", chunk_size=2),
                                 user("rep_a"), True, label="test")
    assert result.summary()["created"] == 2 and result.rejected == 2
    found = {c.number: c.status for c in db.session.scalars(select(Contract))}
    assert found == {"IMP-1": "active", "IMP-2": "expired"}


def test_changes_to_an_active_contract_and_the_job_are_audited(ctx: Any, make_customer: Any, today: date) -> None:
    from app.models import AuditLog

    item = active(customer(make_customer))
    save(pk=item.id, amount="99000.00", ends_on=date(2027, 1, 31))
    entries = db.session.scalars(select(AuditLog).where(AuditLog.object_id == str(item.id),
                                                        AuditLog.object_type.ilike("%contract%"))).all()
    changed = " ".join(entry.changes or "" for entry in entries)
    assert "99000" in changed and "2027-01-31" in changed
