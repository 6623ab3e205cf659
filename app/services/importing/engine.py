"""The import run: parse, validate (the forms' rules), dedup-check and save, chunk by chunk.

One code path serves the dry run and the commit, so the preview cannot promise what
the commit will not do. Rows are processed in chunks; with ``all_or_nothing`` off
every chunk commits on its own (bad rows never block good ones) together with the
job's counters, so progress and an interrupted job both say exactly how far it got.

A row's errors are read later, by anyone, in their own language: they are kept as
``messages.Message`` (message ids + parameters), never as text. The rows of a chunk are
checked inside ``messages.capturing()``, so the rules' messages (made anywhere in the
services) keep their ids; the chunk's writes and audit happen outside it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models.customers import Customer, FollowUp
from app.security.data_scope import scope_cache
from app.services import audit, bulk, custom_fields, follow_ups, messages, numbering, records, search, validation
from app.services import customer_approvals as gate
from app.services import customers as rules
from app.services.customers import archived_message
from app.services.dictionaries import UnknownValue, lookup_key
from app.services.errors import RuleViolation
from app.services.importing import columns
from app.services.importing.columns import (
    CUSTOM,
    CUSTOMER,
    DATE,
    DATETIME,
    DICT,
    MODELS,
    TEXT,
    USER,
    ImportModel,
    is_code,
    is_phone,
)
from app.services.importing.lookups import Lookups
from app.services.importing.reading import Table, Uncached, cell_text
from app.services.importing.values import UnknownValues, resolve
from app.services.importing.writer import ChunkWriter, in_turn, pass_numbering
from app.services.importing.writer import numbering as numbering_session

CREATE, UPDATE, UPSERT = "create", "update", "upsert"
MODES = (CREATE, UPDATE, UPSERT)
CREATED, UPDATED, UNCHANGED, ERROR, DUPLICATE = "create", "update", "unchanged", "error", "duplicate"
OUTCOMES = (CREATED, UPDATED, UNCHANGED, ERROR, DUPLICATE)
PREVIEW_ROWS = 10
#: Distinct date cells a run keeps parsed (``ImportRun._when``).
MOMENTS_KEPT = 10_000


@dataclass
class Settings:
    model: str
    mode: str = CREATE
    key: str = "code"
    all_or_nothing: bool = False
    chunk_size: int = 2000
    #: The value-mapping step's choices (``values.chosen_for``): field -> ``lookup_key`` of a
    #: value that names no entry -> entry id.
    values: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class Result:
    """Counts (created + updated + unchanged + rejected == rows), samples and bad rows."""

    rows: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    #: outcome -> first rows: {"line", "code", "values", "message"}; "message" is the row's
    #: errors as a ``messages.Message`` ("" for rows that were not rejected).
    preview: dict[str, list[dict]] = field(default_factory=dict)
    #: (line, cells as read, errors as a ``messages.Message``) of every rejected row.
    rejected_rows: list[tuple[int, list[Any], messages.Message]] = field(default_factory=list)
    rolled_back: bool = False
    seconds: float = 0.0
    #: Dictionary values that named no entry, with their row counts (the value-mapping step).
    unknown: UnknownValues = field(default_factory=UnknownValues)
    #: (line, note) of every imported row with a change held for approval (gates: "Change a
    #: customer's level: sent for approval (AP…)"; the dry run: "will be sent").
    notes: list[tuple[int, messages.Message]] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return self.counts[ERROR] + self.counts[DUPLICATE]

    def summary(self) -> dict[str, int]:
        return {"rows": self.rows, "created": self.counts[CREATED], "updated": self.counts[UPDATED],
                "unchanged": self.counts[UNCHANGED], "rejected": self.rejected,
                "duplicates": self.counts[DUPLICATE]}


class RowRejected(Exception):
    """A row refused: ``errors`` lists (column header, message) as rendered inside the
    chunk's capture window (``stored`` reads them back as one message)."""

    def __init__(self, errors: list[tuple[str, str]], outcome: str = ERROR) -> None:
        super().__init__("; ".join(f"{c}: {m}" for c, m in errors))
        self.errors, self.outcome = errors, outcome

    def stored(self, capture: messages.Capture) -> messages.Message:
        parts: list[messages.Message] = []
        for column, problem in self.errors:
            parts += ["; " if parts else "", capture.stored(column), ": ", capture.stored(problem)]
        return messages.concat(parts)


def _roomy(connection: Any) -> None:
    """A chunk's transaction set up for many rows: SQLite's cache (``bulk.roomy_transaction``);
    the new rows' indexing for search left for after the run (``search.defer_indexing``: the
    notes commit or roll back with the rows)."""
    bulk.roomy_transaction(connection)
    search.defer_indexing(connection)


class ImportRun:
    def __init__(self, table: Table, mapping: dict[str, str], settings: Settings, user: Any,
                 commit: bool, progress: Callable[[Result], None] | None = None) -> None:
        self.spec: ImportModel = MODELS[settings.model]
        self.table, self.settings, self.user, self.commit = table, settings, user, commit
        self.columns = {fieldname: table.headers.index(header) for header, fieldname in mapping.items()
                        if header in table.headers}
        self.headers = {fieldname: header for header, fieldname in mapping.items()}
        #: field -> the file's header is one of the field's own names (``_header``)
        self.known_headers = {spec.name: columns.known_header(spec, self.headers[spec.name])
                              for spec in self.spec.fields if spec.name in self.headers}
        self.progress = progress
        #: (field, column index, max length) of every mapped field, in field order.
        self.mapped = [(spec, self.columns[spec.name], self._max_length(spec.name))
                       for spec in self.spec.fields if spec.name in self.columns]
        #: ``_parse`` may read a text cell itself (a subclass that parses cells its own way: no).
        self.plain_text = type(self)._parse_cell is ImportRun._parse_cell
        #: The type has active custom fields: new rows carry a ``custom`` value (defaults, required).
        self.has_custom = any(spec.kind == CUSTOM for spec in self.spec.fields)
        #: (cell type, zone, cell) -> ``validation.parse_datetime`` of it (``_when``).
        self.moments: dict[tuple[type, Any, Any], Any] = {}
        self.people: dict[str, Any] | None = None  # user name -> user, for custom people fields (``_person``)
        self.result = Result()
        self.lookups: Lookups | None = None
        self.chosen: dict[str, dict[str, Any]] = {}  # field -> value key -> entry (the value-mapping step)
        self.seen_codes: set[str] = set()
        self.updated_ids: set[int] = set()
        self.unnumbered: list[tuple[dict, Any]] = []  # preview samples waiting for a code
        self.pending: list[dict[str, Any]] = []  # new customers / follow-ups, inserted in bulk per chunk
        #: The chunk's customers as ``follow_ups.customer_problem`` reads them (one query per chunk).
        self.customer_facts: follow_ups.CustomerFacts = {}
        #: Follow-ups: the required fields (``follow_ups.required_fields``) read once per chunk.
        self.required: frozenset[str] | None = None
        #: owner id -> the owner rule's refusal (None: allowed), for this chunk's rows.
        self.owner_checks: dict[int, RuleViolation | None] = {}
        #: Customers: the approval gates and the won rule as they are for this run (read once).
        self.gates: gate.Gates | None = None
        #: The chunk's customers' signed contract numbers (looked up once, when a row becomes won).
        self.signed: dict[int, str] | None = None
        self.chunk_ids: set[int] = set()
        #: The chunk's held changes: (sample or None, line, customer, held, contract number).
        self.holds: list[tuple[dict | None, int, Any, list[gate.Held], str | None]] = []
        #: Stores chunks of new rows while the next chunk is checked (``run``: commits chunk by chunk).
        self.writer = ChunkWriter(False)

    # --- driving --------------------------------------------------------------------

    def run(self) -> Result:
        rows, size = self.table.rows, self.settings.chunk_size
        # a writer needs a committing run of two chunks or more: with one there is nothing to overlap
        writer = ChunkWriter(self.commit and not self.settings.all_or_nothing and len(rows) > size)
        if writer.active:
            db.session.commit()  # the writer's connection must not wait on (or miss) this session's writes
        with bulk.no_cyclic_gc(), scope_cache(), db.session.no_autoflush, writer as self.writer:
            self.lookups = Lookups(self.spec, self.user)
            if self.spec.model is Customer:
                self.gates = gate.Gates.now()
            self.chosen = resolve(self.spec, self.settings.values)
            lines = self.table.lines or list(range(2, len(rows) + 2))
            for start in range(0, len(rows), size):
                self._chunk(rows[start:start + size], lines[start:start + size])
            self.writer.wait()
            self._finish()
        return self.result

    def _chunk(self, rows: list[list[Any]], lines: list[int]) -> None:
        with clock.zone_pinned():  # the CRM zone looked up once per chunk, not per cell and rule
            self._chunk_rows(rows, lines)

    def _chunk_rows(self, rows: list[list[Any]], lines: list[int]) -> None:
        if self.commit and not self.settings.all_or_nothing and self.result.rows:
            self._reload_dictionaries()  # as they are now: an entry retired meanwhile is refused
        existing = self._load_existing(rows)
        self.owner_checks, self.signed, self.chunk_ids = {}, None, set(existing)
        if self.spec.model is FollowUp:
            self.customer_facts = self._load_customer_facts(rows, existing)
            self.required = follow_ups.required_fields()
        touched = []
        with messages.capturing() as capture:  # the rows only: the writes below store no markers
            for line, raw in zip(lines, rows, strict=True):
                try:
                    outcome, item = self._row(raw, existing, line)
                except RowRejected as exc:
                    self._count(line, raw, exc.outcome, None, exc.stored(capture))
                    continue
                if not isinstance(item, dict):
                    touched.append(item)
                self._count(line, raw, outcome, item, "")
        self._note_holds()
        self._save_chunk(touched)

    def _reload_dictionaries(self) -> None:
        """The dictionary entries the rows name, as stored now, each dictionary in one query:
        the previous chunk's commit expired them (else the rules' first read of each entry is
        a query), or, with the writer, another session committed meanwhile (this one keeps
        its loaded entries unless told to refresh them)."""
        for lookup in self.lookups.dictionaries.values():
            db.session.scalars(select(lookup.model).execution_options(populate_existing=True)).all()

    def _save_chunk(self, touched: list[Any]) -> None:
        self.result.rows = sum(self.result.counts.values())
        pending, self.pending = self.pending, []
        if not self.commit:
            for item in touched:
                if item in db.session:
                    db.session.expire(item)  # the dry run leaves stored records untouched
        elif self.writer.active and not touched and not self.holds:
            unnumbered, self.unnumbered = self.unnumbered, []
            where = {id(row): index for index, row in enumerate(pending)}
            positions = [where[id(item)] for _sample, item in unnumbered]

            def named(codes: list[str]) -> None:
                for (sample, _item), code in zip(unnumbered, codes, strict=True):
                    sample["code"] = code

            self.writer.submit(self._store, self._prepared(pending), positions, _snapshot(self.result), done=named)
            return
        else:
            self.writer.wait()  # this session writes now: after the writer's chunk
            _roomy(db.session.connection())
            self._insert(pending)
            db.session.flush()
            self._submit_holds()
            for sample, item in self.unnumbered:
                sample["code"] = _get(item, "code")
            self.unnumbered.clear()
            if not self.settings.all_or_nothing:
                self._report_progress()
                db.session.commit()
                return
        self._report_progress()

    def _insert(self, pending: list[dict[str, Any]]) -> None:
        if pending:
            insert = rules.insert_customers if self.spec.model is Customer else follow_ups.insert_follow_ups
            insert(pending)

    def _prepared(self, pending: list[dict[str, Any]]) -> Any:
        """A chunk's new rows as the writer gets them, prepared on this side
        (``follow_ups.prepare_follow_ups``, ``customers.prepare_customers``: bound, stamped and
        audited here), so the writer only numbers and stores them: it is the busier of the
        two, and on PostgreSQL it waits for the server in turn (issue 12). None: no new rows."""
        if not pending:
            return None
        if self.spec.model is FollowUp:
            return follow_ups.prepare_follow_ups(pending)
        return rules.prepare_customers(pending)

    def _store(self, prepared: Any, positions: list[int], result: Result) -> list[str]:
        """A chunk of new rows (``_prepared``) on the writer's session (``writer``): insert,
        report progress (counts as of this chunk), commit. Returns the new codes of the rows
        at ``positions`` (the preview's samples, named by the run)."""
        _roomy(db.session.connection())
        codes = []
        if prepared is None:
            pass_numbering()  # nothing to number: the next chunk's turn to
        else:
            number, insert, audit_them = _storing(prepared)
            if not prepared.numbered:  # stored again in its turn (``writer.TURN_WAIT``): the codes and ids it drew
                with numbering_session() as session:  # in file order, also when chunks are stored side by side
                    number(prepared, session)
            insert(prepared)
            in_turn()  # the chain step, the progress and the commit: after the chunk before
            audit_them(prepared)
            codes = prepared.codes
        in_turn()
        if self.progress:
            self.progress(result)
        db.session.commit()
        return [codes[index] for index in positions]

    def _report_progress(self) -> None:
        if self.progress:
            self.progress(self.result)

    def _finish(self) -> None:
        if not self.commit:
            db.session.rollback()
        elif self.settings.all_or_nothing and self.result.rejected:
            db.session.rollback()
            self.result.rolled_back = True
        else:
            search.defer_indexing(db.session.connection())  # SQLite: not in this commit either
            db.session.commit()
            search.index_soon()  # the rows the chunks only noted (``_roomy``)

    def _count(self, line: int, raw: list[Any], outcome: str, item: Any, errors: messages.Message) -> None:
        result = self.result
        result.counts[outcome] += 1
        if outcome in (ERROR, DUPLICATE):
            result.rejected_rows.append((line, raw, errors))
        samples = result.preview.setdefault(outcome, [])
        if len(samples) < PREVIEW_ROWS:
            code = _get(item, "code") if item is not None else None
            sample = {"line": line, "code": code, "values": [cell_text(v) for v in raw], "message": errors}
            samples.append(sample)
            if item is not None and code is None and self.commit:
                self.unnumbered.append((sample, item))

    # --- one row ----------------------------------------------------------------------

    def _cell(self, raw: list[Any], fieldname: str) -> Any:
        index = self.columns.get(fieldname)
        return None if index is None else raw[index]

    def _header(self, fieldname: str) -> str:
        """The column as a row's message names it (``messages.column``): the field's label,
        read in the reader's language, with the file's header where it helps find the column."""
        spec = next((f for f in self.spec.fields if f.name == fieldname), None)
        if spec is None:  # a rule's error about no import field (e.g. "_"): named as it came
            return self.headers.get(fieldname) or fieldname
        return messages.column(spec.label, self.headers.get(fieldname), self.known_headers.get(fieldname, False))

    def _row(self, raw: list[Any], existing: dict[int, Any], line: int) -> tuple[str, Any]:
        values, errors = self._parse(raw)
        target = self._target(values)
        if errors:
            raise RowRejected(errors)
        if target is None:
            row = self._new_customer(values) if self.spec.model is Customer else self._new_follow_up(values)
            self._check_duplicate(row)
            self.pending.append(row)
            self._remember(row, line)
            return CREATED, row
        item = existing.get(target)
        self._check_loaded(item, target)
        self._apply(item, values, is_new=False)
        self._validate(item)
        held = self._gate(item, values, line) if self.gates is not None else False
        if not db.session.is_modified(item):
            return (UPDATED if held else UNCHANGED), item
        self._remember(item, line)
        return UPDATED, item

    # --- customers: the approval gates and the won rule (``customer_approvals``) ---------

    def _gate(self, item: Customer, values: dict[str, Any], line: int) -> bool:
        """The won rule and the gates on an updated customer, as a form applies them: a
        refused row names the type column; a held change is put back and noted. Whether
        something was held."""
        try:
            number = gate.check_won(item, values.get("contract_number"), self.gates, signed=self._signed(item))
            held = gate.hold_gated(item, self.user, self.gates)
            problem = gate.waiting_conflict(item, held) if held else None
        except RuleViolation as exc:
            self._refuse(item, exc)
        if problem:
            self._refuse(item, RuleViolation({"_": problem}))
        if held:
            self.holds.append((None, line, item, held, number))
        return bool(held)

    def _signed(self, item: Customer) -> Any:
        """The customer's signed contract number, the chunk's looked up at the first row
        that becomes won (one query per chunk, none when no row does)."""
        if records.related_id(item, "type") not in self.gates.won_ids:
            return None
        if self.signed is None:
            self.signed = gate.signed_numbers(self.chunk_ids)
        return self.signed.get(item.id)

    def _refuse(self, item: Any, exc: RuleViolation) -> None:
        if item in db.session:
            db.session.expire(item)
        raise RowRejected([(self._header(name) if name != "_" else self._key_header(), str(message))
                           for name, message in exc.errors.items()]) from None

    def _note_holds(self) -> None:
        """The dry run's notes (the commit's name their requests once submitted)."""
        if self.commit:
            return
        for sample, line, _, held, _ in self._holds_with_samples():
            self._note(sample, line, _notes(gate.will_hold_notes(held)))
        self.holds.clear()

    def _submit_holds(self) -> None:
        """Submit the chunk's held changes (after its flush), noting each row's requests."""
        for sample, line, item, held, number in self._holds_with_samples():
            requests = gate.submit_held(item, self.user, held, number, again=True)
            self._note(sample, line, _notes(gate.held_notes(requests)))
        self.holds.clear()

    def _holds_with_samples(self) -> list[tuple[dict | None, int, Any, list[gate.Held], str | None]]:
        samples = {s["line"]: s for outcome in (UPDATED, UNCHANGED) for s in self.result.preview.get(outcome, [])}
        return [(samples.get(line), line, item, held, number) for _, line, item, held, number in self.holds]

    def _note(self, sample: dict | None, line: int, note: messages.Message) -> None:
        self.result.notes.append((line, note))
        if sample is not None:
            sample["message"] = note

    def _check_loaded(self, item: Any, target: int) -> None:
        """The record as loaded now (it may have changed hands since the run started), once per file."""
        if item is None:
            raise RowRejected([(self._key_header(), str(_l("Record not found.")))])
        if target in self.updated_ids:
            raise RowRejected([(self._key_header(), str(_l("%(code)s appears twice in this file.", code=item.code)))],
                              DUPLICATE)
        customer = item if isinstance(item, Customer) else item.customer
        if not self.lookups.in_scope(customer.owner_id):
            raise RowRejected([(self._key_header(), self._no_record(item.code))])
        if customer.archived_at is not None:
            raise RowRejected([(self._key_header(), archived_message(item.code))])
        self.updated_ids.add(target)

    def _parse(self, raw: list[Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        values, errors = {}, []
        plain_text = self.plain_text
        for spec, index, limit in self.mapped:
            cell = raw[index]
            if plain_text and spec.kind == TEXT:  # most cells: ``_parse_cell``'s answer, the short way
                if cell is None:
                    values[spec.name] = None
                    continue
                if type(cell) is str:
                    text = cell.strip() if cell.isprintable() else cell_text(cell)
                    if not limit or len(text) <= limit:
                        values[spec.name] = text or None
                        continue
            try:
                values[spec.name] = self._parse_cell(spec, cell, limit)
            except ValueError as exc:
                errors.append((self._header(spec.name), str(exc)))
        return values, errors

    def _parse_cell(self, spec: Any, cell: Any, limit: int | None) -> Any:
        if type(cell) is not str and isinstance(cell, (float, int, Uncached)) and not isinstance(cell, bool):
            check_number_cell(spec, cell)
        if spec.kind == CUSTOM:
            return self._custom_cell(spec, cell)
        if spec.kind in (DATE, DATETIME):
            parsed = self._when(cell)
            return parsed.date() if parsed is not None and spec.kind == DATE else parsed
        text = cell_text(cell)
        if spec.kind == DICT:
            return self._dictionary_value(spec.name, text)
        if spec.kind == USER:
            return self.lookups.find_user(text) if text else None
        if spec.kind == CUSTOMER:
            return self._customer_ref(text)
        if limit and len(text) > limit:
            raise ValueError(_l("At most %(n)d characters.", n=limit))
        return text or None

    def _when(self, cell: Any) -> Any:
        """``validation.parse_datetime(cell)``, each distinct cell parsed once per run (a file
        repeats its dates: 100,000 follow-ups name a few dozen next-step days); the first
        ``MOMENTS_KEPT`` distinct cells are kept, later ones parsed each time. Refusals are not
        kept (``ValueError`` again, with its message). A cell keeps the CRM zone in force when
        the run first parsed it."""
        key = (type(cell), getattr(cell, "tzinfo", None), cell)
        try:
            return self.moments[key]
        except KeyError:
            parsed = validation.parse_datetime(cell)
            if len(self.moments) < MOMENTS_KEPT:
                self.moments[key] = parsed
            return parsed
        except TypeError:  # an unhashable cell: parsed as it is
            return validation.parse_datetime(cell)

    def _custom_cell(self, spec: Any, cell: Any) -> Any:
        """A custom field's cell as the save takes it (``custom_fields.apply`` cleans it with the
        field's rule: choices by code or label, tags separated by , ， ; 、 |): its text, or for
        a people field the user it names (the run's user index, no query per row)."""
        text = cell_text(cell)
        if not text:
            return None
        if spec.custom.kind == custom_fields.USER:
            return self._person(text)
        return text

    def _person(self, text: str) -> Any:
        """The user a people field's cell names by user name (any user, as the field's rule
        takes them), from every user read once per run; ``ValueError`` for nobody."""
        if self.people is None:
            from app.models.org import CrmUser

            self.people = {person.username.casefold(): person for person in db.session.scalars(select(CrmUser))}
        person = self.people.get(text.casefold())
        if person is None:
            raise ValueError(_l("No user %(name)s.", name=text))
        return person

    def _dictionary_value(self, name: str, text: str) -> Any:
        """The entry ``text`` names, else the one the user mapped it to; an unmapped value is
        counted for the value-mapping step and the row refused (the message names the value)."""
        try:
            return self.lookups.dictionaries[name].find(text)
        except UnknownValue as exc:
            entry = self.chosen.get(name, {}).get(lookup_key(text))
            if entry is not None:
                return entry
            self.result.unknown.add(name, text, exc.ambiguous)
            raise

    def _max_length(self, name: str) -> int | None:
        column = self.spec.model.__table__.c.get(name)
        return getattr(column.type, "length", None) if column is not None else None

    def _customer_ref(self, text: str) -> int | None:
        if not text:
            return None
        found = self.lookups.customers.by_code.get(text)
        if found is None or not self.lookups.in_scope(found[1]):
            raise ValueError(_l("No customer %(code)s in your data scope.", code=text))
        if found[2]:
            raise ValueError(archived_message(text))
        return found[0]

    def _key_header(self) -> str:
        return self._header(self.settings.key)

    def _target(self, values: dict[str, Any]) -> int | None:
        """Id of the record this row updates; None to create; RowRejected if neither is allowed."""
        mode, key = self.settings.mode, self.settings.key
        key_value = values.get(key)
        if key == "credit_code" and key_value:
            try:
                key_value = validation.normalize_credit_code(key_value)
            except ValueError as exc:
                raise RowRejected([(self._key_header(), str(exc))]) from None
        found = self._find(key_value)
        if found is not None and mode == UPDATE and not self.lookups.in_scope(found[1]):
            found = None  # another rep's record is answered like a missing one (no existence oracle)
        if found is None:
            if mode == UPDATE:
                message = str(_l("Nothing to update: %(key)s is empty.", key=self._key_header())) \
                    if not key_value else self._no_record(key_value)
                raise RowRejected([(self._key_header(), message)])
            self._check_new_code(values.get("code"))
            return None
        record_id, owner_id, archived = found
        if mode == CREATE:
            raise RowRejected([(self._key_header(), str(_l(
                "%(value)s already exists; choose 'update' or 'upsert' to change it.", value=key_value)))],
                DUPLICATE)
        if not self.lookups.in_scope(owner_id):
            raise RowRejected([(self._key_header(), self._no_record(key_value))])
        if archived:
            raise RowRejected([(self._key_header(), archived_message(key_value))])
        return record_id

    def _no_record(self, value: str) -> str:
        """One answer for "no such record" and "someone else's record"."""
        return str(_l("No record with %(key)s %(value)s in your data scope.", key=self._key_header(), value=value))

    def _find(self, key_value: str | None) -> tuple[int, int, bool] | None:
        if not key_value:
            return None
        existing = self.lookups.existing
        if self.settings.key == "credit_code":
            matches = [m for m in existing.by_credit.get(key_value, []) if not m[2]] or \
                existing.by_credit.get(key_value, [])
            if len(matches) > 1:
                raise RowRejected([(self._key_header(), str(_l(
                    "Several customers share this credit code; use the customer code.")))])
            return matches[0] if matches else None
        return existing.by_code.get(key_value)

    def _check_new_code(self, code: str | None) -> None:
        if not code:
            return
        if code in self.seen_codes:
            raise RowRejected([(self._header("code"), str(_l("%(code)s appears twice in this file.", code=code)))],
                              DUPLICATE)
        if code in self.lookups.existing.by_code:
            raise RowRejected([(self._header("code"), str(_l(
                "%(value)s already exists; choose 'update' or 'upsert' to change it.", value=code)))], DUPLICATE)
        if numbering.looks_generated(code):
            raise RowRejected([(self._header("code"), str(_l(
                "%(code)s looks like a CRM code but no such record exists; leave the cell empty "
                "for a new record.", code=code)))])

    def _load_existing(self, rows: list[list[Any]]) -> dict[int, Any]:
        """The records this chunk may update, loaded in one query."""
        ids = set()
        for raw in rows:
            try:
                key_value = cell_text(self._cell(raw, self.settings.key))
                if self.settings.key == "credit_code":
                    key_value = validation.normalize_credit_code(key_value)
                found = self._find(key_value)
            except (ValueError, RowRejected):
                continue
            if found:
                ids.add(found[0])
        if not ids:
            return {}
        model = self.spec.model
        return {item.id: item for item in db.session.scalars(select(model).where(model.id.in_(ids)))}

    def _apply(self, item: Any, values: dict[str, Any], is_new: bool) -> None:
        custom = {}
        for name, value in values.items():
            if custom_fields.is_custom(name):
                custom[name] = value
                continue
            if name == "code":
                if is_new and value:
                    item.code = value
                continue
            if name == "owner" and value is None:
                continue  # empty owner: me for a new record, unchanged for an update
            if name == "customer":
                item.customer_id = value
                continue
            if name == "contract_number":
                continue  # not stored: the won rule reads it (``_gate``)
            if name == "followed_at" and value is None and not is_new:
                continue
            setattr(item, name, value)
        if custom:
            try:
                custom_fields.apply(item, custom)
            except RuleViolation as exc:
                self._refuse(item, exc)

    def _custom_row(self, values: dict[str, Any]) -> tuple[dict | None, dict[str, str]]:
        """A new bulk row's ``custom`` value (a dict, or None) and its errors: the save's own
        rule (``custom_fields.apply`` on a transient record: defaults, required, each cell
        cleaned by its field), no query. ``(None, {})`` when the type has no custom fields."""
        if not self.has_custom:
            return None, _NO_ERRORS
        given = {name: value for name, value in values.items() if custom_fields.is_custom(name)}
        item = self.spec.model()
        try:
            custom_fields.apply(item, given)
        except RuleViolation as exc:
            return None, dict(exc.errors)
        return (item.custom or None), _NO_ERRORS

    def _validate(self, item: Any) -> None:
        try:
            if isinstance(item, Customer):
                rules.clean_customer(item, self.user)
            else:
                follow_ups.clean_follow_up(item, self.user, self.customer_facts)
        except RuleViolation as exc:
            if item in db.session:
                db.session.expire(item)
            raise RowRejected([(self._header(name), str(message)) for name, message in exc.errors.items()]) \
                from None

    def _new_customer(self, values: dict[str, Any]) -> dict[str, Any]:
        """A checked row for the bulk insert: the customer rules on plain values."""
        checked = {name: values.get(name) for name in rules.CUSTOMER_CHECKED}
        errors = rules.check_customer(checked)
        custom, problems = self._custom_row(values)
        errors.update(problems)
        owner = values.get("owner") or self.user
        if not errors:
            errors.update(self._owner_problem(owner.id))
        if errors:
            raise RowRejected([(self._header(name), str(message)) for name, message in errors.items()])
        row = {name: checked[name] for name in _CUSTOMER_TEXT}
        if self.has_custom:
            row["custom"] = custom
        for name, key in _CHOICE_IDS:
            entry = checked[name]
            row[key] = None if entry is None else getattr(entry, "id", None)
        row.update(code=values.get("code"), owner_id=owner.id, archived_at=None)
        try:
            gate.check_won_row(row, values.get("contract_number"), self.gates)
        except RuleViolation as exc:
            raise RowRejected([(self._header(name), str(message)) for name, message in exc.errors.items()]) from None
        return row

    def _new_follow_up(self, values: dict[str, Any]) -> dict[str, Any]:
        """A checked row for the bulk insert: the follow-up rules on plain values (a new
        follow-up without an owner belongs to the importer, as ``records.default_owner``)."""
        checked = {name: values.get(name) for name in follow_ups.CHECKED if name != "customer_id"}
        checked["customer_id"] = values.get("customer")
        errors = follow_ups.check_follow_up(checked, self.user, None, self.customer_facts, self.required)
        custom, problems = self._custom_row(values)
        errors = {**errors, **problems}
        owner = values.get("owner") or self.user
        if not errors:
            errors.update(self._owner_problem(owner.id))
        if errors:
            raise RowRejected([(self._header(name), str(message)) for name, message in errors.items()])
        method = checked.pop("method")
        row = {"code": values.get("code"), **checked, "method_id": getattr(method, "id", None), "owner_id": owner.id}
        if self.has_custom:  # JSON text: ``insert_follow_ups`` binds its values as they are
            row["custom"] = json.dumps(custom, ensure_ascii=False) if custom else None
        return row

    def _owner_problem(self, owner_id: int) -> dict[str, str]:
        """The owner rule (``records.check_owner``) for a new record's owner, once per owner
        and chunk: its errors ({} when allowed)."""
        if owner_id not in self.owner_checks:
            try:
                records.check_owner(self.user, owner_id)
                self.owner_checks[owner_id] = None
            except RuleViolation as exc:
                self.owner_checks[owner_id] = exc
        refused = self.owner_checks[owner_id]
        return dict(refused.errors) if refused is not None else _NO_ERRORS

    def _load_customer_facts(self, rows: list[list[Any]], existing: dict[int, Any]) -> follow_ups.CustomerFacts:
        """The customers this chunk's follow-ups name or belong to, as ``follow_ups.customer_facts``
        reads them now (one query per chunk, not one per row)."""
        ids = {item.customer_id for item in existing.values()}
        by_code = self.lookups.customers.by_code
        for raw in rows:
            found = by_code.get(cell_text(self._cell(raw, "customer")))
            if found is not None:
                ids.add(found[0])
        return follow_ups.customer_facts(ids, self.user)

    def _check_duplicate(self, item: Any) -> None:
        index = self.lookups.duplicates
        if index is None:
            return
        found = index.match(*_dedup_fields(item))
        if found:
            code, rule = found
            if code.startswith("#"):
                where = str(_l("row %(line)s of this file", line=code[1:]))
            else:
                known = self.lookups.existing.by_code.get(code)
                where = code if known and self.lookups.in_scope(known[1]) else \
                    str(_l("a customer outside your data scope"))
            raise RowRejected([(self._header("name"), str(_l(
                "Duplicate of %(where)s (%(rule)s).", where=where, rule=dedup_label(rule))))], DUPLICATE)

    def _remember(self, item: Any, line: int) -> None:
        code = _get(item, "code")
        if code:
            self.seen_codes.add(code)
        index = self.lookups.duplicates
        if index is not None:
            index.add(code if _get(item, "id") is not None else f"#{line}", *_dedup_fields(item))


#: Digits a spreadsheet number keeps exactly (IEEE double: 15 significant digits).
NUMBER_DIGITS = 15


def check_number_cell(spec: Any, cell: float | int | Uncached) -> None:
    """Refuse a cell whose value nobody typed (``ValueError`` with the fix to make).

    * a formula without a saved result (``Uncached``): the value the file shows is unknown;
    * a number cell in a code/ID column (``columns.is_code``): Excel keeps 15 digits, so an
      18-digit credit code comes back as 9.13501001200014E+17 and leading zeros are gone;
    * a number in a text field whose integer part has more than 15 digits (same reason);
    * a phone with a real fraction (an integral float such as 13812345679.0 is the number).
    """
    if isinstance(cell, Uncached):
        raise ValueError(_l("The cell holds the formula %(formula)s without a saved result: open the file in "
                            "Excel, save it, and import it again (or type the value).", formula=cell.text[:60]))
    if spec.kind not in (DATE, DATETIME) and (is_code(spec) or _integer_digits(cell) > NUMBER_DIGITS):
        raise ValueError(_l("The cell is a number (%(value)s), which cannot hold a code exactly: format the column "
                            "as text in Excel and type the value again.", value=cell_text(cell)))
    if is_phone(spec) and isinstance(cell, float) and not cell.is_integer():
        raise ValueError(_l("A phone number cannot have a fraction (%(value)s).", value=cell_text(cell)))


def _integer_digits(cell: float | int) -> int:
    if isinstance(cell, float) and not math.isfinite(cell):
        return 0
    return len(str(abs(int(cell))))


_CUSTOMER_TEXT = ("name", "credit_code", "contact_name", "contact_phone", "email", "address", "note")
_CHOICE_IDS = tuple((name, f"{name}_id") for name in rules.CHOICES)
_NO_ERRORS: dict[str, str] = {}  # read only


def _storing(prepared: Any) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None]]:
    """How a writer stores ``prepared`` (``ImportRun._prepared``): number, insert, audit."""
    if isinstance(prepared, follow_ups.NewFollowUps):
        return follow_ups.number_follow_ups, follow_ups.insert_new_follow_ups, follow_ups.audit_new_follow_ups
    return rules.number_customers, rules.insert_new_customers, rules.audit_new_customers


def _snapshot(result: Result) -> Result:
    """``result`` as the progress callback reads it (rows, counts) at this chunk, while the
    run goes on counting the next."""
    return Result(rows=result.rows, counts=dict(result.counts))


def _notes(notes: list[Any]) -> messages.Message:
    """Lazy notes as one stored message (read later in the reader's language)."""
    parts: list[messages.Message] = []
    for note in notes:
        parts += ["; " if parts else "", messages.stored(note)]
    return messages.concat(parts)


def _get(item: Any, name: str) -> Any:
    """Attribute of an ORM record or key of a bulk-insert row."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _dedup_fields(item: Any) -> tuple[Any, Any, Any, Any]:
    if isinstance(item, dict):
        return item.get("name"), item.get("contact_name"), item.get("contact_phone"), item.get("credit_code")
    return item.name, item.contact_name, item.contact_phone, item.credit_code


def dedup_label(rule: str) -> str:
    from app.services.dedup import RULE_LABELS

    return str(RULE_LABELS.get(rule, rule))


def run_import(table: Table, mapping: dict[str, str], settings: Settings, user: Any, commit: bool,
               progress: Callable[[Result], None] | None = None, label: str = "") -> Result:
    """Dry run (``commit=False``) or commit; writes are audited with source ``import``."""
    if settings.model not in ("customer", "follow_up"):  # declared record types (app.record_types)
        from app.services.importing import declared

        return declared.run_import(table, mapping, settings, user, commit, progress, label)
    started = time.perf_counter()
    with audit.audit_context(source="import", reason=label or None, steps=True):
        result = ImportRun(table, mapping, settings, user, commit, progress).run()
    result.seconds = time.perf_counter() - started
    return result
