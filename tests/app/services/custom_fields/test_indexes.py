"""Expression indexes of searchable custom fields (issue 18): made and dropped with the flag,
and read by the very filters and orders ``query`` builds (SQLite, and PostgreSQL when
``TEST_DATABASE_URL`` points at one)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.customers import Customer
from app.models.org import CrmUser
from app.services import custom_fields
from app.services.custom_fields import admin, indexes, query
from app.services.errors import RuleViolation

SIZE = {"record_type": "customer", "key": "size", "label_en": "Company size", "label_zh": "客户规模",
        "kind": "choice", "choices": "small | Small | 小型\nlarge | Large | 大型", "searchable": "on"}
YEARS = {"record_type": "customer", "key": "years", "label_en": "Years", "label_zh": "合作年限", "kind": "integer",
         "searchable": "on"}
NEEDS = {"record_type": "customer", "key": "needs", "label_en": "Needs", "label_zh": "关键需求标签", "kind": "tags",
         "choices": "price | Price | 价格敏感 | #d9534f", "searchable": "on"}


def _admin() -> CrmUser:
    return db.session.query(CrmUser).filter_by(username="admin").one()


@pytest.fixture
def ctx(app: Any) -> Any:
    with app.app_context():
        yield
        db.session.rollback()
        db.session.remove()


def _postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value  # sqlite3 binds no Decimal


def _plan(statement: Any, index: str) -> str:
    """The database's plan for ``statement`` told to read ``index``: PostgreSQL to avoid
    sequential scans, SQLite ``INDEXED BY`` it (an error when the index cannot serve the
    statement). Left to choose, either planner may scan a table this small, or one whose
    statistics an earlier test left behind."""
    connection = db.session.connection()
    if _postgres():
        compiled = statement.compile(dialect=db.engine.dialect)
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = connection.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
    else:
        compiled = statement.compile(dialect=db.engine.dialect)
        params = tuple(_plain(compiled.params[name]) for name in compiled.positiontup or ())
        sql = str(compiled).replace("FROM customer", f"FROM customer INDEXED BY {index}", 1)  # no SQLite hints in SQLAlchemy
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
    return "\n".join(" ".join(str(part) for part in row) for row in rows)


def _searched(plan: str, index: str) -> bool:
    """The plan looks rows up through ``index`` (SQLite scans an index it was told to use
    but cannot search with: that is no use)."""
    return index in plan if _postgres() else f"SEARCH customer USING INDEX {index} (" in plan


def test_searchable_fields_get_an_index_the_filter_and_order_use(ctx: None) -> None:
    admin.save_field(dict(SIZE), _admin())
    admin.save_field(dict(YEARS), _admin())
    db.session.commit()
    assert {"ix_cf_customer_size", "ix_cf_customer_years"} <= set(indexes.indexes_of("customer"))
    size = custom_fields.field_named("customer", "size")
    years = custom_fields.field_named("customer", "years")
    assert size.index_name == "ix_cf_customer_size"
    live = Customer.archived_at.is_(None)  # every customer list shows live customers: the index is theirs
    assert _searched(_plan(select(Customer.id).where(live, query.condition(Customer, size, query.EQUALS, "large")),
                           size.index_name), size.index_name)
    db.session.rollback()
    assert _searched(_plan(select(Customer.id).where(live, query.condition(Customer, years, query.RANGE, 3, 10)),
                           years.index_name), years.index_name)
    db.session.rollback()
    if not _postgres():  # PostgreSQL sorts a tiny table rather than read an index
        plan = _plan(select(Customer.id).where(live).order_by(*query.order(Customer, years, descending=True)),
                     years.index_name)
        assert "ix_cf_customer_years" in plan and "TEMP B-TREE" not in plan  # the order read from the index


def test_unticking_searchable_or_deleting_drops_the_index(ctx: None) -> None:
    row = admin.save_field(dict(SIZE), _admin())
    db.session.commit()
    admin.save_field({**SIZE, "searchable": ""}, _admin(), pk=row.id)
    db.session.commit()
    assert "ix_cf_customer_size" not in indexes.indexes_of("customer") and row.index_name is None
    admin.save_field({**SIZE, "searchable": "on"}, _admin(), pk=row.id)
    db.session.commit()
    assert "ix_cf_customer_size" in indexes.indexes_of("customer")
    admin.delete_field(row.id, _admin())
    db.session.commit()
    assert "ix_cf_customer_size" not in indexes.indexes_of("customer")


def test_a_refused_save_leaves_no_index(ctx: None) -> None:
    with pytest.raises(RuleViolation):
        admin.save_field({**SIZE, "default": "huge"}, _admin())
    db.session.rollback()
    assert "ix_cf_customer_size" not in indexes.indexes_of("customer")


def test_tags_share_one_gin_index_on_postgresql_and_none_on_sqlite(ctx: None) -> None:
    row = admin.save_field(dict(NEEDS), _admin())
    other = admin.save_field({**NEEDS, "key": "risks"}, _admin())
    db.session.commit()
    if not _postgres():
        assert row.index_name is None and indexes.indexes_of("customer") == []
        return
    assert row.index_name == other.index_name == "ix_cf_customer__tags"
    needs = custom_fields.field_named("customer", "needs")
    assert _searched(_plan(select(Customer.id).where(query.condition(Customer, needs, query.EQUALS, "price")),
                           needs.index_name), needs.index_name)
    db.session.rollback()
    admin.delete_field(row.id, _admin())
    db.session.commit()
    assert "ix_cf_customer__tags" in indexes.indexes_of("customer")  # still used by "risks"
    admin.delete_field(other.id, _admin())
    db.session.commit()
    assert "ix_cf_customer__tags" not in indexes.indexes_of("customer")


def test_long_names_are_cut_to_63_characters() -> None:
    name = indexes.index_name("service_feedback", "k" * 40)
    assert len(name) == 63 and name.startswith("ix_cf_service_feedback_kkk")
    assert name != indexes.index_name("service_feedback", "k" * 39 + "j")

