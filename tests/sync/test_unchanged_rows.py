"""A run compares only the rows that changed since both sides last agreed (issue 12: a 50k-row
sheet's unchanged rows cost no per-field work), and never misses a change by skipping: a CRM
edit, a sheet edit and a renamed dictionary label each reach the other side."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Customer, Industry
from sync import plan as sync_plan
from tests.sync.test_lifecycle import _customer

NAME, INDUSTRY = 1, 4


def _merges(monkeypatch: Any) -> list[int]:
    """Record ids each run merges field by field."""
    merged: list[int] = []
    original = sync_plan._Planner._merge

    def counting(self: Any, index: int, record: Any, *args: Any, **kwargs: Any) -> Any:
        merged.append(record.id)
        return original(self, index, record, *args, **kwargs)

    monkeypatch.setattr(sync_plan._Planner, "_merge", counting)
    return merged


def _row(side: Any, code: str) -> int:
    return next(i for i, r in enumerate(side.values()) if r and r[0] == code)


def test_only_changed_rows_are_merged_and_every_change_arrives(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, monkeypatch: Any) -> None:
    with app.app_context():
        industry = db.session.scalars(select(Industry).where(Industry.active.is_(True))).first()
        label = industry.label_en
    pks = [make_customer("rep_a", name=f"Customer {n}", contact_name=f"Contact {n}",
                         contact_phone=f"1380000{n:04d}", industry_id=industry.id) for n in range(30)]
    side.create([["客户编号", "客户名称", "联系人姓名", "联系方式", "所属行业", "备注"]])
    target = make_target()
    sync(target)  # fills the sheet
    sync(target)  # the rows it wrote agreed: remembered as checked
    merged = _merges(monkeypatch)
    log, _ = sync(target)
    assert log.status == "done" and merged == []  # nothing changed: no row compared field by field

    with app.app_context():  # one CRM edit, one sheet edit
        db.session.get(Customer, pks[3]).name = "Renamed in the CRM"
        db.session.commit()
    code = _customer(app, pks[7])["code"]
    side.edit({(_row(side, code), NAME): "Renamed in the sheet"})
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert sorted(merged) == sorted([pks[3], pks[7]])
    assert _customer(app, pks[7])["name"] == "Renamed in the sheet"
    assert side.values()[_row(side, _customer(app, pks[3])["code"])][NAME] == "Renamed in the CRM"

    merged.clear()
    sync(target)
    sync(target)
    merged.clear()
    with app.app_context():  # a label the sheet shows changes for every row: every row is compared again
        db.session.get(Industry, industry.id).label_en = f"{label} (renamed)"
        db.session.commit()
    try:
        log, _ = sync(target)
    finally:  # the seeded dictionary is shared by the whole suite
        with app.app_context():
            db.session.get(Industry, industry.id).label_en = label
            db.session.commit()
    assert log.status == "done", log.message
    assert len(merged) == 30
    assert {r[INDUSTRY] for r in side.values()[1:]} == {industry.label_zh}  # Chinese headers: Chinese labels
