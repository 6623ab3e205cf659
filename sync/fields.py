"""What a record looks like in a sheet and back: canonical text per mapped field.

Comparison happens on canonical text, so formatting noise is not a change: a phone
typed with spaces equals the stored number, ``汽车制造`` equals ``36``, an Excel
date equals ``2024-05-01``. A number cell (``sync.backends.SheetNumber``) is read by its field:
a serial in a date column is the date (wall time in the CRM's zone, as every
date-time in a sheet: instants are written and read as that zone's wall time), an integral number in a phone column is the phone
(``13,812,345,678`` formatted or not), and a number beyond 15 digits, whose low digits the
spreadsheet invented, stays in its exponent form so that no rule can accept it (issue 11). Mapping and aliases are the importer's
(``app.services.importing.columns``): one rule, one place.

Declared record types (``app.record_types``) add column kinds by the model's column type:
a Numeric column compares as a plain decimal (``1200.00`` = ``1,200`` = ``￥1200``), a
Boolean one as ``1``/``0`` (shown 是/否 or Yes/No, read from either), and the model's
``masked_columns`` are masked like the customer's contact phone.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, timedelta
from operator import attrgetter
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect, select

from app import clock
from app.extensions import db
from app.models.org import CrmUser
from app.security import masking
from app.services import custom_fields, validation
from app.services.dictionaries import DictionaryLookup, lookup_key, lookups_for
from app.services.importing.columns import CUSTOM, CUSTOMER, DATE, DATETIME, DICT, USER, ImportModel
from app.services.importing.declared import canonical_number, column_value, is_boolean_column, is_number_column
from app.services.importing.reading import cell_text
from sync.backends import SheetNumber

#: Serial day 0 of Google Sheets and Excel (dates after 1900-03-01 agree).
SERIAL_EPOCH = datetime(1899, 12, 30)

_CJK = re.compile(r"[\u4e00-\u9fff]")

#: Part of every row digest (``FieldCodec.context``): raise it whenever ``sheet_text``, ``app_text`` or
#: ``sheet_problem`` read a value differently, so that no row is skipped on a digest the old code made.
CODEC_VERSION = 2


class FieldCodec:
    """Canonical text of app values and sheet cells for one target's mapped fields."""

    def __init__(self, spec: ImportModel, fields: list[str], chinese: bool, reveal_phone: bool,
                 lookups: dict[str, DictionaryLookup] | None = None, user: Any = None) -> None:
        self.spec, self.fields, self.chinese, self.reveal_phone = spec, fields, chinese, reveal_phone
        self.kinds = {f.name: f for f in spec.fields if f.name in fields}
        self.lookups = lookups if lookups is not None else lookups_for(spec.fields)
        self.usernames = dict(db.session.execute(select(CrmUser.id, CrmUser.username)).all())
        self._people: dict[str, str] | None = None
        self._raw: dict[str, str | None] | None = None
        self._getter: Any = None
        self.user = user
        model = spec.model
        #: Phone columns masked in the sheet unless the run-as user may reveal them: the
        #: customer's contact phone and a declared type's ``masked_columns`` (contacts, leads).
        self.masked = {"contact_phone", *getattr(model, "masked_columns", ())}
        self.numbers = {name for name in self.kinds if is_number_column(model, name)}
        self.booleans = {name for name in self.kinds if is_boolean_column(model, name)}

    @staticmethod
    def for_headers(spec: ImportModel, mapping: dict[str, str], reveal_phone: bool,
                    lookups: dict[str, DictionaryLookup] | None = None, user: Any = None) -> FieldCodec:
        """The codec of a sheet's mapped headers (``user``: the run-as user, whose scope decides
        which people an owner cell may name by full name or e-mail, as in the importer)."""
        chinese = any(_CJK.search(header) for header in mapping)
        return FieldCodec(spec, list(dict.fromkeys(mapping.values())), chinese, reveal_phone, lookups, user)

    def username(self, text: str) -> str:
        """The user name an owner cell means, read as the importer reads it (``importing.lookups``):
        any user's name in any case or width, else an active user in scope by full name or e-mail;
        text that names nobody stays as typed (the owner rule refuses it with its message)."""
        if self._people is None:
            from app.security.data_scope import scope_clause

            people: dict[str, str] = {}
            query = select(CrmUser)
            for person in db.session.scalars(query):
                people.setdefault(lookup_key(person.username), person.username)
            if self.user is not None:
                for person in db.session.scalars(query.where(CrmUser.active.is_(True),
                                                             scope_clause(self.user, CrmUser))):
                    full = f"{person.first_name or ''}{person.last_name or ''}"
                    for name in (full, f"{person.first_name} {person.last_name}", person.email):
                        if name:
                            people.setdefault(lookup_key(name), person.username)
            self._people = people
        return self._people.get(lookup_key(text), text)

    def app_values(self, record: Any) -> dict[str, str]:
        return {name: self.app_text(record, name) for name in self.fields}

    def app_text(self, record: Any, name: str) -> str:
        spec = self.kinds[name]
        if spec.kind == CUSTOM:
            return self._custom_app_text(spec.custom, custom_fields.value_of(record, spec.custom))
        if spec.kind == DICT:
            entry = getattr(record, name)
            return entry.code if entry is not None else ""
        if spec.kind == USER:
            return self.usernames.get(getattr(record, f"{name}_id"), "")
        if spec.kind == CUSTOMER:
            return record.customer.code if record.customer is not None else ""
        value = getattr(record, name)
        if name in self.masked and not self.reveal_phone:
            return masking.mask_phone(value)
        if name in self.numbers:
            return canonical_number(value)
        if name in self.booleans:
            return "" if value is None else ("1" if value else "0")
        if isinstance(value, datetime):  # an instant: the sheet holds the CRM zone's wall time
            value = clock.local_naive(value)
        return cell_text(value)

    def sheet_text(self, name: str, cell: Any) -> str:
        """Canonical text of a sheet cell; unparseable input stays as typed (validation reports it)."""
        text = cell_text(cell)
        spec = self.kinds[name]
        if not text:
            return ""
        if spec.kind == CUSTOM:
            return self._custom_sheet_text(spec.custom, cell, text)
        if isinstance(cell, SheetNumber) and spec.kind in (DATE, DATETIME):
            return _serial_text(cell.number, spec.kind == DATE)
        try:
            if spec.kind == DICT:
                return self.lookups[name].find(text).code
            if spec.kind == USER:
                return self.username(text)
            if spec.kind in (DATE, DATETIME):
                moment = validation.parse_date(cell) if spec.kind == DATE else validation.parse_datetime(cell)
                return cell_text(clock.local_naive(moment) if isinstance(moment, datetime) else moment)
            if name in self.masked and masking.MASK not in text:  # a masked echo stays as shown
                return validation.normalize_phone(text)
            if name in self.numbers:
                return canonical_number(validation.number_text(text))
            if name in self.booleans:
                flag = column_value(self.spec.model, name, text)
                return "" if flag is None else ("1" if flag else "0")
            if isinstance(cell, SheetNumber) and cell.shown:
                text = cell.shown  # a text field holds what the sheet shows (a date typed into 备注)
            normalise = NORMALISED.get(name)
            if normalise is not None:  # as the save stores it: a formula's LI@EXAMPLE.COM is no change
                return normalise(text) or ""
        except (ValueError, ArithmeticError):
            return text
        return text

    # --- custom fields (issue 18) ----------------------------------------------------------

    def _custom_app_text(self, field: Any, value: Any) -> str:
        """A stored custom value as canonical text: choice codes (several: in the field's
        choice order, joined by ","), ``1``/``0``, a plain decimal, an ISO day, an instant as
        the CRM zone's wall time, a user name; a masked field masked unless the run-as user
        may reveal (``custom_fields.masked_text``, which the save reads back as "unchanged")."""
        if custom_fields.empty(value):
            return ""
        if field.masked and not self.reveal_phone:
            return custom_fields.masked_text(field, value)
        kind = field.kind
        if kind in custom_fields.CHOOSING:
            codes = value if isinstance(value, list) else [value]
            order = {choice.code: index for index, choice in enumerate(field.choices)}
            return ",".join(sorted(dict.fromkeys(str(code) for code in codes), key=lambda c: (order.get(c, 1 << 30), c)))
        if kind == custom_fields.BOOLEAN:
            return "1" if value else "0"
        if kind in (custom_fields.INTEGER, custom_fields.DECIMAL):
            return canonical_number(value)
        if kind == custom_fields.DATETIME:
            return cell_text(clock.local_naive(datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ")
                                               .replace(tzinfo=clock.UTC)))
        if kind == custom_fields.USER:
            return self.usernames.get(value, "")
        return str(value)

    def _custom_sheet_text(self, field: Any, cell: Any, text: str) -> str:
        """A custom field's cell as canonical text (``_custom_app_text`` of the value the save
        would store: "大型" is ``large``, 是 is ``1``, tags as a set); what the field's rule
        refuses stays as typed (the save reports it); a masked echo stays as shown."""
        if field.masked and masking.MASK in text:
            return text
        if isinstance(cell, SheetNumber) and field.kind in (custom_fields.DATE, custom_fields.DATETIME):
            text = _serial_text(cell.number, field.kind == custom_fields.DATE)
        elif isinstance(cell, SheetNumber) and cell.shown and field.kind in (custom_fields.TEXT,
                                                                              custom_fields.LONG_TEXT):
            text = cell.shown
        if field.kind == custom_fields.USER:
            return self.username(text)  # no query per cell; the save checks the name
        try:
            # every choice counts as held: a retired one reads as its code (the save decides)
            value = custom_fields.parse_text(field, text, [choice.code for choice in field.choices])
        except (ValueError, ArithmeticError):
            return text
        reveal, self.reveal_phone = self.reveal_phone, True  # canonical text of the value itself
        try:
            return self._custom_app_text(field, value)
        finally:
            self.reveal_phone = reveal

    def context(self) -> str:
        """A digest of everything besides the cells and the record that ``sheet_text``, ``app_text`` and
        ``sheet_problem`` depend on (issue 12: ``row_digest``): the fields and their kinds, the sheet's
        language, masking, the CRM's zone, the mapped dictionaries' entries and the people an owner cell
        may name. A change to any of them changes every row's digest, so every row is compared again."""
        parts: list[Any] = [CODEC_VERSION, clock.zone_name(), self.chinese, self.reveal_phone, sorted(self.masked),
                            sorted(self.numbers), sorted(self.booleans),
                            [(name, self.kinds[name].kind) for name in self.fields]]
        for name in self.fields:
            if self.kinds[name].kind == CUSTOM:  # its kind, choices, places, masking as defined now
                parts.append((name, repr(self.kinds[name].custom)))
            if self.kinds[name].kind == DICT:
                parts.append((name, _entries(self.lookups[name].model)))
            if self.kinds[name].kind == USER:
                self.username("")  # fills ``_people``
                parts.append((name, sorted(self.usernames.items()), sorted(self._people.items())))
        return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()

    def app_raw(self, record: Any) -> tuple:
        """The stored values ``app_values`` reads, without reading them as text: foreign keys for
        dictionary and people fields (no related record loaded), the customer's code for a follow-up."""
        if self._raw is None:
            self._raw_for(type(record))
        if self._getter is not None:
            return self._getter(record)
        return tuple(self.app_text(record, name) if attribute is None else getattr(record, attribute)
                     for name, attribute in self._raw.items())

    def raw_attributes(self, model: type) -> list[str] | None:
        """The attributes of ``model`` whose values ``app_raw`` returns, in its order (the record's
        ``id`` last): what a column select of them gives equals ``app_raw`` of the loaded record
        (issue 12: 50,000 records digested without loading them). None when some field is read as
        text only (a follow-up's customer): ``app_raw`` then needs the record itself."""
        if self._raw is None:
            self._raw_for(model)
        return None if self._getter is None else [*self._raw.values(), "id"]

    def _raw_for(self, model: type) -> None:
        self._raw = {name: _raw_attribute(model, name, self.kinds[name].kind) for name in self.fields}
        if None not in self._raw.values():  # one C call per record (issue 12: 50,000 of them)
            self._getter = attrgetter(*self._raw.values(), "id")

    def display(self, name: str, canonical: str) -> Any:
        """What the sheet shows for a canonical value (labels in the sheet's language, real dates)."""
        spec = self.kinds[name]
        if spec.kind == CUSTOM:
            return self._custom_display(spec.custom, canonical)
        if spec.kind == DICT and canonical:
            entry = self.lookups[name].find(canonical)
            return entry.label_zh if self.chinese else entry.label_en
        if name in self.booleans and canonical in ("1", "0"):
            return ("是" if canonical == "1" else "否") if self.chinese else ("Yes" if canonical == "1" else "No")
        if spec.kind == DATE and canonical:
            return date.fromisoformat(canonical)
        if spec.kind == DATETIME and canonical:
            return datetime.fromisoformat(canonical)  # CRM-zone wall time, without a zone (cells hold none)
        return canonical

    def _custom_display(self, field: Any, canonical: str) -> Any:
        """A custom field's canonical text as the sheet shows it: choice labels in the sheet's
        language (several joined by ", "), 是/否 or Yes/No, real dates; masked text as it is."""
        if not canonical or masking.MASK in canonical:
            return canonical
        kind = field.kind
        if kind in custom_fields.CHOOSING:
            codes = canonical.split(",") if field.is_list else [canonical]
            return custom_fields.as_text(field, codes if field.is_list else codes[0], "zh" if self.chinese else "en")
        if kind == custom_fields.BOOLEAN and canonical in ("1", "0"):
            return custom_fields.as_text(field, canonical == "1", "zh" if self.chinese else "en")
        try:
            if kind == custom_fields.DATE:
                return date.fromisoformat(canonical)
            if kind == custom_fields.DATETIME:
                return datetime.fromisoformat(canonical)
        except ValueError:
            return canonical
        return canonical

    def sheet_problem(self, name: str, cell: Any) -> str | None:
        """Why a cell cannot be read as typed (None: it can): a number of more than 15 digits in
        any column but a date or a dictionary one lost its low digits in the spreadsheet."""
        if not isinstance(cell, SheetNumber) or cell.exact or self.kinds[name].kind in (DATE, DATETIME, DICT):
            return None
        return str(_l("%(value)s is a number with more than 15 digits, so the spreadsheet already changed its "
                      "last digits: format the column as text and type the value again.", value=cell))


def _entries(model: type) -> list[tuple]:
    """A dictionary's entries as its lookup reads them (names, codes, parents, active flags)."""
    rows = db.session.scalars(select(model)).all()
    return sorted((e.id, e.code, e.label_en, e.label_zh, tuple(e.alias_list), getattr(e, "parent_id", None),
                   e.active) for e in rows)


def _raw_attribute(model: type, name: str, kind: str) -> str | None:
    """The attribute holding a field's stored value (None: read it as text, ``app_text``)."""
    if kind == USER:
        return f"{name}_id"
    if kind == CUSTOM:
        return "custom"  # the JSON column holding every custom value
    if kind == CUSTOMER:
        return None
    if kind == DICT:
        columns = list(inspect(model).relationships[name].local_columns)
        return inspect(model).get_property_by_column(columns[0]).key if len(columns) == 1 else None
    return name


#: Text fields the saves store normalised (``app.services.validation``): a sheet cell is read
#: the same way, so a cell differing from the CRM only in what the save normalises (case) is
#: not a change, and a formula showing it is never overwritten with the stored form.
NORMALISED = {"email": validation.normalize_email, "credit_code": validation.normalize_credit_code}


def _serial_text(serial: float, day_only: bool) -> str:
    """A Sheets/Excel serial as canonical date text; rounded to the second (a serial is a double)."""
    if not 1 <= serial < 2958466:  # the valid range, up to 9999-12-31: leave it for the rule to refuse
        return cell_text(serial)
    moment = SERIAL_EPOCH + timedelta(seconds=round(serial * 86400))
    return moment.date().isoformat() if day_only else cell_text(moment)


#: Phone-shaped text in free text: a mobile (optionally +86, spaces or dashes) or a landline
#: with its area code. Record codes (C/G + date) never start like one.
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:(?:\+|00)?86[ -]?)?(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)"
                            r"|(?<!\d)(0\d{2,3})[ -]?\d{3,4}[ -]?(\d{4})(?!\d)")

#: The sample numbers the rules' own messages give ("e.g. 010-12345678"): left readable.
EXAMPLE_PHONES = frozenset({"010-12345678", "13812345678"})


def mask_phones_in(text: str | None) -> str:
    """``text`` with every phone-shaped number masked like ``masking.mask_phone`` (``138****5678``,
    ``0755-****5678``). Sync output that reaches a screen (run log, preview, target status, sheet
    status cells) goes through it, so a full number never shows there (issue 10)."""

    def masked(match: re.Match) -> str:
        if match.group(0) in EXAMPLE_PHONES:
            return match.group(0)
        if match.group(1):
            return f"{match.group(1)}{masking.MASK}{match.group(2)}"
        return f"{match.group(3)}-{masking.MASK}{match.group(4)}"

    return _PHONE_IN_TEXT.sub(masked, text or "")
