"""Admin-defined custom fields and tags on every record type (issue 18; 001 基础配置
自定义字段类型, 扩展信息; 003 第三步 1 字段设置, 客户标签).

- ``definitions``: ``FieldDef`` per record type, kept in memory (``fields_of``,
  ``field_named``, ``record_type_of``); a field is ``cf_<key>`` outside its JSON column.
- ``values``: one rule per kind for forms, the API, imports and sheets (``clean``,
  ``apply`` inside every save through ``records.assign``, ``as_text``, ``masked_text``).
- ``query``: filter and order expressions (the expression indexes' own SQL).
"""

from app.services.custom_fields.definitions import (
    BOOLEAN,
    CHOICE,
    CHOOSING,
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    KINDS,
    LISTS,
    LONG_TEXT,
    MULTI,
    PREFIX,
    TAGS,
    TEXT,
    USER,
    Choice,
    FieldDef,
    field_named,
    fields_of,
    forget,
    is_custom,
    label_for,
    reader_lang,
    record_type_of,
    record_types,
    refresh,
)
from app.services.custom_fields.values import (
    apply,
    as_text,
    carried,
    choice_labels,
    clean,
    empty,
    masked_echo,
    masked_text,
    merged,
    parse_text,
    value_of,
)

__all__ = [
    "BOOLEAN", "CHOICE", "CHOOSING", "DATE", "DATETIME", "DECIMAL", "INTEGER", "KINDS", "LISTS", "LONG_TEXT",
    "MULTI", "PREFIX", "TAGS", "TEXT", "USER", "Choice", "FieldDef", "apply", "as_text", "carried", "choice_labels", "clean",
    "empty", "field_named", "fields_of", "forget", "is_custom", "label_for", "reader_lang", "masked_echo", "masked_text", "merged", "parse_text",
    "record_type_of", "record_types", "refresh", "value_of",
]
