"""The customer approval gates and the 001 won rule hold at every entry point (issue 15):
an import or a sheet edit must neither change a gated field (level, key contact data)
without approval nor make a customer 成交客户 without a contract number — the same rules
``save_customer`` applies to forms and the API (``app.services.customer_approvals``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, SyncTarget
from app.models.approvals import ApprovalRequest
from app.models.customers import CustomerStatusChange
from app.models.dictionaries import CustomerLevel, CustomerType
from app.models.sync import SyncConflict
from app.services import approvals
from tests.app.services.importing.conftest import write_xlsx
from tests.conftest import user_id
from tests.sync.conftest import SHEET, XlsxSide

WON_REFUSAL = "A customer becomes won only with a signed contract"


def _import(app: Any, tmp_path: Path, who: str, headers: list[str], rows: list[list[Any]],
            mode: str = "upsert") -> dict[str, Any]:
    """Dry run then commit, as the import screen does; the job's preview (outcome -> samples)."""
    from app.services.importing import jobs

    path = write_xlsx(tmp_path / f"c-{uuid4().hex[:8]}.xlsx", {"s": [headers, *rows]})
    with app.app_context():
        job = jobs.create_job(appbuilder.sm.find_user(username=who), "customer", path.name, path.read_bytes(),
                              mode=mode)
        job.mapping = jobs.propose_mapping(job)[1]
        db.session.commit()
        jobs.start(job, commit=False)
        dry = dict(db.session.get(type(job), job.id).preview)
        jobs.start(db.session.get(type(job), job.id), commit=True)
        done = db.session.get(type(job), job.id)
        preview = {"dry": dry, "commit": dict(done.preview), "error": done.error}
        db.session.remove()
    return preview


def _texts(preview: dict[str, Any], outcome: str) -> list[str]:
    return [row.get("errors") or "" for row in preview.get(outcome, [])]


def _names(app: Any) -> tuple[str, str, str, int]:
    """(a level's name other than the customer's none, the won type's name, potential's name, level id)."""
    with app.app_context():
        level = db.session.scalars(select(CustomerLevel).order_by(CustomerLevel.id)).first()
        won = db.session.scalars(select(CustomerType).where(CustomerType.code == "won")).one()
        potential = db.session.scalars(select(CustomerType).where(CustomerType.code == "potential")).one()
        return level.code, won.code, potential.code, level.id


def _requests(app: Any, pk: int) -> list[ApprovalRequest]:
    with app.app_context():
        found = db.session.scalars(select(ApprovalRequest).where(ApprovalRequest.record_id == pk)).all()
        db.session.expunge_all()
        return found


# --- import --------------------------------------------------------------------------------


def test_import_holds_a_level_change_and_applies_the_rest(app: Any, tmp_path: Path, make_customer: Any,
                                                          department_managers: Any) -> None:
    pk = make_customer("rep_a", address="Old street 1")
    level, _, _, level_id = _names(app)
    with app.app_context():
        code = db.session.get(Customer, pk).code
    headers = ["客户编号", "客户名称", "联系方式", "客户地址", "客户等级"]
    row = [code, "Customer of rep_a", "13812345678", "New street 9", level]
    preview = _import(app, tmp_path, "rep_a", headers, [row], mode="update")
    with app.app_context():
        customer = db.session.get(Customer, pk)
        assert customer.address == "New street 9"  # the rest of the row applied
        assert customer.level_id is None  # the level waits
    held = _requests(app, pk)
    assert [(r.kind, r.status) for r in held] == [("customer.level", "pending")]
    assert any("will be sent for approval" in text for text in _texts(preview["dry"], "update"))
    assert any(held[0].code in text for text in _texts(preview["commit"], "update"))
    assert not preview["commit"].get("error")

    again = _import(app, tmp_path, "rep_a", headers, [row], mode="update")  # the same file again
    assert len(_requests(app, pk)) == 1  # nothing asked twice
    assert any(held[0].code in text for text in _texts(again["commit"], "update"))

    with app.app_context():
        approvals.approve(held[0].id, appbuilder.sm.find_user(username="manager"))
        db.session.commit()
        assert db.session.get(Customer, pk).level_id == level_id


def test_import_refuses_a_different_level_while_one_waits(app: Any, tmp_path: Path, make_customer: Any,
                                                          department_managers: Any) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        code = db.session.get(Customer, pk).code
        first, second = db.session.scalars(select(CustomerLevel.code).order_by(CustomerLevel.id)).all()[:2]
    headers = ["客户编号", "客户名称", "联系方式", "客户等级"]
    _import(app, tmp_path, "rep_a", headers, [[code, "Customer of rep_a", "13812345678", first]], mode="update")
    preview = _import(app, tmp_path, "rep_a", headers, [[code, "Customer of rep_a", "13812345678", second]],
                      mode="update")
    assert any("already waiting" in text for text in _texts(preview["commit"], "error"))
    assert len(_requests(app, pk)) == 1


def test_import_creates_a_won_customer_only_with_a_contract_number(app: Any, tmp_path: Path) -> None:
    _, won, _, _ = _names(app)
    headers = ["客户名称", "联系方式", "客户类型", "合同编号"]
    preview = _import(app, tmp_path, "rep_a", headers, [["No Contract Ltd", "13900000001", won, ""],
                                                        ["Signed Ltd", "13900000002", won, "HT-2026-001"]])
    refused = _texts(preview["commit"], "error")
    assert len(refused) == 1 and WON_REFUSAL in refused[0] and "客户类型" in refused[0]
    with app.app_context():
        names = set(db.session.scalars(select(Customer.name)))
        assert "No Contract Ltd" not in names and "Signed Ltd" in names
        pk = db.session.scalar(select(Customer.id).where(Customer.name == "Signed Ltd"))
        reasons = db.session.scalars(select(CustomerStatusChange.reason).where(
            CustomerStatusChange.customer_id == pk)).all()
        assert reasons == ["合同编号 HT-2026-001"]


def test_import_update_to_won_needs_a_contract_number(app: Any, tmp_path: Path, make_customer: Any) -> None:
    plain, other = make_customer("rep_a"), make_customer("rep_a", name="Second", contact_phone="13900000009")
    _, won, _, _ = _names(app)
    with app.app_context():
        codes = [db.session.get(Customer, pk).code for pk in (plain, other)]
    headers = ["客户编号", "客户类型", "合同编号"]
    preview = _import(app, tmp_path, "rep_a", headers, [[codes[0], won, ""], [codes[1], won, "HT-9"]],
                      mode="update")
    assert any(WON_REFUSAL in text for text in _texts(preview["commit"], "error"))
    with app.app_context():
        assert db.session.get(Customer, plain).type.code == "potential"
        assert db.session.get(Customer, other).type.code == "won"
        assert db.session.scalars(select(CustomerStatusChange.reason).where(
            CustomerStatusChange.customer_id == other)).all()[-1] == "合同编号 HT-9"


def test_the_won_rule_off_lets_an_import_make_a_customer_won(app: Any, tmp_path: Path) -> None:
    from app.services import settings as crm_settings

    _, won, _, _ = _names(app)
    with app.app_context():
        crm_settings.save({"won_needs_contract": False}, appbuilder.sm.find_user(username="admin"))
        db.session.commit()
    preview = _import(app, tmp_path, "rep_a", ["客户名称", "联系方式", "客户类型"], [["Free Ltd", "13900000003", won]])
    assert not _texts(preview["commit"], "error")


# --- sync ----------------------------------------------------------------------------------


def _sync(app: Any, side: XlsxSide, target_id: int) -> Any:
    from sync import runner

    with app.app_context():
        log = runner.run(db.session.get(SyncTarget, target_id), side.backend())
        message = log.message
        db.session.remove()
    return message


def _cell(side: XlsxSide, row: int, col: int) -> str:
    values = side.values()[row]
    return values[col] if col < len(values) else ""


def _target(app: Any, side: XlsxSide, who: str) -> int:
    with app.app_context():
        target = SyncTarget(name=f"gates-{uuid4().hex[:6]}", backend="xlsx", location=side.location,
                            worksheet=SHEET, model="customer", run_as_id=user_id(who))
        db.session.add(target)
        db.session.commit()
        return target.id


def test_sync_holds_a_level_edit_once_and_applies_the_rest(app: Any, tmp_path: Path, make_customer: Any,
                                                           department_managers: Any) -> None:
    pk = make_customer("rep_a", address="Old street 1")
    level, _, _, level_id = _names(app)
    with app.app_context():
        code = db.session.get(Customer, pk).code
    side = XlsxSide(tmp_path)
    side.create([["客户编号", "客户名称", "联系方式", "客户地址", "客户等级"]])
    target = _target(app, side, "rep_a")
    _sync(app, side, target)  # the customer's row is written to the sheet
    rows = side.values()
    index = next(i for i, row in enumerate(rows) if row and row[0] == code)
    side.edit({(index, 3): "New street 9", (index, 4): level})
    _sync(app, side, target)
    with app.app_context():
        customer = db.session.get(Customer, pk)
        assert customer.address == "New street 9" and customer.level_id is None
    held = _requests(app, pk)
    assert [(r.kind, r.status) for r in held] == [("customer.level", "pending")]
    assert _cell(side, index, 4) == ""  # the CRM's value is back on the sheet

    _sync(app, side, target)  # the next run: no second request, no conflict
    assert len(_requests(app, pk)) == 1
    with app.app_context():
        assert db.session.scalars(select(SyncConflict).where(SyncConflict.record_id == pk)).all() == []
        approvals.approve(held[0].id, appbuilder.sm.find_user(username="manager"))
        db.session.commit()
        assert db.session.get(Customer, pk).level_id == level_id
    _sync(app, side, target)  # approved: the sheet shows it
    assert _cell(side, index, 4) != ""


def test_sync_refuses_a_won_row_without_a_contract(app: Any, tmp_path: Path, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    _, won, _, _ = _names(app)
    with app.app_context():
        code = db.session.get(Customer, pk).code
    side = XlsxSide(tmp_path)
    side.create([["客户编号", "客户名称", "联系方式", "客户类型"], ["", "Won Row Ltd", "13900000004", won]])
    target = _target(app, side, "rep_a")
    _sync(app, side, target)
    rows = side.values()
    new_row = next(row for row in rows if len(row) > 1 and row[1] == "Won Row Ltd")
    assert WON_REFUSAL in new_row[-1] and new_row[0] == ""
    index = next(i for i, row in enumerate(rows) if row and row[0] == code)
    side.edit({(index, 3): won})
    _sync(app, side, target)
    with app.app_context():
        assert db.session.scalar(select(Customer.id).where(Customer.name == "Won Row Ltd")) is None
        assert db.session.get(Customer, pk).type.code == "potential"
    assert WON_REFUSAL in side.values()[index][-1]
    assert _cell(side, index, 3) != ""  # the sheet's edit is kept, waiting: nothing lost
