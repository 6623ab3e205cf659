"""The customer list's one search box (issue 11 §1, §6): fields, folding, phone, scope."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from app.services import search


def _codes_found(client: Any, app: Any, text: str) -> set[str]:
    from app.extensions import db
    from app.models import Customer

    page = client.get(f"/customerview/list/?q={quote(text)}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    with app.app_context():
        codes = db.session.scalars(db.select(Customer.code)).all()
        db.session.remove()
    return {code for code in codes if code in html}


def _code(app: Any, pk: int) -> str:
    from app.extensions import db
    from app.models import Customer

    with app.app_context():
        code = db.session.get(Customer, pk).code
        db.session.remove()
        return code


@pytest.mark.parametrize("stored", ["ACME Trading", "ＡＣＭＥ Trading", "Ａｃｍｅ Trading", "acme trading"])
def test_search_is_case_and_width_insensitive(client: Any, auth: Any, app: Any, make_customer: Any,
                                              stored: str) -> None:
    wanted = _code(app, make_customer("rep_a", name=stored))
    other = _code(app, make_customer("rep_a", name="Beta Ltd", contact_phone="13900000000"))
    auth.login("rep_a")
    for typed in ("acme", "ACME", "ａｃｍｅ", "Ａｃｍｅ", " acme\u200b "):
        assert _codes_found(client, app, typed) == {wanted}, typed
    assert _codes_found(client, app, "") == {wanted, other}


@pytest.mark.parametrize("typed", ["138 1234 5678", "13812345678", "+86 138-1234-5678", "１３８１２３４５６７８",
                                   "\u202a138 1234 5678\u202c"])
def test_search_by_phone_in_any_format(client: Any, auth: Any, app: Any, make_customer: Any, typed: str) -> None:
    wanted = _code(app, make_customer("rep_a", name="Phone Co", contact_phone="13812345678"))
    make_customer("rep_a", name="Other Co", contact_phone="13912345678")
    auth.login("rep_a")
    assert _codes_found(client, app, typed) == {wanted}


def test_search_by_code_contact_and_credit_code(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Gamma", contact_name="Wang Fang", credit_code="91350100M000100Y43")
    make_customer("rep_a", name="Delta", contact_name="Li Lei", contact_phone="13900000001")
    code = _code(app, pk)
    auth.login("rep_a")
    for typed in (code.lower(), "wang", "ＷＡＮＧ", "91350100m000100y43", "M000100"):
        assert _codes_found(client, app, typed) == {code}, typed


def test_phone_matches_exactly_never_in_part(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    """A part of a masked phone finds nothing: the box is no oracle for its digits."""
    make_customer("rep_a", name="Masked", contact_phone="13812345678")
    auth.login("rep_a")
    for typed in ("1381234", "5678", "138", "1381234567"):
        assert _codes_found(client, app, typed) == set(), typed


def test_search_stays_in_the_data_scope(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    mine = _code(app, make_customer("rep_a", name="Shared Name", contact_phone="13812345678"))
    make_customer("rep_c", name="Shared Name", contact_phone="13812345678")  # another rep, other region
    auth.login("rep_a")
    assert _codes_found(client, app, "shared") == {mine}
    assert _codes_found(client, app, "138 1234 5678") == {mine}


def test_like_wildcards_are_literal(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="Plain")
    auth.login("rep_a")
    assert _codes_found(client, app, "%") == set()
    assert _codes_found(client, app, "_") == set()


def test_export_follows_the_search(client: Any, auth: Any, app: Any, make_customer: Any) -> None:
    wanted = _code(app, make_customer("rep_a", name="Export Me"))
    other = _code(app, make_customer("rep_a", name="Leave Me", contact_phone="13900000002"))
    auth.login("rep_a")
    body = client.get("/customerview/export/csv?q=export").get_data().decode("utf-8-sig")
    assert wanted in body and other not in body


def test_search_box_is_shown_filled_in(client: Any, auth: Any) -> None:
    auth.login("rep_a")
    html = client.get("/customerview/list/?q=acme").get_data(as_text=True)
    assert 'id="customer-search-q"' in html and 'value="acme"' in html


def test_too_long_search_is_refused_with_a_message(client: Any, auth: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="Any")
    auth.login("rep_a")
    response = client.get("/customerview/list/?q=" + "x" * (search.MAX_QUERY_LENGTH + 1), follow_redirects=True)
    assert response.status_code == 200
    assert "Search text is too long" in response.get_data(as_text=True)


def test_search_does_not_narrow_a_record_page(client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Visible")
    auth.login("rep_a")
    assert client.get(f"/customerview/show/{pk}?q=nothing-like-it").status_code == 200


def test_fold() -> None:
    assert search.fold(" ＡＣＭＥ\u200b  Trading ") == "acme trading"
    assert search.fold(None) == ""
