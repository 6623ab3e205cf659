"""dictionaries: aliases on every entry; GB/T 4754-2017 industries for existing databases

Revision ID: 5b7d2c9e4a10
Revises: c3a9e1f27b54
Create Date: 2026-12-09 10:00:00.000000

* ``aliases`` (text, one a line) on the five dictionary tables: other names people write
  for an entry (信息技术, IT, 重要, 官网 ...), matched by imports and the sync.
* Databases set up before this version (their industry dictionary has entries) get:
  - the GB/T 4754-2017 sections and divisions whose code is missing, sorted after the
    existing entries, with their aliases;
  - the default aliases on the default entries of the other dictionaries that have none.
  Existing entries are never deleted, renamed or deactivated: customers point at them and
  admins may have made them their own. An alias that is already a name of another entry
  (e.g. ``机械设备`` of the old demo list) is left out, so nothing becomes ambiguous.
  A new, empty database is filled by ``app.services.setup.seed_dictionaries`` instead.
Downgrading drops the columns only; the added industries stay (records may use them).
"""
import re
import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5b7d2c9e4a10'
down_revision = 'c3a9e1f27b54'
branch_labels = None
depends_on = None

_TABLES = {
    "CustomerType": "dict_customer_type",
    "Industry": "dict_industry",
    "CustomerSource": "dict_customer_source",
    "FollowUpMethod": "dict_follow_up_method",
    "CustomerLevel": "dict_customer_level",
}


def _table(name: str) -> sa.Table:
    columns = [sa.column("id", sa.Integer), sa.column("code", sa.String), sa.column("label_en", sa.String),
               sa.column("label_zh", sa.String), sa.column("sort_order", sa.Integer),
               sa.column("active", sa.Boolean), sa.column("aliases", sa.Text)]
    if name == "dict_industry":
        columns.append(sa.column("parent_id", sa.Integer))
    return sa.table(name, *columns)


def _key(text) -> str:
    """``app.services.dictionaries.lookup_key`` as of this revision."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text or "")).lower())


def _names(row) -> set[str]:
    names = [row.code, row.label_en, row.label_zh, *(row.aliases or "").splitlines()]
    for label in (row.label_en, row.label_zh):
        head, _, rest = (label or "").partition(" ")
        if rest and head.lower() == (row.code or "").lower():
            names.append(rest.lstrip("- "))
    return {_key(name) for name in names if _key(name)}


class _Names:
    """Names already taken in one dictionary table, to keep new aliases unambiguous."""

    def __init__(self, rows) -> None:
        self.taken: set[str] = set()
        for row in rows:
            self.taken |= _names(row)

    def free(self, aliases, own=()) -> str | None:
        own_keys = {_key(name) for name in own}
        kept = [a for a in aliases if _key(a) not in self.taken and _key(a) not in own_keys]
        self.taken |= {_key(a) for a in kept} | own_keys
        return "\n".join(kept) or None


def upgrade():
    for name in _TABLES.values():
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.add_column(sa.Column('aliases', sa.Text(), nullable=True))

    from app.services.industries_gbt4754 import INDUSTRY_ALIASES, OTHER_ALIASES, SECTIONS

    conn = op.get_bind()
    industry = _table("dict_industry")
    rows = conn.execute(sa.select(industry)).all()
    if not rows:  # a new install: seed_dictionaries fills it
        return
    _add_industries(conn, industry, rows, SECTIONS, INDUSTRY_ALIASES)
    _retire_shadowed(conn, industry, rows, SECTIONS)
    for model, by_code in OTHER_ALIASES.items():
        _add_aliases(conn, _table(_TABLES[model]), by_code)


def _add_industries(conn, industry, rows, sections, aliases) -> None:
    ids = {row.code: (row.id, row.parent_id) for row in rows}
    names = _Names(rows)
    offset = (max(row.sort_order or 0 for row in rows) // 1000 + 1) * 1000
    for order, (code, zh, en, divisions) in enumerate(sections, start=1):
        if code not in ids:
            conn.execute(industry.insert().values(
                code=code, label_en=en, label_zh=zh, sort_order=offset + order * 100, active=True,
                parent_id=None, aliases=names.free(aliases.get(code, ()), (code, en, zh))))
            ids[code] = (conn.scalar(sa.select(industry.c.id).where(industry.c.code == code)), None)
        section_id, section_parent = ids[code]
        parent_id = section_id if section_parent is None else None  # an admin's child "A": no third level
        for sub, (d_code, d_zh, d_en) in enumerate(divisions, start=1):
            if d_code in ids:
                continue
            conn.execute(industry.insert().values(
                code=d_code, label_en=d_en, label_zh=d_zh, sort_order=offset + order * 100 + sub, active=True,
                parent_id=parent_id, aliases=names.free(aliases.get(d_code, ()), (d_code, d_en, d_zh))))
            ids[d_code] = (None, parent_id)


def _retire_shadowed(conn, industry, old_rows, sections) -> None:
    """An old entry whose label is now a GB/T entry's label (the demo's 制造业 / Manufacturing)
    would make that name ambiguous: it becomes inactive. Records keep it (inactive entries
    stay valid on old records); new picks and imports get the national entry."""
    national = set()
    for code, zh, en, divisions in sections:
        national |= {_key(zh), _key(en)} | {_key(name) for _, d_zh, d_en in divisions for name in (d_zh, d_en)}
        national.discard("")
    codes = {code for code, *_ in sections} | {d for *_, divisions in sections for d, *_ in divisions}
    shadowed = [row.id for row in old_rows if row.code not in codes
                and ({_key(row.label_zh), _key(row.label_en)} & national)]
    if shadowed:
        conn.execute(industry.update().where(industry.c.id.in_(shadowed)).values(active=False))


def _add_aliases(conn, table, by_code) -> None:
    rows = conn.execute(sa.select(table)).all()
    names = _Names(rows)
    for row in rows:
        if row.code in by_code and not row.aliases:
            text = names.free(by_code[row.code], (row.code, row.label_en, row.label_zh))
            if text:
                conn.execute(table.update().where(table.c.id == row.id).values(aliases=text))


def downgrade():
    for name in _TABLES.values():
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column('aliases')
