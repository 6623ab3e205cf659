"""Adding a follow-up from the customer's page (issue 11 §6): one click, the customer
chosen and shown on the form, and back to the customer's page after saving."""

from __future__ import annotations

import re
from typing import Any

from app.extensions import db
from app.models import FollowUp
from tests.views.test_form_round_trip import served_form


def _selected_customer(html: str) -> str | None:
    select = re.search(r'<select[^>]*name="customer".*?</select>', html, re.S)
    if select is None:
        return None
    chosen = re.search(r'<option[^>]*selected[^>]*value="([^"]+)"|<option[^>]*value="([^"]+)"[^>]*selected',
                       select.group(0))
    return chosen and (chosen.group(1) or chosen.group(2))


def test_customer_page_has_the_add_button(client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    auth.login("rep_a")
    html = client.get(f"/customerview/show/{pk}").get_data(as_text=True)
    assert 'id="add-follow-up"' in html
    assert f"/followupview/add?_flt_0_customer={pk}" in html


def test_button_hidden_without_write_permission(client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    auth.login("viewer")  # read-only on customers and follow-ups
    html = client.get(f"/customerview/show/{pk}").get_data(as_text=True)
    assert 'id="add-follow-up"' not in html


def test_add_form_shows_the_customer_chosen(client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Shown Customer Ltd")
    auth.login("rep_a")
    html = client.get(f"/followupview/add?_flt_0_customer={pk}").get_data(as_text=True)
    assert _selected_customer(html) == str(pk)
    assert "Shown Customer Ltd" in html


def test_out_of_scope_customer_is_not_shown(client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_c", name="Somebody Else's Ltd")
    auth.login("rep_a")
    html = client.get(f"/followupview/add?_flt_0_customer={pk}").get_data(as_text=True)
    assert "Somebody Else" not in html
    assert _selected_customer(html) is None


def test_saving_with_the_defaults_returns_to_the_customer(client: Any, auth: Any, make_customer: Any,
                                                          app: Any) -> None:
    pk = make_customer("rep_a")
    auth.login("rep_a")
    client.get(f"/customerview/show/{pk}")
    url = f"/followupview/add?_flt_0_customer={pk}"
    fields = served_form(client, url)
    fields.setlist("content", ["Called about the quote"])
    response = client.post(url, data=fields)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/customerview/show/{pk}?tab=activities")  # where the new follow-up shows
    with app.app_context():
        assert db.session.query(FollowUp).filter_by(customer_id=pk).count() == 1
        db.session.remove()


def test_the_customer_shown_is_the_one_saved(client: Any, auth: Any, make_customer: Any, app: Any) -> None:
    """Changing the customer on the form saves for the chosen one (FAB would take the URL's)."""
    first = make_customer("rep_a", name="First")
    second = make_customer("rep_a", name="Second", contact_phone="13900000003")
    auth.login("rep_a")
    url = f"/followupview/add?_flt_0_customer={first}"
    fields = served_form(client, url)
    fields.setlist("customer", [str(second)])
    fields.setlist("content", ["Called about the quote"])
    response = client.post(url, data=fields)
    assert response.headers["Location"].endswith(f"/customerview/show/{second}?tab=activities")
    with app.app_context():
        assert db.session.query(FollowUp).filter_by(customer_id=second).count() == 1
        assert db.session.query(FollowUp).filter_by(customer_id=first).count() == 0
        db.session.remove()


def test_plain_add_still_goes_back_as_before(client: Any, auth: Any, make_customer: Any) -> None:
    pk = make_customer("rep_a")
    auth.login("rep_a")
    client.get("/followupview/list/")
    fields = served_form(client, "/followupview/add")
    fields.setlist("customer", [str(pk)])
    fields.setlist("content", ["Called about the quote"])
    response = client.post("/followupview/add", data=fields)
    assert response.status_code == 302 and "/customerview/show/" not in response.headers["Location"]
