"""Bulk inserts (issue 12): from ``bulk.COPY_FROM`` rows PostgreSQL gets a COPY, SQLite
multi-row INSERT pages (as many rows as its bound-value limit allows). Either way the rows, their codes, ids, instants, status history, primary
contacts and audit entries are what the single-row path stores, a failing batch raises
SQLAlchemy's error and rolls back whole, and engine listeners see the statement."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError

from app.clock import frozen
from app.extensions import appbuilder, db
from app.models import AuditLog, Contact, Customer
from app.models.customers import CustomerStatusChange
from app.models.dictionaries import CustomerType
from app.services import bulk, customers
from app.services.importing import columns
from app.services.importing.engine import Settings, run_import
from app.services.importing.reading import read_table
from tests.app.services.importing.conftest import write_xlsx

MANY = bulk.COPY_FROM * 3  # well past the COPY threshold
AT = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def _rows(count: int, owner_id: int, type_id: int | None = None) -> list[dict[str, Any]]:
    return [{"name": f"批量客户{n}", "contact_name": f"联系人{n}", "contact_phone": f"139{n:08d}",
             "owner_id": owner_id, "type_id": type_id if n % 2 else None} for n in range(count)]


def _owner() -> Any:
    return appbuilder.sm.find_user(username="rep_a")


def test_many_customers_store_exactly_their_rows_codes_history_contacts_and_audit(ctx: Any) -> None:
    owner = _owner()
    kind = db.session.scalar(select(CustomerType).limit(1))
    rows = _rows(MANY, owner.id, kind.id)
    with frozen(AT):
        customers.insert_customers(rows)
    db.session.commit()
    db.session.expire_all()
    stored = {c.id: c for c in db.session.scalars(select(Customer))}
    assert sorted(stored) == sorted(row["id"] for row in rows)
    codes = [row["code"] for row in rows]
    assert len(set(codes)) == MANY and all(code.startswith("C") for code in codes)
    assert codes == sorted(codes)  # numbered in row order, as the single-row path does
    for row in rows:
        customer = stored[row["id"]]
        assert (customer.code, customer.name, customer.contact_phone, customer.owner_id, customer.type_id) == \
            (row["code"], row["name"], row["contact_phone"], owner.id, row["type_id"])
        assert customer.created_on == customer.changed_on == AT  # the instant, to the microsecond
        assert customer.version == 1
    history = db.session.scalars(select(CustomerStatusChange)).all()
    assert sorted(h.customer_id for h in history) == sorted(r["id"] for r in rows if r["type_id"])
    contacts = {c.customer_id: c for c in db.session.scalars(select(Contact))}
    assert {pk: (c.name, c.phone, c.is_primary) for pk, c in contacts.items()} == \
        {r["id"]: (r["contact_name"], r["contact_phone"], True) for r in rows}
    entries = {e.object_id: e for e in db.session.scalars(select(AuditLog).where(AuditLog.action == "create"))}
    assert set(entries) == {str(r["id"]) for r in rows}
    first = json.loads(entries[str(rows[1]["id"])].changes)
    assert first["code"] == [None, rows[1]["code"]] and first["type_id"] == [None, kind.id]
    assert first["contact_phone"][1] != rows[1]["contact_phone"]  # masked, as the hook masks it


def test_a_failing_batch_raises_sqlalchemys_error_and_stores_none_of_it(ctx: Any) -> None:
    owner = _owner()
    first = _rows(3, owner.id)
    customers.insert_customers(first)
    db.session.commit()
    rows = _rows(MANY, owner.id)
    for row in rows:
        row.update(name="第二批" + row["name"], created_on=AT, changed_on=AT, version=1)
        row["code"] = f"X{row['contact_phone']}"
    rows[-7]["code"] = first[0]["code"]  # taken: the unique index refuses the batch
    with pytest.raises(IntegrityError):
        bulk.insert_rows(db.session.connection(), Customer.__table__, rows)
    db.session.rollback()
    assert db.session.scalar(select(func.count(Customer.id))) == 3
    rows[-7]["code"] = "X-fixed"
    bulk.insert_rows(db.session.connection(), Customer.__table__, rows)  # the session works again
    db.session.commit()
    assert db.session.scalar(select(func.count(Customer.id))) == 3 + MANY


def test_listeners_see_one_statement_per_batch(ctx: Any) -> None:
    owner = _owner()
    customers.insert_customers(_rows(1, owner.id))
    customer_id = db.session.scalar(select(Customer.id))
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    stamp = {"created_on": AT, "changed_on": AT, "version": 1, "is_primary": False, "is_decision_maker": False}
    contacts = [{"code": f"P9{n:06d}", "customer_id": customer_id, "name": f"n{n}", **stamp} for n in range(MANY)]
    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        bulk.insert_rows(db.session.connection(), Contact.__table__, contacts)
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    assert len(seen) == 1 and "contact" in seen[0]
    if db.engine.dialect.name == "postgresql":  # issue 12: a COPY, not a statement per row
        assert seen[0].startswith("COPY contact (")
    assert db.session.scalar(select(func.count(Contact.id)).where(Contact.is_primary.is_(False))) == MANY


@pytest.mark.parametrize("limit", [None, 40])  # 40 bound values: two contact rows a statement
def test_sqlite_pages_store_every_row_once_in_order_within_the_bound_value_limit(
        ctx: Any, monkeypatch: pytest.MonkeyPatch, limit: int | None) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's multi-row pages")
    owner = _owner()
    customers.insert_customers(_rows(1, owner.id))
    customer_id = db.session.scalar(select(Customer.id))
    monkeypatch.setattr(bulk, "SQLITE_PAGE_ROWS", 7)
    raw = db.session.connection().connection.driver_connection
    before = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", listen)
    stamp = {"created_on": AT, "changed_on": AT, "version": 1, "is_primary": False, "is_decision_maker": False}
    contacts = [{"code": f"P7{n:06d}", "customer_id": customer_id, "name": f"n{n}", **stamp} for n in range(MANY)]
    try:
        if limit:
            raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
        bulk.insert_rows(db.session.connection(), Contact.__table__, contacts)
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, before)
        event.remove(db.engine, "before_cursor_execute", listen)
    db.session.commit()
    per_page = 7 if limit is None else limit // len(contacts[0])
    assert len(seen) == -(-MANY // per_page)
    stored = db.session.execute(select(Contact.code, Contact.name).where(Contact.is_primary.is_(False))
                                .order_by(Contact.id)).all()
    assert [tuple(row) for row in stored] == [(c["code"], c["name"]) for c in contacts]


def test_instants_in_other_zones_are_stored_as_the_same_instant(ctx: Any) -> None:
    """Each distinct value is converted once: equal instants written in two zones still
    come back as the one instant (and different ones stay different)."""
    owner = _owner()
    customers.insert_customers(_rows(1, owner.id))
    customer_id = db.session.scalar(select(Customer.id))
    east = AT.astimezone(ZoneInfo("Asia/Shanghai"))
    later = AT + timedelta(seconds=1)
    contacts = [{"code": f"P8{n:06d}", "customer_id": customer_id, "name": f"n{n}", "version": 1,
                 "is_primary": False, "is_decision_maker": False, "created_on": (AT, east, later)[n % 3],
                 "changed_on": AT} for n in range(MANY)]
    bulk.insert_rows(db.session.connection(), Contact.__table__, contacts)
    db.session.commit()
    stored = dict(db.session.execute(select(Contact.code, Contact.created_on)
                                     .where(Contact.is_primary.is_(False))).all())
    assert {stored[c["code"]] for c in contacts if c["created_on"] is not later} == {AT}
    assert {stored[c["code"]] for c in contacts if c["created_on"] is later} == {later}


def test_an_import_past_the_copy_threshold_commits_rows_codes_and_audit(app: Any, tmp_path: Path) -> None:
    """The manual's template through the bulk path: good rows stored with codes in row
    order and audited as imported, bad rows refused with their messages."""
    headers = ["客户编号", "客户名称", "所属行业", "联系人姓名", "联系方式", "客户地址", "备注"]
    lines = [["", f"导入客户{n:04d}", "", f"联系人{n}", "12345" if n == 40 else f"138{n:08d}", "地址", "备注"]
             for n in range(MANY)]
    path = write_xlsx(tmp_path / "many.xlsx", {"客户信息": [headers, *lines]})
    with app.app_context():
        user = _owner()
        table = read_table(path)
        mapping = columns.auto_map(columns.CUSTOMER, table.headers)
        result = run_import(table, mapping, Settings("customer", chunk_size=MANY), user, commit=True)
        assert (result.counts["create"], result.counts["error"]) == (MANY - 1, 1)
        assert "联系方式" in str(result.rejected_rows[0][2]) and result.rejected_rows[0][0] == 42
        stored = db.session.execute(select(Customer.name, Customer.code).order_by(Customer.code)).all()
        assert [name for name, _code in stored] == [f"导入客户{n:04d}" for n in range(MANY) if n != 40]
        audited = db.session.scalars(select(AuditLog.source).where(AuditLog.action == "create",
                                                                   AuditLog.object_type == "Customer")).all()
        assert audited == ["import"] * (MANY - 1)
        db.session.remove()


def test_a_column_empty_in_a_whole_page_is_stored_null_and_a_partly_empty_one_keeps_its_values(
        ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite writes a column that is None in every row of a page as a NULL literal; the
    # others stay bound, including one that is None in the page's first row only.
    owner = _owner()
    customers.insert_customers(_rows(1, owner.id))
    customer_id = db.session.scalar(select(Customer.id))
    monkeypatch.setattr(bulk, "SQLITE_PAGE_ROWS", 5)
    stamp = {"created_on": AT, "changed_on": AT, "version": 1, "is_primary": False, "is_decision_maker": False}
    contacts = [{"code": f"P8{n:06d}", "customer_id": customer_id, "name": f"n{n}", **stamp,
                 "title": None if n < 5 else f"经理{n}",  # empty in the whole first page only
                 "email": None if n % 5 == 0 else f"p{n}@example.com",  # empty in each page's first row
                 "phone": None} for n in range(12)]
    bulk.insert_rows(db.session.connection(), Contact.__table__, contacts)
    db.session.commit()
    stored = db.session.execute(select(Contact.code, Contact.title, Contact.email, Contact.phone)
                                .where(Contact.is_primary.is_(False)).order_by(Contact.id)).all()
    assert [tuple(row) for row in stored] == [(c["code"], c["title"], c["email"], None) for c in contacts]


@pytest.mark.parametrize("count", [3, MANY])  # executemany below COPY_FROM, COPY from it
def test_instants_come_back_exact_through_either_path(ctx: Any, count: int) -> None:
    """Instants bound as text (``bulk.postgresql_text``, ``sqlite_text``) are the ones given,
    to the microsecond: a zone other than UTC, a whole second (ISO 8601 then drops the
    microseconds) and a year below 1000."""
    owner = _owner()
    customers.insert_customers(_rows(1, owner.id))
    customer_id = db.session.scalar(select(Customer.id))
    instants = [AT, AT.astimezone(ZoneInfo("America/New_York")), AT.replace(microsecond=0),
                datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC)]
    contacts = [{"code": f"P7{n:06d}", "customer_id": customer_id, "name": f"n{n}", "version": 1,
                 "is_primary": False, "is_decision_maker": False, "created_on": instants[n % len(instants)],
                 "changed_on": AT} for n in range(count)]
    if db.session.get_bind().dialect.name == "postgresql":  # a server whose zone is not UTC reads the same instants
        db.session.execute(text("SET LOCAL TIME ZONE 'Asia/Shanghai'"))
    bulk.insert_rows(db.session.connection(), Contact.__table__, contacts)
    db.session.commit()
    stored = dict(db.session.execute(select(Contact.code, Contact.created_on)
                                     .where(Contact.is_primary.is_(False))).all())
    assert {code: at.astimezone(UTC) for code, at in stored.items()} == {
        c["code"]: c["created_on"].astimezone(UTC) for c in contacts}


@pytest.mark.parametrize("count", [3, MANY])
def test_wall_times_and_days_keep_what_was_written_in_any_zone(ctx: Any, count: int) -> None:
    """A plain date-time column keeps the wall time given and a date column the day, whatever
    the value's zone, on both databases and both paths; an instant in a zone whose offset is
    not whole minutes is stored as that instant."""
    from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Table

    table = Table("bulk_forms_probe", MetaData(), Column("id", Integer, primary_key=True),
                  Column("wall", DateTime), Column("day", Date), Column("instant", DateTime(timezone=True)))
    odd = timezone(timedelta(hours=5, microseconds=3))  # ISO 8601 text PostgreSQL refuses: "+05:00:00.000003"
    at = datetime(2026, 3, 4, 1, 30, 5, 6, tzinfo=odd)
    table.create(db.session.connection())
    try:
        bulk.insert_rows(db.session.connection(), table, [
            {"id": n, "wall": at, "day": at, "instant": at} for n in range(count)])
        stored = set(db.session.execute(select(table.c.wall, table.c.day, table.c.instant)).all())
        assert len(stored) == 1
        wall, day, instant = stored.pop()
        assert (wall, day) == (datetime(2026, 3, 4, 1, 30, 5, 6), date(2026, 3, 4))
        if db.session.get_bind().dialect.name == "postgresql":  # SQLite keeps no zone
            assert instant == at
    finally:
        db.session.rollback()
        table.drop(db.session.connection(), checkfirst=True)
        db.session.commit()


def test_rows_inserted_with_ids_get_the_ids_they_were_stored_under(ctx: Any) -> None:
    # ids come back without a query by code (PostgreSQL: drawn from the sequence first;
    # SQLite: RETURNING); a record saved afterwards through the ORM takes the next id.
    owner = _owner()
    customers.insert_customers(_rows(3, owner.id))
    db.session.commit()
    rows = _rows(MANY, owner.id)
    customers.insert_customers(rows)
    db.session.commit()
    stored = dict(db.session.execute(select(Customer.id, Customer.name)).all())
    assert {row["id"]: row["name"] for row in rows}.items() <= stored.items()
    assert len({row["id"] for row in rows}) == MANY
    later = Customer(name="之后单独保存", contact_name="王五", contact_phone="13900000000", owner_id=owner.id)
    db.session.add(later)
    db.session.commit()
    assert later.id > max(row["id"] for row in rows)


def test_a_roomy_import_transaction_gives_its_connection_back_with_the_usual_settings(ctx: Any) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's page cache and checkpoints")

    def settings(raw: Any) -> tuple[int, int]:
        return (raw.execute("PRAGMA cache_size").fetchone()[0], raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

    db.session.commit()
    raw = db.session.connection().connection.driver_connection
    usual = settings(raw)
    bulk.roomy_transaction(db.session.connection())
    assert settings(raw) == (-bulk.ROOMY_CACHE_KIB, bulk.ROOMY_CHECKPOINT_PAGES)
    customers.insert_customers(_rows(3, _owner().id))
    db.session.commit()  # the connection goes back to the pool, for any other request
    assert settings(raw) == usual


def test_before_sqlite_3_35_ids_are_read_back_by_code(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite without RETURNING")
    monkeypatch.setattr(bulk.sqlite3, "sqlite_version_info", (3, 34, 1))
    rows = _rows(MANY, _owner().id)
    customers.insert_customers(rows)
    db.session.commit()
    stored = dict(db.session.execute(select(Customer.id, Customer.name)).all())
    assert {row["id"]: row["name"] for row in rows} == stored


def test_rows_tried_again_after_a_failed_insert_are_numbered_then(ctx: Any) -> None:
    """A failed store leaves the rows as they came (blank codes blank), so trying them again
    numbers them instead of storing the stand-in the failed try prepared them with."""
    from app.models import FollowUp
    from app.services import follow_ups

    owner = _owner()
    rows = _rows(1, owner.id)
    rows[0]["contact_phone"] = None  # NOT NULL: the first try fails
    with pytest.raises(IntegrityError), db.session.begin_nested():
        customers.insert_customers(rows)
    assert rows[0]["code"] is None
    rows[0]["contact_phone"] = "13900000077"
    customers.insert_customers(rows)
    pk = rows[0]["id"]
    follow = [{"code": None, "customer_id": pk, "followed_at": AT, "method_id": None, "content": None,
               "next_step": None, "next_step_date": None, "owner_id": owner.id}]
    with pytest.raises(IntegrityError), db.session.begin_nested():
        follow_ups.insert_follow_ups(follow)
    assert follow[0]["code"] is None
    follow[0]["content"] = "Called again"
    follow_ups.insert_follow_ups(follow)
    db.session.commit()
    assert db.session.get(Customer, pk).code.startswith("C")
    assert db.session.get(FollowUp, follow[0]["id"]).code.startswith("G")
