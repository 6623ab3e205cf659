"""Online users against the licence (000 §三(二): 在线用户数峰值不超过licensed用户数).

A user is online when seen (``CrmUser.last_seen_at``, written by ``app.security.presence``)
in the last ``WINDOW``. The ``online_sample`` job stores the figure every minute; the day's
peak is the highest sample of the CRM-zone day (and the figure now). ``company.licensed_users``
0 means not limited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from app import clock
from app.extensions import db
from app.models.operations import OnlineSample
from app.models.org import CrmUser
from app.services import company

WINDOW = timedelta(minutes=5)


def online_now(now: datetime | None = None) -> int:
    """Active users seen within ``WINDOW`` before ``now`` (UTC; default now)."""
    now = clock.as_utc(now) or clock.utc_now()
    return db.session.scalar(select(func.count(CrmUser.id)).where(
        CrmUser.active.is_(True), CrmUser.last_seen_at >= now - WINDOW, CrmUser.last_seen_at <= now)) or 0


def sample(now: datetime | None = None) -> int:
    """Store the online figure at ``now``'s UTC minute (one row per minute: a second
    sample of the same minute keeps the higher figure). Returns the figure. Commits."""
    now = (clock.as_utc(now) or clock.utc_now()).replace(second=0, microsecond=0)
    users = online_now(now)
    insert = postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(OnlineSample.__table__).values(at=now, users=users)
    stmt = stmt.on_conflict_do_update(index_elements=["at"], set_={
        "users": func.max(OnlineSample.__table__.c.users, stmt.excluded.users)}
        if db.session.get_bind().dialect.name == "sqlite" else {
        "users": func.greatest(OnlineSample.__table__.c.users, stmt.excluded.users)})
    db.session.execute(stmt)
    db.session.commit()
    return users


def record_sample() -> int:
    """The ``online_sample`` job (every minute)."""
    return sample()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) in UTC of ``day`` in the CRM's zone."""
    start = clock.from_local(datetime(day.year, day.month, day.day))
    return start, start + timedelta(days=1)


def peak(day: date | None = None, now: datetime | None = None) -> int:
    """The highest sample of ``day`` (CRM zone; default today, then the figure now counts too)."""
    today = clock.local_today()
    day = day or today
    start, end = day_bounds(day)
    found = db.session.scalar(select(func.max(OnlineSample.users)).where(
        OnlineSample.at >= start, OnlineSample.at < end)) or 0
    return max(found, online_now(now)) if day == today else found


def active_accounts() -> int:
    """Accounts that may log in (active)."""
    return db.session.scalar(select(func.count(CrmUser.id)).where(CrmUser.active.is_(True))) or 0


@dataclass
class Licence:
    """Online now, today's peak and active accounts against ``licensed`` (0: not limited);
    ``over`` when the peak is above it, ``accounts_over`` when active accounts are."""

    now: int
    peak: int
    accounts: int
    licensed: int

    @property
    def over(self) -> bool:
        return bool(self.licensed) and self.peak > self.licensed

    @property
    def accounts_over(self) -> bool:
        return bool(self.licensed) and self.accounts > self.licensed


def licence(now: datetime | None = None) -> Licence:
    """The figures of the system health page's first panel."""
    return Licence(online_now(now), peak(None, now), active_accounts(), int(company.licensed_users() or 0))
