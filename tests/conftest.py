"""Fixtures in the flaskr style: ``app``, ``client``, ``auth``, plus an org and factories.

FAB's AppBuilder binds to one app per process, so the app and its migrated database are
built once per test session; every test then starts from the same org and dictionaries,
with customer data cleared after it. ``TEST_DATABASE_URL`` (or ``DATABASE_URL``) runs the
whole suite on PostgreSQL.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import delete, select, text, update

os.environ.setdefault("CRM_SCHEDULER", "0")
# Each run keeps its instance files (import reports, exports, locks) in a folder of its own:
# two suites at once on one checkout (SQLite and PostgreSQL) never write each other's files.
os.environ.setdefault("CRM_INSTANCE_DIR", tempfile.mkdtemp(prefix="crm-test-instance-"))

from app import create_app  # noqa: E402
from app.extensions import appbuilder, db  # noqa: E402
from app.models import (  # noqa: E402
    DICTIONARIES,
    Activity,
    ApprovalAction,
    ApprovalApprover,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalStep,
    AssignmentRule,
    AssignmentRuleUser,
    Attachment,
    AuditChainHead,
    AuditLog,
    BackupRun,
    BackupVerification,
    Campaign,
    CodeSequence,
    CompanyAsset,
    Competitor,
    Contact,
    Contract,
    ContractOrder,
    CrmSetting,
    CrmUser,
    Customer,
    CustomerAlias,
    CustomerStatusChange,
    CustomerType,
    CustomField,
    DailyCheck,
    Delivery,
    DeliveryLine,
    Demand,
    Department,
    DigestSent,
    DismissedPair,
    EndpointTiming,
    ErasureRun,
    ErrorEvent,
    FollowUp,
    ImportMapping,
    JobRun,
    Lead,
    LeadStatusChange,
    Notification,
    NotificationPreference,
    OnlineSample,
    Opportunity,
    OpportunityLine,
    OpportunityStageChange,
    OrderLine,
    OutboxAttachment,
    OutboxMessage,
    Payment,
    Product,
    RecoveryCode,
    RestoreRun,
    RetentionCase,
    RoleDataScope,
    SalesOrder,
    SalesTarget,
    SavedReport,
    SavedReportRecipient,
    SavedReportRole,
    ServiceFeedback,
    SlowRequest,
    Stage,
    StepUpGrant,
    SyncConflict,
    SyncRow,
    SyncRun,
    SyncTarget,
    Ticket,
    TicketLog,
    TotpCredential,
    TransferJob,
    TransferRule,
    TransferSchedule,
)
from app.models.duplicates import (  # noqa: E402
    DuplicateCluster,
    DuplicateDirty,
    DuplicateKey,
    DuplicateMember,
    DuplicateScan,
    DuplicateState,
)
from app.security import totp as totp_service  # noqa: E402
from config import TestConfig  # noqa: E402

PASSWORD = "Test-Pass-1234"
#: PostgreSQL application_name of the suite's own connections.
TEST_CONNECTIONS = "crm-tests"
#: username -> (role, department key)
USERS = {
    "admin": ("Admin", None),
    "manager": ("Sales Manager", "east"),
    "rep_a": ("Sales Rep", "east"),
    "rep_b": ("Sales Rep", "east_team"),
    "rep_c": ("Sales Rep", "south"),
    "manager_s": ("Sales Manager", "south"),
    "service": ("Customer Service", "service"),
    "viewer": ("Read Only", None),
}


def _reset_database(url: str) -> None:
    """Start PostgreSQL runs from an empty schema (SQLite test files are always new)."""
    if url.startswith("postgresql"):
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))


def _build_org() -> None:
    east = Department(name="East")
    team = Department(name="East Team", parent=east)
    south = Department(name="South")
    service = Department(name="Service")
    db.session.add_all([east, team, south, service])
    db.session.flush()
    departments = {"east": east, "east_team": team, "south": south, "service": service}
    sm = appbuilder.sm
    for username, (role, dep) in USERS.items():
        user = sm.add_user(username, username.title(), "Test", f"{username}@example.com",
                           sm.find_role(role), password=PASSWORD)
        db.session.get(CrmUser, user.id).department = departments.get(dep)
    db.session.commit()


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    TestConfig.SQLALCHEMY_DATABASE_URI = url
    if url.startswith("postgresql"):
        # Named, so the clean-up finds this process's connections; a lock wait fails after
        # a minute with the statement named instead of stopping the run (CI's limit).
        TestConfig.SQLALCHEMY_ENGINE_OPTIONS = {
            "pool_pre_ping": True,
            "connect_args": {"application_name": TEST_CONNECTIONS, "options": "-c lock_timeout=60s"}}
    application = create_app(TestConfig)
    with application.app_context():
        from flask_migrate import upgrade

        from app.services.setup import initialise

        _reset_database(url)
        upgrade()
        initialise()
        # Admin requires an authenticator by default; tests enrol only when they ask for it
        # (the same reset as after each test in _clean_data).
        db.session.execute(update(RoleDataScope).values(totp_required=False))
        from app.services import company

        company.forget()  # the zone, language, date format and logo kept in memory
        _build_org()
    yield application


@pytest.fixture(autouse=True)
def _fresh_process_memory(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work a process does once a while (the request timer's flush once a minute, the
    company values' reload every 30 s) starts its interval with each test, so a test that
    counts statements or requests sees only its own: the session's app would otherwise
    flush every earlier test's timings inside whichever request crosses the minute."""
    from app.clock import utc_now
    from app.services import company, custom_fields
    from app.services.monitoring import timer

    fresh = timer.Timings()
    fresh.flushed_at = utc_now()
    monkeypatch.setattr(timer, "TIMINGS", fresh)
    with app.app_context():
        company.refresh(force=True)
        custom_fields.refresh(force=True)


@pytest.fixture(autouse=True)
def _clean_data(app: Any) -> Any:
    """Each test sees the org and dictionaries only; customer data, audit entries,
    authenticators, extra users and rate-limit counters are removed after it."""
    yield
    with app.app_context():
        db.session.rollback()
        leaked = _end_leaked_transactions()
        for model in (ErasureRun, BackupVerification, RestoreRun, BackupRun, EndpointTiming, SlowRequest, OnlineSample,
                      ErrorEvent, JobRun, DailyCheck, RetentionCase, CompanyAsset,
                      SavedReportRecipient, SavedReportRole, SavedReport, SalesTarget,
                      ApprovalAction, ApprovalApprover, ApprovalRequest, ApprovalStep, ApprovalPolicy,
                      Payment, DeliveryLine, Delivery, ContractOrder, Contract, OrderLine, SalesOrder, Campaign,
                      TicketLog, Ticket, ServiceFeedback, Demand, Attachment, TransferRule,
                      OutboxAttachment, OutboxMessage, Notification, NotificationPreference, DigestSent,
                      CrmSetting, Activity,
                      SyncConflict, SyncRow, SyncRun, SyncTarget,
                      TransferJob, TransferSchedule, ImportMapping, DuplicateMember, DuplicateCluster,
                      DuplicateKey, DuplicateDirty, DuplicateScan, DuplicateState, CustomerAlias, DismissedPair,
                      LeadStatusChange, Lead, AssignmentRuleUser, AssignmentRule, OpportunityLine, Competitor,
                      OpportunityStageChange, Opportunity, Product, Contact,
                      CustomerStatusChange, FollowUp, Customer, AuditLog, CodeSequence,
                      TotpCredential, RecoveryCode, StepUpGrant, CustomField):
            db.session.execute(delete(model))
        _drop_custom_field_indexes()
        _reset_stages_and_departments()
        _reset_task_templates()
        _reset_service_desk()
        _reset_approval_policies()
        for dictionary in DICTIONARIES:  # tests retire entries (all are seeded active)
            db.session.execute(update(dictionary).where(dictionary.active.is_(False)).values(active=True))
        db.session.execute(delete(AuditLog))  # the resets above are audited (approval policies)
        db.session.execute(update(AuditChainHead).values(seq=0, last_hash=""))
        db.session.execute(update(RoleDataScope).values(totp_required=False))
        _remove_extra_users()
        db.session.execute(CrmUser.__table__.update().values(
            active=True, expires_on=None, deactivated_at=None, last_login=None, last_name="Test", language=None,
            last_seen_at=None))
        for username in USERS:  # own-profile tests rename themselves; notification tests change contacts
            db.session.execute(CrmUser.__table__.update().where(CrmUser.username == username)
                               .values(first_name=username.title(), email=f"{username}@example.com", phone=None))
        db.session.commit()
        db.session.remove()
        appbuilder.sm.limiter.reset()
    if leaked:
        pytest.fail(f"the test left a transaction open on another connection: {leaked}")


def _end_leaked_transactions() -> list[str]:
    """PostgreSQL: this process's other connections still inside a transaction once the test
    is over (a session nobody closed) are ended, and their last statements returned: such a
    transaction holds its locks until garbage collection happens to close it, and the
    clean-up's DROP INDEX would wait for it for ever."""
    if db.engine.dialect.name != "postgresql":
        return []
    rows = db.session.execute(text(
        "SELECT pid, left(query, 200) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = :name AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"),
        {"name": TEST_CONNECTIONS}).all()
    for pid, _ in rows:
        db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    db.session.rollback()
    return [query for _, query in rows]


def _drop_custom_field_indexes() -> None:
    """Expression indexes the custom-fields screen made for searchable fields (``ix_cf_…``)."""
    if db.engine.dialect.name == "postgresql":
        names = db.session.scalars(text("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix\\_cf\\_%'"))
    else:
        names = db.session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'index' "
                                        "AND name LIKE 'ix\\_cf\\_%' ESCAPE '\\'"))
    for name in list(names):
        db.session.execute(text(f'DROP INDEX IF EXISTS "{name}"'))


def _reset_stages_and_departments() -> None:
    """Stages as seeded (edit-form walks rename them) and the org's departments as built."""
    from app.services.setup import stage_rows

    db.session.execute(delete(Stage))
    db.session.add_all(stage_rows())
    db.session.execute(update(Department.__table__).values(manager_id=None))  # department_managers
    departments = dict(db.session.execute(select(Department.name, Department.id)).all())
    keys = {"east": "East", "east_team": "East Team", "south": "South", "service": "Service"}
    for username, (_, dep) in USERS.items():  # Core updates: no ORM flush hooks (audit, accounts)
        db.session.execute(update(CrmUser.__table__).where(CrmUser.username == username)
                           .values(department_id=departments.get(keys.get(dep, ""))))
    extra = [pk for name, pk in departments.items() if name not in keys.values()]
    if extra:
        db.session.execute(update(CrmUser.__table__).where(CrmUser.department_id.in_(extra))
                           .values(department_id=None))
        db.session.execute(update(Department.__table__).where(Department.id.in_(extra))
                           .values(parent_id=None, manager_id=None))
        # a test may hang a built department under an extra one (East under a head office)
        db.session.execute(update(Department.__table__).where(Department.parent_id.in_(extra))
                           .values(parent_id=None))
        db.session.execute(delete(Department.__table__).where(Department.id.in_(extra)))


def _reset_task_templates() -> None:
    """The task templates as seeded (tests deactivate and edit them)."""
    from app.models import ActivityTemplate
    from app.services.activities import seed_templates

    db.session.execute(delete(ActivityTemplate))
    seed_templates()


def _reset_service_desk() -> None:
    """SLA policies and working calendars as seeded (tests edit them); ticket scopes as seeded."""
    from app.services import sla

    reset = getattr(sla, "reset_to_seed", None)
    if reset is not None:
        reset()
    db.session.execute(update(RoleDataScope).values(ticket_scope="customer"))
    service_role = appbuilder.sm.find_role("Customer Service")
    db.session.execute(update(RoleDataScope).where(RoleDataScope.role_id == service_role.id)
                       .values(ticket_scope="team"))


def _reset_approval_policies() -> None:
    """The default approval policies as seeded (tests add and edit policies)."""
    from app.services import approvals

    approvals.seed_defaults()


@pytest.fixture
def department_managers(app: Any) -> dict[str, str]:
    """East is managed by ``manager`` (East Team has none: its requests walk up to East),
    South by ``manager_s``; cleared after the test. Returns department -> manager username."""
    managers = {"East": "manager", "South": "manager_s"}
    with app.app_context():
        for department, username in managers.items():
            db.session.execute(update(Department).where(Department.name == department).values(
                manager_id=select(CrmUser.id).where(CrmUser.username == username).scalar_subquery()))
        db.session.commit()
    return managers


def _remove_extra_users() -> None:
    from flask_appbuilder.security.sqla.models import assoc_user_role

    extra = db.session.scalars(select(CrmUser.id).where(CrmUser.username.not_in(list(USERS)))).all()
    if extra:
        db.session.execute(update(Department).where(Department.manager_id.in_(extra)).values(manager_id=None))
        db.session.execute(delete(assoc_user_role).where(assoc_user_role.c.user_id.in_(extra)))
        db.session.execute(delete(CrmUser).where(CrmUser.id.in_(extra)))


@pytest.fixture
def shanghai(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CRM's zone is Asia/Shanghai for the test (UTC+8: days and 09:00 differ from UTC);
    modules that need it throughout say ``pytestmark = pytest.mark.usefixtures("shanghai")``."""
    monkeypatch.setitem(app.config, "CRM_TIMEZONE", "Asia/Shanghai")


@pytest.fixture
def ctx(app: Any) -> Any:
    """An application context for tests that talk to services directly."""
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app: Any) -> Any:
    """The test client; every response it gave is closed after the test, as a browser reading
    to the end would: a streamed download left unread keeps its request, its session and
    (PostgreSQL) an open transaction alive until garbage collection."""
    test_client = app.test_client()
    given: list[Any] = []
    open_response = test_client.open

    def open_and_keep(*args: Any, **kwargs: Any) -> Any:
        response = open_response(*args, **kwargs)
        given.append(response)
        return response

    test_client.open = open_and_keep
    yield test_client
    for response in given:
        response.close()


class AuthActions:
    def __init__(self, client: Any) -> None:
        self._client = client

    def login(self, username: str, password: str = PASSWORD) -> Any:
        return self._client.post("/login/", data={"username": username, "password": password})

    def logout(self) -> Any:
        return self._client.get("/logout/")

    def grant_step_up(self, username: str) -> None:
        """Give this browser session a fresh step-up, for tests about something else
        (tests/app/security/test_step_up.py earns it with real codes)."""
        with self._client.session_transaction() as session:
            session["_step_up_sid"] = f"test-{username}"
        with self._client.application.app_context():
            db.session.merge(StepUpGrant(session_key=f"web:test-{username}", user_id=user_id(username),
                                         expires_at=totp_service.now() + timedelta(minutes=5)))
            db.session.commit()
            db.session.remove()


@pytest.fixture
def auth(client: Any) -> AuthActions:
    return AuthActions(client)


def api_token(client: Any, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", "refresh": False},
    )
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


@pytest.fixture
def api(client: Any) -> Any:
    """``api(username)`` -> headers with a JWT for that user."""
    return lambda username: api_token(client, username)


class TotpClock:
    """A controllable clock for TOTP: each ``code()`` moves to the next 30-second step,
    as a real user would wait for the next code (the replay guard refuses reuse)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.secrets: dict[str, str] = {}

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 30) -> None:
        self.now += seconds

    def enrol(self, app: Any, username: str) -> str:
        """Enrol ``username`` through the real service; returns the secret."""
        secret = pyotp.random_base32()
        with app.app_context():
            user = appbuilder.sm.find_user(username=username)
            assert totp_service.confirm_enrolment(user, secret, pyotp.TOTP(secret).at(self.now)) is not None
            db.session.remove()
        self.secrets[username] = secret
        return secret

    def code(self, username: str) -> str:
        self.advance()
        return pyotp.TOTP(self.secrets[username]).at(self.now)


@pytest.fixture
def totp(monkeypatch: pytest.MonkeyPatch) -> TotpClock:
    clock = TotpClock()
    monkeypatch.setattr(totp_service, "clock", clock)
    return clock


def user_id(username: str) -> int:
    return appbuilder.sm.find_user(username=username).id


@pytest.fixture
def make_customer(app: Any) -> Any:
    """Create a customer owned by ``owner`` (username); returns its id."""

    def make(owner: str, **fields: Any) -> int:
        with app.app_context():
            values = {"name": f"Customer of {owner}", "contact_phone": "13812345678", **fields}
            type_code = values.pop("type_code", "potential")
            customer = Customer(owner_id=user_id(owner), **values)
            customer.type = db.session.query(CustomerType).filter_by(code=type_code).one()
            db.session.add(customer)
            db.session.commit()
            pk = customer.id
            db.session.remove()
            return pk

    return make


@contextmanager
def statements_run(app: Any) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs inside the block, in order."""
    from sqlalchemy import event

    run: list[str] = []

    def note(*args: Any) -> None:
        run.append(args[2])

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield run
    finally:
        event.remove(engine, "before_cursor_execute", note)


@pytest.fixture
def make_account(app: Any) -> Any:
    """``make_account(username, **columns)`` -> id: an active account with no role that no
    record names yet (one to delete, or to stamp a record with)."""

    def make(username: str, **columns: Any) -> int:
        with app.app_context():
            account = CrmUser(username=username, first_name=username.title(), last_name="Account",
                              email=f"{username}@example.com", active=True, **columns)
            db.session.add(account)
            db.session.commit()
            pk = account.id
            db.session.remove()
            return pk

    return make


@pytest.fixture
def make_custom_field(app: Any) -> Any:
    """``make_custom_field(record_type, key, kind, **columns)`` -> id: a custom field made with
    the model (labels default to the key; ``choices`` as ``[(code, label_en, label_zh), …]``
    or dicts). The definitions in memory are read again at once."""
    from app.models.custom_fields import CustomField
    from app.services import custom_fields

    def make(record_type: str, key: str, kind: str, **columns: Any) -> int:
        choices = columns.pop("choices", None)
        if choices is not None:
            choices = [c if isinstance(c, dict) else {"code": c[0], "label_en": c[1], "label_zh": c[2],
                                                       "active": True, "colour": c[3] if len(c) > 3 else ""}
                       for c in choices]
        with app.app_context():
            row = CustomField(record_type=record_type, key=key, kind=kind, label_en=columns.pop("label_en", key),
                              label_zh=columns.pop("label_zh", key), choices=choices, **columns)
            db.session.add(row)
            db.session.commit()
            pk = row.id
            db.session.remove()
        custom_fields.forget()
        return pk

    return make


@pytest.fixture
def make_follow_up(app: Any) -> Any:
    def make(customer_id: int, owner: str, **fields: Any) -> int:
        with app.app_context():
            item = FollowUp(customer_id=customer_id, owner_id=user_id(owner),
                            content=fields.pop("content", "Called about the quote"), **fields)
            db.session.add(item)
            db.session.commit()
            pk = item.id
            db.session.remove()
            return pk

    return make


def flask_cli(tmp_path: Any, url: str, *command: str) -> None:
    """Run ``flask --app app:create_app <command>`` on another database (migration tests)."""
    import subprocess
    import sys

    from config import BASE_DIR

    env = {"DATABASE_URL": url, "CRM_INSTANCE_DIR": str(tmp_path), "CRM_SCHEDULER": "0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app", *command], cwd=BASE_DIR,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture
def backup_dirs(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Backups (issue 19) write into this test's own ``backups``, ``copies`` (the second
    location) and ``files`` (the files root) folders: name -> path."""
    folders = {name: tmp_path / name for name in ("backups", "copies", "files")}
    folders["files"].mkdir()
    monkeypatch.setitem(app.config, "CRM_BACKUP_DIR", str(folders["backups"]))
    monkeypatch.setitem(app.config, "CRM_BACKUP_COPY_DIR", str(folders["copies"]))
    monkeypatch.setitem(app.config, "CRM_FILES_ROOT", str(folders["files"]))
    return folders
