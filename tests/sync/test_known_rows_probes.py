"""Issue 12: a sheet's keyless rows are compared only with the keyed rows sharing a probe
(``Records.probes``), not with all of them; the matches (duplicate rule's identities, a row's whole
content) are exactly those of indexing every keyed row, for customers, follow-ups and declared types."""

from __future__ import annotations

from typing import Any

import pytest

from app.record_types import REGISTRY
from sync.records import CustomerRecords, DeclaredRecords, FollowUpRecords, Records
from tests.sync.test_lifecycle import _customer

CREDIT = "91350100M000100Y43"


def _matches(kind: Records, keyed: list[dict[str, str]], new: list[dict[str, str]], probed: bool) -> list[Any]:
    """Per new row: (first keyed row with a common identity, keyed row with the same content), as the
    planner's ``_known_rows`` index answers them with (``probed``) or without the probes."""
    wanted: set[Any] | None = set() if probed else None
    for values in new:
        probes = kind.probes(values) if probed else None
        wanted = None if probes is None or wanted is None else wanted | probes
    created: dict[Any, int] = {}
    copies: dict[str, int] = {}
    for index, shown in enumerate(keyed):
        probes = kind.probes(shown) if wanted is not None else None
        if probes is not None and probes.isdisjoint(wanted):
            continue
        copy, identities = kind.known_keys(shown)
        copies.setdefault(copy, index)
        for identity in identities:
            created.setdefault(identity, index)
    found = []
    for values in new:
        copy = kind.copy_key(values)
        identities = [*(kind.identities(values) if kind.has_duplicate_rule else []), ("row", copy)]
        found.append((next((created[key] for key in identities if key in created), None), copies.get(copy)))
    return found


def _customer_rows() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    def row(name: str, contact: str = "王五", phone: str = "13812345678", credit: str = "", note: str = "") -> dict:
        return {"name": name, "contact_name": contact, "contact_phone": phone, "credit_code": credit,
                "note": note, "owner": "rep_a"}

    keyed = [row("Acme 有限公司"), row("ＡＣＭＥ有限公司", phone="13900000000"), row("Other", credit=CREDIT),
             row(" Acme\u200b 有限公司 ", contact="李四"), row(""), row("Plain", note="x"), row("Plain"),
             row("Phone", phone="138-1234-5678"), row("Bad credit", credit="123")]
    new = [row("acme有限公司"), row("Acme 有限公司", contact="李四"), row("Someone else", credit=CREDIT.lower()),
           row(""), row("Plain"), {**row("Plain", note="x"), "owner": ""}, row("Phone", phone="13812345678"),
           row("Nobody"), row("Bad credit", credit="123", contact="x")]
    return keyed, new


def test_customer_probes_find_the_same_rows(app: Any) -> None:
    keyed, new = _customer_rows()
    with app.app_context():
        kind = CustomerRecords()
        expected = _matches(kind, keyed, new, probed=False)
        assert _matches(kind, keyed, new, probed=True) == expected
        assert any(first is not None for first, _ in expected) and any(copy is not None for _, copy in expected)
        assert kind.probes({"note": "x"}) is None  # no name column: every keyed row is compared


def test_follow_up_and_declared_probes_find_the_same_rows(app: Any) -> None:
    follow_ups = [{"customer": c, "followed_at": "2024-05-01 10:00", "content": t, "owner": "rep_a"}
                  for c, t in [("C1", "call"), ("C2", "call"), ("C1", "visit"), ("", "call")]]
    new_follow_ups = [{**follow_ups[0], "owner": ""}, follow_ups[3], {**follow_ups[1], "content": "other"}]
    with app.app_context():
        kind = FollowUpRecords()
        assert _matches(kind, follow_ups, new_follow_ups, True) == _matches(kind, follow_ups, new_follow_ups, False)
        if "product" not in REGISTRY:  # filled when the app is built
            pytest.skip("no declared product type")
        declared = DeclaredRecords(REGISTRY["product"])
        fields = [f.name for f in declared.spec.fields if f.name != "code"][:3]
        keyed = [dict(zip(fields, values, strict=True)) for values in [("a", "1", ""), ("b", "1", ""), ("a", "", "x")]]
        new = [dict(keyed[0]), {**keyed[1], fields[1]: "2"}, dict(keyed[2]), dict(zip(fields, ("", "", ""), strict=True))]
        assert _matches(declared, keyed, new, True) == _matches(declared, keyed, new, False)
        assert any(found != (None, None) for found in _matches(declared, keyed, new, True))


def test_a_run_with_probes_plans_what_a_run_comparing_every_row_plans(
        app: Any, side: Any, make_target: Any, sync: Any, make_customer: Any, monkeypatch: Any) -> None:
    pks = [make_customer("rep_a", name=name, contact_name=contact, contact_phone=phone)
           for name, contact, phone in [("Probe A", "甲", "13800000001"), ("Probe B", "乙", "13800000002"),
                                        ("Probe C", "丙", "13800000003")]]
    side.create([["客户编号", "客户名称", "联系人姓名", "联系方式", "所属行业", "备注"]])
    target = make_target(run_as="rep_a")
    sync(target)
    sync(target)
    codes = [_customer(app, pk)["code"] for pk in pks]
    assert all(codes)
    side.edit(append=[["", "probe a", "甲", "13800000001", "", ""],  # the duplicate rule's twin of Probe A
                      ["", "Probe B", "乙", "13800000002", "", ""],  # a copy of Probe B's row
                      ["", "Probe D", "丁", "13800000004", "", ""],  # new
                      ["", "Probe D", "丁", "13800000004", "", ""]])  # typed twice
    every: list[Any] = []
    for probed in (False, True):
        if not probed:
            monkeypatch.setattr(CustomerRecords, "probes", lambda self, fields: None)
        else:
            monkeypatch.undo()
        log, _ = sync(target, dry_run=True)
        every.append((log.status, log.counts, log.message))
    assert every[0] == every[1]
    assert every[1][1]["app_rejected"] >= 2, every[1]


def test_agreed_rows_decode_their_base_as_stored(app: Any, side: Any, make_target: Any, sync: Any,
                                                  make_customer: Any) -> None:
    """The agreed rows read as JSON text (decoded on first use) hold what the ORM reads."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import SyncRow
    from sync.plan import agreed_rows

    make_customer("rep_a", name="Agreed 甲", contact_name="甲", contact_phone="13800000009")
    side.create([["客户编号", "客户名称", "联系人姓名", "联系方式", "所属行业", "备注"]])
    target = make_target(run_as="rep_a")
    sync(target)
    with app.app_context():
        stored = {row.record_id: row for row in db.session.scalars(select(SyncRow).where(SyncRow.target_id == target))}
        found = agreed_rows(target)
        assert stored and set(found) == set(stored)
        for record_id, row in stored.items():
            agreed = found[record_id]
            assert (agreed.id, agreed.key, agreed.base, agreed.checked) == (row.id, row.key, row.base, row.checked)
            changed = agreed._replace(key="X")
            assert changed.key == "X" and changed.base == row.base and changed != agreed
            assert changed._replace(key=row.key) == agreed
        assert agreed_rows(target, list(stored)[:1]) == {k: found[k] for k in list(stored)[:1]}
