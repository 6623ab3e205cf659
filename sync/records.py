"""What a target syncs: customers, follow-ups or any declared record type (products,
contacts, leads, opportunities: ``DeclaredRecords``). The runner is the same for all; this
module holds what differs (which records, their rules, how a keyless row is recognised,
whether they can be archived)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import null, select

from app.extensions import db
from app.models.customers import Customer, CustomerAlias, FollowUp
from app.models.org import CrmUser
from app.security.data_scope import scope_clause
from app.security.rights import user_may
from app.services import custom_fields, dedup, follow_ups, records, validation
from app.services import customer_approvals as gate
from app.services import customers as rules
from app.services.dictionaries import lookups_for
from app.services.errors import RuleViolation
from app.services.importing import columns
from app.services.importing.columns import CUSTOM, CUSTOMER, DATE, DATETIME, DICT, USER, ImportModel
from app.services.importing.declared import column_value, savepoint


@dataclass(frozen=True)
class Alias:
    """A code kept after a merge: it now means ``survivor``; ``merged_from_id`` is the record
    that carried it (None for an alias whose origin was not kept)."""

    code: str
    survivor: Any
    merged_from_id: int | None


class RecordRow:
    """One record of a run as plain values: its id, code, archive time (None: live or never archived)
    and ``raw`` (``FieldCodec.app_raw`` of the record, None when not read). The planner loads the
    record itself only for the rows it merges (``sync.plan``)."""

    __slots__ = ("id", "code", "archived_at", "raw")

    def __init__(self, id: int, code: str, archived_at: Any, raw: tuple | None) -> None:  # noqa: A002
        self.id, self.code, self.archived_at, self.raw = id, code, archived_at, raw

    def __repr__(self) -> str:
        return f"RecordRow(id={self.id!r}, code={self.code!r})"


class Records:
    """One per run: it holds the run's dictionary lookups (loaded once, not per row)."""

    spec: ImportModel
    model: type
    can_archive = False
    #: New rows are checked against stored records and each other (``duplicate_problem``).
    has_duplicate_rule = False
    #: The people fields (``USER``), which ``copy_key`` leaves out; read once per run.
    _people: frozenset[str] | None = None

    def __init__(self) -> None:
        self.lookups = lookups_for(self.spec.fields)

    def load_rows(self, user: Any, raw: list[str] | None) -> tuple[dict[int, RecordRow], dict[str, RecordRow]]:
        """Records in the user's scope (archived ones too) as plain values, by id (in id order: new
        sheet rows in creation order) and by their own code; ``raw``: the attributes whose values
        ``RecordRow.raw`` holds (``FieldCodec.raw_attributes``; None: none). One column select, no
        ORM objects (issue 12: the planner reads every record of a 50,000-row sheet, merges few)."""
        model = self.model
        archived = getattr(model, "archived_at", None)
        query = select(model.id, model.code, archived if archived is not None else null(),
                       *(getattr(model, name) for name in raw or ())) \
            .where(scope_clause(user, model)).order_by(model.id)
        single = raw is not None and len(raw) == 1  # ``attrgetter`` of one name: the value, not a tuple
        by_id = {row[0]: RecordRow(row[0], row[1], row[2], None if not raw else row[3] if single else tuple(row[3:]))
                 for row in db.session.execute(query)}
        return by_id, {row.code: row for row in by_id.values()}

    def aliases(self, by_id: dict[int, Any]) -> dict[str, Alias]:
        """Codes merged into a record of ``by_id`` (none for models that are never merged)."""
        return {}

    def missing_message(self, code: str) -> str:
        """A keyed sheet row whose code names no record of the run-as user."""
        return str(_l("No customer %(code)s for this sync's user; the row is left alone.", code=code))

    def archived(self, record: Any) -> bool:
        return getattr(record, "archived_at", None) is not None

    def check(self, record: Any | None, changes: dict[str, str], user: Any) -> dict[str, str]:
        """Why ``changes`` cannot be saved on ``record`` (None: a new one); empty when they can.

        The readable per-cell checks first, then the save's own rules (``clean``) on the
        record as it would become, so that nothing the plan accepts can be refused when it
        is applied (a follow-up of a customer archived since, a retired dictionary value
        the record already holds: issue 10's "one rule, every entry point")."""
        return self.cell_errors(record, changes, user) or self.trial(record, changes, user)

    def cell_errors(self, record: Any | None, changes: dict[str, str], user: Any) -> dict[str, str]:
        raise NotImplementedError

    def trial(self, record: Any | None, changes: dict[str, str], user: Any) -> dict[str, str]:
        """``clean`` on the record with ``changes`` set, nothing kept (the record is expired after)."""
        item = record if record is not None else self.model()
        try:
            with db.session.no_autoflush:
                set_fields(item, changes, self.spec, self.lookups)
                self.clean(item, user)
        except RuleViolation as exc:
            return {name: str(message) for name, message in exc.errors.items()}
        except ValueError as exc:
            return {"_": str(exc)}
        finally:
            if record is not None:
                db.session.expire(record)  # the plan writes nothing: the apply step sets the values again
            elif item in db.session:
                db.session.expunge(item)
        return {}

    def identities(self, fields: dict[str, str]) -> list[Any]:
        """What recognises a keyless sheet row as an existing record (empty: cannot tell)."""
        raise NotImplementedError

    def record_identities(self, record: Any, codec: Any) -> list[Any]:
        return self.identities(codec.app_values(record))

    def copy_key(self, fields: dict[str, str]) -> str:
        """A row's content as one text, for telling that a keyless row repeats another row of the
        sheet (issue 21: a row typed twice, or copied with its code cleared, is one record even
        when the duplicate rule cannot tell, e.g. a customer without a contact). People fields are
        left out: the save fills an empty owner in, so the first row shows one and its copy not."""
        return self._copy_key(self.stored(fields))

    def known_keys(self, fields: dict[str, str]) -> tuple[str, list[Any]]:
        """``copy_key`` and, with a duplicate rule, ``identities`` of one row, the values cleaned once
        (issue 12: every keyed row of a 50k-row sheet gets both when the sheet has a keyless row)."""
        stored = self.stored(fields)
        return self._copy_key(stored), (self._stored_identities(stored) if self.has_duplicate_rule else [])

    def probes(self, fields: dict[str, str]) -> set[Any] | None:
        """Cheap keys of one row such that two rows with the same ``copy_key`` or a common identity
        (``known_keys``) always share one (issue 12: a sheet's few keyless rows are compared only with
        the keyed rows sharing a probe, not all 50,000). None: this type cannot tell (compare all)."""
        return None

    def _people_fields(self) -> frozenset[str]:
        if self._people is None:  # once per run (issue 12: ``spec.fields`` rebuilds the list each time)
            self._people = frozenset(spec.name for spec in self.spec.fields if spec.kind == USER)
        return self._people

    def _copy_key(self, stored: dict[str, str]) -> str:
        people = self._people_fields()
        return json_text(sorted((name, value) for name, value in stored.items()
                            if name not in people and not name.startswith("_")))

    def _stored_identities(self, stored: dict[str, str]) -> list[Any]:
        """``identities`` of values already as ``stored`` makes them."""
        return self.identities(stored)

    def stored(self, fields: dict[str, str]) -> dict[str, str]:
        """``fields`` as the save would store them, where the rules clean a value (none by default)."""
        return dict(fields)

    def duplicate_problem(self, fields: dict[str, str], user: Any) -> str | None:
        """Why a new row must not become a record although it passed the rules (None: it may)."""
        return None

    def duplicate_probes(self, fields: dict[str, str]) -> set[Any]:
        """Keys such that a record ``duplicate_problem`` could find for ``fields`` always shares one with
        it (``record_duplicate_probes``): the apply step flushes the records it saved before a new row's
        check only when one of them may match (issue 12). Empty: this type has no duplicate rule."""
        return set()

    def record_duplicate_probes(self, record: Any) -> set[Any]:
        """``duplicate_probes`` of a saved record, on its stored values."""
        return set()

    def save(self, record: Any | None, changes: dict[str, str], user: Any) -> Any:
        """Apply ``changes`` (canonical text) to a record, or a new one, under the model's rules."""
        record = record if record is not None else self.model()
        set_fields(record, changes, self.spec, self.lookups)
        self.clean(record, user)
        if record not in db.session:
            db.session.add(record)
        return record

    def clean(self, record: Any, user: Any) -> None:
        raise NotImplementedError

    def archive(self, record: Any, user: Any) -> None:
        """Archive ``record`` for a row deleted from the sheet, as ``user`` (the run's user,
        or the person settling the conflict); ``RuleViolation`` when it may not be."""
        raise RuleViolation("not archivable")

    def held_note(self, record: Any) -> str | None:
        """What the row's status cell says of changes the save held for approval (None: none)."""
        return None


#: ``json.dumps(value, ensure_ascii=False)`` without building an encoder per call (50,000 rows a run).
json_text = json.JSONEncoder(ensure_ascii=False).encode


#: The customer fields a sheet syncs: the import's, less the contract number (an import-only
#: column: a sheet's won customer takes the number of its signed contract).
SYNC_CUSTOMER = replace(columns.CUSTOMER, builtin=tuple(f for f in columns.CUSTOMER.builtin
                                                        if f.name != "contract_number"))


class CustomerRecords(Records):
    """Customers: the form's rules, the won rule and the approval gates (``customer_approvals``,
    read once per run). A gated change the sheet makes (level, key contact data, becoming won,
    while a policy covers it) is held in an ``ApprovalRequest`` when applied and put back: the
    CRM's value goes back onto the sheet in the same run (``runner._as_stored``) and the row's
    status cell names the request. So the next run sees no change and no conflict and asks
    nothing twice; an approved change reaches the sheet like any CRM change, a rejected one
    leaves the CRM's value, already on the sheet. A pending request of the same kind asking a
    different value refuses the row at plan time (nothing held twice)."""

    spec, model, can_archive, has_duplicate_rule = SYNC_CUSTOMER, Customer, True, True
    _gates: gate.Gates | None = None

    @property
    def gates(self) -> gate.Gates:
        if self._gates is None:
            self._gates = gate.Gates.now()
        return self._gates

    def aliases(self, by_id: dict[int, Any]) -> dict[str, Alias]:
        """Merged-away codes whose survivor is in the run's scope (``app.services.merge`` keeps
        them in ``customer_alias``; a restore removes them). The planner decides what such a
        row is: never the survivor's own row (that overwrote the survivor with the old record's
        values, issue 10)."""
        rows = db.session.execute(select(CustomerAlias.code, CustomerAlias.customer_id, CustomerAlias.merged_from_id))
        return {code: Alias(code, by_id[survivor], merged_from) for code, survivor, merged_from in rows
                if survivor in by_id}

    def cell_errors(self, record: Any | None, changes: dict[str, str], user: Any) -> dict[str, str]:
        values = {name: getattr(record, name) if record else None for name in rules.CUSTOMER_CHECKED}
        for name, text in changes.items():
            spec = _field(self.spec, name)
            if spec.kind == DICT:
                try:
                    values[name] = self.lookups[name].find(text)
                except ValueError as exc:
                    return {name: str(exc)}
            elif name in values:
                values[name] = text
        # what the record holds now stays valid (a retired dictionary entry), as in the form
        before = {name: getattr(record, name) for name in ("contact_phone", *rules.CHOICE_IDS)} if record else {}
        errors = rules.check_customer(values, before)
        errors.update(_owner_errors(changes, user))
        return errors

    def identities(self, fields: dict[str, str]) -> list[Any]:
        """The duplicate rule's two keys on the values as the save stores them (``_as_stored``):
        credit code, and name + contact + phone."""
        return self._stored_identities(_as_stored(fields))

    def _stored_identities(self, fields: dict[str, str]) -> list[Any]:
        entry = dedup.entry_key(fields.get("name"), fields.get("contact_name"), fields.get("contact_phone"))
        credit = ("credit", fields["credit_code"]) if fields.get("credit_code") else None
        return [key for key in (credit, entry) if key]

    def stored(self, fields: dict[str, str]) -> dict[str, str]:
        return _as_stored(fields)

    def probes(self, fields: dict[str, str]) -> set[Any] | None:
        """The stored name as the duplicate rule folds it (``copy_key`` holds the name, the entry key
        its fold) and the stored credit code; None when the sheet maps no name."""
        if "name" not in fields:
            return None
        found = {("name", dedup.name_key(_stored_value("name", fields["name"])))}
        credit = _stored_value("credit_code", fields.get("credit_code"))
        if credit:
            found.add(("credit", credit))
        return found

    def duplicate_probes(self, fields: dict[str, str]) -> set[Any]:
        """What the rule's query compares (``dedup.matches_for_entry``: the credit code, and the phone
        when the entry key is whole), on the values as stored; a stored customer's other contacts are
        never a customer saved in this run."""
        stored = _as_stored(fields)
        key = dedup.entry_key(stored.get("name"), stored.get("contact_name"), stored.get("contact_phone"))
        found = {("phone", key[2])} if key else set()
        if stored.get("credit_code"):
            found.add(("credit", stored["credit_code"]))
        return found

    def record_duplicate_probes(self, record: Any) -> set[Any]:
        found = {("phone", (record.contact_phone or "").strip())}
        if record.credit_code:
            found.add(("credit", record.credit_code))
        return found

    def record_identities(self, record: Any, codec: Any) -> list[Any]:
        return self.identities({"name": record.name, "contact_name": record.contact_name,
                                "contact_phone": record.contact_phone, "credit_code": record.credit_code})

    def duplicate_problem(self, fields: dict[str, str], user: Any) -> str | None:
        """A new sheet row that duplicates a customer already on the sheet or outside the run's
        scope is not created (the same rule as forms, the API and imports)."""
        fields = _as_stored(fields)
        try:
            dedup.refuse_duplicates(fields.get("name"), fields.get("contact_name"), fields.get("contact_phone"),
                                    fields.get("credit_code"), user)
        except dedup.DuplicateFound as exc:
            return str(_l("Duplicate of %(list)s: type its code in the code column to link the row, or "
                          "change the row.", list=exc.listed))
        return None

    def clean(self, record: Any, user: Any) -> None:
        """The form's rules and the won rule (001: a sheet makes a customer won only when it
        has a signed contract; a new row cannot be won)."""
        self._clean(record, user)

    def _clean(self, record: Any, user: Any) -> str | None:
        if record.archived_at is not None:  # e.g. a conflict settled after an archive or a merge
            raise RuleViolation({"code": rules.archived_message(record.code)})
        rules.clean_customer(record, user)
        return gate.check_won(record, None, self.gates)

    def trial(self, record: Any | None, changes: dict[str, str], user: Any) -> dict[str, str]:
        """``clean`` and the gates on the record as it would become, nothing kept: a gated change
        that a pending request of its kind asks differently refuses the row."""
        item = record if record is not None else self.model()
        try:
            with db.session.no_autoflush:
                set_fields(item, changes, self.spec, self.lookups)
                self.clean(item, user)
                held = gate.hold_gated(item, user, self.gates)
                problem = gate.waiting_conflict(item, held) if held else None
                if problem:
                    return {gate.GATED[held[0].kind][0]: problem}
        except RuleViolation as exc:
            return {name: str(message) for name, message in exc.errors.items()}
        except ValueError as exc:
            return {"_": str(exc)}
        finally:
            item.status_reason = None  # the trial's "合同编号 …" belongs to no change
            if record is not None:
                db.session.expire(record)
            elif item in db.session:
                db.session.expunge(item)
        return {}

    def save(self, record: Any | None, changes: dict[str, str], user: Any) -> Any:
        """The sheet's changes under the rules; gated ones held (see the class)."""
        record = record if record is not None else self.model()
        set_fields(record, changes, self.spec, self.lookups)
        number = self._clean(record, user)
        held = gate.hold_gated(record, user, self.gates)
        if record not in db.session:
            db.session.add(record)
        if held:
            db.session.flush()
            record.held_for_approval = gate.submit_held(record, user, held, number, again=True)
        return record

    def held_note(self, record: Any) -> str | None:
        requests = getattr(record, "held_for_approval", None)
        return gate.joined(gate.held_notes(requests)) if requests else None

    def archive(self, record: Any, user: Any) -> None:
        """The archive rule of every entry point (``customers.archive_or_hold``): a won
        customer the user may not archive is held for approval, not archived."""
        reason = rules.archive_or_hold(record, user, user_may(user, "can_archive_won", "Customer"))
        if reason:
            raise RuleViolation(reason)


def _owner_errors(changes: dict[str, str], user: Any) -> dict[str, str]:
    """The owner rule on an owner cell (``records.owner_named``: a name nobody in scope has, a
    deactivated or unassignable user): every refused cell says why on its row, never ignored."""
    if not changes.get("owner"):
        return {}
    try:
        records.owner_named(changes["owner"], user)
    except ValueError as exc:
        return {"owner": str(exc)}
    return {}


def _as_stored(fields: dict[str, str]) -> dict[str, str]:
    """A row's duplicate-rule fields as the customer rules store them (credit code upper case, phone
    and contact cleaned), so that the sync's duplicate rule, in the run and against the database,
    compares what a form would (issue 21: 91…y43 and 91…Y43 are one customer). A value the rules
    refuse stays as typed (the row is refused for it anyway)."""
    stored = dict(fields)
    for name in _STORED_STEPS:
        if stored.get(name):
            stored[name] = _stored_value(name, stored[name])
    return stored


#: The duplicate-rule fields' cleaning steps (``_as_stored``).
_STORED_STEPS = {"credit_code": validation.normalize_credit_code, "contact_phone": validation.normalize_phone,
                 "contact_name": validation.clean_line, "name": validation.clean_line}


def _stored_value(name: str, value: str | None) -> str | None:
    """One value as ``_as_stored`` leaves it (empty and refused values as they are)."""
    if not value:
        return value
    try:
        return _STORED_STEPS[name](value) or ""
    except ValueError:
        return value


class FollowUpRecords(Records):
    spec, model = columns.FOLLOW_UP, FollowUp

    def cell_errors(self, record: Any | None, changes: dict[str, str], user: Any) -> dict[str, str]:
        errors = {}
        for name, text in changes.items():
            spec = _field(self.spec, name)
            try:
                if spec.kind == DICT and text:
                    self.lookups[name].find(text)
                elif spec.kind in (DATE, DATETIME):
                    validation.parse_datetime(text)
                elif name == "content":
                    validation.require_text(text, 10000)
                elif spec.kind == CUSTOMER and text:
                    self._check_customer(text, user)
            except ValueError as exc:
                errors[name] = str(exc)
        errors.update(_owner_errors(changes, user))
        if record is None and not changes.get("customer"):
            errors["customer"] = str(_l("A customer is required."))
        return errors

    @staticmethod
    def _check_customer(code: str, user: Any) -> None:
        """The follow-up rule on the customer a row names (the message forms and imports give)."""
        pk = customer_id_for(code)
        problem = follow_ups.customer_problem(pk, user) if pk is not None else None
        if pk is None or problem == str(_l("Customer not found.")):
            raise ValueError(_l("No customer %(code)s in your data scope.", code=code))
        if problem:
            raise ValueError(problem)

    def identities(self, fields: dict[str, str]) -> list[Any]:
        key = (fields.get("customer"), fields.get("followed_at"), (fields.get("content") or "").strip())
        return [key] if all(key) else []

    def probes(self, fields: dict[str, str]) -> set[Any] | None:
        """The customer cell: in every identity and in ``copy_key`` (None when the sheet maps none)."""
        return {fields["customer"] or ""} if "customer" in fields else None

    def clean(self, record: Any, user: Any) -> None:
        follow_ups.clean_follow_up(record, user)


def customer_id_for(code: str) -> int | None:
    """The customer a code means now: its own live record, else the survivor it was merged
    into (an old sheet row typed with a merged-away code belongs to the survivor), else the
    archived record itself (None: no such code)."""
    own = db.session.execute(select(Customer.id, Customer.archived_at).where(Customer.code == code)).first()
    if own is not None and own.archived_at is None:
        return own.id
    survivor = db.session.scalar(select(CustomerAlias.customer_id).where(CustomerAlias.code == code))
    return survivor if survivor is not None else (own.id if own is not None else None)


class DeclaredRecords(Records):
    """Any declared record type (``app.record_types``: products, contacts, leads,
    opportunities …): read in the run-as user's scope by code, written through the type's
    own use case ``rt.save`` (the one forms, the API and imports use), so its rules,
    numbering, owner checks and audit are the same from a sheet.

    The plan's check runs that very save inside a SAVEPOINT and rolls it back (``trial``),
    so nothing the plan accepts can be refused when applied. A keyless sheet row is
    recognised as a record not on the sheet yet only when every mapped cell equals it
    (``identities``): a run interrupted after creating records links their rows back
    instead of creating them twice. Declared types are never archived by a sync.
    """

    def __init__(self, record_type: Any) -> None:
        self.rt = record_type
        self.spec, self.model = columns.MODELS[record_type.name], record_type.model
        super().__init__()

    def missing_message(self, code: str) -> str:
        return str(_l("No record %(code)s for this sync's user; the row is left alone.", code=code))

    def cell_errors(self, record: Any | None, changes: dict[str, str], user: Any) -> dict[str, str]:
        errors = {}
        for name, text in changes.items():
            try:
                self._value(name, text, user)
            except ValueError as exc:
                errors[name] = str(exc)
        return errors

    def trial(self, record: Any | None, changes: dict[str, str], user: Any) -> dict[str, str]:
        """The type's save on ``changes`` inside a savepoint, always rolled back."""
        point = savepoint()
        try:
            self.save(record, changes, user)
        except RuleViolation as exc:
            return {name: str(message) for name, message in exc.errors.items()}
        except ValueError as exc:
            return {"_": str(exc)}
        finally:
            point.rollback()  # the plan writes nothing: numbers, audit and all go with it
            if record is not None and record in db.session:
                db.session.expire(record)  # values set before a refusal were never flushed
        return {}

    def identities(self, fields: dict[str, str]) -> list[Any]:
        filled = tuple(sorted((name, value) for name, value in fields.items() if value))
        return [filled] if filled else []

    def probes(self, fields: dict[str, str]) -> set[Any] | None:
        """One mapped field's value (the first by name that is no people field): an identity holds
        every filled cell, ``copy_key`` every cell but people's (None when only people are mapped)."""
        people = self._people_fields()
        name = min((name for name in fields if name not in people and not name.startswith("_")), default=None)
        return {(name, fields[name] or "")} if name is not None else None

    def save(self, record: Any | None, changes: dict[str, str], user: Any) -> Any:
        """``rt.save`` with the row's values (``ValueError`` for a cell that names nothing,
        ``RuleViolation`` from the rules); the record's current version: the three-way merge
        already decided what the sheet may change."""
        values = {name: value for name, text in changes.items()
                  if (value := self._value(name, text, user)) is not _KEEP}
        with db.session.no_autoflush:
            saved = self.rt.save(values, user, pk=record.id if record is not None else None,
                                 version=record.version if record is not None else None)
        db.session.flush()
        return saved

    def _value(self, name: str, text: str, user: Any) -> Any:
        """Canonical cell text -> the value the save takes (entries, users and customers as
        records, dates, yes/no); ``_KEEP`` for an empty owner (the save keeps or defaults it)."""
        field = _field(self.spec, name)
        if field.kind == CUSTOM:
            return text or None  # the save's ``custom_fields.apply`` reads it (a masked echo: kept)
        if field.kind == DICT:
            return self.lookups[name].find(text) if text else None
        if field.kind == USER:
            return records.owner_named(text, user, check=False) if text else _KEEP
        if field.kind == CUSTOMER:
            return self._customer(text, user) if text else None
        if field.kind == DATETIME:
            return validation.parse_datetime(text) if text else None
        if field.kind == DATE:
            return validation.parse_date(text) if text else None
        return column_value(self.model, name, text or None)

    @staticmethod
    def _customer(code: str, user: Any) -> Any:
        """The live customer a code means in the user's scope (merged-away codes: the survivor)."""
        pk = customer_id_for(code)
        customer = db.session.scalar(select(Customer).where(Customer.id == pk, scope_clause(user, Customer))) \
            if pk is not None else None
        if customer is None:
            raise ValueError(_l("No customer %(code)s in your data scope.", code=code))
        if customer.archived_at is not None:
            raise ValueError(rules.archived_message(code))
        return customer

    def clean(self, record: Any, user: Any) -> None:  # pragma: no cover - the save holds the rules
        raise NotImplementedError


#: An empty owner cell: leave the owner to the save.
_KEEP = object()

KINDS: dict[str, type[Records]] = {"customer": CustomerRecords, "follow_up": FollowUpRecords}


def spec_for(model: str) -> Any:
    """The fields a target of ``model`` may map (``ImportModel``): the sync's own list for
    customers and follow-ups (no import-only columns such as 合同编号), else the declared
    type's. ``KeyError`` for an unknown name."""
    return KINDS[model].spec if model in KINDS else columns.MODELS[model]


def records_for(model: str) -> Records:
    """The records a target syncs, for one run: customers and follow-ups by their own
    classes (``KINDS``), any other declared type (``app.record_types.REGISTRY``) through
    ``DeclaredRecords``. ``KeyError`` for a name that is neither."""
    if model in KINDS:
        return KINDS[model]()
    from app.record_types import REGISTRY

    return DeclaredRecords(REGISTRY[model])


def _field(spec: ImportModel, name: str) -> Any:
    return next(f for f in spec.fields if f.name == name)


def set_fields(record: Any, changes: dict[str, str], spec: ImportModel, lookups: dict[str, Any]) -> None:
    """Canonical text back onto a record: dictionary codes, usernames, customer codes, dates;
    custom fields through ``custom_fields.apply`` (their rules; ``RuleViolation``)."""
    custom = {}
    for name, text in changes.items():
        field = _field(spec, name)
        if field.kind == CUSTOM:
            custom[name] = text or None
        elif field.kind == DICT:
            setattr(record, name, lookups[name].find(text) if text else None)
        elif field.kind == USER:
            if text:  # the plan's check refused a name that means nobody; never set an owner to None
                person = db.session.scalar(select(CrmUser).where(CrmUser.username == text))
                if person is None:
                    raise ValueError(_l("No active user %(name)s in your data scope.", name=text))
                record.owner = person
        elif field.kind == CUSTOMER:
            record.customer_id = customer_id_for(text) if text else None
        elif field.kind == DATETIME:
            setattr(record, name, validation.parse_datetime(text) if text else getattr(record, name))
        elif field.kind == DATE:
            setattr(record, name, validation.parse_date(text))
        else:
            setattr(record, name, text or None)
    if custom or (record.id is None and any(f.kind == CUSTOM for f in spec.fields)):
        custom_fields.apply(record, custom)  # a new record: defaults and required fields too
