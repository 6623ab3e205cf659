"""Order scope attacks (issue 15): rep_c (South) against rep_a's (East) order through every
screen, the API, the actions, bulk posts and exports — 404 or absent, nothing changed; the
Read Only role reads but never writes; East's manager sees the department's orders."""

from __future__ import annotations

import io
from typing import Any

import pytest

from app.extensions import db
from app.models.orders import SalesOrder
from app.services import orders
from tests.app.services.test_orders import person, product

pytestmark = pytest.mark.usefixtures("shanghai")
SECRET = "Secret order of rep_a"


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def _xlsx_text(response: Any) -> str:
    """Every cell of an xlsx answer as text ("" when it is not a workbook, e.g. a refusal page)."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(response.data), read_only=True)
    except Exception:  # noqa: BLE001 - not a workbook: nothing exported
        return _text(response)
    return " ".join(str(cell) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)
                    for cell in row)


@pytest.fixture
def secret(app: Any, make_customer: Any) -> dict[str, Any]:
    """rep_a's approved order with one line (nothing delivered or paid)."""
    customer_id = make_customer("rep_a")
    with app.app_context():
        rep_a = person("rep_a")
        order = orders.save_order({"customer": customer_id, "title": SECRET}, rep_a)
        line = orders.save_line(order.id, {"product": product().id, "quantity": "5", "unit_price": "10"}, rep_a)
        orders.submit(order.id, rep_a)
        db.session.commit()
        return {"pk": order.id, "line": line.id, "code": order.code, "version": order.version}


def _state(app: Any, pk: int) -> tuple[Any, ...]:
    with app.app_context():
        item = db.session.get(SalesOrder, pk)
        return (item.title, item.status, item.version, str(item.total), str(item.delivered_amount),
                str(item.paid_amount), len(item.deliveries), len(item.payments), len(item.lines))


def test_rep_c_cannot_reach_rep_as_order_by_any_screen(app: Any, client: Any, auth: Any,
                                                        secret: dict[str, Any]) -> None:
    pk, before = secret["pk"], _state(app, secret["pk"])
    auth.login("rep_c")
    for url in (f"/sales/orders/{pk}", f"/salesorderview/show/{pk}", f"/salesorderview/edit/{pk}"):
        response = client.get(url, follow_redirects=True)
        assert response.status_code == 404 or SECRET not in _text(response), url
    posts = {
        "lines": {"product": "1", "quantity": "1"}, f"lines/{secret['line']}/delete": {},
        "submit": {}, "status": {"to_status": "cancelled", "reason": "x"}, "reopen": {"reason": "x"},
        "deliveries": {"delivered_on": "2026-03-02", f"line_{secret['line']}": "1"},
        "payments": {"paid_on": "2026-03-02", "amount": "1"},
    }
    for action, data in posts.items():
        assert client.post(f"/sales/orders/{pk}/{action}", data=data).status_code == 404, action
    client.post(f"/salesorderview/edit/{pk}", data={"title": "hijacked", "edit_version": secret["version"]})
    client.post(f"/salesorderview/delete/{pk}")
    client.post("/salesorderview/action_post", data={"action": "delete", "rowid": [str(pk)]})
    for url in ("/salesorderview/list/", "/salesorderview/export/csv",
                "/sales/orders/overdue/deliveries", "/sales/orders/overdue/payments"):
        answer = client.get(url)
        assert SECRET not in _text(answer) and secret["code"] not in _text(answer), url
    assert SECRET not in _xlsx_text(client.get("/salesorderview/export/xlsx"))
    assert _state(app, pk) == before
    auth.logout()
    auth.login("rep_a")  # the same routes show it to its owner
    assert SECRET in _text(client.get("/salesorderview/list/"))
    assert SECRET in _text(client.get(f"/sales/orders/{pk}"))
    assert SECRET in _text(client.get("/salesorderview/export/csv"))
    assert SECRET in _xlsx_text(client.get("/salesorderview/export/xlsx"))


def test_rep_c_cannot_reach_rep_as_order_by_the_api(app: Any, client: Any, api: Any,
                                                     secret: dict[str, Any]) -> None:
    pk, before = secret["pk"], _state(app, secret["pk"])
    headers = api("rep_c")
    assert client.get(f"/api/v1/order/{pk}", headers=headers).status_code == 404
    assert all(row["id"] != pk for row in client.get("/api/v1/order/", headers=headers).get_json()["result"])
    assert client.put(f"/api/v1/order/{pk}", json={"title": "x", "version": secret["version"]},
                      headers=headers).status_code == 404
    assert client.delete(f"/api/v1/order/{pk}", headers=headers).status_code == 404
    calls = (
        ("post", f"{pk}/lines", {"product": 1, "quantity": "1"}),
        ("put", f"{pk}/lines/{secret['line']}", {"quantity": "1"}),
        ("delete", f"{pk}/lines/{secret['line']}", None),
        ("post", f"{pk}/submit", {}),
        ("post", f"{pk}/status", {"status": "cancelled", "reason": "x"}),
        ("post", f"{pk}/reopen", {"reason": "x"}),
        ("post", f"{pk}/deliveries", {"delivered_on": "2026-03-02", "quantities": {str(secret["line"]): "1"}}),
        ("post", f"{pk}/payments", {"paid_on": "2026-03-02", "amount": "1"}),
    )
    for method, path, body in calls:
        answer = getattr(client, method)(f"/api/v1/order/{path}", json=body, headers=headers)
        assert answer.status_code == 404, (path, answer.status_code)
    assert _state(app, pk) == before


def test_a_line_of_another_order_is_not_found(app: Any, client: Any, api: Any, make_customer: Any,
                                              secret: dict[str, Any]) -> None:
    """rep_c's own order, rep_a's line id: the line is not reachable through it."""
    customer_id = make_customer("rep_c")
    with app.app_context():
        order = orders.save_order({"customer": customer_id}, person("rep_c"))
        orders.save_line(order.id, {"product": product("B").id, "quantity": "1"}, person("rep_c"))
        db.session.commit()
        mine = order.id
    headers = api("rep_c")
    assert client.delete(f"/api/v1/order/{mine}/lines/{secret['line']}", headers=headers).status_code == 404
    with app.app_context():
        orders.submit(mine, person("rep_c"))
        db.session.commit()
    answer = client.post(f"/api/v1/order/{mine}/deliveries", headers=headers,
                         json={"delivered_on": "2026-03-02", "quantities": {str(secret["line"]): "1"}})
    assert answer.status_code == 404
    assert _state(app, secret["pk"])[4] == "0.00"


def test_read_only_reads_but_never_writes(app: Any, client: Any, api: Any, auth: Any,
                                          secret: dict[str, Any]) -> None:
    pk, before = secret["pk"], _state(app, secret["pk"])
    headers = api("viewer")
    assert client.get(f"/api/v1/order/{pk}", headers=headers).status_code == 200
    for path, body in ((f"{pk}/payments", {"paid_on": "2026-03-02", "amount": "1"}),
                       (f"{pk}/status", {"status": "cancelled", "reason": "x"}),
                       (f"{pk}/deliveries", {"delivered_on": "2026-03-02", "quantities": {str(secret["line"]): "1"}})):
        assert client.post(f"/api/v1/order/{path}", json=body, headers=headers).status_code == 403, path
    assert client.put(f"/api/v1/order/{pk}", json={"title": "x", "version": secret["version"]},
                      headers=headers).status_code == 403
    auth.login("viewer")
    assert SECRET in _text(client.get(f"/sales/orders/{pk}"))
    assert "order-payment-form" not in _text(client.get(f"/sales/orders/{pk}"))
    client.post(f"/sales/orders/{pk}/payments", data={"paid_on": "2026-03-02", "amount": "1"})
    client.post(f"/sales/orders/{pk}/status", data={"to_status": "cancelled", "reason": "x"})
    assert _state(app, pk) == before


def test_the_department_manager_sees_the_order(app: Any, client: Any, api: Any, secret: dict[str, Any]) -> None:
    assert client.get(f"/api/v1/order/{secret['pk']}", headers=api("manager")).status_code == 200
    assert client.get(f"/api/v1/order/{secret['pk']}", headers=api("manager_s")).status_code == 404
