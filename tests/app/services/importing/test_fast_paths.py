"""Issue 12: the import's fast paths give what the rules gave before them.

* ``clock.zone_pinned``: the CRM zone read once per chunk answers as a look-up per call;
* ``customers.check_customer`` written as straight calls: the same values and errors as the
  step table it replaced (kept below as the reference) on the bench's rows and odd ones;
* ``activities._subjects``, ``bulk._convert``: the same subjects and bound values.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from flask_babel import lazy_gettext as _l

from app import clock
from app.services import activities, bulk, customers, validation
from app.services.customers import _TEXT_LIMITS, CHOICES, resolve_phone

EAST = timezone(timedelta(hours=8))

# --- the zone, once per chunk ---------------------------------------------------------

CELLS = [datetime(2026, 5, 1, 9, 30), date(2026, 5, 1), "2026-05-01 09:30", 46143.5,
         datetime(2026, 5, 1, 9, 30, tzinfo=UTC), datetime(2026, 5, 1, 17, 30, tzinfo=EAST), "", None]


def _readings() -> list[Any]:
    moments = [validation.parse_datetime(cell) for cell in CELLS]
    return [*moments, [validation.date_problem(m) for m in moments], clock.zone_name(),
            clock.to_local(CELLS[4]), clock.from_local(CELLS[0]), clock.local_text(CELLS[4])]


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "America/New_York"])
def test_a_pinned_zone_reads_as_the_zone_looked_up(app: Any, monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    monkeypatch.setitem(app.config, "CRM_TIMEZONE", zone)
    with app.app_context():
        expected = _readings()
        with clock.zone_pinned() as pinned:
            assert pinned == clock.crm_zone() and str(pinned) == zone
            assert _readings() == expected
            assert [getattr(m, "tzinfo", None) for m in _readings()[:len(CELLS)]] == \
                [getattr(m, "tzinfo", None) for m in expected[:len(CELLS)]]


def test_a_zone_saved_during_a_pinned_block_applies_from_the_next(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_TIMEZONE", "Asia/Shanghai")
    with app.app_context():
        try:
            with clock.zone_pinned():
                clock.set_company_zone("Europe/Berlin")
                assert clock.zone_name() == "Asia/Shanghai"
            assert clock.zone_name() == "Europe/Berlin"
        finally:
            clock.set_company_zone(None)
        assert clock.zone_name() == "Asia/Shanghai"


def test_a_pin_holds_for_its_own_thread_only(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CRM_TIMEZONE", "Asia/Shanghai")
    seen: list[str] = []
    with app.app_context(), clock.zone_pinned():
        clock.set_company_zone("Europe/Berlin")
        try:
            thread = threading.Thread(target=lambda: seen.append(clock.zone_name()))
            thread.start()
            thread.join()
            assert clock.zone_name() == "Asia/Shanghai"
        finally:
            clock.set_company_zone(None)
    assert seen == ["Europe/Berlin"]


# --- check_customer: the step table it replaced, as the reference ------------------------

_REFERENCE_STEPS = (
    ("name", lambda value, previous: validation.require_text(value, 200)),
    ("contact_name", lambda value, previous: validation.clean_line(value) or None),
    ("address", lambda value, previous: validation.clean_line(value) or None),
    ("note", lambda value, previous: validation.clean_block(value) or None),
    ("contact_phone", lambda value, previous: resolve_phone(value, previous.get("contact_phone"))),
    ("credit_code", lambda value, previous: validation.normalize_credit_code(value)),
    ("email", lambda value, previous: validation.normalize_email(value)),
)


def reference_check_customer(values: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, str]:
    """``check_customer`` as it was before issue 12's second pass (verbatim but for names)."""
    previous = previous or {}
    errors: dict[str, str] = {}
    for name, step in _REFERENCE_STEPS:
        try:
            values[name] = step(values.get(name), previous)
        except ValueError as exc:
            errors[name] = str(exc)
    for name in CHOICES:
        entry = values.get(name)
        if entry is not None:
            try:
                validation.check_choice(entry, previous.get(f"{name}_id"))
            except ValueError as exc:
                errors[name] = str(exc)
    for name, limit in _TEXT_LIMITS.items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit and name not in errors:
            errors[name] = str(_l("At most %(n)d characters.", n=limit))
    return errors


ACTIVE, OTHER = SimpleNamespace(id=1, active=True, name="A"), SimpleNamespace(id=2, active=True, name="B")
RETIRED = SimpleNamespace(id=3, active=False, name="C", __str__=lambda self: "C")


def bench_rows(count: int = 3000) -> list[dict[str, Any]]:
    """The customer bench's rows (``bench.import_customers.make_workbook``), as the importer
    hands them to ``check_customer``, with its bad ones."""
    rows = []
    for n in range(count):
        row = {"name": f"测试科技有限公司{n:06d}", "contact_name": f"联系人{n % 5000}", "contact_phone": f"139{n:08d}",
               "address": f"北京市海淀区中关村大街{n}号", "note": "2024年广交会接触", "credit_code": None, "email": None,
               "type": None, "industry": (ACTIVE, OTHER, None)[n % 3], "level": (ACTIVE, None)[n % 2],
               "source": OTHER}
        if n % 150 == 7:
            row["contact_phone"] = "12345"
        elif n % 150 == 19:
            row["name"] = None
        rows.append(row)
    return rows


ODD_ROWS = [
    {},
    {"name": "  Acme\u200b  Ltd ", "contact_name": "\u3000张三\t", "address": "a\nb", "note": " x\r\n\r\ny \n",
     "contact_phone": "+86 138-1234-5678", "credit_code": "91350100 M000100Y43", "email": " Bob@Example.COM "},
    {"name": "x" * 201, "contact_name": "y" * 65, "address": "z" * 256, "note": "n" * 10001,
     "contact_phone": "0755 1234 5678 转 12", "credit_code": "91350100M000100Y44", "email": "no-at-sign"},
    {"name": "Ｆｕｌｌ", "contact_phone": "１３８１２３４５６７８", "credit_code": "ABC", "email": "ａ@ｂ.ｃｏｍ"},
    {"name": "n", "contact_phone": "13812345678.0", "credit_code": "", "email": "", "type": RETIRED},
    {"name": "n", "contact_phone": "1381234567.8", "credit_code": "  ", "industry": RETIRED, "level": RETIRED},
    {"name": "\u200b", "contact_phone": "", "note": None, "address": 12, "contact_name": 3.5},
]
PREVIOUS = [None, {}, {"contact_phone": "13812345678", "type_id": 3, "industry_id": 2},
            {"contact_phone": "0755-12345678"}]


def test_check_customer_gives_what_the_step_table_gave(ctx: Any) -> None:
    for values in bench_rows() + ODD_ROWS:
        for previous in PREVIOUS:
            fast, slow = dict(values), dict(values)
            assert customers.check_customer(fast, previous) == reference_check_customer(slow, previous)
            assert fast == slow
            assert list(customers.check_customer(dict(values), previous)) == \
                list(reference_check_customer(dict(values), previous))  # errors in the same order


# --- planned activities' subjects, bound values ----------------------------------------

def test_subjects_are_each_rows_subject(ctx: Any) -> None:
    rows = [{"next_step": step, "code": f"G{n}"} for n, step in
            enumerate(["发送报价单", " 发送报价单 ", None, "", "\u200b", "x" * 300, "发送报价单", None, "a\nb"])]
    assert activities._subjects(rows) == [activities._subject(r["next_step"], r["code"]) for r in rows]


def test_converting_a_column_with_shared_values_is_converting_each(ctx: Any) -> None:
    stamp = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    same_instant = datetime(2026, 5, 1, 17, 30, tzinfo=EAST)
    cells = [stamp, stamp, None, stamp, same_instant, same_instant, stamp, date(2026, 5, 1), date(2026, 5, 1),
             datetime(2026, 5, 1, 9, 30), None, stamp]

    def convert(value: Any) -> Any:
        return (value.isoformat(), getattr(value, "tzinfo", None))

    values = [[cell] for cell in cells]
    bulk._convert(values, 0, convert)
    assert [row[0] for row in values] == [None if cell is None else convert(cell) for cell in cells]
