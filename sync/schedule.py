"""The scheduler's minute tick for sync targets: run every enabled target whose cron
time has come. A failing target is logged on its run and never stops the others."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select

from app.clock import utc_now
from app.extensions import db
from app.models.sync import SyncTarget
from app.services.schedules import is_due
from sync import backends, runner
from sync.fields import mask_phones_in

log = logging.getLogger(__name__)


def run_due_targets(at: datetime | None = None) -> list[str]:
    at = at or utc_now()
    ran = []
    for target in db.session.scalars(select(SyncTarget).where(SyncTarget.enabled.is_(True))).all():
        try:
            if not is_due(target, at):
                continue
            runner.run(target, backends.for_target(target), trigger="schedule")
        except Exception as exc:  # configuration problems: shown on the target, the tick goes on
            log.exception("Sync target %s failed", target.name)
            db.session.rollback()
            stored = db.session.get(SyncTarget, target.id)
            stored.last_run_at, stored.last_status, stored.last_message = utc_now(), "failed", mask_phones_in(str(exc))[:2000]
            db.session.commit()
        ran.append(target.name)
    return ran
