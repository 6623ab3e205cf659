"""Sales > Orders (订单, issue 15): the declared list/add/edit (``app.services.orders.ORDER``),
the order page (header, totals, lines while draft, submit for approval, status actions,
deliveries with per-line quantities, payments, history), Sales > Overdue deliveries /
Overdue payments, and the REST actions under ``/api/v1/order/``: ``<id>/lines``,
``<id>/lines/<line id>`` (PUT, DELETE), ``<id>/submit``, ``<id>/status``, ``<id>/reopen``,
``<id>/deliveries``, ``<id>/payments`` and ``from_opportunity/<opportunity id>``.

Thin: every write is one use case of ``app.services.orders`` (loaded in scope: another
user's order is 404 everywhere); a refusal is a flash message (pages) or 4xx JSON with
field messages (API), never a 500. Amounts travel as strings ("1234.50").
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_appbuilder.api import BaseApi, protect, safe
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import func, select
from wtforms import StringField
from wtforms.validators import Length, Optional

from app import clock
from app.extensions import db
from app.models.dictionaries import PaymentMethod
from app.models.orders import SalesOrder
from app.models.sales import Product
from app.security.request_bounds import db_int
from app.services import audit, orders, records
from app.services.errors import NotFound, RuleViolation
from views import display, forms, writes
from views.declared import OWN_APIS, OWN_VIEWS, declared_api, declared_view

CATEGORY = "Sales"
PAGE_SIZE = 50
_PERCENT_FIELDS = ("delivered_percent", "paid_percent")


def category_args() -> dict[str, Any]:
    """What every add_view / add_link of the Sales menu passes."""
    return {"category": CATEGORY, "category_label": _l("Sales"), "category_icon": "fa-shopping-cart"}


class OrderShowMixin:
    """The declared show page is the order page."""

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk: Any) -> Any:
        return redirect(url_for("OrderDeskView.page", pk=db_int(pk) or 0))


def _percent_text(value: Any) -> str:
    return f"{value} %"


def currency_field() -> StringField:
    """Currency may be left empty (the company currency): the column is required, the form not."""
    return StringField(_l("Currency"), validators=[Optional(), Length(max=3)],
                       description=_l("3 letters; empty = the company currency."))


OrderView = declared_view(
    orders.ORDER, OrderShowMixin,
    add_form_extra_fields={"owner": forms.owner_field(), "currency": currency_field()},
    edit_form_extra_fields={"edit_version": forms.version_field(), "owner": forms.owner_field(True),
                            "currency": currency_field()},
    formatters_columns={"status": lambda value: str(orders.STATUSES.get(value, value)),
                        **{name: _percent_text for name in _PERCENT_FIELDS}},
)
OWN_VIEWS[orders.ORDER.name] = OrderView
#: The owner and currency are defaulted by the rules.
OrderApi = declared_api(orders.ORDER, add_optional_columns=("owner", "currency"))
OWN_APIS[orders.ORDER.name] = OrderApi


# --- pages ----------------------------------------------------------------------------

def _page_number() -> int:
    number = db_int(request.args.get("page"))
    return number if number is not None and number >= 1 else 1


def _products() -> list[Product]:
    return list(db.session.scalars(select(Product).where(Product.active.is_(True)).order_by(Product.name)))


def _methods() -> list[PaymentMethod]:
    return list(db.session.scalars(select(PaymentMethod).where(PaymentMethod.active.is_(True))
                                   .order_by(PaymentMethod.sort_order, PaymentMethod.id)))


def _history(item: SalesOrder) -> list[tuple[Any, list[tuple[str, Any, Any]]]]:
    """The order's latest audit entries with their field changes as a person reads them."""
    def readable(value: Any) -> Any:
        return orders.STATUSES.get(value, value) if isinstance(value, str) else value

    return [(entry, [(label, readable(before), readable(after))
                     for label, before, after in display.audit_rows(entry.changes, "SalesOrder")])
            for entry in audit.history("SalesOrder", item.id, limit=30)]


class OrderDeskView(BaseView):
    """The order page, its action buttons and the overdue lists (can_read / can_write on SalesOrder)."""

    route_base = "/sales/orders"
    class_permission_name = "SalesOrder"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {
        "page": "read", "overdue_deliveries": "read", "overdue_payments": "read",
        "add_line": "write", "delete_line": "write", "submit": "write", "status": "write", "reopen": "write",
        "delivery": "write", "payment": "write", "from_opportunity": "write"}
    default_view = "overdue_deliveries"

    @expose("/<int:pk>")
    @has_access
    def page(self, pk: int) -> Any:
        try:
            item = records.load(SalesOrder, pk, g.user)
        except NotFound:
            abort(404)
        from app.services import approvals

        try:
            waiting = approvals.pending("order", item.id, orders.KIND)
        except NotImplementedError:
            waiting = None
        return self.render_template(
            "orders/page.html", item=item, statuses=orders.STATUSES, moves=orders.TRANSITIONS.get(item.status, ()),
            products=_products() if item.status == orders.DRAFT else [], methods=_methods(),
            history=_history(item), waiting=waiting, today=clock.local_today().isoformat(),
            open_amount=orders.open_amount(item), local_text=clock.local_text,
            can_write=self.appbuilder.sm.has_access("can_write", "SalesOrder"), title=item.code)

    def _overdue(self, query: Any, which: str, title: Any) -> Any:
        page = _page_number()
        total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
        rows = db.session.scalars(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
        return self.render_template("orders/overdue.html", rows=rows, total=total, page=page,
                                    pages=max(1, -(-total // PAGE_SIZE)), which=which, statuses=orders.STATUSES,
                                    title=title)

    @expose("/overdue/deliveries")
    @has_access
    def overdue_deliveries(self) -> Any:
        return self._overdue(orders.overdue_deliveries(g.user), "deliveries", _l("Overdue deliveries"))

    @expose("/overdue/payments")
    @has_access
    def overdue_payments(self) -> Any:
        return self._overdue(orders.overdue_payments(g.user), "payments", _l("Overdue payments"))

    def _act(self, pk: int, use_case: Any, done: Any) -> Any:
        return writes.form_action(use_case, url_for("OrderDeskView.page", pk=pk), done)

    @expose("/<int:pk>/lines", methods=["POST"])
    @has_access
    def add_line(self, pk: int) -> Any:
        values = {name: request.form.get(name, "") for name in ("product", "quantity", "unit_price", "discount")}
        line = request.form.get("line") or None
        return self._act(pk, lambda: orders.save_line(pk, values, g.user, pk=line),
                         _l("Product line saved."))

    @expose("/<int:pk>/lines/<int:line_pk>/delete", methods=["POST"])
    @has_access
    def delete_line(self, pk: int, line_pk: int) -> Any:
        return self._act(pk, lambda: orders.delete_line(pk, line_pk, g.user), _l("Product line removed."))

    @expose("/<int:pk>/submit", methods=["POST"])
    @has_access
    def submit(self, pk: int) -> Any:
        return self._act(pk, lambda: orders.submit(pk, g.user, version=request.form.get("version")),
                         lambda item: _l("The order waits for approval.") if item.status == orders.WAITING
                         else _l("The order is approved."))

    @expose("/<int:pk>/status", methods=["POST"])
    @has_access
    def status(self, pk: int) -> Any:
        form = request.form
        return self._act(pk, lambda: orders.change_status(pk, g.user, form.get("to_status", ""),
                                                          reason=form.get("reason"), version=form.get("version")),
                         _l("Order updated."))

    @expose("/<int:pk>/reopen", methods=["POST"])
    @has_access
    def reopen(self, pk: int) -> Any:
        return self._act(pk, lambda: orders.reopen_for_change(pk, g.user, request.form.get("reason"),
                                                              version=request.form.get("version")),
                         _l("The order is a draft again: change its lines and submit it for approval."))

    @expose("/<int:pk>/deliveries", methods=["POST"])
    @has_access
    def delivery(self, pk: int) -> Any:
        form = request.form
        quantities = {key[5:]: value for key, value in form.items() if key.startswith("line_")}
        return self._act(pk, lambda: orders.record_delivery(pk, g.user, form.get("delivered_on"), quantities,
                                                            note=form.get("note")), _l("Delivery recorded."))

    @expose("/<int:pk>/payments", methods=["POST"])
    @has_access
    def payment(self, pk: int) -> Any:
        form = request.form
        return self._act(pk, lambda: orders.record_payment(
            pk, g.user, form.get("paid_on"), form.get("amount"), form.get("method"), form.get("reference"),
            note=form.get("note"), confirm=form.get("confirm") == "1"), _l("Payment recorded."))

    @expose("/from_opportunity/<int:opportunity_pk>", methods=["POST"])
    @has_access
    def from_opportunity(self, opportunity_pk: int) -> Any:
        """The won opportunity page's "Create order" button: a draft order with its lines."""
        back = url_for("OpportunityView.show", pk=opportunity_pk)
        try:
            order, warning = orders.order_from_opportunity(opportunity_pk, g.user)
        except NotFound:
            db.session.rollback()
            abort(404)
        except RuleViolation as exc:
            db.session.rollback()
            for message in exc.errors.values():
                flash(str(message), "danger")
            return redirect(back)
        db.session.commit()
        flash(str(_l("Order %(code)s created from the opportunity.", code=order.code)), "success")
        if warning:
            flash(warning, "warning")
        return redirect(url_for("OrderDeskView.page", pk=order.id))


# --- REST actions -----------------------------------------------------------------------

class Amount(fields.String):
    """An amount or a quantity as a string ("1234.50"); numbers are accepted too."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValidationError(str(_l("Send the amount as a string such as \"1234.50\".")))
        return str(value)


class LineBody(Schema):
    product = fields.Integer(required=True, strict=True)
    quantity = Amount(required=True)
    unit_price = Amount(allow_none=True)
    discount = Amount(allow_none=True)


class LineChangeBody(Schema):
    product = fields.Integer(strict=True)
    quantity = Amount()
    unit_price = Amount(allow_none=True)
    discount = Amount(allow_none=True)


class VersionBody(Schema):
    version = fields.Integer(allow_none=True)


class StatusBody(Schema):
    status = fields.String(required=True, validate=validate.OneOf(list(orders.STATUSES)))
    reason = fields.String(allow_none=True, validate=validate.Length(max=orders.REASON_LIMIT))
    version = fields.Integer(allow_none=True)


class ReopenBody(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=orders.REASON_LIMIT))
    version = fields.Integer(allow_none=True)


class DeliveryBody(Schema):
    delivered_on = fields.Date(required=True)
    quantities = fields.Dict(keys=fields.String(), values=Amount(), required=True,
                             validate=validate.Length(min=1, max=500))
    note = fields.String(allow_none=True, validate=validate.Length(max=orders.REASON_LIMIT))


class PaymentBody(Schema):
    paid_on = fields.Date(required=True)
    amount = Amount(required=True)
    method = fields.Integer(allow_none=True, strict=True)
    reference = fields.String(allow_none=True, validate=validate.Length(max=orders.REFERENCE_LIMIT))
    note = fields.String(allow_none=True, validate=validate.Length(max=orders.REASON_LIMIT))
    confirm = fields.Boolean(load_default=False)


def order_json(order: SalesOrder) -> dict[str, Any]:
    """An order's state as the actions answer it (amounts as strings)."""
    return {"id": order.id, "code": order.code, "status": order.status, "currency": order.currency,
            "total": str(order.total), "delivered_amount": str(order.delivered_amount),
            "paid_amount": str(order.paid_amount), "delivered_percent": str(order.delivered_percent),
            "paid_percent": str(order.paid_percent), "version": order.version,
            "lines": [{"id": line.id, "product": line.product_id, "quantity": str(line.quantity),
                       "unit_price": str(line.unit_price), "discount": str(line.discount),
                       "amount": str(line.amount), "delivered_quantity": str(line.delivered_quantity)}
                      for line in order.lines]}


def _order_of(result: Any) -> SalesOrder:
    if isinstance(result, tuple):
        result = result[0]
    return result if isinstance(result, SalesOrder) else result.order


class OrderActionsApi(writes.ActionApiMixin, BaseApi):
    """The order page's actions through the same use cases. 400 for a body that is not a
    JSON object of the schema (field messages); 403 without write permission; 404 for an
    order (or line) the caller may not see; 409 for a move the status forbids, locked lines
    or an over-payment (send ``confirm``); 422 for other rules. 200 (201 for new lines,
    deliveries, payments and orders) with the order (``order_json``)."""

    resource_name = "order"
    class_permission_name = "SalesOrder"
    base_permissions = ["can_write"]
    method_permission_name = {name: "write" for name in (
        "add_line", "change_line", "remove_line", "submit", "status", "reopen", "deliveries", "payments",
        "from_opportunity")}
    openapi_spec_tag = "Order"

    def _run(self, schema: Schema | None, call: Any, status: int = 200) -> Any:
        def answer(result: Any) -> Any:
            extra = {"warning": result[1]} if isinstance(result, tuple) and result[1] else {}
            order = _order_of(result)
            db.session.refresh(order)
            return self.response(status, result=order_json(order), **extra)

        return self.run_action(schema, call, answer)

    @expose("/<int:pk>/lines", methods=["POST"])
    @protect()
    @safe
    def add_line(self, pk: int) -> Any:
        """Add a product line to a draft order.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            201:
              description: The order with the new line
        """
        return self._run(LineBody(), lambda v: orders.save_line(pk, v, g.user), 201)

    @expose("/<int:pk>/lines/<int:line_pk>", methods=["PUT"])
    @protect()
    @safe
    def change_line(self, pk: int, line_pk: int) -> Any:
        """Change a product line of a draft order.
        ---
        put:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          - in: path
            name: line_pk
            schema:
              type: integer
          responses:
            200:
              description: The order
        """
        return self._run(LineChangeBody(), lambda v: orders.save_line(pk, v, g.user, pk=line_pk))

    @expose("/<int:pk>/lines/<int:line_pk>", methods=["DELETE"])
    @protect()
    @safe
    def remove_line(self, pk: int, line_pk: int) -> Any:
        """Remove a product line of a draft order.
        ---
        delete:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          - in: path
            name: line_pk
            schema:
              type: integer
          responses:
            200:
              description: The order
        """
        def call(_: Any) -> SalesOrder:
            orders.delete_line(pk, line_pk, g.user)
            return records.load(SalesOrder, pk, g.user)

        return self._run(None, call)

    @expose("/<int:pk>/submit", methods=["POST"])
    @protect()
    @safe
    def submit(self, pk: int) -> Any:
        """Submit a draft order: approved at once, or waiting for approval by policy.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The order (status approved or waiting)
        """
        return self._run(VersionBody(), lambda v: orders.submit(pk, g.user, version=v.get("version")))

    @expose("/<int:pk>/status", methods=["POST"])
    @protect()
    @safe
    def status(self, pk: int) -> Any:
        """Move an order (in production, delivering, delivered, closed, cancelled with a reason).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The order, moved
        """
        return self._run(StatusBody(), lambda v: orders.change_status(
            pk, g.user, v["status"], reason=v.get("reason"), version=v.get("version")))

    @expose("/<int:pk>/reopen", methods=["POST"])
    @protect()
    @safe
    def reopen(self, pk: int) -> Any:
        """Put an approved order with no delivery or payment back to draft (a reason is required).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The order, a draft again
        """
        return self._run(ReopenBody(), lambda v: orders.reopen_for_change(pk, g.user, v["reason"],
                                                                           version=v.get("version")))

    @expose("/<int:pk>/deliveries", methods=["POST"])
    @protect()
    @safe
    def deliveries(self, pk: int) -> Any:
        """Record a delivery: ``delivered_on`` and ``quantities`` (line id -> quantity string).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            201:
              description: The order after the delivery
        """
        return self._run(DeliveryBody(), lambda v: orders.record_delivery(
            pk, g.user, v["delivered_on"], v["quantities"], note=v.get("note")), 201)

    @expose("/<int:pk>/payments", methods=["POST"])
    @protect()
    @safe
    def payments(self, pk: int) -> Any:
        """Record a payment: ``paid_on``, ``amount`` (string), ``method`` id, ``reference``, ``confirm``.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            201:
              description: The order after the payment
        """
        return self._run(PaymentBody(), lambda v: orders.record_payment(
            pk, g.user, v["paid_on"], v["amount"], v.get("method"), v.get("reference"), note=v.get("note"), confirm=v["confirm"]), 201)

    @expose("/from_opportunity/<int:opportunity_pk>", methods=["POST"])
    @protect()
    @safe
    def from_opportunity(self, opportunity_pk: int) -> Any:
        """Create a draft order from a won opportunity (its lines copied); ``warning`` when it had orders.
        ---
        post:
          parameters:
          - in: path
            name: opportunity_pk
            schema:
              type: integer
          responses:
            201:
              description: The new order
        """
        return self._run(None, lambda v: orders.order_from_opportunity(opportunity_pk, g.user), 201)


def register(appbuilder: AppBuilder) -> None:
    """Sales > Overdue deliveries / Overdue payments (can_read on SalesOrder) and the order
    actions API; Sales > Orders itself comes from the declaration (``register_declared``)."""
    appbuilder.add_view(OrderDeskView, "Overdue deliveries", label=_l("Overdue deliveries"), icon="fa-truck",
                        **category_args())
    appbuilder.add_link("Overdue payments", href="OrderDeskView.overdue_payments", label=_l("Overdue payments"),
                        icon="fa-money", **category_args())
    appbuilder.add_api(OrderActionsApi)
