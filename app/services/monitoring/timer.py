"""The request timer (000 §三(二): pages ≤ 3 s, alert above 5 s).

Every request (static files and ``/health`` skipped) is timed in milliseconds and added
to this process's table in memory: per page (its URL rule, ``page_of``) and UTC minute,
count, total, max and counts per upper bound of ``BOUNDS``. Nothing is read or written in
the request path except ``flush``, at most once a minute (and at exit): one short
transaction on its own connection that adds the table to ``endpoint_timing`` (several
processes add to the same minute). A page slower than ``slow_page_ms`` is written to
``slow_request`` (path without its query string); above ``alert_page_ms`` the admins are
notified, at most once per endpoint per hour. A database error never fails a page.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, g, request
from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from app.clock import as_utc, utc_now
from app.extensions import db
from app.models.operations import EndpointTiming, SlowRequest
from app.services.monitoring import config

log = logging.getLogger(__name__)
#: Upper bounds of the histogram's buckets in ms; a last bucket ("inf") holds the rest.
BOUNDS = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000)
INF = "inf"
#: The table is flushed at most this often.
FLUSH_EVERY = timedelta(seconds=60)
#: An endpoint alerts the admins at most this often (per process; the notification's
#: occasion makes it once per endpoint and clock hour across processes).
ALERT_EVERY = timedelta(hours=1)
SKIPPED_BLUEPRINTS = frozenset({"health"})


def bucket_of(ms: int) -> str:
    """The bucket key ("50", … "30000", "inf") of a duration in ms: its smallest bound ≥ ms."""
    for bound in BOUNDS:
        if ms <= bound:
            return str(bound)
    return INF


@dataclass
class Cell:
    """One endpoint's figures in one minute."""

    count: int = 0
    total_ms: int = 0
    max_ms: int = 0
    buckets: dict[str, int] = field(default_factory=dict)

    def add(self, ms: int) -> None:
        self.count += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)
        key = bucket_of(ms)
        self.buckets[key] = self.buckets.get(key, 0) + 1


class Timings:
    """This process's figures not flushed yet: (endpoint, UTC minute) -> ``Cell``."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, datetime], Cell] = {}
        self.lock = threading.Lock()
        self.flushed_at: datetime | None = None
        self.alerted: dict[str, datetime] = {}
        #: (slow_page_ms, alert_page_ms), read again at every flush (no query per request).
        self.limits: tuple[int, int] | None = None

    def record(self, endpoint: str, ms: int, at: datetime | None = None) -> None:
        """Add one request of ``endpoint`` that took ``ms`` milliseconds at ``at`` (UTC; now)."""
        minute = (as_utc(at) or utc_now()).replace(second=0, microsecond=0)
        with self.lock:
            self.cells.setdefault((endpoint[:128], minute), Cell()).add(max(0, int(ms)))

    def take(self) -> dict[tuple[str, datetime], Cell]:
        with self.lock:
            cells, self.cells = self.cells, {}
        return cells

    def due(self, now: datetime) -> bool:
        return bool(self.cells) and (self.flushed_at is None or now - self.flushed_at >= FLUSH_EVERY)


TIMINGS = Timings()


def record(endpoint: str, ms: int, at: datetime | None = None) -> None:
    """Public entry point (tests, scripted loads): one request of ``endpoint`` took ``ms`` ms."""
    TIMINGS.record(endpoint, ms, at)


def refresh_limits(timings: Timings | None = None) -> tuple[int, int]:
    """Read the thresholds (``slow_page_ms``, ``alert_page_ms``) again; returns them."""
    timings = timings or TIMINGS
    timings.limits = (int(config.get("slow_page_ms", 3000)), int(config.get("alert_page_ms", 5000)))
    return timings.limits


def limits() -> tuple[int, int]:
    """The thresholds in ms as last read (read now the first time)."""
    return TIMINGS.limits or refresh_limits()


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _add_cell(conn: Any, endpoint: str, minute: datetime, cell: Cell) -> None:
    table = EndpointTiming.__table__
    conn.execute(_insert(conn.dialect.name)(table).values(
        endpoint=endpoint, minute=minute, count=0, total_ms=0, max_ms=0, buckets="{}").on_conflict_do_nothing(
        index_elements=["endpoint", "minute"]))
    row = conn.execute(select(table.c.id, table.c.max_ms, table.c.buckets).where(
        table.c.endpoint == endpoint, table.c.minute == minute).with_for_update()).one()
    buckets = json.loads(row.buckets or "{}")
    for key, n in cell.buckets.items():
        buckets[key] = buckets.get(key, 0) + n
    conn.execute(update(table).where(table.c.id == row.id).values(
        count=table.c.count + cell.count, total_ms=table.c.total_ms + cell.total_ms,
        max_ms=max(row.max_ms, cell.max_ms), buckets=json.dumps(buckets, sort_keys=True)))


def flush(timings: Timings | None = None) -> int:
    """Add the unflushed figures to ``endpoint_timing`` in one transaction on its own
    connection (needs an app context). Returns the number of (endpoint, minute) cells
    written; 0 when the database refused (the figures are dropped, logged)."""
    from app.services.backups import maintenance

    timings = timings or TIMINGS
    if maintenance.active():  # never write into a database a restore is swapping: keep them
        return 0
    cells = timings.take()
    timings.flushed_at = utc_now()
    refresh_limits(timings)
    if not cells:
        return 0
    try:
        with db.engine.begin() as conn:
            for (endpoint, minute), cell in sorted(cells.items(), key=lambda item: (item[0][0], item[0][1])):
                _add_cell(conn, endpoint, minute, cell)
    except SQLAlchemyError:
        log.warning("Request timings not stored", exc_info=True)
        return 0
    return len(cells)


def slow(endpoint: str, ms: int, *, method: str = "GET", path: str = "", status: int | None = None,
         user_id: int | None = None, at: datetime | None = None) -> bool:
    """A page over ``slow_page_ms`` (default 3000): written to ``slow_request`` on its own
    connection; over ``alert_page_ms`` (5000) the admins are told, at most once per endpoint
    per hour. Returns whether the admins were alerted. Never raises for a database error."""
    at = as_utc(at) or utc_now()
    slow_ms, alert_ms = limits()
    if ms <= slow_ms:
        return False
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(SlowRequest.__table__).values(
                at=at, endpoint=endpoint[:128], method=method[:8], path=path.split("?", 1)[0][:512], status=status,
                ms=int(ms), user_id=user_id))
    except SQLAlchemyError:
        log.warning("Slow request not stored", exc_info=True)
    if ms <= alert_ms:
        return False
    last = TIMINGS.alerted.get(endpoint)
    if last is not None and at - last < ALERT_EVERY:
        return False
    TIMINGS.alerted[endpoint] = at
    return _alert(endpoint, ms, path.split("?", 1)[0][:200], at)


def _alert(endpoint: str, ms: int, path: str, at: datetime) -> bool:
    from app.security.rights import admin_ids
    from app.services import notifications

    with current_app.app_context():  # a session of its own: never the request's
        try:
            written = notifications.notify(config.SLOW_PAGE.key, admin_ids(),
                                           params={"ms": int(ms), "endpoint": endpoint, "path": path},
                                           occasion=f"slow_page:{endpoint}:{at:%Y%m%d%H}"[:120])
            db.session.commit()
            return bool(written)
        except SQLAlchemyError:
            db.session.rollback()
            log.warning("Slow page alert not sent", exc_info=True)
            return False
        finally:
            db.session.remove()


def _skipped() -> bool:
    endpoint = request.endpoint or ""
    return (not endpoint or endpoint == "static" or endpoint.endswith(".static")
            or request.blueprint in SKIPPED_BLUEPRINTS)


def page_of() -> str:
    """What a timing is kept under: the request's URL rule ("/customers/show/<pk>"), which
    an admin recognises from the address bar; the endpoint name when no rule matched."""
    rule = request.url_rule
    return rule.rule if rule is not None else (request.endpoint or "")


def _before() -> None:
    g._crm_timer = time.perf_counter()


def _after(response: Any) -> Any:
    started = g.pop("_crm_timer", None)
    if started is None or _skipped():
        return response
    ms = int((time.perf_counter() - started) * 1000)
    try:
        page = page_of()
        TIMINGS.record(page, ms)
        if ms > limits()[0]:
            user = getattr(g, "user", None)
            slow(page, ms, method=request.method, path=request.path, status=response.status_code,
                 user_id=getattr(user, "id", None))
        if TIMINGS.due(utc_now()):
            flush_soon()
    except Exception:  # the timer never fails a page
        log.warning("Request timer failed", exc_info=True)
    return response


_FLUSHING = threading.Lock()


def flush_soon() -> None:
    """Flush without making the request wait: on a short-lived thread of its own (a flush
    of a busy minute takes ~150 ms: ``bench.request_timer``), one at a time per process;
    inline when ``CRM_TIMER_FLUSH_INLINE`` is set (tests: nothing left writing after them)."""
    app = current_app._get_current_object()
    if app.config.get("CRM_TIMER_FLUSH_INLINE"):
        flush()
        return
    if not _FLUSHING.acquire(blocking=False):
        return  # a flush is under way: these figures go with the next one
    TIMINGS.flushed_at = utc_now()  # no second thread for the requests that follow

    def work() -> None:
        try:
            with app.app_context():
                flush()
        except Exception:  # a thread's failure is logged, never raised anywhere
            log.warning("Request timings not flushed", exc_info=True)
        finally:
            _FLUSHING.release()

    threading.Thread(target=work, name="crm-timer-flush", daemon=True).start()


def install(app: Flask) -> None:
    """Time every request of ``app`` and flush at exit."""
    app.before_request(_before)
    app.after_request(_after)

    def _at_exit() -> None:
        try:
            with app.app_context():
                flush()
        except Exception:
            pass

    atexit.register(_at_exit)
