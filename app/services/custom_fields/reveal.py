"""The explicit, recorded reveal of a masked custom field (issue 18), by the phone rule.

001 使用规范 (联系方式脱敏, 查看需授权并记录): a field an admin marked masked shows as
``138****5678`` / ``****`` on every page, list, answer and export; a person with the
*reveal contact* right (``customers.REVEAL_PERMISSION`` on customers) sees the full value
of one record at a time, after a fresh step-up code (``customers.REVEAL``), and each
reveal is an audit entry (action ``reveal``, detail: field, record code, entry point).
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from app.security import step_up
from app.security.rights import user_may
from app.services import audit, records
from app.services.custom_fields.definitions import FieldDef, field_named
from app.services.custom_fields.values import as_text, value_of
from app.services.errors import RuleForbidden


def model_of(record_type: str) -> type | None:
    """The model custom fields of ``record_type`` are stored on ("customer", "follow_up", a
    declared type's name), or None."""
    from app.models.customers import Customer, FollowUp
    from app.record_types import REGISTRY

    if record_type == "customer":
        return Customer
    if record_type == "follow_up":
        return FollowUp
    declared = REGISTRY.get(record_type)
    model = declared.model if declared is not None else None
    return model if model is not None and hasattr(model, "custom") else None


def may_reveal(user: Any) -> bool:
    """Whether ``user`` may reveal masked values (the phone rule: the reveal right on customers)."""
    from app.services import customers

    return user_may(user, customers.REVEAL_PERMISSION, "Customer")


def reveal_value(record_type: str, pk: Any, key: str, user: Any, via: str = "web") -> tuple[FieldDef, Any]:
    """``(field, stored value)`` of the custom field ``key`` (``cf_<key>`` or ``<key>``) of
    the record ``pk`` of ``record_type`` in ``user``'s scope. A masked field needs the
    reveal right (``RuleForbidden``, 403) and a fresh step-up (``StepUpRequired``), and is
    audited (``reveal``; ``via``: ``web``/``api``); an unmasked one is simply read.
    ``NotFound`` (404) for an unknown type, record out of scope or unknown field."""
    from app.services import customers

    model = model_of(record_type)
    if model is None:
        raise records.not_found()
    item = records.load(model, pk, user)
    field = field_named(record_type, str(key))
    if field is None:
        raise records.not_found()
    if field.masked:
        if not may_reveal(user):
            raise RuleForbidden(str(_l("You may not reveal masked values.")))
        step_up.demand(customers.REVEAL, user)
        audit.record("reveal", item, {"field": field.name, "code": getattr(item, "code", None), "via": via})
    return field, value_of(item, field)


def reveal(record_type: str, pk: Any, key: str, user: Any, via: str = "web") -> str:
    """The full value of a masked custom field as text (choices by label, yes/no, an
    instant in the CRM's zone; ``values.as_text``), by the rules of ``reveal_value``."""
    field, value = reveal_value(record_type, pk, key, user, via)
    return as_text(field, value)
