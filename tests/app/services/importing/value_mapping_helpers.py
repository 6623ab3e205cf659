"""Shared by the value-mapping tests: dictionaries live for the whole test session, so a
test that adds aliases or retires an entry puts every dictionary back as it found it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models.dictionaries import DICTIONARIES, Industry


@contextmanager
def dictionaries_restored(app: Any) -> Iterator[None]:
    """Snapshot (aliases, active) of every entry; restore them and drop entries added."""
    with app.app_context():
        saved = {(model, e.id): (e.aliases, e.active) for model in DICTIONARIES
                 for e in db.session.scalars(select(model))}
        db.session.remove()
    try:
        yield
    finally:
        with app.app_context():
            db.session.rollback()
            for model in DICTIONARIES:
                for entry in db.session.scalars(select(model)).all():
                    if (model, entry.id) in saved:
                        entry.aliases, entry.active = saved[(model, entry.id)]
                    else:
                        db.session.delete(entry)
            db.session.commit()
            db.session.remove()


def industry_id(app: Any, code: str) -> int:
    with app.app_context():
        return db.session.scalar(select(Industry.id).where(Industry.code == code))


def aliases_of(app: Any, model: type, code: str) -> list[str]:
    with app.app_context():
        return db.session.scalar(select(model).where(model.code == code)).alias_list
