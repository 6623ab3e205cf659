"""Configuration classes; every setting can be overridden from the environment.

Secrets never live in this file: ``SECRET_KEY`` comes from the environment or from
``instance/secret_key`` (created on first start, never committed).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

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


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


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

    # Scheduler: jobs persist in the application database
    SCHEDULER_ENABLED = _env_bool("CRM_SCHEDULER", True)
    SCHEDULER_TIMEZONE = os.environ.get("CRM_TIMEZONE", "Asia/Shanghai")

    # Business settings
    CRM_CODE_TIMEZONE = os.environ.get("CRM_TIMEZONE", "Asia/Shanghai")
    CRM_INTERN_ACCOUNT_MONTHS = 3


class DevelopmentConfig(Config):
    DEBUG = True


class TestConfig(Config):
    """Tests: a throwaway database (SQLite file unless TEST_DATABASE_URL/DATABASE_URL is set)."""

    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"
    WTF_CSRF_ENABLED = False
    SCHEDULER_ENABLED = False
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL") or os.environ.get(
        "DATABASE_URL", "sqlite://"
    )


def resolve_secret_key(configured: str | None) -> str:
    """Return the configured secret, or the instance one; never a hard-coded default."""
    return configured or _instance_secret()
