"""Custom field definitions (issue 18; 001 基础配置 自定义字段类型 and 扩展信息, 003 第三步 1
字段设置 and 客户标签): an admin adds fields to a record type without a developer. The values
live in each record's ``custom`` JSON column (``app.models.base.CustomValuesMixin``)."""

from __future__ import annotations

from typing import Any

from flask_appbuilder import Model
from sqlalchemy import Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import CustomJSON, StampMixin, VersionMixin


class CustomField(StampMixin, VersionMixin, Model):
    """One field of one record type. ``record_type``: "customer", "follow_up" or a declared
    type's name; ``key``: identifier in the JSON column (the field is ``cf_<key>`` in forms,
    the API, imports and sheets); ``kind``: see ``app.services.custom_fields.KINDS``;
    ``choices``: ``[{"code", "label_en", "label_zh", "active", "colour"}]`` for choice,
    multiple choice and tags (or ``dictionary`` names a dictionary instead); ``default``:
    a stored value; ``places``: a decimal's places."""

    __tablename__ = "custom_field"
    __table_args__ = (UniqueConstraint("record_type", "key", name="uq_custom_field_type_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_type: Mapped[str] = mapped_column(String(40), nullable=False)
    key: Mapped[str] = mapped_column(String(40), nullable=False)
    label_en: Mapped[str] = mapped_column(String(100), nullable=False)
    label_zh: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    default: Mapped[Any] = mapped_column(CustomJSON, nullable=True)
    help_en: Mapped[str | None] = mapped_column(String(255))
    help_zh: Mapped[str | None] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=100)
    section_en: Mapped[str | None] = mapped_column(String(60))
    section_zh: Mapped[str | None] = mapped_column(String(60))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    masked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    searchable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    in_list: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    places: Mapped[int | None] = mapped_column(Integer)
    max_length: Mapped[int | None] = mapped_column(Integer)
    dictionary: Mapped[str | None] = mapped_column(String(40))
    choices: Mapped[list[dict[str, Any]] | None] = mapped_column(CustomJSON)
    #: Name of the expression index the admin screen made for a searchable field (or None).
    index_name: Mapped[str | None] = mapped_column(String(63))
    note: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"{self.record_type}.{self.key}"
