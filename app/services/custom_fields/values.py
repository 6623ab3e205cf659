"""Custom field values: one rule per kind for every entry point (issue 18).

``clean`` takes what a form, the REST API or a spreadsheet cell gives and returns the
stored value (or raises ``ValueError`` with a message in the user's language); ``apply``
is what a save use case does with a record's ``cf_…`` values (through
``records.assign``); ``as_text`` and ``shown`` are the way back (exports and sheets;
pages). Stored values: text, int, decimal text ("12.50"), ISO day, UTC instant text
("2026-12-01T08:30:00Z"), bool, a choice code, a list of codes, a user id.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect, select

from app import clock
from app.extensions import db
from app.models.org import CrmUser
from app.security import masking
from app.services import validation
from app.services.custom_fields.definitions import (
    BOOLEAN,
    CHOICE,
    CHOOSING,
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    LISTS,
    LONG_TEXT,
    TEXT,
    USER,
    FieldDef,
    field_named,
    fields_of,
    is_custom,
    record_type_of,
)
from app.services.errors import RuleViolation

#: Separators between several choices in one cell or text: , ， ; ； 、 | and line breaks.
_SEPARATORS = re.compile(r"[,，;；、|\n]+")
_TRUE = {"1", "true", "yes", "y", "是", "对", "✓", "√", "x"}
_FALSE = {"0", "false", "no", "n", "否", "不", "不是"}
#: Integers a JSON number holds exactly everywhere (JavaScript's safe range).
INT_LIMIT = 2**53 - 1
INSTANT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def empty(value: Any) -> bool:
    """Nothing given: None, blank text, an empty list."""
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def clean(field: FieldDef, raw: Any, previous: Any = None) -> Any:
    """The stored value of ``raw`` for ``field`` (None when empty). ``previous``: the value
    stored now; an inactive choice (or a deactivated field) is accepted only unchanged.
    ``ValueError`` with a message the user can act on."""
    if empty(raw):
        return None
    kind = field.kind
    # a JSON body can send anything: one value per field, several only for lists of choices,
    # true/false only for yes/no (a bool is an int to Python: a user id 1, a serial day 1)
    if isinstance(raw, dict) or (isinstance(raw, list | tuple | set) and kind not in LISTS):
        raise ValueError(str(_l("Give one value.")))
    if isinstance(raw, bool) and kind != BOOLEAN:
        raise ValueError(str(_l("Not a value this field takes.")))
    if kind in CHOOSING:
        return _choice_value(field, raw, previous)
    if kind == BOOLEAN:
        return _boolean(raw)
    if kind == INTEGER:
        return _integer(raw)
    if kind == DECIMAL:
        return _decimal(field, raw)
    if kind == DATE:
        return _day(raw)
    if kind == DATETIME:
        return _instant(raw)
    if kind == USER:
        return _user(raw, previous)
    return _text(field, raw)


def _text(field: FieldDef, raw: Any) -> str | None:
    if not isinstance(raw, str | int | float | Decimal) or isinstance(raw, bool):
        raise ValueError(str(_l("Give text.")))
    text = validation.clean_block(raw) if field.kind == LONG_TEXT else validation.clean_line(raw)
    if len(text) > field.limit:
        raise ValueError(str(_l("At most %(n)d characters.", n=field.limit)))
    return text or None


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    text = validation.clean_code(raw).lower() if isinstance(raw, str) else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(str(_l("Give yes or no (是/否).")))


def _integer(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(str(_l("Give a whole number.")))
    try:
        number = validation.decimal_value(raw)
    except (ValueError, InvalidOperation):
        raise ValueError(str(_l("Give a whole number."))) from None
    if number != number.to_integral_value():
        raise ValueError(str(_l("Give a whole number.")))
    if abs(number) > INT_LIMIT:
        raise ValueError(str(_l("The number is too large.")))
    return int(number)


def _decimal(field: FieldDef, raw: Any) -> str:
    if isinstance(raw, bool):
        raise ValueError(str(_l("Give a number.")))
    try:
        number = validation.decimal_value(raw)
    except (ValueError, InvalidOperation):
        raise ValueError(str(_l("Give a number."))) from None
    if not number.is_finite() or abs(number) >= Decimal(10) ** 15:  # before quantize, which fails on 1e308
        raise ValueError(str(_l("The number is too large.")))
    places = max(0, min(field.places, 6))
    step = Decimal(1).scaleb(-places)
    if number != number.quantize(step, rounding=ROUND_HALF_UP):
        raise ValueError(str(_l("At most %(n)d decimal places.", n=places)))
    if abs(number) >= Decimal(10) ** 15:
        raise ValueError(str(_l("The number is too large.")))
    number = number.quantize(step)
    return str(abs(number) if number == 0 else number)  # "-0" is 0


def _day(raw: Any) -> str:
    errors: dict[str, str] = {}
    day = validation.day_value(raw, "day", errors)
    if errors:
        raise ValueError(errors["day"])
    return day.isoformat() if day is not None else None


def _instant(raw: Any) -> str:
    try:
        moment = validation.parse_datetime(raw)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    problem = validation.date_problem(moment)
    if problem:
        raise ValueError(problem)
    return clock.as_utc(moment).strftime(INSTANT_FORMAT)


def _user(raw: Any, previous: Any = None) -> int:
    """The id of the user ``raw`` names (a user, an id, a user name). The rule of an owner
    (``records.check_owner``) and of the form's user lookup: a new or changed value must be an
    active user inside the saving user's data scope (the logged-in user, or the acting user
    of an import or sync job; a job without one: any active user); the value stored now
    (``previous``) stays even when that user is deactivated or out of scope since."""
    found = _user_named(raw)
    if found is not None and found.id == previous:
        return found.id
    saver = _saver()
    allowed = None if saver is None else _visible_users(saver)
    if found is None or (allowed is not None and found.id not in allowed):
        # the same answer whether or not such a user exists outside the scope
        if saver is None:
            raise ValueError(str(_l("No user %(name)s.", name=str(raw))))
        raise ValueError(str(_l("No active user %(name)s in your data scope.", name=str(raw))))
    if not found.is_active:  # deactivated, or past its expiry date
        raise ValueError(str(_l("%(name)s is deactivated; pick an active user.", name=found.username)))
    return found.id


def _user_named(raw: Any) -> CrmUser | None:
    if isinstance(raw, CrmUser):
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return db.session.get(CrmUser, raw) if 0 < raw < 2**31 else None  # beyond any id: no 500
    text = validation.clean_line(raw)
    found = db.session.scalar(select(CrmUser).where(CrmUser.username == text))
    if found is None and text.isdigit() and len(text) < 10:
        found = db.session.get(CrmUser, int(text))
    return found


def _saver() -> CrmUser | None:
    """Whoever is saving: the logged-in user or a job's acting user (None: neither)."""
    from app.models.base import current_user_id

    uid = current_user_id()
    return db.session.get(CrmUser, uid) if uid is not None else None


def _visible_users(saver: CrmUser) -> set[int] | None:
    """Ids of the users ``saver`` may assign (cached per request or job); None: everyone."""
    from app.security.data_scope import visible_owner_ids

    return visible_owner_ids(saver)


def _codes(raw: Any) -> list[str]:
    if isinstance(raw, list | tuple | set):
        parts = [str(item) for item in raw if not empty(item)]
    else:
        parts = [part for part in _SEPARATORS.split(str(raw))]
    return [validation.clean_line(part) for part in parts if validation.clean_line(part)]


def _choice_code(field: FieldDef, text: str) -> str | None:
    """The code a text means: a code, or a label in either language (case and width folded)."""
    if field.choice(text) is not None:
        return text
    folded = validation.clean_code(text).casefold()
    for choice in field.choices:
        if folded in (validation.clean_code(choice.code).casefold(), validation.clean_code(choice.label_en).casefold(),
                      validation.clean_code(choice.label_zh).casefold()):
            return choice.code
    return None


def _choice_value(field: FieldDef, raw: Any, previous: Any) -> Any:
    texts = _codes(raw)
    if field.kind == CHOICE and len(texts) > 1:
        raise ValueError(str(_l("Pick one choice.")))
    kept = set(previous) if isinstance(previous, list) else {previous}
    codes = []
    for text in texts:
        code = _choice_code(field, text)
        if code is None:
            raise ValueError(str(_l("%(value)s is not one of the choices.", value=text)))
        if not field.choice(code).active and code not in kept:
            raise ValueError(str(_l("%(value)s is no longer offered.", value=field.choice(code).label())))
        if code not in codes:
            codes.append(code)
    if field.kind == CHOICE:
        return codes[0] if codes else None
    return codes or None


def parse_text(field: FieldDef, text: Any, previous: Any = None) -> Any:
    """A spreadsheet cell or CSV text (or a workbook's typed cell) as the stored value:
    ``clean`` reads text, numbers, dates and booleans as written."""
    return clean(field, text, previous)


def as_text(field: FieldDef, value: Any, lang: str | None = None) -> str:
    """A stored value as export and sheet text: choices by label in ``lang`` (tags joined by
    ", "), yes/no as 是/否 or Yes/No, an instant in the CRM's zone, a user by user name."""
    if empty(value):
        return ""
    kind = field.kind
    if kind in CHOOSING:
        codes = value if isinstance(value, list) else [value]
        return ", ".join(field.choice(code).label(lang) if field.choice(code) else str(code) for code in codes)
    if kind == BOOLEAN:
        chinese = (lang or "").startswith("zh")
        return ("是" if value else "否") if chinese else ("Yes" if value else "No")
    if kind == DATETIME:
        moment = datetime.strptime(str(value), INSTANT_FORMAT).replace(tzinfo=clock.UTC)
        return clock.local_text(moment)
    if kind == USER:
        user = db.session.get(CrmUser, value)
        return user.username if user is not None else ""
    return str(value)


def _previous_custom(item: Any) -> dict[str, Any]:
    state = inspect(item)
    if state.transient or state.pending:
        return {}
    from app.services import records

    return dict(records.previous(item, "custom") or {})


def apply(item: Any, values: dict[str, Any]) -> None:
    """Set ``item``'s custom values from ``values`` (``cf_<key>`` -> raw) for a save use
    case: each value cleaned by its field's rule; a new record takes the defaults of the
    fields not given and every active required field must then hold a value; an edit may
    not clear a required field, nor change a deactivated one. ``RuleViolation`` naming every
    field that failed (``cf_<key>``); unknown ``cf_`` names are refused like any unknown field."""
    record_type = record_type_of(item)
    if record_type is None:
        if values:
            raise RuleViolation({name: str(_l("This field cannot be set.")) for name in values})
        return
    before = _previous_custom(item)
    current = dict(item.custom or {})
    new = inspect(item).transient or inspect(item).pending
    errors: dict[str, str] = {}
    for name, raw in values.items():
        field = field_named(record_type, name) if is_custom(name) else None
        if field is None:
            errors[name] = str(_l("This field cannot be set."))
            continue
        if field.masked and masked_echo(field, raw, before.get(field.key)):
            continue  # the masked text it was shown came back: the stored value stays
        if field.masked and isinstance(raw, str) and masking.MASK in raw:
            errors[name] = str(_l("Type the full value: a masked one (with ****) cannot be stored."))
            continue
        try:
            value = clean(field, raw, before.get(field.key))
        except ValueError as exc:
            if not _unchanged(field, raw, before.get(field.key)):
                errors[name] = str(exc)
                continue
            value = before.get(field.key)  # stored under an older definition: saved as it is
        if not field.active and value != before.get(field.key):
            errors[name] = str(_l("This field is no longer in use."))
            continue
        _put(current, field.key, value)
    for field in fields_of(record_type, active=True):
        if new and field.name not in values and field.default is not None and field.key not in current:
            _put(current, field.key, field.default)
        if field.required and empty(current.get(field.key)) and field.name not in errors:
            if new or field.name in values or not empty(before.get(field.key)):
                errors[field.name] = str(_l("Required."))
    if errors:
        raise RuleViolation(errors)
    if current != dict(item.custom or {}):
        item.custom = current or None


def _unchanged(field: FieldDef, raw: Any, stored: Any) -> bool:
    """Whether ``raw`` is the stored value sent back as it was shown (a form, an API answer,
    a sheet cell): a value stored before an admin tightened the field (fewer decimal places,
    a shorter limit, a choice removed) still saves unchanged, as a retired choice does."""
    if empty(stored) or empty(raw):
        return False
    if raw == stored:
        return True
    text = validation.clean_line(raw) if isinstance(raw, str | int | float | Decimal) else None
    try:
        return text is not None and text in (str(stored), as_text(field, stored), as_text(field, stored, "zh"))
    except (ValueError, TypeError):
        return False


def _put(values: dict[str, Any], key: str, value: Any) -> None:
    if empty(value):
        values.pop(key, None)
    else:
        values[key] = value


def carried(source: Any, record_type: str) -> dict[str, Any]:
    """The custom values of ``source`` that a record of ``record_type`` made from it takes
    (a lead converted into a customer and an opportunity): ``{"cf_<key>": value}`` for each
    active field of the target with the same key and kind whose rule accepts the value (a
    choice the target does not offer stays behind)."""
    found: dict[str, Any] = {}
    stored = getattr(source, "custom", None) or {}
    own = {f.key: f for f in fields_of(record_type_of(source) or "")}
    for field in fields_of(record_type, active=True):
        value = stored.get(field.key)
        mine = own.get(field.key)
        if empty(value) or mine is None or mine.kind != field.kind:
            continue
        try:
            found[field.name] = clean(field, value)
        except ValueError:
            continue
    return found


def merged(survivor: Any, others: list[Any]) -> dict[str, Any] | None:
    """The custom values of a merged customer: the survivor's own, and for every field it
    leaves empty the first value another merged record holds (as the merge keeps the
    survivor's contact data and adds the others'), or None when nothing would change."""
    values = dict(getattr(survivor, "custom", None) or {})
    before = dict(values)
    for other in others:
        for key, value in (getattr(other, "custom", None) or {}).items():
            if empty(values.get(key)) and not empty(value):
                values[key] = value
    return values if values != before else None


def value_of(item: Any, field: FieldDef) -> Any:
    """The stored value of ``field`` on ``item`` (None when unset)."""
    return (getattr(item, "custom", None) or {}).get(field.key)


def choice_labels(field: FieldDef, value: Any, lang: str | None = None) -> list[tuple[str, str]]:
    """``[(label, colour)]`` of a choice, multiple choice or tags value (for chips)."""
    codes = value if isinstance(value, list) else ([] if empty(value) else [value])
    result = []
    for code in codes:
        choice = field.choice(code)
        result.append((choice.label(lang), choice.colour) if choice else (str(code), ""))
    return result



def masked_text(field: FieldDef, value: Any, lang: str | None = None) -> str:
    """What a viewer who may not reveal sees of a masked field: a number of 11 characters or
    more (a phone, an ID card number) like a phone (``138****5678``: its ends tell two records
    apart, as the phone columns do); anything else ``****``, so a short secret shows nothing.
    Empty stays empty."""
    if empty(value):
        return ""
    text = str(value)
    if field.kind in (TEXT, LONG_TEXT) and len(text) >= 11 and sum(c.isdigit() for c in text) >= len(text) * 0.8:
        return masking.mask_phone(text)
    return masking.MASK


def masked_echo(field: FieldDef, raw: Any, stored: Any) -> bool:
    """A form, the API or a sheet sent back the masked text it was shown: keep ``stored``."""
    return (isinstance(raw, str) and masking.MASK in raw and not empty(stored)
            and raw.strip() == masked_text(field, stored))
