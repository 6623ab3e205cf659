"""Operations (issue 19): backups and their verification, restores, monitoring figures,
the daily checklist, scheduled-job runs, data retention cases and the company's logo.

Rules: 000 §三(一) (daily full backup, a copy elsewhere, 30 days, a monthly restore test),
§三(二) (online users against the licence, pages <= 3 s, alert above 5 s, storage at 80 %),
附录2 (the daily maintenance checklist), 001 五 and 隐私与合规 (backups, erasure on request),
003 第一步 (company name, logo, time zone, currency, date format, language, retention).
"""

from __future__ import annotations

from datetime import date, datetime

from flask_appbuilder import Model
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utc_now
from app.models.base import UtcDateTime


class BackupRun(Model):
    """One backup: ``kind`` "scheduled" | "manual" | "safety" (taken before a restore);
    ``status`` "running" | "ok" | "failed". ``file_name`` is the archive's name in the
    backup directory (and in ``second_copy_path``'s directory when copied); ``manifest`` is
    JSON (version, migration head, row counts per table, audit chain head, files).
    ``verify_status`` "passed" | "failed" | None (not verified yet) mirrors the latest
    ``BackupVerification``; ``removed_at`` is set when retention deleted the files."""

    __tablename__ = "backup_run"
    __table_args__ = (
        Index("ix_backup_run_started", "started_at"),
        # The one-backup-at-a-time lock, race-free across workers (a safety backup is exempt:
        # a restore takes it while a backup may run).
        Index("ux_backup_run_one_running", "status", unique=True,
              sqlite_where=text("status = 'running' AND kind != 'safety'"),
              postgresql_where=text("status = 'running' AND kind != 'safety'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="manual")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    database: Mapped[str] = mapped_column(String(16), nullable=False, default="sqlite")
    file_name: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    manifest: Mapped[str | None] = mapped_column(Text)
    second_copy_path: Mapped[str | None] = mapped_column(String(1024))
    copied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    verify_status: Mapped[str | None] = mapped_column(String(16))
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    created_by = relationship("CrmUser", foreign_keys=[created_by_id])
    verifications = relationship("BackupVerification", back_populates="backup", order_by="BackupVerification.id",
                                 cascade="all, delete-orphan", passive_deletes=True)


class BackupVerification(Model):
    """One restore test of a backup into a scratch database: ``full`` for the monthly test
    (every check) rather than the one after each backup; ``status`` "passed" | "failed";
    ``checks`` JSON list of {"key", "ok", "detail"} (integrity, migrated to head, row
    counts against the manifest, audit chain)."""

    __tablename__ = "backup_verification"
    __table_args__ = (Index("ix_backup_verification_backup", "backup_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backup_id: Mapped[int] = mapped_column(ForeignKey("backup_run.id", ondelete="CASCADE"), nullable=False)
    full: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    checks: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)

    backup = relationship("BackupRun", back_populates="verifications")


class RestoreRun(Model):
    """One restore of ``backup_id`` into the live database, after ``safety_backup_id`` was
    taken; ``status`` "running" | "ok" | "failed"; ``source`` "web" | "cli"."""

    __tablename__ = "restore_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backup_id: Mapped[int | None] = mapped_column(Integer)
    backup_file: Mapped[str | None] = mapped_column(String(255))
    safety_backup_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="web")
    user_name: Mapped[str | None] = mapped_column(String(256))
    error: Mapped[str | None] = mapped_column(Text)


class EndpointTiming(Model):
    """Response times of one endpoint in one UTC minute, summed over every process:
    ``count`` requests, ``total_ms``/``max_ms`` milliseconds, ``buckets`` JSON counts per
    upper bound in ms (the request timer's fixed bounds) for p50/p95."""

    __tablename__ = "endpoint_timing"
    __table_args__ = (UniqueConstraint("endpoint", "minute", name="uq_endpoint_timing_minute"),
                      Index("ix_endpoint_timing_minute", "minute"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128), nullable=False)
    minute: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    max_ms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    buckets: Mapped[str] = mapped_column(Text, nullable=False, default="{}")


class SlowRequest(Model):
    """One page that took longer than the slow threshold (000 §三(二): 3 s; above 5 s
    alerts). ``path`` without its query string (it may hold search text)."""

    __tablename__ = "slow_request"
    __table_args__ = (Index("ix_slow_request_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    endpoint: Mapped[str] = mapped_column(String(128), nullable=False)
    method: Mapped[str] = mapped_column(String(8), nullable=False, default="GET")
    path: Mapped[str] = mapped_column(String(512), nullable=False, default="")
    status: Mapped[int | None] = mapped_column(Integer)
    ms: Mapped[int] = mapped_column(Integer, nullable=False)
    user_id: Mapped[int | None] = mapped_column(Integer)


class OnlineSample(Model):
    """How many users were online (seen within the window) at one sampled UTC minute: the
    day's peak against the licensed count (000 §三(二))."""

    __tablename__ = "online_sample"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, unique=True)
    users: Mapped[int] = mapped_column(Integer, nullable=False)


class ErrorEvent(Model):
    """An unhandled error in a request or a job (the weekly error-log review of 000
    §三(二)): ``kind`` the exception's class, ``message`` its first line (bounded), never
    request data."""

    __tablename__ = "error_event"
    __table_args__ = (Index("ix_error_event_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    where: Mapped[str] = mapped_column(String(128), nullable=False)
    kind: Mapped[str] = mapped_column(String(128), nullable=False)
    message: Mapped[str | None] = mapped_column(String(512))
    user_id: Mapped[int | None] = mapped_column(Integer)


class JobRun(Model):
    """One run of a scheduled job (``job_id`` as in ``app.scheduler``): ``ok`` False with
    ``error`` (class and first line) when it raised."""

    __tablename__ = "job_run"
    __table_args__ = (Index("ix_job_run_started", "started_at"), Index("ix_job_run_job", "job_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(String(512))


class DailyCheck(Model):
    """The daily maintenance checklist of 000 附录2 for one day in the CRM's zone: ``ok``
    when every line is green; ``results`` JSON list of {"key", "ok", "figure", "detail"}."""

    __tablename__ = "daily_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, nullable=False, unique=True)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    results: Mapped[str] = mapped_column(Text, nullable=False, default="[]")


class RetentionCase(Model):
    """A record whose retention period has passed (listed by the retention job), waiting for
    an admin: ``record_type`` a record type's key ("customer", "contact", ...),
    ``last_activity_at`` what the period counts from; ``decision`` None (open) | "archived"
    | "anonymised" | "kept" with who and when. Never deleted on its own."""

    __tablename__ = "retention_case"
    __table_args__ = (UniqueConstraint("record_type", "record_id", name="uq_retention_case_record"),
                      Index("ix_retention_case_open", "decision", "record_type"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_type: Mapped[str] = mapped_column(String(32), nullable=False)
    record_id: Mapped[int] = mapped_column(Integer, nullable=False)
    last_activity_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    listed_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    decision: Mapped[str | None] = mapped_column(String(16))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))

    decided_by = relationship("CrmUser", foreign_keys=[decided_by_id])


class CompanyAsset(Model):
    """A company file kept in the database (so backups and every app server have it): the
    logo (``key`` "logo"), ``content_type`` image/png|jpeg|webp, at most 512 KB."""

    __tablename__ = "company_asset"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(64), nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
