"""Issue 12: the importer reads the required follow-up fields (000 跟进记录必填字段) once per
chunk and hands them to ``check_follow_up``; the answers must be those of the rule reading
the setting itself, for every setting and every kind of row."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import product
from typing import Any

import pytest

from app.extensions import appbuilder, db
from app.services import follow_ups, settings

AT = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
SETTINGS = [["content"], ["method"], [], ["content", "next_step", "next_step_date", "method"], ["next_step"]]


@pytest.mark.usefixtures("shanghai")
@pytest.mark.parametrize("required", SETTINGS)
def test_required_given_once_is_the_setting_read_each_time(ctx: Any, make_customer: Any, required: list[str]) -> None:
    admin, rep = appbuilder.sm.find_user(username="admin"), appbuilder.sm.find_user(username="rep_a")
    settings.save({"follow_up_required": required}, admin)
    db.session.commit()
    customer = make_customer("rep_a")
    facts = follow_ups.customer_facts([customer], rep)
    once = follow_ups.required_fields()
    for content, next_step, day, followed in product(["", "  ", "通话记录", None], ["", None, " 发送报价单 "],
                                                    [None, date(2026, 12, 1)], [None, AT]):
        values = {"content": content, "next_step": next_step, "next_step_date": day, "followed_at": followed,
                  "customer_id": customer, "method": None}
        given, read = dict(values), dict(values)
        errors = follow_ups.check_follow_up(given, rep, None, facts, once)
        assert errors == follow_ups.check_follow_up(read, rep, None, facts)
        assert given == read  # the same values normalised in place
