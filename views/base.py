"""Base classes that make every FAB route respect the data scope and the CRM rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import abort, current_app, flash, g, redirect, request
from flask_appbuilder import ModelRestApi, ModelView, expose
from flask_appbuilder._compat import as_unicode
from flask_appbuilder.const import FLAMSG_ERR_SEC_ACCESS_DENIED
from flask_appbuilder.urltools import get_filter_args, get_order_args
from wtforms import ValidationError

from app.extensions import db
from app.security.data_scope import DataScopeFilter
from app.services import audit, exporting
from app.services.errors import RuleViolation

SCOPE_FILTER = [["id", DataScopeFilter, lambda: None]]

#: View and API methods share permission names: can_read / can_write / can_delete ...
CRUD_PERMISSIONS = ["can_read", "can_write", "can_delete"]
CUSTOMER_PERMISSIONS = CRUD_PERMISSIONS + ["can_export", "can_reveal_contact", "can_archive_won", "can_history"]
READ_WRITE_PERMISSIONS = {
    "list": "read", "show": "read", "get": "read", "get_list": "read", "info": "read",
    "add": "write", "edit": "write", "post": "write", "put": "write",
    "delete": "delete", "download": "export", "export": "export",
}


class ScopedModelView(ModelView):
    """A ModelView whose single and bulk actions re-check the data scope per record.

    FAB's ``action`` and ``action_post`` fetch records by pk without ``base_filters``;
    these overrides load every pk through the scoped query and refuse the whole
    action if any record is out of reach.
    """

    base_filters = SCOPE_FILTER
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    page_size = 25

    def scoped_get(self, pk: Any) -> Any:
        return self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)

    def _action_allowed(self, name: str) -> bool:
        permission = self.get_action_permission_name(name)
        return name in self.actions and self.appbuilder.sm.has_access(
            permission, self.class_permission_name
        )

    @expose("/action/<string:name>/<pk>", methods=["GET", "POST"])
    def action(self, name: str, pk: Any) -> Any:
        if request.method == "GET" and not self.is_get_mutation_allowed():
            flash(as_unicode(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(self.get_redirect())
        if not self._action_allowed(name):
            flash(as_unicode(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(self.get_redirect())
        item = self.scoped_get(pk)
        if item is None:
            abort(404)
        return self.actions[name].func(item)

    @expose("/action_post", methods=["POST"])
    def action_post(self) -> Any:
        name = request.form.get("action", "")
        pks = request.form.getlist("rowid")
        if not self._action_allowed(name):
            flash(as_unicode(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(self.get_redirect())
        items = [self.scoped_get(pk) for pk in pks]
        if not items or any(item is None for item in items):
            abort(404)
        return self.actions[name].func(items)


class ListExportMixin:
    """Download the list as shown: base filters (scope), search filters, order, columns.

    ``formatters_columns`` apply, so masked columns stay masked unless ``unmasked``.
    Rows stream from the database (``yield_per``); lists longer than
    ``CRM_EXPORT_BACKGROUND_ROWS`` are written by a background job with a progress page.
    """

    def export_table(self, unmasked: frozenset[str] = frozenset(), only: list[str] | None = None
                     ) -> tuple[list[str], int, Iterator[list[Any]]]:
        """Header, row count and a row iterator of the current list (request args apply).

        ``only`` narrows the columns to some of the list's own (saved-list exports).
        """
        get_filter_args(self._filters)
        order_column, order_direction = get_order_args().get(self.__class__.__name__, ("", ""))
        if not order_column:
            order_column, order_direction = self.base_order
        filters = self._filters.get_joined_filters(self._base_filters)
        model = self.datamodel.obj
        count = self.datamodel.query_count(db.session.query(model), filters)
        query = self.datamodel.apply_all(db.session.query(model), filters, order_column, order_direction)
        names = [c for c in only if c in self.list_columns] if only else self.list_columns
        columns = [(c, str(self.label_columns.get(c, c))) for c in names]
        rows = ([self._export_cell(item, col, unmasked) for col, _ in columns]
                for item in query.yield_per(1000))
        return [label for _, label in columns], count, rows

    def export_response(self, fmt: str, filename: str, unmasked: frozenset[str] = frozenset()) -> Any:
        if fmt not in exporting.FORMATS:
            abort(404)
        header, count, rows = self.export_table(unmasked)
        if count > current_app.config["CRM_EXPORT_BACKGROUND_ROWS"]:
            from views.exports import start_export

            return start_export(self, fmt, filename, unmasked, count)
        audit.record("export", None, {"model": self.datamodel.obj.__name__, "format": fmt, "rows": count,
                                      "unmasked": sorted(unmasked)})
        db.session.commit()
        return exporting.response(header, rows, fmt, filename)

    def _export_cell(self, item: Any, column: str, unmasked: frozenset[str]) -> Any:
        value = getattr(item, column)
        if column in self.formatters_columns and column not in unmasked:
            return self.formatters_columns[column](value)
        return "" if value is None else str(value)


class ScopedApi(ModelRestApi):
    """A REST API with the data scope, explicit columns and rule errors as 4xx JSON."""

    base_filters = SCOPE_FILTER
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    #: JWT only: a session cookie must not authorise CSRF-exempt API calls.
    allow_browser_login = False
    #: Required by the model but defaulted by the rules (the owner is the creator).
    add_optional_columns: tuple[str, ...] = ("owner",)

    def _init_model_schemas(self) -> None:
        super()._init_model_schemas()
        for column in self.add_optional_columns:
            if column in self.add_model_schema.fields:
                self.add_model_schema.fields[column].required = False

    def _rule_response(self, exc: RuleViolation) -> Any:
        db.session.rollback()
        return self.response(exc.status, message=exc.errors)

    def post_headless(self) -> Any:
        try:
            with db.session.no_autoflush:  # rules must see the loaded values, not a flushed half-edit
                return super().post_headless()
        except RuleViolation as exc:
            return self._rule_response(exc)

    def put_headless(self, pk: Any) -> Any:
        payload = request.get_json(silent=True)
        # ``version`` is checked by pre_update, never loaded onto the model (it would
        # become the new version instead of guarding the old one).
        g.submitted_version = payload.pop("version", None) if isinstance(payload, dict) else None
        try:
            with db.session.no_autoflush:
                return super().put_headless(pk)
        except RuleViolation as exc:
            return self._rule_response(exc)


def rule_validator(rule: Any) -> Any:
    """Wrap a ``ValueError``-raising service rule as a WTForms validator (same message)."""

    def validate(form: Any, field: Any) -> None:
        try:
            result = rule(form, field)
        except (ValueError, RuleViolation) as exc:
            raise ValidationError(str(exc)) from None
        if result is not None:
            field.data = result

    return validate

