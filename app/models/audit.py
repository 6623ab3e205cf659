"""Append-only, hash-chained audit log.

Each entry stores the hash of the one before it (``prev_hash``) and its own hash over
every column, so editing, deleting or reordering a row breaks the chain and
``flask crm audit-verify`` names the first broken link. ``AuditChainHead`` holds the
last sequence number and hash; appending locks that one row, so two transactions can
never fork the chain. Entries are written only by ``app.services.audit``.
"""

from __future__ import annotations

from datetime import datetime

from flask_appbuilder import Model
from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import utc_now
from app.models.base import UtcDateTime


class AuditLog(Model):
    __tablename__ = "audit_log"
    #: A record's history page looks its entries up by object.
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now, index=True)
    #: No foreign key: a purged user's entries must stay verifiable and attributable.
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    user_name: Mapped[str | None] = mapped_column(String(256))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="script")
    action: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    changes: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(256))
    detail: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    #: Personal-data erasure (issue 19): the ``seq`` of the erasure entry that removed erased
    #: values from ``changes``/``detail``. Not hashed: that erasure entry, which is, lists
    #: this entry's seq and original hash, so ``verify_chain`` still proves the chain.
    erased_in: Mapped[int | None] = mapped_column(BigInteger)

    def __repr__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type or ''} {self.object_id or ''}".strip()


class AuditChainHead(Model):
    """One row: the last appended sequence number and hash."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    #: Entries up to ``legacy_seq`` were written before instants were stored in UTC, by a
    #: server whose clock ran in ``legacy_zone``: their hashes cover that zone's wall time
    #: (set by migration 8e1a3c5d7f92 only when that zone was not UTC).
    legacy_seq: Mapped[int | None] = mapped_column(BigInteger)
    legacy_zone: Mapped[str | None] = mapped_column(String(64))
