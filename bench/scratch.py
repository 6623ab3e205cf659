"""A throwaway instance for benchmarks: temp folder, SQLite file (unless DATABASE_URL is
set), migrated and initialised, with sales reps to own the generated data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

PASSWORD = "Bench-Pass-1"


def scratch_env(prefix: str) -> Path:
    """Point the app at a new temp folder; call before importing the app."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.db'}")
    os.environ["CRM_INSTANCE_DIR"] = str(tmp)
    os.environ["CRM_SCHEDULER"] = "0"
    return tmp


def migrated_app(**config: Any) -> Any:
    """create_app + upgrade + initialise (roles, dictionaries)."""
    from flask_migrate import upgrade

    from app import create_app
    from app.services.setup import initialise
    from config import Config

    for key, value in config.items():
        setattr(Config, key, value)
    app = create_app(Config)
    with app.app_context():
        upgrade()
        initialise()
    return app


def add_reps(count: int) -> list[Any]:
    """``count`` Sales Reps rep0..repN (inside an app context)."""
    from app.extensions import appbuilder

    sm = appbuilder.sm
    return [sm.add_user(f"rep{i}", "Rep", str(i), f"rep{i}@bench.test", sm.find_role("Sales Rep"), password=PASSWORD)
            for i in range(count)]
