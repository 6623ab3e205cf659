"""Configuration classes; every setting can be overridden from the environment.

Secrets never live in this file: ``SECRET_KEY`` comes from the environment or from
``instance/secret_key`` (created on first start, never committed).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_appbuilder.const import AUTH_DB

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("CRM_INSTANCE_DIR", BASE_DIR / "instance"))


def _instance_secret() -> str:
    """Read (or create once) the instance secret key, so restarts keep sessions valid."""
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def instance_totp_key() -> str:
    """Read (or create once) the key that encrypts TOTP secrets at rest."""
    from cryptography.fernet import Fernet

    path = INSTANCE_DIR / "totp_key"
    if not path.exists():
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _zone_name(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows; ``ValueError`` naming the setting otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"CRM_TIMEZONE={name!r} is not an IANA time zone name (e.g. Asia/Shanghai)") from exc
    return name


class Config:
    """Production-leaning defaults; SQLite in the instance folder unless DATABASE_URL is set."""

    APP_NAME = os.environ.get("CRM_APP_NAME", "Sheets CRM")
    SECRET_KEY = os.environ.get("SECRET_KEY") or None  # filled by create_app
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'crm.db'}"
    )
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}

    # Flask-AppBuilder
    AUTH_TYPE = AUTH_DB
    AUTH_ROLE_ADMIN = "Admin"
    AUTH_ROLE_PUBLIC = "Public"
    FAB_CREATE_DB = False  # migrations own the schema
    FAB_UPDATE_PERMS = False  # permissions are synced by `flask crm init`
    FAB_SECURITY_MANAGER_CLASS = "app.security.manager.CrmSecurityManager"
    FAB_API_SWAGGER_UI = True
    FAB_ADD_SECURITY_API = False
    FAB_API_MAX_PAGE_SIZE = 100
    FAB_INDEX_VIEW = "views.home.CrmIndexView"
    APP_THEME = ""

    # i18n: English and Simplified Chinese
    BABEL_DEFAULT_LOCALE = os.environ.get("CRM_DEFAULT_LOCALE", "en")
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "app" / "translations")
    LANGUAGES = {
        "en": {"flag": "gb", "name": "English"},
        "zh": {"flag": "cn", "name": "简体中文"},
    }

    # Security
    WTF_CSRF_ENABLED = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", False)
    JWT_ACCESS_TOKEN_EXPIRES = int(os.environ.get("JWT_ACCESS_TOKEN_EXPIRES", 900))
    MAX_CONTENT_LENGTH = int(os.environ.get("CRM_MAX_UPLOAD_BYTES", 20 * 1024 * 1024))
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    PERMANENT_SESSION_LIFETIME = int(os.environ.get("CRM_SESSION_SECONDS", 8 * 3600))
    # Imports / exports
    #: Largest import file (bytes); uploads above MAX_CONTENT_LENGTH are refused earlier.
    CRM_IMPORT_MAX_BYTES = int(os.environ.get("CRM_IMPORT_MAX_BYTES", MAX_CONTENT_LENGTH))
    #: Background threads running imports and large exports in each web process.
    CRM_IMPORT_WORKERS = int(os.environ.get("CRM_IMPORT_WORKERS", 1))
    #: Rows validated and committed together; a crash loses at most the chunk in progress.
    CRM_IMPORT_CHUNK_ROWS = int(os.environ.get("CRM_IMPORT_CHUNK_ROWS", 2000))
    #: A committing import stores each chunk of new rows on a second connection while it
    #: checks the next chunk (app/services/importing/writer.py): "auto" (in a child forked
    #: for the import where there is fork; else in a thread for a database server, and in
    #: turn for SQLite), "process", "thread", or 0 (off).
    CRM_IMPORT_OVERLAP = os.environ.get("CRM_IMPORT_OVERLAP", "auto")
    #: Bounds on every workbook and CSV read (app/services/importing/bounds.py), checked before
    #: anything is materialised: sheet rows (header included), columns, rows x columns (and cell
    #: tags), bytes a workbook may unpack to, and the compression ratio of a part over 1 MiB.
    CRM_IMPORT_MAX_ROWS = int(os.environ.get("CRM_IMPORT_MAX_ROWS", 200_000))
    CRM_IMPORT_MAX_COLUMNS = int(os.environ.get("CRM_IMPORT_MAX_COLUMNS", 256))
    CRM_IMPORT_MAX_CELLS = int(os.environ.get("CRM_IMPORT_MAX_CELLS", 3_000_000))
    CRM_WORKBOOK_MAX_UNZIPPED_BYTES = int(os.environ.get("CRM_WORKBOOK_MAX_UNZIPPED_BYTES", 256 * 1024 * 1024))
    CRM_WORKBOOK_MAX_RATIO = int(os.environ.get("CRM_WORKBOOK_MAX_RATIO", 200))
    #: Folders that admin-set paths (scheduled imports/exports, sync workbooks) must lie in,
    #: separated by os.pathsep; empty: the instance folder's files/ (created on demand).
    CRM_FILES_ROOT = os.environ.get("CRM_FILES_ROOT", "")
    #: Run import/export jobs in the request thread (tests, debugging).
    CRM_IMPORT_INLINE = _env_bool("CRM_IMPORT_INLINE", False)
    #: Exports with more rows than this are built in the background with a progress bar.
    CRM_EXPORT_BACKGROUND_ROWS = int(os.environ.get("CRM_EXPORT_BACKGROUND_ROWS", 20000))
    # Single archives (deletes) a user may do without an authenticator code; past it each
    # archive asks for one, so a bulk delete cannot be done as many single DELETEs.
    CRM_ARCHIVE_WITHOUT_CODE = os.environ.get("CRM_ARCHIVE_WITHOUT_CODE", "3 per hour")
    #: Service-account JSON (from Google Cloud) used by Google Sheets sync targets.
    GOOGLE_SERVICE_ACCOUNT_FILE = os.environ.get("GOOGLE_SERVICE_ACCOUNT_FILE")
    #: What a save that looks like a duplicate does: "warn" (confirm to save) or "block".
    CRM_DUPLICATES = os.environ.get("CRM_DUPLICATES", "warn")
    #: Content-Security-Policy: only our own assets. Inline scripts run only with the
    #: per-request nonce FAB's templates carry ({nonce} is filled in per response);
    #: inline style attributes stay allowed.
    CRM_CONTENT_SECURITY_POLICY = (
        "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )

    # Leads (app/services/assignment.py, views/leads.py)
    #: User name that gets a new lead no assignment rule matched; empty: its creator.
    CRM_LEAD_FALLBACK_OWNER = os.environ.get("CRM_LEAD_FALLBACK_OWNER", "")
    #: The account the public web form (POST /webform/lead) creates leads as; empty: the
    #: fallback owner. Neither set: the web form answers 503 (not configured).
    CRM_WEBFORM_USER = os.environ.get("CRM_WEBFORM_USER", "")
    #: Shared secret a website must send (field ``token`` or header X-Webform-Token); empty: none.
    CRM_WEBFORM_TOKEN = os.environ.get("CRM_WEBFORM_TOKEN", "")
    #: Web form posts per client address (Flask-Limiter syntax, several separated by ";").
    CRM_WEBFORM_RATE_LIMIT = os.environ.get("CRM_WEBFORM_RATE_LIMIT", "5 per minute;50 per day")
    #: Largest web form body, bytes (a bigger one is refused with 413).
    CRM_WEBFORM_MAX_BYTES = int(os.environ.get("CRM_WEBFORM_MAX_BYTES", 10240))
    #: The hidden field people leave empty and bots fill in (honeypot).
    CRM_WEBFORM_HONEYPOT = os.environ.get("CRM_WEBFORM_HONEYPOT", "homepage")

    # Passwords: FAB's complexity hook with our policy (app.security.passwords)
    FAB_PASSWORD_COMPLEXITY_ENABLED = True
    CRM_PASSWORD_MIN_LENGTH = int(os.environ.get("CRM_PASSWORD_MIN_LENGTH", 10))

    # Background work (app/services/tasks.py). "threads": a thread pool inside each web
    # process (the embedded default: no Redis); "celery": a Celery task on the broker,
    # run by `flask crm worker` processes on any machine.
    #: Redis for production: the broker's default and the rate-limit counters (none: embedded).
    REDIS_URL = os.environ.get("REDIS_URL") or None
    CRM_TASK_QUEUE = os.environ.get("CRM_TASK_QUEUE", "threads")
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
    #: Seconds a job's claim lasts without a heartbeat; after that the minute sweep queues it again.
    CRM_JOB_LEASE_SECONDS = int(os.environ.get("CRM_JOB_LEASE_SECONDS", 60))

    # Rate limits (Flask-Limiter through FAB's limiter). memory:// is per process, so with
    # REDIS_URL set the counters live in Redis and hold across workers.
    RATELIMIT_ENABLED = _env_bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI") or REDIS_URL or "memory://"
    RATELIMIT_HEADERS_ENABLED = True
    AUTH_RATE_LIMITED = True
    AUTH_RATE_LIMIT = os.environ.get("AUTH_RATE_LIMIT", "10 per 20 second")  # login POSTs per IP
    # Wrong passwords (app/security/login_guard.py): per account from one address, then per
    # account from all addresses (a Security alert; then only addresses it logged in from
    # in the last CRM_LOGIN_KNOWN_ADDRESS_DAYS days may try until the window ends).
    CRM_LOGIN_LIMIT_PER_USERNAME_IP = os.environ.get("CRM_LOGIN_LIMIT_PER_USERNAME_IP", "5 per 15 minute")
    CRM_LOGIN_LIMIT_PER_USERNAME = os.environ.get("CRM_LOGIN_LIMIT_PER_USERNAME", "50 per hour")
    CRM_LOGIN_KNOWN_ADDRESS_DAYS = int(os.environ.get("CRM_LOGIN_KNOWN_ADDRESS_DAYS", 30))

    # TOTP second factor and step-up (see README, "Security")
    TOTP_ENCRYPTION_KEY = os.environ.get("TOTP_ENCRYPTION_KEY") or None  # else instance/totp_key
    TOTP_ISSUER = os.environ.get("TOTP_ISSUER", "Sheets CRM")
    #: "required": users of roles that require enrolment; "enrolled": everyone enrolled; "off".
    TOTP_AT_LOGIN = os.environ.get("TOTP_AT_LOGIN", "required")
    TOTP_STEP_UP_MINUTES = int(os.environ.get("TOTP_STEP_UP_MINUTES", 5))
    TOTP_MAX_FAILURES = 5
    TOTP_LOCKOUT_MINUTES = 15
    TOTP_FAIL_LIMIT_PER_USER = os.environ.get("TOTP_FAIL_LIMIT_PER_USER", "20 per day")
    TOTP_FAIL_LIMIT_PER_IP = os.environ.get("TOTP_FAIL_LIMIT_PER_IP", "60 per hour")

    # Account lifecycle
    CRM_PURGE_AFTER_DAYS = int(os.environ.get("CRM_PURGE_AFTER_DAYS", 30))
    CRM_INACTIVE_DAYS = int(os.environ.get("CRM_INACTIVE_DAYS", 90))
    #: Permission report: job title -> roles that title normally needs. A user holding a
    #: role outside the list is flagged. Override with a JSON object in CRM_JOB_TITLE_ROLES.
    CRM_JOB_TITLE_ROLES = json.loads(os.environ.get("CRM_JOB_TITLE_ROLES", "null")) or {
        "Sales Representative": ["Sales Rep"],
        "Sales Manager": ["Sales Manager"],
        "Customer Service": ["Customer Service"],
        "Intern": ["Read Only", "Sales Rep"],
        "Analyst": ["Read Only"],
        "Administrator": ["Admin"],
    }

    # Scheduler: jobs persist in the application database
    SCHEDULER_ENABLED = _env_bool("CRM_SCHEDULER", True)
    #: How often a standby scheduler tries to become the active one (seconds; issue 20).
    CRM_SCHEDULER_STANDBY_SECONDS = float(os.environ.get("CRM_SCHEDULER_STANDBY_SECONDS", 15))
    # One zone for the CRM (app/clock.py): instants are stored in UTC and shown, parsed,
    # scheduled (the daily jobs, transfer and sync schedules) and dated (record codes,
    # "due today", account expiry) in this zone. An unknown name stops the start.
    CRM_TIMEZONE = _zone_name(os.environ.get("CRM_TIMEZONE", "Asia/Shanghai"))

    # Business settings
    CRM_INTERN_ACCOUNT_MONTHS = 3

    # Backups (app/services/backups; issue 19, 000 §三(一)): archives go to CRM_BACKUP_DIR
    # (default: <instance>/backups) and a copy to CRM_BACKUP_COPY_DIR (another disk, in
    # practice a mounted remote one; unset: no copy, and the daily checklist says so).
    CRM_BACKUP_DIR = os.environ.get("CRM_BACKUP_DIR") or None
    CRM_BACKUP_COPY_DIR = os.environ.get("CRM_BACKUP_COPY_DIR") or None
    #: The request timer flushes its figures on a thread of its own (False), not in a request.
    CRM_TIMER_FLUSH_INLINE = _env_bool("CRM_TIMER_FLUSH_INLINE", False)

    # E-mail and SMS (app/services/mail.py, app/services/sms.py; issue 14). Without
    # MAIL_SERVER e-mail waits in the outbox (nothing is lost) and the outbox page says so.
    MAIL_SERVER = os.environ.get("MAIL_SERVER") or None
    MAIL_PORT = int(os.environ.get("MAIL_PORT", 25))
    MAIL_USE_TLS = _env_bool("MAIL_USE_TLS", False)  # STARTTLS (port 587)
    MAIL_USE_SSL = _env_bool("MAIL_USE_SSL", False)  # TLS from the start (port 465)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER") or None  # else "<APP_NAME> <noreply@localhost>"
    #: Seconds per SMTP step (connect, each command) before the attempt counts as failed.
    MAIL_TIMEOUT = float(os.environ.get("MAIL_TIMEOUT", 10))
    #: Flask-Mailman's backend; the sender always uses SMTP (never the test "locmem").
    MAIL_BACKEND = "smtp"
    #: Attempts per message before it is marked failed (retries after 1, 5, 15, 60 … minutes).
    MAIL_MAX_ATTEMPTS = int(os.environ.get("MAIL_MAX_ATTEMPTS", 8))
    #: Messages one run of the sender takes at most (it runs every minute).
    MAIL_BATCH = int(os.environ.get("MAIL_BATCH", 100))
    #: The CRM's address as users reach it: links in e-mails are absolute URLs under it.
    CRM_BASE_URL = os.environ.get("CRM_BASE_URL", "http://localhost:5000").rstrip("/")
    #: Dotted path of the SMS backend class (``send(to, text)``); the default only logs.
    CRM_SMS_BACKEND = os.environ.get("CRM_SMS_BACKEND", "app.services.sms.LoggingBackend")

    # Opportunities (app/services/opportunities.py; issue 13)
    #: Plausibility (000 §四(二)): an opportunity amount above this many times the customer's
    #: largest won opportunity asks for a confirmation (form tick box, API ?confirm_amount=1).
    CRM_PLAUSIBLE_AMOUNT_FACTOR = float(os.environ.get("CRM_PLAUSIBLE_AMOUNT_FACTOR", 5))


class DevelopmentConfig(Config):
    DEBUG = True


class TestConfig(Config):
    """Tests: a throwaway database (SQLite file unless TEST_DATABASE_URL/DATABASE_URL is set)."""

    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"
    #: Form tests post without tokens; tests/views/test_http_security.py switches CSRF
    #: back on (checked per request) and proves a token-less POST is refused.
    WTF_CSRF_ENABLED = False
    SCHEDULER_ENABLED = False
    TOTP_ENCRYPTION_KEY = "lDXhZ5-7D8bQ_-NMtP3Y2r6oYIJ1bKQXDUo6b7gUTGw="  # test-only key
    #: The suite logs in hundreds of times from one address; the rate-limit tests
    #: tighten these two on the fly (the limits are read per request).
    AUTH_RATE_LIMIT = "10000 per minute"
    CRM_LOGIN_LIMIT_PER_USERNAME = "10000 per minute"
    CRM_IMPORT_INLINE = True
    #: The request timer writes its minute's figures in the request, not on a thread that
    #: could still be writing when a test's clean-up runs.
    CRM_TIMER_FLUSH_INLINE = True
    #: Hermetic whatever the environment (CI exports REDIS_URL for tests/deploy): counters in
    #: memory, jobs on threads; tests that need Redis start one and set these themselves.
    REDIS_URL = CELERY_BROKER_URL = None
    RATELIMIT_STORAGE_URI = "memory://"
    CRM_TASK_QUEUE = "threads"
    #: Hermetic: no SMTP server unless a test starts one (tests/app/services/test_mail.py).
    MAIL_SERVER = None
    #: Tests keep their workbooks and folders in pytest's tmp_path, under the system temp folder.
    CRM_FILES_ROOT = tempfile.gettempdir()
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL") or os.environ.get(
        "DATABASE_URL", "sqlite://"
    )


def resolve_secret_key(configured: str | None) -> str:
    """Return the configured secret, or the instance one; never a hard-coded default."""
    return configured or _instance_secret()
