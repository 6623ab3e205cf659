"""Extra form fields of the record screens. They only parse what the user typed; the
rules (phones, credit codes, dictionaries, owners, duplicates, versions) are the use
case's (``app/services``), whose errors the screen shows under these fields."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy.sql import Select
from wtforms import BooleanField, HiddenField, StringField
from wtforms.fields.core import UnboundField

from app.models.org import CrmUser
from views.related import RelatedSelectField


def version_field() -> HiddenField:
    """Hidden version of the record as the form was loaded; the use case refuses a stale one."""
    return HiddenField()


def active_users(statement: Select) -> Select:
    """Owners offered: active users (the data scope is added by every lookup)."""
    return statement.where(CrmUser.active.is_(True))


def owner_field(editing: bool = False) -> UnboundField:
    """Owners the user may assign, looked up as typed (``views.related``): active users in
    their data scope; blank = me (add) or unchanged (edit). Any user id sent is parsed: whether
    that owner is allowed (active, in scope) is the use case's answer, the same for every
    entry point."""
    return RelatedSelectField(
        _l("Owner"),
        model=CrmUser,
        narrow=active_users,
        allow_blank=True,
        accept_any=True,
        description=_l("Leave empty to keep the current owner.")
        if editing
        else _l("Leave empty to own the record yourself."),
    )


def duplicate_field() -> BooleanField:
    """'Save anyway': the duplicate rule's confirmation (the use case asks for it)."""
    return BooleanField(_l("Save anyway"),
                        description=_l("Tick only if this is a different customer from the one it resembles."))


def status_reason_field() -> StringField:
    return StringField(
        _l("Reason for status change"),
        description=_l("Optional; kept in the status history when the customer type changes."),
    )
