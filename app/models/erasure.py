"""Personal-data erasure runs (issue 19; 001 隐私与合规): the request that erases a
person's data queues one run; the task queue clears the record and sweeps every copy
(audit log, text columns, files, search index) and records here how far it got.

A run never holds an erased value: ``summary`` names fields and counts rows; ``reason``
(what the admin typed, also kept in the audit entry) is dropped once the run is done.
"""

from __future__ import annotations

from datetime import datetime

from flask_appbuilder import Model
from sqlalchemy import JSON, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utc_now
from app.models.base import UtcDateTime

#: ErasureRun.status, in the order a run moves through them (a failed run may be queued again).
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
#: The runs not finished yet (``finished_at`` unset): at most one per record (``uq_erasure_run_active``).
ACTIVE = (QUEUED, RUNNING)


class ErasureRun(Model):
    """One erasure of one record: ``record_type`` "customer" | "contact" | "lead",
    ``record_id``, ``code`` (the record's code, shown while it runs); ``extra_fields`` the
    free-text fields ticked (names); ``status`` queued | running | done | failed; ``step``
    the step running ("audit", "columns:<table>", "files", "search", "database") with
    ``steps_done`` of ``steps_total``; ``summary`` what was done (``erasure.Summary`` as
    JSON: field names and counts, never values); ``error`` a message key
    (``erasure.runs.ERRORS``); ``user_id`` the admin who asked."""

    __tablename__ = "erasure_run"
    __table_args__ = (
        Index("ix_erasure_run_record", "record_type", "record_id", "id"),
        # one unfinished run per record: a second erasure of it is refused, even in a race
        Index("uq_erasure_run_active", "record_type", "record_id", unique=True,
              sqlite_where=text("finished_at IS NULL"), postgresql_where=text("finished_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_type: Mapped[str] = mapped_column(String(20), nullable=False)
    record_id: Mapped[int] = mapped_column(Integer, nullable=False)
    code: Mapped[str | None] = mapped_column(String(40))
    extra_fields: Mapped[list | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(10), nullable=False, default=QUEUED)
    step: Mapped[str | None] = mapped_column(String(80))
    steps_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    steps_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    summary: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user = relationship("CrmUser", foreign_keys=[user_id])

    def __repr__(self) -> str:
        return f"erasure #{self.id} {self.record_type} {self.code}"
