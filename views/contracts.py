"""Sales > Contracts (issue 15): the declared list/add/edit (``contracts.CONTRACT``), the
contract page (header, status buttons: activate / terminate with a reason / renew, linked
orders, the renewals chain, attachments: upload, list, remove), Sales > Expiring contracts
(the next N days), and the REST actions ``POST /api/v1/contract/<id>/status``, ``/renew``,
``GET/POST /api/v1/contract/<id>/attachments``.

Thin: every list and write is ``app.services.contracts``; a record out of the reader's
scope is a 404 on every page and endpoint; downloads go through the generic
``/attachments/<id>/download`` (scope-checked, always as a download, ``nosniff``).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_appbuilder.api import BaseApi, protect, safe
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models.orders import Contract
from app.models.org import CrmUser
from app.security.request_bounds import db_int
from app.services import attachments, contracts, records
from app.services.errors import NotFound, RuleViolation
from views import writes
from views.declared import COMMON_LABELS, OWN_APIS, OWN_VIEWS, declared_api, declared_view

CATEGORY = "Sales"
#: Rows on the expiring list (soonest first).
EXPIRING_LIMIT = 200


def status_text(value: Any) -> str:
    """A status code as its label in the reader's language."""
    return str(contracts.STATUSES.get(value, value or ""))


class ContractShowMixin:
    """The declared show page is the contract page."""

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk: Any) -> Any:
        return redirect(url_for("ContractDeskView.page", pk=db_int(pk) or 0))


ContractView = declared_view(
    contracts.CONTRACT, ContractShowMixin,
    add_columns=list(contracts.FORM_FIELDS), edit_columns=[*contracts.FORM_FIELDS, "edit_version"],
    use_case_fields=contracts.FORM_FIELDS,
    label_columns={**COMMON_LABELS, **contracts.LABELS},
    formatters_columns={"status": status_text},
)
OWN_VIEWS[contracts.CONTRACT.name] = ContractView
#: Status (draft), owner (the writer), orders may be left out of a new contract.
OWN_APIS[contracts.CONTRACT.name] = declared_api(contracts.CONTRACT,
                                                 add_optional_columns=("status", "owner", "orders"))


# --- pages ----------------------------------------------------------------------------------

class ContractDeskView(BaseView):
    """The contract page and its buttons, Sales > Expiring contracts (can_read / can_write on
    Contract)."""

    route_base = "/sales/contracts"
    class_permission_name = "Contract"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"page": "read", "expiring": "read", "status": "write", "renew": "write",
                              "upload": "write", "remove_file": "write"}
    default_view = "expiring"

    @expose("/<int:pk>")
    @has_access
    def page(self, pk: int) -> Any:
        try:
            item = records.load(Contract, pk, g.user)
        except NotFound:
            abort(404)
        files = attachments.for_record(item)
        return self.render_template(
            "contracts/page.html", item=item, statuses=contracts.STATUSES, moves=contracts.MOVES.get(item.status, ()),
            chain=contracts.renewal_chain(item, g.user), files=files, uploaders=_uploaders(files),
            orders=contracts.visible_orders(item, g.user), max_mb=attachments.max_bytes() // (1024 * 1024),
            can_write=self.appbuilder.sm.has_access("can_write", "Contract"), local_text=clock.local_text,
            today=clock.local_today(), title=item.code)

    @expose("/expiring/")
    @has_access
    def expiring(self) -> Any:
        days = contracts.window_days(request.args.get("days"))
        rows = db.session.scalars(contracts.expiring(g.user, days).limit(EXPIRING_LIMIT)).all()
        return self.render_template("contracts/expiring.html", rows=rows, days=days, today=clock.local_today(),
                                    statuses=contracts.STATUSES, limit=EXPIRING_LIMIT,
                                    title=_l("Expiring contracts"))

    def _back(self, pk: int) -> str:
        return url_for("ContractDeskView.page", pk=pk)

    @expose("/<int:pk>/status", methods=["POST"])
    @has_access
    def status(self, pk: int) -> Any:
        form = request.form
        return writes.form_action(lambda: contracts.change_status(
            pk, g.user, form.get("to_status", ""), reason=form.get("reason"), version=form.get("version")),
            self._back(pk), lambda item: _l("Contract %(code)s is now %(status)s.", code=item.code,
                                            status=status_text(item.status)))

    @expose("/<int:pk>/renew", methods=["POST"])
    @has_access
    def renew(self, pk: int) -> Any:
        try:
            item = contracts.renew(pk, g.user)
        except NotFound:
            db.session.rollback()
            abort(404)
        except RuleViolation as exc:
            db.session.rollback()
            for message in exc.errors.values():
                flash(str(message), "danger")
            return redirect(self._back(pk))
        db.session.commit()
        flash(str(_l("Renewal %(code)s drafted: fill in its number and dates, then activate it.", code=item.code)),
              "success")
        return redirect(self._back(item.id))

    @expose("/<int:pk>/attachments", methods=["POST"])
    @has_access
    def upload(self, pk: int) -> Any:
        return writes.form_action(lambda: contracts.add_attachment(pk, request.files.get("file"), g.user),
                                  self._back(pk), lambda file: _l("%(name)s attached.", name=file.filename))

    @expose("/<int:pk>/attachments/<int:file_pk>/remove", methods=["POST"])
    @has_access
    def remove_file(self, pk: int, file_pk: int) -> Any:
        return writes.form_action(lambda: contracts.delete_attachment(pk, file_pk, g.user), self._back(pk),
                                  _l("Attachment removed."))


def _uploaders(files: list[Any]) -> dict[int, str]:
    """Uploader id -> full name for the attachments' list."""
    ids = {file.uploaded_by_id for file in files if file.uploaded_by_id}
    if not ids:
        return {}
    return {user.id: user.get_full_name() for user in db.session.scalars(select(CrmUser).where(CrmUser.id.in_(ids)))}


# --- REST actions ---------------------------------------------------------------------------

class StatusBody(Schema):
    status = fields.String(required=True, validate=validate.Length(min=1, max=32))
    reason = fields.String(allow_none=True, validate=validate.Length(max=contracts.REASON_LIMIT))
    version = fields.Integer(allow_none=True)


def contract_json(item: Contract) -> dict[str, Any]:
    """A contract as the actions answer: id, code, number, status, renewal_of, version."""
    return {"id": item.id, "code": item.code, "number": item.number, "status": item.status,
            "renewal_of": item.renewal_of_id, "version": item.version}


def file_json(file: Any) -> dict[str, Any]:
    """An attachment: id, name, content type, size (bytes), uploader id, uploaded (UTC ISO), download path."""
    return {"id": file.id, "filename": file.filename, "content_type": file.content_type, "size": file.size,
            "uploaded_by": file.uploaded_by_id, "uploaded_on": clock.as_utc(file.uploaded_on).isoformat(),
            "download": url_for("AttachmentView.download", pk=file.id)}


class ContractActionsApi(writes.ActionApiMixin, BaseApi):
    """``POST /api/v1/contract/<pk>/status`` (``status``: code, label or alias; ``reason``
    to terminate; ``version``), ``POST /<pk>/renew`` (201 with the new draft), ``GET
    /<pk>/attachments`` (the list) and ``POST /<pk>/attachments`` (multipart ``file``: 201).
    400 for a body that is not the schema, 404 out of scope, 409 / 413 / 415 / 422 as the
    use case refuses: JSON with field messages, never a 500."""

    resource_name = "contract"
    class_permission_name = "Contract"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"status": "write", "renew": "write", "files": "read", "upload": "write"}
    openapi_spec_tag = "Contract"
    allow_browser_login = False

    def _refusal(self, exc: RuleViolation) -> Any:
        db.session.rollback()
        return self.response(exc.status, message={k: str(v) for k, v in exc.errors.items()})

    @expose("/<int:pk>/status", methods=["POST"])
    @protect()
    @safe
    def status(self, pk: int) -> Any:
        """Move a contract to another status (activate, terminate with a reason, expire by date).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The contract
            400:
              $ref: '#/components/responses/400'
            404:
              $ref: '#/components/responses/404'
        """
        return self.run_action(StatusBody(), lambda v: contracts.change_status(
            pk, g.user, v["status"], reason=v.get("reason"), version=v.get("version")), contract_json)

    @expose("/<int:pk>/renew", methods=["POST"])
    @protect()
    @safe
    def renew(self, pk: int) -> Any:
        """Renew a contract: a new draft following on.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            201:
              description: The new draft contract
            404:
              $ref: '#/components/responses/404'
            409:
              description: Not active or expired, or already renewed
        """
        return self.run_action(None, lambda _: contracts.renew(pk, g.user), contract_json, status=201)

    @expose("/<int:pk>/attachments", methods=["GET"])
    @protect()
    @safe
    def files(self, pk: int) -> Any:
        """The contract's attachments.
        ---
        get:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The attachments (id, filename, content_type, size, uploaded_by, download)
            404:
              $ref: '#/components/responses/404'
        """
        try:
            items = contracts.list_attachments(pk, g.user)
        except RuleViolation as exc:
            return self._refusal(exc)
        return self.response(200, result=[file_json(item) for item in items])

    @expose("/<int:pk>/attachments", methods=["POST"])
    @protect()
    @safe
    def upload(self, pk: int) -> Any:
        """Attach a file (multipart field ``file``: PDF, image or Office document, judged by content).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            201:
              description: The attachment
            404:
              $ref: '#/components/responses/404'
            413:
              description: Larger than the attachment size setting
            415:
              description: Not an accepted kind of file
        """
        return self.run_action(None, lambda _: contracts.add_attachment(pk, request.files.get("file"), g.user),
                               file_json, status=201)


def register(appbuilder: AppBuilder) -> None:
    """Sales > Expiring contracts and the contract page (can_read on Contract), the contract
    actions API. (Sales > Contracts itself is registered with every declared type.)"""
    appbuilder.add_view(ContractDeskView, "Expiring contracts", label=_l("Expiring contracts"),
                        icon="fa-hourglass-half", category=CATEGORY, category_label=_l("Sales"),
                        category_icon="fa-shopping-cart")
    appbuilder.add_api(ContractActionsApi)
