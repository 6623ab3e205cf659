"""Application factory."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from config import INSTANCE_DIR, Config, instance_totp_key, resolve_secret_key

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: type | dict | None = None) -> Flask:
    """Build the app: config, extensions, security, views, CLI. Does not start the scheduler."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "views" / "templates"),
        static_folder=str(ROOT / "views" / "static"),
        instance_path=str(INSTANCE_DIR),
    )
    app.config.from_object(config if isinstance(config, type) else Config)
    if isinstance(config, dict):
        app.config.update(config)
    app.config["SECRET_KEY"] = resolve_secret_key(app.config.get("SECRET_KEY"))
    app.config["TOTP_ENCRYPTION_KEY"] = app.config.get("TOTP_ENCRYPTION_KEY") or instance_totp_key()

    from app import (
        models,  # noqa: F401  (register every table on the metadata)
        record_types,
    )
    from app.cli import crm_cli
    from app.extensions import appbuilder, csrf, db, mail, migrate
    from app.security import request_bounds, session_guard
    from app.security.passwords import password_policy
    from app.services import (  # noqa: F401  (their hooks: flush listeners, events, scheduled rules)
        accounts,
        audit,
        backups,
        company,
        customers,
        notifications,
        numbering,
        reminders,
        reports,
        retention,
        search,
    )

    record_types.load_all()  # contacts, leads, opportunities, products: each declared once

    app.config.setdefault("FAB_PASSWORD_COMPLEXITY_VALIDATOR", password_policy)
    request_bounds.init_app(app)  # before the views: every route sees bounded input
    db.init_app(app)
    mail.init_app(app)
    csrf.init_app(app)  # before AppBuilder, so FAB exempts its JWT-only REST APIs
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), compare_type=True)
    with app.app_context():
        from app.extensions import enable_sqlite_pragmas

        enable_sqlite_pragmas(db.engine)
        appbuilder.init_app(app, db.session)
        from views import register_views

        register_views(appbuilder)
        appbuilder.post_init()
    session_guard.init_app(app)
    from app.security import presence

    presence.install(app)  # CrmUser.last_seen_at: users online (issue 17)
    from app.services import monitoring

    monitoring.install(app)  # request timer, error capture (issue 19)
    backups.install(app)  # 503 while a restore runs (issue 19)
    company.install(app)  # the stored time zone and default language (issue 19)
    app.cli.add_command(crm_cli)
    return app
