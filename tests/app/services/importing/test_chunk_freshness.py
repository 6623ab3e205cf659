"""Issue 12: the dictionary entries are reloaded once per chunk (not one query per entry),
and still as they are now: an entry retired while an import runs is refused from the next
chunk on, as the form would refuse it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from app.extensions import appbuilder, db
from app.models.dictionaries import Industry
from app.services.importing import columns
from app.services.importing.engine import Settings, run_import
from app.services.importing.reading import read_table
from tests.app.services.importing.conftest import write_xlsx


def test_an_industry_retired_between_chunks_is_refused_from_the_next_chunk(app: Any, tmp_path: Path,
                                                                          monkeypatch: Any) -> None:
    # In turn: with the writer (``importing.writer``) the next chunk is checked while this
    # one is stored, so a change made at this chunk's commit counts from the chunk after.
    monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", "0")
    with app.app_context():
        industry = db.session.scalar(select(Industry).where(Industry.active.is_(True)).limit(1))
        pk, label = industry.id, industry.label_zh
        lines = [[f"分块客户{n}", label, f"13800000{n:03d}"] for n in range(4)]
        path = write_xlsx(tmp_path / "chunks.xlsx", {"s": [["客户名称", "所属行业", "联系方式"], *lines]})
        user = appbuilder.sm.find_user(username="rep_a")
        table = read_table(path)
        mapping = columns.auto_map(columns.CUSTOMER, table.headers)

        def retire_after_first_chunk(result: Any) -> None:
            if result.rows == 2:  # an admin retires the entry while the import runs
                db.session.execute(update(Industry).where(Industry.id == pk).values(active=False))

        try:
            result = run_import(table, mapping, Settings("customer", chunk_size=2), user, commit=True,
                                progress=retire_after_first_chunk)
            assert (result.counts["create"], result.counts["error"]) == (2, 2)
            assert [line for line, _raw, _message in result.rejected_rows] == [4, 5]
            assert all("no longer in use" in str(message) for _line, _raw, message in result.rejected_rows)
        finally:
            db.session.execute(update(Industry).where(Industry.id == pk).values(active=True))
            db.session.commit()
            db.session.remove()
