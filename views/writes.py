"""Screens and REST APIs that write through a use case (``app/services``), and stay thin.

The form (WTForms) or the request schema (marshmallow) only parses: types, dates,
related ids into records. Everything else — scope, rules, duplicates, version, step-up,
audit — is the use case's; its ``RuleViolation`` becomes field errors on the form (the
user's input is kept) or a 4xx JSON answer, its ``StepUpRequired`` the code page or a
401 JSON answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, g, make_response, redirect, request
from flask_appbuilder._compat import as_unicode
from flask_appbuilder.api import expose, safe
from flask_appbuilder.security.decorators import protect
from flask_appbuilder.urltools import get_filter_args, get_order_args, get_page_args, get_page_size_args
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from sqlalchemy import inspect as sa_inspect

from app.extensions import db
from app.security import masking, step_up
from app.security.request_bounds import db_int
from app.services import custom_fields, records
from app.services.errors import NotFound, RuleForbidden, RuleViolation
from views.custom_api import (
    CustomFieldsConverter,
    add_list_conditions,
    add_openapi_properties,
    info_fields,
    split_custom,
)

#: JSON keys that are not record fields: the version guard and the step-up code.
API_CONTROL_KEYS = ("version", "totp_code")


def form_action(use_case: Callable[[], Any], back: str, done: Any) -> Any:
    """A screen's POST button (complete, cancel, transfer, open a ticket …): run the one use
    case; commit and flash ``done`` (a text, or a function of the use case's result) when it
    succeeds; roll back and flash the rule's messages when it refuses (``RuleViolation``);
    404 for a record the user may not see (``NotFound``). Redirects to ``back`` (a safe URL)."""
    try:
        result = records.guarded(use_case)
    except NotFound:
        db.session.rollback()
        abort(404)
    except RuleViolation as exc:
        db.session.rollback()
        for message in exc.errors.values():
            flash(str(message), "danger")
        return redirect(back)
    db.session.commit()
    flash(str(done(result) if callable(done) else done), "success")
    return redirect(back)


def _tell_held() -> None:
    """Flash each change the save held for approval ("… sent for approval to …")."""
    from app.services import approvals
    from views.approvals import flash_held

    flash_held(approvals.held())


def step_up_abort(exc: step_up.StepUpRequired) -> None:
    """Leave the current view with the step-up page / 401 JSON (nothing was written)."""
    db.session.rollback()
    abort(make_response(step_up.refusal(exc)))


class UseCaseFormMixin:
    """For ModelViews: add and edit call ``save_record`` instead of writing the model.

    Subclasses set ``use_case_fields`` (form fields handed to the use case) and implement
    ``save_record(values, pk=..., version=..., form=...)``. A field error names a form
    field; any other error is flashed. The version comes from the hidden
    ``edit_version`` field when the form has one.
    """

    use_case_fields: tuple[str, ...] = ()

    def save_record(self, values: dict[str, Any], *, pk: Any, version: Any, form: Any) -> Any:
        raise NotImplementedError

    def form_class(self, form_cls: Any, item: Any = None) -> Any:
        """The form class this request uses (``item``: the record edited, None when adding);
        a mixin returns a subclass with per-request fields (custom fields, issue 18)."""
        return form_cls

    def form_values(self, form: Any) -> dict[str, Any]:
        """The submitted values the use case receives (only fields present on this form)."""
        return {name: form[name].data for name in self.use_case_fields if name in form}

    def _saved(self, form: Any, pk: Any) -> bool:
        version = form["edit_version"].data if "edit_version" in form else None
        try:
            records.guarded(lambda: self.save_record(self.form_values(form), pk=pk, version=version, form=form))
        except step_up.StepUpRequired as exc:
            step_up_abort(exc)
        except RuleViolation as exc:
            db.session.rollback()
            self.show_rule_errors(form, exc)
            return False
        db.session.commit()
        _tell_held()
        return True

    def show_rule_errors(self, form: Any, exc: RuleViolation) -> None:
        """Field messages under their fields; the rest as a flash message."""
        for name, message in exc.errors.items():
            if not isinstance(message, str):
                continue
            if name in form and name not in ("edit_version",):
                form[name].errors = [*form[name].errors, message]
            else:
                flash(message, "danger")

    def _add(self) -> Any:
        get_filter_args(self._filters, disallow_if_not_in_search=False)
        exclude_cols = self._filters.get_relation_cols()
        form = self.form_class(self.add_form).refresh()
        if request.method == "POST":
            self._fill_form_exclude_cols(exclude_cols, form)
            if form.validate() and self._saved(form, None):
                flash(as_unicode(self.add_row_message), "success")
                return None
        else:
            self.update_redirect()
        return self._get_add_widget(form=form, exclude_cols=exclude_cols)

    def _edit(self, pk: Any) -> Any:
        pages, page_sizes, orders = get_page_args(), get_page_size_args(), get_order_args()
        get_filter_args(self._filters, disallow_if_not_in_search=False)
        exclude_cols = self._filters.get_relation_cols()
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            abort(404)
        pk = self.datamodel.get_pk_value(item)
        if request.method == "POST":
            form = self.form_class(self.edit_form, item).refresh(request.form)
            self._fill_form_exclude_cols(exclude_cols, form)
            form._id = pk
            if form.validate() and self._saved(form, pk):
                flash(as_unicode(self.edit_row_message), "success")
                return None
            item = self.datamodel.get(pk, self._base_filters) or abort(404)
        else:
            form = self.form_class(self.edit_form, item).refresh(obj=item)
            self.prefill_form(form, pk)
            self.update_redirect()
        widgets = self._get_edit_widget(form=form, exclude_cols=exclude_cols)
        return self._get_related_views_widgets(item, filters={}, orders=orders, pages=pages,
                                               page_sizes=page_sizes, widgets=widgets)


def json_object(api: Any, *, empty_ok: bool = False) -> tuple[dict[str, Any] | None, Any]:
    """The request's JSON object for a REST endpoint of ``api``: ``(body, None)``, or
    ``(None, 400 answer)`` when the body is not a JSON object. ``empty_ok``: no body at
    all counts as ``{}`` (actions without parameters)."""
    if empty_ok and not request.get_data():
        return {}, None
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict):
        return None, api.response_400(message=str(_l("Send a JSON object.")))
    return body, None


def related_id_problems(model: type, payload: dict[str, Any]) -> dict[str, list[str]]:
    """Related fields of a REST body (``customer``, ``level``, ``campaign`` …) whose value is
    not a record id (a whole number a column holds, or a list of them): each is named with
    a message (422) before the database is asked for it — PostgreSQL refuses to compare an
    integer key with text, which would otherwise end in a 500."""
    relations = sa_inspect(model).relationships
    problems = {}
    for name, value in payload.items():
        if name not in relations or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        if any(db_int(item) is None or isinstance(item, str) and not item.strip().isdigit() for item in values):
            problems[name] = [str(_l("Give the id of the record (a whole number)."))]
    return problems


class ActionApiMixin:
    """REST actions on a record (``POST /api/v1/<type>/<id>/<action>``: transfer, submit,
    approve, record a payment …): the body checked by a marshmallow schema, ONE use case,
    commit. A body that is not a JSON object or fails its schema is a 400 with the
    messages; a refusal rolls back and answers its status with the field messages
    (``RuleViolation``: 403/404/409/422); a step-up answers 401 with what to send; a
    concurrent change is a 409 (``records.guarded``)."""

    def run_action(self, schema: Any, call: Callable[[dict[str, Any]], Any], answer: Callable[[Any], Any], *,
                   status: int = 200, empty_ok: bool = False) -> Any:
        """``call(values)`` with the loaded body (``schema`` None: no body read), then
        ``answer(result)`` (a dict, the answer's ``result``; or a ready response)."""
        values: dict[str, Any] = {}
        if schema is not None:
            body, error = json_object(self, empty_ok=empty_ok)
            if error is not None:
                return error
            try:
                values = schema.load(body)
            except ValidationError as err:
                return self.response_400(message=err.messages)
        try:
            result = records.guarded(lambda: call(values))
        except step_up.StepUpRequired as exc:
            db.session.rollback()
            return step_up.refusal(exc)
        except RuleViolation as exc:
            db.session.rollback()
            return self.response(exc.status, message=exc.errors)
        db.session.commit()
        shown = answer(result)
        return shown if not isinstance(shown, dict) else self.response(status, result=shown)


class UseCaseApiMixin:
    """For ModelRestApis: POST and PUT call ``save_record``; answers are dumped with
    ``show_columns`` through ``pre_get`` (so every answer is masked like GET).

    The request schemas only parse (``load_instance`` off): a PUT carries the fields it
    changes (partial), plus ``version``. Custom fields (issue 18, ``views.custom_api``):
    ``cf_<key>`` properties are taken off the body before the schema loads it and handed
    to the use case (``records.assign`` checks them: 422 per field); answers carry them
    (masked ones masked); ``?cf_<key>=value`` filters the list; the OpenAPI schemas list
    them; ``POST <id>/custom/<key>/reveal`` is the recorded reveal of a masked one.
    """

    model2schemaconverter = CustomFieldsConverter

    def __init__(self, **kwargs: Any) -> None:
        # the reveal is read access to the record here; the use case asks for the reveal
        # right, in scope, with a step-up (same rule as phones)
        self.method_permission_name = {**(type(self).method_permission_name or {}), "reveal_custom": "read"}
        super().__init__(**kwargs)

    def save_record(self, values: dict[str, Any], *, pk: Any, version: Any) -> Any:
        raise NotImplementedError

    def _init_model_schemas(self) -> None:
        super()._init_model_schemas()
        for schema in (self.add_model_schema, self.edit_model_schema):
            schema._load_instance = False  # values for the use case, never a half-edited record

    def _get_fields_info(self, cols: list[str], model_schema: Any, filter_rel_fields: Any, **kwargs: Any
                         ) -> list[dict[str, Any]]:
        """``_info``'s add and edit fields, the record type's active custom fields after them."""
        return [*super()._get_fields_info(cols, model_schema, filter_rel_fields, **kwargs), *info_fields(self)]

    def add_apispec_components(self, api_spec: Any) -> None:
        super().add_apispec_components(api_spec)
        add_openapi_properties(self, api_spec)

    def _handle_filters_args(self, rison_args: dict[str, Any]) -> Any:
        return add_list_conditions(self, super()._handle_filters_args(rison_args))

    def call_use_case(self, call: Callable[[], Any]) -> tuple[Any, Any]:
        """Run a use case: ``(result, None)``, or ``(None, answer)`` after a rollback, where the
        answer is the step-up 401/403/429 or the rule's 4xx JSON. The caller commits."""
        try:
            with db.session.no_autoflush:
                return records.guarded(call), None
        except step_up.StepUpRequired as exc:
            db.session.rollback()
            return None, step_up.refusal(exc)
        except RuleViolation as exc:
            db.session.rollback()
            return None, self.response(exc.status, message=exc.errors)

    def _payload(self) -> tuple[dict[str, Any] | None, Any]:
        payload, error = json_object(self)
        if error is not None:
            return None, error
        return {k: v for k, v in payload.items() if k not in API_CONTROL_KEYS}, None

    def _answer(self, status: int, item: Any, **extra: Any) -> Any:
        """The saved record; a change the save held for approval answers 202 with
        ``held_for_approval`` (code, kind, approvers)."""
        from app.services import approvals
        from views.approvals import held_json

        held = approvals.held()
        if held:
            status, extra["held_for_approval"] = 202, held_json(held)
        data = {"result": self.show_model_schema.dump(item, many=False)}
        self.pre_get(data)
        return self.response(status, **data, **extra)

    def _write(self, schema: Any, pk: Any, version: Any, status: int) -> Any:
        payload, error = self._payload()
        if error is not None:
            return error
        payload, custom = split_custom(payload)
        problems = related_id_problems(self.datamodel.obj, payload)
        if problems:
            return self.response_422(message=problems)
        try:
            values = schema.load(payload, partial=pk is not None, session=db.session)
        except ValidationError as err:
            return self.response_422(message=err.messages)
        values.update(custom)
        item, refusal = self.call_use_case(lambda: self.save_record(values, pk=pk, version=version))
        if refusal is not None:
            return refusal
        db.session.commit()
        extra = {"id": item.id} if pk is None else {}
        return self._answer(status, item, **extra)

    def post_headless(self) -> Any:
        return self._write(self.add_model_schema, None, None, 201)

    def put_headless(self, pk: Any) -> Any:
        payload = request.get_json(silent=True)
        version = payload.get("version") if isinstance(payload, dict) else None
        return self._write(self.edit_model_schema, pk, version, 200)

    @expose("/<int:pk>/custom/<key>/reveal", methods=["POST"])
    @protect()
    @safe
    def reveal_custom(self, pk: int, key: str) -> Any:
        """Reveal the full value of one masked custom field (recorded in the audit log).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          - in: path
            name: key
            schema:
              type: string
            description: The field's key (with or without the cf_ prefix)
          - in: header
            name: X-TOTP-Code
            schema:
              type: string
            description: A fresh TOTP code (sensitive action), unless a step-up is still fresh
          responses:
            200:
              description: "{field: cf_<key>, value: the stored value, text: the value as text}"
            401:
              description: Step-up required (send X-TOTP-Code)
            403:
              description: The caller may not reveal masked values
            404:
              $ref: '#/components/responses/404'
        """
        from app.services.custom_fields import reveal as cf_reveal

        record_type = custom_fields.record_type_of(self.datamodel.obj)
        if record_type is None:
            return self.response_404()
        found, refusal = self.call_use_case(
            lambda: cf_reveal.reveal_value(record_type, pk, key, g.user, via="api"))
        if refusal is not None:
            return refusal
        db.session.commit()
        field, value = found
        return self.response(200, field=field.name, value=value, text=custom_fields.as_text(field, value))


def reveal_on_page(reveal: Callable[[], Any]) -> tuple[Any, Any]:
    """Run a reveal use case for a page and commit: ``(value, None)``, or ``(None, the
    step-up page)``; a refusal (403) or a record out of reach (404) aborts after a rollback."""
    try:
        value = reveal()
    except step_up.StepUpRequired as exc:
        db.session.rollback()
        return None, step_up.refusal(exc)
    except RuleForbidden:
        db.session.rollback()
        abort(403)
    except NotFound:
        db.session.rollback()
        abort(404)
    db.session.commit()
    return value, None


def reveal_page(view: Any, pk: Any, reveal: Callable[[Any], str], masked: Callable[[Any], str | None],
                **labels: Any) -> Any:
    """The explicit, recorded reveal of one record's phone: GET asks, POST reveals.

    ``reveal(pk)`` is the use case (permission, step-up, audit); its refusals are the
    page's answers (step-up page, 403, 404). ``labels``: ``phone_label``, ``back_url``,
    ``back_label`` and an optional ``context`` (record -> a line under the title) for
    ``crm/reveal.html``.
    """
    item = view.scoped_get(pk)
    if item is None:
        abort(404)
    phone = None
    if request.method == "POST":
        phone, refusal = reveal_on_page(lambda: reveal(pk))
        if refusal is not None:
            return refusal
    context = labels.pop("context", None)
    return view.render_template("crm/reveal.html", item=item, phone=phone, masked=masking.mask_phone(masked(item)),
                                context=context(item) if context else None, **labels)
