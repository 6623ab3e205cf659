"""Walk every registered view and API (``appbuilder.baseviews``), so that the next screen
is checked without anyone adding it here.

As a sales rep (own scope) and a manager (department scope), with customers,
follow-ups and status history of people inside and outside their scope: no page, form,
dropdown, export or API answer may show another scope's records or users, and no full
phone number may appear anywhere (own records included: revealing is explicit).
Statically: no view or API orders or filters by a masked column, and every view a
non-admin role can open derives its safety from the CRM base classes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import g
from flask_appbuilder import ModelRestApi
from flask_appbuilder.baseviews import BaseCRUDView
from openpyxl import load_workbook
from sqlalchemy import inspect

from app.extensions import appbuilder, db
from app.models import CrmUser, CustomerStatusChange, CustomerType
from app.security.data_scope import DataScopeFilter, has_scope
from app.security.masking import is_masked_path, masked_columns
from app.services.setup import ROLES
from tests.conftest import api_token, user_id
from views.base import CrmModelView, ScopedApi, orderable_columns

#: owner -> (customer name, full phone, follow-up text, status-change reason)
RECORDS = {
    owner: (f"Cust-{owner}-Name", phone, f"Note-{owner}-text", f"Reason-{owner}-why")
    for owner, phone in (("rep_a", "13811110001"), ("rep_b", "13922220002"),
                         ("rep_c", "13733330003"), ("manager_s", "15844440004"))
}
ALL_USERS = ("admin", "manager", "rep_a", "rep_b", "rep_c", "manager_s", "service", "viewer")
#: actor -> users whose records and identity the actor may see (every non-admin role)
IN_SCOPE = {"rep_a": {"rep_a"}, "manager": {"manager", "rep_a", "rep_b"},
            "service": set(ALL_USERS), "viewer": set(ALL_USERS)}
#: GET routes that end the session or need state the walk does not create
SKIP_ENDPOINTS = {"logout", "login", "back", "index"}
DATA_PERMISSIONS = {"can_list", "can_show", "can_add", "can_edit", "can_read", "can_write", "can_get",
                    "can_info", "can_post", "can_put", "can_export", "can_delete"}


@pytest.fixture
def world(app: Any, make_customer: Any, make_follow_up: Any) -> dict[str, int]:
    """One customer (with a follow-up and a status change) per owner; returns owner -> customer id."""
    ids = {}
    for owner, (name, phone, note, reason) in RECORDS.items():
        ids[owner] = make_customer(owner, name=name, contact_phone=phone, contact_name=f"Contact {owner}")
        make_follow_up(ids[owner], owner, content=note)
        with app.app_context():
            types = db.session.query(CustomerType).order_by(CustomerType.id).all()
            db.session.add(CustomerStatusChange(customer_id=ids[owner], from_type_id=types[0].id,
                                                to_type_id=types[1].id, changed_by_id=user_id(owner), reason=reason))
            db.session.commit()
            db.session.remove()
    return ids


def _full_name(username: str) -> str:
    return f"{username.title()} Test"


def secrets_for(actor: str) -> list[str]:
    """What must never appear to ``actor``: every full phone, and anything of the people
    outside their scope (records, names, e-mails)."""
    found = [phone for _, phone, _, _ in RECORDS.values()]
    for owner, (name, _, note, reason) in RECORDS.items():
        if owner not in IN_SCOPE[actor]:
            found += [name, note, reason]
    for username in ALL_USERS:
        if username not in IN_SCOPE[actor]:
            found += [_full_name(username), f"{username}@example.com"]
    return found


def _text(response: Any) -> str:
    if "spreadsheetml" in response.headers.get("Content-Type", ""):
        rows = load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True)
        return "\n".join(" ".join("" if cell is None else str(cell) for cell in row) for row in rows)
    return response.get_data(as_text=True)


def _model_views() -> list[Any]:
    return [v for v in appbuilder.baseviews if isinstance(v, BaseCRUDView)]


def _apis() -> list[Any]:
    return [v for v in appbuilder.baseviews if isinstance(v, ModelRestApi)]


def _first_visible_pk(app: Any, view: Any, actor: str) -> Any:
    with app.test_request_context():
        g.user = db.session.get(CrmUser, user_id(actor))
        _, items = view.datamodel.query(view._base_filters, page_size=1)
        pk = view.datamodel.get_pk_value(items[0]) if items else None
        db.session.remove()
        return pk


def _rules_of(app: Any, endpoint_prefix: str) -> list[Any]:
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith(endpoint_prefix + ".")]


def _view_urls(app: Any, view: Any, actor: str) -> Iterator[str]:
    """Every GET page of a model view that shows data: list (with its search form), add,
    show and edit of a visible record, exports."""
    pk = _first_visible_pk(app, view, actor)
    for rule in _rules_of(app, view.endpoint):
        name = rule.endpoint.rpartition(".")[2]
        if "GET" not in rule.methods or name in SKIP_ENDPOINTS or name in ("action", "delete"):
            continue
        args = rule.arguments
        if not args:
            yield rule.rule
        elif args == {"pk"} and pk is not None:
            yield rule.rule.replace("<pk>", str(pk)).replace("<int:pk>", str(pk))
        elif args == {"fmt"}:
            yield from (rule.rule.replace("<string:fmt>", fmt) for fmt in ("csv", "xlsx"))
        elif args == {"filename"}:
            yield rule.rule.replace("<string:filename>", "x")


def _other_urls(app: Any, view: Any) -> Iterator[str]:
    for rule in _rules_of(app, view.endpoint):
        name = rule.endpoint.rpartition(".")[2]
        if "GET" in rule.methods and not rule.arguments and name not in SKIP_ENDPOINTS:
            yield rule.rule


def _api_urls(client: Any, api: Any, headers: dict[str, str]) -> Iterator[str]:
    base = api.route_base
    yield f"{base}/"
    yield f"{base}/_info"
    listing = client.get(f"{base}/", headers=headers)
    for pk in (listing.get_json() or {}).get("ids", [])[:5] if listing.status_code == 200 else []:
        yield f"{base}/{pk}"
    relations = {c for c in (*api.add_columns, *api.edit_columns, *api.search_columns)
                 if api.datamodel.is_relation(c)}
    for column in sorted(relations):  # Superset-style related endpoints, should FAB grow them
        yield f"{base}/related/{column}"


def _check(client: Any, url: str, secrets: list[str], problems: list[str], **kwargs: Any) -> None:
    try:  # the test client re-raises a view's exception: record it and walk on
        response = client.get(url, **kwargs)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{url}: {type(exc).__name__}: {str(exc)[:200]}")
        return
    if response.status_code >= 500:
        problems.append(f"{url}: {response.status_code}")
        return
    if response.status_code != 200:
        return
    text = _text(response)
    problems.extend(f"{url}: shows {secret!r}" for secret in secrets if secret in text)


@pytest.mark.parametrize("actor", sorted(IN_SCOPE))
def test_no_screen_shows_other_scopes_or_full_phones(app: Any, client: Any, auth: Any, world: Any,
                                                     actor: str) -> None:
    secrets, problems = secrets_for(actor), []
    auth.login(actor)
    for view in appbuilder.baseviews:
        if isinstance(view, ModelRestApi):
            continue
        urls = _view_urls(app, view, actor) if isinstance(view, BaseCRUDView) else _other_urls(app, view)
        for url in urls:
            _check(client, url, secrets, problems)
    assert problems == [], "\n".join(problems)


def test_no_admin_screen_fails_or_shows_a_full_phone(app: Any, client: Any, auth: Any, world: Any) -> None:
    secrets, problems = [phone for _, phone, _, _ in RECORDS.values()], []
    auth.login("admin")
    for view in appbuilder.baseviews:
        if isinstance(view, ModelRestApi):
            continue
        urls = _view_urls(app, view, "admin") if isinstance(view, BaseCRUDView) else _other_urls(app, view)
        for url in urls:
            _check(client, url, secrets, problems)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("actor", sorted(IN_SCOPE))
def test_no_api_answer_shows_other_scopes_or_full_phones(app: Any, client: Any, world: Any, actor: str) -> None:
    secrets, problems = secrets_for(actor), []
    headers = api_token(client, actor)
    for api in _apis():
        for url in _api_urls(client, api, headers):
            for query in ("", "?q=(keys:!(add_columns,edit_columns,filters))"):
                if query and not url.endswith("_info"):
                    continue
                _check(client, url + query, secrets, problems, headers=headers)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("actor", sorted(IN_SCOPE))
def test_no_list_can_be_ordered_or_filtered_by_a_masked_column(app: Any, client: Any, auth: Any, world: Any,
                                                                actor: str) -> None:
    """For every list whose rows (or related rows) carry a masked column: asking to sort
    or filter by it is refused, never applied."""
    auth.login(actor)
    problems = []
    for view in _model_views():
        name, list_url = type(view).__name__, f"{view.route_base}/list/"
        for path in _masked_paths(view.datamodel.obj):
            for query in (f"_oc_{name}={path}&_od_{name}=asc", f"_flt_0_{path}=1"):
                response = client.get(f"{list_url}?{query}")
                if response.status_code == 200 or response.status_code >= 500:
                    problems.append(f"{list_url}?{query}: {response.status_code}")
    assert problems == [], "\n".join(problems)


def _masked_paths(model: type) -> list[str]:
    paths = sorted(masked_columns(model))
    for relationship in inspect(model).relationships:
        paths += [f"{relationship.key}.{c}" for c in sorted(masked_columns(relationship.mapper.class_))]
    return paths


def test_no_view_or_api_offers_a_masked_column_for_ordering_or_searching(app: Any) -> None:
    problems = []
    for view in [*_model_views(), *_apis()]:
        model = view.datamodel.obj
        columns = [*view.order_columns, *view.search_columns]
        if isinstance(view, CrmModelView):
            columns += sorted(orderable_columns(view))
        problems += [f"{type(view).__name__}: {c}" for c in columns if is_masked_path(model, c)]
        if _masked_paths(model) and not isinstance(view, CrmModelView | ScopedApi):
            problems.append(f"{type(view).__name__}: shows masked data without the CRM base class")
    assert problems == [], "\n".join(problems)


def _non_admin_view_names(app: Any) -> set[str]:
    with app.app_context():
        names = set()
        for role_name in ROLES:
            for permission in appbuilder.sm.find_role(role_name).permissions:
                if permission.permission.name in DATA_PERMISSIONS:
                    names.add(permission.view_menu.name)
        db.session.remove()
        return names


def test_views_open_to_non_admins_derive_scoping_from_the_models(app: Any) -> None:
    """Admins see every record anyway; any view another role can open must scope its
    related choices by construction (the CRM base classes do), for every relation to a
    scoped model in its add, edit and search forms (API: add and edit)."""
    reachable, problems = _non_admin_view_names(app), []
    for view in [*_model_views(), *_apis()]:
        if view.class_permission_name not in reachable:
            continue
        if not isinstance(view, CrmModelView | ScopedApi):
            problems.append(f"{type(view).__name__}: not a CRM base class")
            continue
        problems += _unscoped_relations(view)
    assert problems == [], "\n".join(problems)


def _unscoped_relations(view: Any) -> list[str]:
    if isinstance(view, ScopedApi):
        forms = {"add": (view.add_columns, view.add_query_rel_fields),
                 "edit": (view.edit_columns, view.edit_query_rel_fields)}
    else:
        forms = {"add": (view.add_columns, view.add_form_query_rel_fields),
                 "edit": (view.edit_columns, view.edit_form_query_rel_fields),
                 "search": (view.search_columns, view.search_form_query_rel_fields)}
    problems = []
    for form, (columns, rel_filters) in forms.items():
        for column in columns:
            if not view.datamodel.is_relation(column) or not has_scope(view.datamodel.get_related_model(column)):
                continue
            if DataScopeFilter not in {flt[1] for flt in (rel_filters or {}).get(column, [])}:
                problems.append(f"{type(view).__name__} {form} form: {column} is not scoped")
    return problems
