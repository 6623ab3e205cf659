"""Sales > Contracts (issue 15) through the screens and the REST API: add, activate, renew,
attachments, the expiring list, both languages; and rep_c attacking rep_a's contract by
every page, action, bulk post, export, API call and attachment route."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import pytest
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

from app import clock
from app.extensions import appbuilder, db
from app.models.orders import Contract
from app.services import contracts

pytestmark = pytest.mark.usefixtures("shanghai")

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
SECRET = "Secret contract of rep_a"


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def contract(app: Any, make_customer: Any) -> Any:
    """``contract(owner, **values)`` -> (customer id, contract id): an active contract ending in 20 days."""

    def make(owner: str = "rep_a", **values: Any) -> tuple[int, int]:
        customer_id = make_customer(owner)
        with app.app_context():
            today = clock.local_today()
            fields = {"customer_id": customer_id, "title": SECRET, "number": f"N-{owner}-{customer_id}",
                      "amount": "1000.00", "signed_on": today - timedelta(days=300),
                      "starts_on": today - timedelta(days=290), "ends_on": today + timedelta(days=20),
                      "status": "active", **values}
            user = appbuilder.sm.find_user(username=owner)
            item = contracts.save_contract({k: v for k, v in fields.items() if k != "customer_id"} | {
                "customer": db.session.get(contracts.Customer, customer_id)}, user)
            db.session.commit()
            pk = item.id
            db.session.remove()
        return customer_id, pk

    return make


def _get(app: Any, pk: int) -> Contract:
    with app.app_context():
        item = db.session.get(Contract, pk)
        db.session.expunge(item)
        return item


def _file_ids(app: Any, pk: int) -> list[int]:
    with app.app_context():
        return [a.id for a in contracts.list_attachments(pk, appbuilder.sm.find_user(username="admin"))]


def test_add_activate_renew_and_attach_through_the_screens(app: Any, client: Any, auth: Any,
                                                            make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    auth.login("rep_a")
    response = client.post("/contractview/add", data={
        "customer": str(customer_id), "title": "设备采购合同", "number": "ＨＴ-0001", "amount": "5000.00",
        "signed_on": "2026-01-05", "starts_on": "2026-01-10", "ends_on": "2030-12-31"}, follow_redirects=True)
    assert response.status_code == 200
    with app.app_context():
        item = db.session.query(Contract).filter_by(title="设备采购合同").one()
        pk, version = item.id, item.version
        assert item.number == "HT-0001" and item.status == "draft"
    page = client.get(f"/sales/contracts/{pk}")
    assert page.status_code == 200 and "HT-0001" in _text(page) and "Activate" in _text(page)
    assert client.get(f"/contractview/show/{pk}").status_code == 302
    client.post(f"/sales/contracts/{pk}/status", data={"to_status": "active", "version": version})
    assert _get(app, pk).status == "active"
    response = client.post(f"/sales/contracts/{pk}/status", data={"to_status": "terminated"}, follow_redirects=True)
    assert "A reason is required" in _text(response) and _get(app, pk).status == "active"
    response = client.post(f"/sales/contracts/{pk}/attachments",
                           data={"file": (io.BytesIO(PDF), "扫描件.pdf")}, content_type="multipart/form-data",
                           follow_redirects=True)
    assert "扫描件.pdf" in _text(response)
    response = client.post(f"/sales/contracts/{pk}/attachments",
                           data={"file": (io.BytesIO(HTML), "evil.pdf")}, content_type="multipart/form-data",
                           follow_redirects=True)
    assert "judged by its content" in _text(response)
    download = client.get(f"/attachments/{_file_ids(app, pk)[0]}/download")
    assert download.status_code == 200 and download.data == PDF
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    response = client.post(f"/sales/contracts/{pk}/renew", follow_redirects=True)
    assert "drafted" in _text(response)
    with app.app_context():
        renewal = db.session.query(Contract).filter_by(renewal_of_id=pk).one()
        assert renewal.starts_on == date(2031, 1, 1) and renewal.status == "draft"


def test_pages_in_chinese(app: Any, client: Any, auth: Any, contract: Any) -> None:
    _, pk = contract("rep_a")
    auth.login("rep_a")
    client.get("/lang/zh")
    page = _text(client.get(f"/sales/contracts/{pk}"))
    assert "客户" in page
    with app.test_request_context(), force_locale("zh"):  # the new labels, once the catalogue has them
        labels = [str(_l(text)) for text in ("Contract number", "Renew", "Attachments", "Terminate")]
    assert all(label in page for label in labels)
    expiring = _text(client.get("/sales/contracts/expiring/?days=30"))
    assert SECRET in expiring


def test_expiring_list_window_and_scope(app: Any, client: Any, auth: Any, contract: Any) -> None:
    _, pk = contract("rep_a")
    auth.login("rep_a")
    assert SECRET in _text(client.get("/sales/contracts/expiring/?days=30"))
    assert SECRET not in _text(client.get("/sales/contracts/expiring/?days=10"))
    assert client.get("/sales/contracts/expiring/?days=abc").status_code == 200  # the setting's 30 days
    auth.logout()
    auth.login("rep_c")
    assert SECRET not in _text(client.get("/sales/contracts/expiring/?days=366"))


def test_api_create_status_renew_and_attachments(app: Any, client: Any, api: Any, make_customer: Any) -> None:
    customer_id = make_customer("rep_a")
    headers = api("rep_a")
    response = client.post("/api/v1/contract/", headers=headers, json={
        "customer": customer_id, "title": "API 合同", "number": "API-1", "amount": "10.50",
        "signed_on": "2026-01-01", "starts_on": "2026-01-01", "ends_on": "2030-01-31"})
    assert response.status_code == 201, response.get_json()
    pk = response.get_json()["id"]
    assert client.post(f"/api/v1/contract/{pk}/status", headers=headers, data="x").status_code == 400
    assert client.post(f"/api/v1/contract/{pk}/status", headers=headers, json={"status": "nope"}).status_code == 422
    ok = client.post(f"/api/v1/contract/{pk}/status", headers=headers, json={"status": "生效"})
    assert ok.status_code == 200 and ok.get_json()["result"]["status"] == "active"
    renewed = client.post(f"/api/v1/contract/{pk}/renew", headers=headers)
    assert renewed.status_code == 201 and renewed.get_json()["result"]["renewal_of"] == pk
    assert client.post(f"/api/v1/contract/{pk}/renew", headers=headers).status_code == 409
    up = client.post(f"/api/v1/contract/{pk}/attachments", headers=headers,
                     data={"file": (io.BytesIO(PDF), "a.pdf")}, content_type="multipart/form-data")
    assert up.status_code == 201 and up.get_json()["result"]["size"] == len(PDF)
    bad = client.post(f"/api/v1/contract/{pk}/attachments", headers=headers,
                      data={"file": (io.BytesIO(HTML), "a.pdf")}, content_type="multipart/form-data")
    assert bad.status_code == 415
    listed = client.get(f"/api/v1/contract/{pk}/attachments", headers=headers).get_json()["result"]
    assert [f["filename"] for f in listed] == ["a.pdf"]
    dup = client.post("/api/v1/contract/", headers=headers, json={"customer": customer_id, "title": "x",
                                                                  "number": "api-1"})
    assert dup.status_code == 422 and "number" in str(dup.get_json())


def test_rep_c_cannot_reach_rep_as_contract_anywhere(app: Any, client: Any, auth: Any, api: Any,
                                                     contract: Any) -> None:
    _, pk = contract("rep_a")
    auth.login("rep_a")
    client.post(f"/sales/contracts/{pk}/attachments", data={"file": (io.BytesIO(PDF), "secret.pdf")},
                content_type="multipart/form-data")
    file_id = _file_ids(app, pk)[0]
    auth.logout()
    before = _get(app, pk)
    auth.login("rep_c")
    for url in (f"/sales/contracts/{pk}", f"/contractview/show/{pk}", f"/contractview/edit/{pk}",
                f"/attachments/{file_id}/download"):
        response = client.get(url, follow_redirects=True)
        assert response.status_code == 404 or SECRET not in _text(response), url
    assert client.get(f"/attachments/{file_id}/download").status_code == 404
    for action, data in (("status", {"to_status": "terminated", "reason": "x"}), ("renew", {}),
                         ("attachments", {"file": (io.BytesIO(PDF), "x.pdf")}),
                         (f"attachments/{file_id}/remove", {})):
        assert client.post(f"/sales/contracts/{pk}/{action}", data=data).status_code == 404, action
    client.post(f"/contractview/edit/{pk}", data={"title": "hijacked", "edit_version": before.version})
    client.post("/contractview/action_post", data={"action": "delete", "rowid": [str(pk)]})
    assert SECRET not in _text(client.get("/contractview/list/"))
    assert SECRET not in _text(client.get("/contractview/export/csv"))
    headers = api("rep_c")
    assert client.get(f"/api/v1/contract/{pk}", headers=headers).status_code == 404
    assert SECRET not in _text(client.get("/api/v1/contract/", headers=headers))
    assert client.put(f"/api/v1/contract/{pk}", headers=headers,
                      json={"title": "hijacked", "version": before.version}).status_code == 404
    for path, kwargs in (("status", {"json": {"status": "terminated", "reason": "x"}}), ("renew", {}),
                         ("attachments", {"data": {"file": (io.BytesIO(PDF), "x.pdf")},
                                          "content_type": "multipart/form-data"})):
        assert client.post(f"/api/v1/contract/{pk}/{path}", headers=headers, **kwargs).status_code == 404, path
    assert client.get(f"/api/v1/contract/{pk}/attachments", headers=headers).status_code == 404
    after = _get(app, pk)
    assert (after.title, after.status, after.version) == (SECRET, "active", before.version)
    with app.app_context():
        assert db.session.query(Contract).filter_by(renewal_of_id=pk).count() == 0
        assert len(contracts.list_attachments(pk, appbuilder.sm.find_user(username="rep_a"))) == 1
    auth.logout()
    auth.login("rep_a")  # the same routes show it to its owner
    assert SECRET in _text(client.get("/contractview/export/csv"))
    assert SECRET in _text(client.get("/contractview/list/"))


def test_read_only_reads_but_cannot_act(app: Any, client: Any, auth: Any, contract: Any) -> None:
    _, pk = contract("rep_a")
    auth.login("viewer")
    assert SECRET in _text(client.get(f"/sales/contracts/{pk}"))
    client.post(f"/sales/contracts/{pk}/status", data={"to_status": "terminated", "reason": "x"})
    assert _get(app, pk).status == "active"
