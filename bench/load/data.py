"""Customers for the load test, added fast (``COPY``) next to the demo data.

    (run inside the deployment's environment by bench/load/run.py)

The demo loads ~300 customers for its four sales people; ``fill(total)`` adds customers up
to ``total``, each with its primary contact (the ``contact`` row mirroring 联系人/联系方式)
and one follow-up, spread over the demo's manager and reps in proportion to what the demo
gave them, with codes outside the daily numbering (``C2025…``), then ANALYZE. PostgreSQL (the
deployment) or SQLite (the embedded comparison).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.million import copy_rows

STAMP = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
OWNERS = ("manager", "rep1", "rep2", "rep3")


def fill(total: int) -> int:
    """Add customers (with a contact and a follow-up each) until there are ``total``;
    returns how many were added. Runs ``create_app()`` from the environment."""
    from sqlalchemy import func, select, text

    from app import create_app
    from app.extensions import db
    from app.models import Contact, CrmUser, Customer, CustomerLevel, CustomerType, FollowUp, Industry

    app = create_app()
    with app.app_context():
        have = db.session.scalar(select(func.count()).select_from(Customer))
        first = (db.session.scalar(select(func.max(Customer.id))) or 0) + 1
        owners = db.session.scalars(select(CrmUser.id).where(CrmUser.username.in_(OWNERS))).all()
        choices = {
            "type_id": db.session.scalars(select(CustomerType.id)).all(),
            "level_id": db.session.scalars(select(CustomerLevel.id)).all(),
            "industry_id": db.session.scalars(select(Industry.id).where(Industry.parent_id.is_not(None))).all(),
        }
        rows = _rows(range(first, first + max(0, total - have)), owners, choices)
        connection = db.session.connection()
        for table, values in zip((Customer.__table__, Contact.__table__, FollowUp.__table__), rows, strict=True):
            _copy(connection, table, values)
        for table in ("customer", "contact", "follow_up"):
            if connection.dialect.name == "postgresql":  # COPY with ids leaves the sequences behind
                db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
            db.session.execute(text(f"ANALYZE {table}"))
        db.session.commit()
        return len(rows[0])


def _rows(ids: range, owners: list[int], choices: dict[str, list[int]]) -> tuple[list[dict], ...]:
    rng = random.Random(20)
    customers, contacts, follow_ups = [], [], []
    contact_base = follow_base = 1_000_000  # above the demo's ids
    for n in ids:
        changed = STAMP + timedelta(minutes=n)
        stamp = {"created_on": changed, "changed_on": changed, "version": 1}
        owner = owners[n % len(owners)]
        phone = f"136{n:08d}"
        customers.append({"id": n, "code": f"C2025{n:07d}", "name": f"负载测试贸易{n}有限公司", "contact_name": f"联系人{n}",
                          "contact_phone": phone, "owner_id": owner,
                          **{key: rng.choice(values) for key, values in choices.items()}, **stamp})
        contacts.append({"id": contact_base + n, "code": f"PC2025{n:07d}", "customer_id": n, "name": f"联系人{n}",
                         "phone": phone, "is_primary": True, "is_decision_maker": False, **stamp})
        follow_ups.append({"id": follow_base + n, "code": f"G2025{n:07d}", "customer_id": n, "followed_at": changed,
                           "content": f"电话沟通 {n}", "owner_id": owner, **stamp})
    return customers, contacts, follow_ups


def _copy(connection: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """``rows`` into ``table`` through ``COPY … FROM STDIN`` on PostgreSQL (the 1M fixture's
    writer); an executemany on SQLite."""
    if connection.dialect.name != "postgresql":
        if rows:
            connection.execute(table.insert(), rows)
        return
    copy_rows(connection, table, rows)
