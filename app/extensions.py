"""Extensions, created once and bound to the app in ``create_app``."""

from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

db = SQLA()
migrate = Migrate()
#: Every form POST needs a token; FAB exempts its REST APIs, which accept JWTs only.
csrf = CSRFProtect()
appbuilder = AppBuilder(update_perms=False)
