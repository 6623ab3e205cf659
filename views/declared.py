"""Screens and REST APIs made from a record type's declaration (``app.record_types``).

``declared_view(rt)`` is a list/show/add/edit screen with exports; ``declared_api(rt)``
the REST API with explicit columns. Both are the shared classes (``ScopedModelView``,
``ScopedApi``) with the use case behind every write, so a declared type gets scoping,
masking, refused list arguments, field errors and step-up like customers do. A type
with its own pages passes ``mixins`` (extra ``expose`` methods, widgets).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g
from flask_appbuilder import expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect as sa_inspect

from app.extensions import db
from app.record_types import RecordType
from app.security import step_up
from app.services import exporting
from app.services.errors import NotFound, RuleForbidden, RuleViolation
from views import forms
from views.base import CRUD_PERMISSIONS, SCOPE_FILTER, ListExportMixin, ScopedApi, ScopedModelView
from views.custom_form import CustomFieldsFormMixin
from views.custom_list import CustomFieldsListMixin
from views.writes import UseCaseApiMixin, UseCaseFormMixin, step_up_abort

#: Labels every type shares (stamps, owner, code).
COMMON_LABELS = {
    "code": _l("Code"), "owner": _l("Owner"), "version": _l("Version"),
    "created_by": _l("Created by"), "created_on": _l("Created on"),
    "changed_by": _l("Changed by"), "changed_on": _l("Changed on"),
}
_STAMPS = ("created_by", "created_on", "changed_by", "changed_on", "version")


def _relations(model: type) -> set[str]:
    return set(sa_inspect(model).relationships.keys())


def _api_column(model: type, name: str) -> list[str]:
    """A related record as its id and code (or name): never a whole nested object. A
    relation kept by the use cases without a foreign key (a lead's campaign) is its id
    column: FAB joins a dotted column only through a real foreign key (otherwise it joined
    every campaign to every lead: duplicate rows, a 500 on the show answer)."""
    if name not in _relations(model):
        return [name]
    relation = sa_inspect(model).relationships[name]
    if not any(column.foreign_keys for column in relation.local_columns):
        return [column.key for column in relation.local_columns]
    target = relation.mapper.class_
    key = "code" if hasattr(target, "code") else ("username" if hasattr(target, "username") else "name")
    return [f"{name}.id", f"{name}.{key}"]


def api_columns(rt: RecordType, columns: tuple[str, ...]) -> list[str]:
    """Explicit API columns: id, then each column (relations as ``x.id`` + ``x.code``)."""
    result = ["id"]
    for name in columns:
        result.extend(c for c in _api_column(rt.model, name) if c not in result)
    return result


def declared_view(rt: RecordType, *mixins: type, **attrs: Any) -> type:
    """The list/show/add/edit screen of ``rt`` (class name ``<Model>View``)."""
    editable = [name for name in rt.editable if name in _form_fields(rt)]
    permissions = list(CRUD_PERMISSIONS) + ["can_export"]
    if rt.delete is None:
        permissions.remove("can_delete")

    def save_record(self: Any, values: dict[str, Any], *, pk: Any, version: Any, form: Any) -> Any:
        return rt.save(values, g.user, pk=pk, version=version)

    def prefill_form(self: Any, form: Any, pk: Any) -> None:
        if "edit_version" in form:
            form.edit_version.data = self.datamodel.get(pk).version

    @expose("/export/<string:fmt>")
    @has_access
    def export(self: Any, fmt: str) -> Any:
        try:
            exporting.authorise(g.user, self.class_permission_name)
        except RuleForbidden:
            abort(403)
        return self.export_response(fmt, rt.name)

    def _delete(self: Any, pk: Any) -> None:
        """The delete use case; its refusals are the screen's answers (404, step-up, a message)."""
        try:
            rt.delete(pk, g.user)
        except step_up.StepUpRequired as exc:
            step_up_abort(exc)
        except NotFound:
            db.session.rollback()
            abort(404)
        except RuleViolation as exc:
            db.session.rollback()
            for message in exc.errors.values():
                flash(str(message), "danger")
            return
        db.session.commit()
        flash(str(self.delete_row_message), "success")

    body: dict[str, Any] = {
        "datamodel": SQLAInterface(rt.model),
        "class_permission_name": rt.permission,
        "base_permissions": permissions,
        "list_title": rt.plural, "show_title": rt.label,
        "add_title": _l("Add %(type)s", type=rt.label), "edit_title": _l("Edit %(type)s", type=rt.label),
        "list_columns": list(rt.list_columns),
        "show_columns": list(rt.shown) + [c for c in _STAMPS if c not in rt.shown],
        "add_columns": editable,
        "edit_columns": editable + ["edit_version"],
        "search_columns": list(rt.search_columns or rt.list_columns),
        "order_columns": list(rt.order_columns),
        "base_order": rt.base_order,
        "label_columns": {**COMMON_LABELS, **rt.labels},
        "description_columns": dict(rt.descriptions),
        "use_case_fields": tuple(editable),
        "add_form_extra_fields": {"owner": forms.owner_field()} if "owner" in editable else {},
        "edit_form_extra_fields": {"edit_version": forms.version_field(),
                                   **({"owner": forms.owner_field(True)} if "owner" in editable else {})},
        "save_record": save_record, "prefill_form": prefill_form,
        "export": export,
        **attrs,
    }
    if rt.delete is not None:
        body["_delete"] = _delete
    bases = (*mixins, CustomFieldsFormMixin, CustomFieldsListMixin, UseCaseFormMixin, ListExportMixin, ScopedModelView)
    return type(f"{rt.model.__name__}View", bases, body)


def _form_fields(rt: RecordType) -> set[str]:
    mapper = sa_inspect(rt.model)
    return set(mapper.columns.keys()) | set(mapper.relationships.keys())


def declared_api(rt: RecordType, *mixins: type, **attrs: Any) -> type:
    """The REST API of ``rt`` at ``/api/v1/<name>/`` (class name ``<Model>Api``)."""
    editable = [name for name in rt.editable if name in _form_fields(rt)]
    extra = ("owner",) if "owner" in _form_fields(rt) else ()
    shown = api_columns(rt, tuple(rt.shown) + extra + ("version", "created_on", "changed_on"))

    def save_record(self: Any, values: dict[str, Any], *, pk: Any, version: Any) -> Any:
        return rt.save(values, g.user, pk=pk, version=version)

    def delete_headless(self: Any, pk: Any) -> Any:
        if rt.delete is None:
            return self.response_405()
        _, refusal = self.call_use_case(lambda: rt.delete(pk, g.user))
        if refusal is not None:
            return refusal
        db.session.commit()
        return self.response(200, message="deleted")

    body: dict[str, Any] = {
        "resource_name": rt.name,
        "datamodel": SQLAInterface(rt.model),
        "class_permission_name": rt.permission,
        "base_permissions": list(CRUD_PERMISSIONS),
        "base_filters": SCOPE_FILTER,
        "list_columns": api_columns(rt, rt.list_columns),
        "show_columns": shown,
        "add_columns": editable,
        "edit_columns": editable,
        "search_columns": list(rt.search_columns or rt.list_columns),
        "order_columns": ["id", *rt.order_columns],
        "save_record": save_record,
        "delete_headless": delete_headless,
        **attrs,
    }
    return type(f"{rt.model.__name__}Api", (*mixins, UseCaseApiMixin, ScopedApi), body)


#: Screens and APIs of declared types that add their own pages: name -> class built with
#: ``declared_view`` / ``declared_api`` and extra mixins (views modules fill these in).
OWN_VIEWS: dict[str, type] = {}
OWN_APIS: dict[str, type] = {}


#: Menu categories first created by a declared type: their translated label and icon (FAB
#: takes a category's label from the first view added to it).
CATEGORY_MENUS = {"Service": (_l("Service"), "fa-life-ring"), "Sales": (_l("Sales"), "fa-shopping-cart"),
                  "Marketing": (_l("Marketing"), "fa-bullhorn")}


def register_declared(appbuilder: Any) -> None:
    """Every declared record type's screen (in its menu) and REST API."""
    from app.record_types import REGISTRY

    for rt in REGISTRY.values():
        view = OWN_VIEWS.get(rt.name) or declared_view(rt)
        label, icon = CATEGORY_MENUS.get(rt.menu_category, ("", ""))
        appbuilder.add_view(view, rt.plural_en, label=rt.plural, icon=rt.menu_icon, category=rt.menu_category,
                            category_label=label, category_icon=icon)
        appbuilder.add_api(OWN_APIS.get(rt.name) or declared_api(rt))
