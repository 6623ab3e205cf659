"""Sync conflicts waiting (issue 14): a run that leaves new conflicts for review tells the target's
run-as user once; a later run that finds the same conflicts still waiting tells nobody again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Customer, Notification
from tests.conftest import user_id
from tests.sync.conftest import HEADERS


def told(app: Any) -> list[Notification]:
    with app.app_context():
        notes = list(db.session.scalars(select(Notification).where(Notification.event == "sync_conflicts")))
        db.session.expunge_all()
        return notes


def test_new_conflicts_tell_the_run_as_user_once(app: Any, side: Any, make_target: Any, sync: Any,
                                                 make_customer: Any) -> None:
    a = make_customer("rep_a", name="Acme", contact_phone="13800000001", note="base")
    side.create([HEADERS])
    target = make_target(conflict_policy="review")
    sync(target)
    assert told(app) == []  # a run without conflicts says nothing
    with app.app_context():
        db.session.get(Customer, a).note = "app side"
        db.session.commit()
    side.edit({(1, 5): "sheet side"})
    log, _ = sync(target)
    (note,) = told(app)
    with app.app_context():
        manager = user_id("manager")
    assert note.user_id == manager and note.occasion == f"sync_conflicts:{log.id}"
    assert note.params == {"count": 1, "target": f"t-{side.name}"}
    sync(target)  # the same conflict still waits: no second notification
    assert len(told(app)) == 1
