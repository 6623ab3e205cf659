"""What a personal-data erasure clears for each record type it covers (issue 19).

Rule (个人信息保护法; 001 隐私与合规): the data of a *person* goes — their name, phone,
e-mail, address, birthday (``Model.personal_columns``) and the free-text fields the admin
ticks. A business customer's name is an organisation's, not personal data (DESIGN: the
customer master is a company record), so it stays unless the admin ticks it (an
individual customer, 个体户). Codes, amounts, dates, owners and the history skeleton stay.

A converted lead's person lives on in the customer and contact its conversion made (or
linked: ``Lead.customer`` / ``Lead.contact``, ``leads.convert_lead``): erasing the lead
clears the same values there too — each field that holds the lead's name, phone (any
format) or e-mail; a contact holding the lead's phone or e-mail is the same person, so its
birthday goes as well. The preview lists them as copies; a field holding someone else's
data (the customer's contact changed since) stays.

A column that may be empty becomes NULL; a required one holds ``ERASED`` (the same
marker the redacted audit entries show), so the record still opens and saves.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect, select

from app.extensions import db
from app.models.customers import Customer, FollowUp
from app.models.sales import Contact, Lead
from app.services import custom_fields
from app.services.audit import ERASED
from app.services.erasure.matching import phone_digits

#: Extra choice: every follow-up of the customer (content and next step).
FOLLOW_UPS = "follow_ups"


@dataclass(frozen=True)
class Subject:
    """One erasable record type: ``key`` (URL and audit name), its model, the free-text
    fields an admin may add (name -> lazy label), and ``linked(record)``: other rows that
    hold copies of the same person's data (e.g. a customer's primary contact), erased too,
    each with the fields it clears: ``[(row, field names)]``."""

    key: str
    model: type
    label: Any
    own_extras: dict[str, Any]
    linked: Callable[[Any], list[tuple[Any, tuple[str, ...]]]] = field(default=lambda record: [])

    @property
    def personal(self) -> tuple[str, ...]:
        """Personal columns, and the record type's masked custom fields (issue 18: an admin
        masks a field because it holds a person's data, e.g. an ID card number)."""
        masked = tuple(f.name for f in custom_fields.fields_of(self.key) if f.masked)
        return (*getattr(self.model, "personal_columns", ()), *masked)

    @property
    def extras(self) -> dict[str, Any]:
        """What the admin may tick besides: the declared free text, and every text custom
        field that is not masked (masked ones are always cleared)."""
        texts = {f.name: f.label() for f in custom_fields.fields_of(self.key)
                 if f.kind in (custom_fields.TEXT, custom_fields.LONG_TEXT) and not f.masked}
        return {**self.own_extras, **texts}


def _mirrors(rows: list[Any]) -> list[tuple[Any, tuple[str, ...]]]:
    """Rows linked as full mirrors: each clears every ``mirror_fields`` field."""
    return [(row, mirror_fields(row)) for row in rows]


def _primary_contacts(customer: Customer) -> list[tuple[Any, tuple[str, ...]]]:
    return _mirrors(list(db.session.scalars(select(Contact).where(Contact.customer_id == customer.id,
                                                                  Contact.is_primary.is_(True)))))


def _mirrored_customer(contact: Contact) -> list[tuple[Any, tuple[str, ...]]]:
    return _mirrors([contact.customer] if contact.is_primary and contact.customer is not None else [])


def _folded(value: Any) -> str | None:
    text = unicodedata.normalize("NFKC", value).strip().casefold() if isinstance(value, str) else ""
    return text if text and text != ERASED.casefold() else None


def _same(kind: str, mine: Any, theirs: Any) -> bool:
    """The lead's value ``mine`` and a row's ``theirs`` are the same person's: a phone in
    any format (the same national digits), an e-mail or a name in any case and width."""
    if kind == "phone":
        a, b = (phone_digits(v) if isinstance(v, str) else None for v in (mine, theirs))
        return a is not None and a == b
    return _folded(mine) is not None and _folded(mine) == _folded(theirs)


#: For a converted lead: field on the customer / contact -> (lead field, kind). The
#: conversion names the customer after the lead's company: cleared there only when the
#: admin ticked the lead's company as a person's name.
_CONVERTED = {
    Customer: {"contact_name": ("contact_name", "name"), "contact_phone": ("phone", "phone"),
               "email": ("email", "email"), "name": ("company", "name")},
    Contact: {"name": ("contact_name", "name"), "phone": ("phone", "phone"), "email": ("email", "email")},
}


def _cleared(row: Any, name: str) -> Any:
    """``row``'s value of ``name`` before this session cleared it, or None when this
    session did not change it (the erasure clears the lead before it asks for its linked
    rows: what it cleared is what the admin erased)."""
    history = inspect(row).attrs[name].history
    return history.deleted[0] if history.deleted else None


def _custom_copies(lead: Lead, row: Any) -> list[str]:
    """``cf_<key>`` of the custom values the erasure cleared on ``lead`` (masked fields,
    ticked text fields) that ``row`` holds the same (the conversion carries them over)."""
    before, after = _cleared(lead, "custom") or {}, lead.custom or {}
    theirs = getattr(row, "custom", None) or {}
    return [f"{custom_fields.PREFIX}{key}" for key, value in before.items()
            if value not in (None, "", []) and key not in after and theirs.get(key) == value]


def _converted(lead: Lead) -> list[tuple[Any, tuple[str, ...]]]:
    """The customer and contact the lead's conversion made or linked, when they hold the
    lead's person's data; each clears only the fields that hold what was erased on the lead."""
    # the person's own fields are always erased (a preview, before anything is cleared,
    # compares the current values); the company only when the erasure cleared it (ticked)
    mine = {source: _cleared(lead, source) or getattr(lead, source) for source in ("contact_name", "phone", "email")}
    mine["company"] = _cleared(lead, "company")
    rows = []
    with db.session.no_autoflush:  # loading them must not flush the cleared lead (its old values)
        linked = (lead.customer, lead.contact)
        for row in linked:
            if row is None or type(row) not in _CONVERTED:
                continue
            names = [name for name, (source, kind) in _CONVERTED[type(row)].items()
                     if _same(kind, mine[source], getattr(row, name, None))]
            if isinstance(row, Contact) and {"phone", "email"} & set(names):
                names.append("birthday")  # a phone or e-mail of theirs: the same person
            names += _custom_copies(lead, row)
            if names and all(row is not seen for seen, _ in rows):
                rows.append((row, tuple(names)))
    return rows


SUBJECTS: dict[str, Subject] = {
    "customer": Subject("customer", Customer, _l("Customer"), {
        "name": _l("Customer name (an individual, not a company)"),
        "note": _l("Notes"),
        FOLLOW_UPS: _l("Content of its follow-ups"),
    }, _primary_contacts),
    "contact": Subject("contact", Contact, _l("Contact"), {
        "title": _l("Title"), "note": _l("Notes"),
    }, _mirrored_customer),
    "lead": Subject("lead", Lead, _l("Lead"), {
        "company": _l("Company (a person's name)"), "note": _l("Notes"),
        "invalid_reason": _l("Reason it was invalid"),
    }, _converted),
}


def required(model: type, name: str) -> bool:
    """True when ``name`` is NOT NULL on ``model`` (it keeps the marker instead of NULL)."""
    column = model.__table__.c.get(name)
    return column is not None and not column.nullable


#: People's names read "(erased)" rather than blank (and a customer's contact name stays
#: in step with its primary contact's, which is required); a lead's phone too, so its
#: "a phone or an e-mail" rule still holds.
MARKED = {"name", "contact_name", "Lead.phone"}


def blank(record: Any, name: str) -> Any:
    """The value an erased field holds: ``ERASED`` for required text, people's names and
    ``MARKED`` fields, else None."""
    marked = name in MARKED or f"{type(record).__name__}.{name}" in MARKED
    return ERASED if required(type(record), name) or marked else None


def value(record: Any, name: str) -> Any:
    """A column's value, or a custom field's (``cf_<key>``) stored value."""
    if custom_fields.is_custom(name):
        return (getattr(record, "custom", None) or {}).get(name[len(custom_fields.PREFIX):])
    return getattr(record, name, None)


def clear(record: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Clear ``names`` on ``record`` (columns, and custom fields ``cf_<key>``, which are
    removed from its ``custom`` values); returns the old values that were not empty (a
    list value as its items joined by ", ")."""
    old = {}
    custom = dict(getattr(record, "custom", None) or {})
    for name in names:
        found = value(record, name)
        if found in (None, "", ERASED, []):
            continue
        if custom_fields.is_custom(name):
            old[name] = ", ".join(map(str, found)) if isinstance(found, list) else found
            custom.pop(name[len(custom_fields.PREFIX):], None)
            record.custom = custom or None
            continue
        old[name] = found
        setattr(record, name, blank(record, name))
    return old


def follow_ups_of(customer: Customer) -> list[FollowUp]:
    """Every follow-up of ``customer`` (archived or not)."""
    return list(db.session.scalars(select(FollowUp).where(FollowUp.customer_id == customer.id)))


def mirror_fields(record: Any) -> tuple[str, ...]:
    """The fields a linked copy clears: a contact mirrors the customer's contact name and
    phone (and the other way round); an e-mail is the same person's too. (A customer or
    contact a converted lead made clears only the fields holding the lead's values:
    ``_converted``.)"""
    if isinstance(record, Customer):
        return ("contact_name", "contact_phone")
    if isinstance(record, Contact):
        return ("name", "phone", "email", "birthday")
    return tuple(getattr(type(record), "personal_columns", ()))
