"""Issue 12: the apply step saves every record a run updates in one audited flush (the records it
read are held, not dropped and read again one SELECT each, each SELECT autoflushing the record
saved before it), and every saved record still has its own audit entry in a chain that verifies.
Also: the row digest's and the copy key's faster forms give exactly what the general forms gave."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from app.extensions import db
from app.models import Customer
from app.services import audit
from app.services.importing.columns import USER
from app.services.importing.reading import Uncached
from sync import plan as sync_plan
from sync.backends import SheetNumber
from sync.records import CustomerRecords
from tests.sync.test_lifecycle import _customer

NOTE = 5


def _row(side: Any, code: str) -> int:
    return next(i for i, r in enumerate(side.values()) if r and r[0] == code)


def test_sheet_edits_of_many_records_are_saved_in_one_audited_flush(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, monkeypatch: Any) -> None:
    pks = [make_customer("rep_a", name=f"Flush {n}", contact_name=f"Contact {n}",
                         contact_phone=f"1390000{n:04d}") for n in range(12)]
    side.create([["客户编号", "客户名称", "联系人姓名", "联系方式", "所属行业", "备注"]])
    target = make_target()
    sync(target)
    sync(target)
    codes = {pk: _customer(app, pk)["code"] for pk in pks}
    side.edit({(_row(side, codes[pk]), NOTE): f"sheet note {pk}" for pk in pks})

    appended: list[list[str]] = []  # per audit append: the customers it holds entries for
    real = audit._append

    def counting(conn: Any, entries: list[dict[str, Any]], user: Any = None) -> None:
        appended.append([e["object_id"] for e in entries if e.get("object_type") == "Customer"])
        real(conn, entries, user)

    monkeypatch.setattr(audit, "_append", counting)
    log, _ = sync(target)
    assert log.status == "done", log.message
    assert log.counts["app_updated"] == len(pks)
    with_customers = [ids for ids in appended if ids]
    assert len(with_customers) == 1 and sorted(with_customers[0]) == sorted(str(pk) for pk in pks)
    with app.app_context():
        for pk in pks:
            assert db.session.get(Customer, pk).note == f"sheet note {pk}"
            latest = audit.history("Customer", pk, limit=1)[0]
            assert latest.source == "sync" and "sheet note" in latest.changes
        assert audit.verify_chain(db.session).ok


def _general_digest(context: str, cells: dict[str, Any], raw: tuple) -> str:
    """``row_digest`` as written before its fast path for plain text cells."""
    typed = [(name, type(cell).__name__, str(cell), getattr(cell, "number", None), getattr(cell, "shown", None))
             for name, cell in cells.items()]
    return hashlib.blake2b(repr((context, typed, raw)).encode(), digest_size=16).hexdigest()


def test_row_digest_and_copy_key_equal_their_general_forms(app: Any) -> None:
    shown = SheetNumber(45413)
    shown.shown = "2024-05-01"
    cells = {"name": "客户 A", "note": "", "contact_phone": SheetNumber(13812345678), "email": Uncached("=A1"),
             "industry": shown, "credit_code": SheetNumber(9.135010012000145e17)}
    raw = ("客户 A", None, 3, "13812345678", {"cf_x": 1})
    assert sync_plan.row_digest("ctx", cells, raw) == _general_digest("ctx", cells, raw)
    values = {"name": "客户\"A\"\n", "owner": "rep_a", "_row": "x", "contact_phone": "138"}
    with app.app_context():
        kind = CustomerRecords()
        people = {spec.name for spec in kind.spec.fields if spec.kind == USER}
        expected = json.dumps(sorted((n, v) for n, v in values.items() if n not in people and not n.startswith("_")),
                              ensure_ascii=False)
        assert kind._copy_key(values) == kind._copy_key(values) == expected
    assert sync_plan.fingerprint(values) == json.dumps(sorted(values.items()), ensure_ascii=False)
