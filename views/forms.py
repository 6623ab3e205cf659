"""Form fields and validators that call the service rules (one rule, one place)."""

from __future__ import annotations

from typing import Any

from flask import flash, g, url_for
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.fieldwidgets import Select2Widget
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import select
from wtforms import BooleanField, HiddenField, StringField, ValidationError

from app.extensions import db
from app.models.customers import Customer
from app.models.org import CrmUser
from app.security.data_scope import scope_clause
from app.services import customers as customer_rules
from app.services import dedup, validation
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


def duplicate_field() -> BooleanField:
    """'Save anyway' checkbox; its validator applies the duplicate rule once the other
    fields are validated (it is the last field), with links to the matches."""

    def check(form: Any, field: Any) -> None:
        if form.errors:
            return  # other fields first; their values may not be normalised yet
        names = [name for name in customer_rules.DUPLICATE_FIELDS if hasattr(form, name)]
        values = [getattr(form, name).data if hasattr(form, name) else None for name in customer_rules.DUPLICATE_FIELDS]
        try:  # compare normalised values, whatever order the fields were validated in
            values[2] = customer_rules.resolve_phone(values[2], stored(form, Customer, "contact_phone"))
            values[3] = validation.normalize_credit_code(values[3])
        except ValueError:
            return  # the field's own validator reports it
        current = dict(zip(customer_rules.DUPLICATE_FIELDS, values, strict=True))
        if getattr(form, "_id", None) and all(current[n] == stored(form, Customer, n) for n in names):
            return  # an edit that leaves the compared fields alone is not a new duplicate
        try:
            dedup.refuse_duplicates(*values, g.user, exclude_id=getattr(form, "_id", None),
                                    confirmed=bool(field.data))
        except dedup.DuplicateFound as exc:
            links = Markup(", ").join(
                Markup('<a href="{}">{} {}</a>').format(url_for("CustomerView.show", pk=c.id), c.code, c.name)
                for c, _ in exc.matches if c.code in exc.errors["duplicates"]
            )
            if links:
                flash(Markup(_l("Possible duplicate of: %(links)s", links=links)), "warning")
            raise ValidationError(exc.errors["duplicate"]) from None

    return BooleanField(_l("Save anyway"), validators=[check],
                        description=_l("Tick only if this is a different customer from the one it resembles."))


def status_reason_field() -> StringField:
    return StringField(
        _l("Reason for status change"),
        description=_l("Optional; kept in the status history when the customer type changes."),
    )
