"""An import's chunks stored on a second connection while the run checks the next chunk.

Checking rows is Python work. On PostgreSQL, most of the time of storing a chunk of new
rows is the server's (COPY and the search's trigram indexes), in another process, and the
driver lets this process's other threads run meanwhile. So with two cores the run hands
each chunk of new rows to one writer thread and goes on checking (issue 12's import
targets). On SQLite the storing happens in this process and takes turns with the checks
on the interpreter lock: measured, no gain, so ``CRM_IMPORT_OVERLAP`` "auto" leaves it off
there. One writer, chunks in file order, so the audit chain's steps and the job's
checkpoints keep their order.

The writer has an app context, so a session and a connection, of its own. It receives
plain rows (dicts), never records of the run's session. The run's session must not write
while the writer works: a chunk with updated records or held changes waits for the writer
(``wait``) and is stored by the run itself, as before. An error in the writer (a refused
row that slipped through, ``tasks.Cancelled`` from the progress callback, a lost lease)
rolls the writer's chunk back and is raised in the run at its next ``submit``/``wait``.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from flask import current_app

from app.extensions import db
from app.models.base import acting_user_id, current_user_id

log = logging.getLogger(__name__)


class ChunkWriter:
    """Runs ``work`` (a chunk's inserts, progress and commit) on its own thread and session.

    ``enabled`` False (dry runs, all-or-nothing runs, files of one chunk),
    ``CRM_IMPORT_OVERLAP`` off ("auto": on for a database server, off for SQLite), or an
    in-memory SQLite database that a second connection would not see: ``active`` is False
    and the run stores every chunk itself.
    Use as a context manager: leaving waits for the last chunk, so nothing is written after
    the run returns or raises.
    """

    def __init__(self, enabled: bool) -> None:
        self.active = enabled and _overlap_wanted() and _second_connection_sees()
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future | None = None

    def submit(self, work: Callable[..., None], *args: Any) -> None:
        """Store a chunk in the background after the previous one (whose error, if any, is
        raised here instead). The caller's context goes with it: audit labels, the pinned
        zone, the acting user, and a web request's context when the run started in one (the
        audit entries read its address and browser from it, as they would in turn); the
        writer's app context, and so its session, is its own."""
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="import-writer")
        app = current_app._get_current_object()  # noqa: SLF001 (the app itself, for the thread)
        context = contextvars.copy_context()
        self._future = self._pool.submit(context.run, _in_own_session, app, current_user_id(), work, args)

    def wait(self) -> None:
        """Block until the chunk in the background is stored; its error, if any, raised here."""
        future, self._future = self._future, None
        if future is not None:
            future.result()

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> None:
        try:
            if kind is None:
                self.wait()
            else:  # the run failed: the writer's chunk still ends (stored or rolled back) first
                try:
                    self.wait()
                except Exception:
                    log.exception("An import chunk failed while the run itself failed")
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


def _in_own_session(app: Any, user_id: int | None, work: Callable[..., None], args: tuple) -> None:
    """``work(*args)`` in a new app context (so ``db.session`` is a session of this thread's
    own), acting for ``user_id``; rolled back when it raises."""
    acting_user_id.set(user_id)  # this thread's copy of the run's context only
    with app.app_context():
        try:
            work(*args)
        except BaseException:
            db.session.rollback()
            raise


def _overlap_wanted() -> bool:
    """``CRM_IMPORT_OVERLAP``: "auto" (a database server: yes; SQLite: no), or a yes/no."""
    setting = str(current_app.config.get("CRM_IMPORT_OVERLAP", "auto")).strip().lower()
    if setting == "auto":
        return db.engine.url.get_backend_name() != "sqlite"
    return setting in ("1", "true", "yes", "on")


def _second_connection_sees() -> bool:
    """Whether another connection sees the run's database (not an in-memory SQLite one)."""
    url = db.engine.url
    return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))
