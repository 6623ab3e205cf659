"""Deleting a record deletes the rows its schema says go with it: a one-to-many
relationship over a NOT NULL foreign key ``ON DELETE CASCADE`` cascades the delete in the
ORM too. Without it the ORM first sets the children's key to NULL, and the delete fails
(deleting any lead with its status history did, on both databases); on SQLite, which does
not enforce foreign keys, the database would not delete them either."""

from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy.orm import ONETOMANY

import app.models  # noqa: F401  (every model mapped)


def _not_cascaded() -> list[str]:
    found = []
    for mapper in Model.registry.mappers:
        for rel in mapper.relationships:
            if rel.direction is not ONETOMANY or rel.viewonly or "delete" in rel.cascade:
                continue
            keys = [c for c in rel.remote_side if c.foreign_keys]
            if any(not c.nullable and fk.ondelete == "CASCADE" for c in keys for fk in c.foreign_keys):
                found.append(f"{mapper.class_.__name__}.{rel.key}")
    return sorted(found)


def test_children_deleted_by_the_schema_are_deleted_by_the_orm(app):
    # Customer.contacts: customers are archived, never deleted (a merge moves the contacts first)
    assert _not_cascaded() == ["Customer.contacts"]
