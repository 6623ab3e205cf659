"""Importing a declared record type (products): one generic path through the type's own
use case (``app.services.importing.declared``), per-row savepoints, modes, dry run."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, select

from app.extensions import appbuilder, db
from app.models import AuditLog
from app.models.sales import Product
from app.services.importing import columns, declared, engine, reading
from tests.app.services.importing.conftest import write_xlsx

HEADERS = ["产品编号", "产品名称", "单位", "标准价格"]


@pytest.fixture(autouse=True)
def _no_products(app: Any) -> Any:
    """Products are not in the shared cleanup (tests/conftest.py): start and end without any."""
    with app.app_context():
        db.session.execute(delete(Product))
        db.session.commit()
    yield
    with app.app_context():
        db.session.rollback()
        db.session.execute(delete(Product))
        db.session.commit()
        db.session.remove()


def _run(path: Path, username: str = "manager", mode: str = "create", commit: bool = True,
         key: str = "code") -> engine.Result:
    table = reading.read_table(path)
    mapping = columns.auto_map(columns.MODELS["product"], table.headers)
    user = appbuilder.sm.find_user(username=username)
    settings = engine.Settings("product", mode, key, chunk_size=2)
    return declared.run_import(table, mapping, settings, user, commit, label="test")


def _products() -> dict[str, Product]:
    return {p.name: p for p in db.session.scalars(select(Product))}


def test_products_created_with_codes_and_a_bad_price_rejected_with_its_message(ctx: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "产品.xlsx", {"产品": [
        HEADERS,
        ["", "云服务器 标准版", "台", "1,200.50"],
        ["", "实施服务", "人天", 3000],
        ["", "坏价格", "个", "一千"],               # not a number: the product rule refuses the row
        ["", "负价格", "个", "-5"],
        ["", "", "个", "10"],                       # name required
    ]})
    result = _run(path)
    assert result.summary()["created"] == 2 and result.rejected == 3 and result.rows == 5
    products = _products()
    assert set(products) == {"云服务器 标准版", "实施服务"}
    assert products["云服务器 标准版"].list_price == Decimal("1200.50")
    assert all(p.code.startswith("S") for p in products.values())
    errors = {line: str(message) for line, _raw, message in result.rejected_rows}
    assert "标准价格" in errors[4] and "amount" in errors[4]
    assert "标准价格" in errors[5] and "between 0" in errors[5]
    assert "产品名称" in errors[6]
    audited = db.session.scalars(select(AuditLog).where(AuditLog.object_type == "Product")).all()
    assert {entry.source for entry in audited} == {"import"}  # the type's audit, with the import as source


def test_update_by_code_changes_only_that_product_and_counts_unchanged(ctx: Any, tmp_path: Path) -> None:
    first = write_xlsx(tmp_path / "a.xlsx", {"产品": [HEADERS, ["P-001", "Widget", "pc", "10"],
                                                     ["P-002", "Gadget", "pc", "20"]]})
    assert _run(first).summary()["created"] == 2
    second = write_xlsx(tmp_path / "b.xlsx", {"产品": [
        HEADERS,
        ["P-001", "Widget", "pc", "12.5"],        # price changed
        ["P-002", "Gadget", "pc", "20.00"],       # the same price: unchanged
        ["P-404", "Ghost", "pc", "1"],            # update mode: no such code
        ["P-001", "Widget again", "pc", "1"],     # twice in one file
    ]})
    result = _run(second, mode="update")
    summary = result.summary()
    assert (summary["updated"], summary["unchanged"], summary["rejected"]) == (1, 1, 2)
    products = {p.code: p for p in db.session.scalars(select(Product))}
    assert products["P-001"].list_price == Decimal("12.50") and products["P-001"].name == "Widget"
    assert products["P-001"].version == 2 and products["P-002"].version == 1
    errors = {line: str(message) for line, _raw, message in result.rejected_rows}
    assert "P-404" in errors[4] and "twice" in errors[5]


def test_create_mode_refuses_an_existing_code_and_upsert_does_both(ctx: Any, tmp_path: Path) -> None:
    _run(write_xlsx(tmp_path / "a.xlsx", {"产品": [HEADERS, ["P-001", "Widget", "pc", "10"]]}))
    again = write_xlsx(tmp_path / "b.xlsx", {"产品": [HEADERS, ["P-001", "Widget", "pc", "11"],
                                                     ["P-003", "New one", "pc", "3"]]})
    created = _run(again, mode="create")
    assert created.summary()["created"] == 1 and created.counts[engine.DUPLICATE] == 1
    db.session.execute(delete(Product).where(Product.code == "P-003"))
    db.session.commit()
    upsert = _run(again, mode="upsert")
    assert (upsert.summary()["created"], upsert.summary()["updated"]) == (1, 1)
    assert db.session.scalar(select(Product.list_price).where(Product.code == "P-001")) == Decimal("11.00")


def test_a_bad_row_in_a_chunk_loses_nothing_else_and_dry_run_writes_nothing(ctx: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "p.xlsx", {"产品": [
        HEADERS, ["", "One", "pc", "1"], ["", "Bad", "pc", "x"], ["", "Two", "pc", "2"], ["", "Three", "", ""]]})
    dry = _run(path, commit=False)
    assert dry.summary()["created"] == 3 and dry.rejected == 1
    assert db.session.scalar(select(Product.id)) is None  # nothing written
    assert db.session.scalar(select(AuditLog.id).where(AuditLog.object_type == "Product")) is None
    assert all(sample["code"] is None for sample in dry.preview[engine.CREATED])  # no code promised
    real = _run(path)
    assert real.summary() == {**dry.summary()}  # the dry run promised what the commit did
    assert set(_products()) == {"One", "Two", "Three"}


def test_a_key_the_type_does_not_declare_fails_the_run(ctx: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "p.xlsx", {"产品": [HEADERS, ["", "One", "pc", "1"]]})
    with pytest.raises(ValueError, match="cannot identify"):
        _run(path, key="name")


def test_yes_no_cells_for_boolean_columns() -> None:
    assert declared.column_value(Product, "active", "是") is True
    assert declared.column_value(Product, "active", " No ") is False
    assert declared.column_value(Product, "active", "") is None
    assert declared.column_value(Product, "name", "是") == "是"
    with pytest.raises(ValueError):
        declared.column_value(Product, "active", "maybe")


# --- through the import screen: needs the dispatch in engine.run_import ---------------------

DISPATCHED = "declared.run_import" in __import__("inspect").getsource(engine.run_import)
needs_dispatch = pytest.mark.skipif(
    not DISPATCHED, reason="engine.run_import does not dispatch declared types yet (lines given to the lead)")


@needs_dispatch
def test_product_import_end_to_end_through_the_screen(app: Any, client: Any, auth: Any, run_job: Any,
                                                      tmp_path: Path) -> None:
    """END-TO-END (after the engine dispatch): template download, job, dry run, commit, error report."""
    auth.login("manager")
    template = client.get("/imports/template/product")
    assert template.status_code == 200
    headers = [c.value for c in load_workbook(__import__("io").BytesIO(template.data)).active[1]]
    assert any("产品名称" in h or "Product name" in h for h in headers)
    path = write_xlsx(tmp_path / "产品.xlsx", {"产品": [HEADERS, ["", "Widget", "pc", "9.99"], ["", "Bad", "pc", "x"]]})
    job = run_job("manager", path, model="product")
    assert job.status == "done" and (job.created, job.rejected) == (1, 1), job.error
    report = load_workbook(job.report_path).active
    assert "标准价格" in str(report.cell(row=2, column=len(HEADERS) + 1).value)
    with app.app_context():
        assert set(_products()) == {"Widget"}


def test_template_for_a_declared_type(client: Any, auth: Any) -> None:
    """The import template is built from the declaration (columns.MODELS) alone."""
    auth.login("manager")
    response = client.get("/imports/template/product")
    assert response.status_code == 200
    import io

    sheet = load_workbook(io.BytesIO(response.data)).active
    headers = [c.value for c in sheet[1]]
    assert len(headers) == len(columns.MODELS["product"].fields)
    assert any(str(h).startswith(("Product name", "产品名称")) and str(h).endswith("*") for h in headers)


def test_leads_import_with_dictionaries_owners_and_scope(ctx: Any, tmp_path: Path) -> None:
    """Every cell kind through the generic path: dictionary (source), user (owner), and the
    rep's data scope on the owner; a typed code for a type that numbers every record is refused."""
    from app.models.sales import Lead, LeadStatusChange
    from app.record_types import REGISTRY

    if "lead" not in REGISTRY:
        pytest.skip("leads are not declared yet")
    path = write_xlsx(tmp_path / "线索.xlsx", {"线索": [
        ["线索编号", "公司名称", "联系电话", "线索来源", "负责人"],
        ["", "星河科技", "138 0013 8000", "展会", ""],          # owner empty: the importer (or a rule)
        ["", "远航物流", "13900139000", "官网", "rep_b"],       # rep_b is in rep_a's scope? (no: own only)
        ["", "未知来源", "13700137000", "星际广告", ""],        # unknown dictionary value
        ["L-OLD-1", "旧系统线索", "13600136000", "展会", ""],   # a typed code: leads are numbered by the CRM
    ]})
    table = reading.read_table(path)
    mapping = columns.auto_map(columns.MODELS["lead"], table.headers)
    user = appbuilder.sm.find_user(username="rep_a")
    try:
        result = declared.run_import(table, mapping, engine.Settings("lead", "create", "code"), user, True)
        errors = {line: str(message) for line, _raw, message in result.rejected_rows}
        assert result.summary()["created"] == 1, errors
        assert "负责人" in errors[3] and "线索来源" in errors[4] and "星际广告" in errors[4]
        assert "L-OLD-1" in errors[5]
        lead = db.session.scalar(select(Lead))
        assert lead.company == "星河科技" and lead.phone == "13800138000" and lead.source.code
        assert lead.code.startswith("L")
        assert result.unknown.summary()[0]["field"] == "source"  # the value-mapping step sees it
    finally:
        db.session.rollback()
        db.session.execute(delete(LeadStatusChange))
        db.session.execute(delete(Lead))
        db.session.commit()
