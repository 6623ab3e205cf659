"""Organisation → Custom fields (issue 18; 001 基础配置 自定义字段类型, 003 第三步 1 字段设置 and
客户标签), Admin only: the fields of each record type, a form to add or edit one (choices as
lines ``code | English | 中文 | #colour | inactive``), deactivate / activate, delete (unused
only) and purge (confirm + authenticator code). Every write is a use case of
``app.services.custom_fields.admin`` (Admin checked there too); a refusal is shown next to
its field (400), never a 500.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.models.custom_fields import CustomField
from app.security import step_up
from app.services import custom_fields
from app.services.custom_fields import admin
from app.services.custom_fields.definitions import as_def
from app.services.errors import NotFound, RuleViolation

KIND_LABELS = {
    custom_fields.TEXT: _l("Text"), custom_fields.LONG_TEXT: _l("Long text"),
    custom_fields.INTEGER: _l("Whole number"), custom_fields.DECIMAL: _l("Decimal number"),
    custom_fields.DATE: _l("Date"), custom_fields.DATETIME: _l("Date and time"),
    custom_fields.BOOLEAN: _l("Yes / no"), custom_fields.CHOICE: _l("Choice (drop-down)"),
    custom_fields.MULTI: _l("Multiple choice"), custom_fields.TAGS: _l("Tags (coloured)"),
    custom_fields.USER: _l("User"),
}
FORM_TEXTS = ("record_type", "key", "label_en", "label_zh", "kind", "default", "help_en", "help_zh", "position",
              "section_en", "section_zh", "places", "max_length", "dictionary", "choices", "note")


_lang = custom_fields.reader_lang


def _type_labels() -> dict[str, str]:
    chinese = _lang().startswith("zh")
    return {name: (zh if chinese else en) for name, en, zh in custom_fields.record_types()}


def submitted(form: Any, creating: bool) -> dict[str, Any]:
    """The form's values for ``admin.save_field``: every flag given (unticked = False);
    record type and key only when creating (fixed afterwards)."""
    values = {name: form.get(name, "") for name in FORM_TEXTS}
    if not creating:
        values.pop("record_type")
        values.pop("key")
    values.update({name: form.get(name) == "on" for name in admin.FLAGS})
    return values


def _stored(row: CustomField) -> dict[str, Any]:
    """A stored field as the form shows it (default and choices as text)."""
    values = {name: getattr(row, name) for name in (*FORM_TEXTS, *admin.FLAGS) if name not in ("default", "choices")}
    values["choices"] = admin.choice_lines(row.choices)
    values["default"] = custom_fields.as_text(as_def(row), row.default, _lang()) if row.default is not None else ""
    values["version"] = row.version
    return values


def _messages(exc: RuleViolation) -> dict[str, str]:
    return {name: str(message) for name, message in exc.errors.items()}


class CustomFieldsView(BaseView):
    """``/custom_fields/``: list, add, edit, (de)activate, delete, purge."""

    route_base = "/custom_fields"
    class_permission_name = "CustomFields"
    method_permission_name = {name: "edit" for name in ("index", "add", "edit", "active", "delete", "purge")}
    default_view = "index"

    def _back(self, record_type: str | None = None) -> Any:
        return redirect(url_for(f"{self.endpoint}.index", record_type=record_type or None))

    @expose("/")
    @has_access
    def index(self) -> Any:
        """The fields, grouped by record type (``?record_type=`` shows one type)."""
        custom_fields.refresh(force=True)
        types = _type_labels()
        chosen = request.args.get("record_type") or ""
        shown = [name for name in types if not chosen or name == chosen]
        groups = [(name, types[name], custom_fields.fields_of(name)) for name in shown]
        return self.render_template("crm/custom_fields.html", groups=groups, types=types, chosen=chosen,
                                    kinds=KIND_LABELS, lang=_lang(), title=_l("Custom fields"))

    def _form(self, row: CustomField | None) -> Any:
        errors: dict[str, str] = {}
        values = _stored(row) if row is not None else {"record_type": request.args.get("record_type", "customer"),
                                                       "kind": "text", "position": 100, "active": True}
        if request.method == "POST":
            values = {**submitted(request.form, row is None), "version": request.form.get("version")}
            try:
                saved = admin.save_field(values, g.user, pk=row.id if row else None,
                                         version=request.form.get("version") if row else None)
                db.session.commit()
            except RuleViolation as exc:
                db.session.rollback()
                errors = _messages(exc) or {"_": str(exc)}
                row = db.session.get(CustomField, row.id) if row is not None else None
            else:
                flash(str(_l("Custom field %(name)s saved.", name=saved.label_zh if _lang().startswith("zh")
                             else saved.label_en)), "success")
                return self._back(saved.record_type)
        if row is not None:
            values.setdefault("record_type", row.record_type)
            values.setdefault("key", row.key)
        from views.dictionaries import DICTIONARY_VIEWS

        html = self.render_template("crm/custom_fields_form.html", row=row, values=values, errors=errors,
                                    types=_type_labels(), kinds=KIND_LABELS, flags=admin.FLAGS,
                                    dictionaries=[(view.datamodel.obj.__tablename__, str(label))
                                                  for view, label in DICTIONARY_VIEWS],
                                    title=_l("Edit custom field") if row else _l("Add a custom field"))
        return (html, 400) if errors else html

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self) -> Any:
        """GET: an empty form; POST: add the field (400 with the messages by field)."""
        return self._form(None)

    @expose("/edit/<int:pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk: int) -> Any:
        """GET: the field's form; POST: save it (record type and key fixed)."""
        row = db.session.get(CustomField, pk)
        if row is None:
            abort(404)
        return self._form(row)

    def _act(self, pk: int, call: Any, done: Any) -> Any:
        row = db.session.get(CustomField, pk)
        if row is None:
            abort(404)
        record_type = row.record_type
        try:
            call()
            db.session.commit()
        except NotFound:
            db.session.rollback()
            abort(404)
        except RuleViolation as exc:
            db.session.rollback()
            flash("; ".join(_messages(exc).values()), "danger")
        else:
            flash(str(done), "success")
        return self._back(record_type)

    @expose("/active/<int:pk>", methods=["POST"])
    @has_access
    def active(self, pk: int) -> Any:
        """Deactivate (``active=0``) or activate (``active=1``) a field; values stay."""
        on = request.form.get("active") == "1"
        return self._act(pk, lambda: admin.set_active(pk, g.user, on),
                         _l("Field activated.") if on else _l("Field deactivated: its values stay on the records."))

    @expose("/delete/<int:pk>", methods=["POST"])
    @has_access
    def delete(self, pk: int) -> Any:
        """Delete a field no record holds a value of (else the count is said)."""
        return self._act(pk, lambda: admin.delete_field(pk, g.user), _l("Field deleted."))

    @expose("/purge/<int:pk>", methods=["GET", "POST"])
    @has_access
    def purge(self, pk: int) -> Any:
        """GET: what a purge does, a confirm box and the code; POST: purge (step-up asked)."""
        row = db.session.get(CustomField, pk)
        if row is None:
            abort(404)
        error = None
        if request.method == "POST":
            if request.form.get("confirm") != "yes":
                error = str(_l("Tick the box to confirm that the values will be removed from every record."))
            else:
                record_type = row.record_type
                try:
                    count = admin.purge_field(pk, g.user)
                    db.session.commit()
                except step_up.StepUpRequired as exc:
                    db.session.rollback()
                    return step_up.refusal(exc)
                except RuleViolation as exc:
                    db.session.rollback()
                    error = "; ".join(_messages(exc).values())
                    row = db.session.get(CustomField, pk)
                else:
                    flash(str(_l("Field purged: its values were removed from %(n)d records.", n=count)), "success")
                    return self._back(record_type)
        page = self.render_template("crm/custom_fields_purge.html", row=row, error=error, lang=_lang(),
                                    holders=admin.holders(row), code_field=step_up.CODE_FIELD,
                                    title=_l("Purge a custom field"))
        return (page, 400) if error else page


def register(appbuilder: AppBuilder) -> None:
    """Add *Organisation → Custom fields* (Admin only: no role but Admin is granted it)."""
    appbuilder.add_view(CustomFieldsView, "Custom fields", label=_l("Custom fields"), icon="fa-list-alt",
                        category="Organisation", category_label=_l("Organisation"), category_icon="fa-users")
