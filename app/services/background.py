"""Background work: where a job runs (``submit``), its files and its progress.

The request that starts a job returns at once; the job runs in its own app context and
session: on a small thread pool in this process (``CRM_TASK_QUEUE=threads``, the embedded
default) or on a Celery worker anywhere (``CRM_TASK_QUEUE=celery``, see app/services/tasks.py).
``CRM_IMPORT_INLINE`` runs it in the calling thread (tests, debugging).
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
from app.services import tasks

log = logging.getLogger(__name__)
_executor: ThreadPoolExecutor | None = None


def submit(func: Callable[..., Any], *args: Any) -> None:
    """Run ``func(*args)`` in the background: a module-level function with JSON-serialisable
    arguments (ids), for Celery must be able to name and send it (``tasks.ALLOWED``).

    Inline with ``CRM_IMPORT_INLINE``; on the broker with ``CRM_TASK_QUEUE=celery``
    (``tasks.send``: a broker that is down leaves the job to the sweep); else on this
    process's thread pool (``CRM_IMPORT_WORKERS`` threads)."""
    app = current_app._get_current_object()
    if app.config.get("CRM_IMPORT_INLINE"):
        _call(func, *args)
        return
    if app.config.get("CRM_TASK_QUEUE") == "celery":
        tasks.send(func, args)
        return
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=app.config.get("CRM_IMPORT_WORKERS", 1),
                                       thread_name_prefix="crm-jobs")
    _executor.submit(_in_app, app, func, *args)


def drain() -> None:
    """Wait until every job given to this process's thread pool has ended, those they gave
    it included (the pool is made again by the next ``submit``): a test that let an import
    run in the background waits here for the work the import leaves behind it (indexing
    for search)."""
    global _executor
    while _executor is not None:
        executor, _executor = _executor, None
        executor.shutdown(wait=True)


def _in_app(app: Flask, func: Callable[..., Any], *args: Any) -> None:
    from app.services.backups import maintenance

    with app.app_context():
        try:
            maintenance.wait_until_over()  # never write into a database a restore is swapping
            _call(func, *args)
        except Exception:  # the job stores its own failure; the pool must survive
            log.exception("Background job %s%r failed", getattr(func, "__name__", func), args)
        finally:
            db.session.remove()


def _call(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)``; a scheduled job's work is recorded as a job run (``job_run``)."""
    from app.services.monitoring import jobs

    return jobs.call(func, *args)


def folder(kind: str = "imports") -> Path:
    """Where jobs keep their files (uploads, reports, exports), under the instance folder."""
    path = Path(current_app.instance_path) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def progress(job: TransferJob) -> dict[str, Any]:
    """What the progress bar shows: rows done, total, and an estimate of the time left,
    as the job row says (any web worker reads the same; ``tasks.progress_of``)."""
    done, total = tasks.progress_of(job)
    remaining = None
    if job.status == RUNNING and job.started_at and done:
        elapsed = (utc_now() - job.started_at).total_seconds()
        remaining = round(elapsed / done * (total - done))
    return {"status": job.status, "processed": done, "total": total, "seconds_left": remaining,
            "created": job.created, "updated": job.updated, "unchanged": job.unchanged,
            "rejected": job.rejected, "error": job.error, "cancel_requested": job.cancel_requested}
