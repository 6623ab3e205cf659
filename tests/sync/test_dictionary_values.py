"""The sync and dictionary values (issue 11 §4): an unknown value is refused with a status
naming the value and the column; once mapped to an entry as an alias (the import's
value-mapping step, ``dictionaries.add_alias``) the next run resolves it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, Industry
from app.services import dictionaries
from tests.app.services.importing.value_mapping_helpers import dictionaries_restored
from tests.sync.conftest import HEADERS


def test_an_unknown_value_is_named_and_resolves_once_mapped(app: Any, side: Any, make_target: Any,
                                                            sync: Any) -> None:
    with dictionaries_restored(app):
        side.create([HEADERS, ["", "星河教育", "王强", "13900001111", "教育x", ""]])
        target = make_target()
        log, _ = sync(target)
        assert log.counts["app_rejected"] == 1
        status = side.values()[1][6]
        assert "所属行业" in status and "教育x is not in the list" in status
        with app.app_context():
            education = db.session.scalar(select(Industry).where(Industry.code == "83"))
            dictionaries.add_alias(education, "教育X", appbuilder.sm.find_user(username="admin"))
            db.session.commit()
        log, _ = sync(target)
        assert log.counts["app_created"] == 1, log.message
        with app.app_context():
            assert db.session.scalar(select(Customer).where(Customer.name == "星河教育")).industry.code == "83"
        assert len(side.values()[1]) <= 6  # the status is cleared
