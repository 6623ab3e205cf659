"""Imports and exports as jobs (history, progress, reports) and their schedules."""

from __future__ import annotations

from datetime import datetime

from flask_appbuilder import Model
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utc_now
from app.models.base import UtcDateTime, referrer_index

#: TransferJob.kind
IMPORT, EXPORT = "import", "export"
#: TransferJob.status, in the order a job moves through them.
UPLOADED, PREVIEWED, QUEUED, RUNNING, DONE, FAILED, CANCELLED = (
    "uploaded", "previewed", "queued", "running", "done", "failed", "cancelled",
)
#: TransferSchedule.kind
FOLDER_IMPORT, LIST_EXPORT = "folder_import", "list_export"


class TransferJob(Model):
    """One import (upload -> mapping -> dry run -> commit) or one export file.

    Counts are written with every committed chunk, so the progress bar and a job
    interrupted by a restart both tell exactly how far the rows got.
    """

    __tablename__ = "transfer_job"
    __table_args__ = (Index("ix_transfer_job_user", "user_id", "id"),
                      Index("ix_transfer_job_lease", "status", "lease_until"),
                      referrer_index("transfer_job", "schedule_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False, default=IMPORT)
    model: Mapped[str] = mapped_column(String(40), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("transfer_schedule.id"))
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    stored_path: Mapped[str | None] = mapped_column(String(500))
    report_path: Mapped[str | None] = mapped_column(String(500))
    sheet: Mapped[str | None] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(10), nullable=False, default="create")
    key: Mapped[str] = mapped_column(String(20), nullable=False, default="code")
    all_or_nothing: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    mapping: Mapped[dict | None] = mapped_column(JSON)
    options: Mapped[dict | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default=UPLOADED)
    dry_run: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    total_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    preview: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The task queue (app/services/tasks.py): who runs the job and until when its claim
    # holds (renewed as it goes), a cancel asked from any web worker, deliveries so far.
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    user = relationship("CrmUser", foreign_keys=[user_id])
    schedule = relationship("TransferSchedule", back_populates="jobs")

    def __repr__(self) -> str:
        return f"{self.kind} #{self.id} {self.filename}"


class ImportMapping(Model):
    """The column mapping a user last confirmed for a model (header -> field)."""

    __tablename__ = "import_mapping"

    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(40), primary_key=True)
    mapping: Mapped[dict] = mapped_column(JSON, nullable=False)
    changed_on: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now, onupdate=utc_now)


class TransferSchedule(Model):
    """An admin-defined recurring import (watch a folder) or export (a saved list)."""

    __tablename__ = "transfer_schedule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default=FOLDER_IMPORT)
    model: Mapped[str] = mapped_column(String(40), nullable=False, default="customer")
    cron: Mapped[str] = mapped_column(String(100), nullable=False, default="*/15 * * * *")
    path: Mapped[str] = mapped_column(String(500), nullable=False)
    mode: Mapped[str] = mapped_column(String(10), nullable=False, default="upsert")
    filters: Mapped[str | None] = mapped_column(Text)
    columns: Mapped[str | None] = mapped_column(String(500))
    run_as_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_status: Mapped[str | None] = mapped_column(String(12))
    last_message: Mapped[str | None] = mapped_column(Text)

    run_as = relationship("CrmUser", foreign_keys=[run_as_id])
    jobs = relationship("TransferJob", back_populates="schedule", order_by="TransferJob.id.desc()",
                        lazy="dynamic")

    def __repr__(self) -> str:
        return self.name
