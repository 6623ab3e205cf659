"""Planning a sync run: read the sheet, check the guards, and work out, row by row, what
each side needs (the three-way merge per field, new rows, deletes, status cells).
Nothing is written here; ``sync.runner`` applies the plan in a fixed order."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import Text, cast, select

from app.extensions import db
from app.models.sync import ARCHIVE, PULL, PUSH, RESTORE, SyncConflict, SyncRow, SyncTarget
from app.security.rights import user_may
from app.services import erasure
from app.services.importing import columns
from sync import merge
from sync.backends import SheetData, SheetWrite
from sync.fields import FieldCodec, mask_phones_in
from sync.records import Alias, Records, json_text, records_for

STATUS_HEADER = "同步状态 / Sync status"
#: The key of an agreed row whose record was created from a sheet row that has not received its
#: code yet (the run stopped after the CRM commit): the next run finds the row by its content.
PENDING = ""


#: What a cell value the rules cannot even read raises while its row is planned (that row is refused).
ROW_ERRORS = (ValueError, LookupError, ArithmeticError, TypeError)


class GuardStop(Exception):
    """The run stopped before writing anything; the message says what to fix."""


@dataclass
class Plan:
    data: SheetData
    mapping: dict[str, str]
    key_col: int
    status_col: int
    updates: dict[int, dict[str, str]] = field(default_factory=dict)
    creates: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    archives: list[int] = field(default_factory=list)
    write: SheetWrite = field(default_factory=SheetWrite)
    bases: dict[int, tuple[str, dict[str, str]]] = field(default_factory=dict)
    drop_bases: list[int] = field(default_factory=list)
    conflicts: list[tuple[int, str, merge.Conflict]] = field(default_factory=list)
    #: New rows refused as the same as another new row of this run: (row, values, that row).
    twins: list[tuple[int, dict[str, str], int]] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    kind: Records | None = None
    codec: FieldCodec | None = None
    #: Mapped field -> its sheet column (the code column excluded).
    columns: dict[str, int] = field(default_factory=dict)
    #: Record -> its sheet row, for the records ``updates`` changes (the CRM's stored value goes back there).
    update_rows: dict[int, int] = field(default_factory=dict)
    #: The agreement to store with the CRM changes, before the sheet is written: the sheet's values that
    #: go to the CRM, the old agreement for cells still to write (``sync.runner``; issue 21 fault 4).
    interim: dict[int, tuple[str, dict[str, str]]] = field(default_factory=dict)
    #: New rows the plan refused only as duplicates of stored records: the apply step checks them again
    #: against the CRM as this run leaves it (a duplicate of a customer whose phone the run changes is not one).
    maybe_duplicates: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    #: Open conflicts this run finds settled (both sides agree now, or the deleted row is back).
    settled: list[int] = field(default_factory=list)
    #: The agreed rows as the run found them (``agreed_rows``): read once per run, kept up to date by
    #: ``sync.runner`` as it stores them.
    agreed: dict[int, Any] = field(default_factory=dict)
    #: Record -> the digest of its keyed row (``row_digest``) when sheet and CRM showed the same values:
    #: stored with the agreement, so that the next run skips the row while nothing it was read from changed.
    checked: dict[int, str] = field(default_factory=dict)
    #: Records whose row was skipped that way: their agreement is stored as it is (nothing to compare;
    #: they are not in ``bases``).
    unchanged: set[int] = field(default_factory=set)


def describe(plan: Plan, limit: int = 8) -> str:
    """What a preview would do, side by side (first few of each kind)."""
    codes = {record_id: key for record_id, (key, _) in plan.bases.items()}
    sheet_rows = {index: row[plan.key_col] for index, row in enumerate(plan.data.rows)}
    parts = []
    updates = [f"{codes.get(pk, pk)} ({', '.join(sorted(changes))})" for pk, changes in plan.updates.items()]
    parts.append(("CRM updates", updates))
    parts.append(("CRM creates from sheet rows", [str(index + 2) for index, _ in plan.creates]))
    parts.append(("CRM archives", [codes.get(pk, str(pk)) for pk in plan.archives]))
    touched = sorted({index for index, column in plan.write.cells if column != plan.status_col})
    parts.append(("sheet rows rewritten", [sheet_rows.get(i) or str(i + 2) for i in touched]))
    parts.append(("sheet rows added", [row[plan.key_col] for row in plan.write.append]))
    parts.append(("sheet rows removed", [sheet_rows[i] for i in plan.write.delete]))
    parts.append(("rejected rows", [f"{index + 2}: {why}" for index, why in sorted(plan.errors.items())]))
    parts.append(("conflicts", [f"{key} {c.field}" for _, key, c in plan.conflicts]))
    lines = []
    for label, items in parts:
        if items:
            more = f" … +{len(items) - limit}" if len(items) > limit else ""
            lines.append(f"{label}: {'; '.join(items[:limit])}{more}")
    return " | ".join(lines)


def _mapping(target: SyncTarget, headers: list[str], spec: Any) -> dict[str, str]:
    """The sheet's header -> field. A frozen mapping (``target.mapping``) finds each header as
    typed, else as the importer compares headers (``columns.header_key``: case, width, spaces),
    when exactly one header of the sheet matches; ``GuardStop`` names the ones not found."""
    if target.mapping:
        by_key: dict[str, list[str]] = {}
        for header in headers:
            by_key.setdefault(columns.header_key(header), []).append(header)
        found, missing = {}, []
        for header, name in target.mapping.items():
            same = [header] if header in headers else by_key.get(columns.header_key(header), [])
            if len(same) == 1:
                found[same[0]] = name
            else:
                missing.append(header)
        if missing:
            raise GuardStop(str(_l("Columns missing or renamed in the sheet: %(cols)s. Rename them back or "
                                   "change the target's mapping.", cols=", ".join(missing))))
        known = {field.name for field in spec.fields}
        gone = [header for header, name in found.items() if name not in known]
        if gone:  # a custom field deactivated (or a mapping typed by hand): say so, write nothing
            raise GuardStop(str(_l("Columns mapped to fields this record type no longer has in use: %(cols)s. "
                                   "Change the target's mapping (or make the field active again).",
                                   cols=", ".join(gone))))
        return found
    return columns.auto_map(spec, headers)


def _guard(target: SyncTarget, data: SheetData, mapping: dict[str, str], key_col: int,
           bases: dict[int, Any]) -> None:
    keys = [row[key_col].strip() for row in data.rows if row[key_col].strip()]
    doubled = sorted(key for key, seen in Counter(keys).items() if seen > 1)
    if doubled:
        raise GuardStop(str(_l("The same code appears on several rows: %(codes)s. Keep one row per code.",
                               codes=", ".join(doubled[:10]))))
    known = {row.key for row in bases.values() if row.key != PENDING}
    if len(known) >= 10:
        lost = len(known - set(keys))
        if lost * 100 > target.max_shrink_percent * len(known):
            raise GuardStop(str(_l("%(lost)d of %(known)d synced rows are gone from the sheet (more than "
                                   "%(pct)d %%): a sort, filter or delete by mistake? Nothing was changed.",
                                   lost=lost, known=len(known), pct=target.max_shrink_percent)))


def build_plan(target: SyncTarget, backend: Any, user: Any) -> Plan:
    kind = records_for(target.model)
    data = backend.read()
    mapping = _mapping(target, data.headers, kind.spec)
    key_header = next((h for h, f in mapping.items() if f == "code"), None)
    if key_header is None:
        raise GuardStop(str(_l("The sheet needs a column for the record code (e.g. 客户编号 / Customer code).")))
    bases = agreed_rows(target.id)
    key_col = data.headers.index(key_header)
    _guard(target, data, mapping, key_col, bases)
    status_col = data.headers.index(STATUS_HEADER) if STATUS_HEADER in data.headers else len(data.headers)
    plan = Plan(data, mapping, key_col, status_col, kind=kind, agreed=bases)
    if status_col == len(data.headers):
        plan.write.headers[status_col] = STATUS_HEADER
    codec = FieldCodec.for_headers(kind.spec, {h: f for h, f in mapping.items() if f != "code"},
                                   user_may(user, "can_reveal_contact", "Customer"), kind.lookups, user)
    plan.codec = codec
    read_only = not user_may(user, "can_write", kind.spec.view)
    _Planner(target, plan, codec, user, bases, kind, read_only=read_only).walk()
    return plan


class _Planner:
    def __init__(self, target: SyncTarget, plan: Plan, codec: FieldCodec, user: Any,
                 bases: dict[int, Any], kind: Records, read_only: bool = False) -> None:
        self.target, self.plan, self.codec, self.user, self.bases = target, plan, codec, user, bases
        self.kind = kind
        #: Every record in scope as plain values (``RecordRow``); ``full`` holds the records the plan
        #: reads as such (the rows it merges, rows to append, identities), loaded in a few IN queries.
        self.records, self.by_code = kind.load_rows(user, codec.raw_attributes(kind.model))
        self.full: dict[int, Any] = {}
        #: Sheet row -> its digest (``row_digest``), worked out before the walk (``_prefetch``).
        self.digests: dict[int, str] = {}
        self.aliases = kind.aliases(self.records)
        self.keyed: set[str] = set()
        self.columns = {f: plan.data.headers.index(h) for h, f in plan.mapping.items() if f != "code"}
        #: A run-as user who may not change customers only pushes to the sheet.
        self.direction = PUSH if read_only else target.direction
        self.policy = {PUSH: merge.APP_WINS, PULL: merge.SHEET_WINS}.get(self.direction, target.conflict_policy)
        self.seen: set[int] = set()
        self._cell_problems: dict[str, str] = {}
        #: The CRM's values of the record ``_merge`` merged last.
        self._app: dict[str, str] = {}
        self._unlisted: dict[Any, Any] | None = None
        self._archived: dict[Any, Any] | None = None
        #: Identities (the duplicate rule's, on the values as stored) of the keyed rows and of the new
        #: rows this run creates -> their row: a keyless row that is the same is refused like a
        #: duplicate of a stored record (one record per row; an interrupted run could not match two
        #: records back either), even when the CRM's copy of that record has changed since.
        self.created: dict[Any, int] = {}
        plan.columns = self.columns
        #: Records created from rows that never received their code: row content -> record id.
        self.pending = {row.base.get("_row"): record_id for record_id, row in bases.items()
                        if row.key == PENDING and row.base.get("_row")}
        #: Records merged on a row of their own this run (their conflicts were looked at again).
        self.merged: set[int] = set()
        #: Rows with a code, by their content as the run leaves them (``Records.copy_key``) -> that
        #: code: a keyless row with the same content repeats that row, duplicate rule or not.
        self.copies: dict[str, str] = {}
        #: The keyed rows as the run leaves them: (row, code, values); ``created`` and ``copies`` are
        #: filled from them at the first keyless row (most runs have none: 50k rows cost seconds).
        self.shown: list[tuple[int, str, dict[str, str] | Agreed]] = []
        #: The keyless rows with content (``walk``), in sheet order.
        self.unkeyed: list[int] = []
        #: Archived records with a row still waiting (edits not applied): their agreed row is kept.
        self.kept_archived: set[int] = set()
        #: What every row digest shares (``FieldCodec.context``); records with an open conflict, whose
        #: rows always take the whole merge (it decides whether the conflict is settled).
        self.context = codec.context()
        self.disputed = set(db.session.scalars(select(SyncConflict.record_id).where(
            SyncConflict.target_id == target.id, SyncConflict.resolved_at.is_(None))))

    def walk(self) -> None:
        self.keyed = keyed = {row[self.plan.key_col].strip() for row in self.plan.data.rows}
        self._prefetch()
        self.unkeyed = unkeyed = []
        for index, row in enumerate(self.plan.data.rows):
            key = row[self.plan.key_col].strip()
            if not key:
                if any(cell.strip() for cell in row):
                    unkeyed.append(index)
                continue
            self._guarded(index, self._keyed_row, index, row, key)
        for index in unkeyed:
            self._guarded(index, self._new_row, index, self.plan.data.rows[index], keyed)
        self._rows_missing_from_sheet()
        # An archived record's agreed row stays while any of its rows waits, whichever of its rows
        # came first: a copy (or its merged-away keyed row) that left the sheet must not take the
        # agreement the waiting row is judged by, or that row's status would change on the next run.
        self.plan.drop_bases = [pk for pk in self.plan.drop_bases if pk not in self.kept_archived]
        self._settle_conflicts()
        self._status_cells()

    def _prefetch(self) -> None:
        """Each live keyed row's digest, and the records of the rows that will take the whole merge
        (not agreed as they are, or a merged-away code's survivor) loaded before the walk, which
        then goes row by row as always (issue 12: 50,000 rows, a few hundred records loaded)."""
        wanted, live = [], []
        for index, row in enumerate(self.plan.data.rows):
            key = row[self.plan.key_col].strip()
            record, alias = self.by_code.get(key), self.aliases.get(key)
            if alias is not None and (record is None or self.kind.archived(record)):
                wanted.append(alias.survivor.id)
            elif key and record is not None and not self.kind.archived(record):
                live.append((index, row, record))
        if live and live[0][2].raw is None:  # the digest reads the records themselves: all of them
            self.load([record.id for _, _, record in live])
        for index, row, record in live:
            try:
                digest = self.digests[index] = self._digest(row, record)
            except ROW_ERRORS:  # the walk meets it again, where ``_guarded`` refuses the row
                digest = None
            if digest is None or not self._agrees(record, digest):
                wanted.append(record.id)
        self.load(wanted)

    def load(self, ids: list[int]) -> None:
        """The records of ``ids`` not loaded yet, into ``full`` (a few IN queries)."""
        model, ids = self.kind.model, [pk for pk in dict.fromkeys(ids) if pk not in self.full]
        for start in range(0, len(ids), 1000):
            self.full.update((record.id, record) for record in
                             db.session.scalars(select(model).where(model.id.in_(ids[start:start + 1000]))))

    def record(self, row: Any) -> Any:
        """The record itself of a ``RecordRow`` (loaded now when ``_prefetch`` did not)."""
        if row.id not in self.full:
            self.load([row.id])
        return self.full[row.id]

    def _digest(self, row: list[str], record: Any) -> str:
        raw = record.raw if record.raw is not None else self.codec.app_raw(self.record(record))
        return row_digest(self.context, {name: row[col] for name, col in self.columns.items()}, raw)

    def _agrees(self, record: Any, digest: str) -> bool:
        """The row and its record are as they were when both sides last showed the same values."""
        base = self.bases.get(record.id)
        return base is not None and base.checked == digest and base.key == record.code and \
            record.id not in self.disputed

    def _guarded(self, index: int, step: Any, *args: Any) -> None:
        """One row's planning; a cell value the rules cannot even read refuses that row, never the run."""
        try:
            step(*args)
        except ROW_ERRORS as exc:
            self.plan.errors[index] = str(_l("This row could not be read: %(problem)s", problem=str(exc)))
            self.plan.counts["sheet_rejected"] += 1

    def _sheet_values(self, row: list[str]) -> dict[str, str]:
        """The row's canonical text per field; cells that cannot be read as typed (a long number
        the spreadsheet already rounded) are kept in ``_cell_problems`` for ``_check``."""
        self._cell_problems = {name: problem for name, col in self.columns.items()
                               if (problem := self.codec.sheet_problem(name, row[col]))}
        return {name: self.codec.sheet_text(name, row[col]) for name, col in self.columns.items()}

    def _keyed_row(self, index: int, row: list[str], key: str) -> None:
        record = self.by_code.get(key)
        alias = self.aliases.get(key)
        if alias is not None and (record is None or self.kind.archived(record)):  # live codes stay their own
            self._alias_row(index, row, alias)
            return
        if record is None:
            self.plan.errors[index] = self.kind.missing_message(key)
            self.plan.counts["sheet_rejected"] += 1
            return
        self.seen.add(record.id)
        if self.kind.archived(record):
            self._archived_row(index, row, record, key)
            return
        self.merged.add(record.id)
        base = self.bases.get(record.id)
        digest = self.digests.get(index) or self._digest(row, record)
        if self._agrees(record, digest):
            # cells and record as they were when both sides last showed the same values: the merge
            # would find them equal again (issue 12: a 50k-row sheet's unchanged rows cost no per-field work)
            self.plan.checked[record.id] = digest  # its agreement stays as stored: not in ``plan.bases``
            self.plan.unchanged.add(record.id)
            self.shown.append((index, record.code, base))  # its values only when a keyless row needs them
            return
        sheet = self._sheet_values(row)
        shown = self._merge(index, record, base.base if base else None, sheet, record.code)
        if self._app == sheet:
            self.plan.checked[record.id] = digest
        self.shown.append((index, record.code, shown))

    def _archived_row(self, index: int, row: list[str], record: Any, key: str) -> None:
        """Archived in the app: the row leaves the sheet, unless it holds an edit never synced
        (then it stays, base and all, with the reason: a restore applies it, deleting the row drops it)."""
        base = self.bases.get(record.id)
        if base is None:
            self.plan.errors[index] = str(_l("%(code)s is archived in the CRM.", code=key))
        elif self.direction != PUSH and _unsynced(self._sheet_values(row), base.base):
            self.plan.errors[index] = str(_l("%(code)s is archived in the CRM; this row's changes were not "
                                             "applied. Restore the customer to apply them, or delete the row.",
                                             code=key))
            self.kept_archived.add(record.id)
        else:
            self.plan.write.delete.append(index)
            self.plan.drop_bases.append(record.id)
            self.plan.counts["sheet_removed"] += 1

    def _alias_row(self, index: int, row: list[str], alias: Alias) -> None:
        """A row keyed with a code merged into ``alias.survivor``: the merged-away record's row.

        It never updates the survivor. Edits typed on it since its last sync become conflicts
        on the survivor (kept for a person, whatever the policy); the row then leaves the
        sheet when the survivor has its own row or agreed base, else it becomes the survivor's
        row (re-keyed, showing the survivor's values). The old record's base is dropped.
        """
        survivor, sheet = alias.survivor, self._sheet_values(row)
        if self.kind.archived(survivor):
            self._archived_alias_row(index, sheet, alias)
            return
        app = self.codec.app_values(self.record(survivor))
        shown_key = f"{survivor.code} ({alias.code})"[:40]  # the conflict says which row it came from
        if self.direction != PUSH:  # a push-only sheet is a copy: its edits are put back, as on any row
            for name, (before, typed) in _unsynced(sheet, self._agreed_or_current(alias.merged_from_id)).items():
                if typed != app[name]:
                    self.plan.conflicts.append((survivor.id, shown_key, merge.Conflict(name, before, app[name], typed)))
                    self.plan.counts["conflicts"] += 1
        if alias.merged_from_id is not None:
            self.plan.drop_bases.append(alias.merged_from_id)
        if survivor.code in self.keyed or survivor.id in self.bases or survivor.id in self.seen:
            self.plan.write.delete.append(index)
            self.plan.counts["sheet_removed"] += 1
            return
        self.seen.add(survivor.id)
        self.plan.write.cells[(index, self.plan.key_col)] = survivor.code
        self.plan.counts["sheet_rekeyed"] += 1
        self._merge(index, survivor, sheet, sheet, survivor.code)  # the row as base: the survivor's values win

    def _archived_alias_row(self, index: int, sheet: dict[str, str], alias: Alias) -> None:
        """A merged-away code whose survivor was archived since: never the survivor's row (an
        archived record has none). It leaves the sheet, unless it holds an edit never synced:
        then it stays with the reason, and its base with it (a restore of the survivor re-keys it)."""
        if self.direction != PUSH and _unsynced(sheet, self._agreed_or_current(alias.merged_from_id)):
            self.plan.errors[index] = str(_l("%(code)s was merged into %(survivor)s, which is archived in the CRM; "
                                             "this row's changes were not applied.", code=alias.code,
                                             survivor=alias.survivor.code))
            return
        if alias.merged_from_id is not None:
            self.plan.drop_bases.append(alias.merged_from_id)
        self.plan.write.delete.append(index)
        self.plan.counts["sheet_removed"] += 1

    def _agreed_or_current(self, record_id: int | None) -> dict[str, str]:
        """What a merged-away record's row held when last synced (its base), else the record's
        values; nothing for a record outside the run's scope (every differing cell then counts)."""
        base = self.bases.get(record_id)
        if base is not None:
            return base.base
        record = self.records.get(record_id)
        return self.codec.app_values(self.record(record)) if record is not None else {}

    def _merge(self, index: int, record: Any, base: dict | None, sheet: dict[str, str], key: str,
               on_sheet: bool = True) -> dict[str, str]:
        """Merge one row with its record; ``on_sheet``: the row's code cell already holds ``key``.
        Returns the row's values as this run leaves them."""
        record = self.record(record)
        base = {name: value for name, value in base.items() if name != "_row"} if base else base
        base = erasure.sync_base(base, sheet)  # erased fields: the app's marker wins over the sheet
        app = self._app = self.codec.app_values(record)
        result = merge.merge_row(base, app, sheet, self.policy, record.changed_on, self.plan.data.modified_at)
        if self.direction == PULL:  # the CRM's own change stays in the CRM; the row as it is stays agreed
            for name in result.to_sheet:
                result.agreed[name] = sheet[name]
            result.to_sheet.clear()
        elif self.direction == PUSH:  # the sheet is a copy: its edits are put back
            for name in result.to_app:
                result.to_sheet[name] = result.agreed[name] = app[name]
            result.to_app = {}
        if result.to_app:
            problem = self._check(record, result.to_app)
            if problem:
                self.plan.errors[index] = problem
                self.plan.counts["app_rejected"] += 1
                for name in result.to_app:  # not applied: the sheet's change stays pending
                    if base and name in base:
                        result.agreed[name] = base[name]
                    else:
                        result.agreed.pop(name, None)
                result.to_app = {}
            else:
                self.plan.updates[record.id] = result.to_app
                self.plan.update_rows[record.id] = index
                self.plan.counts["app_updated"] += 1
                self.plan.interim[record.id] = _interim(result, base, sheet, key if on_sheet else None)
        for name, value in result.to_sheet.items():
            self.plan.write.cells[(index, self.columns[name])] = self.codec.display(name, value)
        if result.to_sheet:
            self.plan.counts["sheet_updated"] += 1
        for conflict in result.conflicts:
            self.plan.conflicts.append((record.id, key, conflict))
        self.plan.counts["conflicts"] += len(result.conflicts)
        self.plan.bases[record.id] = (key, result.agreed)
        return {**sheet, **result.to_sheet}

    def _check(self, record: Any, changes: dict[str, str]) -> str | None:
        """The model's rules on the record as it would become; a readable reason or None."""
        unreadable = {name: self._cell_problems[name] for name in changes if name in self._cell_problems}
        errors = unreadable or self.kind.check(record, changes, self.user)
        if errors:
            return "; ".join(f"{self._header(name)}: {message}" for name, message in errors.items())
        return None

    def _header(self, name: str) -> str:
        return next((h for h, f in self.plan.mapping.items() if f == name), name)

    def _known_rows(self) -> None:
        """A keyless copy of a keyed row, as the run leaves it, is that row's record: by the duplicate
        rule's identities (``created``) and by its whole content (``copies``). Only the keyed rows that
        share a probe (``Records.probes``) with a keyless row are indexed: no other can match one."""
        wanted = self._wanted_probes() if self.shown else None
        for index, code, shown in self.shown:
            if isinstance(shown, Agreed):  # a skipped row: as agreed
                base = shown.base
                shown = {name: base[name] for name in self.columns}
            if wanted is not None:
                probes = self.kind.probes(shown)
                if probes is not None and probes.isdisjoint(wanted):
                    continue
            copy, identities = self.kind.known_keys(shown)
            self.copies.setdefault(copy, code)
            for identity in identities:
                self.created.setdefault(identity, index)
        self.shown.clear()

    def _wanted_probes(self) -> set[Any] | None:
        """The probes of every keyless row of the sheet (None: some row cannot tell, index all)."""
        wanted: set[Any] = set()
        for index in self.unkeyed:
            try:
                probes = self.kind.probes(self._sheet_values(self.plan.data.rows[index]))
            except ROW_ERRORS:
                return None  # the row is refused when its turn comes (``_guarded``)
            if probes is None:
                return None
            wanted |= probes
        return wanted

    def _new_row(self, index: int, row: list[str], keyed: set[str]) -> None:
        self._known_rows()
        if self.direction == PUSH:
            self.plan.errors[index] = str(_l("This sync only sends CRM data to the sheet; add customers in the CRM."))
            return
        sheet = self._sheet_values(row)
        match = self._pending_match(sheet) or self._match(sheet, keyed)
        if match is not None:  # first sync or an interrupted run: link, never duplicate
            self.seen.add(match.id)
            self.merged.add(match.id)
            self.plan.write.cells[(index, self.plan.key_col)] = match.code
            base = self.bases.get(match.id)  # a row typed again, or its code cleared: the agreement stands
            shown = self._merge(index, match, base.base if base else None, sheet, match.code, on_sheet=False)
            self.copies.setdefault(self.kind.copy_key(shown), match.code)
            self.plan.counts["sheet_linked"] += 1
            return
        archived = self._archived_match(sheet)
        if archived is not None:  # its code cleared as it was archived: still its row, never a new record
            self.seen.add(archived.id)
            self._archived_row(index, row, archived, archived.code)
            return
        copy = self.kind.copy_key(sheet)
        identities = [*(self.kind.identities(sheet) if self.kind.has_duplicate_rule else []), ("row", copy)]
        first = next((self.created[key] for key in identities if key in self.created), None)
        if first is not None:  # the runner names the record once it exists (as the next run will)
            self.plan.twins.append((index, sheet, first))
        problem = (str(_l("Same as row %(row)d of this sheet: keep one of the two rows.", row=first + 2))
                   if first is not None else None) or self._check(None, sheet)
        duplicate = None if problem else self.kind.duplicate_problem(sheet, self.user)
        repeated = None if problem or duplicate or copy not in self.copies else copy_message(self.copies[copy])
        if problem or duplicate or repeated:
            self.plan.errors[index] = problem or duplicate or repeated
            self.plan.counts["app_rejected"] += 1
            if duplicate:  # the apply step asks again once this run's own changes are in the CRM
                self.plan.maybe_duplicates.append((index, sheet))
            return
        for key in identities:
            self.created.setdefault(key, index)
        self.plan.creates.append((index, sheet))
        self.plan.counts["app_created"] += 1

    def _pending_match(self, sheet: dict[str, str]) -> Any:
        """The record an earlier run created from this very row (same content) before the run
        stopped short of writing its code: any record type, with or without a duplicate rule."""
        record_id = self.pending.get(fingerprint(sheet))
        record = self.records.get(record_id) if record_id is not None else None
        if record is None or record.id in self.seen or record.code in self.keyed or self.kind.archived(record):
            return None
        return record

    def _archived_match(self, sheet: dict[str, str]) -> Any:
        """An archived record with an agreed row (it was on this sheet) that this keyless row is,
        by its content or by the duplicate rule's identities."""
        if self._archived is None:  # built once: archived records still holding an agreed row are few
            self._archived = {}
            held = [(row, self.records[record_id]) for record_id, row in self.bases.items()
                    if record_id in self.records and self.kind.archived(self.records[record_id])]
            self.load([record.id for _, record in held])
            for row, record in held:
                for identity in [row.base.get("_row"), *self.kind.record_identities(self.record(record), self.codec)]:
                    if identity:
                        self._archived.setdefault(identity, record)
        for identity in [fingerprint(sheet), *self.kind.identities(sheet)]:
            record = self._archived.get(identity)
            if record is not None:  # its keyed row may be on the sheet too (a copy whose code was cleared)
                return record
        return None

    def _match(self, sheet: dict[str, str], keyed: set[str]) -> Any:
        """A live record not on the sheet yet that this keyless row is (customers: the duplicate rule)."""
        if self._unlisted is None:
            self._unlisted = {}
            unlisted = [record for record in self.records.values()
                        if not self.kind.archived(record) and record.id not in self.seen and record.code not in keyed]
            self.load([record.id for record in unlisted])
            for record in unlisted:
                for identity in self.kind.record_identities(self.record(record), self.codec):
                    self._unlisted.setdefault(identity, record)
        for identity in self.kind.identities(sheet):
            record = self._unlisted.get(identity)
            if record is not None and record.id not in self.seen:
                return record
        return None

    def _rows_missing_from_sheet(self) -> None:
        self.load([record.id for record in self.records.values()  # the rows it may append, read at once
                   if record.id not in self.seen and not self.kind.archived(record)])
        for record in self.records.values():
            archived = self.kind.archived(record)
            if record.id in self.seen or archived:
                if archived and record.id in self.bases and record.id not in self.seen:
                    self.plan.drop_bases.append(record.id)
                continue
            if record.id in self.bases and self.bases[record.id].key == PENDING:
                # its row never showed its code and is not there as it was: show the record anew
                self.plan.drop_bases.append(record.id)
                if self.direction != PULL:
                    self._append(record)
            elif record.id in self.bases:
                self._deleted_in_sheet(record)
            elif self.direction != PULL:
                self._append(record)

    def _deleted_in_sheet(self, record: Any) -> None:
        policy = self.target.deleted_rows
        if policy == RESTORE and self.direction != PULL:
            self._append(record)
            self.plan.counts["sheet_restored"] += 1
        elif policy == ARCHIVE and self.direction != PUSH and self.kind.can_archive:
            self.plan.archives.append(record.id)
            self.plan.drop_bases.append(record.id)
            self.plan.counts["app_archived"] += 1
        else:
            base = self.bases[record.id]
            self.plan.conflicts.append((record.id, record.code, merge.Conflict("_row", "present", "present",
                                                                               "deleted")))
            self.plan.counts["conflicts"] += 1
            self.plan.bases[record.id] = (record.code, base.base)

    def _append(self, record: Any) -> None:
        app = self.codec.app_values(self.record(record))
        width = max(len(self.plan.data.headers), self.plan.status_col + 1)
        row: list[Any] = [""] * width
        row[self.plan.key_col] = record.code
        for name, col in self.columns.items():
            row[col] = self.codec.display(name, app[name])
        self.plan.write.append.append(row)
        self.plan.bases[record.id] = (record.code, app)
        self.plan.counts["sheet_added"] += 1

    def _settle_conflicts(self) -> None:
        """Every open conflict of the target looked at again: settled when this run did not raise it
        again and both sides agree now (the row merged without it, or its value is the CRM's), or
        the deleted row is back. Out-of-scope records' conflicts stay as they are."""
        raised = {(record_id, c.field, key) for record_id, key, c in self.plan.conflicts}
        rows = db.session.execute(select(SyncConflict.id, SyncConflict.record_id, SyncConflict.key,
                                         SyncConflict.field, SyncConflict.sheet_value)
                                  .where(SyncConflict.target_id == self.target.id,
                                         SyncConflict.resolved_at.is_(None)))
        for row in rows:
            record = self.records.get(row.record_id)
            if record is None or (row.record_id, row.field, row.key) in raised:
                continue
            if row.field == "_row":
                settled = record.id in self.seen
            elif row.key == record.code:
                settled = record.id in self.merged
            else:  # a merged-away row's edit: settled once the survivor holds it
                settled = row.field in self.codec.fields and \
                    self.codec.app_text(self.record(record), row.field) == (row.sheet_value or "")
            if settled:
                self.plan.settled.append(row.id)

    def _status_cells(self) -> None:
        col = self.plan.status_col
        for index, row in enumerate(self.plan.data.rows):
            message = mask_phones_in(self.plan.errors.get(index, ""))
            current = row[col] if col < len(row) else ""
            if message != current:
                self.plan.write.cells[(index, col)] = message


def copy_message(code: str) -> str:
    """A keyless row that repeats the row of ``code`` on the same sheet (typed twice, or copied with
    its code cleared): refused, never a second record, whether or not the duplicate rule can tell."""
    return str(_l("Same as %(code)s on this sheet: keep one of the two rows.", code=code))


def fingerprint(values: dict[str, str]) -> str:
    """A row's content as one text (canonical values by field): how a record created from a row
    is recognised on the next run when the row never received its code."""
    return json_text(sorted(values.items()))


def _interim(result: merge.RowMerge, base: dict | None, sheet: dict[str, str],
             key: str | None) -> tuple[str, dict[str, str]]:
    """The agreement to store with the CRM commit, before the sheet is written: what the sheet
    holds now for the fields going to the CRM, the old agreement for cells still to write
    (a run failing after the commit then neither reverts the CRM nor takes the sheet's value as
    a CRM change). ``key`` None: the row has no code yet, so it is pending, found by its content."""
    interim = dict(result.agreed)
    for name in result.to_sheet:
        if base and name in base:
            interim[name] = base[name]
        else:
            interim.pop(name, None)
    if key is None:
        return PENDING, {**interim, "_row": fingerprint(sheet)}
    return key, interim


def _unsynced(sheet: dict[str, str], agreed: dict[str, str]) -> dict[str, tuple[str | None, str]]:
    """Cells typed since the row's last sync: field -> (agreed value or None, sheet value)."""
    return {name: (agreed.get(name), value) for name, value in sheet.items() if value != (agreed.get(name) or "")}


def row_digest(context: str, cells: dict[str, Any], raw: tuple) -> str:
    """One keyed row's inputs as a digest (32 hex digits): ``context`` (``FieldCodec.context``), the row's
    mapped cells with their kind (a number cell, a formula without a result) and the record's stored
    values (``FieldCodec.app_raw``). Equal digests mean ``sheet_text`` and ``app_text`` read equal values."""
    typed = [(name, "str", cell, None, None) if type(cell) is str  # most cells: what the general form gives
             else (name, type(cell).__name__, str(cell), getattr(cell, "number", None), getattr(cell, "shown", None))
             for name, cell in cells.items()]
    return hashlib.blake2b(repr((context, typed, raw)).encode(), digest_size=16).hexdigest()


def agreed_rows(target_id: int, record_ids: list[int] | None = None) -> dict[int, Agreed]:
    """record id -> (id, record_id, key, base, checked) of the agreed rows (plain rows: thousands of
    them; each base read as its JSON text, decoded on first use); ``record_ids``: only those records' rows."""
    table = SyncRow.__table__
    query = select(table.c.id, table.c.record_id, table.c.key, cast(table.c.base, Text), table.c.checked) \
        .where(table.c.target_id == target_id)
    if record_ids is None:
        return {row[1]: Agreed(*row) for row in db.session.execute(query)}
    found = {}
    for start in range(0, len(record_ids), 5000):  # bounded parameter lists (SQLite, psycopg)
        rows = db.session.execute(query.where(table.c.record_id.in_(record_ids[start:start + 5000])))
        found.update((row[1], Agreed(*row)) for row in rows)
    return found


class Agreed:
    """One stored agreed row (``SyncRow`` as plain values). ``base`` (field -> agreed text) is decoded
    from its stored JSON when first read: a run that skips a row never needs it (issue 12)."""

    __slots__ = ("id", "record_id", "key", "_base", "_text", "checked")

    def __init__(self, id: int, record_id: int, key: str, base: dict[str, str] | str,  # noqa: A002
                 checked: str | None) -> None:
        self.id, self.record_id, self.key, self.checked = id, record_id, key, checked
        self._base, self._text = (None, base) if isinstance(base, str) else (base, None)

    @property
    def base(self) -> dict[str, str]:
        if self._base is None:
            self._base = json.loads(self._text)
        return self._base

    def _replace(self, **changes: Any) -> Agreed:
        """A copy with some of ``id``, ``record_id``, ``key``, ``base``, ``checked`` changed (as a NamedTuple's)."""
        values = {name: getattr(self, name) for name in ("id", "record_id", "key", "checked")}
        values["base"] = self._text if self._base is None else self._base
        values.update(changes)
        return Agreed(**values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Agreed) and (self.id, self.record_id, self.key, self.base, self.checked) == \
            (other.id, other.record_id, other.key, other.base, other.checked)

    __hash__ = None  # type: ignore[assignment]  # mutable cache, compared by value

    def __repr__(self) -> str:
        return f"Agreed(id={self.id!r}, record_id={self.record_id!r}, key={self.key!r}, checked={self.checked!r})"
