"""Shared column types and mixins for CRM models."""

from __future__ import annotations

import contextvars
import warnings
from datetime import datetime
from typing import Any

from flask import g, has_app_context
from sqlalchemy import JSON, DateTime, ForeignKey, ForeignKeyConstraint, Index, Integer, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from app.clock import UTC, utc_now

#: The user a script, job or sync run acts for (web requests use ``g.user``).
acting_user_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "acting_user_id", default=None
)


def current_user_id() -> int | None:
    """Id of whoever is making the change: the logged-in user, or the acting user."""
    if has_app_context():
        user = getattr(g, "user", None)
        uid = getattr(user, "id", None)
        if uid is not None and not getattr(user, "is_anonymous", False):
            return uid
    return acting_user_id.get()


#: The current instant, aware UTC (``app.clock.utc_now``): the default of every instant column.
now = utc_now


class NaiveInstantWarning(UserWarning):
    """A naive ``datetime`` was written to an instant column (see ``UtcDateTime``)."""


class UtcDateTime(TypeDecorator):
    """An instant: ``timestamptz`` on PostgreSQL, UTC text on SQLite; always aware UTC in Python.

    Binding: an aware value is converted to UTC (PostgreSQL gets it with its offset;
    SQLite, which has no zone type, gets the UTC wall time). A **naive value is taken as
    UTC** and warned about (``NaiveInstantWarning``): FAB writes ``datetime.now()`` into
    ``ab_user`` and filters with naive values, which on a server (UTC) are UTC; refusing them
    would turn those into 500s. Code of ours passes aware values only (``app.clock``):
    what a person typed goes through ``clock.from_local`` first.

    Reading: SQLite gives naive UTC back and PostgreSQL an aware value in the session's
    zone; both come out as aware UTC, so comparisons never mix naive and aware values.
    Values that are not datetimes (e.g. a string literal in a filter) pass unchanged.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if not isinstance(value, datetime):
            return value
        if value.tzinfo is None:
            warnings.warn("naive datetime written to an instant column: taken as UTC (use app.clock)",
                          NaiveInstantWarning, stacklevel=2)
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: ``ForeignKey.info`` flag of a key the models declare and the database does not check.
UNCHECKED = "unchecked"


def unchecked_key(target: str) -> ForeignKey:
    """A foreign key to ``target`` ("table.column") that the ORM, FAB and the CRM's rules read
    as one (joins, ``records.references``, ``app.models.on_delete``) but that no database
    checks row by row: its ``FOREIGN KEY`` clause is never created (``_not_created``).

    For the stamps (who created or last changed a row), which are history like
    ``audit_log.user_id``: PostgreSQL looked the account up for each of them on every
    inserted row, ~1.6 s of server time per 100,000 imported customers and their contacts
    and ~2.7 s per 100,000 follow-ups and their planned activities, for accounts that are
    never deleted once a row names them (``accounts.check_delete``; ``on_delete`` refuses
    that delete on every database). Migration d5f7b9c1e3a6 dropped the clauses."""
    return ForeignKey(target, info={UNCHECKED: True})


def is_unchecked(constraint: ForeignKeyConstraint) -> bool:
    """Whether ``constraint`` is made of ``unchecked_key`` keys."""
    return any(key.info.get(UNCHECKED) for key in constraint.elements)


@event.listens_for(ForeignKeyConstraint, "after_parent_attach")
def _not_created(constraint: ForeignKeyConstraint, table: Any) -> None:
    if is_unchecked(constraint):
        constraint.ddl_if(callable_=_never)


def _never(*args: Any, **kwargs: Any) -> bool:
    return False


def compared(dialect: str) -> Any:
    """Alembic's ``include_object`` for a database of ``dialect`` (migrations/env.py, the
    schema tests): the models' ``unchecked_key`` keys to ``ab_user`` are left out of the
    comparison, since no database holds them. So, on SQLite, are the clauses on those columns
    that databases made before keep (never enforced there; SQLite drops one only by rebuilding
    the table). On PostgreSQL such a key is reported: one left behind would check every row."""

    def include(item: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        if kind != "foreign_key_constraint" or item.referred_table.name != "ab_user":
            return True
        if reflected and dialect != "sqlite":
            return True
        return not _on_unchecked_columns(item)

    return include


def _on_unchecked_columns(constraint: ForeignKeyConstraint) -> bool:
    """Whether the model's columns of ``constraint`` (by table and column name: a reflected
    constraint is not the model's) carry an ``unchecked_key``."""
    from flask_appbuilder import Model

    table = Model.metadata.tables.get(constraint.table.name)
    columns = [table.c[key] for key in constraint.column_keys if key in table.c] if table is not None else []
    return any(key.info.get(UNCHECKED) for column in columns for key in column.foreign_keys)


def leave_out_unchecked_keys(upgrade_ops: Any) -> None:
    """Autogenerate (migrations/env.py): the ``unchecked_key`` constraints of a new table are
    not written into its migration. Alembic renders a model's keys whatever their ``ddl_if``,
    so a new stamped table would get the keys on PostgreSQL."""
    from alembic.operations import ops

    for op in upgrade_ops.ops:
        if isinstance(op, ops.CreateTableOp):
            op.columns = [c for c in op.columns if not (isinstance(c, ForeignKeyConstraint) and is_unchecked(c))]


class StampMixin:
    """Created/changed by+at. Nullable users, unlike FAB's AuditMixin, so jobs can write.
    The users are ``unchecked_key`` keys: the database does not look them up per row."""

    created_on: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, nullable=False)
    changed_on: Mapped[datetime] = mapped_column(
        UtcDateTime, default=utc_now, onupdate=utc_now, nullable=False
    )

    @declared_attr
    def created_by_fk(cls) -> Mapped[int | None]:
        return mapped_column(Integer, unchecked_key("ab_user.id"), default=current_user_id)

    @declared_attr
    def changed_by_fk(cls) -> Mapped[int | None]:
        return mapped_column(
            Integer, unchecked_key("ab_user.id"), default=current_user_id, onupdate=current_user_id
        )

    @declared_attr
    def created_by(cls):
        return relationship("CrmUser", foreign_keys=[cls.created_by_fk], viewonly=True)

    @declared_attr
    def changed_by(cls):
        return relationship("CrmUser", foreign_keys=[cls.changed_by_fk], viewonly=True)


class VersionMixin:
    """Optimistic locking: SQLAlchemy bumps ``version`` and refuses stale UPDATEs."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict:
        return {"version_id_col": cls.version}


#: JSON on SQLite (JSON1 functions read it), JSONB on PostgreSQL (containment, GIN).
CustomJSON = JSON().with_variant(JSONB(), "postgresql")


class CustomValuesMixin:
    """A record's custom field values (issue 18): ``{key: value}`` in one JSON column, as
    ``app.services.custom_fields`` stores them (text, int, decimal text, ISO date, UTC
    instant text, bool, choice code, list of codes, user id). Always assigned a new dict."""

    custom: Mapped[dict[str, Any] | None] = mapped_column(CustomJSON, nullable=True)


def referrer_index(table: str, column: str, *, optional: bool = True) -> Index:
    """The index by which deleting or merging a parent record finds the rows that refer to it.

    Without one, the foreign key's check or ``ON DELETE`` action reads the whole child table
    for every parent row deleted (issue 12: erasing a customer with 100 follow-ups read all
    activities 100 times). ``optional`` (a nullable column): the index holds only the rows that
    have a parent (``column IS NOT NULL``), so rows without one, such as an import's planned
    activities, cost it nothing; ``column = value`` still uses it on both databases. Named
    ``ix_<table>_<column>``.
    """
    where = text(f"{column} IS NOT NULL") if optional else None
    return Index(f"ix_{table}_{column}", column, sqlite_where=where, postgresql_where=where)
