"""Spreadsheet sync: targets (a model bound to one worksheet), the per-row agreed
snapshot (the base of the three-way merge), runs, and conflicts kept for review."""

from __future__ import annotations

from datetime import datetime

from flask_appbuilder import Model
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import utc_now
from app.models.base import UtcDateTime
from app.security import masking

XLSX, GSHEETS = "xlsx", "gsheets"
BOTH, PUSH, PULL = "both", "push", "pull"
RESTORE, ARCHIVE, ASK = "restore", "archive", "review"


class SyncTarget(Model):
    __tablename__ = "sync_target"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    model: Mapped[str] = mapped_column(String(40), nullable=False, default="customer")
    backend: Mapped[str] = mapped_column(String(10), nullable=False, default=XLSX)
    #: xlsx: the file path; Google: the spreadsheet key or its URL.
    location: Mapped[str] = mapped_column(String(500), nullable=False)
    worksheet: Mapped[str] = mapped_column(String(100), nullable=False, default="客户")
    #: Google: the worksheet's id, cached after the first run (saves a metadata read per run).
    sheet_id: Mapped[int | None] = mapped_column(Integer)
    #: header -> field; empty = the importer's aliases decide.
    mapping: Mapped[dict | None] = mapped_column(JSON)
    direction: Mapped[str] = mapped_column(String(8), nullable=False, default=BOTH)
    conflict_policy: Mapped[str] = mapped_column(String(8), nullable=False, default="review")
    deleted_rows: Mapped[str] = mapped_column(String(8), nullable=False, default=ASK)
    run_as_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    cron: Mapped[str] = mapped_column(String(100), nullable=False, default="*/5 * * * *")
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    #: Stop when the sheet lost more than this share of its rows since the last run.
    max_shrink_percent: Mapped[int] = mapped_column(Integer, nullable=False, default=20)
    last_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_status: Mapped[str | None] = mapped_column(String(12))
    last_message: Mapped[str | None] = mapped_column(Text)
    #: Set while a run holds the target (Sync now and the schedule never run it twice at once).
    running_since: Mapped[datetime | None] = mapped_column(UtcDateTime)

    run_as = relationship("CrmUser", foreign_keys=[run_as_id])

    def __repr__(self) -> str:
        return self.name


class SyncRow(Model):
    """What both sides agreed on for one record at the last successful run."""

    __tablename__ = "sync_row"
    __table_args__ = (UniqueConstraint("target_id", "record_id", name="uq_sync_row_record"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("sync_target.id", ondelete="CASCADE"), nullable=False,
                                           index=True)
    record_id: Mapped[int] = mapped_column(Integer, nullable=False)
    key: Mapped[str] = mapped_column(String(40), nullable=False)
    base: Mapped[dict] = mapped_column(JSON, nullable=False)
    #: The digest of the keyed row's cells and the record's stored values when both sides last showed
    #: the same values (``sync.plan.row_digest``); the same digest next run: the row needs no merge.
    #: None: compare it field by field (rows that changed, rows stored before issue 12).
    checked: Mapped[str | None] = mapped_column(String(32))
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)


class SyncRun(Model):
    __tablename__ = "sync_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("sync_target.id", ondelete="CASCADE"), nullable=False,
                                           index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: running / done / stopped (a guard refused before any write) / failed
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="running")
    trigger: Mapped[str] = mapped_column(String(10), nullable=False, default="manual")
    dry_run: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    counts: Mapped[dict | None] = mapped_column(JSON)
    api_calls: Mapped[dict | None] = mapped_column(JSON)
    message: Mapped[str | None] = mapped_column(Text)

    target = relationship("SyncTarget")


class SyncConflict(Model):
    """A field both sides changed differently, kept for a person to decide (policy "review")."""

    __tablename__ = "sync_conflict"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("sync_target.id", ondelete="CASCADE"), nullable=False,
                                           index=True)
    record_id: Mapped[int] = mapped_column(Integer, nullable=False)
    key: Mapped[str] = mapped_column(String(40), nullable=False)
    field: Mapped[str] = mapped_column(String(40), nullable=False)
    base: Mapped[str | None] = mapped_column(Text)
    app_value: Mapped[str | None] = mapped_column(Text)
    sheet_value: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utc_now)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    resolution: Mapped[str | None] = mapped_column(String(8))

    target = relationship("SyncTarget")

    # What screens show (the conflicts list and page): masked fields always masked. The stored
    # values stay whole: settling a conflict writes the kept one back (issue 10).
    @property
    def shown_base(self) -> str | None:
        return shown_value(self.field, self.base, self._record_type)

    @property
    def shown_app_value(self) -> str | None:
        return shown_value(self.field, self.app_value, self._record_type)

    @property
    def shown_sheet_value(self) -> str | None:
        return shown_value(self.field, self.sheet_value, self._record_type)

    @property
    def field_label(self) -> str:
        """The field's label in the target's record type (a custom field's key may carry
        another label on another type)."""
        from app.services.importing import columns

        spec = columns.MODELS.get(self._record_type or "")
        found = next((f for f in spec.fields if f.name == self.field), None) if spec is not None else None
        return str(found.label) if found is not None else self.field

    @property
    def _record_type(self) -> str | None:
        return self.target.model if self.target is not None else None


def shown_value(field: str, value: str | None, record_type: str | None = None) -> str | None:
    """A synced field's value as a screen shows it: a phone masked (``138****5678``), and any
    field masked on the target's ``record_type`` (a masked column, a masked custom field)."""
    if not value or masking.MASK in value:
        return value
    if field == "contact_phone":
        return masking.mask_phone(value)
    if record_type is None:
        return value
    if field.startswith("cf_"):
        from app.services import custom_fields

        found = custom_fields.field_named(record_type, field)
        return custom_fields.masked_text(found, value) if found is not None and found.masked else value
    from app.services.importing import columns

    spec = columns.MODELS.get(record_type)
    return masking.mask(value) if spec is not None and field in masking.masked_columns(spec.model) else value
