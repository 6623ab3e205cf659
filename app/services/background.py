"""A small thread pool per web process for imports and large exports, their files and progress.

The request that starts a job returns at once; the job runs in its own app context
and session. ``CRM_IMPORT_INLINE`` runs it in the calling thread (tests, debugging).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from app.clock import utc_now
from app.extensions import db
from app.models.transfers import RUNNING, TransferJob

log = logging.getLogger(__name__)
_executor: ThreadPoolExecutor | None = None
#: job id -> (rows processed, rows in all) for jobs running in this process.
LIVE: dict[int, tuple[int, int]] = {}


def submit(func: Callable[..., Any], *args: Any) -> None:
    app = current_app._get_current_object()
    if app.config.get("CRM_IMPORT_INLINE"):
        func(*args)
        return
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=app.config.get("CRM_IMPORT_WORKERS", 1),
                                       thread_name_prefix="crm-jobs")
    _executor.submit(_in_app, app, func, *args)


def _in_app(app: Flask, func: Callable[..., Any], *args: Any) -> None:
    with app.app_context():
        try:
            func(*args)
        except Exception:  # the job stores its own failure; the pool must survive
            log.exception("Background job %s%r failed", getattr(func, "__name__", func), args)
        finally:
            db.session.remove()


def folder(kind: str = "imports") -> Path:
    """Where jobs keep their files (uploads, reports, exports), under the instance folder."""
    path = Path(current_app.instance_path) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def progress(job: TransferJob) -> dict[str, Any]:
    """What the progress bar shows: rows done, total, and an estimate of the time left."""
    done, total = LIVE.get(job.id, (job.processed_rows, job.total_rows))
    remaining = None
    if job.status == RUNNING and job.started_at and done:
        elapsed = (utc_now() - job.started_at).total_seconds()
        remaining = round(elapsed / done * (total - done))
    return {"status": job.status, "processed": done, "total": total, "seconds_left": remaining,
            "created": job.created, "updated": job.updated, "unchanged": job.unchanged,
            "rejected": job.rejected, "error": job.error}
