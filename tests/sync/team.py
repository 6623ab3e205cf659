"""A team editing one synced sheet at random (issue 21): the model, the script generator and
the invariants, shared by the CI-size test (``test_team_editing``), the regressions
(``test_team_regressions``) and the on-demand long run (``bench/sync_team.py``).

Why Hypothesis ``@given`` over a generated *script* and not ``RuleBasedStateMachine``: every
example needs a fresh database and sheet built inside one call (the suite's fixtures are
function-scoped), and a script is a plain value: Hypothesis shrinks it (fewer rounds, fewer
edits, smaller picks) and prints it, and the printed script pastes into a named regression
test as it is (``Team.play(script)``). Every reference in an edit is a *pick* (an index taken
modulo the rows or customers present when it is applied), so a shrunk script stays valid.

A script is ``Script(setup, rounds)``: 8-15 customers in the run-as user's scope (and two
outside it) synced to an empty sheet, on either backend, then the target's direction
(both/push/pull), conflict policy (app/sheet/newest/review), deleted-rows policy
(ask/restore/archive) and header language. A round is 1-4 edits by people and then a sync run,
sometimes with a fault (killed before the sheet write or before the bases are stored, Google
failing a request or timing out on every retry, a colleague saving the sheet during the run).
Sheet edits: cells valid and invalid (loosely typed phones, e-mail and credit-code case, unknown
industry, empty name), owner cells (another case, a full name, nobody, someone out of scope),
rows added with and without a code (twins, no contact name, no phone, like a stored customer),
rows deleted, the sheet sorted, rows inserted in the middle, a row copy-pasted with its code,
a code cleared, a deleted row typed again, a header retyped in another case or with spaces,
the CRM's value typed by hand. CRM edits through the use cases: edit (``save_customer``),
create, archive, restore (``restore_customers``), merge (``merge_service.merge``), owner change.
The issue's ten fault kinds are all reachable: merge (crm_merge), crash after commit (kill_* with
a keyless row), twins (add), edit lost after a failed run (faults then edits), pull reverting
(direction pull), re-linked rows (clear_code, retype), owner cells (owner), stale conflicts
(review + settle / retype), normalised values (case variants), duplicate check against the
pre-run state (add "like a stored customer" with a phone edit in the round). After every run that finishes, a second run with no edits must
change nothing, and the invariants of ``Team.check`` hold (each names the fault kind it
guards). The model tracks, per record and field, what each side typed last since the last
finished run and judges where it ended up.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from app.extensions import appbuilder, db
from app.models import (
    AuditChainHead,
    AuditLog,
    CodeSequence,
    Contact,
    Customer,
    CustomerAlias,
    CustomerStatusChange,
    DismissedPair,
    FollowUp,
    SyncConflict,
    SyncRow,
    SyncRun,
    SyncTarget,
)
from app.models.dictionaries import Industry
from app.services import customers as customer_rules
from app.services import merge as merge_service
from app.services import validation
from app.services.dictionaries import lookups_for
from app.services.errors import RuleViolation
from app.services.importing.columns import CUSTOMER, header_key
from sync.backends import sheet_cell
from sync.fields import FieldCodec

#: Fault kinds the long run found and ``team_faults.md`` describes: while a kind is listed here the
#: generator does not produce the edits that reach it (``OP_KINDS``, and the checks in the ops
#: that name a kind), so that a run can find NEW kinds. ``TEAM_AVOID=none`` turns it off.
#: Empty now: every kind found so far is fixed.
KNOWN_FAULTS: frozenset[str] = frozenset()  # e.g. {"archived_twin"} while team_faults.md #11 was open


def avoided() -> frozenset[str]:
    """The known fault kinds the generator avoids now (``TEAM_AVOID``: ``none``, ``all`` or a
    comma-separated list of kinds; default ``all`` = every kind in ``KNOWN_FAULTS``)."""
    chosen = os.environ.get("TEAM_AVOID", "all").strip()
    if chosen == "all":
        return KNOWN_FAULTS
    if chosen in ("", "none"):
        return frozenset()
    return frozenset(name.strip() for name in chosen.split(",")) & KNOWN_FAULTS


FIELDS = ("name", "contact_name", "contact_phone", "industry", "email", "credit_code", "owner", "note")
HEADERS = {
    "en": {"code": "Customer code", "name": "Customer name", "contact_name": "Contact name",
           "contact_phone": "Contact phone", "industry": "Industry", "email": "E-mail",
           "credit_code": "Unified social credit code", "owner": "Owner", "note": "Note"},
    "zh": {"code": "客户编号", "name": "客户名称", "contact_name": "联系人姓名", "contact_phone": "联系方式",
           "industry": "所属行业", "email": "电子邮箱", "credit_code": "统一社会信用代码", "owner": "跟进人",
           "note": "备注"},
}
COLUMNS = ("code", *FIELDS)
STATUS = "同步状态 / Sync status"
SHEET = "客户"
RUN_AS = "manager"  # East: rep_a, rep_b and the manager are in scope; rep_c (South) is not
#: Owner cells a person types: user names in another case, a full name, nobody, someone out of scope.
OWNER_CELLS = ("rep_b", "REP_A", "Rep_b Test", "nobody", "rep_c", "", "manager")
DIRECTIONS, POLICIES, DELETED = ("both", "push", "pull"), ("app", "sheet", "newest", "review"), \
    ("ask", "restore", "archive")
#: About half the rounds run clean (None first: a shrunk script drops its faults first).
FAULTS = (None,) * 5 + ("kill_write", "kill_bases", "google_fail", "google_timeout", "changed")


# --- the script -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    customers: int = 8  # in scope (East); two more belong to rep_c (South, out of scope)
    direction: str = "both"
    policy: str = "review"
    deleted_rows: str = "ask"
    lang: str = "en"


@dataclass(frozen=True)
class Op:
    """One person's edit: ``kind`` and up to three small numbers (picks and variants)."""

    kind: str
    a: int = 0
    b: int = 0
    c: int = 0

    def __repr__(self) -> str:
        return f"Op({self.kind!r}, {self.a}, {self.b}, {self.c})"


@dataclass(frozen=True)
class Round:
    ops: tuple[Op, ...]
    fault: str | None = None
    at: int = 1  # google_fail / google_timeout: the request of the run that fails (1 = the read)


@dataclass(frozen=True)
class Script:
    setup: Setup
    rounds: tuple[Round, ...]


SHEET_OPS = ("cell", "cell", "cell", "add", "add", "delete", "sort", "insert", "copy", "clear_code", "retype",
             "header", "owner", "settle")
CRM_OPS = ("crm_edit", "crm_edit", "crm_create", "crm_archive", "crm_restore", "crm_merge", "crm_owner")

#: Which fault kind (``team_faults.md``) an op or fault reaches when it is avoided.
OP_KINDS = {"crm_merge": "merge", "copy": "copy", "clear_code": "relink", "retype": "relink", "owner": "owner",
            "header": "header"}


def ops() -> st.SearchStrategy[Op]:
    small = st.integers(0, 40)
    return st.builds(Op, st.sampled_from(SHEET_OPS + CRM_OPS), small, small, st.integers(0, 5))


def scripts(max_rounds: int = 4) -> st.SearchStrategy[Script]:
    setup = st.builds(Setup, st.integers(8, 15), st.sampled_from(DIRECTIONS), st.sampled_from(POLICIES),
                      st.sampled_from(DELETED), st.sampled_from(("en", "zh")))
    round_ = st.builds(Round, st.lists(ops(), min_size=1, max_size=4).map(tuple),
                       st.sampled_from(FAULTS), st.integers(1, 3))
    return st.builds(Script, setup, st.lists(round_, min_size=1, max_size=max_rounds).map(tuple))


# --- the two sheet backends, as raw rows ------------------------------------------------------

class XlsxSheet:
    """The workbook as raw cell values (what a person sees and types), header row first."""

    name = "xlsx"

    def __init__(self, folder: Path) -> None:
        self.path = folder / "team.xlsx"
        self.location = str(self.path)

    def create(self, rows: list[list[Any]]) -> None:
        from openpyxl import Workbook

        book = Workbook()
        book.active.title = SHEET
        book.create_sheet("说明")["A1"] = "keep me"
        book.save(self.path)
        self.put(rows)

    def rows(self) -> list[list[Any]]:
        from openpyxl import load_workbook

        sheet = load_workbook(self.path)[SHEET]
        rows = [["" if v is None else v for v in row] for row in sheet.iter_rows(values_only=True)]
        while rows and not any(str(v).strip() for v in rows[-1]):
            rows.pop()
        return rows

    def put(self, rows: list[list[Any]]) -> None:
        from openpyxl import load_workbook

        from sync.backends import _set

        book = load_workbook(self.path)
        sheet = book[SHEET]
        if sheet.max_row:
            sheet.delete_rows(1, sheet.max_row)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                _set(sheet.cell(row=r, column=c), value)
        book.save(self.path)

    def typed(self, text: str) -> Any:
        return text  # typed as text (a person formatting the column as text)

    def backend(self, sheet_id: int | None = None) -> Any:
        from sync.backends import XlsxBackend

        return XlsxBackend(self.path, SHEET)

    def writes(self, backend: Any) -> int:
        return backend.calls["write"]


class GoogleSheet:
    """The emulated Google Sheet as raw stored values; typed text is entered as the UI enters it
    (``USER_ENTERED``: digits become numbers, ``2024-05-01`` a date)."""

    name = "gsheets"
    key = "team-book"

    def __init__(self, folder: Path) -> None:
        import gspread

        from tests.fakes.sheets import FakeSheets

        self.fake = FakeSheets()
        self.location = f"https://docs.google.com/spreadsheets/d/{self.key}/edit#gid=0"
        self.client = gspread.Client(auth=None, session=self.fake.session())

    def create(self, rows: list[list[Any]]) -> None:
        self.fake.create(self.key, "CRM", {SHEET: [], "说明": [["keep me"]]}, rows=60)
        self.put(rows)

    def _sheet(self) -> Any:
        return self.fake.spreadsheets[self.key].sheet(SHEET)

    def rows(self) -> list[list[Any]]:
        sheet = self._sheet()
        height, width = sheet.used()
        return [[sheet.cells.get((r, c), "") for c in range(width)] for r in range(height)]

    def put(self, rows: list[list[Any]]) -> None:
        sheet = self._sheet()
        sheet.cells = {(r, c): v for r, row in enumerate(rows) for c, v in enumerate(row) if v not in ("", None)}
        sheet.formats = {}
        sheet.rows = max(sheet.rows, len(rows) + 5)

    def typed(self, text: str) -> Any:
        from tests.fakes.sheets import _entered

        return _entered(text)[0] if text else ""

    def backend(self, sheet_id: int | None = None) -> Any:
        from sync.backends import GoogleSheetsBackend, RetryPolicy

        return GoogleSheetsBackend(self.client, self.location, SHEET, sheet_id, RetryPolicy(sleep=lambda s: None))

    def writes(self, backend: Any) -> int:
        return backend.calls["values_write"] + backend.calls["structural"]


class Killed(Exception):
    """The process died here (raised from inside a run)."""


# --- the world --------------------------------------------------------------------------------

def reset(app: Any) -> None:
    """The database as every test starts it: the org and dictionaries, no customers or targets."""
    with app.app_context():
        db.session.rollback()
        for model in (SyncConflict, SyncRow, SyncRun, SyncTarget, CustomerAlias, DismissedPair,
                      CustomerStatusChange, FollowUp, Contact, Customer, AuditLog, CodeSequence):
            db.session.execute(delete(model))
        db.session.execute(update(AuditChainHead).values(seq=0, last_hash=""))
        db.session.commit()
        db.session.remove()


@dataclass
class Violation(AssertionError):
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.detail}"


@dataclass
class Stats:
    runs: int = 0
    rounds: int = 0
    stopped: int = 0
    failed: int = 0


def _credit(n: int) -> str:
    first = f"91110000{n:09d}"
    return first + validation.credit_code_check_char(first)


class Team:
    """One example: a target on one backend, the people editing, and the model's memory."""

    def __init__(self, app: Any, side: Any, setup: Setup, stats: Stats | None = None) -> None:
        self.app, self.side, self.setup = app, side, setup
        self.stats = stats or Stats()
        self.serial = 0
        self.lang = setup.lang
        self.header_of = dict(HEADERS[setup.lang])
        #: The model: what each side typed last since the last finished run, canonical, by (record id, field).
        self.crm_typed: dict[tuple[int, str], str] = {}
        self.sheet_typed: dict[tuple[int, str], str] = {}
        self.deleted_rows: set[int] = set()  # records whose row a person deleted since the last finished run
        self.archived_by_crm: set[int] = set()
        self.created_by_crm: set[int] = set()
        self.created_by_sync: set[int] = set()
        self.industries: list[tuple[str, str, str]] = []  # (code, label_en, label_zh)
        self.target_id = 0
        self._lookups: Any = None

    # --- helpers -------------------------------------------------------------------------------

    def next(self) -> int:
        self.serial += 1
        return self.serial

    @contextmanager
    def ctx(self) -> Any:
        with self.app.app_context():
            try:
                yield
            finally:
                self._lookups = None  # loaded entries belong to this context's session
                db.session.rollback()
                db.session.remove()

    def user(self, name: str) -> Any:
        return appbuilder.sm.find_user(username=name)

    def target(self) -> SyncTarget:
        return db.session.get(SyncTarget, self.target_id)

    def label(self, code: str) -> str:
        entry = next(e for e in self.industries if e[0] == code)
        return entry[2] if self.lang == "zh" else entry[1]

    # --- setup ---------------------------------------------------------------------------------

    def start(self) -> None:
        """N customers (East) and two of rep_c (South), synced to an empty sheet by a first run."""
        with self.ctx():
            self.industries = [(e.code, e.label_en, e.label_zh) for e in db.session.scalars(
                select(Industry).where(Industry.active.is_(True), Industry.parent_id.is_not(None))
                .order_by(Industry.id).limit(4))]
            owners = ["rep_a", "rep_b", "manager"]
            for n in range(self.setup.customers):
                self._create(owners[n % 3], industry=self.industries[n % 4][0] if n % 2 else None)
            for _ in range(2):
                self._create("rep_c")
            db.session.commit()
        self.side.create([[self.header_of[name] for name in COLUMNS]])
        with self.ctx():
            target = SyncTarget(name=f"team-{self.side.name}", backend=self.side.name, location=self.side.location,
                                worksheet=SHEET, run_as_id=self.user(RUN_AS).id, direction="both",
                                conflict_policy=self.setup.policy, deleted_rows=self.setup.deleted_rows)
            db.session.add(target)
            db.session.commit()
            self.target_id = target.id
        log, _ = self.run()
        assert log.status == "done", log.message
        with self.ctx():
            self.target().direction = self.setup.direction  # the settings changed after the first fill
            db.session.commit()

    def _create(self, owner: str, **extra: Any) -> Customer:
        n = self.next()
        values = {"name": f"客户{n}", "contact_name": f"联系人{n}", "contact_phone": f"139{n:08d}",
                  "email": f"c{n}@example.com", "note": f"备注{n}", "owner": self.user(owner)}
        if extra.get("industry"):
            values["industry"] = db.session.scalar(select(Industry).where(Industry.code == extra["industry"]))
        if n % 3 == 0:
            values["credit_code"] = _credit(n)
        customer = customer_rules.save_customer(values, self.user("admin"))
        self.created_by_crm.add(customer.id)
        return customer

    # --- running -------------------------------------------------------------------------------

    def run(self, fault: str | None = None, at: int = 1) -> tuple[Any, Any]:
        """One run (``fault`` injected); (run log or None when killed, backend)."""
        from sync import runner

        self.stats.runs += 1
        with self.app.app_context():
            target = self.target()
            backend = self.side.backend(target.sheet_id)
            patches = []
            if fault == "kill_write":
                patches.append(mock.patch.object(backend, "write", side_effect=Killed()))
            elif fault == "kill_bases":
                patches.append(mock.patch.object(runner, "_store_bases", side_effect=Killed()))
            elif fault in ("google_fail", "google_timeout") and self.side.name == "gsheets":
                for n in range(at, at + 6):  # every retry of that request fails too
                    self.side.fake.fail(n, 503 if fault == "google_fail" else "timeout")
            elif fault == "changed":
                patches.append(self._colleague_saves(backend))
            try:
                for patch in patches:
                    patch.start()
                try:
                    log = runner.run(target, backend)
                except Killed:
                    db.session.rollback()
                    return None, backend
                db.session.refresh(log)
                db.session.expunge(log)
                return log, backend
            finally:
                for patch in patches:
                    patch.stop()
                if self.side.name == "gsheets":
                    self.side.fake.faults.clear()
                    self.side.fake.actions.clear()
                db.session.rollback()
                db.session.remove()

    def _colleague_saves(self, backend: Any) -> Any:
        """A colleague types a note into the first data row between the run's read and its write."""
        original = backend.write

        def write(change: Any, token: Any) -> None:
            self._type_note_on_first_row()
            return original(change, token)

        return mock.patch.object(backend, "write", side_effect=write)

    def _type_note_on_first_row(self) -> None:
        rows = self.side.rows()
        if len(rows) < 2:
            return
        rows[1] = self._padded(rows[1])
        text = f"同事{self.next()}"
        rows[1][self.col("note")] = self.side.typed(text)
        self._track_sheet(rows[1], "note", text)
        self.side.put(rows)

    # --- sheet edits ---------------------------------------------------------------------------

    def col(self, name: str) -> int:
        return COLUMNS.index(name)

    def _padded(self, row: list[Any]) -> list[Any]:
        return list(row) + [""] * (len(COLUMNS) + 1 - len(row))

    def _code(self, row: list[Any]) -> str:
        return str(row[0]).strip() if row else ""

    def _record_by_code(self, code: str) -> Customer | None:
        return db.session.scalar(select(Customer).where(Customer.code == code)) if code else None

    def _track_sheet(self, row: list[Any], name: str, text: str) -> None:
        """Remember a sheet edit of a keyed row (canonical, as the sync reads it)."""
        with self.ctx():
            record = self._record_by_code(self._code(row))
            if record is None:
                return
            typed = self.canonical(name, self.side.typed(text))
            if typed != self.codec(light=True).app_text(record, name):  # the record's own value: no edit
                self.sheet_typed[(record.id, name)] = typed
            else:
                self.sheet_typed.pop((record.id, name), None)

    def canonical(self, name: str, raw: Any) -> str:
        """A typed cell as the CRM would store it (the sync's reading, then the customer rules'
        normalising: credit code upper case, e-mail lower case); invalid text stays as typed."""
        text = self.codec().sheet_text(name, sheet_cell(raw))
        step = {"credit_code": validation.normalize_credit_code, "email": validation.normalize_email,
                "name": validation.clean_line, "contact_name": validation.clean_line}.get(name)
        try:
            return (step(text) or "") if step and text else text
        except ValueError:
            return text

    def codec(self, light: bool = False) -> FieldCodec:
        """The sync's own reading of cells (labels, user names, phones); the dictionaries are
        loaded once per context (``light``: not at all, for CRM values only)."""
        mapping = {self.header_of[name]: name for name in FIELDS}
        if light:
            return FieldCodec.for_headers(CUSTOMER, mapping, True, {}, self.user(RUN_AS))
        if self._lookups is None:
            self._lookups = lookups_for(CUSTOMER.fields)
        return FieldCodec.for_headers(CUSTOMER, mapping, True, self._lookups, self.user(RUN_AS))

    def value(self, name: str, variant: int) -> str:
        """What a person types into a ``name`` cell: variants 0-3 valid (some written loosely:
        spaces in a phone, capitals in an e-mail or credit code), 4-5 invalid."""
        n = self.next()
        if variant >= 4 and name in ("name", "contact_phone", "email", "industry", "credit_code", "owner"):
            return {"name": "", "contact_phone": "12345", "email": "not-an-email", "industry": "不存在的行业",
                    "credit_code": "ABC", "owner": "nobody"}[name]
        if name == "name":
            return f"表格客户{n}"
        if name == "contact_name":
            return f"表格联系人{n}"
        if name == "contact_phone":
            number = f"137{n:08d}"
            return number if variant % 2 == 0 else f"{number[:3]} {number[3:7]} {number[7:]}"
        if name == "industry":
            return self.label(self.industries[variant % len(self.industries)][0])
        if name == "email":
            return f"s{n}@example.com" if variant % 2 == 0 else f"S{n}@Example.COM"
        if name == "credit_code":
            code = _credit(50000 + n)
            return code if variant % 2 == 0 else code.lower()
        if name == "owner":
            return OWNER_CELLS[variant % len(OWNER_CELLS)]
        return f"表格备注{n}"

    def new_row(self, code: str = "", variant: int = 0) -> list[Any]:
        n = self.next()
        values = {"name": f"新客户{n}", "contact_name": f"新联系人{n}", "contact_phone": f"136{n:08d}",
                  "email": f"n{n}@example.com", "note": f"新备注{n}", "owner": "", "industry": "", "credit_code": ""}
        if variant == 1:
            values["email"] = f"N{n}@Example.com"  # normalised by the CRM: must reach the sheet in the same run
        if variant == 2:
            values["credit_code"] = _credit(70000 + n).lower()
        if variant == 3:
            values["contact_phone"] = ""  # required: refused with a reason
        if variant == 4:
            values["contact_name"] = ""  # no contact name: found again only by its content (issue fault 2)
        if variant == 5:  # someone types a customer the CRM has (issue fault 10 with a phone edit in the round)
            with self.ctx():
                live = self._customers()
                if live:
                    like = live[n % len(live)]
                    values.update(name=like.name, contact_name=like.contact_name or "",
                                  contact_phone=like.contact_phone)
        row = [code] + [self.side.typed(values[name]) for name in FIELDS]
        return self._padded(row)

    def apply(self, op: Op) -> None:
        """Apply one edit (``op_<kind>``)."""
        getattr(self, f"op_{op.kind}")(op)

    def _data(self) -> tuple[list[list[Any]], list[list[Any]]]:
        rows = self.side.rows()
        return rows[:1], [self._padded(r) for r in rows[1:]]

    def op_cell(self, op: Op) -> None:
        """Someone types into a cell: row ``a``, field ``b``, value variant ``c`` (``value``)."""
        head, data = self._data()
        if not data:
            return
        row = data[op.a % len(data)]
        name = FIELDS[op.b % len(FIELDS)]
        text = self.value(name, op.c)
        row[self.col(name)] = self.side.typed(text)
        self._track_sheet(row, name, text)
        self.side.put(head + data)

    def op_settle(self, op: Op) -> None:
        """Someone types the CRM's current value into a cell (by hand, e.g. to settle a conflict)."""
        head, data = self._data()
        if not data:
            return
        row, name = data[op.a % len(data)], FIELDS[op.b % len(FIELDS)]
        with self.ctx():
            record = self._record_by_code(self._code(row))
            if record is None:
                return
            codec = self.codec()
            shown = codec.display(name, codec.app_text(record, name))
        row[self.col(name)] = self.side.typed(shown) if isinstance(shown, str) else shown
        self._track_sheet(row, name, str(shown))
        self.side.put(head + data)

    def op_owner(self, op: Op) -> None:
        """An owner cell typed (``OWNER_CELLS``)."""
        self.op_cell(Op("cell", op.a, FIELDS.index("owner"), op.b % len(OWNER_CELLS)))

    def op_add(self, op: Op) -> None:
        """A new row typed below the table (variant ``c``; every third one typed twice)."""
        head, data = self._data()
        row = self.new_row(variant=op.c % 6)
        data.append(row)
        if op.b % 3 == 0:  # the same new customer typed twice (two people, or a paste)
            data.append(list(row))
        self.side.put(head + data)

    def op_insert(self, op: Op) -> None:
        """A new row inserted in the middle of the table."""
        head, data = self._data()
        data.insert(op.a % (len(data) + 1), self.new_row(variant=op.c % 6))
        self.side.put(head + data)

    def op_delete(self, op: Op) -> None:
        """A row deleted (its pending sheet edits go with it)."""
        head, data = self._data()
        if not data:
            return
        row = data.pop(op.a % len(data))
        with self.ctx():
            record = self._record_by_code(self._code(row))
            if record is not None:
                self.deleted_rows.add(record.id)
                for key in [k for k in self.sheet_typed if k[0] == record.id]:
                    del self.sheet_typed[key]
        self.side.put(head + data)

    def op_sort(self, op: Op) -> None:
        """The sheet sorted by one column (codes and all move)."""
        head, data = self._data()
        column = 1 + op.a % len(FIELDS)
        data.sort(key=lambda r: str(r[column]), reverse=bool(op.b % 2))
        self.side.put(head + data)

    def op_copy(self, op: Op) -> None:
        """A row copy-pasted with its code: the run stops (one row per code) and changes nothing;
        the person then clears the copy's code, as the message asks."""
        head, data = self._data()
        keyed = [r for r in data if self._code(r)]
        if not keyed:
            return
        copy = list(keyed[op.a % len(keyed)])
        data.insert(op.b % (len(data) + 1), copy)
        self.side.put(head + data)
        before = self.snapshot()
        log, _ = self.run()
        self._check_stopped(log, before, "same code")
        head, data = self._data()
        index = max(i for i, r in enumerate(data) if r == copy or self._code(r) == self._code(copy))
        data[index][0] = ""
        self.side.put(head + data)

    def op_clear_code(self, op: Op) -> None:
        """A code cell cleared by mistake: the row is linked back to its record, with its agreement."""
        head, data = self._data()
        keyed = [r for r in data if self._code(r)]
        if "archived_twin" in avoided():  # team_faults.md #11: not the row of an archived customer
            with self.ctx():
                keyed = [r for r in keyed if (c := self._record_by_code(self._code(r))) is None or c.archived_at is None]
        if keyed:
            keyed[op.a % len(keyed)][0] = ""
            self.side.put(head + data)

    def op_retype(self, op: Op) -> None:
        """A synced row deleted earlier is typed again with its code (as it was)."""
        with self.ctx():
            on_sheet = {self._code(r) for r in self.side.rows()[1:]}
            gone = [r for r in db.session.scalars(select(SyncRow).where(SyncRow.target_id == self.target_id)
                                                  .order_by(SyncRow.id)) if r.key and r.key not in on_sheet]
            if not gone:
                return
            agreed = gone[op.a % len(gone)]
            codec = self.codec()
            row = [agreed.key] + [codec.display(name, agreed.base.get(name, "")) for name in FIELDS]
            self.deleted_rows.discard(agreed.record_id)
        head, data = self._data()
        data.insert(op.b % (len(data) + 1), self._padded([self.side.typed(str(v)) if isinstance(v, str) else v
                                                         for v in row]))
        self.side.put(head + data)

    def op_header(self, op: Op) -> None:
        """A header retyped in another case or with spaces around it."""
        head, data = self._data()
        column = 1 + op.a % len(FIELDS)
        text = str(head[0][column])
        head[0][column] = [text.lower(), text.upper(), f" {text} "][op.b % 3]
        self.side.put(head + data)

    # --- CRM edits (the use cases) ----------------------------------------------------------------

    def _customers(self, live: bool | None = True, scope: bool = True) -> list[Customer]:
        query = select(Customer).order_by(Customer.id)
        if live is True:
            query = query.where(Customer.archived_at.is_(None))
        elif live is False:
            query = query.where(Customer.archived_at.is_not(None))
        found = db.session.scalars(query).all()
        return [c for c in found if not scope or c.owner.username != "rep_c"]

    def _save(self, customer: Customer, values: dict[str, Any], editor: str = "admin") -> bool:
        try:
            customer_rules.save_customer(values, self.user(editor), pk=customer.id, version=customer.version,
                                         allow_duplicate=True)
            db.session.commit()
            return True
        except (RuleViolation, ValueError):
            db.session.rollback()
            return False

    def op_crm_edit(self, op: Op) -> None:
        """One field of a customer changed in the CRM (``save_customer``, as a form saves it)."""
        with self.ctx():
            live = self._customers(scope=False)
            if not live:
                return
            customer = live[op.a % len(live)]
            name = [f for f in FIELDS if f != "owner"][op.b % (len(FIELDS) - 1)]
            n = self.next()
            typed: Any = {"name": f"CRM客户{n}", "contact_name": f"CRM联系人{n}", "contact_phone": f"135{n:08d}",
                          "email": f"crm{n}@example.com", "credit_code": _credit(90000 + n),
                          "note": f"CRM备注{n}"}.get(name)
            if name == "industry":
                code = self.industries[op.c % len(self.industries)][0]
                typed = db.session.scalar(select(Industry).where(Industry.code == code))
            pk = customer.id
            if self._save(customer, {name: typed}):
                record = db.session.get(Customer, pk)
                self.crm_typed[(pk, name)] = self.codec().app_text(record, name)

    def op_crm_create(self, op: Op) -> None:
        """A customer added in the CRM (sometimes outside the run-as user's scope)."""
        with self.ctx():
            self._create(["rep_a", "rep_b", "rep_c"][op.a % 3])
            db.session.commit()

    def op_crm_archive(self, op: Op) -> None:
        """A customer archived in the CRM (the CRM's delete)."""
        with self.ctx():
            live = self._customers(scope=False)
            if "archived_twin" in avoided():  # team_faults.md #11: not a customer a keyless row repeats
                keyless = {tuple(str(v) for v in r[1:4]) for r in self.side.rows()[1:] if not self._code(r)}
                live = [c for c in live if (c.name, c.contact_name or "", c.contact_phone) not in keyless]
            if live:
                customer = live[op.a % len(live)]
                customer_rules.archive(customer, may_delete_won=True)
                self.archived_by_crm.add(customer.id)
                db.session.commit()

    def op_crm_restore(self, op: Op) -> None:
        """An archived customer restored (``restore_customers``; a merged-away one gets its code back)."""
        with self.ctx():
            archived = self._customers(live=False, scope=False)
            if archived:
                customer = archived[op.a % len(archived)]
                customer_rules.restore_customers([customer.id], self.user("admin"))
                db.session.commit()

    def op_crm_merge(self, op: Op) -> None:
        """Two customers merged (the dedup tool's merge, default picks)."""
        with self.ctx():
            live = self._customers()
            if len(live) < 2:
                return
            survivor = live[op.a % len(live)]
            other = live[(op.a + 1 + op.b % (len(live) - 1)) % len(live)]
            codec = self.codec(light=True)
            for key in [k for k, typed in self.sheet_typed.items()  # reached the CRM before the merge
                        if k[0] == other.id and codec.app_text(other, k[1]) == typed]:
                del self.sheet_typed[key]  # the merge's picks decide now (a person chose them)
            try:
                merge_service.merge(survivor, [other], {}, self.user("admin"))
                db.session.commit()
                self.archived_by_crm.add(other.id)
            except RuleViolation:
                db.session.rollback()

    def op_crm_owner(self, op: Op) -> None:
        """A customer handed to another owner (rep_c: out of the run-as user's scope)."""
        with self.ctx():
            live = self._customers(scope=False)
            if live:
                customer = live[op.a % len(live)]
                self._save(customer, {"owner": self.user(["rep_a", "rep_b", "rep_c", "manager"][op.b % 4])})

    # --- snapshots and checks -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything a person could notice: the sheet, every customer, the open conflicts."""
        with self.ctx():
            codec = self.codec(light=True)
            customers = {c.id: (c.code, c.archived_at is not None, c.owner.username,
                                tuple(codec.app_text(c, name) for name in FIELDS))
                         for c in db.session.scalars(select(Customer))}
            conflicts = sorted((c.record_id, c.field, c.key) for c in db.session.scalars(
                select(SyncConflict).where(SyncConflict.resolved_at.is_(None))))
        return {"sheet": [[str(v) for v in r] for r in self.side.rows()], "customers": customers,
                "conflicts": conflicts}

    def _check_stopped(self, log: Any, before: dict[str, Any], why: str) -> None:
        if log is None or log.status != "stopped":
            raise Violation("guard", f"expected a stopped run ({why}), got {getattr(log, 'status', None)}: "
                                     f"{getattr(log, 'message', '')}")
        after = self.snapshot()
        if after != before:
            raise Violation("guard", "a stopped run changed something")

    def round(self, round_: Round) -> None:
        """A person's edits, then a run (with its fault); a run that finishes is checked."""
        self.stats.rounds += 1
        for op in round_.ops:
            if OP_KINDS.get(op.kind) in avoided():
                continue
            self.apply(op)
        fault = round_.fault
        if fault in ("google_fail", "google_timeout") and self.side.name != "gsheets":
            fault = "changed"
        self.sync_and_check(fault, round_.at)

    def sync_and_check(self, fault: str | None = None, at: int = 1) -> None:
        before = self.snapshot()
        log, backend = self.run(fault, at)
        self._check_not_running()
        if fault is not None:
            if log is not None and log.status == "done" and fault in ("kill_write", "kill_bases"):
                raise Violation("fault", "a killed run reported done")
            self.stats.failed += 1  # judged after the next run that finishes (edits stay pending)
            return
        if log.status == "stopped":
            self.stats.stopped += 1
            self._check_stopped(log, before, "guard")
            self._unblock(log)
            return
        if log.status != "done":
            raise Violation("owner" if "owner" in str(log.message).lower() else "failed",
                            f"a run without a fault ended {log.status}: {log.message}")
        self.judge(before, log)

    def _unblock(self, log: Any) -> None:
        """What a person does about a stopped run: rename a changed header back, or allow the
        deletions, then the next round's run goes on."""
        text = str(log.message)
        if "renamed" in text or "missing" in text:
            head, data = self._data()
            head[0] = [self.header_of[name] for name in COLUMNS] + list(head[0][len(COLUMNS):])
            self.side.put(head + data)
        elif "gone from the sheet" in text:
            with self.ctx():
                self.target().max_shrink_percent = 100
                db.session.commit()
        else:
            raise Violation("guard", f"an unexpected stop: {text}")

    def _check_not_running(self) -> None:
        with self.ctx():
            if self.target().running_since is not None:
                raise Violation("owner", "the target is left running after a run")

    def judge(self, before: dict[str, Any], log: Any) -> None:
        """A finished run: a second run with no edits changes nothing, then the invariants."""
        settled = self.snapshot()
        quiet, backend = self.run()
        if quiet is None or quiet.status != "done":
            raise Violation("quiet", f"the run after a finished one ended {getattr(quiet, 'status', None)}: "
                                     f"{getattr(quiet, 'message', '')}")
        moved = {k: v for k, v in (quiet.counts or {}).items()
                 if v and k.startswith(("app_", "sheet_")) and not k.endswith("_rejected")}  # refusals repeat
        after = self.snapshot()
        if moved or after["sheet"] != settled["sheet"] or after["customers"] != settled["customers"]:
            raise Violation("quiet", f"a run with no edits changed something: counts {moved}, "
                                     f"sheet {_diff(settled['sheet'], after['sheet'])}, "
                                     f"CRM {_diff_map(settled['customers'], after['customers'])}")
        if self.side.name == "gsheets" and quiet.api_calls != {"read": 1}:
            raise Violation("quiet", f"a run with no edits cost {quiet.api_calls}, not one read")
        if self.side.name == "xlsx" and self.side.writes(backend):
            raise Violation("quiet", "a run with no edits rewrote the workbook")
        self.check(before, after)
        self.crm_typed.clear()
        self.sheet_typed.clear()
        self.deleted_rows.clear()
        self.archived_by_crm.clear()

    def check(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        with self.ctx():
            target, codec = self.target(), self.codec()
            data = self.side.backend().read()
            head = data.headers
            keyed = {header_key(text): index for index, text in enumerate(head)}  # as the sync finds them
            cols = {name: keyed[header_key(self.header_of[name])] for name in FIELDS}
            status_col = head.index(STATUS) if STATUS in head else None
            rows = {}
            for row in data.rows:
                code = str(row[0]).strip()
                if code:
                    rows[code] = ({name: codec.sheet_text(name, row[cols[name]]) for name in FIELDS},
                                  str(row[status_col]).strip() if status_col is not None else "")
            customers = {c.id: c for c in db.session.scalars(select(Customer))}
            in_scope = {pk for pk, c in customers.items() if c.owner.username != "rep_c"}
            conflicts = {(c.record_id, c.field) for c in db.session.scalars(
                select(SyncConflict).where(SyncConflict.target_id == self.target_id,
                                           SyncConflict.resolved_at.is_(None)))}
            aliases = {a.merged_from_id: a.customer_id for a in db.session.scalars(select(CustomerAlias))}
            self.created_by_sync |= {pk for pk in customers if pk not in before["customers"]} - self.created_by_crm
            self._check_names(customers, aliases)
            self._check_scope(before, after, customers, in_scope)
            self._check_vanished(before, customers, rows, target, conflicts, in_scope)
            self._check_agreement(rows, customers, in_scope, conflicts, codec, target)
            self._check_stale(rows, customers, conflicts, codec)
            self._check_sheet_edits(rows, customers, aliases, conflicts, codec, target, in_scope)
            self._check_crm_edits(rows, customers, conflicts, codec, target, in_scope)

    def _check_names(self, customers: dict[int, Customer], aliases: dict[int, int]) -> None:
        """One customer per identity (name, contact, phone: the duplicate rule's key; with a part
        blank, which the rule never matches, the whole row as typed): two live
        ones = a row created twice; a live one like an archived one that was not merged away =
        a row of an archived customer made into a new customer (kind "archived_twin")."""
        seen: dict[tuple, Customer] = {}
        for c in sorted(customers.values(), key=lambda c: (c.archived_at is not None, c.id)):
            key = (c.name, c.contact_name, c.contact_phone)
            if not all(key):  # the rule matches no blanks (as forms and imports): same only if typed the same
                key += (c.email, c.note, c.credit_code, c.industry_id)
            first = seen.setdefault(key, c)
            if first is c:
                continue
            if c.archived_at is None:
                raise Violation("duplicate", f"{c.name} was created twice: {first.code} and {c.code}")
            if c.id not in aliases and first.id in self.created_by_sync:
                raise Violation("archived_twin", f"{first.code} was created from a row of the archived {c.code}")

    def _check_scope(self, before: dict, after: dict, customers: dict[int, Customer], in_scope: set[int]) -> None:
        """Rows of customers outside the run-as user's scope are never written by the sync."""
        outside = {c.code for pk, c in customers.items() if pk not in in_scope}
        width = len(COLUMNS)
        was = {r[0]: r[:width] for r in before["sheet"][1:] if r and r[0] in outside}
        for row in after["sheet"][1:]:
            if row and row[0] in outside and row[:width] != was.get(row[0], row[:width]) or (
                    row and row[0] in outside and row[0] not in was):
                raise Violation("scope", f"the out-of-scope customer {row[0]} reached the sheet: {row[:width]}")

    def _check_vanished(self, before: dict, customers: dict[int, Customer], rows: dict, target: SyncTarget,
                        conflicts: set, in_scope: set[int]) -> None:
        """Nothing vanishes outside a deletion policy, and live records stay on the sheet."""
        for pk, (code, archived, _, _) in before["customers"].items():
            c = customers[pk]
            if not archived and c.archived_at is not None and pk not in self.archived_by_crm and not (
                    target.deleted_rows == "archive" and pk in self.deleted_rows and target.direction != "push"):
                raise Violation("vanished", f"{code} was archived by the sync without a deletion policy")
        if target.direction == "pull":
            return
        for pk in in_scope:
            c = customers[pk]
            if c.archived_at is None and c.code not in rows and (pk, "_row") not in conflicts:
                raise Violation("vanished", f"live customer {c.code} is missing from the sheet without a reason")

    def _check_agreement(self, rows: dict, customers: dict[int, Customer], in_scope: set[int], conflicts: set,
                         codec: FieldCodec, target: SyncTarget) -> None:
        """Rows in sync (no status, no open conflict) agree with the CRM on every mapped field."""
        if target.direction == "pull":
            return
        for pk in in_scope:
            c = customers[pk]
            if c.archived_at is not None or c.code not in rows:
                continue
            sheet, status = rows[c.code]
            if status:
                continue
            for name in FIELDS:
                if (pk, name) not in conflicts and sheet[name] != codec.app_text(c, name):
                    raise Violation("agreement", f"{c.code} {name}: sheet {sheet[name]!r}, CRM "
                                                 f"{codec.app_text(c, name)!r}")

    def _check_stale(self, rows: dict, customers: dict[int, Customer], conflicts: set, codec: FieldCodec) -> None:
        """An open conflict is about a real disagreement (not one both sides settled by typing)."""
        with_keys = db.session.scalars(select(SyncConflict).where(SyncConflict.target_id == self.target_id,
                                                                  SyncConflict.resolved_at.is_(None)))
        for conflict in with_keys:
            c = customers.get(conflict.record_id)
            if c is None or c.code not in rows or conflict.key != c.code:
                continue
            sheet, _ = rows[c.code]
            if conflict.field == "_row":
                raise Violation("stale", f"a 'row deleted' conflict on {c.code} is open while its row is on the sheet")
            if sheet.get(conflict.field) == codec.app_text(c, conflict.field):
                raise Violation("stale", f"a conflict on {c.code} {conflict.field} is open while both sides hold "
                                         f"{sheet.get(conflict.field)!r}")

    def _check_sheet_edits(self, rows: dict, customers: dict[int, Customer], aliases: dict[int, int],
                           conflicts: set, codec: FieldCodec, target: SyncTarget, in_scope: set[int]) -> None:
        """A sheet edit reached the CRM, or lost to the CRM by the policy, or has a reason."""
        if target.direction == "push":
            return
        for (pk, name), typed in self.sheet_typed.items():
            record = customers[aliases.get(pk, pk)]
            codes = {customers[pk].code, record.code}
            if codec.app_text(record, name) == typed or (record.id, name) in conflicts or \
                    (record.id, "_row") in conflicts:
                continue
            if any(code in rows and rows[code][1] for code in codes):
                continue  # the row says why
            crm = self.crm_typed.get((record.id, name))
            if crm is not None and target.conflict_policy in ("app", "newest") and target.direction == "both" \
                    and codec.app_text(record, name) == crm:
                continue  # both changed it: the CRM's won by the policy
            raise Violation("lost", f"{customers[pk].code} {name}: typed {typed!r} in the sheet, the CRM holds "
                                    f"{codec.app_text(record, name)!r}, no conflict and no row status")

    def _check_crm_edits(self, rows: dict, customers: dict[int, Customer], conflicts: set, codec: FieldCodec,
                         target: SyncTarget, in_scope: set[int]) -> None:
        """A CRM edit stays in the CRM (unless a sheet edit won by the policy) and reaches the row."""
        for (pk, name), typed in self.crm_typed.items():
            c = customers[pk]
            if c.archived_at is not None or pk not in in_scope:
                continue
            now = codec.app_text(c, name)
            sheet_typed = self.sheet_typed.get((pk, name))
            if now != typed and not (sheet_typed is not None and now == sheet_typed) and \
                    (pk, name) not in conflicts:
                raise Violation("reverted", f"{c.code} {name}: typed {typed!r} in the CRM, the CRM holds {now!r}")
            if target.direction == "pull" or (pk, name) in conflicts or (pk, "_row") in conflicts:
                continue
            if c.code in rows and rows[c.code][0][name] != now and not rows[c.code][1]:
                raise Violation("lost", f"{c.code} {name}: the CRM's {now!r} never reached the sheet "
                                        f"({rows[c.code][0][name]!r})")

    def play(self, script_rounds: tuple[Round, ...]) -> None:
        for round_ in script_rounds:
            self.round(round_)
        if script_rounds and script_rounds[-1].fault is not None:
            self.sync_and_check()  # the next scheduled run after a fault converges


def _diff(a: list[list[str]], b: list[list[str]]) -> str:
    changed = [(i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    return f"{len(a)}->{len(b)} rows, changed {changed[:3]}"


def _diff_map(a: dict, b: dict) -> str:
    return str([(k, a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)][:3])


def play(app: Any, side: Any, script: Script, stats: Stats | None = None) -> Team:
    """One example from a clean database: set up, then every round."""
    reset(app)
    team = Team(app, side, script.setup, stats)
    team.start()
    team.play(script.rounds)
    return team
