"""Issue 12: the dictionary entries are reloaded once per chunk (not one query per entry),
and still as they are now: an entry retired while an import runs is refused from the next
chunk on, as the form would refuse it; with the writer (``importing.writer``, which stores
chunks while the next ones are checked), once the chunk that committed the change is stored:
``writer.DEPTH`` chunks later at the latest. (A change made elsewhere is seen from the next
chunk checked after its commit: each chunk reloads the entries.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from app.extensions import appbuilder, db
from app.models.dictionaries import Industry
from app.services.importing import columns
from app.services.importing.engine import Settings, run_import
from app.services.importing.reading import read_table
from tests.app.services.importing.conftest import refused_lines, write_xlsx


@pytest.mark.parametrize("overlap", ["0", "thread", "process"])
def test_an_industry_retired_between_chunks_is_refused_from_the_next_chunk(app: Any, tmp_path: Path,
                                                                          monkeypatch: Any, overlap: str) -> None:
    monkeypatch.setitem(app.config, "CRM_IMPORT_OVERLAP", overlap)
    with app.app_context():
        industry = db.session.scalar(select(Industry).where(Industry.active.is_(True)).limit(1))
        pk, label = industry.id, industry.label_zh
        lines = [[f"分块客户{n}", label, f"13800000{n:03d}"] for n in range(8)]
        path = write_xlsx(tmp_path / "chunks.xlsx", {"s": [["客户名称", "所属行业", "联系方式"], *lines]})
        user = appbuilder.sm.find_user(username="rep_a")
        table = read_table(path)
        mapping = columns.auto_map(columns.CUSTOMER, table.headers)

        def retire_after_first_chunk(result: Any) -> None:
            if result.rows == 2:  # an admin retires the entry while the import runs (committed with chunk 1)
                db.session.execute(update(Industry).where(Industry.id == pk).values(active=False))

        try:
            result = run_import(table, mapping, Settings("customer", chunk_size=2), user, commit=True,
                                progress=retire_after_first_chunk)
            assert [line for line, _raw, _message in result.rejected_rows] in refused_lines(overlap, 8)
            assert all("no longer in use" in str(message) for _line, _raw, message in result.rejected_rows)
        finally:
            db.session.execute(update(Industry).where(Industry.id == pk).values(active=True))
            db.session.commit()
            db.session.remove()
