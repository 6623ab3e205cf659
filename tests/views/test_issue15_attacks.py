"""Attacks on issue 15 through the screens and the REST API: another rep's orders,
contracts, campaigns and approval requests; API writes that try to skip the rules; CSRF;
every new page for every role in both languages; the campaign export's cells.

A failing test is a finding (see the attacker's report)."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from app.models.approvals import ApprovalRequest
from app.models.dictionaries import CustomerLevel
from app.models.orders import Contract, SalesOrder
from app.models.org import CrmUser
from app.models.sales import Lead, Product
from app.services import campaigns, contracts, customers, orders
from tests.conftest import user_id

ROLES = ("admin", "manager", "rep_a", "rep_c", "service", "viewer")


def _user(name: str) -> Any:
    return db.session.get(CrmUser, user_id(name))


def _world(app: Any, make_customer: Any) -> dict[str, Any]:
    """rep_a's approved order (one line), draft contract, campaign with a lead whose company is
    a formula, and a pending level request (rep_a → manager). Ids by name."""
    customer_id = make_customer("rep_a", name="Formula Works")
    with app.app_context():
        rep_a = _user("rep_a")
        product = Product(name="Widget", list_price=Decimal("100.00"), active=True)
        db.session.add(product)
        db.session.flush()
        order = orders.save_order({"customer": db.session.get(Customer, customer_id), "title": "Secret order"},
                                  rep_a)
        line = orders.save_line(order.id, {"product": product.id, "quantity": "5"}, rep_a)
        orders.submit(order.id, rep_a)
        contract = contracts.save_contract({"customer": db.session.get(Customer, customer_id),
                                            "title": "Secret contract"}, rep_a)
        campaign = campaigns.save_campaign({"name": "Secret fair"}, _user("manager"))
        db.session.flush()
        lead = Lead(company='=HYPERLINK("http://evil.example","click")', contact_name="Bob",
                    phone="13912345678", owner_id=rep_a.id, campaign_id=campaign.id, status="new")
        db.session.add(lead)
        db.session.commit()
        customer = db.session.get(Customer, customer_id)
        level = db.session.scalars(select(CustomerLevel).order_by(CustomerLevel.id)).first()
        saved = customers.save_customer({"level": level}, rep_a, pk=customer_id, version=customer.version)
        db.session.commit()
        request_id = saved.held_for_approval[0].id if saved.held_for_approval else None
        return {"customer": customer_id, "order": order.id, "line": line.id, "contract": contract.id,
                "campaign": campaign.id, "lead": lead.id, "request": request_id, "order_code": order.code,
                "contract_code": contract.code, "campaign_code": campaign.code}


def _pages(w: dict[str, Any]) -> list[str]:
    return ["/approvals/waiting", "/approvals/mine", f"/approvals/show/{w['request']}",
            f"/approvals/record/customer/{w['customer']}", "/approvalpolicyview/list/",
            "/salesorderview/list/", f"/sales/orders/{w['order']}", "/sales/orders/overdue/deliveries",
            "/sales/orders/overdue/payments", "/contractview/list/", f"/sales/contracts/{w['contract']}",
            "/sales/contracts/expiring/", "/campaignview/list/", f"/marketing/campaigns/{w['campaign']}",
            f"/marketing/campaigns/{w['campaign']}/evaluation.xlsx", "/salesorderview/add",
            "/contractview/add", "/campaignview/add", f"/customerview/show/{w['customer']}"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_new_page_answers_without_a_server_error(app: Any, client: Any, auth: Any, make_customer: Any,
                                                       department_managers: Any, lang: str) -> None:
    w = _world(app, make_customer)
    broken = []
    for who in ROLES:
        auth.login(who)
        client.get(f"/lang/{lang}")
        for url in _pages(w):
            status = client.get(url).status_code
            if status >= 500:
                broken.append((who, lang, url, status))
        auth.logout()
    assert not broken


def test_chinese_pages_have_no_english_headings(app: Any, client: Any, auth: Any, make_customer: Any,
                                                department_managers: Any) -> None:
    w = _world(app, make_customer)
    auth.login("manager")
    client.get("/lang/zh")
    english = {"/approvals/waiting": ["Waiting for me", "Approve", "Requested"],
               f"/approvals/show/{w['request']}": ["Approve", "Reject", "Comment", "Step", "Withdraw"],
               f"/sales/orders/{w['order']}": ["Deliveries", "Payments", "Record a delivery", "Total"],
               f"/sales/contracts/{w['contract']}": ["Attachments", "Renew", "Contract number"],
               f"/marketing/campaigns/{w['campaign']}": ["Evaluation", "Leads generated", "Conversion rate"]}
    left = {}
    for url, words in english.items():
        page = re.sub(r"<script.*?</script>|<[^>]+>", " ", client.get(url).get_data(as_text=True), flags=re.S)
        found = [word for word in words if re.search(rf"\b{word}\b", page)]
        if found:
            left[url] = found
    assert not left


def test_another_rep_reaches_nothing_of_rep_a_through_pages(app: Any, client: Any, auth: Any, make_customer: Any,
                                                           department_managers: Any) -> None:
    w = _world(app, make_customer)
    auth.login("rep_c")
    for url in (f"/sales/orders/{w['order']}", f"/salesorderview/show/{w['order']}",
                f"/sales/contracts/{w['contract']}", f"/contractview/show/{w['contract']}",
                f"/marketing/campaigns/{w['campaign']}/evaluation.xlsx", f"/approvals/show/{w['request']}",
                f"/approvals/record/customer/{w['customer']}"):
        answer = client.get(url)
        assert answer.status_code in (302, 403, 404), url
        assert w["order_code"] not in answer.get_data(as_text=True)
    for url in ("/salesorderview/list/", "/sales/orders/overdue/deliveries", "/contractview/list/",
                "/salesorderview/export/csv", "/contractview/export/csv"):
        text = client.get(url).get_data(as_text=True)
        assert w["order_code"] not in text and w["contract_code"] not in text, url
    for url, data in ((f"/sales/orders/{w['order']}/payments", {"paid_on": "2026-03-01", "amount": "1"}),
                      (f"/sales/orders/{w['order']}/deliveries", {"delivered_on": "2026-03-01",
                                                                  f"line_{w['line']}": "1"}),
                      (f"/sales/orders/{w['order']}/status", {"to_status": "cancelled", "reason": "x"}),
                      (f"/approvals/approve/{w['request']}", {"comment": "mine"}),
                      (f"/approvals/reject/{w['request']}", {"comment": "mine"}),
                      (f"/approvals/withdraw/{w['request']}", {}),
                      (f"/approvals/data_change/{w['customer']}", {"text": "give it to me"})):
        client.post(url, data=data)
    with app.app_context():
        order = db.session.get(SalesOrder, w["order"])
        assert order.status == orders.APPROVED and not order.payments and not order.deliveries
        assert db.session.get(ApprovalRequest, w["request"]).status == "pending"
        assert db.session.scalar(select(ApprovalRequest).where(ApprovalRequest.kind == "data_change")) is None


def test_another_rep_reaches_nothing_through_the_api(app: Any, client: Any, api: Any, make_customer: Any,
                                                     department_managers: Any) -> None:
    w = _world(app, make_customer)
    headers = api("rep_c")
    for url in (f"/api/v1/order/{w['order']}", f"/api/v1/contract/{w['contract']}",
                f"/api/v1/contract/{w['contract']}/attachments", f"/api/v1/approval/{w['request']}",
                f"/api/v1/campaign/{w['campaign']}/evaluation"):
        assert client.get(url, headers=headers).status_code == 404, url
    with app.app_context():
        owner = user_id("rep_a")
    for url in ("/api/v1/order/", f"/api/v1/order/?q=(filters:!((col:owner,opr:rel_o_m,value:{owner})))",
                "/api/v1/order/?q=(order_column:total,order_direction:desc)", "/api/v1/contract/",
                "/api/v1/approval/?box=mine", "/api/v1/approval/?box=waiting"):
        text = client.get(url, headers=headers).get_data(as_text=True)
        assert w["order_code"] not in text and w["contract_code"] not in text and "Secret" not in text, url
    for url, body in ((f"/api/v1/order/{w['order']}/payments", {"paid_on": "2026-03-01", "amount": "1.00"}),
                      (f"/api/v1/order/{w['order']}/deliveries", {"delivered_on": "2026-03-01",
                                                                  "quantities": {str(w["line"]): "1"}}),
                      (f"/api/v1/order/{w['order']}/status", {"status": "cancelled", "reason": "x"}),
                      (f"/api/v1/approval/{w['request']}/approve", {}),
                      (f"/api/v1/approval/{w['request']}/withdraw", {}),
                      ("/api/v1/approval/data_change", {"customer": w["customer"], "text": "mine"})):
        answer = client.post(url, json=body, headers=headers)
        assert answer.status_code in (403, 404, 422), (url, answer.status_code)
    assert client.put(f"/api/v1/order/{w['order']}", json={"title": "pwned", "version": 1},
                      headers=headers).status_code == 404


def test_api_put_cannot_jump_an_orders_status_or_total(app: Any, client: Any, api: Any, make_customer: Any,
                                                       department_managers: Any) -> None:
    w = _world(app, make_customer)
    headers = api("rep_a")
    with app.app_context():
        version = db.session.get(SalesOrder, w["order"]).version
    client.put(f"/api/v1/order/{w['order']}", json={"status": "closed", "total": "0.01", "paid_amount": "500",
                                                    "version": version}, headers=headers)
    client.put(f"/api/v1/order/{w['order']}/lines/{w['line']}", json={"quantity": "500", "unit_price": "0.01"},
               headers=headers)
    with app.app_context():
        order = db.session.get(SalesOrder, w["order"])
        assert order.status == orders.APPROVED and order.total == Decimal("500.00")
        assert order.paid_amount in (None, Decimal(0)) and order.lines[0].quantity == Decimal("5")


def test_the_approver_cannot_withdraw_and_the_requester_cannot_approve(app: Any, client: Any, api: Any,
                                                                       make_customer: Any,
                                                                       department_managers: Any) -> None:
    w = _world(app, make_customer)
    assert client.post(f"/api/v1/approval/{w['request']}/withdraw", json={},
                       headers=api("manager")).status_code == 403
    assert client.post(f"/api/v1/approval/{w['request']}/approve", json={},
                       headers=api("rep_a")).status_code == 404
    answer = client.post(f"/api/v1/approval/{w['request']}/reject", json={"comment": "   "}, headers=api("manager"))
    assert answer.status_code == 422
    with app.app_context():
        assert db.session.get(ApprovalRequest, w["request"]).status == "pending"


def test_decisions_and_order_writes_need_a_csrf_token(app: Any, client: Any, auth: Any, make_customer: Any,
                                                      department_managers: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    w = _world(app, make_customer)
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    auth.login("manager")
    assert client.post(f"/approvals/approve/{w['request']}", data={"comment": "ok"}).status_code == 400
    assert client.post(f"/sales/orders/{w['order']}/payments",
                       data={"paid_on": "2026-03-01", "amount": "10"}).status_code == 400
    assert client.post(f"/sales/contracts/{w['contract']}/renew").status_code == 400
    assert client.post(f"/marketing/campaigns/{w['campaign']}/submit").status_code == 400
    with app.app_context():
        assert db.session.get(ApprovalRequest, w["request"]).status == "pending"
        assert not db.session.get(SalesOrder, w["order"]).payments


def test_campaign_export_neutralises_formulas_and_masks_phones(app: Any, client: Any, auth: Any,
                                                               make_customer: Any,
                                                               department_managers: Any) -> None:
    from openpyxl import load_workbook

    w = _world(app, make_customer)
    auth.login("rep_a")
    answer = client.get(f"/marketing/campaigns/{w['campaign']}/evaluation.xlsx")
    assert answer.status_code == 200
    book = load_workbook(io.BytesIO(answer.data))
    cells = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]
    assert not [c.coordinate for c in cells if c.data_type == "f" or str(c.value or "").startswith("=")]
    assert not [c.coordinate for c in cells if "13912345678" in str(c.value or "")]


def test_campaign_roi_with_zero_cost_and_no_leads_is_no_error(app: Any, client: Any, api: Any,
                                                              make_customer: Any) -> None:
    with app.app_context():
        campaign = campaigns.save_campaign({"name": "Empty fair"}, _user("manager"))
        db.session.flush()
        campaign.actual_cost = Decimal("0")
        db.session.commit()
        pk = campaign.id
    answer = client.get(f"/api/v1/campaign/{pk}/evaluation", headers=api("rep_a"))
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_a_lead_cannot_carry_an_out_of_scope_or_cancelled_campaign(app: Any, client: Any, api: Any,
                                                                   make_customer: Any) -> None:
    with app.app_context():
        theirs = campaigns.save_campaign({"name": "South fair"}, _user("manager_s"))
        mine = campaigns.save_campaign({"name": "Closed fair"}, _user("manager"))
        db.session.flush()
        mine.status = "cancelled"
        db.session.commit()
        ids = (theirs.id, theirs.code, mine.id, mine.code)
    headers = api("rep_a")
    for value in ids:
        answer = client.post("/api/v1/lead/", json={"company": "Lead Co", "campaign": value}, headers=headers)
        assert answer.status_code in (400, 422), (value, answer.status_code, answer.get_json())
    with app.app_context():
        assert not db.session.scalars(select(Lead).where(Lead.campaign_id.in_(ids[::2]))).all()


def test_contract_attachment_html_renamed_pdf_is_refused(app: Any, client: Any, auth: Any, make_customer: Any,
                                                         department_managers: Any) -> None:
    w = _world(app, make_customer)
    auth.login("rep_a")
    for name, body in (("invoice.pdf", b"<html><script>alert(1)</script></html>"),
                       ("pic.pdf", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
                       ("../../etc/passwd.pdf", b"%PDF-1.4\n"), ("empty.pdf", b"")):
        client.post(f"/sales/contracts/{w['contract']}/attachments",
                    data={"file": (io.BytesIO(body), name)}, content_type="multipart/form-data")
    listed = client.get(f"/sales/contracts/{w['contract']}").get_data(as_text=True)
    assert "invoice.pdf" not in listed and "pic.pdf" not in listed and "empty.pdf" not in listed
    assert "../" not in listed


def test_contract_number_variants_are_one_number(app: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    from app.services.errors import RuleViolation

    with app.app_context():
        rep_a = _user("rep_a")
        contracts.save_contract({"customer": db.session.get(Customer, customer_id), "title": "A",
                                 "number": "HT-2026-001"}, rep_a)
        db.session.commit()
        for variant in ("ＨＴ－２０２６－００１", " ht-2026-001 ", "HT-2026-001\u200b"):
            with pytest.raises(RuleViolation):
                contracts.save_contract({"customer": db.session.get(Customer, customer_id), "title": "B",
                                         "number": variant}, rep_a)
            db.session.rollback()
        assert len(db.session.scalars(select(Contract)).all()) == 1



def _type_id(app: Any, code: str) -> int:
    from app.models.dictionaries import CustomerType

    with app.app_context():
        return db.session.scalar(select(CustomerType.id).where(CustomerType.code == code))


def test_a_rep_cannot_unwin_a_customer_and_then_archive_it(app: Any, client: Any, api: Any, make_customer: Any,
                                                           department_managers: Any) -> None:
    """000 §三(一) / 003 第四步: a won customer is archived only after the manager approves.
    The rep first moves it from won back to potential (nothing gates that move), then
    archives it at once — the approval is skipped."""
    pk = make_customer("rep_a", type_code="won")
    headers = api("rep_a")
    moved = client.put(f"/api/v1/customer/{pk}", json={"type": _type_id(app, "potential"), "version": 1},
                       headers=headers)
    client.delete(f"/api/v1/customer/{pk}", headers=headers)
    with app.app_context():
        item = db.session.get(Customer, pk)
        waiting = db.session.scalars(select(ApprovalRequest).where(ApprovalRequest.record_id == pk)).all()
        assert item.archived_at is None or waiting, (moved.status_code, "won customer archived without approval")


@pytest.mark.parametrize("number", ["   ", "\u3000", "\u200b", "-"])
def test_won_needs_a_real_contract_number_through_the_api(app: Any, client: Any, api: Any, make_customer: Any,
                                                          number: str) -> None:
    pk = make_customer("rep_a")
    answer = client.put(f"/api/v1/customer/{pk}", json={"type": _type_id(app, "won"), "version": 1,
                                                        "contract_number": number}, headers=api("rep_a"))
    with app.app_context():
        assert db.session.get(Customer, pk).type.code == "potential", (number, answer.status_code)


def test_order_history_labels_are_translated(app: Any, client: Any, auth: Any, make_customer: Any,
                                             department_managers: Any) -> None:
    w = _world(app, make_customer)
    auth.login("rep_a")
    client.get("/lang/zh")
    page = re.sub(r"<[^>]+>", "\n", client.get(f"/sales/orders/{w['order']}").get_data(as_text=True))
    assert not re.search(r"^\s*code:", page, flags=re.M), "raw field name 'code' in the Chinese history"
