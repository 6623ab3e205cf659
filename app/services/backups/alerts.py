"""Tell the admins when a backup, its copy or its verification fails (000 §三(一); in-app and
e-mail per each admin's preferences)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.models.operations import BackupRun
from app.services import notifications
from app.services.messages import Message
from app.services.notifications import EMAIL, IN_APP, Event

FAILED = notifications.declare_event(Event(
    "backup_failed", _l("Backup problem"),
    _l("Backup %(file)s: %(problem)s. See Organisation → Backups."), (IN_APP, EMAIL)))


def backup_problem(run: BackupRun, problem: Message, occasion: str) -> None:
    """Notify every active admin once per ``occasion`` (e.g. ``"verify:<id>:<verification id>"``).
    ``problem``: text, or a stored ``messages.Message`` (rendered in each reader's language).
    The caller commits."""
    from app.services.notify_hooks import admin_ids

    notifications.notify(FAILED.key, admin_ids(), params={"file": run.file_name or f"#{run.id}",
                                                          "problem": problem[:300] if isinstance(problem, str) else problem},
                         occasion=f"backup:{occasion}")
