"""Stored duplicate clusters (issue 12): a background scan over ALL live customers, kept
current by incremental updates, read page by page in the viewer's scope.

The rule is ``app.services.dedup`` (``_components``): edges are decided pair by pair, so
recomputing the clusters a change touches gives what a full scan would.

* **Scan** (``start_scan``/``run_scan``): one at a time (``DuplicateState.scan_id``), in the
  background pool, progress on its ``DuplicateScan`` row; it replaces the stored clusters
  and the blocking keys (``DuplicateKey``) in chunks of ``WRITE_CHUNK`` rows, one short
  transaction each (a save waits for one chunk, not the whole replace). A job delivered
  twice runs once (``claim_scan``: a conditional UPDATE of the scan row).
* **Incremental** (``process_pending``): every flush that changes a customer's matching
  values (name, contact, phone, credit code, archived), a contact's phone, primary flag or
  customer, or a dismissal, writes the customers to ``DuplicateDirty`` in the same
  transaction (``_mark_dirty``: forms, API, import updates, sync, merge, archive alike).
  After the commit, a few are applied at once in a short transaction of their own; more
  (an import chunk) go to the background pool. Customers inserted in bulk (no flush) are
  found by id above ``DuplicateState.indexed_upto`` (``customers_added`` marks them
  explicitly). A change touches: the customer, the customers sharing a key with it (index
  lookups: credit code, phone, name + contact, fuzzy-name segments) and the clusters all of
  these were in; the union is closed (no edge leaves it), so recomputing it is exact.
* **Pages** (``clusters_in_scope``): a cluster is listed to a viewer when at least two of
  its live members are in their scope, with only those members; sorted and paged in SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, event, func, insert, inspect, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.clock import utc_now
from app.extensions import db
from app.models.customers import Customer, CustomerAlias
from app.models.duplicates import (
    SCAN_DONE,
    SCAN_FAILED,
    SCAN_RUNNING,
    DismissedPair,
    DuplicateCluster,
    DuplicateDirty,
    DuplicateKey,
    DuplicateMember,
    DuplicateScan,
    DuplicateState,
)
from app.models.sales import Contact
from app.security.data_scope import scope_clause, visible_owner_ids
from app.services import bulk, dedup
from app.services.dedup import EXACT, Cluster, Facts, Pair

log = logging.getLogger(__name__)

#: Changed customers applied right after the commit, in the request; more go to the pool.
INLINE_LIMIT = 200
#: Customers recomputed per transaction by the incremental step (short write locks).
BATCH = 250
#: A running scan that has not reported for this long died with its process.
STALE_SCAN = timedelta(minutes=15)
_CUSTOMER_FIELDS = ("name", "contact_name", "contact_phone", "credit_code", "archived_at", "owner_id")
_CONTACT_FIELDS = ("phone", "is_primary", "customer_id", "customer")
_bulk_customers: ContextVar[bool] = ContextVar("dedup_bulk_customers", default=False)
#: When this process last queued ``process_pending`` (None: not queued); a queued job that
#: never ran (a pool shut down) does not block the next one for longer than ``STALE_QUEUE``.
_queued: dict[str, Any] = {"at": None}
STALE_QUEUE = timedelta(minutes=5)


class ScanRunning(Exception):
    """A scan is already running (``scan``): a second one is refused."""

    def __init__(self, scan: DuplicateScan) -> None:
        super().__init__(scan.id)
        self.scan = scan


# --- marking changed customers (same transaction as the change) ---------------------------

def _history_ids(obj: Any, names: Iterable[str]) -> set[int]:
    """Customer ids an object referred to before this flush (a contact moved elsewhere)."""
    found = set()
    state = inspect(obj)
    for name in names:
        for old in state.attrs[name].history.deleted or ():
            found.add(old if isinstance(old, int) else getattr(old, "id", None))
    return {cid for cid in found if cid}


def _changed_customers(session: Session) -> set[int]:
    """Customers whose clusters this flush may change."""
    ids: set[int] = set()
    for obj in session.new:
        if isinstance(obj, Customer | Contact):
            ids.add(obj.id if isinstance(obj, Customer) else obj.customer_id)
        elif isinstance(obj, DismissedPair):
            ids |= {obj.customer_low_id, obj.customer_high_id}
        elif isinstance(obj, CustomerAlias):
            ids |= {obj.customer_id, obj.merged_from_id}
    for obj in session.deleted:
        if isinstance(obj, Customer):
            ids.add(obj.id)
        elif isinstance(obj, Contact):
            ids |= {obj.customer_id} | _history_ids(obj, ("customer_id", "customer"))
        elif isinstance(obj, DismissedPair):
            ids |= {obj.customer_low_id, obj.customer_high_id}
    for obj in session.dirty:
        if isinstance(obj, Customer):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in _CUSTOMER_FIELDS):
                ids.add(obj.id)
        elif isinstance(obj, Contact):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in _CONTACT_FIELDS):
                ids |= {obj.customer_id} | _history_ids(obj, ("customer_id", "customer"))
    ids.discard(None)
    return ids


@event.listens_for(Session, "after_flush")
def _mark_dirty(session: Session, flush_context: Any) -> None:
    """Record the customers this flush changed, in its own transaction (so a rollback
    forgets them and a crash after the commit does not)."""
    ids = _changed_customers(session)
    if ids:
        mark(session, ids)


def mark(session: Session, ids: Iterable[int]) -> None:
    """Mark customers changed (their clusters are recomputed after the commit)."""
    rows = [{"customer_id": cid} for cid in sorted(set(ids))]
    if rows:
        session.connection().execute(insert(DuplicateDirty.__table__), rows)
        session.info["dedup_dirty"] = session.info.get("dedup_dirty", 0) + len(rows)


def customers_added(ids: Iterable[int]) -> None:
    """For bulk inserts that bypass the ORM flush (``customers.insert_customers``): mark the
    new customers like a flush would. Optional: ``process_pending`` also finds new ids."""
    mark(db.session, ids)


@event.listens_for(Engine, "before_cursor_execute")
def _spot_bulk_customers(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                         executemany: bool) -> None:
    """A bulk INSERT of customers straight through the driver (imports, sync: no flush, no
    compiled statement) is noted for after the commit; ORM inserts are marked by the flush."""
    if statement.startswith(("INSERT INTO customer ", 'INSERT INTO "customer" ', "COPY customer ", 'COPY "customer" ')) \
            and getattr(context, "compiled", None) is None:
        _bulk_customers.set(True)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    changed = session.info.pop("dedup_dirty", 0)
    added = _bulk_customers.get()
    if not (changed or added) or session.info.get("dedup_writer"):
        return
    _bulk_customers.set(False)
    try:
        if changed <= INLINE_LIMIT and not added:
            process_pending(max_batches=1)
        else:
            queue_pending()
    except Exception:  # the user's change is committed; the next step or page load catches up
        log.exception("Updating duplicate clusters after a commit failed")


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop("dedup_dirty", None)


# --- the state row, the writers' lock --------------------------------------------------------

def _writer() -> Session:
    session = Session(db.engine)
    session.info["dedup_writer"] = True
    return session


def _lock(session: Session) -> DuplicateState:
    """The state row, locked for this transaction (created when missing)."""
    table = DuplicateState.__table__
    done = session.execute(update(table).where(table.c.id == 1).values(changed_at=utc_now())).rowcount
    if not done:
        session.execute(insert(table).values(id=1, indexed_upto=0, changed_at=utc_now()))
    return session.execute(select(DuplicateState).where(DuplicateState.id == 1)
                           .execution_options(populate_existing=True)).scalar_one()


def _running(session: Session, state: DuplicateState) -> DuplicateScan | None:
    """The running scan, unless it stopped reporting (its process died: marked failed)."""
    if state.scan_id is None:
        return None
    scan = session.get(DuplicateScan, state.scan_id)
    if scan is not None and scan.status == SCAN_RUNNING and utc_now() - scan.updated_at < STALE_SCAN:
        return scan
    if scan is not None and scan.status == SCAN_RUNNING:
        scan.status, scan.error, scan.finished_at = SCAN_FAILED, "interrupted", utc_now()
    state.scan_id = None
    return None


# --- incremental ------------------------------------------------------------------------------

def queue_pending() -> None:
    """Run ``process_pending`` in the background pool (once at a time per process)."""
    from app.services import background

    queued = _queued["at"]
    if queued is not None and utc_now() - queued < STALE_QUEUE:
        return
    _queued["at"] = utc_now()
    background.submit(_pending_job)


#: Changed or new customers past which one full scan is cheaper than the incremental steps
#: (a large import): the queued job rescans instead.
RESCAN_BACKLOG = 5000


def _pending_job() -> None:
    _queued["at"] = None  # changes committed from now on queue a new run
    with _writer() as session:
        state = session.get(DuplicateState, 1)
        backlog = 0 if state is None or state.last_scan_id is None else (
            (session.scalar(select(func.count(DuplicateDirty.id))) or 0)
            + (session.scalar(select(func.count(Customer.id)).where(Customer.id > state.indexed_upto)) or 0))
    if backlog > RESCAN_BACKLOG:
        try:
            start_scan(None)
        except ScanRunning:
            pass  # the running scan applies the rest when it is done
        return
    process_pending()


def process_pending(max_batches: int | None = None) -> int:
    """Apply the marked and the newly inserted customers to the stored clusters, ``BATCH``
    per short transaction; returns how many were applied. Does nothing before the first
    scan or while one runs (the scan, when done, calls this)."""
    applied, batches = 0, 0
    while max_batches is None or batches < max_batches:
        with _writer() as session:
            state = session.get(DuplicateState, 1)
            if state is None or state.last_scan_id is None or state.scan_id is not None:
                return applied
            state = _lock(session)
            if state.last_scan_id is None or _running(session, state) is not None:
                session.commit()
                return applied
            dirty = session.execute(select(DuplicateDirty.id, DuplicateDirty.customer_id)
                                    .order_by(DuplicateDirty.id).limit(BATCH)).all()
            new = session.scalars(select(Customer.id).where(Customer.id > state.indexed_upto)
                                  .order_by(Customer.id).limit(BATCH)).all()
            if not dirty and not new:
                session.commit()
                return applied
            touched = {cid for _, cid in dirty} | set(new)
            recompute(session, touched)
            for chunk in bulk.id_chunks(row_id for row_id, _ in dirty):
                session.execute(delete(DuplicateDirty).where(DuplicateDirty.id.in_(chunk)))
            if new:
                state.indexed_upto = max(new)
            session.commit()
            applied += len(touched)
            batches += 1
    return applied


def _candidates(session: Session, facts: dict[int, Facts], keys: dict[int, set[int]]) -> set[int]:
    """Customers sharing a key with these: credit code, any phone, a stored blocking key."""
    found: set[int] = set()
    credits = {f.credit_code for f in facts.values() if f.credit_code}
    phones = {p for f in facts.values() for p in f.phones}
    hashed = {k for ks in keys.values() for k in ks}
    live = Customer.archived_at.is_(None)
    for chunk in bulk.id_chunks(credits):
        found.update(session.scalars(select(Customer.id).where(Customer.credit_code.in_(chunk), live)))
    for chunk in bulk.id_chunks(phones):
        found.update(session.scalars(select(Customer.id).where(Customer.contact_phone.in_(chunk), live)))
        found.update(session.scalars(select(Contact.customer_id).where(
            Contact.phone.in_(chunk), Contact.is_primary.is_(False))))
    for chunk in bulk.id_chunks(hashed):
        found.update(session.scalars(select(DuplicateKey.customer_id).where(DuplicateKey.key.in_(chunk))))
    return found


def _clusters_of(session: Session, ids: set[int]) -> tuple[set[int], set[int]]:
    """(cluster ids, all their members) of the clusters these customers are in."""
    clusters: set[int] = set()
    for chunk in bulk.id_chunks(ids):
        clusters.update(session.scalars(select(DuplicateMember.cluster_id).where(
            DuplicateMember.customer_id.in_(chunk))))
    members: set[int] = set()
    for chunk in bulk.id_chunks(clusters):
        members.update(session.scalars(select(DuplicateMember.customer_id).where(
            DuplicateMember.cluster_id.in_(chunk))))
    return clusters, members


def _dismissed_within(session: Session, ids: set[int]) -> set[Pair]:
    pairs: set[Pair] = set()
    for chunk in bulk.id_chunks(ids):
        for low, high in session.execute(select(DismissedPair.customer_low_id, DismissedPair.customer_high_id)
                                         .where(DismissedPair.customer_low_id.in_(chunk))):
            if high in ids:
                pairs.add((low, high))
    return pairs


def recompute(session: Session, changed: set[int]) -> None:
    """Re-evaluate ``changed`` customers: store their keys, then recompute the clusters of
    them, their candidates and the clusters all of these were in (a closed set)."""
    facts = dedup._load_facts(session, changed)
    keys = {cid: dedup.blocking_keys(f) for cid, f in facts.items()}
    for chunk in bulk.id_chunks(changed):
        session.execute(delete(DuplicateKey).where(DuplicateKey.customer_id.in_(chunk)))
    bulk.insert_rows(session.connection(), DuplicateKey.__table__,
                     [{"key": k, "customer_id": cid} for cid, ks in keys.items() for k in sorted(ks)])
    touched = set(changed) | _candidates(session, facts, keys)
    old_clusters, members = _clusters_of(session, touched)
    scope = touched | members
    everyone = dedup._load_facts(session, scope)
    clusters = dedup._components(everyone, _dismissed_within(session, set(everyone)))
    for chunk in bulk.id_chunks(old_clusters):
        session.execute(delete(DuplicateMember).where(DuplicateMember.cluster_id.in_(chunk)))
        session.execute(delete(DuplicateCluster).where(DuplicateCluster.id.in_(chunk)))
    for chunk in bulk.id_chunks(scope):  # a member of no stored cluster, to be safe
        session.execute(delete(DuplicateMember).where(DuplicateMember.customer_id.in_(chunk)))
    _store(session, clusters, everyone)


def _cluster_row(c: Cluster) -> dict[str, Any]:
    return {"id": c.ids[0], "size": len(c.ids), "rank": len(c.rules & EXACT), "score": c.score,
            "order_key": (len(EXACT) - len(c.rules & EXACT)) * 1000 + 100 - c.score,
            "rules": ",".join(sorted(c.rules))}


def _member_row(c: Cluster, cid: int, facts: dict[int, Facts]) -> dict[str, Any]:
    return {"customer_id": cid, "cluster_id": c.ids[0], "rules": ",".join(sorted(c.member_rules.get(cid, ()))),
            "owner_id": facts[cid].owner_id}


def _store(session: Session, clusters: list[Cluster], facts: dict[int, Facts]) -> None:
    bulk.insert_rows(session.connection(), DuplicateCluster.__table__, [_cluster_row(c) for c in clusters])
    bulk.insert_rows(session.connection(), DuplicateMember.__table__,
                     [_member_row(c, cid, facts) for c in clusters for cid in c.ids])


# --- the full scan ------------------------------------------------------------------------------

def start_scan(user: Any) -> DuplicateScan:
    """Start a full scan in the background (``run_scan``); returns its row. Raises
    ``ScanRunning`` when one runs already (a second click does nothing)."""
    from app.services import background

    with _writer() as session:
        state = _lock(session)
        running = _running(session, state)
        if running is not None:
            session.commit()
            raise ScanRunning(running)
        scan = DuplicateScan(status=SCAN_RUNNING, requested_by_id=getattr(user, "id", None), total=100)
        session.add(scan)
        session.flush()
        state.scan_id = scan.id
        session.commit()
        scan_id = scan.id
        session.expunge(scan)
    background.submit(run_scan, scan_id)
    return scan


def _progress(session: Session, scan_id: int, percent: int, **values: Any) -> None:
    session.execute(update(DuplicateScan).where(DuplicateScan.id == scan_id).values(
        processed=percent, updated_at=utc_now(), **values))
    session.commit()


#: Stored rows the scan writes (or deletes) per transaction: a customer saved meanwhile
#: waits for one chunk at most, never for the whole replace (SQLite has one writer).
WRITE_CHUNK = 5000


class ScanTakenOver(Exception):
    """The scan is no longer the running one (marked failed as stale, or replaced)."""


def claim_scan(session: Session, scan_id: int) -> bool:
    """Take scan ``scan_id`` for this worker, in one conditional UPDATE: True for the first
    delivery of the job; False for a second delivery of the same scan (a task queue may
    deliver twice) or a scan no longer running. A claimed scan that stopped reporting for
    ``STALE_SCAN`` (its worker died) may be claimed again."""
    table = DuplicateScan.__table__
    claimed = session.execute(update(table).where(
        table.c.id == scan_id, table.c.status == SCAN_RUNNING,
        or_(table.c.processed == 0, table.c.updated_at < utc_now() - STALE_SCAN),
    ).values(processed=1, updated_at=utc_now())).rowcount
    session.commit()
    return claimed == 1


def _step(session: Session, scan_id: int, percent: int) -> None:
    """Commit one chunk, after checking the scan is still the running one (progress noted)."""
    if session.scalar(select(DuplicateState.scan_id).where(DuplicateState.id == 1)) != scan_id:
        session.rollback()
        raise ScanTakenOver(scan_id)
    _progress(session, scan_id, percent)


def _key_chunks(facts: dict[int, Facts]) -> Iterator[list[dict[str, int]]]:
    """The blocking keys of every customer, about ``WRITE_CHUNK`` rows at a time, computed as
    they are written (a million customers' keys are never all in memory at once)."""
    rows: list[dict[str, int]] = []
    for cid, f in facts.items():
        rows.extend({"key": k, "customer_id": cid} for k in dedup.blocking_keys(f))
        if len(rows) >= WRITE_CHUNK:
            yield rows
            rows = []
    if rows:
        yield rows


def _replace_stored(session: Session, scan_id: int, clusters: list[Cluster], facts: dict[int, Facts]) -> None:
    """Replace the stored clusters, members and keys, ``WRITE_CHUNK`` rows per transaction
    (progress 80 -> 99). Meanwhile pages show the scan running and the incremental step waits
    (``DuplicateState.scan_id``); a failure leaves no scan to build on (``_fail``)."""
    top = max(session.scalar(select(func.max(Customer.id))) or 0,
              session.scalar(select(func.max(DuplicateMember.customer_id))) or 0,
              session.scalar(select(func.max(DuplicateKey.customer_id))) or 0)
    ranges = [(low, low + WRITE_CHUNK) for low in range(0, top + 1, WRITE_CHUNK)]
    members = sum(len(c.ids) for c in clusters)
    steps = len(ranges) * 3 + (len(facts) + len(clusters) + members) // WRITE_CHUNK + 3
    done = 0
    for column in (DuplicateMember.customer_id, DuplicateCluster.id, DuplicateKey.customer_id):
        for low, high in ranges:
            session.execute(delete(column.class_).where(column >= low, column < high))
            done += 1
            _step(session, scan_id, 80 + 19 * done // steps)
    cluster_rows = (_cluster_row(c) for c in clusters)
    member_rows = (_member_row(c, cid, facts) for c in clusters for cid in c.ids)
    for table, chunks in ((DuplicateKey.__table__, _key_chunks(facts)),
                          (DuplicateCluster.__table__, _batched(cluster_rows)),
                          (DuplicateMember.__table__, _batched(member_rows))):
        for rows in chunks:
            bulk.insert_rows(session.connection(), table, rows)
            done += 1
            _step(session, scan_id, 80 + 19 * min(done, steps) // steps)


def _batched(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == WRITE_CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def run_scan(scan_id: int) -> None:
    """The scan job: read every live customer, compute the clusters, replace the stored ones
    and the keys in chunks (``_replace_stored``); then apply what changed meanwhile.

    Runs once per scan (``claim_scan``): a second delivery of the job returns at once."""
    with _writer() as session:
        if not claim_scan(session, scan_id):
            log.info("Duplicate scan %s already claimed or no longer running: not run again", scan_id)
            return
        try:
            seen = session.scalars(select(DuplicateDirty.id)).all()
            upto = session.scalar(select(func.max(Customer.id))) or 0
            facts = dedup._load_facts(session, None)
            dismissed = {(lo, hi) for lo, hi in session.execute(
                select(DismissedPair.customer_low_id, DismissedPair.customer_high_id))}
            session.commit()
            _progress(session, scan_id, 10, customers=len(facts))
            _progress(session, scan_id, 30)
            clusters = dedup._components(facts, dismissed)
            _progress(session, scan_id, 80, clusters=len(clusters))
            _replace_stored(session, scan_id, clusters, facts)
            state = _lock(session)
            if state.scan_id != scan_id:
                raise ScanTakenOver(scan_id)
            for chunk in bulk.id_chunks(seen):
                session.execute(delete(DuplicateDirty).where(DuplicateDirty.id.in_(chunk)))
            state.scan_id, state.last_scan_id, state.indexed_upto = None, scan_id, upto
            session.execute(update(DuplicateScan).where(DuplicateScan.id == scan_id).values(
                status=SCAN_DONE, processed=100, finished_at=utc_now(), updated_at=utc_now()))
            session.commit()
        except Exception as exc:
            _fail(session, scan_id, exc)
            return
    process_pending()


def _fail(session: Session, scan_id: int, exc: Exception) -> None:
    """Mark the scan failed. When it was the running scan its chunks may have replaced part
    of the stored clusters: no finished scan is left to build on, so the next page load
    starts a new one (``refresh``)."""
    session.rollback()
    log.exception("Duplicate scan %s failed", scan_id)
    state = _lock(session)
    if state.scan_id == scan_id:
        state.scan_id, state.last_scan_id = None, None
    session.execute(update(DuplicateScan).where(DuplicateScan.id == scan_id).values(
        status=SCAN_FAILED, error=str(exc)[:500], finished_at=utc_now(), updated_at=utc_now()))
    session.commit()


# --- what the page reads ---------------------------------------------------------------------------

@dataclass
class Status:
    """The scan state as the page shows it."""

    running: DuplicateScan | None = None
    last: DuplicateScan | None = None
    pending: int = 0
    started: bool = False  # this page load started the first scan


def refresh(user: Any) -> Status:
    """On a page load: start the first scan when none exists yet; otherwise apply pending
    changes (at most ``INLINE_LIMIT`` here, more in the background). Bounded work."""
    state = db.session.get(DuplicateState, 1)
    if state is None or (state.last_scan_id is None and state.scan_id is None):
        db.session.commit()  # end this request's read snapshot: what the writers do shows below
        try:
            start_scan(user)
        except ScanRunning:
            pass
        return status(started=True)
    if state.scan_id is None:
        dirty = db.session.scalar(select(func.count(DuplicateDirty.id))) or 0
        new = db.session.scalar(select(func.count(Customer.id)).where(Customer.id > state.indexed_upto)) or 0
        if dirty + new:
            db.session.commit()  # end this request's read snapshot: what the writers do shows below
            if dirty + new <= INLINE_LIMIT:
                process_pending()
            else:
                queue_pending()
    return status()


def status(started: bool = False) -> Status:
    """The running scan (with progress), the last finished one, changes not applied yet."""
    state = db.session.get(DuplicateState, 1)
    found = Status(started=started)
    if state is None:
        return found
    if state.scan_id is not None:
        found.running = db.session.get(DuplicateScan, state.scan_id)
    if state.last_scan_id is not None:
        found.last = db.session.get(DuplicateScan, state.last_scan_id)
    found.pending = db.session.scalar(select(func.count(DuplicateDirty.id))) or 0
    return found


@dataclass
class ShownCluster:
    """A stored cluster as one viewer sees it: only their members (``ids``), the rules of
    those members' edges, how many members are outside their scope (a count, no names)."""

    id: int
    ids: list[int]
    rules: set[str]
    score: int
    hidden: int
    dismissed: list[Pair] = field(default_factory=list)


def clusters_in_scope(user: Any, offset: int = 0, limit: int = 100) -> tuple[list[ShownCluster], int]:
    """One page of the stored clusters with at least two members in ``user``'s scope
    (sorted: more exact rules, best score, lowest id) and how many there are in all.

    Counting uses the members' stored owners (``visible_owner_ids``, index-only); the
    members shown are then loaded through ``scope_clause`` on the customers themselves."""
    owners = visible_owner_ids(user)
    order = (DuplicateCluster.order_key, DuplicateCluster.id)
    if owners is None:  # every member is visible: every stored cluster has two or more
        total = db.session.scalar(select(func.count()).select_from(DuplicateCluster)) or 0
        rows = list(db.session.scalars(select(DuplicateCluster).order_by(*order).offset(offset).limit(limit)))
    else:
        visible = (select(DuplicateMember.cluster_id.label("cluster_id"), func.count().label("seen"))
                   .where(DuplicateMember.owner_id.in_(sorted(owners) or [-1]))
                   .group_by(DuplicateMember.cluster_id).having(func.count() >= 2).subquery())
        total = db.session.scalar(select(func.count()).select_from(visible)) or 0
        rows = list(db.session.scalars(
            select(DuplicateCluster).join(visible, visible.c.cluster_id == DuplicateCluster.id)
            .order_by(*order).offset(offset).limit(limit)))
    if not rows:
        return [], total
    members: dict[int, list[tuple[int, str]]] = {}
    for cluster_id, cid, rules in db.session.execute(
            select(DuplicateMember.cluster_id, DuplicateMember.customer_id, DuplicateMember.rules)
            .join(Customer, Customer.id == DuplicateMember.customer_id)
            .where(DuplicateMember.cluster_id.in_([c.id for c in rows]), Customer.archived_at.is_(None),
                   scope_clause(user, Customer))
            .order_by(DuplicateMember.customer_id)):
        members.setdefault(cluster_id, []).append((cid, rules))
    shown = []
    for cluster in rows:
        ids = [cid for cid, _ in members.get(cluster.id, [])]
        if len(ids) < 2:  # an archive or a new owner not applied yet: not two to show
            continue
        rules = {rule for _, text in members.get(cluster.id, []) for rule in text.split(",") if rule}
        shown.append(ShownCluster(cluster.id, ids, rules, cluster.score, max(cluster.size - len(ids), 0)))
    inside = dedup.dismissed_among(cid for c in shown for cid in c.ids)
    for c in shown:
        c.dismissed = [p.pair for p in inside if p.customer_low_id in c.ids and p.customer_high_id in c.ids]
    return shown, total
