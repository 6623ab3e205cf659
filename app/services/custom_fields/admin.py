"""Organisation → Custom fields: the admin's use cases (issue 18; 001 基础配置 自定义字段类型,
扩展信息 客户规模 / 合作意向产品 / 历史合作记录 / 关键需求标签; 003 第三步 1 字段设置 文本 / 数字 /
日期 / 下拉选择, 必填; 客户标签 高价值客户 / 流失风险客户).

Each use case is Admin only (``RuleForbidden`` otherwise), validates everything first
(``RuleViolation`` field -> message), then writes in the caller's transaction (row changes
audited through ``audit.audited(CustomField)``; the definitions in memory are read again
after the commit by ``definitions``' session hooks). Rules:

- key ``[a-z][a-z0-9_]{0,39}``, unique per record type, fixed after creation;
- record type one of ``record_types()``, fixed after creation; labels (en, zh) required, ≤100;
- kind one of ``KINDS``, fixed once any record holds a value;
- choice, multiple choice and tags need choices (or a dictionary; not for tags); choice codes
  ``[A-Za-z0-9_-]{1,32}`` unique, labels required, colour ``#rrggbb``; a choice records hold
  can be deactivated, not removed;
- default: a valid value of the field (``values.clean``); places 0–6 (decimal); max length
  1–255 (text);
- delete only when no record holds a value; purge (sensitive, TOTP step-up) removes the
  values from every record first.
"""

from __future__ import annotations

import re
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, literal_column, select, update

from app.extensions import db
from app.models.custom_fields import CustomField
from app.security import step_up
from app.security.rights import is_admin
from app.services import audit, records
from app.services.custom_fields import indexes
from app.services.custom_fields.definitions import (
    CHOOSING,
    DECIMAL,
    KINDS,
    PREFIX,
    TAGS,
    TEXT,
    FieldDef,
    as_def,
    record_types,
)
from app.services.custom_fields.query import EQUALS, condition, text_expression
from app.services.custom_fields.values import clean, empty
from app.services.errors import NotFound, RuleForbidden, RuleViolation

audit.audited(CustomField, exclude={"index_name"})

PURGE = step_up.declare("custom_field.purge", _l("Purge a custom field and its values from every record"),
                        _l("Organisation → Custom fields"))
KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
LABEL_LIMIT, HELP_LIMIT, SECTION_LIMIT = 100, 255, 60
FLAGS = ("required", "active", "masked", "searchable", "in_list")
TEXTS = {"help_en": HELP_LIMIT, "help_zh": HELP_LIMIT, "section_en": SECTION_LIMIT, "section_zh": SECTION_LIMIT}
CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
#: Custom fields one record type may have (every form, list and import carries them all).
MAX_FIELDS = 100
#: Choices one field may have (a form, a template dropdown and a filter list stay usable).
MAX_CHOICES = 1000
#: Words in a choice line's fifth part that mark it inactive.
INACTIVE = {"inactive", "off", "no", "0", "false", "停用", "否"}


def choice_lines(choices: list[dict[str, Any]] | None) -> str:
    """Stored choices as the lines the form edits: ``code | English | 中文 | #colour | inactive``."""
    lines = []
    for c in choices or []:
        parts = [c.get("code") or "", c.get("label_en") or "", c.get("label_zh") or "", c.get("colour") or ""]
        if not c.get("active", True):
            parts.append("inactive")
        elif not parts[3]:
            parts.pop()
        lines.append(" | ".join(parts))
    return "\n".join(lines)


def _choice_line(number: int, line: str) -> dict[str, Any]:
    parts = [part.strip() for part in line.replace("｜", "|").split("|")]
    code, en, zh, colour, flag = (parts + ["", "", "", "", ""])[:5]
    if not CODE.fullmatch(code):
        raise ValueError(str(_l("Line %(n)d: the code is 1 to 32 letters, digits, _ or -.", n=number)))
    if not en or not zh or len(en) > LABEL_LIMIT or len(zh) > LABEL_LIMIT:
        raise ValueError(str(_l("Line %(n)d: give the English and the Chinese label (at most 100 characters).",
                                n=number)))
    if colour and not COLOUR.fullmatch(colour):
        raise ValueError(str(_l("Line %(n)d: the colour is #rrggbb (for example #d9534f) or empty.", n=number)))
    return {"code": code, "label_en": en, "label_zh": zh, "active": flag.lower() not in INACTIVE,
            "colour": colour.lower()}


def parse_choices(raw: Any) -> list[dict[str, Any]]:
    """Choices from the form's lines (``code | English | 中文 | #colour | inactive``; blank
    lines skipped) or a list of dicts (the same keys) -> stored choices. ``ValueError``
    naming the line: a bad code, a missing label, a bad colour, a repeated code."""
    if isinstance(raw, list):
        lines = [" | ".join([str(c.get("code") or ""), str(c.get("label_en") or ""), str(c.get("label_zh") or ""),
                             str(c.get("colour") or ""), "" if c.get("active", True) else "inactive"])
                 if isinstance(c, dict) else str(c) for c in raw]
    else:
        lines = str(raw or "").splitlines()
    if sum(1 for line in lines if line.strip(" |\t")) > MAX_CHOICES:
        raise ValueError(str(_l("At most %(n)d choices.", n=MAX_CHOICES)))
    choices: list[dict[str, Any]] = []
    codes: set[str] = set()
    labels: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip(" |\t"):
            continue
        choice = _choice_line(number, line)
        if choice["code"] in codes:
            raise ValueError(str(_l("Line %(n)d: the code %(code)s is given twice.", n=number, code=choice["code"])))
        # a label names one choice: cells, filters and report groups are read by label
        own = {choice["label_en"].casefold(), choice["label_zh"].casefold()}
        if own & labels:
            raise ValueError(str(_l("Line %(n)d: another choice has the same label.", n=number)))
        codes.add(choice["code"])
        labels |= own
        choices.append(choice)
    return choices


def _admin_only(user: Any) -> None:
    if user is None or not is_admin(user):
        raise RuleForbidden({"_": str(_l("Only an administrator may change custom fields."))})


def _load(pk: Any) -> CustomField:
    row = db.session.get(CustomField, pk) if str(pk).isdigit() else None
    if row is None:
        raise NotFound({"_": str(_l("That custom field does not exist."))})
    return row


def holders(row: CustomField | FieldDef, code: str | None = None) -> int:
    """How many records of the field's type hold a value of it (``code``: hold that choice),
    every record whatever its owner (a count, nothing shown)."""
    model = indexes.model_of(row.record_type)
    field = row if isinstance(row, FieldDef) else as_def(row)
    where = text_expression(model, field).is_not(None) if code is None else condition(model, field, EQUALS, code)
    return db.session.scalar(select(func.count()).select_from(model).where(where)) or 0


def _text(values: dict, name: str, limit: int, errors: dict, required: bool = False) -> str | None:
    value = " ".join(str(values.get(name) or "").split())
    if required and not value:
        errors[name] = str(_l("Required."))
    elif len(value) > limit:
        errors[name] = str(_l("At most %(n)d characters.", n=limit))
    return value or None


def _number(values: dict, name: str, low: int, high: int, errors: dict) -> int | None:
    raw = values.get(name)
    if empty(raw):
        return None
    try:
        number = int(str(raw).strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        errors[name] = str(_l("A whole number from %(low)d to %(high)d.", low=low, high=high))
        return None
    return number


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("on", "1", "true", "yes", "y", "是")


def _identity(values: dict, row: CustomField | None, errors: dict) -> dict[str, Any]:
    """Record type and key: chosen once, at creation."""
    if row is not None:
        for name in ("record_type", "key"):
            if not empty(values.get(name)) and str(values[name]).strip() != getattr(row, name):
                errors[name] = str(_l("Cannot be changed after the field was created."))
        return {}
    record_type = str(values.get("record_type") or "").strip()
    key = str(values.get("key") or "").strip()
    if record_type not in {name for name, _en, _zh in record_types()}:
        errors["record_type"] = str(_l("Choose a record type."))
    if not KEY.fullmatch(key):
        errors["key"] = str(_l("A lower-case letter, then letters, digits or _ (at most 40)."))
    elif "record_type" not in errors and db.session.scalar(select(func.count()).select_from(CustomField).where(
            CustomField.record_type == record_type, CustomField.key == key)):
        errors["key"] = str(_l("This record type already has a field with that key."))
    if "record_type" not in errors and (db.session.scalar(select(func.count()).select_from(CustomField).where(
            CustomField.record_type == record_type)) or 0) >= MAX_FIELDS:
        errors["record_type"] = str(_l("A record type has at most %(n)d custom fields.", n=MAX_FIELDS))
    return {"record_type": record_type, "key": key}


def _labels_free(record_type: str, columns: dict[str, Any], errors: dict) -> None:
    """A label may not be a built-in field's name, label or alias of the record type: a
    workbook or sheet column with that header would map to the built-in field instead."""
    from app.services.importing import columns as import_columns

    spec = import_columns.MODELS.get(record_type)
    for name in ("label_en", "label_zh"):
        label = columns.get(name)
        if spec is not None and label and any(import_columns.known_header(f, label) for f in spec.builtin):
            errors[name] = str(_l("A built-in field of this record type is already called that."))


def _kind(values: dict, row: CustomField | None, errors: dict) -> str:
    kind = str(values.get("kind") or (row.kind if row is not None else "")).strip()
    if kind not in KINDS:
        errors["kind"] = str(_l("Choose a kind."))
    elif row is not None and kind != row.kind and (count := holders(row)):
        errors["kind"] = str(_l("%(n)d records hold a value of this field: its kind cannot change.", n=count))
    return kind


def _choice_columns(values: dict, kind: str, row: CustomField | None, errors: dict) -> dict[str, Any]:
    """``dictionary`` and ``choices`` of a choosing field (None for other kinds)."""
    if kind not in CHOOSING:
        return {"dictionary": None, "choices": None}
    from app.models.dictionaries import DICTIONARIES

    dictionary = str(values.get("dictionary") or "").strip() or None
    if dictionary is not None:
        if kind == TAGS:
            errors["dictionary"] = str(_l("Tags take their own choices, not a dictionary."))
        elif dictionary not in {model.__tablename__ for model in DICTIONARIES}:
            errors["dictionary"] = str(_l("Choose a dictionary."))
        return {"dictionary": dictionary, "choices": None}
    try:
        choices = parse_choices(values.get("choices"))
    except ValueError as exc:
        errors["choices"] = str(exc)
        return {"dictionary": None, "choices": None}
    if not choices:
        errors["choices"] = str(_l("Give at least one choice (or a dictionary)."))
    elif row is not None and not row.dictionary:
        _refuse_removed(row, {c["code"] for c in choices}, errors)
    return {"dictionary": None, "choices": choices}


def _refuse_removed(row: CustomField, kept: set[str], errors: dict) -> None:
    if row.kind not in CHOOSING:
        return
    for old in row.choices or []:
        code = old.get("code")
        if code and code not in kept and (count := holders(row, code)):
            errors["choices"] = str(_l("%(n)d records hold the choice %(code)s: deactivate it instead of removing it.",
                                       n=count, code=code))
            return


def _sizes(values: dict, kind: str, errors: dict) -> dict[str, Any]:
    places = _number(values, "places", 0, 6, errors) if kind == DECIMAL else None
    max_length = _number(values, "max_length", 1, 255, errors) if kind == TEXT else None
    return {"places": places, "max_length": max_length}


def _columns(values: dict, row: CustomField | None, errors: dict) -> dict[str, Any]:
    """Every column the form gives, checked (the default is checked later, on the field)."""
    columns = _identity(values, row, errors)
    kind = _kind(values, row, errors)
    columns.update(kind=kind, label_en=_text(values, "label_en", LABEL_LIMIT, errors, True),
                   label_zh=_text(values, "label_zh", LABEL_LIMIT, errors, True),
                   note=str(values.get("note") or "").strip() or None)
    _labels_free(columns.get("record_type") or (row.record_type if row is not None else ""), columns, errors)
    columns.update({name: _text(values, name, limit, errors) for name, limit in TEXTS.items()})
    columns.update({name: _flag(values.get(name)) for name in FLAGS if name in values or row is None})
    if row is None and "active" not in values:
        columns["active"] = True
    position = _number(values, "position", 0, 9999, errors)
    columns["position"] = 100 if position is None else position
    columns.update(_choice_columns(values, kind, row, errors))
    columns.update(_sizes(values, kind, errors))
    return columns


def _default(row: CustomField, raw: Any, errors: dict) -> None:
    """The default as a stored value of the field (``values.clean``)."""
    if empty(raw):
        row.default = None
        return
    try:
        row.default = clean(as_def(row), raw)
    except ValueError as exc:
        errors["default"] = str(exc)


def _write(values: dict, row: CustomField | None) -> CustomField:
    """Check ``values`` and write them onto ``row`` (a new field when None)."""
    errors: dict[str, str] = {}
    columns = _columns(values, row, errors)
    if errors:
        raise RuleViolation(errors)
    was_searchable, old_kind = (bool(row.searchable), row.kind) if row is not None else (False, None)
    if row is None:
        row = CustomField()
    with db.session.no_autoflush:
        for name, value in columns.items():
            setattr(row, name, value)
        _default(row, values.get("default"), errors)
    if errors:
        raise RuleViolation(errors)
    if row.id is None:
        db.session.add(row)
    records.flush()
    indexes.rebuild(row, was_searchable, old_kind)
    return row


def save_field(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> CustomField:
    """Add (``pk`` None) or edit a custom field. ``values``: record_type, key (new only),
    label_en, label_zh, kind, required, default (text or a value), help_en/zh, position,
    section_en/zh, active, masked, searchable, in_list, places, max_length,
    dictionary, choices (lines ``code | English | 中文 | #colour | inactive`` or a list of
    dicts), note. Flags: missing on an edit = unchanged. Admin only (``RuleForbidden``);
    ``NotFound``; ``StaleRecord`` when ``version`` is older; ``RuleViolation`` by field.
    The caller commits."""
    _admin_only(user)
    row = None
    if pk is not None:
        row = _load(pk)
        if version is not None:
            records.check_version(row, version)
    return _write(values, row)


def set_active(pk: Any, user: Any, active: bool) -> CustomField:
    """Deactivate a field (its values stay on the records, it leaves forms, lists and new
    imports) or activate it again. Admin only; ``NotFound``. The caller commits."""
    _admin_only(user)
    row = _load(pk)
    row.active = bool(active)
    records.flush()
    return row


def delete_field(pk: Any, user: Any) -> None:
    """Delete a field no record holds a value of (else ``RuleViolation`` naming the count:
    deactivate it, or purge it). Admin only; ``NotFound``. The caller commits."""
    _admin_only(user)
    row = _load(pk)
    count = holders(row)
    if count:
        raise RuleViolation({"_": str(_l("%(n)d records hold a value of this field: deactivate it, or purge it "
                                         "to remove the values too.", n=count))})
    unmap(row)
    indexes.drop_index(row)
    db.session.delete(row)
    records.flush()


def unmap(row: CustomField) -> list[str]:
    """Take the field out of every sync target's column mapping of its record type (the
    column stays in the sheet, no longer synced; a run would otherwise stop on a field that
    is gone). Returns the targets' names."""
    from app.models.sync import SyncTarget

    name, changed = PREFIX + row.key, []
    for target in db.session.scalars(select(SyncTarget).where(SyncTarget.model == row.record_type)):
        mapping = dict(target.mapping or {})
        kept = {header: field for header, field in mapping.items() if field != name}
        if kept != mapping:
            target.mapping = kept or None
            changed.append(target.name)
    return changed


def _without_key(model: type, key: str) -> Any:
    if db.engine.dialect.name == "postgresql":
        return model.custom.op("-")(literal_column(f"'{key}'"))
    return func.json_remove(model.custom, literal_column(f"'$.{key}'"))


def purge_field(pk: Any, user: Any) -> int:
    """Remove the field's values from every record of its type (one UPDATE) and delete the
    field: a sensitive action (``step_up.demand(PURGE)``: ``StepUpRequired`` without a fresh
    code). Audited ``custom_field_purged`` with the count. Admin only; ``NotFound``.
    Returns how many records held a value. The caller commits."""
    _admin_only(user)
    row = _load(pk)
    step_up.demand(PURGE, user)
    model = indexes.model_of(row.record_type)
    field = as_def(row)
    held = text_expression(model, field).is_not(None)
    assignments: dict[str, Any] = {"custom": _without_key(model, row.key)}
    if hasattr(model, "version"):
        assignments["version"] = model.version + 1  # an open edit form of such a record is stale
    result = db.session.execute(update(model).where(held).values(**assignments)
                                .execution_options(synchronize_session=False))
    count = result.rowcount or 0
    targets = unmap(row)
    audit.record("custom_field_purged", row, {"record_type": row.record_type, "key": row.key, "count": count,
                                              **({"target": ", ".join(targets)} if targets else {})}, user=user)
    indexes.drop_index(row)
    db.session.delete(row)
    records.flush()
    db.session.expire_all()
    return count


#: The issue's example fields on customers (001 扩展信息; 003 客户标签) for the demo database.
DEMO_FIELDS: list[dict[str, Any]] = [
    {"record_type": "customer", "key": "size", "label_en": "Company size", "label_zh": "客户规模", "kind": "choice",
     "searchable": True, "in_list": True, "position": 10, "section_en": "More about the customer",
     "section_zh": "扩展信息", "choices": "small | Small | 小型\nmedium | Medium | 中型\nlarge | Large | 大型\n"
                                        "group | Group | 集团"},
    {"record_type": "customer", "key": "years", "label_en": "Years together", "label_zh": "合作年限",
     "kind": "integer", "position": 20, "section_en": "More about the customer", "section_zh": "扩展信息"},
    {"record_type": "customer", "key": "needs", "label_en": "Key needs", "label_zh": "关键需求标签", "kind": "tags",
     "searchable": True, "in_list": True, "position": 30, "section_en": "More about the customer",
     "section_zh": "扩展信息",
     "choices": "price | Price-sensitive | 价格敏感 | #f0ad4e\nservice | Values service | 重视服务 | #5bc0de\n"
                "tech | High technical demands | 技术要求高 | #337ab7\nhigh_value | High-value customer | 高价值客户 | "
                "#5cb85c\nchurn_risk | Churn risk | 流失风险客户 | #d9534f"},
    {"record_type": "customer", "key": "products", "label_en": "Products of interest", "label_zh": "合作意向产品",
     "kind": "text", "position": 40, "section_en": "More about the customer", "section_zh": "扩展信息"},
]


def demo_fields() -> None:
    """Add the demo fields on customers (客户规模, 合作年限, 关键需求标签, 合作意向产品) that are
    not there yet, as the setup script (no user; the caller commits)."""
    existing = set(db.session.scalars(select(CustomField.key).where(CustomField.record_type == "customer")))
    with audit.audit_context(source="script"):
        for values in DEMO_FIELDS:
            if values["key"] not in existing:
                _write(dict(values), None)
