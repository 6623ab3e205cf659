"""Events that use cases announce (issue 14): a lead assigned, an import finished, sync
conflicts waiting, a security alert.

Each function is called from inside the use case (``leads.save_lead``, the import job's
end, the sync run's end, ``audit.record``), so every entry point — form, API, import, web
form, sync, scheduled job — triggers it, and the notification commits in the same
transaction as the change it tells of. Params carry codes, names and counts, never a phone.

A notification is a side effect: if telling fails (a bug, a bad template), the change itself
(the lead, the import's end, the sync run's log, the alert's audit entry) must still be
saved, so each hook runs in a savepoint and a failure is logged, not raised (``best_effort``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.extensions import db
from app.models.org import CrmUser
from app.services import notifications

log = logging.getLogger(__name__)


@contextmanager
def best_effort(what: str) -> Iterator[None]:
    """Run the block in a savepoint; an exception rolls back only the block and is logged."""
    try:
        with db.session.begin_nested():
            yield
    except Exception:  # noqa: BLE001 - see the module doc: the change must not fail with its notice
        log.exception("Could not notify: %s", what)


def hook(func: Callable[..., None]) -> Callable[..., None]:
    """``func`` run under ``best_effort``."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> None:
        with best_effort(func.__name__):
            func(*args, **kwargs)

    return run


@hook
def lead_assigned(lead: Any, before_owner_id: int | None, writer: Any) -> None:
    """Tell a lead's new owner (``lead_assigned``) when the owner changed from
    ``before_owner_id`` to someone other than ``writer`` (the assignment rules, a manager,
    an import, the web form). Each assignment tells (no occasion). Call after the flush."""
    owner_id = lead.owner_id
    if owner_id is None or owner_id == before_owner_id or owner_id == getattr(writer, "id", None):
        return
    notifications.notify("lead_assigned", [owner_id], record=lead,
                         params={"code": lead.code, "company": lead.company})


def import_summary(job: Any) -> Any:
    """What a finished import job did, as a ``messages.Message`` (rendered in each reader's
    language): counts when done, the stored reason when it failed or was cancelled."""
    from app.models.transfers import DONE, FAILED
    from app.services import messages
    from app.services.importing import jobs

    if job.status == DONE:
        return messages.stored(_l("%(created)d created, %(updated)d updated, %(unchanged)d unchanged, "
                                  "%(rejected)d rejected.", created=job.created or 0, updated=job.updated or 0,
                                  unchanged=job.unchanged or 0, rejected=job.rejected or 0))
    label = messages.stored(_l("failed") if job.status == FAILED else _l("cancelled"))
    reason = jobs.error_message(job)
    return messages.concat([label, ": ", reason]) if reason else label


@hook
def import_finished(job: Any) -> None:
    """Tell the job's user that a background import ended (done, failed or cancelled), with
    its summary. Once per end (occasion: job id and end time).

    The summary is a stored message when the notifications service renders those in the
    reader's language (``notifications.MESSAGE_PARAMS``); else text in the user's language."""
    from app.services import messages

    user = db.session.get(CrmUser, job.user_id)
    if user is None:
        return
    summary = import_summary(job)
    if not getattr(notifications, "MESSAGE_PARAMS", False):
        summary = messages.render(summary, notifications.language_of(user))
    stamp = job.finished_at.isoformat() if job.finished_at is not None else job.status
    notifications.notify("import_finished", [user.id], params={"file": job.filename, "summary": summary},
                         occasion=f"import_finished:{job.id}:{stamp}")


@hook
def sync_conflicts(target: Any, run: Any) -> None:
    """After a sync run that found new conflicts: tell the target's run-as user and the
    person who started the run how many conflicts wait (once per run). A run that only
    finds the same conflicts waiting tells nobody again (no message every five minutes)."""
    from app.models.sync import SyncConflict

    open_ = select(func.count(SyncConflict.id)).where(SyncConflict.target_id == target.id,
                                                      SyncConflict.resolved_at.is_(None))
    new = db.session.scalar(open_.where(SyncConflict.created_at >= run.started_at)) or 0
    if not new:
        return
    waiting = db.session.scalar(open_) or 0
    notifications.notify("sync_conflicts", [target.run_as_id, run.user_id], params={"count": waiting, "target": target.name}, occasion=f"sync_conflicts:{run.id}")


def admin_ids() -> list[int]:
    """Ids of the active users with the Admin role (``AUTH_ROLE_ADMIN``)."""
    role = current_app.config.get("AUTH_ROLE_ADMIN", "Admin")
    return list(db.session.scalars(select(CrmUser.id).where(CrmUser.active.is_(True),
                                                            CrmUser.roles.any(name=role)).order_by(CrmUser.id)))


@hook
def security_alert(action: str, obj: Any = None) -> None:
    """Tell every active Admin of a security alert (an audit action of
    ``app.security.alerts.actions``), in the transaction that writes the audit entry."""
    from app.security import alerts
    from app.services import messages

    # the alert's name, rendered in each reader's language (the audit log's label)
    params: dict[str, Any] = {"action": messages.stored(alerts.LABELS.get(action, action))}
    if isinstance(obj, CrmUser):
        params["user"] = obj.username
    notifications.notify("security_alert", admin_ids(), params=params)
