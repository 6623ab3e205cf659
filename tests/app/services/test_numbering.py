"""Record codes: prefix + date + daily sequence, unique even when users save at the same moment."""

from __future__ import annotations

import threading

from sqlalchemy import select

from app.extensions import db
from app.models import Customer, CustomerType, FollowUp
from app.services import numbering
from tests.conftest import user_id


def test_codes_are_prefix_date_and_a_rising_sequence(ctx):
    day = numbering.today_key()
    assert len(day) == 8 and day.isdigit()
    assert numbering.allocate(db.session, "C") == [f"C{day}001"]
    assert numbering.allocate(db.session, "C") == [f"C{day}002"]


def test_allocating_several_gives_consecutive_codes(ctx):
    day = numbering.today_key()
    numbering.allocate(db.session, "C")
    assert numbering.allocate(db.session, "C", count=3) == [f"C{day}002", f"C{day}003", f"C{day}004"]


def test_each_day_and_prefix_has_its_own_sequence(ctx):
    numbering.allocate(db.session, "C", count=5, day="20240501")
    assert numbering.allocate(db.session, "C", day="20240502") == ["C20240502001"]
    assert numbering.allocate(db.session, "G", day="20240501") == ["G20240501001"]


def test_sequence_grows_past_999(ctx):
    numbering.allocate(db.session, "C", count=999, day="20240501")
    assert numbering.allocate(db.session, "C", day="20240501") == ["C202405011000"]


def test_saved_customer_and_follow_up_get_their_codes(app, make_customer, make_follow_up):
    first, second = make_customer("rep_a"), make_customer("rep_a")
    follow_up = make_follow_up(first, "rep_a")
    with app.app_context():
        day = numbering.today_key()
        assert db.session.get(Customer, first).code == f"C{day}001"
        assert db.session.get(Customer, second).code == f"C{day}002"
        assert db.session.get(FollowUp, follow_up).code == f"G{day}001"


def test_customers_saved_in_one_flush_get_distinct_codes(ctx):
    owner = user_id("rep_a")
    db.session.add_all([Customer(name=f"Batch {n}", contact_phone="13812345678", owner_id=owner)
                        for n in range(3)])
    db.session.commit()
    day = numbering.today_key()
    codes = sorted(db.session.scalars(select(Customer.code)))
    assert codes == [f"C{day}001", f"C{day}002", f"C{day}003"]


def test_users_saving_at_the_same_moment_get_different_codes(app):
    threads_count, rounds = 4, 3
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []
    with app.app_context():
        owner = user_id("rep_a")

    def save(tag: int) -> None:
        with app.app_context():
            try:
                potential = db.session.scalars(select(CustomerType).filter_by(code="potential")).one()
                for n in range(rounds):
                    db.session.add(Customer(name=f"T{tag}-{n}", contact_phone="13812345678",
                                            owner_id=owner, type=potential))
                    db.session.add(FollowUp(customer=Customer(name=f"T{tag}-{n}b", contact_phone="13812345678",
                                                              owner_id=owner),
                                            owner_id=owner, content="First call"))
                    barrier.wait(timeout=30)
                    db.session.commit()
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)
                barrier.abort()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=save, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context():
        customer_codes = db.session.scalars(select(Customer.code)).all()
        follow_up_codes = db.session.scalars(select(FollowUp.code)).all()
    assert len(customer_codes) == len(set(customer_codes)) == 2 * threads_count * rounds
    assert len(follow_up_codes) == len(set(follow_up_codes)) == threads_count * rounds
