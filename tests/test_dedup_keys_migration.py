"""Existing databases drop the duplicate scan's old blocking keys (made without the names'
numerals, migration c1d3e5f7a9b2): no scan counts as finished, so the next visit of
*Duplicates* scans again; dismissed pairs stay."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from tests.conftest import flask_cli

BEFORE = "b8d0f2a4c6e9"


def test_upgrade_drops_the_old_keys_and_asks_for_a_new_scan(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    flask_cli(tmp_path, url, "db", "upgrade", BEFORE)
    engine = create_engine(url)
    with engine.begin() as conn:
        for pk in (1, 2):
            conn.execute(text("insert into customer (id, code, name, contact_phone, owner_id, created_on, changed_on,"
                              " version) values (:id, :code, '华腾科技', '13800138000', 1, :now, :now, 1)"),
                         {"id": pk, "code": f"C{pk:04d}", "now": "2026-11-30 10:00:00"})
        conn.execute(text("insert into duplicate_scan (id, status, started_at, updated_at, processed, total,"
                          " customers, clusters) values (7, 'done', :now, :now, 100, 100, 2, 0)"),
                     {"now": "2026-11-30 10:00:00"})
        conn.execute(text("update duplicate_state set last_scan_id = 7, indexed_upto = 2"))
        conn.execute(text("insert into duplicate_key (key, customer_id) values (11, 1), (11, 2)"))
        conn.execute(text("insert into dismissed_duplicate_pair (customer_low_id, customer_high_id, dismissed_at) values (1, 2, :now)"),
                     {"now": "2026-11-30 10:00:00"})
    flask_cli(tmp_path, url, "db", "upgrade")
    with engine.connect() as conn:
        state = conn.execute(text("select scan_id, last_scan_id, indexed_upto from duplicate_state")).one()
        keys = conn.scalar(text("select count(*) from duplicate_key"))
        dismissed = conn.scalar(text("select count(*) from dismissed_duplicate_pair"))
    engine.dispose()
    assert tuple(state) == (None, None, 0) and keys == 0 and dismissed == 1
