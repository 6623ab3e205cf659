"""Existing databases get dictionary aliases and the GB/T 4754-2017 industries (migration
5b7d2c9e4a10) without losing the hand-made industries their customers point at."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from tests.conftest import flask_cli

BEFORE = "c3a9e1f27b54"
OLD_INDUSTRIES = [  # the demo list before GB/T: id, code, en, zh, parent id, sort order
    (1, "MFG", "Manufacturing", "制造业", None, 100),
    (2, "MFG-MACH", "Machinery", "机械设备", 1, 103),
    (3, "IT", "IT & Internet", "IT互联网", None, 200),
    (4, "IT-SW", "Software", "软件开发", 3, 201),
    (5, "SVC", "Services", "服务业", None, 400),
]


def _old_dictionaries(conn) -> None:
    for row in OLD_INDUSTRIES:
        conn.execute(text("insert into dict_industry (id, code, label_en, label_zh, parent_id, sort_order, active)"
                          " values (:id, :code, :en, :zh, :parent, :sort, :active)"),
                     dict(zip(("id", "code", "en", "zh", "parent", "sort"), row, strict=True), active=True))
    conn.execute(text("insert into dict_customer_level (id, code, label_en, label_zh, sort_order, active) values"
                      " (1, 'A', 'A - high', 'A 重要', 10, :t), (2, 'B', 'B - medium', 'B 一般', 20, :t)"), {"t": True})
    conn.execute(text("insert into dict_customer_source (id, code, label_en, label_zh, sort_order, active) values"
                      " (1, 'website', 'Website form', '官网表单', 10, :t)"), {"t": True})
    for pk, industry in ((1, 4), (2, 2), (3, 5)):  # customers on the old software, machinery, services
        conn.execute(text(
            "insert into customer (id, code, name, industry_id, level_id, contact_phone, owner_id, created_on,"
            " changed_on, version) values (:id, :code, :name, :industry, 1, '13800138000', 1, :now, :now, 1)"),
            {"id": pk, "code": f"C{pk:04d}", "name": f"Old customer {pk}", "industry": industry,
             "now": "2024-05-01 10:00:00"})


def test_upgrade_adds_aliases_and_gbt_industries_and_keeps_the_old_ones(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    flask_cli(tmp_path, url, "db", "upgrade", BEFORE)
    engine = create_engine(url)
    with engine.begin() as conn:
        _old_dictionaries(conn)
    flask_cli(tmp_path, url, "db", "upgrade")

    for table in ("dict_customer_type", "dict_industry", "dict_customer_source", "dict_follow_up_method",
                  "dict_customer_level"):
        assert "aliases" in {c["name"] for c in inspect(engine).get_columns(table)}, table
    with engine.connect() as conn:
        rows = {r.code: r for r in conn.execute(text("select * from dict_industry"))}
        customers = dict(conn.execute(text("select id, industry_id from customer")).all())
        level_a = conn.scalar(text("select aliases from dict_customer_level where code = 'A'"))
        website = conn.scalar(text("select aliases from dict_customer_source where code = 'website'"))
    engine.dispose()

    # Nothing lost: the old entries keep their id and names; customers still point at them. One whose
    # label is now a national entry's (制造业 / Manufacturing) is retired, so that name is not ambiguous.
    shadowed = {"MFG"}
    for pk, code, en, zh, parent, _ in OLD_INDUSTRIES:
        old = rows[code]
        assert (old.id, old.label_en, old.label_zh, old.parent_id) == (pk, en, zh, parent)
        assert bool(old.active) is (code not in shadowed), code
        assert old.aliases is None
    assert customers == {1: 4, 2: 2, 3: 5}
    # GB/T added: 20 sections, 97 divisions under them, sorted after the old list.
    sections = {c for c in rows if len(c) == 1}
    divisions = {c for c in rows if c.isdigit()}
    assert len(sections) == 20 and len(divisions) == 97
    assert rows["65"].parent_id == rows["I"].id and rows["65"].label_zh == "软件和信息技术服务业"
    assert min(rows[c].sort_order for c in sections | divisions) > 400
    assert "信息技术" in rows["I"].aliases.splitlines() and "软件" in rows["65"].aliases.splitlines()
    # An alias that is already an old entry's name is left out (机械设备 stays the old MFG-MACH's).
    assert "机械设备" not in rows["34"].aliases.splitlines() and "机械" in rows["34"].aliases.splitlines()
    assert "官网" in website.splitlines() and "重点" in level_a.splitlines()


def test_upgrade_of_an_empty_database_leaves_seeding_to_setup(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    flask_cli(tmp_path, url, "db", "upgrade")
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(text("select count(*) from dict_industry")) == 0
    flask_cli(tmp_path, url, "crm", "init")
    with engine.connect() as conn:
        codes = set(conn.scalars(text("select code from dict_industry")))
    engine.dispose()
    assert len(codes) == 117 and {"A", "T", "01", "97"} <= codes
