"""What can be imported per model: fields, their header aliases (EN/ZH) and kinds.

The aliases make the manual's own template (附录1: 客户编号, 客户名称, 所属行业 ...) and
our exports/templates map without editing. Matching ignores case, spaces, brackets,
``*`` required marks and full-width forms, and does not depend on the language of whoever
runs the import (a field's label counts in every language the app offers).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, has_app_context
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

from app.models.customers import Customer, FollowUp
from app.models.dictionaries import CustomerLevel, CustomerSource, CustomerType, FollowUpMethod, Industry
from app.services import messages
from app.services.custom_fields.definitions import CustomLabel

#: Field kinds the cell parser knows. ``CUSTOM``: an admin-defined field (``custom`` holds its
#: ``custom_fields.FieldDef``), read by ``custom_fields.parse_text`` / ``apply``.
TEXT, DICT, DATE, DATETIME, USER, CUSTOMER = "text", "dict", "date", "datetime", "user", "customer"
CUSTOM = "custom"


@dataclass(frozen=True)
class ImportField:
    name: str
    label: object  # lazy string, shown in the user's language
    label_zh: str
    aliases: tuple[str, ...] = ()
    kind: str = TEXT
    #: True, or a function answering it now (a field an admin setting makes required)
    required: bool | Callable[[], bool] = False
    max_length: int | None = None
    dictionary: type | None = None
    note: object = ""
    #: The custom field's definition (kind ``CUSTOM``); not compared (its default may be a list).
    custom: Any = field(default=None, compare=False)

    def header(self, lang: str) -> str:
        return self.label_zh if lang.startswith("zh") else str(self.label)

    @property
    def is_required(self) -> bool:
        """Whether a file must carry this column (template mark, mapping, empty cells)."""
        return bool(self.required()) if callable(self.required) else self.required


def _follow_up_requires(name: str) -> Callable[[], bool]:
    """The follow-up field ``name`` is required while the admin's setting says so
    (``follow_ups.required_fields``, 000 跟进记录必填字段)."""
    def required() -> bool:
        from app.services.follow_ups import required_fields

        return name in required_fields()

    return required


@dataclass(frozen=True)
class ImportModel:
    name: str
    model: type
    label: object
    #: The built-in fields; ``fields`` adds the record type's active custom fields.
    builtin: tuple[ImportField, ...]
    keys: tuple[str, ...] = ("code",)
    #: The permission view whose can_write an import (or a sync) into this model needs.
    view: str = ""
    #: Whether the record type's custom fields are importable (False: a reference table).
    with_custom: bool = True

    @property
    def fields(self) -> tuple[ImportField, ...]:
        """The built-in fields, then one per ACTIVE custom field of the record type (issue 18),
        read from the in-memory definitions (no query)."""
        if not self.with_custom:
            return self.builtin
        return self.builtin + custom_import_fields(self.name)

    def field(self, name: str) -> ImportField:
        return next(f for f in self.fields if f.name == name)


#: record type -> (the definitions they were made from, the import fields): rebuilt only
#: when ``fields_of`` answers a different tuple (after a refresh).
_CUSTOM_CACHE: dict[str, tuple[tuple, tuple[ImportField, ...]]] = {}


def custom_import_fields(record_type: str) -> tuple[ImportField, ...]:
    """One ``ImportField`` (kind ``CUSTOM``, name ``cf_<key>``) per active custom field of
    ``record_type``: label in the reader's language, ``label_zh``, aliases the English label
    and the key (a header in either language maps), required from the definition. None
    outside an application context (a file read on its own knows no database)."""
    from app.services import custom_fields

    if not has_app_context():
        return ()
    defs = custom_fields.fields_of(record_type)  # the same tuple until the next refresh
    cached = _CUSTOM_CACHE.get(record_type)
    if cached is not None and cached[0] is defs:
        return cached[1]
    made = tuple(ImportField(f.name, CustomLabel(f.label_en, f.label_zh), f.label_zh,
                             (f.label_en, f.key), CUSTOM, required=f.required, custom=f)
                 for f in defs if f.active)
    _CUSTOM_CACHE[record_type] = (defs, made)
    return made


CUSTOMER = ImportModel(
    "customer", Customer, _l("Customers"),
    (
        ImportField("code", _l("Customer code"), "客户编号", ("code", "customer no", "客户代码", "编号"),
                    max_length=20, note=_l("Leave empty for new customers: the CRM numbers them.")),
        ImportField("name", _l("Customer name"), "客户名称", ("name", "company", "company name", "客户", "公司名称",
                    "企业名称"), required=True, max_length=200),
        ImportField("credit_code", _l("Unified social credit code"), "统一社会信用代码",
                    ("credit code", "uscc", "信用代码", "社会信用代码"), max_length=18),
        ImportField("type", _l("Customer type"), "客户类型", ("type", "status", "客户状态"), DICT,
                    dictionary=CustomerType),
        ImportField("industry", _l("Industry"), "所属行业", ("industry", "行业"), DICT, dictionary=Industry),
        ImportField("contact_name", _l("Contact name"), "联系人姓名", ("contact", "contact person", "联系人"),
                    max_length=64),
        ImportField("contact_phone", _l("Contact phone"), "联系方式", ("phone", "mobile", "tel", "telephone",
                    "联系电话", "电话", "手机", "手机号"), required=True, max_length=32,
                    note=_l("Mobile (13812345678) or landline with area code (010-12345678).")),
        ImportField("email", _l("E-mail"), "电子邮箱", ("email", "mail", "邮箱"), max_length=120),
        ImportField("address", _l("Address"), "客户地址", ("address", "地址"), max_length=255),
        ImportField("level", _l("Customer level"), "客户等级", ("level", "grade", "等级"), DICT,
                    dictionary=CustomerLevel),
        ImportField("source", _l("Source"), "信息来源", ("source", "lead source", "客户来源", "来源"), DICT,
                    dictionary=CustomerSource),
        ImportField("owner", _l("Owner"), "跟进人", ("owner", "sales rep", "负责人", "所属销售"), USER,
                    note=_l("User name or full name; empty = you.")),
        ImportField("note", _l("Note"), "备注", ("note", "notes", "remark", "remarks", "comment", "说明")),
        ImportField("contract_number", _l("Contract number"), "合同编号",
                    ("contract number", "contract no", "合同号", "合同编码"), max_length=60,
                    note=_l("Needed when the row makes the customer won (成交客户), unless the customer "
                            "has a signed contract; not stored on the customer.")),
    ),
    keys=("code", "credit_code"),
    view="Customer",
)

FOLLOW_UP = ImportModel(
    "follow_up", FollowUp, _l("Follow-ups"),
    (
        ImportField("code", _l("Code"), "记录编号", ("code", "record no", "编号"), max_length=20,
                    note=_l("Leave empty for new follow-ups.")),
        ImportField("customer", _l("Customer code"), "客户编号", ("customer", "customer no", "客户代码"), CUSTOMER,
                    required=True),
        ImportField("followed_at", _l("Time"), "跟进时间", ("time", "date", "followed at", "时间", "日期"),
                    DATETIME, required=True),
        ImportField("method", _l("Method"), "跟进方式", ("method", "channel", "方式"), DICT,
                    dictionary=FollowUpMethod, required=_follow_up_requires("method")),
        ImportField("content", _l("Content"), "跟进内容", ("content", "notes", "summary", "内容", "沟通内容"),
                    required=_follow_up_requires("content"), max_length=10000),
        ImportField("next_step", _l("Next step"), "下一步计划", ("next step", "next", "下一步"), max_length=255,
                    required=_follow_up_requires("next_step")),
        ImportField("next_step_date", _l("Next step date"), "下一步日期", ("next step date", "due", "计划日期"),
                    DATE, required=_follow_up_requires("next_step_date")),
        ImportField("owner", _l("Owner"), "跟进人", ("owner", "负责人"), USER,
                    note=_l("User name or full name; empty = you.")),
    ),
    view="FollowUp",
)

MODELS = {m.name: m for m in (CUSTOMER, FOLLOW_UP)}
_NOISE = re.compile(r"[\s*＊_\-()（）\[\]【】:：/]+")


def header_key(text: object) -> str:
    """Comparable form of a header: NFKC, lower case, no spaces, marks or brackets."""
    return _NOISE.sub("", unicodedata.normalize("NFKC", str(text or "")).lower())


def _candidates(spec: ImportField) -> list[str]:
    return [spec.name, *_labels(spec.label), spec.label_zh, *spec.aliases]


def _labels(label: object) -> list[str]:
    """``label`` in every language the app offers: a file's headers, or a scheduled run (no
    request language), must map the same whoever runs it. Real text even while an import
    keeps its messages' ids (``messages.capturing``): these are matched, not shown."""
    codes = list(current_app.config.get("LANGUAGES") or {}) if has_app_context() else []
    with messages.uncaptured():
        if not codes:
            return [str(label)]
        found = []
        for code in codes:
            with force_locale(code):
                found.append(str(label))
        return found


def known_header(spec: ImportField, header: str) -> bool:
    """``header`` is one of the field's own names (identifier, label in any language, template
    header, alias), so a message may name the column by the field's label alone."""
    return header_key(header) in {header_key(text) for text in _candidates(spec)}


def known_headers(model: ImportModel) -> list[str]:
    """Every header text that maps to a field of ``model`` (field names, labels, aliases)."""
    return [text for spec in model.fields for text in _candidates(spec)]


def auto_map(model: ImportModel, headers: list[str], remembered: dict | None = None) -> dict[str, str]:
    """Header -> field name for every header we recognise (remembered choices first)."""
    index = {}
    for spec in model.fields:
        for candidate in _candidates(spec):
            index.setdefault(header_key(candidate), spec.name)
    mapping, taken = {}, set()
    for header in headers:
        chosen = (remembered or {}).get(header) or index.get(header_key(header))
        if chosen and chosen not in taken and any(f.name == chosen for f in model.fields):
            mapping[header] = chosen
            taken.add(chosen)
    return mapping


def is_code(spec: ImportField) -> bool:
    """A code or ID column (customer code, credit code, a customer reference): its digits are
    identity, so a number cell (which has lost leading zeros or digits past 15) cannot hold one."""
    return spec.kind == CUSTOMER or spec.name == "code" or spec.name.endswith("_code")


def is_phone(spec: ImportField) -> bool:
    return spec.name.endswith("phone")


def missing_required(model: ImportModel, mapping: dict[str, str]) -> list[ImportField]:
    mapped = set(mapping.values())
    return [f for f in model.fields if f.is_required and f.name not in mapped]
