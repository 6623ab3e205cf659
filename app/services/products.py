"""Products (产品): what opportunity lines (and later orders) sell.

Reference data every user reads (scope ``everyone``); managers and admins maintain it.
A product in use on an opportunity line is deactivated, never deleted.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.extensions import db
from app.models.orders import OrderLine
from app.models.sales import OpportunityLine, Product
from app.record_types import EVERYONE, RecordType, declare
from app.services import records, validation
from app.services.errors import RuleViolation
from app.services.importing.columns import ImportField

#: Fields a save may set (form, API, import rows).
EDITABLE = ("code", "name", "unit", "list_price", "active")
#: Largest price Money holds (16 digits, 2 decimals).
MAX_MONEY = Decimal("99999999999999.99")


def money(raw: Any, field: str, errors: dict[str, str], *, required: bool = False) -> Decimal | None:
    """A non-negative amount in yuan with at most 2 decimals, or None when empty.

    Text such as ``"1,200.50"`` or ``"￥1200"`` is read; a bad value puts a message under
    ``field`` in ``errors`` and returns None.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            errors[field] = str(_l("An amount is required."))
        return None
    try:
        value = validation.decimal_value(raw)
    except (InvalidOperation, ValueError):
        errors[field] = str(_l("Not a valid amount."))
        return None
    if not value.is_finite() or value.is_signed() or value > MAX_MONEY or value != value.quantize(Decimal("0.01")):
        errors[field] = str(_l("Enter an amount between 0 and %(max)s with at most 2 decimals.", max=MAX_MONEY))
        return None
    return value


def clean_product(item: Product) -> None:
    """Normalise and check a product in place; ``RuleViolation`` lists every error."""
    errors: dict[str, str] = {}
    try:
        item.name = validation.require_text(item.name, 200)
    except ValueError as exc:
        errors["name"] = str(exc)
    item.code = validation.clean_code(item.code) or None
    item.unit = validation.clean_line(item.unit)[:16] or None
    item.list_price = money(item.list_price, "list_price", errors)
    if item.active is None:
        item.active = True
    if item.code and db.session.scalar(select(func.count(Product.id)).where(
            Product.code == item.code, Product.id != (item.id or 0))):
        errors["code"] = str(_l("Another product has the code %(code)s.", code=item.code))
    if errors:
        raise RuleViolation(errors)


def save_product(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> Product:
    """Add (``pk`` None) or change a product; the code is given (S + date + sequence) when empty.
    Raises NotFound, StaleRecord, RuleViolation. The caller commits."""
    item = Product() if pk is None else records.load(Product, pk, user)
    if pk is not None:
        records.check_version(item, version)
    with db.session.no_autoflush:
        records.assign(item, values, EDITABLE)
        clean_product(item)
    if pk is None:
        db.session.add(item)
    db.session.flush()
    return item


def delete_product(pk: Any, user: Any) -> None:
    """Delete a product no opportunity or order line uses; one in use is refused with 409
    (deactivate it: the lines keep naming it)."""
    item = records.load(Product, pk, user)
    used = sum(db.session.scalar(select(func.count()).select_from(line).where(line.product_id == item.id)) or 0
               for line in (OpportunityLine, OrderLine))
    if used:
        raise RuleViolation(str(_l("%(code)s is used on %(n)d opportunity or order lines: deactivate it instead.",
                                   code=item.code, n=used)), status=409)
    db.session.delete(item)
    db.session.flush()


PRODUCT = declare(RecordType(
    name="product", model=Product, label=_l("Product"), plural=_l("Products"), plural_en="Products",
    permission="Product", scope=EVERYONE, code_prefix="S",
    editable=EDITABLE, save=save_product, delete=delete_product,
    list_columns=("code", "name", "unit", "list_price", "active"),
    search_columns=("code", "name", "unit", "active"),
    order_columns=("code", "name", "list_price"),
    base_order=("code", "asc"),
    labels={"name": _l("Product name"), "unit": _l("Unit"), "list_price": _l("List price"),
            "active": _l("Active")},
    fields=(
        ImportField("code", _l("Product code"), "产品编号", ("code", "sku", "编号", "产品代码"), max_length=32,
                    note=_l("Leave empty for new products: the CRM numbers them.")),
        ImportField("name", _l("Product name"), "产品名称", ("name", "product", "产品"), required=True,
                    max_length=200),
        ImportField("unit", _l("Unit"), "单位", ("unit", "uom", "计量单位"), max_length=16),
        ImportField("list_price", _l("List price"), "标准价格", ("price", "list price", "价格", "单价"),
                    note=_l("Yuan, up to 2 decimals.")),
    ),
    roles={"Sales Rep": "read", "Sales Manager": "read|write|delete|export", "Customer Service": "read",
           "Read Only": "read"},
    menu_icon="fa-cube",
))
