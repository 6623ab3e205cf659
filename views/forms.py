"""Form fields and validators that call the service rules (one rule, one place)."""

from __future__ import annotations

from typing import Any

from flask import flash, g
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.fieldwidgets import Select2Widget
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import HiddenField, StringField, ValidationError

from app.extensions import db
from app.models.org import CrmUser
from app.security.data_scope import scope_clause
from app.services import customers as customer_rules
from app.services import validation
from app.services.errors import RuleViolation
from views.base import rule_validator


def stored(form: Any, model: type, attr: str) -> Any:
    """The saved value of ``attr`` for the record being edited (None on add forms)."""
    pk = getattr(form, "_id", None)
    if pk is None:
        return None
    return db.session.execute(select(getattr(model, attr)).where(model.id == pk)).scalar()


def phone_validator(model: type) -> Any:
    return rule_validator(
        lambda form, field: customer_rules.resolve_phone(
            field.data, stored(form, model, "contact_phone")
        )
    )


credit_code_validator = rule_validator(lambda form, field: validation.normalize_credit_code(field.data))
email_validator = rule_validator(lambda form, field: validation.normalize_email(field.data))


def choice_validator(model: type, fk: str) -> Any:
    """Inactive dictionary entries may stay on a record but not be newly picked."""

    def check(form: Any, field: Any) -> None:
        validation.check_choice(field.data, stored(form, model, fk))

    return rule_validator(check)


def version_field(model: type) -> HiddenField:
    """Hidden version of the record as the form was loaded; a stale one is refused."""

    def check(form: Any, field: Any) -> None:
        item = db.session.get(model, form._id)
        try:
            customer_rules.check_version(item, field.data)
        except RuleViolation as exc:
            flash(str(exc), "danger")
            raise ValidationError(str(exc)) from None

    return HiddenField(validators=[check])


def scoped_users() -> Any:
    user = g.user
    return (
        db.session.query(CrmUser)
        .filter(CrmUser.active.is_(True), scope_clause(user, CrmUser))
        .order_by(CrmUser.first_name, CrmUser.last_name)
    )


def owner_field(editing: bool = False) -> QuerySelectField:
    """Owners the user may assign (their data scope); blank = me (add) or unchanged (edit)."""
    return QuerySelectField(
        _l("Owner"),
        query_func=scoped_users,
        get_pk_func=lambda user: user.id,
        allow_blank=True,
        widget=Select2Widget(),
        description=_l("Leave empty to keep the current owner.")
        if editing
        else _l("Leave empty to own the record yourself."),
    )


def status_reason_field() -> StringField:
    return StringField(
        _l("Reason for status change"),
        description=_l("Optional; kept in the status history when the customer type changes."),
    )
