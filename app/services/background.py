"""A small thread pool per web process for imports and large exports.

The request that starts a job returns at once; the job runs in its own app context
and session. ``CRM_IMPORT_INLINE`` runs it in the calling thread (tests, debugging).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask, current_app

from app.extensions import db

log = logging.getLogger(__name__)
_executor: ThreadPoolExecutor | None = None


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
