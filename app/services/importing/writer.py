"""An import's chunks stored on a second connection while the run checks the next chunk.

Checking rows is Python work, and so is much of storing them (audit entries, planned
activities, bound values); the rest is the database's. With two cores the run hands each
chunk of new rows to one writer and goes on checking (issue 12's import targets), up to
``DEPTH`` chunks ahead. One writer, chunks in file order, so the audit chain's steps and the
job's checkpoints keep their order; after a failed chunk it stores no later one. Two kinds
of writer (``CRM_IMPORT_OVERLAP``):

- ``process`` (the default in a process with no other thread: a Celery worker, the command
  line): a child forked from the run's process at its first chunk, with a pool of its own
  connections, that receives each chunk's rows over a pipe (pickled) and answers with the
  new codes or the error. It runs beside the checks on the other core, Python included.
  Measured on SQLite, 100,000 rows: follow-ups 13.7-15.8 s against 18.5-18.8 s in turn,
  customers 11.8-13.1 s against 14.1-17.9 s; on PostgreSQL, where the server does most of
  the storing, 0.94-0.96 of the thread's time.
- ``thread``: a thread of this process. Its Python work takes turns with the checks on the
  interpreter lock; only the driver's waits overlap, so on SQLite it gained nothing
  (measured). The default for a database server in a process with other threads (the
  embedded web process, whose pool runs the imports) or without ``fork`` (Windows); there
  SQLite stores in turn.

Against a database server the forked writer stores two chunks side by side, each on a
connection of its own (``_serve_side_by_side``): the server inserts one chunk's rows while
the other's are checked against their keys and committed. What must follow the file stays in
chunk order: the codes are counted first, in a short transaction of their own taken in turn
(``numbering``; the counter row would otherwise hold the second chunk until the first
commits), and the audit chain step, the job's progress and the commit come after the chunk
before has committed (``in_turn``); a chunk after a failed one is rolled back, as before.
The ids are drawn there too (``bulk.draw_ids``), so each chunk's ascend and stay below the
next chunk's. A failed chunk's codes, and those of the chunk numbered beside it, are not given
again (a gap in the day's numbers). A chunk waiting for its turn holds its rows' locks, which
a third transaction could wait on while holding what the chunk before needs (the audit chain's
head row: a cycle the database cannot see; or simply a long transaction, such as an
all-or-nothing import): after ``TURN_WAIT`` it rolls back, waits holding nothing, and stores
again in its turn with the codes and ids it drew. SQLite, whose writes take turns anyway,
stores one chunk at a time.

Either has an app context, so a session and a connection, of its own. It receives plain
rows (dicts), never records of the run's session. The run's session must not write while
the writer works: a chunk with updated records or held changes waits for the writer
(``wait``) and is stored by the run itself, as before. An error in the writer (a refused
row that slipped through, ``tasks.Cancelled`` from the progress callback, a lost lease)
rolls the writer's chunk back and is raised in the run at its next ``submit``/``wait``.

Only a process with no other thread forks: a fork copies the forking thread alone, and
whatever another thread held at that moment stays held in the child for good (a Python
lock, or SQLite's record of its own file locks: a child forked while another thread wrote
could never write; found by attacking the first version). The child drops the parent's
pooled connections unclosed (SQLAlchemy's ``dispose(close=False)``, the documented way
after a fork), leaves with ``os._exit`` (no atexit hooks, no finalizers of the parent's
objects: an SQLite connection closed in the child could checkpoint or delete the parent's
WAL), ignores Ctrl-C (the parent's to handle), dies with the parent (Linux:
``PR_SET_PDEATHSIG``; elsewhere at the next chunk, on end of file) and collects its own
garbage (the run pauses the collector; the child freezes what it inherited and turns it
back on). Each chunk carries the run's pinned zone, as a thread's copied context does. A
child silent for the job's lease (``CRM_JOB_LEASE_SECONDS``: the sweep would hand the job
to another delivery after that) is killed and the run fails with a message; its chunk was
not committed, so the job resumes from the last committed one.
"""

from __future__ import annotations

import contextvars
import ctypes
import gc
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from app import clock
from app.extensions import db
from app.models.base import acting_user_id, current_user_id
from app.services import tasks

log = logging.getLogger(__name__)

_OFF = ("0", "off", "no", "false")
_PR_SET_PDEATHSIG = 1
#: In a forked child: the parent's connection pools, kept as they were until ``os._exit``.
_PARENTS_POOLS: list[Any] = []
#: Chunks handed to the writer and not yet answered: the one it stores and the next, waiting
#: for it. With one, the checks and the writer took turns waiting for each other at every
#: chunk (~1.2-1.4 s each over a 100,000-row import, measured); the chunks' checks never read
#: what the writer stores (the run's lookups are loaded once, in memory).
DEPTH = 2
#: A writer's answer about a chunk it did not store because an earlier chunk failed.
SKIPPED = "skipped"


class ChunkWriter:
    """Runs ``work`` (a chunk's inserts, progress and commit) on its own session, in a
    forked child or a thread (``mode``: "process", "thread", or None when off).

    ``enabled`` False (dry runs, all-or-nothing runs, files of one chunk),
    ``CRM_IMPORT_OVERLAP`` off, or an in-memory SQLite database that a second connection
    would not see: ``active`` is False and the run stores every chunk itself.
    Use as a context manager: leaving waits for the last chunk, so nothing is written after
    the run returns or raises.
    """

    def __init__(self, enabled: bool) -> None:
        self.mode = _mode() if enabled and _second_connection_sees() else None
        self.active = self.mode is not None
        self._pool: ThreadPoolExecutor | None = None
        self._child: _Child | None = None
        #: (answer to come, ``done``) of each chunk handed over, oldest first (at most ``DEPTH``)
        self._waiting: deque[tuple[Future | _Child, Callable[[Any], None] | None]] = deque()
        self._failed = threading.Event()  # a thread writer's chunk failed: it stores no later one

    def submit(self, work: Callable[..., Any], *args: Any, done: Callable[[Any], None] | None = None) -> None:
        """Store a chunk in the background after the ones handed over before it. With
        ``DEPTH`` chunks unanswered, first waits for the oldest (its error, if any, is raised
        here; the writer stores no chunk after a failed one). ``done(value)`` is called in the
        run with what ``work`` returned, in chunk order, at a later ``submit`` or ``wait``.
        The caller's context goes with it: audit
        labels, the pinned zone, the acting user, and a web request's context when the run
        started in one (the audit entries read its address and browser from it, as they
        would in turn); the writer's app context, and so its session, is its own.
        ``args`` are pickled for a forked writer: plain values only."""
        while len(self._waiting) >= DEPTH:
            self._answer_oldest()
        app = current_app._get_current_object()  # noqa: SLF001 (the app itself, for the writer)
        if self.mode == "process" and self._child is None and not _may_fork():
            self.mode = "thread"  # a thread started since the run began: no fork now
        if self.mode == "process":
            if self._child is None:
                # silent for the job's lease: taken as hung (a chunk takes well under a second;
                # after the lease the sweep hands the job to another delivery)
                self._child = _Child(app, current_user_id(), work, tasks.lease().total_seconds())
            elif work != self._child.work:
                raise ValueError("A forked writer runs the work it was forked with, for every chunk.")
            answer: Future | _Child = self._child.send((clock.pinned_zone_name(), args))
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="import-writer")
            context = contextvars.copy_context()
            answer = self._pool.submit(context.run, _unless_failed, self._failed, app, current_user_id(), work, args)
        self._waiting.append((answer, done))

    def wait(self) -> None:
        """Block until every chunk handed over is stored; the first error raised here."""
        while self._waiting:
            self._answer_oldest()

    def _answer_oldest(self) -> None:
        future, done = self._waiting.popleft()
        value = future.result()
        if done is not None and value is not SKIPPED:
            done(value)

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
            if self._child is not None:
                self._child.close()


def _unless_failed(failed: threading.Event, app: Any, user_id: int | None, work: Callable[..., Any],
                   args: tuple) -> Any:
    """A thread writer's chunk: ``SKIPPED`` after a failed one (the run raises that error),
    else ``_in_own_session``."""
    if failed.is_set():
        return SKIPPED
    try:
        return _in_own_session(app, user_id, work, args)
    except BaseException:
        failed.set()
        raise


def _in_own_session(app: Any, user_id: int | None, work: Callable[..., Any], args: tuple) -> Any:
    """``work(*args)`` in a new app context (so ``db.session`` is a session of this writer's
    own), acting for ``user_id``; rolled back when it raises."""
    acting_user_id.set(user_id)  # this writer's copy of the run's context only
    with app.app_context():
        try:
            return work(*args)
        except BaseException:
            db.session.rollback()
            raise


class _Child:
    """A child forked from this process that stores the chunks sent to it, in order, with
    ``work`` on connections of its own, and answers each with ("done", value),
    ("error", exception, its traceback as text) or (``SKIPPED``,) after an error. Chunks go
    one way and answers the other (two one-way pipes); the child reads the next chunk while
    it stores one, so sending never waits for the storing."""

    def __init__(self, app: Any, user_id: int | None, work: Callable[..., Any], stall: float) -> None:
        chunks_in, chunks_out = multiprocessing.Pipe(duplex=False)
        answers_in, answers_out = multiprocessing.Pipe(duplex=False)
        engines = list(db.engines.values())
        pid = os.fork()
        if pid == 0:  # the child: never returns to the caller
            status = 1
            try:
                chunks_out.close()
                answers_in.close()
                _part_from_parent(engines)
                _serve(chunks_in, answers_out, app, user_id, work)
                status = 0
            finally:
                os._exit(status)
        chunks_in.close()
        answers_out.close()
        self.pid, self.pipe, self.answers, self.work, self.stall = pid, chunks_out, answers_in, work, stall

    def send(self, args: tuple) -> _Child:
        """Hand a chunk over; ``result`` (on this object, once per chunk, in order) answers."""
        self.pipe.send(args)
        return self

    def result(self) -> Any:
        """The answer about the oldest chunk not yet answered: its value (or ``SKIPPED``),
        or its error raised here."""
        if not self.answers.poll(self.stall):
            os.kill(self.pid, signal.SIGKILL)
            raise RuntimeError(f"The import's writer process did not answer for {self.stall:.0f} s.")
        try:
            answer = self.answers.recv()
        except EOFError:
            raise RuntimeError("The import's writer process ended unexpectedly.") from None
        if answer[0] == "error":
            _kind, error, text = answer
            error.add_note("In the import's writer process:\n" + text)  # pickling drops some errors' notes
            raise error
        return SKIPPED if answer[0] == SKIPPED else answer[1]

    def close(self) -> None:
        """Tell the child to end and wait for it."""
        try:
            self.pipe.send(None)
        except OSError:  # it ended already
            pass
        self.pipe.close()
        self.answers.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): nothing left to wait for
            pass


def _part_from_parent(engines: list[Any]) -> None:
    """In a fresh child: nothing of the parent's that it could share or wait on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if sys.platform == "linux":  # killed when the parent goes, even mid-chunk (uncommitted)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    for engine in engines:  # the parent's pooled connections stay the parent's, untouched
        _PARENTS_POOLS.append(engine.pool)  # never collected here (a driver would warn, or close)
        engine.dispose(close=False)
    gc.freeze()  # the inherited objects: never walked (nor copied) by the collector
    gc.enable()  # the run paused it for itself (bulk.no_cyclic_gc)


#: While a chunk is stored side by side: waits for the chunks before it (``in_turn``), and
#: gives it the session to number its codes in (``numbering``).
_TURN: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("import_turn", default=None)
_NUMBERING: contextvars.ContextVar[Callable[[], Any] | None] = contextvars.ContextVar("import_numbering",
                                                                                      default=None)
#: Chunks a forked writer stores at once against a database server.
SIDE_BY_SIDE = 2
#: Seconds a chunk stored side by side waits for its turn holding its rows' locks; then it
#: rolls back and waits holding nothing (see the module doc).
TURN_WAIT = 10.0


class Skipped(Exception):
    """A chunk stored side by side after one that failed: rolled back, answered ``SKIPPED``."""


class _WaitedTooLong(Exception):
    """A chunk stored side by side waited ``TURN_WAIT`` for its turn: rolled back, stored again."""


def in_turn() -> None:
    """Return once every chunk handed over before this one is committed; ``Skipped`` if one
    of them failed. What must follow the file (the audit chain step, the job's progress, the
    commit) comes after it. Returns at once unless chunks are stored side by side."""
    turn = _TURN.get()
    if turn is not None:
        turn()


@contextmanager
def numbering() -> Iterator[Any]:
    """The session a chunk counts its codes in (``customers.number_customers``): the chunk's
    own, or, stored side by side, a short transaction of its own, committed on leaving and
    taken in chunk order, so the codes follow the file as when stored one by one."""
    own = _NUMBERING.get()
    if own is None:
        yield db.session
        return
    with own() as session:
        yield session


def pass_numbering() -> None:
    """Pass a chunk's numbering turn without numbering anything (a chunk without new rows),
    so the next chunk need not wait for this one's commit to draw its codes."""
    with numbering():
        pass


def _serve(chunks: Any, answers: Any, app: Any, user_id: int | None, work: Callable[..., Any]) -> None:
    """The child's loop: a chunk's zone and arguments in, its answer out, until told to end
    (None) or the parent is gone. After a failed chunk the later ones are not stored (the
    run raises the error and the job resumes after the last committed chunk)."""
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(chunks, inbox), daemon=True).start()
    if db.engine.url.get_backend_name() == "postgresql":
        _serve_side_by_side(inbox, answers, _SideBySide(app, user_id, work))
        return
    failed = False
    while True:
        message = inbox.get()
        if message is None:
            return
        if failed:
            answers.send((SKIPPED,))
            continue
        zone, args = message
        try:
            with clock.zone_pinned_to(zone):
                reply = ("done", _in_own_session(app, user_id, work, args))
        except BaseException as error:  # noqa: BLE001 (the run raises it)
            failed = True
            reply = ("error", _sendable(error), "".join(traceback.format_exception(error)))
        answers.send(reply)


def _serve_side_by_side(inbox: queue.SimpleQueue, answers: Any, chunks: _SideBySide) -> None:
    """``_serve`` storing ``SIDE_BY_SIDE`` chunks at once, each in a thread with its own
    session (``_SideBySide.store``); answers go out in chunk order."""
    with ThreadPoolExecutor(SIDE_BY_SIDE, thread_name_prefix="import-store") as pool:
        number = 0
        while (message := inbox.get()) is not None:
            # the chunk's own copy of this thread's context: the run's audit labels and acting user
            pool.submit(contextvars.copy_context().run, chunks.store, number, message, answers)
            number += 1


class _SideBySide:
    """The order of chunks stored side by side: ``turn`` is the chunk whose answer goes out
    next (every one before it is committed or failed), ``numbered`` the one whose codes are
    counted next; ``failed`` once one has failed."""

    def __init__(self, app: Any, user_id: int | None, work: Callable[..., Any]) -> None:
        self.app, self.user_id, self.work = app, user_id, work
        self.changed = threading.Condition()
        self.turn = self.numbered = 0
        self.failed = False

    def store(self, number: int, message: tuple, answers: Any) -> None:
        """Chunk ``number``: stored, then answered in its turn."""
        zone, args = message
        failed, reply = True, ("error", RuntimeError("The import's writer could not answer."), "")
        try:
            if self.failed:
                raise Skipped
            _TURN.set(lambda: self._wait_turn(number))
            _NUMBERING.set(lambda: self._numbering(number))
            with clock.zone_pinned_to(zone):
                try:
                    value = _in_own_session(self.app, self.user_id, self.work, args)
                except _WaitedTooLong:  # rolled back: its turn awaited holding nothing, stored in it
                    with self.changed:
                        self.changed.wait_for(lambda: self.turn == number)
                    value = _in_own_session(self.app, self.user_id, self.work, args)
            failed, reply = False, ("done", value)
        except Skipped:
            failed, reply = False, (SKIPPED,)
        except BaseException as error:  # noqa: BLE001 (the run raises it)
            reply = ("error", _sendable(error), "".join(traceback.format_exception(error)))
        finally:
            self._answer(number, failed, reply, answers)

    def _answer(self, number: int, failed: bool, reply: tuple, answers: Any) -> None:
        """Chunk ``number``'s answer, sent in its turn; the turn passes to the next chunk."""
        with self.changed:
            try:
                self.changed.wait_for(lambda: self.turn == number)
                if self.failed:  # an earlier chunk failed: this one is rolled back, whatever it met
                    reply = (SKIPPED,)
                self.failed = self.failed or failed
                answers.send(reply)
            except BaseException:
                self.failed = True  # the parent is gone: no later chunk is stored either
                raise
            finally:
                self.numbered = max(self.numbered, number + 1)  # failed before numbering: the next one may
                self.turn = number + 1
                self.changed.notify_all()

    def _wait_turn(self, number: int) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.turn == number, timeout=TURN_WAIT):
                raise _WaitedTooLong
            if self.failed:
                raise Skipped

    @contextmanager
    def _numbering(self, number: int) -> Iterator[Any]:
        with self.changed:  # past it already: stored again in its turn (nothing left to number)
            self.changed.wait_for(lambda: self.numbered >= number)
        try:
            if self.failed:  # no codes for a chunk that will be rolled back
                raise Skipped
            with Session(bind=db.engine) as session:
                yield session
                session.commit()
        finally:
            with self.changed:
                self.numbered = max(self.numbered, number + 1)
                self.changed.notify_all()


def _receive(chunks: Any, inbox: queue.SimpleQueue) -> None:
    """The child's reading thread: every message into ``inbox``; None at the end or when the
    parent is gone (end of file)."""
    while True:
        try:
            message = chunks.recv()
        except (EOFError, OSError):
            message = None
        inbox.put(message)
        if message is None:
            return


def _sendable(error: BaseException) -> BaseException:
    """``error`` if it comes back whole from pickling (``tasks.Cancelled``, ``LeaseLost`` and
    the rules' errors do: the run tells them apart), else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes, just made)
    except Exception:  # noqa: BLE001 (any class whose arguments do not round-trip)
        return RuntimeError("".join(traceback.format_exception_only(error)).strip())
    return error


def _mode() -> str | None:
    """``CRM_IMPORT_OVERLAP``: "auto" ("process" when this process may fork, below; else a
    thread for a database server and nothing for SQLite, where a thread gains nothing),
    "process" (else a thread), "thread", or off ("0"); "1" is "process"."""
    setting = str(current_app.config.get("CRM_IMPORT_OVERLAP", "auto")).strip().lower()
    if setting in _OFF:
        return None
    if setting != "thread" and _may_fork():
        return "process"
    if setting == "auto" and db.engine.url.get_backend_name() == "sqlite":
        return None
    return "thread"


def _may_fork() -> bool:
    """``fork`` exists and no other thread runs here (see the module doc: what another
    thread holds at the fork stays held in the child)."""
    return hasattr(os, "fork") and threading.active_count() == 1


def _second_connection_sees() -> bool:
    """Whether another connection sees the run's database (not an in-memory SQLite one)."""
    url = db.engine.url
    return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))
