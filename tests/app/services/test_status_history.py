"""Every change of a customer's type is kept: from, to, who and why."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import select

from app.extensions import db
from app.models import Customer, CustomerStatusChange, CustomerType
from app.models.base import acting_user_id
from tests.conftest import user_id


@contextmanager
def acting_as(username: str):
    """Look the user up first: a query inside would autoflush pending changes too early."""
    token = acting_user_id.set(user_id(username))
    try:
        yield
    finally:
        acting_user_id.reset(token)


def type_id(code: str) -> int:
    return db.session.scalars(select(CustomerType.id).filter_by(code=code)).one()


def history(customer_id: int) -> list[tuple]:
    rows = db.session.scalars(select(CustomerStatusChange).filter_by(customer_id=customer_id)
                              .order_by(CustomerStatusChange.id))
    return [(r.from_type_id, r.to_type_id, r.changed_by_id, r.reason) for r in rows]


def fresh(customer_id: int) -> Customer:
    """The customer as a new request would load it (nothing cached in the session)."""
    db.session.remove()
    return db.session.get(Customer, customer_id)


def test_new_customer_records_its_first_status(ctx, make_customer):
    with acting_as("rep_a"):
        pk = make_customer("rep_a")
    assert history(pk) == [(None, type_id("potential"), user_id("rep_a"), None)]


def test_type_change_through_relationship_is_recorded(ctx, make_customer):
    pk = make_customer("rep_a")
    customer, won = fresh(pk), db.session.get(CustomerType, type_id("won"))
    with acting_as("manager"):
        customer.type = won
        customer.status_reason = "Signed the annual contract"
        db.session.commit()
    assert history(pk)[1:] == [
        (type_id("potential"), type_id("won"), user_id("manager"), "Signed the annual contract"),
    ]


def test_type_change_through_type_id_is_recorded(ctx, make_customer):
    pk = make_customer("rep_a")
    customer, lost = fresh(pk), type_id("lost")
    with acting_as("rep_a"):
        customer.type_id = lost
        customer.status_reason = "Went with a competitor"
        db.session.commit()
    assert history(pk)[1:] == [
        (type_id("potential"), type_id("lost"), user_id("rep_a"), "Went with a competitor"),
    ]


def test_type_id_change_after_relationship_was_loaded_is_recorded(ctx, make_customer):
    pk = make_customer("rep_a")
    customer = fresh(pk)
    assert customer.type.code == "potential"
    customer.type_id = type_id("won")
    db.session.commit()
    assert [(f, t) for f, t, _, _ in history(pk)[1:]] == [(type_id("potential"), type_id("won"))]


def test_successive_changes_each_get_a_row(ctx, make_customer):
    pk = make_customer("rep_a")
    for code in ("won", "lost"):
        fresh(pk).type_id = type_id(code)
        db.session.commit()
    assert [(f, t) for f, t, _, _ in history(pk)] == [
        (None, type_id("potential")),
        (type_id("potential"), type_id("won")),
        (type_id("won"), type_id("lost")),
    ]


def test_type_id_change_after_an_earlier_commit_is_recorded(ctx, make_customer):
    """Scripts, the importer and the sync keep using an object after committing it."""
    pk = make_customer("rep_a")
    customer = fresh(pk)
    customer.type_id = type_id("won")
    db.session.commit()
    customer.type_id = type_id("lost")
    db.session.commit()
    assert [(f, t) for f, t, _, _ in history(pk)[1:]] == [
        (type_id("potential"), type_id("won")),
        (type_id("won"), type_id("lost")),
    ]


def test_reason_is_not_reused_for_a_later_change(ctx, make_customer):
    pk = make_customer("rep_a")
    customer = fresh(pk)
    won, lost = (db.session.get(CustomerType, type_id(code)) for code in ("won", "lost"))
    customer.type, customer.status_reason = won, "Signed the annual contract"
    db.session.commit()
    customer.type = lost
    db.session.commit()
    assert [reason for _, _, _, reason in history(pk)] == [None, "Signed the annual contract", None]


def test_no_row_when_other_fields_change(ctx, make_customer):
    pk = make_customer("rep_a")
    customer = fresh(pk)
    customer.name = "Renamed Ltd"
    customer.contact_phone = "13900000000"
    customer.type = db.session.get(CustomerType, type_id("potential"))  # picked again, same value
    customer.status_reason = "Nothing really changed"
    db.session.commit()
    assert fresh(pk).name == "Renamed Ltd"
    assert len(history(pk)) == 1
