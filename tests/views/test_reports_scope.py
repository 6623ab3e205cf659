"""Scope attacks on the report screens (issue 17 "scope attacks": a rep's reports never count
another rep's records): filters naming someone else's owner or department, another
source's records, saved reports opened and exported by someone else, and forged saves
(another user's report id, roles the user does not hold)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.org import CrmUser, Department
from app.models.reports import SavedReport
from tests.conftest import user_id
from tests.views.test_reports import LEVEL_BY_INDUSTRY, _save, _xlsx_rows, as_dict, book, pivot_of, role_id, saved_id

__all__ = ["book"]  # the fixture, shared with test_reports

BY_OWNER = [("source", "customers"), ("dimensions", "owner"), ("measure", "count"), ("chart", "bar")]


def _total(client: Any, pairs: list[tuple[str, str]]) -> str:
    answer = client.get(f"/reports/builder?{urlencode(pairs)}")
    assert answer.status_code == 200
    return as_dict(pivot_of(answer.get_data(as_text=True)))["Total"]["Total"]


def _department(app: Any, username: str) -> int:
    with app.app_context():
        return db.session.get(CrmUser, user_id(username)).department_id


@pytest.mark.usefixtures("book")
def test_a_rep_naming_another_owner_or_department_counts_nothing_of_theirs(app, client, auth):
    with app.app_context():
        rep_c = user_id("rep_c")
    auth.login("rep_a")
    assert _total(client, LEVEL_BY_INDUSTRY) == "3"
    other = client.get(f"/reports/builder?{urlencode(BY_OWNER + [('owner', str(rep_c))])}")
    assert "rep_c" not in other.get_data(as_text=True).split('id="report-pivot"')[-1]
    rows = pivot_of(other.get_data(as_text=True))
    assert rows == [] or as_dict(rows).get("Total", {}).get("Total", "0") in ("0", "")
    south = client.get(f"/reports/builder?{urlencode(LEVEL_BY_INDUSTRY + [('department', str(_department(app, 'rep_c')))])}")
    rows = pivot_of(south.get_data(as_text=True))
    assert rows == [] or as_dict(rows).get("Total", {}).get("Total", "0") in ("0", "")


@pytest.mark.usefixtures("book")
def test_by_owner_lists_only_people_in_scope(client, auth):
    auth.login("manager")
    labels = [row[0] for row in pivot_of(client.get(f"/reports/builder?{urlencode(BY_OWNER)}").get_data(as_text=True))]
    html = " ".join(labels)
    assert "rep_c" not in html.lower() and labels[-1] == "Total"
    assert len(labels[1:]) == 3  # rep_a, rep_b, Total (after the header)


@pytest.mark.usefixtures("book")
def test_a_shared_report_exported_by_a_rep_holds_only_that_reps_records(app, client, auth):
    auth.login("admin")
    _save(client, "All levels", [role_id(app, "Sales Rep")])
    pk = saved_id(app, "All levels")
    auth.logout()
    auth.login("rep_b")
    rows = _xlsx_rows(client.get(f"/reports/saved/{pk}/export/xlsx").data)
    assert rows[-1][-1] == 1  # rep_b's one customer, not the admin's six
    auth.logout()
    auth.login("viewer")  # Read Only is not among the roles: not visible at all
    assert client.get(f"/reports/saved/{pk}").status_code == 404


@pytest.mark.usefixtures("book")
def test_forged_saves_cannot_take_over_or_widen_a_report(app, client, auth):
    auth.login("rep_a")
    _save(client, "Rep A's")
    pk = saved_id(app, "Rep A's")
    auth.logout()
    auth.login("rep_b")
    answer = _save(client, "Taken over", pk=str(pk), version="1")
    assert answer.status_code == 404
    answer = _save(client, "Widened", [role_id(app, "Admin")])
    assert answer.status_code == 400 and "Only administrators may share" in answer.get_data(as_text=True)
    roles_offered = client.get("/reports/builder?" + urlencode(LEVEL_BY_INDUSTRY)).get_data(as_text=True)
    assert ">Admin</option>" not in roles_offered.split('id="roles"')[1].split("</select>")[0]
    with app.app_context():
        names = set(db.session.scalars(select(SavedReport.name)))
    assert names == {"Rep A's"}


def test_departments_offered_are_the_managers_tree_only(app, client, auth):
    auth.login("manager")
    html = client.get("/reports/builder").get_data(as_text=True)
    with app.app_context():
        south = db.session.scalars(select(Department.name).where(Department.id == _department(app, "rep_c"))).one()
    select_html = html.split('id="department"')[1].split("</select>")[0]
    assert south not in select_html


@pytest.mark.usefixtures("book")
def test_api_runs_in_the_callers_scope_and_explains_bad_definitions(client, api):
    query = urlencode(LEVEL_BY_INDUSTRY)
    mine = client.get(f"/api/v1/report/run?{query}", headers=api("rep_a"))
    assert mine.status_code == 200
    body = mine.get_json()
    assert body["pivot"]["rows"][-1][-1] == 3 and body["figure"]["chart"] == "bar"
    assert client.get(f"/api/v1/report/run?{query}", headers=api("manager")).get_json()["pivot"]["rows"][-1][-1] == 4
    bad = client.get(f"/api/v1/report/run?{query}&dimensions=type", headers=api("rep_a"))
    assert bad.status_code == 400 and "dimensions" in bad.get_json()["errors"]
    assert client.get(f"/api/v1/report/run?{query}").status_code == 401
