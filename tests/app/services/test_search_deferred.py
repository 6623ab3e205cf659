"""PostgreSQL keeps the searched text in side tables with the trigram indexes (issue 12,
migration b2d4f6a8c0e1): a saved record is indexed in its own statement, rows an import
inserts are only noted and indexed after it (``search.index_pending``). Search finds a
noted row all the same, and follows edits and deletes made before or after the indexing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from app import record_types
from app.extensions import appbuilder, db
from app.models import Contact, Customer, CustomerStatusChange
from app.services import search


@pytest.fixture(autouse=True)
def _postgresql_only(app: Any) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the side tables are PostgreSQL's (SQLite: FTS5 tables, test_search_indexed)")


def _rep() -> Any:
    return appbuilder.sm.find_user(username="rep_a")


def _found(typed: str) -> list[int]:
    return [c.id for c in search.quick_find(_rep(), search.CUSTOMERS, typed, db.session).items]


def _listed(typed: str) -> list[int]:
    """What the customer list's search box keeps (``customer_clause``), every owner."""
    return sorted(db.session.scalars(select(Customer.id).where(search.customer_clause(typed, db.session))))


def _pending(table: str = "customer") -> set[int]:
    return search.noted(db.session, table)


def _indexed(pk: int) -> str | None:
    return db.session.scalar(text("SELECT name FROM customer_search WHERE id = :id"), {"id": pk})


def _noted_customer(make_customer: Any, app: Any, name: str, **fields: Any) -> int:
    """A customer inserted by a transaction that deferred its indexing, as an import's chunk does."""
    with app.app_context():
        search.defer_indexing(db.session.connection())
        db.session.add(Customer(name=name, contact_phone=fields.pop("contact_phone", "13800007777"),
                                owner_id=_rep().id, **fields))
        db.session.commit()
        pk = db.session.scalar(select(Customer.id).where(Customer.name == name))
        db.session.remove()
    return pk


def test_a_saved_customer_is_indexed_at_once_and_follows_edits_and_deletes(ctx: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Bluewater Instruments", contact_name="Zhao Min", contact_phone="13800005555")
    assert _indexed(pk) == "Bluewater Instruments" and pk not in _pending()
    assert _found("water instr") == [pk] and _listed("zhao min") == [pk]
    db.session.execute(update(Customer).where(Customer.id == pk).values(name="Redrock Instruments"))
    db.session.commit()
    assert _found("bluewater") == [] and _found("redrock") == [pk] and _indexed(pk) == "Redrock Instruments"
    db.session.execute(delete(CustomerStatusChange).where(CustomerStatusChange.customer_id == pk))
    db.session.execute(delete(Customer).where(Customer.id == pk))
    db.session.commit()
    assert _found("redrock") == [] and _indexed(pk) is None


def test_a_noted_row_is_found_before_and_after_the_indexing(app: Any, ctx: Any, make_customer: Any) -> None:
    pk = _noted_customer(make_customer, app, "Goldleaf Ceramics", credit_code="91310000MA1K4ABC12")
    assert pk in _pending() and _indexed(pk) is None  # noted, not indexed
    for typed in ("leaf cera", "ＧＯＬＤＬＥＡＦ", "ma1k4abc"):
        assert _found(typed) == [pk] and _listed(typed) == [pk], typed
    assert _listed("13800007777") == [pk]  # the phone part of the list's search, with the noted row
    db.session.execute(update(Customer).where(Customer.id == pk).values(name="Silverleaf Ceramics"))
    db.session.commit()  # edited while noted: the indexing copies what is stored then
    assert _found("goldleaf") == [] and _found("silverleaf") == [pk]
    assert search.index_pending() >= 1
    assert pk not in _pending() and _indexed(pk) == "Silverleaf Ceramics"
    assert _found("silverleaf") == [pk] and _listed("silverleaf") == [pk] and _found("goldleaf") == []
    assert search.index_pending() == 0  # nothing left


def test_a_noted_row_deleted_before_the_indexing_is_not_found(app: Any, ctx: Any, make_customer: Any) -> None:
    pk = _noted_customer(make_customer, app, "Ironbridge Textiles")
    db.session.execute(delete(CustomerStatusChange).where(CustomerStatusChange.customer_id == pk))
    db.session.execute(delete(Customer).where(Customer.id == pk))
    db.session.commit()
    assert _found("ironbridge") == []
    search.index_pending()
    assert _pending() == set() and _indexed(pk) is None


def test_noted_rows_keep_scope(app: Any, ctx: Any, make_customer: Any) -> None:
    with app.app_context():
        search.defer_indexing(db.session.connection())
        db.session.add(Customer(name="Copperfield Mills of rep_b", contact_phone="13900007777",
                                owner_id=appbuilder.sm.find_user(username="rep_b").id))
        db.session.commit()
        db.session.remove()
    assert _found("copperfield") == []  # rep_a does not see rep_b's noted customer
    search.index_pending()
    assert _found("copperfield") == []


def test_contacts_and_follow_ups_of_noted_rows_are_found(app: Any, ctx: Any, make_customer: Any,
                                                         make_follow_up: Any) -> None:
    pk = make_customer("rep_a", name="Plain Holdings", contact_phone="13800008888")
    with app.app_context():
        search.defer_indexing(db.session.connection())
        db.session.add(Contact(customer_id=pk, name="Ouyang Feixue", phone="13800009999"))
        db.session.commit()
        db.session.remove()
    note = make_follow_up(pk, "rep_a", content="Quoted the kingfisher pumps")
    assert _pending("contact")
    contacts = search.declared_finder(record_types.for_model(Contact))
    assert [c.name for c in search.quick_find(_rep(), contacts, "feixue", db.session).items] == ["Ouyang Feixue"]
    assert [f.id for f in search.quick_find(_rep(), search.FOLLOW_UPS, "kingfisher", db.session).items] == [note]
    search.index_pending()
    assert not search.anything_noted(db.session.connection())
    assert [c.name for c in search.quick_find(_rep(), contacts, "feixue", db.session).items] == ["Ouyang Feixue"]


def test_an_erasure_vacuums_the_side_tables_of_the_tables_it_touched(ctx: Any) -> None:
    from sqlalchemy import event

    from app.services.erasure import sweep

    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        sweep.after_commit(["customer", "ticket"])
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert 'VACUUM "customer_search"' in seen and 'VACUUM "customer"' in seen  # the erased text's old copies
    assert not any("ticket_search" in statement for statement in seen)


def test_with_nothing_noted_the_search_reads_the_side_table_alone(app: Any, ctx: Any, make_customer: Any) -> None:
    """A common text on a list page: the side table alone lets the planner walk the newest
    rows and stop at the page; the UNION with the noted rows (only while some are noted)
    makes it collect every hit first (266 ms against 0.5 ms at 100,000 customers)."""
    make_customer("rep_a", name="Amberline Foods", contact_phone="13800006666")

    def sql() -> str:
        return str(select(Customer.id).where(search.customer_clause("amberline", db.session)).compile(db.engine))

    assert "UNION" not in sql() and "customer_search" in sql()
    _noted_customer(make_customer, app, "Amberline Foods East")
    assert "UNION" in sql() and _found("amberline foods") and len(_listed("amberline")) == 2
    search.index_pending()
    assert "UNION" not in sql() and len(_listed("amberline")) == 2


def test_a_row_an_edit_holds_is_left_noted_without_waiting(app: Any, ctx: Any, make_customer: Any) -> None:
    """``index_pending`` never waits on an edit (it could deadlock with one changing several
    rows): the held row stays noted, found meanwhile, and is copied by the next run."""
    pk = _noted_customer(make_customer, app, "Lapwing Marine")
    other = _noted_customer(make_customer, app, "Lapwing Boats")
    with db.engine.connect() as editing:
        editing.execute(update(Customer).where(Customer.id == pk).values(name="Lapwing Harbour"))  # not committed
        assert search.index_pending() >= 1
        assert pk in _pending() and other not in _pending() and _indexed(other) == "Lapwing Boats"
        editing.commit()
    db.session.commit()
    assert _found("lapwing harbour") == [pk]
    search.index_pending()
    assert pk not in _pending() and _indexed(pk) == "Lapwing Harbour"


def _spans(table: str = "customer") -> list[tuple[int, int]]:
    return [tuple(r) for r in db.session.execute(text(
        "SELECT low_id, high_id FROM search_pending_span WHERE tbl = :t ORDER BY low_id"), {"t": table})]


def _row_notes(table: str = "customer") -> set[int]:
    return set(db.session.scalars(text("SELECT row_id FROM search_pending WHERE tbl = :t"), {"t": table}))


def _inserted_deferred(app: Any, rows: list[dict]) -> set[int]:
    """``rows`` inserted by one statement of a transaction that deferred its indexing (an import's chunk)."""
    with app.app_context():
        search.defer_indexing(db.session.connection())
        db.session.execute(insert(Customer).values(rows))
        db.session.commit()
        db.session.remove()
    return set(db.session.scalars(select(Customer.id).where(Customer.code.in_([r["code"] for r in rows]))))


def test_an_import_statement_notes_its_rows_as_one_span(app: Any, ctx: Any) -> None:
    """Migration c8e0a2b4d6f9: one span per statement instead of a note per row (the notes
    were ~0.6 s of the server's time per 100,000 imported customers, inside the chunks)."""
    rows = [{"code": f"C2098{n:07d}", "name": f"Harrier Freight {n:02d}", "contact_phone": f"1380001{n:04d}",
             "owner_id": _rep().id, "version": 1} for n in range(60)]
    ids = _inserted_deferred(app, rows)
    assert _spans() == [(min(ids), max(ids))] and _row_notes() == set() and _pending() == ids
    assert _listed("harrier freight") == sorted(ids) and len(_found("harrier freight")) == search.QUICK_LIMIT
    gone = min(ids)
    db.session.execute(delete(CustomerStatusChange).where(CustomerStatusChange.customer_id == gone))
    db.session.execute(delete(Customer).where(Customer.id == gone))
    db.session.commit()
    assert _listed("harrier freight") == sorted(ids - {gone}) and _pending() == ids - {gone}
    assert search.index_pending(batch=25) == 59  # a span longer than a batch: copied in three transactions
    assert _spans() == [] and _pending() == set() and not search.anything_noted(db.session.connection())
    assert _indexed(max(ids)) == "Harrier Freight 59" and _indexed(gone) is None
    assert _listed("harrier freight") == sorted(ids - {gone})


def test_a_span_row_an_edit_holds_is_noted_alone_for_the_next_run(app: Any, ctx: Any) -> None:
    rows = [{"code": f"C2095{n:07d}", "name": f"Plover Glass {n}", "contact_phone": f"1380004{n:04d}",
             "owner_id": _rep().id, "version": 1} for n in range(50)]
    ids = sorted(_inserted_deferred(app, rows))
    with db.engine.connect() as editing:
        editing.execute(update(Customer).where(Customer.id == ids[1]).values(name="Plover Mirrors"))  # not committed
        assert search.index_pending() == 49
        assert _spans() == [] and _row_notes() == {ids[1]} and _indexed(ids[1]) is None
        editing.commit()
    db.session.commit()
    assert _listed("plover mirrors") == [ids[1]]
    assert search.index_pending() == 1 and _indexed(ids[1]) == "Plover Mirrors" and _pending() == set()


def test_a_delete_does_not_wait_for_a_span_being_indexed(app: Any, ctx: Any) -> None:
    """``index_pending`` holds the span it copies; a delete emptying it must not wait for it
    (the run may be waiting for a note that delete removed: a deadlock)."""
    rows = [{"code": f"C2093{n:07d}", "name": f"Avocet Linen {n}", "contact_phone": f"1380005{n:04d}",
             "owner_id": _rep().id, "version": 1} for n in range(50)]
    ids = _inserted_deferred(app, rows)
    with db.engine.connect() as indexing:
        indexing.execute(text("SELECT 1 FROM search_pending_span WHERE tbl = 'customer' FOR UPDATE"))
        db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
        db.session.execute(delete(CustomerStatusChange).where(CustomerStatusChange.customer_id.in_(ids)))
        db.session.execute(delete(Customer).where(Customer.id.in_(ids)))
        db.session.commit()
        indexing.rollback()
    assert _listed("avocet linen") == [] and _spans() == [(min(ids), max(ids))]  # left to the run holding it
    assert search.index_pending() == 0 and _spans() == [] and not search.anything_noted(db.session.connection())


def test_a_statement_with_scattered_ids_notes_its_rows_one_by_one(app: Any, ctx: Any) -> None:
    """A span over ids mostly not the statement's own would index many rows again; a few rows
    (an ``executemany`` inserts one per statement) would leave a span each."""
    rows = [{"id": 900_000_000 + 3 * n, "code": f"C2097{n:07d}", "name": f"Merlin Tools {n}",
             "contact_phone": f"1380002{n:04d}", "owner_id": _rep().id, "version": 1} for n in range(50)]
    ids = _inserted_deferred(app, rows)
    assert _spans() == [] and _row_notes() == ids and _listed("merlin tools") == sorted(ids)
    few = _inserted_deferred(app, [{**{k: v for k, v in row.items() if k != "id"},
                                    "code": row["code"].replace("C2097", "C2094")} for row in rows[:49]])
    assert _spans() == [] and _row_notes() == ids | few
    assert search.index_pending() == 99 and _pending() == set() and _indexed(900_000_003) == "Merlin Tools 1"


def test_deleting_every_row_of_a_span_forgets_it(app: Any, ctx: Any) -> None:
    rows = [{"code": f"C2096{n:07d}", "name": f"Kite Paper {n}", "contact_phone": f"1380003{n:04d}",
             "owner_id": _rep().id, "version": 1} for n in range(50)]
    ids = _inserted_deferred(app, rows)
    db.session.execute(delete(CustomerStatusChange).where(CustomerStatusChange.customer_id.in_(ids)))
    db.session.execute(delete(Customer).where(Customer.id.in_(sorted(ids)[:-1])))
    db.session.commit()
    assert _spans() == [(min(ids), max(ids))]  # one row left in it
    db.session.execute(delete(Customer).where(Customer.id == max(ids)))
    db.session.commit()
    assert _spans() == [] and not search.anything_noted(db.session.connection())


def test_contacts_in_a_related_field_are_matched_through_the_side_table(ctx: Any) -> None:
    contacts = search.declared_finder(record_types.for_model(Contact))
    sql = str(select(Contact.id).where(contacts.broad("feixue", db.session)).compile(db.engine))
    assert "contact_search" in sql  # the trigram indexes moved there (a scan of contact otherwise)


def test_a_backup_from_before_the_side_tables_is_restored(ctx: Any, backup_dirs: Any, make_customer: Any) -> None:
    """``pg_restore --clean`` of an older dump drops and makes the record tables again: nothing
    of the migration may depend on them, and the upgrade after it makes the copies anew."""
    from flask_migrate import downgrade, upgrade

    from app.models import BackupRun
    from app.services import backups

    make_customer("rep_a", name="Old Dingo Trading", contact_phone="13800006663")
    db.session.remove()
    downgrade(revision="e9f1a3b5c7d0")
    search._PG_SIDES.clear()
    try:
        old = backups.create("manual").id
        db.session.remove()
    finally:
        upgrade()
        search._PG_SIDES.clear()
    make_customer("rep_a", name="New Dingo Trading", contact_phone="13800006664")
    backups.restore(db.session.get(BackupRun, old), None, source="cli")
    db.session.remove()
    assert [c.name for c in search.quick_find(_rep(), search.CUSTOMERS, "dingo trad", db.session).items] == \
        ["Old Dingo Trading"]
    assert db.session.scalar(text("SELECT count(*) FROM customer_search")) == \
        db.session.scalar(select(func.count(Customer.id)))


def test_a_failed_restore_leaves_the_search_indexes_as_they_were(ctx: Any, backup_dirs: Any, make_customer: Any,
                                                                   monkeypatch: Any) -> None:
    from app.models import BackupRun
    from app.services import backups
    from app.services.backups import dump
    from app.services.errors import RuleViolation

    make_customer("rep_a", name="Heron Glassworks", contact_phone="13800006665")
    taken = backups.create("manual").id
    real = dump.run_tool

    def failing(argv: list[str], env: dict[str, str], timeout: int = 60) -> None:
        if "pg_restore" in argv[0] and "--clean" in argv:  # the live restore, not the check before it
            raise RuntimeError("pg_restore failed: disk full")
        real(argv, env, timeout)

    monkeypatch.setattr(dump, "run_tool", failing)
    with pytest.raises(RuleViolation):
        backups.restore(db.session.get(BackupRun, taken), None, source="cli")
    db.session.remove()
    indexes = set(db.session.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'customer_search'")))
    assert {f"ix_customer_search_{c}_trgm" for c in search.PG_SEARCH_COLUMNS["customer"]} <= indexes
    assert _found("heron glass")
