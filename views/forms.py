"""Extra form fields of the record screens. They only parse what the user typed; the
rules (phones, credit codes, dictionaries, owners, duplicates, versions) are the use
case's (``app/services``), whose errors the screen shows under these fields."""

from __future__ import annotations

from typing import Any

from flask import g
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.fieldwidgets import Select2Widget
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, HiddenField, StringField

from app.extensions import db
from app.models.org import CrmUser
from app.security.data_scope import scope_clause
from app.security.request_bounds import db_int


def version_field() -> HiddenField:
    """Hidden version of the record as the form was loaded; the use case refuses a stale one."""
    return HiddenField()


def scoped_users() -> Any:
    """Users the current user may hand records to: active and in their data scope."""
    return (
        db.session.query(CrmUser)
        .filter(CrmUser.active.is_(True), scope_clause(g.user, CrmUser))
        .order_by(CrmUser.first_name, CrmUser.last_name)
    )


class OwnerField(QuerySelectField):
    """Offers the scoped users, but parses any user id it is sent: whether that owner is
    allowed (active, in scope) is the use case's answer, the same for every entry point."""

    def _get_data(self) -> Any:
        if self._formdata is not None:
            found = super()._get_data()
            pk = db_int(self._formdata) if str(self._formdata).isdigit() else None
            if found is None and pk is not None:
                user = db.session.get(CrmUser, pk)
                if user is not None:
                    self._set_data(user)
        return self._data

    data = property(_get_data, QuerySelectField._set_data)

    def pre_validate(self, form: Any) -> None:
        if self._formdata not in (None, "", "__None") and self.data is None:
            super().pre_validate(form)  # an id that is no user: "Not a valid choice"


def owner_field(editing: bool = False) -> QuerySelectField:
    """Owners the user may assign (their data scope); blank = me (add) or unchanged (edit)."""
    return OwnerField(
        _l("Owner"),
        query_func=scoped_users,
        get_pk_func=lambda user: user.id,
        allow_blank=True,
        widget=Select2Widget(),
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
