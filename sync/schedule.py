"""The scheduler's minute tick for sync targets: run every enabled target whose cron
time has come. A failing target is logged on its run and never stops the others."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select

from app.clock import utc_now
from app.extensions import db
from app.models.org import CrmUser
from app.models.sync import SyncTarget
from app.services.schedules import is_due
from sync import backends, runner
from sync.fields import mask_phones_in

log = logging.getLogger(__name__)


def run_due_targets(at: datetime | None = None) -> list[str]:
    """Every minute: queue a run of every enabled target whose cron time has come
    (``run_target`` on the task queue); returns their names. A target whose time cannot be
    read is failed on the target, and the tick goes on."""
    from app.services import background

    at = at or utc_now()
    queued = []
    for target in db.session.scalars(select(SyncTarget).where(SyncTarget.enabled.is_(True))).all():
        try:
            if not is_due(target, at):
                continue
        except Exception as exc:  # a cron saved before it was checked: shown on the target
            _failed(target.id, target.name, exc)
            continue
        background.submit(run_target, target.id, "schedule")
        queued.append(target.name)
    return queued


def run_target(target_id: int, trigger: str = "schedule", user_id: int | None = None) -> int | None:
    """One sync run of a target, as a queued job (``background.submit``): the runner
    claims the target (``running_since``), so a second delivery while it runs does
    nothing. Returns the run's id; None when the target is gone, disabled (a schedule), or
    its sheet cannot be opened (the target says why)."""
    target = db.session.get(SyncTarget, target_id)
    if target is None or (trigger == "schedule" and not target.enabled):
        return None
    started_by = db.session.get(CrmUser, user_id) if user_id else None
    try:
        return runner.run(target, backends.for_target(target), trigger=trigger, started_by=started_by).id
    except Exception as exc:  # configuration problems: shown on the target
        _failed(target_id, target.name, exc)
        return None


def _failed(target_id: int, name: str, exc: Exception) -> None:
    log.exception("Sync target %s failed", name)
    db.session.rollback()
    stored = db.session.get(SyncTarget, target_id)
    stored.last_run_at, stored.last_status, stored.last_message = utc_now(), "failed", mask_phones_in(str(exc))[:2000]
    db.session.commit()
