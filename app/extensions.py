"""Extensions, created once and bound to the app in ``create_app``."""

from flask_appbuilder import AppBuilder
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate

db = SQLA()
migrate = Migrate()
appbuilder = AppBuilder(update_perms=False)
