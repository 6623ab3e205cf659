"""The SLA clock: business time over a working calendar (hand-computed, Asia/Shanghai),
deadlines, pause/resume, reopen, state, recompute after a calendar change."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.service import CalendarDay, Priority, SlaPolicy, Ticket, TicketType, WorkCalendar
from app.services import sla

pytestmark = pytest.mark.usefixtures("shanghai")
SH = ZoneInfo("Asia/Shanghai")


def sh(*args: int) -> datetime:
    """A wall-clock time in Shanghai, as an aware instant."""
    return datetime(*args, tzinfo=SH)


@pytest.fixture
def standard(ctx: Any) -> WorkCalendar:
    """The seeded standard calendar with China's 2025 and 2026 public days."""
    sla.seed_defaults()
    calendar = db.session.scalars(select(WorkCalendar).where(WorkCalendar.is_default.is_(True))).one()
    for year in (2025, 2026):
        sla.import_public_days(calendar, year)
    db.session.commit()
    return calendar


# (start, minutes, expected end) on Mon-Fri 09:00-18:00, lunch 12:00-13:00, China 2025/2026
TABLE = [
    ("plain hour", sh(2025, 9, 16, 10, 0), 60, sh(2025, 9, 16, 11, 0)),
    ("over lunch", sh(2025, 9, 16, 11, 30), 60, sh(2025, 9, 16, 13, 30)),
    ("up to lunch stays before it", sh(2025, 9, 16, 9, 0), 180, sh(2025, 9, 16, 12, 0)),
    ("start in lunch", sh(2025, 9, 16, 12, 30), 30, sh(2025, 9, 16, 13, 30)),
    ("over the night", sh(2025, 9, 16, 17, 0), 120, sh(2025, 9, 17, 10, 0)),
    ("before opening", sh(2025, 9, 16, 7, 0), 60, sh(2025, 9, 16, 10, 0)),
    ("after closing", sh(2025, 9, 16, 21, 0), 60, sh(2025, 9, 17, 10, 0)),
    ("over the weekend", sh(2025, 9, 19, 17, 0), 120, sh(2025, 9, 22, 10, 0)),
    ("start on a Saturday", sh(2025, 9, 20, 10, 0), 30, sh(2025, 9, 22, 9, 30)),
    ("make-up Sunday 09-28", sh(2025, 9, 26, 17, 0), 120, sh(2025, 9, 28, 10, 0)),
    ("National Day 10-01..08", sh(2025, 9, 30, 17, 0), 120, sh(2025, 10, 9, 10, 0)),
    ("make-up Saturday 10-11", sh(2025, 10, 10, 17, 0), 120, sh(2025, 10, 11, 10, 0)),
    ("New Year to make-up Sunday", sh(2025, 12, 31, 17, 0), 120, sh(2026, 1, 4, 10, 0)),
    ("two working days", sh(2025, 9, 22, 9, 0), 16 * 60, sh(2025, 9, 23, 18, 0)),
]


@pytest.mark.parametrize(("start", "minutes", "end"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_add_business_minutes_table(standard: WorkCalendar, start: datetime, minutes: int, end: datetime) -> None:
    assert sla.add_business_minutes(start, minutes, standard) == end
    # and back: the business minutes between the two are what was added (start inside hours)
    if sla.business_calendar(standard).works(start.date()) and time(9) <= start.time() < time(12):
        assert sla.business_minutes_between(start, end, standard) == minutes


def test_minutes_between_counts_working_time_only_and_signs(standard: WorkCalendar) -> None:
    assert sla.business_minutes_between(sh(2025, 9, 19, 17, 0), sh(2025, 9, 22, 10, 0), standard) == 120
    assert sla.business_minutes_between(sh(2025, 9, 16, 11, 30), sh(2025, 9, 16, 13, 30), standard) == 60
    assert sla.business_minutes_between(sh(2025, 9, 22, 10, 0), sh(2025, 9, 19, 17, 0), standard) == -120
    assert sla.business_minutes_between(sh(2025, 9, 30, 18, 0), sh(2025, 10, 8, 23, 0), standard) == 0
    assert sla.add_business_minutes(sh(2025, 9, 22, 10, 0), -120, standard) == sh(2025, 9, 19, 17, 0)


def test_round_the_clock_counts_every_minute() -> None:
    assert sla.add_business_minutes(sh(2025, 9, 19, 17, 0), 120, None) == sh(2025, 9, 19, 19, 0)
    assert sla.business_minutes_between(sh(2025, 9, 20, 0, 0), sh(2025, 9, 21, 0, 0), None) == 1440


# --- deadlines ----------------------------------------------------------------------------------


def _ids(model: type, code: str) -> int:
    return db.session.scalars(select(model.id).where(model.code == code)).one()


def ticket(created: datetime, type_code: str = "consult", priority: str = "high", code: str = "T-SLA-1") -> Ticket:
    item = Ticket(code=code, subject="SLA", type_id=_ids(TicketType, type_code),
                  priority_id=_ids(Priority, priority), status="assigned", created_on=created)
    db.session.add(item)
    db.session.flush()
    sla.start(item, created)
    db.session.flush()
    return item


def test_start_picks_the_most_specific_policy_and_sets_deadlines_and_warnings(standard: WorkCalendar) -> None:
    item = ticket(sh(2025, 9, 19, 10, 0))  # Fri 10:00, high: respond 4 h, resolve 16 h, warn 60
    assert item.sla_policy.name.startswith("高优先级")
    assert item.response_due_at == sh(2025, 9, 19, 15, 0)
    assert item.resolve_due_at == sh(2025, 9, 23, 10, 0)
    assert item.response_warn_at == sh(2025, 9, 19, 14, 0)
    assert item.resolve_warn_at == sh(2025, 9, 23, 9, 0)
    internal = ticket(sh(2025, 9, 19, 17, 55), "internal", "low", code="T-SLA-2")
    assert internal.sla_policy.first_response_minutes == 15  # 附录3: type beats priority
    assert internal.response_due_at == sh(2025, 9, 22, 9, 10)
    # a type+priority policy beats both
    exact = SlaPolicy(name="Complaint high", ticket_type_id=_ids(TicketType, "complaint"),
                      priority_id=_ids(Priority, "high"), first_response_minutes=30, resolution_minutes=60,
                      calendar_id=standard.id)
    db.session.add(exact)
    db.session.flush()
    assert ticket(sh(2025, 9, 19, 10, 0), "complaint", "high", code="T-SLA-3").sla_policy_id == exact.id


def test_an_inactive_policy_is_skipped_and_no_policy_clears_the_clock(standard: WorkCalendar) -> None:
    for policy in db.session.scalars(select(SlaPolicy)):
        policy.active = False
    db.session.flush()
    item = ticket(sh(2025, 9, 19, 10, 0))
    assert item.sla_policy_id is None and item.response_due_at is None and item.resolve_due_at is None
    state = sla.state(item, sh(2025, 9, 19, 11, 0))
    assert state.response_left is None and not state.response_breached


def test_round_the_clock_policy(standard: WorkCalendar) -> None:
    policy = db.session.scalars(select(SlaPolicy).where(SlaPolicy.priority_id == _ids(Priority, "high"))).one()
    policy.business_hours = False
    db.session.flush()
    item = ticket(sh(2025, 9, 19, 17, 0))  # Fri evening: 4 h later is Fri 21:00
    assert item.response_due_at == sh(2025, 9, 19, 21, 0)
    assert item.resolve_due_at == sh(2025, 9, 20, 9, 0)


def test_a_pause_over_the_weekend_moves_open_deadlines_by_the_paused_business_minutes(
        standard: WorkCalendar) -> None:
    item = ticket(sh(2025, 9, 19, 10, 0))
    sla.pause(item, sh(2025, 9, 19, 11, 0))
    paused = sla.state(item, sh(2025, 9, 22, 9, 30))
    assert paused.paused and paused.response_left == 180  # frozen at Fri 11:00: 1 h + 2 h left
    sla.resume(item, sh(2025, 9, 22, 10, 0))  # Fri 11-12, 13-18, Mon 9-10 = 420
    assert item.paused_since is None and item.paused_minutes == 420
    assert item.response_due_at == sh(2025, 9, 22, 14, 0)
    assert item.response_warn_at == sh(2025, 9, 22, 13, 0)
    assert item.resolve_due_at == sh(2025, 9, 23, 18, 0)
    assert item.resolve_warn_at == sh(2025, 9, 23, 17, 0)


def test_a_response_keeps_the_first_instant_and_later_pauses_leave_its_deadline(standard: WorkCalendar) -> None:
    item = ticket(sh(2025, 9, 19, 10, 0))
    sla.responded(item, sh(2025, 9, 19, 16, 0))  # an hour late
    sla.responded(item, sh(2025, 9, 19, 17, 0))
    assert item.first_response_at == sh(2025, 9, 19, 16, 0)
    sla.pause(item, sh(2025, 9, 19, 17, 0))
    sla.resume(item, sh(2025, 9, 19, 18, 0))
    assert item.response_due_at == sh(2025, 9, 19, 15, 0)
    assert item.resolve_due_at == sh(2025, 9, 23, 11, 0)
    state = sla.state(item, sh(2025, 9, 22, 9, 0))
    assert state.response_breached and state.response_left is None
    assert state.resolve_left == 8 * 60 + 120 and not state.resolve_breached


def test_state_is_negative_when_overdue(standard: WorkCalendar) -> None:
    item = ticket(sh(2025, 9, 19, 10, 0))
    state = sla.state(item, sh(2025, 9, 19, 16, 0))
    assert state.response_left == -60 and state.response_breached
    assert state.resolve_left == sla.business_minutes_between(sh(2025, 9, 19, 16, 0), sh(2025, 9, 23, 10, 0), standard)
    assert state.resolve_left == 120 + 480 + 60
    late = sla.state(item, sh(2025, 9, 23, 11, 30))
    assert late.resolve_left == -90 and late.resolve_breached


def test_resolved_interval_counts_as_paused_on_reopen(standard: WorkCalendar) -> None:
    item = ticket(sh(2025, 9, 19, 10, 0))
    sla.responded(item, sh(2025, 9, 19, 11, 0))
    sla.resolved(item, sh(2025, 9, 19, 16, 0))
    item.status = "resolved"
    done = sla.state(item, sh(2025, 10, 20, 9, 0))
    assert done.resolve_left is None and not done.resolve_breached
    item.status, item.resolved_at = "in_progress", None  # the tickets module clears it first
    sla.reopened(item, sh(2025, 9, 22, 10, 0))  # Fri 16-18 + Mon 9-10 = 180
    assert item.paused_since is None and not sla.state(item, sh(2025, 9, 22, 10, 0)).paused
    assert item.paused_minutes == 180
    assert item.resolve_due_at == sh(2025, 9, 23, 14, 0)
    assert item.response_due_at == sh(2025, 9, 19, 15, 0)


def test_recompute_after_a_holiday_is_added(standard: WorkCalendar) -> None:
    item = ticket(sh(2025, 9, 16, 10, 0))  # Tue: resolve 16 h -> Thu 10:00
    assert item.resolve_due_at == sh(2025, 9, 18, 10, 0)
    done = ticket(sh(2025, 9, 16, 10, 0), code="T-SLA-DONE")
    done.status = "closed"
    db.session.add(CalendarDay(calendar_id=standard.id, day=datetime(2025, 9, 17).date(), kind="holiday",
                               name="Company day"))
    db.session.commit()
    assert sla.recompute_open(at=sh(2025, 9, 16, 11, 0)) >= 1
    db.session.commit()
    item, done = db.session.get(Ticket, item.id), db.session.get(Ticket, done.id)
    assert item.resolve_due_at == sh(2025, 9, 19, 10, 0)
    assert item.resolve_warn_at == sh(2025, 9, 19, 9, 0)
    assert item.response_due_at == sh(2025, 9, 16, 15, 0)
    assert done.resolve_due_at == sh(2025, 9, 18, 10, 0)  # closed tickets keep theirs


def test_seed_is_idempotent_and_reset_restores_it(standard: WorkCalendar) -> None:
    policies = db.session.scalars(select(SlaPolicy.name)).all()
    sla.seed_defaults()
    assert sorted(db.session.scalars(select(SlaPolicy.name)).all()) == sorted(policies)
    assert len(policies) == len(sla.DEFAULT_POLICIES)
    db.session.delete(db.session.scalars(select(SlaPolicy)).first())
    db.session.commit()
    sla.reset_to_seed()
    assert len(db.session.scalars(select(SlaPolicy)).all()) == len(sla.DEFAULT_POLICIES)
    assert len(db.session.scalars(select(WorkCalendar)).all()) == 1


def test_public_days_import_knows_its_years(standard: WorkCalendar) -> None:
    assert 2025 in sla.known_years() and 2026 in sla.known_years()
    assert sla.import_public_days(standard, 2025) == 0  # already there, kept
    days = dict(db.session.execute(select(CalendarDay.day, CalendarDay.kind).where(
        CalendarDay.calendar_id == standard.id)).all())
    assert days[datetime(2025, 10, 1).date()] == "holiday" and days[datetime(2025, 9, 28).date()] == "workday"
    with pytest.raises(ValueError):
        sla.import_public_days(standard, 1990)
