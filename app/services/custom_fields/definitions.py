"""Custom field definitions as every entry point reads them: ``FieldDef`` values kept in
process memory (refreshed at most every ``REFRESH_SECONDS``, and at once in the process
that changed them), so a form, a list, an API answer or an import chunk asks no query.

Rules: 001 基础配置 (自定义字段类型), 003 第三步 1 (字段设置: 文本 / 数字 / 日期 / 下拉选择,
必填; 客户标签 高价值客户, 流失风险客户). A field is ``cf_<key>`` in forms, the REST API,
import templates, exports and sheets, so it can never shadow a built-in column.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from flask_babel import get_locale
from sqlalchemy import event, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.extensions import db
from app.models.custom_fields import CustomField

#: Field kinds (001 自定义字段类型; 003 字段设置). ``TAGS`` is a multiple choice whose
#: choices carry a colour (003 客户标签): several per record.
TEXT, LONG_TEXT, INTEGER, DECIMAL, DATE, DATETIME = "text", "long_text", "integer", "decimal", "date", "datetime"
BOOLEAN, CHOICE, MULTI, TAGS, USER = "boolean", "choice", "multi", "tags", "user"
KINDS = (TEXT, LONG_TEXT, INTEGER, DECIMAL, DATE, DATETIME, BOOLEAN, CHOICE, MULTI, TAGS, USER)
#: Kinds whose value is a list of choice codes.
LISTS = (MULTI, TAGS)
#: Kinds whose value is one of ``choices`` (or of a dictionary's entries).
CHOOSING = (CHOICE, MULTI, TAGS)
#: The name of a field outside the JSON column: ``cf_<key>``.
PREFIX = "cf_"
#: Longest text a text field holds unless its ``max_length`` says less; long text.
TEXT_LIMIT, LONG_TEXT_LIMIT = 255, 10000
REFRESH_SECONDS = 10


class CustomLabel:
    """A custom field's label, in the language of whoever reads it: ``str()`` now, and a
    stored message (``messages.Capture.stored`` reads ``label`` per language, as for a
    dictionary entry) keeps both languages."""

    def __init__(self, label_en: str, label_zh: str) -> None:
        self.label_en, self.label_zh = label_en, label_zh

    @property
    def label(self) -> str:
        return self.label_zh if _chinese(None) else self.label_en

    def __str__(self) -> str:
        return self.label

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomLabel) and (self.label_en, self.label_zh) == (other.label_en, other.label_zh)

    def __hash__(self) -> int:
        return hash((self.label_en, self.label_zh))


@dataclass(frozen=True)
class Choice:
    """One choice of a choice, multiple choice or tags field."""

    code: str
    label_en: str
    label_zh: str
    active: bool = True
    colour: str = ""

    def label(self, lang: str | None = None) -> str:
        return self.label_zh if _chinese(lang) else self.label_en


@dataclass(frozen=True)
class FieldDef:
    """One custom field as stored in ``custom_field`` (see ``CustomField``), with its choices
    resolved (a dictionary's entries, or the inline list)."""

    id: int
    record_type: str
    key: str
    label_en: str
    label_zh: str
    kind: str
    required: bool = False
    default: Any = None
    help_en: str = ""
    help_zh: str = ""
    position: int = 100
    section_en: str = ""
    section_zh: str = ""
    active: bool = True
    masked: bool = False
    searchable: bool = False
    in_list: bool = False
    places: int = 2
    max_length: int | None = None
    dictionary: str | None = None
    choices: tuple[Choice, ...] = ()
    index_name: str | None = None

    @property
    def name(self) -> str:
        """The field's name outside the JSON column: ``cf_<key>``."""
        return PREFIX + self.key

    def label(self, lang: str | None = None) -> str:
        return self.label_zh if _chinese(lang) else self.label_en

    @property
    def both_labels(self) -> CustomLabel:
        """The label for a message stored now and read later in another language."""
        return CustomLabel(self.label_en, self.label_zh)

    def help(self, lang: str | None = None) -> str:
        return (self.help_zh if _chinese(lang) else self.help_en) or ""

    def section(self, lang: str | None = None) -> str:
        return (self.section_zh if _chinese(lang) else self.section_en) or ""

    @property
    def is_list(self) -> bool:
        return self.kind in LISTS

    def choice(self, code: Any) -> Choice | None:
        """The choice with ``code`` (active or not), or None."""
        return next((c for c in self.choices if c.code == code), None)

    @property
    def offered(self) -> tuple[Choice, ...]:
        """The choices a new value may take (active ones)."""
        return tuple(c for c in self.choices if c.active)

    @property
    def limit(self) -> int:
        default = LONG_TEXT_LIMIT if self.kind == LONG_TEXT else TEXT_LIMIT
        return min(self.max_length or default, default)


def reader_lang() -> str:
    """The language code of whoever reads now ("en", "zh" …): the request's locale, English
    outside one (a job, a script). Labels, help and choices are chosen by it."""
    try:
        return str(get_locale() or "en")
    except Exception:  # outside a request: English
        return "en"


def _chinese(lang: str | None) -> bool:
    return (lang or reader_lang()).startswith("zh")


_memory: dict[str, Any] = {"at": None, "fields": {}}
_lock = threading.Lock()


def _dictionary_choices(table: str) -> tuple[Choice, ...]:
    from app.models.dictionaries import DICTIONARIES

    model = next((m for m in DICTIONARIES if m.__tablename__ == table), None)
    if model is None:
        return ()
    rows = db.session.execute(select(model.code, model.label_en, model.label_zh, model.active)
                              .order_by(model.sort_order, model.id))
    return tuple(Choice(code, en, zh, bool(active)) for code, en, zh, active in rows)


def as_def(row: CustomField) -> FieldDef:
    """The ``FieldDef`` of a definition row (saved or not), its choices resolved."""
    if row.dictionary:
        choices = _dictionary_choices(row.dictionary)
    else:
        choices = tuple(Choice(str(c.get("code") or ""), str(c.get("label_en") or c.get("code") or ""),
                               str(c.get("label_zh") or c.get("label_en") or c.get("code") or ""),
                               bool(c.get("active", True)), str(c.get("colour") or ""))
                        for c in (row.choices or []) if isinstance(c, dict) and c.get("code"))
    return FieldDef(
        id=row.id, record_type=row.record_type, key=row.key, label_en=row.label_en, label_zh=row.label_zh,
        kind=row.kind, required=bool(row.required), default=row.default, help_en=row.help_en or "",
        help_zh=row.help_zh or "", position=row.position if row.position is not None else 100,
        section_en=row.section_en or "", section_zh=row.section_zh or "", active=bool(row.active),
        masked=bool(row.masked), searchable=bool(row.searchable), in_list=bool(row.in_list),
        places=row.places if row.places is not None else 2,
        max_length=row.max_length, dictionary=row.dictionary, choices=choices, index_name=row.index_name)


def load() -> dict[str, tuple[FieldDef, ...]]:
    """Every definition from the database: record type -> fields in form order."""
    found: dict[str, list[FieldDef]] = {}
    rows = db.session.scalars(select(CustomField).order_by(CustomField.position, CustomField.id))
    for row in rows:
        found.setdefault(row.record_type, []).append(as_def(row))
    return {name: tuple(fields) for name, fields in found.items()}


def refresh(force: bool = False) -> None:
    """Reload the definitions when older than ``REFRESH_SECONDS`` (or ``force``); a database
    that cannot answer (not migrated yet) keeps what is known."""
    now = time.monotonic()
    if not force and _memory["at"] is not None and now - _memory["at"] < REFRESH_SECONDS:
        return
    with _lock:
        _memory["at"] = now
        try:
            with db.session.no_autoflush:
                _memory["fields"] = load()
        except SQLAlchemyError:
            pass


def forget() -> None:
    """Read the definitions again at the next use (after a change, or a test's cleanup)."""
    _memory["at"] = None


def fields_of(record_type: str, *, active: bool | None = None) -> tuple[FieldDef, ...]:
    """The custom fields of ``record_type`` ("customer", "follow_up", a declared type's name)
    in form order; ``active``: True only active ones, False only inactive, None all."""
    refresh()
    fields = _memory["fields"].get(record_type, ())
    if active is None:
        return fields
    return tuple(f for f in fields if f.active is active)


def field_named(record_type: str, name: str) -> FieldDef | None:
    """The field ``cf_<key>`` (or ``<key>``) of ``record_type``, or None."""
    key = name[len(PREFIX):] if name.startswith(PREFIX) else name
    return next((f for f in fields_of(record_type) if f.key == key), None)


def label_for(name: str, record_type: str | None = None, lang: str | None = None) -> str | None:
    """The label of the custom field ``cf_<key>`` of ``record_type`` (any type when None:
    audit entries and erasure summaries name fields without their type), or None."""
    refresh()
    types = [record_type] if record_type else list(_memory["fields"])
    for name_of_type in types:
        field = field_named(name_of_type, name)
        if field is not None:
            return field.label(lang)
    return None


def is_custom(name: str) -> bool:
    """``name`` is a custom field's outside name (``cf_…``)."""
    return isinstance(name, str) and name.startswith(PREFIX)


def record_type_of(model_or_item: Any) -> str | None:
    """The record type name custom fields are defined on for a model class or record:
    "customer", "follow_up" or a declared type's name; None for other models."""
    model = model_or_item if isinstance(model_or_item, type) else type(model_or_item)
    if not hasattr(model, "custom"):
        return None
    table = getattr(model, "__tablename__", "")
    if table in ("customer", "follow_up"):
        return table
    from app.record_types import for_model

    rt = for_model(model)
    return rt.name if rt is not None else None


def record_types() -> list[tuple[str, str, str]]:
    """The record types an admin may add fields to: ``(name, label_en, label_zh)``."""
    from flask_babel import force_locale

    from app.record_types import REGISTRY

    result = [("customer", "Customers", "客户"), ("follow_up", "Follow-ups", "跟进记录")]
    for rt in REGISTRY.values():
        if hasattr(rt.model, "custom"):
            with force_locale("en"):
                en = str(rt.plural)
            with force_locale("zh"):
                zh = str(rt.plural)
            result.append((rt.name, en, zh))
    return result


@event.listens_for(Session, "after_flush")
def _definitions_changed(session: Session, flush_context: Any) -> None:
    """This process reads the definitions again after any change to them (another process
    within ``REFRESH_SECONDS``)."""
    from app.models.dictionaries import DICTIONARIES

    watched = (CustomField, *DICTIONARIES)  # a dictionary's entries are a field's choices
    if any(isinstance(obj, watched) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info["custom_fields_changed"] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop("custom_fields_changed", False):
        forget()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop("custom_fields_changed", None)
