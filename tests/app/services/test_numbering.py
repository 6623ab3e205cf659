"""Record codes: C + date + daily sequence, unique even when users save at the same moment."""

from __future__ import annotations

import re
import threading

from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from app.services import numbering
from tests.conftest import user_id


def test_codes_are_dated_and_consecutive(ctx):
    codes = numbering.allocate(db.session, "C", 3)
    db.session.commit()
    day = numbering.today_key()
    assert codes == [f"C{day}001", f"C{day}002", f"C{day}003"]
    assert numbering.allocate(db.session, "C")[0] == f"C{day}004"


def test_two_users_saving_at_once_get_different_codes(app):
    barrier, errors = threading.Barrier(2), []
    with app.app_context():
        owner = user_id("rep_a")

    def save(tag: str) -> None:
        with app.app_context():
            try:
                for n in range(5):
                    if n == 0:
                        barrier.wait()
                    db.session.add(Customer(name=f"{tag}{n}", contact_phone="13812345678", owner_id=owner))
                    db.session.commit()
            except Exception as exc:  # reported below, the test must see it
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=save, args=(tag,)) for tag in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context():
        codes = db.session.scalars(select(Customer.code)).all()
    assert len(codes) == 10 == len(set(codes))
    assert all(re.fullmatch(r"C\d{11}", code) for code in codes)
