"""Every add and edit screen saves what it serves: a form posted back with its own
defaults and prefilled values must be accepted (a follow-up used to refuse the time its
own add form filled in, because the default carried microseconds).

The walk covers every registered ModelView with an add or edit form, so a new screen
is tried without a new test.
"""

from __future__ import annotations

import html
import re
import tempfile
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask_appbuilder import ModelView
from werkzeug.datastructures import MultiDict

from app.extensions import appbuilder, db
from app.models import CustomerSource, FollowUp

#: Values for fields an add form serves empty but requires (by field name).
REQUIRED_SAMPLES = {
    "name": "Round Trip Co", "contact_phone": "13912345678", "content": "Called about the quote",
    "code": "RT1", "label_en": "Round trip", "label_zh": "往返", "cron": "0 2 * * *",
    "first_name": "Round", "last_name": "Trip", "username": "round_trip", "email": "round.trip@example.com",
    "password": "Round-Trip-2026", "conf_password": "Round-Trip-2026",
    "company": "Round Trip Co", "phone": "13912345678", "title": "Round trip deal", "subject": "Round trip call",
    "description": "Round trip needs a quote",
    # under CRM_FILES_ROOT (the test config's is the temporary folder)
    "path": tempfile.gettempdir(), "location": str(Path(tempfile.gettempdir()) / "round-trip.xlsx"),
}
#: Required fields whose sample depends on the form (a working calendar's day off), and
#: choices a person would not make together (an activity on a customer and a lead).
VIEW_SAMPLES = {"/calendardayview": {"day": "2026-12-31"}}
LEAVE_EMPTY = {"/activityview": ("lead",)}


class FormParser(HTMLParser):
    """The fields of the page's FAB model form (id ``model_form``), as a browser would post
    them: every checked box and every selected option of a multiple select."""

    def __init__(self) -> None:
        super().__init__()
        self.fields = MultiDict()
        #: First real option of each select (a choice to make when the form requires one).
        self.options: dict[str, str] = {}
        #: Lookup URL of each AJAX related select (views/related.py): its choices come from there.
        self.lookups: dict[str, str] = {}
        self.in_form = False
        self._select: str | None = None
        self._multiple, self._picked, self._first = False, False, None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and a.get("id") == "model_form":
            self.in_form = True
        if not self.in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.add(name, a.get("value") or "y")
            elif kind not in ("submit", "button"):
                self.fields.add(name, a.get("value") or "")
        elif tag == "select" and name:
            self._select, self._multiple, self._first, self._picked = name, "multiple" in a, None, False
            if a.get("data-related-url") and "multiple" not in a:  # never grant roles or members by guess
                self.lookups[name] = a["data-related-url"]
        elif tag == "option" and self._select:
            if self._first is None:
                self._first = a.get("value") or ""
            if a.get("value") not in (None, "", "__None") and not self._multiple:
                self.options.setdefault(self._select, a["value"])  # never grant roles or members by guess
            if "selected" in a:
                self._picked = True
                self.fields.add(self._select, a.get("value") or "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields.add(name, "")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            values = self.fields.getlist(self._textarea)
            values[-1] += data
            self.fields.setlist(self._textarea, values)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.in_form:
            self.in_form = False
        elif tag == "select" and self._select:
            if not (self._picked or self._multiple) and self._first is not None:
                self.fields.add(self._select, self._first)  # a browser sends the first option
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def served_form(client: Any, url: str, choose: bool = False) -> MultiDict:
    """The form as served; ``choose`` also picks the first option of each empty select."""
    page = client.get(url)
    assert page.status_code == 200, url
    parser = FormParser()
    parser.feed(page.get_data(as_text=True))
    assert parser.fields, f"no model form on {url}"
    if choose:
        for name, lookup in parser.lookups.items():  # what a person picks after typing nothing
            results = client.get(html.unescape(lookup)).get_json()["results"]
            if results and name not in parser.options:
                parser.options[name] = results[0]["id"]
        for name, value in parser.options.items():
            if parser.fields.get(name) in (None, "", "__None"):
                parser.fields.setlist(name, [value])
    return parser.fields


def form_views() -> list[Any]:
    return [v for v in appbuilder.baseviews if isinstance(v, ModelView)]


def _has_form(view: Any, kind: str) -> bool:
    return _routed(view, kind) and bool(getattr(view, f"{kind}_columns"))


def _errors(response: Any) -> list[str]:
    page = response.get_data(as_text=True)
    return re.findall(r'<span class="help-block">([^<]+)</span>', page) + re.findall(
        r'alert-danger">(?:<button[^>]*>[^<]*</button>)?\s*([^<]+)<', page)


def _saved(response: Any) -> bool:
    return response.status_code == 302


def test_every_add_form_accepts_its_own_defaults(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    make_customer("admin", contact_name="Han Mei")  # something for follow-ups to belong to
    auth.login("admin")
    auth.grant_step_up("admin")
    tried, refused = [], []
    with app.app_context():
        read_only = appbuilder.sm.find_role("Read Only").id
    for view in form_views():
        if not _has_form(view, "add"):
            continue
        url = f"{view.route_base}/add"
        fields = served_form(client, url, choose=True)
        for name, value in {**REQUIRED_SAMPLES, **VIEW_SAMPLES.get(view.route_base, {})}.items():
            if name in fields and not fields[name].strip():
                fields.setlist(name, [value])
        for name in LEAVE_EMPTY.get(view.route_base, ()):
            fields.setlist(name, [""])
        if "roles" in fields.keys() or "roles" in (view.add_columns or []):
            fields.setlist("roles", [str(read_only)])  # a new account needs a role: the least one
        response = client.post(url, data=fields)
        if not _saved(response):
            refused.append((url, _errors(response)))
        tried.append(view.__class__.__name__)
    _remove_round_trip_roles_and_groups(app)
    assert not refused
    assert "FollowUpView" in tried and "CustomerView" in tried


def _remove_round_trip_roles_and_groups(app: Any) -> None:
    """The walk adds a role, a group and a role setting; later tests must not meet them."""
    from app.models import RoleDataScope

    sm = appbuilder.sm
    with app.app_context():
        for model in (sm.group_model, sm.role_model):
            for item in db.session.query(model).filter(model.name == REQUIRED_SAMPLES["name"]):
                db.session.query(RoleDataScope).filter(RoleDataScope.role_id == item.id).delete() \
                    if model is sm.role_model else None
                db.session.delete(item)
        db.session.commit()


def test_follow_up_add_form_saves_as_served(client: Any, auth: Any, make_customer: Any, app: Any) -> None:
    customer = make_customer("rep_a")
    auth.login("rep_a")
    fields = served_form(client, f"/followupview/add?_flt_0_customer={customer}")
    assert fields.get("followed_at"), "the add form pre-fills the time"
    fields.setlist("customer", [str(customer)])
    fields.setlist("content", ["Called about the quote"])
    response = client.post("/followupview/add", data=fields)
    assert _saved(response), response.get_data(as_text=True)[-3000:]
    with app.app_context():
        assert db.session.query(FollowUp).filter_by(customer_id=customer).count() == 1


@pytest.mark.parametrize("followed_at", [datetime(2026, 5, 1, 9, 30, 15, 123456), datetime(2026, 5, 1, 9, 30)])
def test_every_edit_form_saves_as_served(client: Any, auth: Any, make_customer: Any, make_follow_up: Any,
                                         app: Any, followed_at: datetime) -> None:
    customer = make_customer("rep_a", contact_name="Li Lei", address="1 Road", email="li@example.com")
    follow_up = make_follow_up(customer, "rep_a", followed_at=followed_at)
    auth.login("rep_a")
    for url in (f"/customerview/edit/{customer}", f"/followupview/edit/{follow_up}"):
        fields = served_form(client, url)
        response = client.post(url, data=fields)
        assert _saved(response), (url, response.get_data(as_text=True)[-3000:])


def test_every_edit_form_walk_saves_as_served(client: Any, auth: Any, make_customer: Any, make_follow_up: Any,
                                              app: Any) -> None:
    """Every edit screen with a record to edit (as an admin) takes its own form back unchanged."""
    customer = make_customer("admin", contact_name="Han Mei", address="2 Road")
    make_follow_up(customer, "admin", followed_at=datetime(2026, 5, 2, 8, 0, 1, 500000))
    with app.app_context():  # an unticked box is an answer: an inactive entry must save as shown
        source = db.session.query(CustomerSource).order_by(CustomerSource.id).first()
        source.active, source_id = False, source.id
        db.session.commit()
    auth.login("admin")
    auth.grant_step_up("admin")
    try:
        refused, tried = _walk_edit_forms(client, app)
    finally:
        with app.app_context():
            db.session.get(CustomerSource, source_id).active = True
            db.session.commit()
    assert not refused
    assert {"CustomerView", "FollowUpView", "CustomerSourceView"} <= set(tried)


def _walk_edit_forms(client: Any, app: Any) -> tuple[list, list]:
    refused, tried = [], []
    for view in form_views():
        if not _has_form(view, "edit"):
            continue
        with app.app_context():
            item = db.session.query(view.datamodel.obj).first()
            pk = None if item is None else view.datamodel.get_pk_value(item)
        if pk is None:
            continue
        url = f"{view.route_base}/edit/{pk}"
        if client.get(url).status_code == 404:  # e.g. the first row is out of the view's filter
            continue
        response = client.post(url, data=served_form(client, url))
        if not _saved(response):
            refused.append((url, _errors(response)))
        tried.append(view.__class__.__name__)
    return refused, tried


def test_every_screen_and_api_that_writes_a_record_type_goes_through_its_use_case(app: Any) -> None:
    """No second door: a view or API that can add or edit customers or follow-ups must save
    through the use case (an archived-customers screen once let a manager add customers
    with no rules at all)."""
    from flask_appbuilder import ModelRestApi

    from app.models import Customer
    from views.writes import UseCaseApiMixin, UseCaseFormMixin

    doors = []
    for view in appbuilder.baseviews:
        model = getattr(getattr(view, "datamodel", None), "obj", None)
        if model not in (Customer, FollowUp):
            continue
        exposed = {method for method in ("add", "edit", "post", "put") if _routed(view, method)}
        if isinstance(view, ModelView) and exposed & {"add", "edit"} and not isinstance(view, UseCaseFormMixin):
            doors.append(type(view).__name__)
        if isinstance(view, ModelRestApi) and exposed & {"post", "put"} and not isinstance(view, UseCaseApiMixin):
            doors.append(type(view).__name__)
    assert doors == []


def _routed(view: Any, method: str) -> bool:
    """Whether FAB registered ``method`` as a route of ``view`` and some role may call it."""
    allowed = view.include_route_methods is None or method in view.include_route_methods
    permission = f"can_{view.method_permission_name.get(method, method)}"
    return allowed and method not in (view.exclude_route_methods or set()) and permission in view.base_permissions
