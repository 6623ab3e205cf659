"""Aliases on the dictionary screens and APIs: shown, editable, normalised, and an alias
that would name two entries is a message, not a save (issue 11 §4)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import CustomerSource, Industry


def _entry(app: Any, model: type, code: str) -> tuple[int, str | None]:
    with app.app_context():
        entry = db.session.scalar(select(model).where(model.code == code))
        return entry.id, entry.aliases


def _restore(app: Any, model: type, pk: int, aliases: str | None) -> None:
    """Dictionaries live for the whole test session: put the seeded aliases back."""
    with app.app_context():
        db.session.get(model, pk).aliases = aliases
        db.session.commit()


def test_api_shows_and_edits_aliases(client: Any, api: Any, app: Any) -> None:
    pk, seeded = _entry(app, Industry, "65")
    headers = api("admin")
    shown = client.get(f"/api/v1/industry/{pk}", headers=headers).get_json()["result"]
    assert "软件" in shown["aliases"].splitlines()
    try:
        response = client.put(f"/api/v1/industry/{pk}", json={"aliases": "软件, SaaS、云服务"}, headers=headers)
        assert response.status_code == 200, response.get_json()
        assert _entry(app, Industry, "65")[1] == "软件\nSaaS\n云服务"
        listed = client.get("/api/v1/industry/?q=(columns:!(code,aliases),filters:!((col:code,opr:eq,value:'65')))",
                            headers=headers).get_json()
        assert listed["result"] == [{"code": "65", "aliases": "软件\nSaaS\n云服务"}]
    finally:
        _restore(app, Industry, pk, seeded)


def test_api_refuses_an_alias_of_another_entry(client: Any, api: Any, app: Any) -> None:
    pk, seeded = _entry(app, Industry, "65")
    response = client.put(f"/api/v1/industry/{pk}", json={"aliases": "软件\n互联网"}, headers=api("admin"))
    assert response.status_code == 422, response.get_json()
    assert "互联网" in str(response.get_json()["message"])
    assert _entry(app, Industry, "65")[1] == seeded
    created = client.post("/api/v1/customer_source/", json={"code": "web2", "label_en": "Web", "label_zh": "官网",
                                                            "sort_order": 99, "active": True}, headers=api("admin"))
    assert created.status_code == 422 and "label_zh" in str(created.get_json()["message"])


def test_admin_screen_shows_and_saves_aliases(client: Any, auth: Any, app: Any) -> None:
    pk, seeded = _entry(app, CustomerSource, "website")
    auth.login("admin")
    page = client.get(f"/customersourceview/edit/{pk}").get_data(as_text=True)
    assert 'name="aliases"' in page and "Aliases" in page and "官网" in page
    try:
        client.post(f"/customersourceview/edit/{pk}", data={
            "code": "website", "label_en": "Website form", "label_zh": "官网表单", "aliases": "官网\n公司网站",
            "sort_order": "40", "active": "y"})
        assert _entry(app, CustomerSource, "website")[1] == "官网\n公司网站"
        page = client.post(f"/customersourceview/edit/{pk}", data={
            "code": "website", "label_en": "Website form", "label_zh": "官网表单", "aliases": "展会",
            "sort_order": "40", "active": "y"}, follow_redirects=True).get_data(as_text=True)
        assert "展会 already names" in page and _entry(app, CustomerSource, "website")[1] == "官网\n公司网站"  # refused
        assert "官网" in client.get("/customersourceview/list/").get_data(as_text=True)
    finally:
        _restore(app, CustomerSource, pk, seeded)
