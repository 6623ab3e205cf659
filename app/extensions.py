"""Extensions, created once and bound to the app in ``create_app``."""

from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.base import SQLA
from flask_mailman import Mail
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

db = SQLA()
migrate = Migrate()
#: Every form POST needs a token; FAB exempts its REST APIs, which accept JWTs only.
csrf = CSRFProtect()
appbuilder = AppBuilder(update_perms=False)
#: E-mail (issue 14): only the outbox sender (app.services.mail) uses it.
mail = Mail()


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:  # noqa: ANN001 (DBAPI types)
    """SQLite as a server database: readers never wait for a writer (WAL), and commits
    sync at checkpoints only (NORMAL is durable against application crashes)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_functions(dbapi_connection, connection_record) -> None:  # noqa: ANN001 (DBAPI types)
    """The CRM's SQL functions (search's fold) on every connection: a list's search filter may
    run on whichever connection the pool hands out after a commit."""
    from app.services.search import install_sqlite_functions

    install_sqlite_functions(dbapi_connection)


def enable_sqlite_pragmas(engine) -> None:  # noqa: ANN001
    from sqlalchemy import event

    if engine.dialect.name != "sqlite":
        return
    event.listen(engine, "connect", _sqlite_functions)
    if engine.url.database not in (None, "", ":memory:"):
        event.listen(engine, "connect", _sqlite_pragmas)
