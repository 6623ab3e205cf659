"""Issue 12: imports at 100k rows. The work per row is the row's own (no query per row), the
rules are the forms' rules, and what a user sees (counts, messages, codes, the record's
history) is what a save through the form gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import event, select, update

from app.clock import utc_now
from app.extensions import appbuilder, db
from app.models import AuditLog, Customer, FollowUp
from app.services import follow_ups, search
from app.services.importing import columns
from app.services.importing.engine import Settings, run_import
from app.services.importing.reading import read_table
from tests.app.services.importing.conftest import refused_lines, write_xlsx
from tests.conftest import user_id

FOLLOW_UP_HEADERS = ["客户编号", "跟进时间", "跟进方式", "跟进内容", "下一步计划", "下一步日期"]


def _follow_up_file(tmp_path: Path, code: str, rows: int) -> Path:
    lines = [[code, f"2026-05-01 {9 + n % 8:02d}:{n % 60:02d}", "电话", f"Call {n}", "Quote", "2026-05-20"]
             for n in range(rows)]
    return write_xlsx(tmp_path / f"follow-ups-{rows}.xlsx", {"s": [FOLLOW_UP_HEADERS, *lines]})


def _statements_during_import(app: Any, path: Path, username: str, **settings: Any) -> tuple[int, Any]:
    """(SQL statements sent while ``run_import`` ran, its result), committing. Search's indexing
    of the new rows, which the run asks for after it (``search.index_soon``), is not counted."""
    with app.app_context():
        user = appbuilder.sm.find_user(username=username)
        table = read_table(path)
        mapping = columns.auto_map(columns.FOLLOW_UP, table.headers)
        sent = []
        engine = db.engine

        def count(*_args: Any) -> None:
            sent.append(1)

        event.listen(engine, "before_cursor_execute", count)
        try:
            with mock.patch.object(search, "index_soon", lambda: None):
                result = run_import(table, mapping, Settings("follow_up", **settings), user, commit=True)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        db.session.remove()
        return len(sent), result


def test_a_follow_up_import_sends_no_query_per_row(app: Any, make_customer: Any, tmp_path: Path) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        code = db.session.get(Customer, pk).code
    few, small = _statements_during_import(app, _follow_up_file(tmp_path, code, 10), "rep_a")
    many, large = _statements_during_import(app, _follow_up_file(tmp_path, code, 60), "rep_a")
    assert (small.counts["create"], large.counts["create"]) == (10, 60)
    # the same chunk count, so the same statements: 50 more rows cost no query (was 2 per row)
    assert many == few


@pytest.mark.parametrize("overlap", ["0", "thread", "process"])
def test_a_customer_archived_between_chunks_stops_its_follow_ups(app: Any, make_customer: Any, tmp_path: Path,
                                                                   monkeypatch: Any, overlap: str) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", overlap)
    pk = make_customer("rep_a")
    with app.app_context():
        code = db.session.get(Customer, pk).code
        user = appbuilder.sm.find_user(username="rep_a")
        table = read_table(_follow_up_file(tmp_path, code, 8))
        mapping = columns.auto_map(columns.FOLLOW_UP, table.headers)

        def archive_after_first_chunk(result: Any) -> None:
            if result.rows == 2:  # someone archives the customer while the import runs (committed with chunk 1)
                db.session.execute(update(Customer).where(Customer.id == pk).values(archived_at=utc_now()))

        result = run_import(table, mapping, Settings("follow_up", chunk_size=2), user, commit=True,
                            progress=archive_after_first_chunk)
        assert [line for line, _raw, _message in result.rejected_rows] in refused_lines(overlap, 8)
        messages = [str(message) for _line, _raw, message in result.rejected_rows]
        assert all("archived" in text for text in messages), messages


def test_an_imported_follow_up_reads_like_one_saved_in_the_form(app: Any, make_customer: Any,
                                                                 tmp_path: Path) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        code = db.session.get(Customer, pk).code
    _count, result = _statements_during_import(app, _follow_up_file(tmp_path, code, 1), "rep_a")
    assert result.counts["create"] == 1
    with app.app_context():
        imported = db.session.scalar(select(FollowUp))
        user = appbuilder.sm.find_user(username="rep_a")
        saved = follow_ups.save_follow_up({"customer": imported.customer, "followed_at": imported.followed_at,
                                           "method": imported.method, "content": "  Call 0 ",
                                           "next_step": "Quote", "next_step_date": imported.next_step_date},
                                          user)
        db.session.commit()
        entries = {e.object_id: e for e in db.session.scalars(select(AuditLog).where(
            AuditLog.object_type == "FollowUp", AuditLog.action == "create"))}
        by_import, by_form = (json.loads(entries[str(item.id)].changes) for item in (imported, saved))
        for changes in (by_import, by_form):
            changes.pop("id"), changes.pop("code")
        assert by_import == by_form  # the same history line, field for field
        assert entries[str(imported.id)].source == "import"
        assert imported.code.startswith("G") and imported.owner_id == user_id("rep_a") and imported.version == 1


def test_a_deactivated_owner_is_refused_on_every_row_that_names_them(app: Any, make_customer: Any,
                                                                     tmp_path: Path) -> None:
    pk = make_customer("rep_a")
    with app.app_context():
        code = db.session.get(Customer, pk).code
        rep_b = appbuilder.sm.find_user(username="rep_b")
        rep_b.active = False
        db.session.commit()
        db.session.remove()
    def file(rows: int) -> Path:
        lines = [[code, "2026-05-01 10:00", "电话", f"Call {n}", "", "", "rep_b"] for n in range(rows)]
        return write_xlsx(tmp_path / f"owners-{rows}.xlsx", {"s": [FOLLOW_UP_HEADERS + ["跟进人"], *lines]})

    few, small = _statements_during_import(app, file(3), "manager")
    many, large = _statements_during_import(app, file(30), "manager")
    assert (small.counts["create"], small.counts["error"]) == (0, 3)
    assert (large.counts["create"], large.counts["error"]) == (0, 30)
    assert all("deactivated" in str(message) for _line, _raw, message in large.rejected_rows)
    assert many == few  # the name is looked up once per run, not once per row that names it
