"""Issue 12: the apply step saves a run's new rows through the type's own save and flushes them
together (one numbering, one audit append of the per-record entries), flushing early only before a
row that a record saved in this run may duplicate (``Records.duplicate_probes``). Proved equal to
the one-flush-per-row form it replaced: same records and codes, same audit entries, same sheet,
same refusals and conflicts, on both backends."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Customer, SyncConflict, SyncTarget
from app.services import audit
from sync import runner
from sync.records import CustomerRecords
from tests.conftest import user_id
from tests.sync.conftest import HEADERS, SHEET, GoogleSide, XlsxSide


def _serial_create(plan: Any, user: Any) -> list[tuple[int, Any, dict[str, str]]]:
    """``runner._create`` as it was before issue 12's bulk form: one flush per new row."""
    kind, created = plan.kind, []
    rows = sorted([(index, values, True) for index, values in plan.creates]
                  + [(index, values, False) for index, values in plan.maybe_duplicates], key=lambda item: item[0])
    for index, values, planned in rows:
        problem = kind.duplicate_problem(values, user)
        if problem:
            runner._status(plan, index, problem)
            if planned:
                plan.counts["app_created"] -= 1
                plan.counts["app_rejected"] += 1
            continue
        if not planned:
            runner._status(plan, index, "")
            plan.errors.pop(index, None)
            plan.counts["app_rejected"] -= 1
            plan.counts["app_created"] += 1
        created.append((index, kind.save(None, values, user), values))
        db.session.flush()
    return created


def _scenario(app: Any, side: Any, tag: str, digit: str, rep: str, make_customer: Any) -> dict[str, Any]:
    """One sheet synced as ``rep`` (who sees only their own customers), then a run with new rows of
    every kind; its outcome with the tag, the phone digit and the codes (by record order) written
    out, so that two scenarios compare equal."""
    phone = f"13{digit}000000"
    make_customer(rep, name=f"{tag}老客户", contact_name=f"{tag}老联系人", contact_phone=f"{phone}90")
    side.create([HEADERS])
    with app.app_context():
        target = SyncTarget(name=f"t-{tag}", backend=side.name, location=side.location, worksheet=SHEET,
                            run_as_id=user_id(rep), conflict_policy="app")
        db.session.add(target)
        db.session.commit()
        target_id = target.id
    _run(app, side, target_id)
    old = next(i for i, row in enumerate(side.values()) if row and row[1] == f"{tag}老客户")
    side.edit({(old, 3): f"{phone}91"},  # the CRM's copy changes phone: a row like the old one is new
              append=[["", f"{tag}新客户1", f"{tag}甲", f"{phone}01", "", "first"],
                      ["", f"{tag}新客户2", f"{tag}乙", f"{phone}01", "", "same phone, other name"],
                      ["", f"{tag}老客户", f"{tag}老联系人", f"{phone}90", "", "like the old before its change"],
                      ["", f"{tag}新客户3", f"{tag}丙", f"{phone}03", "", ""],
                      ["", f"{tag}老客户", f"{tag}老联系人", f"{phone}90", "", "again: a duplicate of the new one"],
                      ["", f"{tag}老客户", f"{tag}老联系人", f"{phone}91", "", "a duplicate of the old"],
                      ["", f"{tag}坏", f"{tag}丁", "not a phone", "", "refused by the rules"],
                      ["", f"{tag}新客户1", f"{tag}甲", f"{phone}01", "", "twin of the first"]])
    log = _run(app, side, target_id)
    with app.app_context():
        pks = db.session.scalars(select(Customer.id).where(Customer.name.like(f"{tag}%"))
                                 .order_by(Customer.id)).all()
        codes = {db.session.get(Customer, pk).code: f"<{n}>" for n, pk in enumerate(pks)}

        def plain(text: Any) -> str:
            text = re.sub("|".join(map(re.escape, codes)), lambda m: codes[m.group(0)], str(text or ""))
            return text.replace(tag, "<tag>").replace(phone, "<phone>")

        records = [plain(json.dumps({c: str(getattr(db.session.get(Customer, pk), c)) for c in (
            "code", "name", "contact_name", "contact_phone", "note", "type_id", "version")},
            ensure_ascii=False)) for pk in pks]
        entries = [[(e.action, e.source, e.object_type, sorted(json.loads(e.changes or "{}")))
                    for e in reversed(audit.history("Customer", pk))] for pk in pks]
        conflicts = [(plain(c.key), c.field, plain(c.sheet_value)) for c in db.session.scalars(
            select(SyncConflict).where(SyncConflict.target_id == target_id).order_by(SyncConflict.id))]
        assert audit.verify_chain(db.session).ok
    return {"status": log.status, "counts": log.counts, "records": records, "audit": entries,
            "conflicts": conflicts, "sheet": [[plain(cell) for cell in row] for row in side.values()]}


def _run(app: Any, side: Any, target_id: int) -> Any:
    with app.app_context():
        target = db.session.get(SyncTarget, target_id)
        log = runner.run(target, side.backend(target.sheet_id))
        db.session.refresh(log)
        db.session.expunge(log)
        db.session.remove()
        return log


def test_new_rows_created_in_one_flush_equal_one_flush_per_row(
        app: Any, side: Any, make_customer: Any, monkeypatch: Any, tmp_path: Path) -> None:
    other = XlsxSide(tmp_path / "b") if side.name == "xlsx" else GoogleSide(tmp_path)
    if side.name == "xlsx":
        (tmp_path / "b").mkdir()
    appends: list[int] = []
    real = audit._append

    def counting(conn: Any, entries: list[dict[str, Any]], user: Any = None) -> None:
        appends.append(sum(e.get("object_type") == "Customer" and e.get("action") == "create" for e in entries))
        real(conn, entries, user)

    monkeypatch.setattr(audit, "_append", counting)
    bulk = _scenario(app, side, "甲队", "9", "rep_a", make_customer)
    bulk_appends = [n for n in appends if n]
    appends.clear()
    monkeypatch.setattr(runner, "_create", _serial_create)
    serial = _scenario(app, other, "乙队", "8", "rep_b", make_customer)
    serial_appends = [n for n in appends if n]
    assert bulk == serial
    assert bulk["status"] == "done" and bulk["counts"]["app_created"] == 4, bulk["counts"]
    assert any("<tag>老客户" in json.dumps(row, ensure_ascii=False) for row in bulk["sheet"])
    # the fill's one append, then: the new rows up to the second same-phone row, the rest together
    assert bulk_appends[-2:] == [1, 3] and serial_appends[-4:] == [1, 1, 1, 1]


def test_duplicate_probes_hold_every_key_the_rule_compares(app: Any) -> None:
    """A saved customer the duplicate rule could match shares a probe with the row (the flush-early test)."""
    with app.app_context():
        kind = CustomerRecords()
        row = {"name": " 客户 A ", "contact_name": "张三", "contact_phone": "138-1234-5678", "credit_code": "91x"}
        probes = kind.duplicate_probes(row)
        saved = Customer(name="客户 A", contact_name="张三", contact_phone="13812345678", credit_code="91X")
        assert probes & kind.record_duplicate_probes(saved)
        assert kind.duplicate_probes({"name": "客户 A", "contact_name": "", "contact_phone": ""}) == set()
